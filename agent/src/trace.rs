//! Timelines of the write path, for finding where a produce waits: debug
//! events under the targets `fjord::trace::produce` (one per answered
//! `Produce`: read, appended, committed, written back) and
//! `fjord::trace::flush` (one per flush: why it started, taken, built,
//! uploaded, committed), with times in microseconds since the first traced event of the
//! process, so the two line up.
//!
//! Off unless enabled (`RUST_LOG=warn,fjord::trace=debug`); then the cost is
//! a few clock reads per request and per flush. `bench/produce_trace.py`
//! summarises an agent's log: per connection, the window the client kept
//! (requests in flight at arrival), each stage's percentiles, and how much
//! of the time the agent waited for the client; per flush trigger, the
//! stages of the flushes.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

/// Whether the per-produce trace is on.
pub(crate) fn produce_enabled() -> bool {
    tracing::enabled!(target: "fjord::trace::produce", tracing::Level::DEBUG)
}

/// Whether the per-flush trace is on.
pub(crate) fn flush_enabled() -> bool {
    tracing::enabled!(target: "fjord::trace::flush", tracing::Level::DEBUG)
}

/// A number for each connection, to tell them apart in the trace.
pub(crate) fn next_connection_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Microseconds from the first traced event of this process to `at`.
pub(crate) fn micros(at: Instant) -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let epoch = *EPOCH.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX)
}

/// One produce request's timeline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProduceTimeline {
    connection: u64,
    correlation_id: i32,
    bytes: usize,
    /// Requests of the connection in flight when this one was read.
    window: usize,
    read: Instant,
    pub(crate) appended: Instant,
    pub(crate) answered: Instant,
}

impl ProduceTimeline {
    /// A request of `connection` read now.
    pub(crate) fn new(connection: u64, correlation_id: i32, bytes: usize, window: usize) -> Self {
        let now = Instant::now();
        // The epoch is fixed no later than the first request's read time.
        micros(now);
        Self {
            connection,
            correlation_id,
            bytes,
            window,
            read: now,
            appended: now,
            answered: now,
        }
    }

    /// Emits the event, once the answer is written.
    pub(crate) fn emit(self, client_host: &str) {
        tracing::debug!(
            target: "fjord::trace::produce",
            client_host,
            connection = self.connection,
            correlation_id = self.correlation_id,
            bytes = self.bytes,
            window = self.window,
            read_us = micros(self.read),
            appended_us = micros(self.appended),
            answered_us = micros(self.answered),
            written_us = micros(Instant::now()),
            "produce"
        );
    }
}

/// Why a flush started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlushTrigger {
    Interval,
    /// `flush_bytes` pending, or asked for (a hand-off, a test).
    Asked,
    /// Requests wait and nothing arrived for `flush_idle`.
    Idle,
    /// Every connection waiting for a commit has its client's window full.
    WindowFull,
}

/// One flush's timeline.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FlushTimeline {
    pub(crate) trigger: FlushTrigger,
    pub(crate) partitions: usize,
    pub(crate) bytes: usize,
    /// Flushes in flight (uploading or waiting to commit) when it was taken.
    pub(crate) in_flight: usize,
    pub(crate) taken: Instant,
    /// When the object was built (none if the upload failed first).
    pub(crate) built: Option<Instant>,
    pub(crate) uploaded: Instant,
    pub(crate) commit_started: Instant,
}

impl FlushTimeline {
    /// Emits the event, once the flush is committed and answered.
    pub(crate) fn emit(self) {
        micros(self.taken);
        tracing::debug!(
            target: "fjord::trace::flush",
            trigger = ?self.trigger,
            partitions = self.partitions,
            bytes = self.bytes,
            in_flight = self.in_flight,
            taken_us = micros(self.taken),
            built_us = micros(self.built.unwrap_or(self.taken)),
            uploaded_us = micros(self.uploaded),
            commit_started_us = micros(self.commit_started),
            answered_us = micros(Instant::now()),
            "flush"
        );
    }
}
