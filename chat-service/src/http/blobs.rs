//! Where attachment bytes live (A5, F1). The log records an attachment's metadata (name, type,
//! size, id) inside the message; the bytes are kept here, outside the log, so the log stays small
//! and replay stays fast. Blobs are written once and never changed (content is addressed by a
//! fresh id), so any backend that can put and get a file will do.
//!
//! Backends: [`MemoryBlobs`] (tests, `--store memory`), [`FsBlobs`] (a directory next to the sled
//! data, `--store sled:PATH`), [`PgBlobs`] (a `blobs` table in the PostgreSQL store's schema, so
//! that every process on one database sees every upload, `--store postgres:URL`).

use async_trait::async_trait;
use chat_core::ChatId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use uuid::Uuid;

/// Longest attachment file name, in bytes.
pub const BLOB_NAME_BYTES_MAX: usize = 255;
/// Longest attachment content type, in bytes.
pub const BLOB_TYPE_BYTES_MAX: usize = 255;

/// What is known about a stored blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMeta {
    /// The chat it was uploaded to (downloads are allowed only through that chat).
    pub chat: ChatId,
    /// The file name as uploaded.
    pub file_name: String,
    /// The content type as uploaded.
    pub content_type: String,
    /// Its size.
    pub size_bytes: u64,
}

/// Why a blob operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BlobError {
    /// The backend failed.
    #[error("blob store: {0}")]
    Io(String),
}

/// A write-once store of attachment bytes.
#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    /// Stores `bytes` under `id` (ids are fresh; writing an existing id replaces nothing).
    async fn put(&self, id: Uuid, meta: BlobMeta, bytes: Vec<u8>) -> Result<(), BlobError>;
    /// The blob, if stored.
    async fn get(&self, id: Uuid) -> Result<Option<(BlobMeta, Vec<u8>)>, BlobError>;
    /// The blob's metadata, if stored, without its bytes (checking an attachment a message
    /// refers to should not read megabytes). The default reads the whole blob.
    async fn meta(&self, id: Uuid) -> Result<Option<BlobMeta>, BlobError> {
        Ok(self.get(id).await?.map(|(meta, _)| meta))
    }
}

/// Blobs in memory.
#[derive(Debug, Default)]
pub struct MemoryBlobs {
    blobs: Mutex<HashMap<Uuid, (BlobMeta, Vec<u8>)>>,
}

#[async_trait]
impl BlobStore for MemoryBlobs {
    async fn put(&self, id: Uuid, meta: BlobMeta, bytes: Vec<u8>) -> Result<(), BlobError> {
        self.blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(id)
            .or_insert((meta, bytes));
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<(BlobMeta, Vec<u8>)>, BlobError> {
        Ok(self
            .blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .cloned())
    }

    async fn meta(&self, id: Uuid) -> Result<Option<BlobMeta>, BlobError> {
        Ok(self
            .blobs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&id)
            .map(|(meta, _)| meta.clone()))
    }
}

/// Blobs as files in a directory: `<id>.bin` and `<id>.json` (metadata), each written to a
/// temporary name, synced and renamed, so a crash leaves either the whole blob or none.
#[derive(Debug)]
pub struct FsBlobs {
    dir: PathBuf,
}

impl FsBlobs {
    /// Blobs under `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir)
            .map_err(|e| BlobError::Io(format!("{}: {e}", dir.display())))?;
        Ok(Self { dir })
    }

    fn write(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
        use std::io::Write as _;
        let temp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    }
}

#[async_trait]
impl BlobStore for FsBlobs {
    async fn put(&self, id: Uuid, meta: BlobMeta, bytes: Vec<u8>) -> Result<(), BlobError> {
        let data = self.dir.join(format!("{}.bin", id.simple()));
        let info = self.dir.join(format!("{}.json", id.simple()));
        let meta = serde_json::to_vec(&meta).map_err(|e| BlobError::Io(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            // Bytes first: metadata present means the bytes are complete.
            Self::write(&data, &bytes)?;
            Self::write(&info, &meta)
        })
        .await
        .map_err(|e| BlobError::Io(e.to_string()))?
        .map_err(|e| BlobError::Io(e.to_string()))
    }

    async fn get(&self, id: Uuid) -> Result<Option<(BlobMeta, Vec<u8>)>, BlobError> {
        let data = self.dir.join(format!("{}.bin", id.simple()));
        let info = self.dir.join(format!("{}.json", id.simple()));
        tokio::task::spawn_blocking(move || {
            let meta = match std::fs::read(&info) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(BlobError::Io(e.to_string())),
            };
            let meta: BlobMeta =
                serde_json::from_slice(&meta).map_err(|e| BlobError::Io(e.to_string()))?;
            let bytes = std::fs::read(&data).map_err(|e| BlobError::Io(e.to_string()))?;
            Ok(Some((meta, bytes)))
        })
        .await
        .map_err(|e| BlobError::Io(e.to_string()))?
    }

    async fn meta(&self, id: Uuid) -> Result<Option<BlobMeta>, BlobError> {
        let info = self.dir.join(format!("{}.json", id.simple()));
        tokio::task::spawn_blocking(move || match std::fs::read(&info) {
            Ok(meta) => serde_json::from_slice(&meta)
                .map(Some)
                .map_err(|e| BlobError::Io(e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(BlobError::Io(e.to_string())),
        })
        .await
        .map_err(|e| BlobError::Io(e.to_string()))?
    }
}

/// Longest PostgreSQL schema name [`PgBlobs`] accepts, in bytes (PostgreSQL's identifier limit).
pub const PG_SCHEMA_BYTES_MAX: usize = 63;
/// Connections [`PgBlobs`] keeps at most.
pub const PG_BLOBS_POOL_SIZE: usize = 4;

/// Blobs in the `blobs` table of the PostgreSQL store's schema: one row per blob, bytes in a
/// `bytea` column (PostgreSQL stores large values out of line, TOAST). Every process on the
/// database sees every upload, which is what lets a visitor on one process download what an
/// agent uploaded through another.
///
/// The table is created if missing (`CREATE TABLE IF NOT EXISTS`, safe when several processes
/// start at once: a concurrent creation's unique violation is retried once). Rows are written
/// once (`ON CONFLICT DO NOTHING`, the same write-once rule as the other backends).
pub struct PgBlobs {
    pool: deadpool_postgres::Pool,
    table: String,
}

impl std::fmt::Debug for PgBlobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgBlobs")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

fn pg(error: impl std::fmt::Display) -> BlobError {
    BlobError::Io(format!("postgres: {error}"))
}

impl PgBlobs {
    /// Connects to `url` and makes sure `schema.blobs` exists. The schema is the event store's
    /// (the store creates it first); its name goes into SQL text, so only a plain lower-case
    /// identifier is accepted (the store's own rule).
    pub async fn open(url: &str, schema: &str) -> Result<Self, BlobError> {
        let plain = !schema.is_empty()
            && schema.len() <= PG_SCHEMA_BYTES_MAX
            && schema
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            && !schema.as_bytes()[0].is_ascii_digit();
        if !plain {
            return Err(BlobError::Io(format!(
                "invalid schema name {schema:?}: lower-case ASCII letters, digits and _"
            )));
        }
        let config: tokio_postgres::Config = url.parse().map_err(pg)?;
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Verified,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(PG_BLOBS_POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(pg)?;
        let blobs = Self {
            pool,
            table: format!("{schema}.blobs"),
        };
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {} (\
                id uuid PRIMARY KEY, \
                chat uuid NOT NULL, \
                file_name text NOT NULL, \
                content_type text NOT NULL, \
                size_bytes bigint NOT NULL, \
                bytes bytea NOT NULL, \
                created_at timestamptz NOT NULL DEFAULT now())",
            blobs.table
        );
        let client = blobs.pool.get().await.map_err(pg)?;
        // Two processes creating the table at once: one may fail on the catalogue's unique
        // index; by then the table exists, and the retry sees it.
        if client.batch_execute(&create).await.is_err() {
            client.batch_execute(&create).await.map_err(pg)?;
        }
        Ok(blobs)
    }
}

#[async_trait]
impl BlobStore for PgBlobs {
    async fn put(&self, id: Uuid, meta: BlobMeta, bytes: Vec<u8>) -> Result<(), BlobError> {
        let client = self.pool.get().await.map_err(pg)?;
        let sql = format!(
            "INSERT INTO {} (id, chat, file_name, content_type, size_bytes, bytes) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING",
            self.table
        );
        let size = i64::try_from(meta.size_bytes).map_err(pg)?;
        let chat = meta.chat.as_uuid();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &id,
            &chat,
            &meta.file_name,
            &meta.content_type,
            &size,
            &bytes,
        ];
        client.execute(&sql, &params).await.map_err(pg)?;
        Ok(())
    }

    async fn get(&self, id: Uuid) -> Result<Option<(BlobMeta, Vec<u8>)>, BlobError> {
        let client = self.pool.get().await.map_err(pg)?;
        let sql = format!(
            "SELECT chat, file_name, content_type, size_bytes, bytes FROM {} WHERE id = $1",
            self.table
        );
        let Some(row) = client.query_opt(&sql, &[&id]).await.map_err(pg)? else {
            return Ok(None);
        };
        let meta = pg_meta(&row)?;
        let bytes: Vec<u8> = row.try_get(4).map_err(pg)?;
        Ok(Some((meta, bytes)))
    }

    async fn meta(&self, id: Uuid) -> Result<Option<BlobMeta>, BlobError> {
        let client = self.pool.get().await.map_err(pg)?;
        let sql = format!(
            "SELECT chat, file_name, content_type, size_bytes FROM {} WHERE id = $1",
            self.table
        );
        match client.query_opt(&sql, &[&id]).await.map_err(pg)? {
            Some(row) => Ok(Some(pg_meta(&row)?)),
            None => Ok(None),
        }
    }
}

fn pg_meta(row: &tokio_postgres::Row) -> Result<BlobMeta, BlobError> {
    let chat: Uuid = row.try_get(0).map_err(pg)?;
    let size: i64 = row.try_get(3).map_err(pg)?;
    Ok(BlobMeta {
        chat: ChatId::from_uuid(chat),
        file_name: row.try_get(1).map_err(pg)?,
        content_type: row.try_get(2).map_err(pg)?,
        size_bytes: u64::try_from(size).map_err(pg)?,
    })
}

impl From<BlobError> for crate::http::error::ApiError {
    fn from(error: BlobError) -> Self {
        Self::internal(error)
    }
}

/// The attachments of a message about to be posted in `chat`: at most
/// `ATTACHMENTS_PER_MESSAGE_MAX` ids (checked before any lookup; chat-core checks it again), each
/// an upload of this very chat. One rule for the visitor's and the agent's messages.
pub async fn message_attachments(
    blobs: &dyn BlobStore,
    chat: ChatId,
    ids: &[Uuid],
) -> crate::http::error::ApiResult<Vec<chat_core::AttachmentMeta>> {
    use chat_core::conversation::{ATTACHMENTS_PER_MESSAGE_MAX, Rejection};
    if ids.len() > ATTACHMENTS_PER_MESSAGE_MAX {
        return Err(Rejection::LimitExceeded {
            limit: "attachments_per_message_max",
            max: ATTACHMENTS_PER_MESSAGE_MAX as u64,
            actual: ids.len() as u64,
        }
        .into());
    }
    let mut attachments = Vec::with_capacity(ids.len());
    for id in ids {
        let meta = blobs
            .meta(*id)
            .await?
            .filter(|meta| meta.chat == chat)
            .ok_or_else(|| {
                crate::http::error::ApiError::invalid(
                    "attachments",
                    format!("{id} is not an upload of this chat"),
                )
            })?;
        attachments.push(chat_core::AttachmentMeta {
            file_name: meta.file_name,
            content_type: meta.content_type,
            size_bytes: meta.size_bytes,
            storage_key: id.to_string(),
        });
    }
    Ok(attachments)
}
