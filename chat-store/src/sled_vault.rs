//! The sled store's key vault: two trees of the store's own database, apart from the log.
//!
//! - `keys`: key id (16 bytes) → owner (16 bytes, all zero for none) + secret (32 bytes);
//! - `key-owners`: owner (16 bytes) + key id (16 bytes) → nothing (erasure by owner).
//!
//! Every change is one atomic transaction over both trees followed by a `flush` (fsync), done on
//! a blocking thread. sled is log-structured: a removed key's bytes stay in its segment files
//! until sled rewrites the segment, which docs/AUDIT.md states as a limit.

use crate::error::StoreError;
use crate::vault::{KeyVault, SecretKey, check_keys_count, new_secret};
use async_trait::async_trait;
use sled::Transactional;
use std::collections::BTreeMap;
use uuid::Uuid;

const KEYS_TREE: &[u8] = b"keys";
const OWNERS_TREE: &[u8] = b"key-owners";

/// The [`KeyVault`] of a [`crate::SledStore`] (see [`crate::EventStore::key_vault`]). It holds a
/// handle on the database: drop it before reopening the directory.
#[derive(Clone, Debug)]
pub struct SledKeyVault {
    keys: sled::Tree,
    owners: sled::Tree,
    db: sled::Db,
}

fn backend(what: &str, error: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(format!("sled key vault: {what}: {error}"))
}

impl SledKeyVault {
    pub(crate) fn open(db: &sled::Db) -> Result<Self, StoreError> {
        Ok(Self {
            keys: db.open_tree(KEYS_TREE).map_err(|e| backend("open", e))?,
            owners: db.open_tree(OWNERS_TREE).map_err(|e| backend("open", e))?,
            db: db.clone(),
        })
    }

    fn read(&self, id: &Uuid) -> Result<Option<(Option<Uuid>, SecretKey)>, StoreError> {
        let Some(value) = self
            .keys
            .get(id.as_bytes())
            .map_err(|e| backend("read", e))?
        else {
            return Ok(None);
        };
        if value.len() != 48 {
            return Err(StoreError::Corrupt {
                position: 0,
                reason: format!("key {id} in the vault has {} bytes", value.len()),
            });
        }
        let owner = Uuid::from_slice(&value[..16]).expect("16 bytes");
        let owner = (!owner.is_nil()).then_some(owner);
        let mut key = [0u8; 32];
        key.copy_from_slice(&value[16..]);
        Ok(Some((owner, key)))
    }

    fn owner_key(owner: &Uuid, id: &Uuid) -> [u8; 32] {
        let mut key = [0u8; 32];
        key[..16].copy_from_slice(owner.as_bytes());
        key[16..].copy_from_slice(id.as_bytes());
        key
    }

    /// Removes `ids` (with their owner entries) in one transaction and flushes.
    fn remove(&self, ids: &[(Uuid, Option<Uuid>)]) -> Result<(), StoreError> {
        (&self.keys, &self.owners)
            .transaction(|(keys, owners)| {
                for (id, owner) in ids {
                    keys.remove(id.as_bytes())?;
                    if let Some(owner) = owner {
                        owners.remove(&Self::owner_key(owner, id)[..])?;
                    }
                }
                Ok(())
            })
            .map_err(|e: sled::transaction::TransactionError<()>| {
                backend("remove", format!("{e:?}"))
            })?;
        self.db.flush().map_err(|e| backend("flush", e))?;
        Ok(())
    }

    fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Self) -> Result<T, StoreError> + Send + 'static,
    ) -> impl Future<Output = Result<T, StoreError>> {
        let vault = self.clone();
        async move {
            tokio::task::spawn_blocking(move || work(&vault))
                .await
                .map_err(|e| backend("blocking task", e))?
        }
    }
}

#[async_trait]
impl KeyVault for SledKeyVault {
    async fn keys(&self, key_ids: &[Uuid]) -> Result<BTreeMap<Uuid, SecretKey>, StoreError> {
        check_keys_count(key_ids.len())?;
        let mut found = BTreeMap::new();
        for id in key_ids {
            if let Some((_, key)) = self.read(id)? {
                found.insert(*id, key);
            }
        }
        Ok(found)
    }

    async fn get_or_create(
        &self,
        requests: &[(Uuid, Option<Uuid>)],
    ) -> Result<BTreeMap<Uuid, SecretKey>, StoreError> {
        check_keys_count(requests.len())?;
        let requests = requests.to_vec();
        self.blocking(move |vault| {
            let mut fresh = BTreeMap::new();
            for (id, owner) in &requests {
                fresh.insert(*id, (*owner, new_secret()?));
            }
            // Insert only absent ids, atomically over both trees; then read every key back.
            (&vault.keys, &vault.owners)
                .transaction(|(keys, owners)| {
                    for (id, (owner, key)) in &fresh {
                        if keys.get(id.as_bytes())?.is_some() {
                            continue;
                        }
                        let mut value = [0u8; 48];
                        value[..16].copy_from_slice(owner.unwrap_or_default().as_bytes());
                        value[16..].copy_from_slice(key);
                        keys.insert(id.as_bytes(), &value[..])?;
                        if let Some(owner) = owner {
                            owners.insert(&Self::owner_key(owner, id)[..], &[][..])?;
                        }
                    }
                    Ok(())
                })
                .map_err(|e: sled::transaction::TransactionError<()>| {
                    backend("create", format!("{e:?}"))
                })?;
            vault.db.flush().map_err(|e| backend("flush", e))?;
            let mut found = BTreeMap::new();
            for (id, _) in &requests {
                let (_, key) = vault
                    .read(id)?
                    .ok_or_else(|| backend("create", format!("key {id} vanished")))?;
                found.insert(*id, key);
            }
            Ok(found)
        })
        .await
    }

    async fn shred(&self, key_ids: &[Uuid]) -> Result<u64, StoreError> {
        check_keys_count(key_ids.len())?;
        let key_ids = key_ids.to_vec();
        self.blocking(move |vault| {
            let mut present = Vec::new();
            for id in &key_ids {
                if let Some((owner, _)) = vault.read(id)? {
                    present.push((*id, owner));
                }
            }
            vault.remove(&present)?;
            Ok(present.len() as u64)
        })
        .await
    }

    async fn shred_owner(&self, owner: Uuid) -> Result<u64, StoreError> {
        self.blocking(move |vault| {
            let mut present = Vec::new();
            for entry in vault.owners.scan_prefix(owner.as_bytes()) {
                let (key, _) = entry.map_err(|e| backend("scan", e))?;
                let id = Uuid::from_slice(&key[16..]).map_err(|e| backend("scan", e))?;
                present.push((id, Some(owner)));
            }
            vault.remove(&present)?;
            Ok(present.len() as u64)
        })
        .await
    }
}
