//! The one log follower every reader uses: projections, the routing host, timers, the outbox
//! and live fan-out all read the log through [`Follower`].
//!
//! Contract: starting after a position, hand every event of the global log to the caller exactly
//! once, in position order, decoded by the shared [`Codec`] — no gaps, no duplicates. The
//! follower reads `read_all` in pages of at most [`READ_COUNT_MAX`] and, when it has caught up,
//! waits for the store's `subscribe()` wake-up (or, as a safety net for wake-ups another process
//! sends through a database, at most [`FOLLOW_POLL_INTERVAL_MS`]). A wake-up only says "something
//! new": a missed one loses nothing because the follower always reads from its own position.
//! It checks every position it receives and fails with [`EngineError::Gap`] rather than skip.
//! Events of reserved streams (`$…`, e.g. projection checkpoints) are skipped: they are the
//! engine's bookkeeping, not facts of the domain.

use crate::engine::codec::{Codec, DomainEvent, RESERVED_STREAM_PREFIX};
use crate::engine::error::EngineError;
use crate::engine::shutdown::Shutdown;
use chat_store::{EventStore, GlobalPosition, READ_COUNT_MAX, RecordedEvent};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Longest wait for a wake-up before the follower polls the store anyway. Wake-ups are reliable
/// within one process; across processes (PostgreSQL `LISTEN`) a lost connection can drop one.
pub const FOLLOW_POLL_INTERVAL_MS: u64 = 500;

/// Events per page the follower asks for (at most the store's [`READ_COUNT_MAX`]).
pub const FOLLOW_PAGE_EVENTS_MAX: usize = 1000;

const _: () = assert!(FOLLOW_PAGE_EVENTS_MAX <= READ_COUNT_MAX);

/// One followed event: its envelope (position, stream, version, ids, payload) and its decoding.
#[derive(Clone, Debug)]
pub struct Followed {
    /// The full envelope as stored.
    pub recorded: RecordedEvent,
    /// The decoded event ([`DomainEvent::Other`] for streams the codec does not know).
    pub event: DomainEvent,
}

impl Followed {
    /// The event's global position.
    pub fn position(&self) -> GlobalPosition {
        self.recorded.global_position
    }
}

/// Reads the global log from a position onwards; see the module docs for the contract.
pub struct Follower {
    store: Arc<dyn EventStore>,
    codec: Arc<Codec>,
    /// The last position handed out (0 before the first event).
    position: GlobalPosition,
    wake: watch::Receiver<GlobalPosition>,
    shutdown: Shutdown,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

impl Follower {
    /// A follower that hands out the events after `after` (0: from the first event).
    pub fn new(
        store: Arc<dyn EventStore>,
        codec: Arc<Codec>,
        after: GlobalPosition,
        shutdown: Shutdown,
    ) -> Self {
        let wake = store.subscribe();
        Self {
            store,
            codec,
            position: after,
            wake,
            shutdown,
        }
    }

    /// The last position handed out.
    pub fn position(&self) -> GlobalPosition {
        self.position
    }

    /// The next page of events, waiting until there is at least one. `None` once shutdown is
    /// signalled. Reserved streams' events are skipped but counted, so a page may be shorter
    /// than what was read, and the position still advances past them.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Followed>>, EngineError> {
        loop {
            if self.shutdown.is_triggered() {
                return Ok(None);
            }
            // Mark the current wake-up as seen *before* reading, so a commit after the read
            // still wakes us.
            self.wake.borrow_and_update();
            let (page, read_any) = self.read().await?;
            if !page.is_empty() {
                return Ok(Some(page));
            }
            if read_any {
                // Only reserved events: read on without waiting.
                continue;
            }
            tokio::select! {
                _ = self.wake.changed() => {}
                () = self.shutdown.wait() => return Ok(None),
                () = tokio::time::sleep(Duration::from_millis(FOLLOW_POLL_INTERVAL_MS)) => {}
            }
        }
    }

    /// Reads what is there now, without waiting: an empty page means "caught up".
    pub async fn read_page(&mut self) -> Result<Vec<Followed>, EngineError> {
        loop {
            let (page, read_any) = self.read().await?;
            if !page.is_empty() || !read_any {
                return Ok(page);
            }
        }
    }

    /// One `read_all`: the decoded page and whether anything (reserved events included) was read.
    async fn read(&mut self) -> Result<(Vec<Followed>, bool), EngineError> {
        let records = self
            .store
            .read_all(self.position + 1, FOLLOW_PAGE_EVENTS_MAX)
            .await?;
        let read_any = !records.is_empty();
        let mut page = Vec::with_capacity(records.len());
        for recorded in records {
            let expected = self.position + 1;
            if recorded.global_position != expected {
                return Err(EngineError::Gap {
                    expected,
                    found: recorded.global_position,
                });
            }
            self.position = expected;
            if recorded
                .stream_id
                .as_str()
                .starts_with(RESERVED_STREAM_PREFIX)
            {
                continue;
            }
            let event = self.codec.decode(&recorded)?;
            page.push(Followed { recorded, event });
        }
        Ok((page, read_any))
    }

    /// Hands every event to `sink` until shutdown (`Ok`) or an error (the sink's or the log's).
    pub async fn run<F>(mut self, mut sink: F) -> Result<(), EngineError>
    where
        F: FnMut(&Followed) -> Result<(), EngineError>,
    {
        while let Some(page) = self.next_page().await? {
            for followed in &page {
                sink(followed)?;
            }
        }
        Ok(())
    }
}
