//! Assembling and running the service: store, engine, fan-out, outbox, attachment store, HTTP
//! listener — from a [`ServiceConfig`] (configuration file, environment, command line).
//!
//! Data directory of `--store sled:DIR`: `DIR/log` (the sled event store), `DIR/blobs`
//! (attachments), `DIR/secret.key` (the token signing key, created on first start) and, with
//! `--demo`, `DIR/demo-credentials.txt`. With `postgres:URL` the log (and attachments) live in
//! the database, and every process must be given the same `secret_key` so that a token signed by
//! one is accepted by the others.

use crate::engine::{Engine, EngineOptions, SystemClock};
use crate::fanout::{Fanout, FanoutOptions};
use crate::http::auth::SecretKey;
use crate::http::blobs::{BlobStore, FsBlobs, MemoryBlobs, PgBlobs};
use crate::http::{App, AppParts, HttpLimits, router};
use crate::outbox::{Outbox, OutboxHandle, OutboxOptions, SmtpConfig, SmtpSecurity, WebhookSecret};
use chat_store::{EventStore, MemoryStore, PostgresConfig, PostgresStore, SledStore};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

/// Where the log lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoreSpec {
    /// In memory: gone at exit (tests, trying things out).
    Memory,
    /// sled in a data directory (the embedded default).
    Sled(PathBuf),
    /// PostgreSQL (several processes may share it).
    Postgres(String),
}

impl FromStr for StoreSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "memory" {
            Ok(Self::Memory)
        } else if let Some(path) = text.strip_prefix("sled:").filter(|p| !p.is_empty()) {
            Ok(Self::Sled(path.into()))
        } else if text.starts_with("postgres:") && text.len() > "postgres:".len() {
            // `postgres:postgres://…` or a bare `postgres://…` after the prefix.
            let url = text.strip_prefix("postgres:").unwrap_or(text);
            let url = if url.starts_with("//") {
                format!("postgres:{url}")
            } else {
                url.to_owned()
            };
            Ok(Self::Postgres(url))
        } else {
            Err(format!(
                "store {text:?}: expected memory, sled:PATH or postgres:URL"
            ))
        }
    }
}

impl<'de> Deserialize<'de> for StoreSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// SMTP settings of the configuration file.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SmtpSettings {
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    #[serde(default = "default_security")]
    pub security: String,
    /// User name, if the server wants one.
    #[serde(default)]
    pub user: Option<String>,
    /// Password, if the server wants one.
    #[serde(default)]
    pub password: Option<String>,
}

fn default_security() -> String {
    "starttls".to_owned()
}

/// Everything the service is started with. Fields of the configuration file; the command line
/// and the environment override them (see `main.rs`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Where the log lives.
    pub store: StoreSpec,
    /// PostgreSQL schema (default `chat_store`).
    pub postgres_schema: Option<String>,
    /// Address to listen on.
    pub listen: SocketAddr,
    /// The URL browsers use to reach the service (default `http://<listen>`).
    pub public_url: Option<String>,
    /// The token signing key (64 hex digits); required to share tokens between processes.
    pub secret_key: Option<String>,
    /// Seed a demo module, queue, agent and admin, and print how to use them.
    pub demo: bool,
    /// SMTP for the outbox's e-mail.
    pub smtp: Option<SmtpSettings>,
    /// Webhook signing secrets by target name.
    pub webhook_secrets: BTreeMap<String, String>,
    /// Largest JSON request body, in bytes.
    pub json_bytes_max: usize,
    /// Largest attachment upload, in bytes.
    pub upload_bytes_max: usize,
    /// Visitor requests per minute per chat.
    pub visitor_requests_per_minute: u32,
    /// Most WebSocket streams open at once on this process (1..=`fanout::SUBSCRIBERS_MAX`).
    pub websocket_clients_max: usize,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        let limits = HttpLimits::default();
        Self {
            store: StoreSpec::Sled("chat-data".into()),
            postgres_schema: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            public_url: None,
            secret_key: None,
            demo: false,
            smtp: None,
            webhook_secrets: BTreeMap::new(),
            json_bytes_max: limits.json_bytes_max,
            upload_bytes_max: limits.upload_bytes_max,
            visitor_requests_per_minute: limits.visitor_requests_per_minute,
            websocket_clients_max: FanoutOptions::default().subscribers_max,
        }
    }
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A configuration value is unusable; names it.
    #[error("configuration: {0}")]
    Config(String),
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] chat_store::StoreError),
    /// The engine could not start.
    #[error("engine: {0}")]
    Engine(#[from] crate::engine::EngineError),
    /// The listener or a file failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// A running service.
pub struct Service {
    app: App,
    address: SocketAddr,
    outbox: Option<OutboxHandle>,
    server: tokio::task::JoinHandle<()>,
    stop: tokio::sync::watch::Sender<bool>,
    data_dir: Option<PathBuf>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Opens the store, starts the engine, the fan-out and the outbox, binds the listener and
    /// serves until [`Service::shutdown`].
    pub async fn start(config: ServiceConfig) -> Result<Self, ServiceError> {
        let (store, blobs, data_dir): (Arc<dyn EventStore>, Arc<dyn BlobStore>, _) =
            match &config.store {
                StoreSpec::Memory => (
                    Arc::new(MemoryStore::new()),
                    Arc::new(MemoryBlobs::default()),
                    None,
                ),
                StoreSpec::Sled(dir) => {
                    std::fs::create_dir_all(dir)?;
                    let store = SledStore::open(dir.join("log"))?;
                    let blobs = FsBlobs::open(dir.join("blobs"))
                        .map_err(|e| ServiceError::Config(e.to_string()))?;
                    (Arc::new(store), Arc::new(blobs), Some(dir.clone()))
                }
                StoreSpec::Postgres(url) => {
                    let mut pg = PostgresConfig::new(url.clone());
                    if let Some(schema) = &config.postgres_schema {
                        pg = pg.schema(schema.clone());
                    }
                    let schema = pg.schema_name().to_owned();
                    let store = PostgresStore::open(pg).await?;
                    // After the store: its migration creates the schema the table goes in.
                    let blobs = PgBlobs::open(url, &schema)
                        .await
                        .map_err(|e| ServiceError::Config(e.to_string()))?;
                    (Arc::new(store), Arc::new(blobs), None)
                }
            };
        Self::start_with(config, store, blobs, data_dir).await
    }

    /// Like [`Service::start`] over a store the caller opened (tests, embedders).
    pub async fn start_with(
        config: ServiceConfig,
        store: Arc<dyn EventStore>,
        blobs: Arc<dyn BlobStore>,
        data_dir: Option<PathBuf>,
    ) -> Result<Self, ServiceError> {
        let secret = secret_key(&config, data_dir.as_deref())?;
        let clock = Arc::new(SystemClock::default());
        let engine = Engine::start(store, clock.clone(), EngineOptions::default()).await?;
        // Every reader goes through the engine's store, which opens sealed content (message
        // texts, contact data) with the vault's keys; the raw store would show it erased.
        let store = engine.store().clone();
        let fanout = Fanout::start(
            store.clone(),
            engine.codec().clone(),
            FanoutOptions {
                subscribers_max: config.websocket_clients_max,
                ..FanoutOptions::default()
            },
            engine.shutdown_signal(),
        )
        .await
        .map_err(|e| ServiceError::Config(e.to_string()))?;
        let outbox = Outbox::new(
            store,
            engine.codec().clone(),
            clock,
            outbox_options(&config)?,
        )
        .map_err(|e| ServiceError::Config(e.to_string()))?
        .spawn(engine.shutdown_signal());
        let listener = tokio::net::TcpListener::bind(config.listen).await?;
        let address = listener.local_addr()?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{address}"));
        let app = App::new(AppParts {
            engine,
            fanout,
            outbox: Some(outbox.watch()),
            blobs,
            secret,
            limits: HttpLimits {
                json_bytes_max: config.json_bytes_max,
                upload_bytes_max: config.upload_bytes_max,
                visitor_requests_per_minute: config.visitor_requests_per_minute,
                ..HttpLimits::default()
            },
            public_url,
        });
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let service = router(app.clone());
        let server = tokio::spawn(async move {
            // With the peer address, so that the visitor API can rate-limit by client address.
            let service = service.into_make_service_with_connect_info::<SocketAddr>();
            let result = axum::serve(listener, service)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
            if let Err(error) = result {
                tracing::error!(%error, "HTTP server failed");
            }
        });
        Ok(Self {
            app,
            address,
            outbox: Some(outbox),
            server,
            stop,
            data_dir,
        })
    }

    /// The shared state (for embedders and tests).
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The bound address (useful with port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// The data directory of a sled store.
    pub fn data_dir(&self) -> Option<&std::path::Path> {
        self.data_dir.as_deref()
    }

    /// Stops accepting requests, then stops the engine, fan-out and outbox.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        self.app.engine().shutdown().await;
        if let Some(outbox) = self.outbox.take() {
            let _ = outbox.join().await;
        }
        // Open WebSocket streams end with the engine's shutdown; the server then finishes.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.server).await;
        self.server.abort();
    }
}

fn secret_key(
    config: &ServiceConfig,
    data_dir: Option<&std::path::Path>,
) -> Result<SecretKey, ServiceError> {
    if let Some(hex) = &config.secret_key {
        return SecretKey::from_hex(hex)
            .map_err(|e| ServiceError::Config(format!("secret_key: {e}")));
    }
    let Some(dir) = data_dir else {
        if matches!(config.store, StoreSpec::Postgres(_)) {
            tracing::warn!(
                "no secret_key configured: tokens of this process are not accepted by others"
            );
        }
        return Ok(SecretKey::generate()?);
    };
    let path = dir.join("secret.key");
    match std::fs::read_to_string(&path) {
        Ok(text) => SecretKey::from_hex(&text)
            .map_err(|e| ServiceError::Config(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::generate()?;
            write_private(&path, &key.to_hex())?;
            Ok(key)
        }
        Err(e) => Err(e.into()),
    }
}

/// Writes a file readable by its owner only (secrets, demo credentials).
pub(crate) fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

fn outbox_options(config: &ServiceConfig) -> Result<OutboxOptions, ServiceError> {
    let mut options = OutboxOptions::default();
    if let Some(smtp) = &config.smtp {
        let security = match smtp.security.as_str() {
            "none" => SmtpSecurity::None,
            "starttls" => SmtpSecurity::StartTls,
            "tls" => SmtpSecurity::Tls,
            other => {
                return Err(ServiceError::Config(format!(
                    "smtp.security {other:?}: expected none, starttls or tls"
                )));
            }
        };
        let credentials = smtp.user.clone().zip(smtp.password.clone());
        options.smtp = Some(SmtpConfig {
            host: smtp.host.clone(),
            port: smtp.port,
            security,
            credentials,
        });
    }
    for (name, secret) in &config.webhook_secrets {
        let secret = WebhookSecret::new(secret.as_bytes().to_vec())
            .map_err(|e| ServiceError::Config(format!("webhook_secrets.{name}: {e}")))?;
        options.webhook_secrets.insert(name.clone(), secret);
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_specs_parse_and_bad_ones_name_the_forms() {
        assert_eq!("memory".parse::<StoreSpec>(), Ok(StoreSpec::Memory));
        assert_eq!(
            "sled:./data".parse::<StoreSpec>(),
            Ok(StoreSpec::Sled("./data".into()))
        );
        assert_eq!(
            "postgres://postgres@127.0.0.1/test".parse::<StoreSpec>(),
            Ok(StoreSpec::Postgres(
                "postgres://postgres@127.0.0.1/test".into()
            ))
        );
        assert_eq!(
            "mysql://x".parse::<StoreSpec>().unwrap_err(),
            "store \"mysql://x\": expected memory, sled:PATH or postgres:URL"
        );
        assert_eq!(
            "postgres:postgres://u@h/db".parse::<StoreSpec>(),
            Ok(StoreSpec::Postgres("postgres://u@h/db".into()))
        );
        assert!("sled:".parse::<StoreSpec>().is_err());
    }
}
