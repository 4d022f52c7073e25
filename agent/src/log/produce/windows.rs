//! The clients' in-flight windows, as the flusher's "window full" trigger
//! sees them.
//!
//! A Kafka client keeps a bounded number of requests in flight per
//! connection. For an idempotent producer the bound is known: at most
//! [`IDEMPOTENT_WINDOW`] (Apache Kafka's producer refuses
//! `max.in.flight.requests.per.connection` above 5 with idempotence, and
//! librdkafka caps it there). Once every connection with produce requests
//! waiting for a commit has that many waiting, nothing more can arrive until
//! an answer leaves: waiting for the idle timer, the interval or more bytes
//! adds latency and nothing to the segment. The flusher then starts a flush
//! at once.
//!
//! Each connection holds a [`ClientWindow`]; each `acks=all` produce request
//! takes a [`WindowSlot`] once its batches are queued and drops it when its
//! answer is ready. A connection without a known bound (no idempotence, or
//! a client that keeps fewer than five in flight) is never full, so while
//! one waits the idle trigger decides. The counts are a hint for when to
//! flush: no correctness rests on them, and the races between connections
//! updating them at once only move a flush by one arrival.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// Requests an idempotent producer keeps in flight per connection, at most.
pub const IDEMPOTENT_WINDOW: usize = 5;

/// The agent's count of connections waiting and of those whose window is full.
#[derive(Debug, Default)]
pub(crate) struct ClientWindows {
    /// Connections with at least one produce request waiting for a commit.
    waiting: AtomicUsize,
    /// Of those, the ones that cannot send another request until answered.
    full: AtomicUsize,
    /// Notified when every waiting connection is full.
    all_full: Notify,
}

impl ClientWindows {
    /// Resolves once every connection waiting for a commit is full (a permit
    /// is kept if that happened while nobody was waiting here).
    pub(crate) async fn all_full(&self) {
        self.all_full.notified().await;
    }

    /// Connections waiting for a commit, and how many of them are full.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (
            self.waiting.load(Ordering::Acquire),
            self.full.load(Ordering::Acquire),
        )
    }

    /// Whether every connection waiting for a commit is full (and one is).
    pub(crate) fn are_all_full(&self) -> bool {
        let full = self.full.load(Ordering::Acquire);
        full > 0 && full >= self.waiting.load(Ordering::Acquire)
    }

    fn check(&self) {
        if self.are_all_full() {
            self.all_full.notify_one();
        }
    }
}

/// Counts of one connection's produce requests waiting for a commit.
#[derive(Debug, Default)]
struct Counts {
    waiting: usize,
    idempotent: usize,
}

/// One connection's window: its produce requests waiting for a commit.
#[derive(Debug)]
pub struct ClientWindow {
    windows: Arc<ClientWindows>,
    counts: std::sync::Mutex<Counts>,
}

impl ClientWindow {
    pub(crate) fn new(windows: Arc<ClientWindows>) -> Arc<Self> {
        Arc::new(Self {
            windows,
            counts: std::sync::Mutex::default(),
        })
    }

    /// Counts a produce request whose batches are queued and whose answer
    /// waits for their commit, until the returned slot is dropped.
    /// `idempotent`: every batch it carries has a producer id.
    pub fn wait(self: &Arc<Self>, idempotent: bool) -> WindowSlot {
        {
            let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            if counts.waiting == 0 {
                self.windows.waiting.fetch_add(1, Ordering::AcqRel);
            }
            counts.waiting += 1;
            if idempotent {
                counts.idempotent += 1;
                if counts.idempotent == IDEMPOTENT_WINDOW {
                    self.windows.full.fetch_add(1, Ordering::AcqRel);
                }
            }
        }
        self.windows.check();
        WindowSlot {
            window: self.clone(),
            idempotent,
        }
    }
}

/// A produce request counted in its connection's window (see [`ClientWindow::wait`]).
#[derive(Debug)]
pub struct WindowSlot {
    window: Arc<ClientWindow>,
    idempotent: bool,
}

impl Drop for WindowSlot {
    fn drop(&mut self) {
        let windows = &self.window.windows;
        let mut counts = self.window.counts.lock().unwrap_or_else(|e| e.into_inner());
        if self.idempotent {
            if counts.idempotent == IDEMPOTENT_WINDOW {
                windows.full.fetch_sub(1, Ordering::AcqRel);
            }
            counts.idempotent -= 1;
        }
        counts.waiting -= 1;
        if counts.waiting == 0 {
            windows.waiting.fetch_sub(1, Ordering::AcqRel);
        }
        drop(counts);
        // A connection that stopped waiting may leave only full ones.
        windows.check();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(windows: &ClientWindows) -> (usize, usize) {
        windows.counts()
    }

    async fn notified(windows: &ClientWindows) -> bool {
        tokio::time::timeout(std::time::Duration::from_millis(50), windows.all_full())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn full_only_when_every_waiting_connection_is() {
        let windows = Arc::new(ClientWindows::default());
        let idempotent = ClientWindow::new(windows.clone());
        let plain = ClientWindow::new(windows.clone());
        let mut slots: Vec<_> = (0..4).map(|_| idempotent.wait(true)).collect();
        assert_eq!(counts(&windows), (1, 0));
        assert!(!notified(&windows).await, "four of five is not full");
        let other = plain.wait(false);
        slots.push(idempotent.wait(true));
        assert_eq!(counts(&windows), (2, 1));
        assert!(
            !notified(&windows).await,
            "a connection without a known window still waits"
        );
        drop(other);
        assert!(notified(&windows).await, "the full one is all that waits");
        slots.pop();
        assert_eq!(counts(&windows), (1, 0));
        slots.clear();
        assert_eq!(counts(&windows), (0, 0));
        assert!(!notified(&windows).await);
    }

    #[tokio::test]
    async fn plain_requests_never_fill_a_window() {
        let windows = Arc::new(ClientWindows::default());
        let plain = ClientWindow::new(windows.clone());
        let slots: Vec<_> = (0..64).map(|_| plain.wait(false)).collect();
        assert_eq!(counts(&windows), (1, 0));
        assert!(!notified(&windows).await);
        drop(slots);
        assert_eq!(counts(&windows), (0, 0));
    }
}
