//! The wake-up half of subscriptions: `LISTEN` on a dedicated connection.
//!
//! Every append queues `pg_notify(<schema>, <last position>)` in its own transaction, so the
//! notification is sent at commit, by whichever process appended. This task moves the store's
//! `watch` channel forward on each one. It carries no events: readers `read_all` from their own
//! position, so a notification lost while the connection was down costs nothing but latency —
//! and on every (re)connect the task reads the committed head after `LISTEN` is in place, which
//! covers whatever committed while it was away.

use super::{SQL_HEAD, advance};
use crate::types::GlobalPosition;
use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_postgres::{AsyncMessage, NoTls};

/// First wait before reconnecting; doubled after each failure up to [`RECONNECT_DELAY_MAX`].
const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(50);
/// Longest wait between reconnect attempts while the server is away.
const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(2);

/// Listens until the task is aborted (the store is dropped), reconnecting whenever the
/// connection dies.
pub(super) async fn run(
    config: tokio_postgres::Config,
    channel: String,
    head: Arc<watch::Sender<GlobalPosition>>,
) {
    let mut delay = RECONNECT_DELAY_MIN;
    loop {
        match listen_once(&config, &channel, &head, &mut delay).await {
            Ok(()) => tracing::warn!(channel, "listener connection closed, reconnecting"),
            Err(e) => {
                tracing::warn!(channel, error = %e, "listener connection failed, reconnecting")
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_DELAY_MAX);
    }
}

/// One connection's life: connect, `LISTEN`, read the head, then follow notifications until the
/// connection ends. `delay` is reset once listening works, so a healthy connection that later
/// dies is retried quickly.
async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    head: &watch::Sender<GlobalPosition>,
    delay: &mut Duration,
) -> Result<(), tokio_postgres::Error> {
    let (client, mut connection) = config.connect(NoTls).await?;
    // The connection is driven here rather than in a spawned task, so aborting this task closes
    // it too.
    let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
    // `channel` is the schema name, a plain identifier (see `validate_schema`).
    let listen = format!("LISTEN {channel}");
    let setup = async {
        client.batch_execute(&listen).await?;
        client.query_one(SQL_HEAD, &[]).await
    };
    tokio::pin!(setup);
    let row = loop {
        tokio::select! {
            row = &mut setup => break row?,
            message = messages.next() => match message {
                Some(Ok(message)) => on_message(head, &message),
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
        }
    };
    let position: i64 = row.try_get(0)?;
    advance(head, u64::try_from(position).unwrap_or(0));
    *delay = RECONNECT_DELAY_MIN;
    while let Some(message) = messages.next().await {
        on_message(head, &message?);
    }
    Ok(())
}

fn on_message(head: &watch::Sender<GlobalPosition>, message: &AsyncMessage) {
    if let AsyncMessage::Notification(notification) = message {
        match notification.payload().parse::<GlobalPosition>() {
            Ok(position) => advance(head, position),
            Err(_) => tracing::warn!(
                payload = notification.payload(),
                "ignoring a notification that is not a position"
            ),
        }
    }
}
