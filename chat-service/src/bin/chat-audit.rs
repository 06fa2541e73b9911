//! `chat-audit`: dump, verify, rebuild and past states of an event log (docs/AUDIT.md).
//!
//! ```text
//! chat-audit --store sled:data/events verify
//! chat-audit --store postgres:postgres://u@host/db --schema chat_store dump --json --type MessageRedacted
//! chat-audit --store sled:data/events state-at --chat <uuid> --at 2026-11-21T12:00:00Z
//! ```

use chat_service::audit::cli::{Cli, StoreSpec, run};
use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let outcome = async {
        let store = StoreSpec::parse(&cli.store, cli.schema.clone())?
            .open()
            .await?;
        let mut out = std::io::stdout().lock();
        run(&store, &cli.command, &mut out).await
    }
    .await;
    match outcome {
        Ok(0) => std::process::ExitCode::SUCCESS,
        Ok(_) => std::process::ExitCode::from(1),
        Err(error) => {
            eprintln!("chat-audit: {error}");
            std::process::ExitCode::from(2)
        }
    }
}
