//! `chat-service`: the reference HTTP + WebSocket service.
//!
//! `cargo run -p chat-service -- --demo` starts it over sled in `./chat-data` with a demo module,
//! agent and admin, and prints how to sign in and where the demo page is. Options come from a
//! TOML file (`--config`), then the environment (`CHAT_*`), then the command line.

use chat_service::http::demo;
use chat_service::http::service::{Service, ServiceConfig, StoreSpec};
use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The reference live-chat service.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// A TOML configuration file (fields of `ServiceConfig`; see docs/HTTP.md).
    #[arg(long, env = "CHAT_CONFIG")]
    config: Option<PathBuf>,
    /// Where the log lives: memory, sled:PATH or postgres:URL.
    #[arg(long, env = "CHAT_STORE")]
    store: Option<StoreSpec>,
    /// Address to listen on.
    #[arg(long, env = "CHAT_LISTEN")]
    listen: Option<SocketAddr>,
    /// The URL browsers reach the service at.
    #[arg(long, env = "CHAT_PUBLIC_URL")]
    public_url: Option<String>,
    /// The token signing key, 64 hex digits (share it between processes on one database).
    #[arg(long, env = "CHAT_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// PostgreSQL schema.
    #[arg(long, env = "CHAT_POSTGRES_SCHEMA")]
    postgres_schema: Option<String>,
    /// Seed the demo module, agent and admin.
    #[arg(long, env = "CHAT_DEMO")]
    demo: bool,
    /// Log as JSON lines.
    #[arg(long, env = "CHAT_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    if args.log_json {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .json()
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let mut config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("config {}: {e}", path.display()))?;
            toml::from_str::<ServiceConfig>(&text)
                .map_err(|e| format!("config {}: {e}", path.display()))?
        }
        None => ServiceConfig::default(),
    };
    if let Some(store) = args.store {
        config.store = store;
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    config.public_url = args.public_url.or(config.public_url);
    config.secret_key = args.secret_key.or(config.secret_key);
    config.postgres_schema = args.postgres_schema.or(config.postgres_schema);
    config.demo |= args.demo;

    let service = Service::start(config.clone()).await?;
    let url = service.app().public_url().to_owned();
    tracing::info!(address = %service.address(), store = ?config.store, "listening");
    println!(
        "chat-service listening on {url} (store: {:?})",
        config.store
    );
    if config.demo {
        let credentials = demo::seed(service.app(), service.data_dir())
            .await
            .map_err(|e| e.detail.message)?;
        println!("demo page (visitor widget): {url}/demo");
        println!("agent console:              {url}/console");
        println!(
            "  agent: login {} password {}",
            demo::DEMO_AGENT_LOGIN,
            credentials.agent_password
        );
        println!(
            "  admin: login {} password {}",
            demo::DEMO_ADMIN_LOGIN,
            credentials.admin_password
        );
    }
    println!("API description: {url}/openapi.json — stop with Ctrl-C");
    tokio::signal::ctrl_c().await?;
    println!("stopping");
    service.shutdown().await;
    Ok(())
}
