//! One shutdown signal for every background task of an engine.
//!
//! A `watch` channel rather than a cancellation token: tokio alone provides it, a late
//! subscriber still sees a signal sent before it subscribed, and waiting on it is cancel-safe
//! inside `select!`.

use tokio::sync::watch;

/// Sends the shutdown signal (held by the engine).
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// Receives the shutdown signal; clone it into every task.
#[derive(Clone, Debug)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

impl ShutdownTrigger {
    /// A new, untriggered signal and its first receiver.
    pub fn new() -> (Self, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (Self { tx }, Shutdown { rx })
    }

    /// Signals every receiver; idempotent.
    pub fn trigger(&self) {
        self.tx.send_replace(true);
    }

    /// Another receiver.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    /// Whether shutdown was signalled.
    pub fn is_triggered(&self) -> bool {
        *self.rx.borrow()
    }

    /// Resolves once shutdown is signalled (at once if it already was).
    pub async fn wait(&mut self) {
        // An error means the trigger was dropped: the engine is gone, which is a shutdown too.
        let _ = self.rx.wait_for(|triggered| *triggered).await;
    }
}
