//! Where the engine's `now` comes from.
//!
//! chat-core never reads a clock; the engine does, in exactly one place: a [`Clock`]. Production
//! uses [`SystemClock`]; tests use [`ManualClock`] and move time forward by hand, so an unattended
//! timeout of ten minutes is tested without sleeping ten minutes, and a run is reproducible.

use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Mutex;
use tokio::sync::watch;

/// The engine's source of `now`. `changed` lets timers wake up when a manual clock jumps.
pub trait Clock: Send + Sync + 'static {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;
    /// A channel that changes whenever time jumps by other means than passing (a manual clock
    /// being advanced). The system clock never sends.
    fn jumps(&self) -> watch::Receiver<()>;
}

/// The operating system's clock.
#[derive(Debug)]
pub struct SystemClock {
    jumps: watch::Sender<()>,
}

impl Default for SystemClock {
    fn default() -> Self {
        Self {
            jumps: watch::Sender::new(()),
        }
    }
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn jumps(&self) -> watch::Receiver<()> {
        self.jumps.subscribe()
    }
}

/// A clock that only moves when told: for tests and simulations.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    jumps: watch::Sender<()>,
}

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
            jumps: watch::Sender::new(()),
        }
    }

    /// Moves the clock forward (a negative delta is refused: time never runs backwards here).
    pub fn advance(&self, delta: TimeDelta) {
        assert!(
            delta >= TimeDelta::zero(),
            "a manual clock only moves forward"
        );
        {
            let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
            *now += delta;
        }
        self.jumps.send_replace(());
    }

    /// Sets the clock to `instant` if it is later than now.
    pub fn set(&self, instant: DateTime<Utc>) {
        {
            let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
            if instant > *now {
                *now = instant;
            }
        }
        self.jumps.send_replace(());
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn jumps(&self) -> watch::Receiver<()> {
        self.jumps.subscribe()
    }
}
