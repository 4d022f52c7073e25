//! The agent's local write-ahead log (WAL): batches accepted from producers and not
//! yet committed to the bucket and metadata, made durable on the agent's disk.
//!
//! # Shape
//!
//! - [`Wal::append`] hands a payload to the writer thread and resolves, with the
//!   record's sequence number, once the record is fsynced. The writer drains every
//!   append waiting at that moment into one `write` and one `fdatasync`
//!   (group commit), so many producers share one sync.
//! - [`Wal::truncate`] declares records up to a sequence number committed; whole
//!   files below it are deleted and their bytes released. The truncation point is
//!   persisted, so recovery never returns records already committed.
//! - The bytes not yet truncated are bounded ([`WalOptions::max_bytes`]): an append
//!   waits for space, which is the agent's backpressure.
//! - [`Wal::open`] recovers: it returns every intact record after the truncation
//!   point, in order, and cuts the log at the first torn or corrupted record (a
//!   crash mid-write), deleting whatever follows it. What was acknowledged was
//!   synced before the acknowledgement, so it lies before any torn tail.
//!
//! # On-disk format (version 1)
//!
//! Files `wal-<first sequence, 20 digits>.log`, each starting with the 8-byte magic
//! `FJWAL\0\0\x01`, then records:
//!
//! ```text
//! payload length: u32 LE | crc32c(sequence LE ++ payload): u32 LE | sequence: u64 LE | payload
//! ```
//!
//! Sequence numbers start at 1 and increase by one across files. The truncation
//! point lives in `truncated` (a u64 LE and its crc32c), replaced atomically by
//! rename.

mod file;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::error::ErrorKind;

/// The largest record payload accepted.
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// WAL settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalOptions {
    /// Bytes of untruncated records at most; appends beyond wait (backpressure).
    pub max_bytes: u64,
    /// A file is closed and a new one started once it holds this many bytes.
    pub file_bytes: u64,
    /// One group commit writes at most this many bytes before syncing.
    pub max_group_bytes: usize,
}

impl Default for WalOptions {
    fn default() -> Self {
        Self {
            max_bytes: 512 * 1024 * 1024,
            file_bytes: 64 * 1024 * 1024,
            max_group_bytes: 8 * 1024 * 1024,
        }
    }
}

/// A record returned by recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalRecord {
    /// Its sequence number.
    pub sequence: u64,
    /// What was appended.
    pub payload: Bytes,
}

/// What recovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovery {
    /// Intact records after the truncation point, in order.
    pub records: Vec<WalRecord>,
    /// Bytes cut from a torn or corrupted tail (0 after a clean shutdown).
    pub cut_bytes: u64,
    /// Files deleted because they followed the cut.
    pub dropped_files: usize,
    /// The sequence number the next append gets.
    pub next_sequence: u64,
}

/// Counters for metrics and benchmarks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WalStats {
    /// Records appended since open.
    pub records: u64,
    /// Group commits (fsyncs) since open.
    pub syncs: u64,
    /// Bytes written since open.
    pub bytes_written: u64,
    /// How long each group commit's `fdatasync` took (the sync alone, not the
    /// write before it nor the wait in the queue, which an append's latency adds).
    pub sync_latency: SyncLatency,
}

/// Sub-buckets per power of two in [`SyncLatency`]: quantiles are upper bounds
/// within 1/16 (6.25 %) of the true value.
const SYNC_SUB_BUCKETS: u64 = 16;
/// Powers of two covered above the first `SYNC_SUB_BUCKETS` nanoseconds (up to
/// 2^40 ns, about 18 minutes; longer syncs land in the last bucket).
const SYNC_OCTAVES: u64 = 36;
const SYNC_BUCKETS: usize = ((SYNC_OCTAVES + 1) * SYNC_SUB_BUCKETS) as usize;

/// A histogram of fsync durations, log-linear (16 buckets per power of two of
/// nanoseconds), so p50/p99 are accurate to a few percent in bounded memory.
#[derive(Clone, PartialEq, Eq)]
pub struct SyncLatency {
    buckets: Vec<u64>,
    total: Duration,
    max: Duration,
}

impl Default for SyncLatency {
    fn default() -> Self {
        Self {
            buckets: vec![0; SYNC_BUCKETS],
            total: Duration::ZERO,
            max: Duration::ZERO,
        }
    }
}

impl SyncLatency {
    /// The bucket holding `nanos`: exact below 16 ns, then 16 per power of two.
    fn bucket(nanos: u64) -> usize {
        if nanos < SYNC_SUB_BUCKETS {
            return nanos as usize;
        }
        // nanos >= 16, so its highest set bit is at least 4.
        let octave = u64::from(u64::BITS - 1 - nanos.leading_zeros());
        let shift = octave - SYNC_SUB_BUCKETS.trailing_zeros() as u64;
        let sub = (nanos >> shift) - SYNC_SUB_BUCKETS;
        let index = (shift + 1) * SYNC_SUB_BUCKETS + sub;
        (index as usize).min(SYNC_BUCKETS - 1)
    }

    /// The largest value bucket `index` holds.
    fn upper_bound(index: usize) -> Duration {
        let index = index as u64;
        if index < SYNC_SUB_BUCKETS {
            return Duration::from_nanos(index);
        }
        let shift = index / SYNC_SUB_BUCKETS - 1;
        let sub = index % SYNC_SUB_BUCKETS + SYNC_SUB_BUCKETS;
        Duration::from_nanos(((sub + 1) << shift) - 1)
    }

    pub(crate) fn record(&mut self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        if let Some(bucket) = self.buckets.get_mut(Self::bucket(nanos)) {
            *bucket += 1;
        }
        self.total = self.total.saturating_add(latency);
        self.max = self.max.max(latency);
    }

    /// Syncs recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// The summed duration of every sync.
    pub fn total(&self) -> Duration {
        self.total
    }

    /// The longest sync.
    pub fn max(&self) -> Duration {
        self.max
    }

    /// An upper bound (within 6.25 %, and never above [`max`](Self::max)) of the
    /// `quantile` (0.0–1.0) sync duration, or `None` before the first sync.
    pub fn quantile(&self, quantile: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        // 1-based rank of the sample; float to int saturates in Rust.
        let rank = ((quantile.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket;
            if seen >= rank {
                // The last bucket is open-ended: only the maximum bounds it.
                if index == SYNC_BUCKETS - 1 {
                    return Some(self.max);
                }
                return Some(Self::upper_bound(index).min(self.max));
            }
        }
        Some(self.max)
    }
}

impl std::fmt::Debug for SyncLatency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncLatency")
            .field("count", &self.count())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .field("max", &self.max)
            .finish()
    }
}

/// A WAL error.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// Reading, writing or syncing the log failed.
    #[error("wal i/o error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A payload larger than [`MAX_RECORD_BYTES`] or than the whole budget.
    #[error("wal record of {len} bytes exceeds the limit of {limit}")]
    RecordTooLarge {
        /// Its size.
        len: usize,
        /// The limit.
        limit: u64,
    },
    /// An earlier write or sync failed; the log accepts nothing more until it is
    /// reopened (which recovers the intact prefix).
    #[error("wal failed earlier and is closed: {reason}")]
    Failed {
        /// The first failure.
        reason: String,
    },
    /// The WAL was closed.
    #[error("wal is closed")]
    Closed,
}

impl WalError {
    /// What the caller should do.
    pub fn kind(&self) -> ErrorKind {
        match self {
            WalError::Io { .. } | WalError::Failed { .. } | WalError::Closed => ErrorKind::Internal,
            WalError::RecordTooLarge { .. } => ErrorKind::Invalid,
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        WalError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

pub(crate) enum Request {
    Append {
        /// Given at enqueue, in queue order.
        sequence: u64,
        payload: Bytes,
        done: oneshot::Sender<Result<u64, WalError>>,
    },
    Truncate {
        through: u64,
        done: oneshot::Sender<Result<u64, WalError>>,
    },
    Stats {
        done: oneshot::Sender<WalStats>,
    },
    /// Blocks the writer until `resume` yields or is dropped (tests: queue many
    /// appends while the writer cannot drain them).
    #[cfg(test)]
    Pause {
        resume: std::sync::mpsc::Receiver<()>,
    },
    /// Makes the next group commit fail as an I/O error at `at` would.
    #[cfg(test)]
    FailNext {
        at: FailPoint,
    },
}

/// Where an injected failure hits a group commit (tests).
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FailPoint {
    /// The write fails; nothing of the group reaches the file.
    Write,
    /// The write succeeds and the sync fails: the group's bytes may or may not
    /// be on disk.
    Sync,
}

/// A write-ahead log in one directory. Dropping it stops the writer after the
/// queued requests.
#[derive(Debug)]
pub struct Wal {
    /// Unbounded: what it holds is bounded by the byte budget every append
    /// reserves first (and a record costs at least its header).
    requests: mpsc::UnboundedSender<Request>,
    /// The sequence number the next queued record gets; held while a record is
    /// numbered and queued, so numbers follow queue order.
    next_sequence: std::sync::Mutex<u64>,
    budget: Arc<Semaphore>,
    max_bytes: u64,
    writer: Option<std::thread::JoinHandle<()>>,
}

/// A queued append: resolves with the record's sequence number once it is on disk.
#[derive(Debug)]
pub struct AppendTicket {
    reply: oneshot::Receiver<Result<u64, WalError>>,
}

impl std::future::Future for AppendTicket {
    type Output = Result<u64, WalError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.reply)
            .poll(cx)
            .map(|reply| reply.map_err(|_| WalError::Closed).and_then(|r| r))
    }
}

/// Room reserved in the log for one record ([`Wal::reserve`]).
#[derive(Debug)]
pub struct WalReservation<'a> {
    wal: &'a Wal,
    permit: tokio::sync::SemaphorePermit<'a>,
    payload_len: usize,
}

impl WalReservation<'_> {
    /// Numbers and queues `payload` (at most the reserved length) without
    /// waiting: returns its sequence number and a future that resolves once it
    /// is on disk. Records queued one after another get increasing numbers.
    pub fn enqueue(self, payload: Bytes) -> Result<(u64, AppendTicket), WalError> {
        if payload.len() > self.payload_len {
            return Err(WalError::RecordTooLarge {
                len: payload.len(),
                limit: self.payload_len as u64,
            });
        }
        // What the reservation holds beyond this record goes back now.
        let cost = record_cost(payload.len());
        let mut permit = self.permit;
        if let Some(extra) = permit.split(permit.num_permits() - permits(cost) as usize) {
            drop(extra);
        }
        let (done, reply) = oneshot::channel();
        let mut next = self
            .wal
            .next_sequence
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let sequence = *next;
        self.wal
            .requests
            .send(Request::Append {
                sequence,
                payload,
                done,
            })
            .map_err(|_| WalError::Closed)?;
        *next += 1;
        // The writer returns these bytes to the budget when the record's file is
        // deleted by a truncation.
        permit.forget();
        Ok((sequence, AppendTicket { reply }))
    }
}

/// Bytes a payload occupies on disk, which is what the budget counts.
fn record_cost(payload_len: usize) -> u64 {
    (file::RECORD_HEADER_LEN + payload_len) as u64
}

fn permits(bytes: u64) -> u32 {
    u32::try_from(bytes).unwrap_or(u32::MAX)
}

impl Wal {
    /// Opens (creating if needed) the WAL in `dir`, recovering what it holds. A
    /// blocking call: run it at startup or on the blocking pool.
    pub fn open(dir: &Path, options: WalOptions) -> Result<(Wal, Recovery), WalError> {
        let (writer, recovery) = file::Writer::recover(dir, options)?;
        let live = writer.live_bytes();
        let budget = Arc::new(Semaphore::new(
            usize::try_from(options.max_bytes.saturating_sub(live)).unwrap_or(usize::MAX),
        ));
        let (requests, queue) = mpsc::unbounded_channel();
        let next_sequence = std::sync::Mutex::new(recovery.next_sequence);
        let thread_budget = budget.clone();
        let writer = std::thread::Builder::new()
            .name("fjord-wal".into())
            .spawn(move || writer.run(queue, thread_budget))
            .map_err(|e| WalError::io(dir, e))?;
        Ok((
            Wal {
                requests,
                next_sequence,
                budget,
                max_bytes: options.max_bytes,
                writer: Some(writer),
            },
            recovery,
        ))
    }

    /// Appends `payload` and resolves with its sequence number once it is on disk.
    /// Waits while the log is full. Cancel-safe: a cancelled append either was
    /// never queued or is written and later truncated like any other.
    pub async fn append(&self, payload: Bytes) -> Result<u64, WalError> {
        self.enqueue(payload).await?.await
    }

    /// Queues `payload` (waiting while the log is full) and returns once it is
    /// queued, with a future that resolves when it is on disk. Records are written
    /// in the order they are queued, and sequence numbers follow that order.
    pub async fn enqueue(&self, payload: Bytes) -> Result<AppendTicket, WalError> {
        let reservation = self.reserve(payload.len()).await?;
        reservation.enqueue(payload).map(|(_, ticket)| ticket)
    }

    /// Reserves room for a record of up to `payload_len` bytes, waiting while the
    /// log is full. Queuing the record is then synchronous
    /// ([`WalReservation::enqueue`]), so a caller can number and queue it under
    /// its own lock without holding that lock across the wait for room.
    /// Dropping the reservation gives the room back.
    pub async fn reserve(&self, payload_len: usize) -> Result<WalReservation<'_>, WalError> {
        let cost = record_cost(payload_len);
        if payload_len > MAX_RECORD_BYTES || cost > self.max_bytes {
            return Err(WalError::RecordTooLarge {
                len: payload_len,
                limit: self.max_bytes.min(MAX_RECORD_BYTES as u64),
            });
        }
        let permit = self
            .budget
            .acquire_many(permits(cost))
            .await
            .map_err(|_| WalError::Closed)?;
        Ok(WalReservation {
            wal: self,
            permit,
            payload_len,
        })
    }

    /// Declares every record up to and including `through` committed elsewhere:
    /// recovery will not return them, and files holding only such records are
    /// deleted. Returns the bytes released.
    pub async fn truncate(&self, through: u64) -> Result<u64, WalError> {
        let (done, reply) = oneshot::channel();
        self.requests
            .send(Request::Truncate { through, done })
            .map_err(|_| WalError::Closed)?;
        reply.await.map_err(|_| WalError::Closed)?
    }

    /// Counters since open.
    pub async fn stats(&self) -> Result<WalStats, WalError> {
        let (done, reply) = oneshot::channel();
        self.requests
            .send(Request::Stats { done })
            .map_err(|_| WalError::Closed)?;
        reply.await.map_err(|_| WalError::Closed)
    }

    /// Stops the writer until the returned sender sends or is dropped; requests
    /// queued meanwhile wait, and are then drained together.
    #[cfg(test)]
    pub(crate) async fn pause_writer(&self) -> std::sync::mpsc::Sender<()> {
        let (resume_tx, resume) = std::sync::mpsc::channel();
        self.requests
            .send(Request::Pause { resume })
            .expect("writer running");
        resume_tx
    }

    /// Makes the next group commit fail at `at`.
    #[cfg(test)]
    pub(crate) async fn fail_next(&self, at: FailPoint) {
        self.requests
            .send(Request::FailNext { at })
            .expect("writer running");
    }

    /// Bytes appends may still take before they wait.
    pub fn available_bytes(&self) -> u64 {
        self.budget.available_permits() as u64
    }

    /// Stops the writer after what is queued and waits for it.
    pub fn close(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.budget.close();
        // Replacing the sender drops ours; the writer drains the queue and exits.
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.requests, closed));
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests;
