//! Embedded, versioned migrations, applied when a store opens.
//!
//! Several service processes may start at once against a fresh database, so the whole check-and-
//! apply runs in one transaction under a transaction-scoped advisory lock keyed by the schema:
//! the second process waits, then finds every migration recorded and applies nothing. A
//! database whose recorded history this build does not know (a newer build migrated it, or a
//! migration was renamed) is refused rather than guessed at.

use super::backend;
use crate::error::StoreError;
use std::collections::BTreeMap;

/// One schema change, in the order it must be applied.
struct Migration {
    /// Strictly increasing from 1, recorded in `schema_migrations`.
    version: i32,
    /// Recorded too, so a renumbered or replaced migration is noticed.
    name: &'static str,
    /// Plain SQL run with `search_path` set to the store's schema.
    sql: &'static str,
}

/// Every migration this build knows. Append only: a released migration is never edited.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "chain_and_keys",
        sql: include_str!("migrations/0002_chain_and_keys.sql"),
    },
];

/// Brings `schema` up to the newest migration.
pub(super) async fn migrate(
    client: &mut deadpool_postgres::Object,
    schema: &str,
) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(backend)?;
    tx.query_one(
        "SELECT pg_advisory_xact_lock(hashtext($1))",
        &[&format!("chat-store migrate {schema}")],
    )
    .await
    .map_err(backend)?;
    // `schema` passed `validate_schema`: a plain identifier that needs no quoting.
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         SET LOCAL search_path TO {schema};
         CREATE TABLE IF NOT EXISTS schema_migrations (
             version    integer     PRIMARY KEY,
             name       text        NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(backend)?;
    let applied: BTreeMap<i32, String> = tx
        .query("SELECT version, name FROM schema_migrations", &[])
        .await
        .map_err(backend)?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(backend)?;
    check_history(&applied)?;
    for migration in MIGRATIONS {
        if applied.contains_key(&migration.version) {
            continue;
        }
        tx.batch_execute(migration.sql).await.map_err(|e| {
            StoreError::Backend(format!(
                "migration {} ({}) failed: {}",
                migration.version,
                migration.name,
                backend(e)
            ))
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(backend)?;
        tracing::info!(
            schema,
            version = migration.version,
            name = migration.name,
            "applied migration"
        );
    }
    tx.commit().await.map_err(backend)
}

/// Every recorded migration must be one this build knows, under the same name.
fn check_history(applied: &BTreeMap<i32, String>) -> Result<(), StoreError> {
    for (version, name) in applied {
        match MIGRATIONS.iter().find(|m| m.version == *version) {
            Some(known) if known.name == name => {}
            Some(known) => {
                return Err(StoreError::Backend(format!(
                    "database migration {version} is {name:?}, this build calls it {:?}",
                    known.name
                )));
            }
            None => {
                return Err(StoreError::Backend(format!(
                    "database has migration {version} ({name:?}), newer than this build \
                     (which knows up to {})",
                    MIGRATIONS.len()
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e2_migrations_are_numbered_from_one_without_gaps() {
        for (index, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, index as i32 + 1, "{}", migration.name);
            assert!(!migration.sql.trim().is_empty());
        }
    }

    #[test]
    fn e2_an_unknown_or_renamed_migration_is_refused() {
        let known: BTreeMap<i32, String> = [(1, "init".to_owned())].into();
        assert!(check_history(&known).is_ok());
        let newer: BTreeMap<i32, String> = [(1, "init".to_owned()), (99, "x".to_owned())].into();
        assert!(
            matches!(check_history(&newer), Err(StoreError::Backend(m)) if m.contains("newer"))
        );
        let renamed: BTreeMap<i32, String> = [(1, "other".to_owned())].into();
        assert!(matches!(
            check_history(&renamed),
            Err(StoreError::Backend(_))
        ));
    }
}
