//! Prints the log of a sled data directory, in global position order: position, stream, version,
//! event type and schema version, recorded-at, and the payload decoded generically (MessagePack
//! shown as JSON-like text), so a log can be read without the event types that wrote it.
//!
//! Run: `cargo run -p chat-examples --example print_log -- <sled data directory>`
//!
//! Stop the service first: sled allows one process per data directory.

use chat_store::{EventStore, READ_COUNT_MAX, RecordedEvent, SledStore};
use std::error::Error;
use std::path::PathBuf;

/// Events per read: the store's limit, so a long log takes few round trips.
const PAGE_EVENTS: usize = READ_COUNT_MAX;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .ok_or("usage: print_log <sled data directory>")?
        .into();
    // Opening creates a store in an empty directory; a viewer must not.
    if !dir.join("conf").is_file() {
        return Err(format!("{} is not a sled data directory", dir.display()).into());
    }
    let store = SledStore::open(&dir)?;
    let mut next = 1;
    loop {
        let page = store.read_all(next, PAGE_EVENTS).await?;
        let Some(last) = page.last() else { break };
        next = last.global_position + 1;
        for event in &page {
            println!("{}", line(event));
        }
    }
    println!("-- {} events", next - 1);
    store.close();
    Ok(())
}

fn line(event: &RecordedEvent) -> String {
    let mut bytes = event.payload.as_slice();
    let payload = match rmpv::decode::read_value(&mut bytes) {
        Ok(value) if bytes.is_empty() => value.to_string(),
        _ => format!("<{} bytes, not one MessagePack value>", event.payload.len()),
    };
    format!(
        "{:>8}  {}  v{}  {} (schema {})  {}  {}",
        event.global_position,
        event.stream_id,
        event.stream_version,
        event.event_type,
        event.schema_version,
        event.recorded_at.to_rfc3339(),
        payload
    )
}
