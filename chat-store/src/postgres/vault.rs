//! The PostgreSQL store's key vault: the `keys` table of the store's schema (migration 0002).
//!
//! A shred deletes rows and then runs `VACUUM keys`: a deleted row stays in its page as a dead
//! tuple until vacuumed, readable by anyone with the data files. Plain `VACUUM` (not `FULL`)
//! frees the tuples without locking out appenders; what it cannot reach (WAL segments not yet
//! recycled, base backups, archived WAL) is stated in docs/AUDIT.md.

use super::{backend, checkout};
use crate::error::StoreError;
use crate::vault::{KeyVault, SecretKey, check_keys_count, new_secret};
use async_trait::async_trait;
use deadpool_postgres::Pool;
use std::collections::BTreeMap;
use uuid::Uuid;

/// The [`KeyVault`] of a [`crate::PostgresStore`] (see [`crate::EventStore::key_vault`]).
#[derive(Clone)]
pub struct PostgresKeyVault {
    pub(super) pool: Pool,
}

impl std::fmt::Debug for PostgresKeyVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresKeyVault").finish_non_exhaustive()
    }
}

fn to_key(id: Uuid, secret: &[u8]) -> Result<(Uuid, SecretKey), StoreError> {
    let key = SecretKey::try_from(secret).map_err(|_| StoreError::Corrupt {
        position: 0,
        reason: format!("key {id} in the vault has {} bytes", secret.len()),
    })?;
    Ok((id, key))
}

impl PostgresKeyVault {
    async fn vacuum(&self) -> Result<(), StoreError> {
        let client = checkout(&self.pool).await?;
        client.batch_execute("VACUUM keys").await.map_err(backend)
    }
}

#[async_trait]
impl KeyVault for PostgresKeyVault {
    async fn keys(&self, key_ids: &[Uuid]) -> Result<BTreeMap<Uuid, SecretKey>, StoreError> {
        check_keys_count(key_ids.len())?;
        if key_ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let client = checkout(&self.pool).await?;
        let sql = client
            .prepare_cached("SELECT key_id, secret FROM keys WHERE key_id = ANY($1)")
            .await
            .map_err(backend)?;
        let rows = client.query(&sql, &[&key_ids]).await.map_err(backend)?;
        rows.iter()
            .map(|row| {
                let id: Uuid = row.try_get(0).map_err(backend)?;
                let secret: Vec<u8> = row.try_get(1).map_err(backend)?;
                to_key(id, &secret)
            })
            .collect()
    }

    async fn get_or_create(
        &self,
        requests: &[(Uuid, Option<Uuid>)],
    ) -> Result<BTreeMap<Uuid, SecretKey>, StoreError> {
        check_keys_count(requests.len())?;
        if requests.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut ids = Vec::with_capacity(requests.len());
        let mut owners = Vec::with_capacity(requests.len());
        let mut secrets = Vec::with_capacity(requests.len());
        for (id, owner) in requests {
            ids.push(*id);
            owners.push(*owner);
            secrets.push(new_secret()?.to_vec());
        }
        let client = checkout(&self.pool).await?;
        // An existing key wins (another process may have created it first); the insert and the
        // read are one statement, committed before the caller appends what the key seals.
        let sql = client
            .prepare_cached(
                "WITH inserted AS (
                     INSERT INTO keys (key_id, owner, secret)
                     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::bytea[])
                     ON CONFLICT (key_id) DO NOTHING
                     RETURNING key_id, secret
                 )
                 SELECT key_id, secret FROM inserted
                 UNION ALL
                 SELECT key_id, secret FROM keys WHERE key_id = ANY($1)",
            )
            .await
            .map_err(backend)?;
        let rows = client
            .query(&sql, &[&ids, &owners, &secrets])
            .await
            .map_err(backend)?;
        let mut found = BTreeMap::new();
        for row in &rows {
            let id: Uuid = row.try_get(0).map_err(backend)?;
            let secret: Vec<u8> = row.try_get(1).map_err(backend)?;
            let (id, key) = to_key(id, &secret)?;
            found.insert(id, key);
        }
        if let Some((id, _)) = requests.iter().find(|(id, _)| !found.contains_key(id)) {
            return Err(StoreError::Backend(format!(
                "key {id} was neither created nor found"
            )));
        }
        Ok(found)
    }

    async fn shred(&self, key_ids: &[Uuid]) -> Result<u64, StoreError> {
        check_keys_count(key_ids.len())?;
        if key_ids.is_empty() {
            return Ok(0);
        }
        let deleted = {
            let client = checkout(&self.pool).await?;
            client
                .execute("DELETE FROM keys WHERE key_id = ANY($1)", &[&key_ids])
                .await
                .map_err(backend)?
        };
        self.vacuum().await?;
        Ok(deleted)
    }

    async fn shred_owner(&self, owner: Uuid) -> Result<u64, StoreError> {
        let deleted = {
            let client = checkout(&self.pool).await?;
            client
                .execute("DELETE FROM keys WHERE owner = $1", &[&owner])
                .await
                .map_err(backend)?
        };
        self.vacuum().await?;
        Ok(deleted)
    }
}
