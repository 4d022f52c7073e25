//! The partition logs this agent leads: the write path (validate, check the
//! idempotent producer's sequence, assign offsets, append `acks=1` batches to
//! the WAL, batch
//! across partitions into one segment object, upload, commit, acknowledge) and
//! the read path (memory tail, index lookup, ranged GET, decode).
//!
//! # Parts
//!
//! | module | job |
//! |---|---|
//! | [`leadership`] | taking a partition (one acquisition per partition at a time, many partitions at once), handing it off, forgetting it |
//! | [`produce`] | append, the flusher, upload, commit and acknowledgement, the WAL record format and its truncation point, recovery from the WAL; its docs state the ordering invariants |
//! | [`fetch`] | reads of committed data, search by timestamp, long-poll wake-ups |
//! | [`state`] | what is held per partition, and the budget of unflushed bytes |
//! | [`error`] | [`LogError`] and its classes |
//!
//! [`PartitionLogs`] is the one handle the rest of the agent uses; each part
//! adds its methods to it.
//!
//! # What `acks` promise
//!
//! - `acks=all` (`-1`): answered once the batch is in a segment object in the
//!   bucket and committed in metadata. It survives the loss of every agent and
//!   every agent disk.
//!   Such a batch is not written to the WAL: a crash before its commit loses
//!   only what the producer was not told is written, and the producer sends
//!   it again.
//! - `acks=1`: answered once the batch is fsynced in this agent's WAL (or,
//!   when a batch before it in its partition is in no WAL and not committed
//!   yet, once it commits: the WAL brings back only a run contiguous from the
//!   high watermark). It
//!   survives a failed PUT or metadata commit (the batch is flushed again, at the
//!   same offsets, while this agent leads the partition) and a crash or
//!   `kill -9` of the agent process when its disk survives (recovery commits it
//!   at start-up). It is lost if the agent's disk is lost, or if the partition
//!   moves to another agent before the batch was committed (the agent was
//!   judged dead, or another agent fenced it) — as Kafka's `acks=1` is lost
//!   when a leader fails before its followers copied the batch.
//! - `acks=0`: not answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjord_common::{Clock, IdGenerator};
use fjord_metadata::{MetadataStore, TopicPartition};
use fjord_storage::ObjectKeys;
use fjord_storage::cache::{CachedReader, DiskRangeCache, MemoryTailCache};
use fjord_storage::wal::Wal;
use futures::future::BoxFuture;
use object_store::ObjectStore;
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;

use crate::cluster::{Placement, SoleAgent};
use crate::topics::TopicCache;

mod error;
pub mod fetch;
pub mod leadership;
pub mod produce;
mod state;

pub use error::{LogError, LogErrorKind};
pub use fetch::{ReadResult, TimestampHit, TimestampQuery};

use fetch::long_poll::CommitSignals;
use produce::wal_record::WalTracker;
use state::{Unflushed, Writers};

/// Write-path settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// Flush at least this often while anything is pending.
    pub flush_interval: Duration,
    /// Flush before the interval once requests wait for a commit, no flush
    /// is in flight, and no batch arrived for this long: waiting longer cannot
    /// add to the segment, since its producers wait for their answers. Zero:
    /// only the interval and `flush_bytes` start a flush.
    pub flush_idle: Duration,
    /// Flush as soon as this many bytes are pending.
    pub flush_bytes: usize,
    /// Appends wait while this many bytes are accepted and not yet flushed.
    pub max_pending_bytes: usize,
    /// The largest record batch accepted (`message.max.bytes`).
    pub max_batch_bytes: usize,
    /// Bytes of recently committed batches kept in memory for tailing readers.
    pub tail_cache_bytes: u64,
    /// Segments built and uploaded at once (a partition's commits stay in offset order).
    pub max_inflight_uploads: usize,
    /// The zstd level segment chunks are compressed at on the flush path.
    pub compression_level: i32,
    /// A read that misses the caches fetches the whole segment object (and
    /// caches every chunk of it on disk) when the object is at most this large;
    /// larger objects are read chunk by chunk. 0: always chunk by chunk.
    pub whole_object_read_bytes: u64,
    /// Idempotent producers idle for this long (by their batches' timestamps)
    /// are forgotten (`producer.id.expiration.ms`).
    pub producer_id_expiration: Duration,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(100),
            flush_idle: Duration::from_millis(1),
            // 8 MiB of records per segment object at full load: at most 128
            // PUTs per GiB written.
            flush_bytes: 8 * 1024 * 1024,
            max_pending_bytes: 64 * 1024 * 1024,
            // Kafka's default `message.max.bytes`.
            max_batch_bytes: 1_048_588,
            tail_cache_bytes: 64 * 1024 * 1024,
            max_inflight_uploads: 4,
            compression_level: fjord_storage::DEFAULT_ZSTD_LEVEL,
            whole_object_read_bytes: 32 * 1024 * 1024,
            // Kafka's default `producer.id.expiration.ms`: one day.
            producer_id_expiration: Duration::from_secs(24 * 60 * 60),
        }
    }
}

/// How much durability a producer waits for (Kafka's `acks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: no answer.
    None,
    /// `acks=1`: on this agent's disk (the WAL).
    Leader,
    /// `acks=all` (`-1`): in the bucket and committed in metadata.
    All,
}

impl Acks {
    /// From the request's field; `None` for a value Kafka refuses with
    /// `INVALID_REQUIRED_ACKS` (anything but -1, 0 and 1).
    pub fn from_request(acks: i16) -> Option<Self> {
        match acks {
            0 => Some(Acks::None),
            1 => Some(Acks::Leader),
            -1 => Some(Acks::All),
            _ => None,
        }
    }
}

/// An accepted produce: its first offset, and a future that resolves (with the
/// same offset) once it is as durable as asked.
pub struct Appended {
    /// The offset of the first record (for a duplicate: the original's).
    pub base_offset: i64,
    /// Resolves once the batches are durable as asked.
    pub durable: BoxFuture<'static, Result<i64, LogError>>,
}

impl std::fmt::Debug for Appended {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Appended")
            .field("base_offset", &self.base_offset)
            .finish_non_exhaustive()
    }
}

/// The tail cache's name for a partition.
fn tail_key(partition: TopicPartition) -> fjord_storage::cache::TopicPartition {
    fjord_storage::cache::TopicPartition::new(partition.topic_id.0, partition.partition)
}

/// The logs of the partitions this agent writes and reads.
pub struct PartitionLogs {
    store: MetadataStore,
    objects: Arc<dyn ObjectStore>,
    keys: ObjectKeys,
    ids: Arc<dyn IdGenerator>,
    clock: Arc<dyn Clock>,
    node_id: i32,
    settings: LogSettings,
    /// Which partitions this agent should lead, and who else is live.
    placement: Arc<dyn Placement>,
    topics: Arc<TopicCache>,
    wal: Option<Wal>,
    /// Unresolved WAL records (held while a record is numbered and queued).
    wal_tracker: Mutex<WalTracker>,
    tail: MemoryTailCache,
    reader: CachedReader,
    writers: Writers,
    unflushed: Unflushed,
    /// One acquisition of a partition at a time (per partition).
    acquiring: Mutex<HashMap<TopicPartition, Arc<tokio::sync::Mutex<()>>>>,
    flush_now: Notify,
    /// The clients' in-flight windows (the flusher's "window full" trigger).
    windows: Arc<produce::windows::ClientWindows>,
    /// Notified on every append (the flusher's idle timer restarts).
    appended: Notify,
    /// Requests waiting for a commit to be answered (`acks=all`, or `acks=1`
    /// without a WAL).
    commit_waiters: Arc<std::sync::atomic::AtomicUsize>,
    /// Bumped whenever a commit lands or a partition is reset.
    changes: watch::Sender<u64>,
    /// Per-partition commit signals for long-polling reads.
    signals: CommitSignals,
    /// When log compaction last cleaned each compacted partition led here, as
    /// last seen ([`fetch`]'s `compacted`).
    cleaned: Mutex<HashMap<TopicPartition, i64>>,
    /// Cancelled when the agent stops: appends are refused and waiters answered.
    stopped: CancellationToken,
}

impl std::fmt::Debug for PartitionLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionLogs")
            .field("node_id", &self.node_id)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl PartitionLogs {
    /// Logs writing segment objects under `keys` into `objects`, with `wal` (and
    /// the sequence number its next record gets) as the write-ahead log; without
    /// one, `acks=1` waits for the commit like `acks=all`. This agent leads every
    /// partition until [`PartitionLogs::with_placement`] says otherwise.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: MetadataStore,
        objects: Arc<dyn ObjectStore>,
        keys: ObjectKeys,
        ids: Arc<dyn IdGenerator>,
        clock: Arc<dyn Clock>,
        node_id: i32,
        settings: LogSettings,
        wal: Option<(Wal, u64)>,
    ) -> Self {
        let (wal, next_sequence) = match wal {
            Some((wal, next)) => (Some(wal), next),
            None => (None, 1),
        };
        Self {
            topics: Arc::new(TopicCache::new(store.clone())),
            store,
            objects: objects.clone(),
            keys,
            ids,
            clock,
            node_id,
            settings,
            placement: Arc::new(SoleAgent(node_id)),
            wal,
            wal_tracker: Mutex::new(WalTracker::new(next_sequence)),
            tail: MemoryTailCache::new(settings.tail_cache_bytes),
            reader: CachedReader::new(objects, None),
            writers: Writers::default(),
            unflushed: Unflushed::new(settings.max_pending_bytes),
            acquiring: Mutex::default(),
            flush_now: Notify::new(),
            windows: Arc::default(),
            appended: Notify::new(),
            commit_waiters: Arc::default(),
            changes: watch::channel(0).0,
            signals: CommitSignals::default(),
            cleaned: Mutex::default(),
            stopped: CancellationToken::new(),
        }
    }

    /// Reads chunks through `disk` as well: object ranges already fetched are
    /// served from the agent's disk.
    pub fn with_disk_cache(mut self, disk: Arc<DiskRangeCache>) -> Self {
        self.reader = CachedReader::new(self.objects.clone(), Some(disk));
        self
    }

    /// Leads only the partitions `placement` puts on this agent: a produce for
    /// another partition gets `NOT_LEADER_OR_FOLLOWER`.
    pub fn with_placement(mut self, placement: Arc<dyn Placement>) -> Self {
        self.placement = placement;
        self
    }

    /// As [`PartitionLogs::with_placement`], for a cluster view.
    pub fn with_cluster(self, cluster: Arc<crate::cluster::ClusterView>) -> Self {
        self.with_placement(cluster)
    }

    /// Looks topics up through `topics` (shared with the request handlers).
    pub fn with_topics(mut self, topics: Arc<TopicCache>) -> Self {
        self.topics = topics;
        self
    }

    /// The topic cache this log looks topics up in.
    pub fn topics(&self) -> &Arc<TopicCache> {
        &self.topics
    }

    /// The metadata store.
    pub fn store(&self) -> &MetadataStore {
        &self.store
    }

    /// A receiver that changes whenever a commit lands or a partition is reset.
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Stops the write path: appends are refused from now on and every batch
    /// not committed is answered with [`LogError::Stopped`]. Called when the
    /// agent stops without a hand-off (a fatal error in one of its tasks).
    pub fn stop(&self) {
        self.stopped.cancel();
        for (partition, writer) in self.writers.all() {
            let epoch = state::lock(&writer).epoch;
            self.forget(partition, epoch, &LogError::Stopped);
        }
        self.flush_now.notify_waiters();
        self.changes.send_modify(|n| *n += 1);
    }

    /// A window for one client connection: its `acks=all` produce requests
    /// take a slot each while they wait, so the flusher knows when no client
    /// can send more ([`produce::windows`]).
    pub fn client_window(&self) -> Arc<produce::windows::ClientWindow> {
        produce::windows::ClientWindow::new(self.windows.clone())
    }

    /// Client connections with produce requests waiting for a commit, and
    /// how many of them cannot send another request until answered.
    pub fn client_windows(&self) -> (usize, usize) {
        self.windows.counts()
    }

    /// Whether [`PartitionLogs::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.is_cancelled()
    }
}
