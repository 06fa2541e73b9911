//! The key vault: the keys that seal content ([`crate::seal`]), kept **outside** the append-only
//! log, so that destroying a key erases what it sealed (crypto-shredding, X4) while the log,
//! and its hash chain, stay untouched.
//!
//! Every store offers a vault beside its log ([`crate::EventStore::key_vault`]): the memory store
//! a map, the sled store a tree of the same database (flushed after every change), the PostgreSQL
//! store a `keys` table (vacuumed after every shred). Keys are 32 random bytes from the operating
//! system. A key belongs to an optional *owner* (a chat, a contact, a projection's checkpoints),
//! so that erasing everything of an owner is one call.

use crate::error::StoreError;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;
use uuid::Uuid;

/// A 256-bit secret key.
pub type SecretKey = [u8; 32];

/// Most key ids one vault call takes (an append's sealed values, a read page's keys).
pub const VAULT_KEYS_PER_CALL_MAX: usize = 10_000;

/// Where keys live; see the module documentation.
#[async_trait]
pub trait KeyVault: Send + Sync + 'static {
    /// The existing keys among `key_ids` (a shredded or never created key is absent).
    async fn keys(&self, key_ids: &[Uuid]) -> Result<BTreeMap<Uuid, SecretKey>, StoreError>;

    /// The keys of `requests` (key id, owner), creating the missing ones from OS randomness.
    /// Durable before it returns (a sealed event must never outlive its key's creation). A key
    /// that exists is returned as it is, whatever owner is asked for.
    async fn get_or_create(
        &self,
        requests: &[(Uuid, Option<Uuid>)],
    ) -> Result<BTreeMap<Uuid, SecretKey>, StoreError>;

    /// Destroys the keys `key_ids` (durably; absent ones are skipped); returns how many existed.
    async fn shred(&self, key_ids: &[Uuid]) -> Result<u64, StoreError>;

    /// Destroys every key of `owner` (durably); returns how many existed.
    async fn shred_owner(&self, owner: Uuid) -> Result<u64, StoreError>;
}

/// Checks a call's size against [`VAULT_KEYS_PER_CALL_MAX`].
pub(crate) fn check_keys_count(count: usize) -> Result<(), StoreError> {
    if count > VAULT_KEYS_PER_CALL_MAX {
        return Err(StoreError::LimitExceeded {
            limit: "VAULT_KEYS_PER_CALL_MAX",
            max: VAULT_KEYS_PER_CALL_MAX,
            actual: count,
        });
    }
    Ok(())
}

/// A new key from the operating system's random source.
pub(crate) fn new_secret() -> Result<SecretKey, StoreError> {
    let mut key = [0u8; 32];
    getrandom::fill(&mut key)
        .map_err(|e| StoreError::Backend(format!("no OS randomness for a key: {e}")))?;
    Ok(key)
}

/// A vault in memory (with the memory store, for tests and embedding).
#[derive(Debug, Default)]
pub struct MemoryVault {
    keys: Mutex<BTreeMap<Uuid, (Option<Uuid>, SecretKey)>>,
}

impl MemoryVault {
    /// An empty vault.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Uuid, (Option<Uuid>, SecretKey)>> {
        // Every change is one insert or remove: a poisoned lock still guards a consistent map.
        self.keys.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl KeyVault for MemoryVault {
    async fn keys(&self, key_ids: &[Uuid]) -> Result<BTreeMap<Uuid, SecretKey>, StoreError> {
        check_keys_count(key_ids.len())?;
        let keys = self.lock();
        Ok(key_ids
            .iter()
            .filter_map(|id| keys.get(id).map(|(_, key)| (*id, *key)))
            .collect())
    }

    async fn get_or_create(
        &self,
        requests: &[(Uuid, Option<Uuid>)],
    ) -> Result<BTreeMap<Uuid, SecretKey>, StoreError> {
        check_keys_count(requests.len())?;
        let mut keys = self.lock();
        let mut found = BTreeMap::new();
        for (id, owner) in requests {
            let key = match keys.get(id) {
                Some((_, key)) => *key,
                None => {
                    let key = new_secret()?;
                    keys.insert(*id, (*owner, key));
                    key
                }
            };
            found.insert(*id, key);
        }
        Ok(found)
    }

    async fn shred(&self, key_ids: &[Uuid]) -> Result<u64, StoreError> {
        check_keys_count(key_ids.len())?;
        let mut keys = self.lock();
        Ok(key_ids
            .iter()
            .filter(|id| keys.remove(id).is_some())
            .count() as u64)
    }

    async fn shred_owner(&self, owner: Uuid) -> Result<u64, StoreError> {
        let mut keys = self.lock();
        let before = keys.len();
        keys.retain(|_, (o, _)| *o != Some(owner));
        Ok((before - keys.len()) as u64)
    }
}
