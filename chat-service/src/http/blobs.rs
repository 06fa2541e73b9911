//! Where attachment bytes live (A5, F1). The log records an attachment's metadata (name, type,
//! size, id) inside the message; the bytes are kept here, outside the log, so the log stays small
//! and replay stays fast. Blobs are written once and never changed (content is addressed by a
//! fresh id), so any backend that can put and get a file will do.
//!
//! Backends: [`MemoryBlobs`] (tests, `--store memory`), [`FsBlobs`] (a directory next to the sled
//! data, `--store sled:PATH`); the PostgreSQL deployment keeps them in a table so that every
//! process sees every upload.

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
}

impl From<BlobError> for crate::http::error::ApiError {
    fn from(error: BlobError) -> Self {
        Self::internal(error)
    }
}
