//! The public conformance suite against PostgreSQL (E1, E2, E3): the same checks the in-memory and
//! sled stores pass, over a real connection to the database named by `CHAT_TEST_POSTGRES_URL`.
//!
//! Without that variable every check prints why and passes as skipped, except with `CI=true`,
//! where a missing URL or an unreachable server fails.

use chat_store::conformance::{StoreFactory, ci};
use chat_store::{PostgresConfig, PostgresStore, PostgresTestDatabase};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::OnceCell;

/// Opens every store in its own fresh schema of the test database, and drops those schemas when
/// the check is over (the suite drops the factory at the end of each check).
struct PgFactory {
    database: PostgresTestDatabase,
    schemas: Mutex<Vec<String>>,
}

impl PgFactory {
    fn from_env() -> Option<Self> {
        PostgresTestDatabase::from_env().map(|database| Self {
            database,
            schemas: Mutex::new(Vec::new()),
        })
    }
}

impl Drop for PgFactory {
    fn drop(&mut self) {
        let schemas = std::mem::take(&mut *self.schemas.lock().expect("schemas"));
        let database = self.database.clone();
        // The suite may drop the factory inside its runtime, where no runtime can block: the
        // clean-up gets a thread and a runtime of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("clean-up runtime");
            runtime.block_on(async {
                for schema in schemas {
                    database
                        .drop_schema(&schema)
                        .await
                        .expect("drop test schema");
                }
            });
        });
        let joined = cleanup.join();
        if !std::thread::panicking() {
            joined.expect("test schemas dropped");
        }
    }
}

/// Runs once per test process: drops the schemas that runs older than an hour left behind.
static PRUNED: OnceCell<()> = OnceCell::const_new();

#[async_trait::async_trait]
impl StoreFactory for PgFactory {
    type Store = PostgresStore;

    async fn open(&self) -> PostgresStore {
        PRUNED
            .get_or_init(|| async {
                self.database
                    .prune_stale_schemas(Duration::from_secs(3600))
                    .await
                    .expect("pruning stale test schemas");
            })
            .await;
        let config = self.database.fresh_config().pool_size(4);
        self.schemas
            .lock()
            .expect("schemas")
            .push(config.schema_name().to_owned());
        PostgresStore::open(config)
            .await
            .expect("opening a PostgreSQL store (is the server at CHAT_TEST_POSTGRES_URL up?)")
    }

    /// A process restart: the old store and its pool go away, a new one opens the same schema.
    async fn reopen(&self, old: PostgresStore) -> PostgresStore {
        let schema = old.schema().to_owned();
        drop(old);
        let config = PostgresConfig::new(self.database.url())
            .schema(schema)
            .pool_size(4);
        PostgresStore::open(config)
            .await
            .expect("reopening a PostgreSQL store")
    }

    fn persistent(&self) -> bool {
        true
    }

    /// Every random case creates a fresh schema (tables, indexes and a flushed commit: ~50–100 ms
    /// on the 2-core CI machine) and flushes every append, so PostgreSQL runs far fewer cases than
    /// the in-memory store; the PostgreSQL-specific risks have their own tests (tests/postgres.rs).
    fn model_cases(&self) -> u32 {
        if ci() { 150 } else { 48 }
    }
}

chat_store::conformance_tests!(match PgFactory::from_env() {
    Some(factory) => factory,
    None => return,
});
