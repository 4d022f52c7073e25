//! The partition logs this agent leads: the write path (validate, check the
//! idempotent producer's sequence, assign offsets, append to the WAL, batch across
//! partitions into one segment object, upload, commit, acknowledge) and the read
//! path (index lookup, ranged GET, decode).
//!
//! # Ordering invariants (the write path)
//!
//! 1. Offsets are assigned here, under one lock, by a leader-local counter that
//!    starts at the partition's committed high watermark when leadership is taken
//!    (with a new epoch). The same lock orders the WAL: records are queued in the
//!    order offsets were assigned, so WAL sequence numbers follow append order
//!    across all partitions, and a flush that took every batch appended before it
//!    may truncate the WAL through the last one's sequence.
//! 2. A segment object is uploaded **before** the metadata commit that references
//!    it. An object whose commit failed is an orphan nobody references; garbage
//!    collection removes such objects after a grace period.
//! 3. The commit checks every chunk's epoch and that it starts at the high
//!    watermark, and records the producers' idempotence state as of its last
//!    batch; `acks=all` producers are acknowledged only after it succeeded.
//!    `acks=1` producers are acknowledged once their batches are fsynced in the WAL.
//! 4. Flushes are pipelined — several segments upload at once — but commit one
//!    at a time in the order they were taken, so commits for a partition apply in
//!    offset order. When a flush fails, every partition in it is reset: its
//!    pending batches (also those accepted after the flush began) fail with a
//!    retriable error, later in-flight flushes leave it out of their commits, and
//!    the partition's next producer re-takes leadership (a new epoch) from the
//!    committed high watermark and producer state — never a gap, never a silent
//!    loss of an `acks=all` batch. (`tests/write_path.rs` holds this under
//!    injected upload faults.)
//! 5. At start-up the WAL's records past each partition's committed high
//!    watermark are committed again (contiguous from the watermark, under the new
//!    epoch) before anything else is accepted, so `acks=1` batches survive a crash
//!    of the agent process when its disk survives.
//!
//! # The read path
//!
//! Committed data only: a read never sees past the high watermark. For a
//! partition this agent leads, the committed high watermark and log start are
//! known here, and recently committed chunks are served from memory (the tail
//! cache, filled at commit) without touching metadata or the bucket. Otherwise:
//! index lookup in metadata, then the chunk's byte range from the local disk
//! cache, or one ranged GET shared by every concurrent reader of that range.
//!
//! Not yet here: leadership spread over many agents.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use fjord_common::{Clock, IdGenerator};
use fjord_metadata::{
    ChunkCommit, IndexEntry, MetadataError, MetadataStore, ProducerCommit, ProducerState,
    SegmentCommit, SegmentId, TopicId, TopicPartition,
};
use fjord_storage::cache::{CachedReader, DiskRangeCache, MemoryTailCache};
use fjord_storage::wal::{AppendTicket, Wal, WalRecord};
use fjord_storage::{ChunkMeta, ObjectKeys, SegmentWriter, WriterOptions};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::{Notify, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::idempotence::{Decision, ProducerTable, SequenceError};
use crate::records::{self, BatchError};

/// Write-path settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// Flush at least this often while anything is pending.
    pub flush_interval: Duration,
    /// Flush as soon as this many bytes are pending.
    pub flush_bytes: usize,
    /// Appends wait while this many bytes are accepted and not yet flushed.
    pub max_pending_bytes: usize,
    /// The largest record batch accepted (`message.max.bytes`).
    pub max_batch_bytes: usize,
    /// Bytes of recently committed batches kept in memory for tailing readers.
    pub tail_cache_bytes: u64,
    /// Segments built and uploaded at once (their commits stay in order).
    pub max_inflight_uploads: usize,
    /// The zstd level segment chunks are compressed at on the flush path.
    pub compression_level: i32,
    /// A read that misses the caches fetches the whole segment object (and
    /// caches every chunk of it on disk) when the object is at most this large;
    /// larger objects are read chunk by chunk. 0: always chunk by chunk.
    pub whole_object_read_bytes: u64,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(100),
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
        }
    }
}

/// Why a produce or fetch failed, as Kafka error classes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// A malformed batch.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// A batch larger than `message.max.bytes`.
    #[error("record batch of {size} bytes exceeds message.max.bytes ({limit})")]
    BatchTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An idempotent producer's epoch or sequence is wrong.
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    /// Leadership moved; the client should refresh metadata.
    #[error("not the leader of {0}")]
    NotLeader(TopicPartition),
    /// The topic or partition does not exist.
    #[error("unknown partition {0}")]
    UnknownPartition(TopicPartition),
    /// The fetch offset lies outside the log.
    #[error("offset {offset} is outside {log_start}..={high_watermark}")]
    OffsetOutOfRange {
        /// Asked for.
        offset: i64,
        /// First readable.
        log_start: i64,
        /// Next to be written.
        high_watermark: i64,
    },
    /// Object storage, the WAL or metadata failed; retrying may succeed.
    #[error("storage error: {0}")]
    Storage(String),
}

impl LogError {
    fn from_metadata(partition: TopicPartition, error: MetadataError) -> Self {
        match error {
            MetadataError::Fenced { partition, .. } => LogError::NotLeader(partition),
            MetadataError::UnknownPartition { .. } | MetadataError::UnknownTopic { .. } => {
                LogError::UnknownPartition(partition)
            }
            other => LogError::Storage(other.to_string()),
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
    /// From the request's field; anything but 0 and 1 waits for everything.
    pub fn from_request(acks: i16) -> Self {
        match acks {
            0 => Acks::None,
            1 => Acks::Leader,
            _ => Acks::All,
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

struct Pending {
    /// The batch as received: its `baseOffset` and `partitionLeaderEpoch` are
    /// written (`base_offset`, the writer's epoch) when it is copied into the
    /// WAL and the segment ([`records::put_assigned`]).
    batch: Bytes,
    base_offset: i64,
    last_offset: i64,
    record_count: u32,
    max_timestamp: i64,
    /// The WAL record holding this batch, if it was written to the WAL.
    wal_sequence: Option<u64>,
    /// The producer's state once this batch is appended.
    producer: Option<(i64, ProducerState)>,
    done: Option<oneshot::Sender<Result<(), LogError>>>,
}

struct PartitionWriter {
    epoch: i32,
    next_offset: i64,
    /// The high watermark as committed by this leader.
    committed: i64,
    /// The log start offset (moved by `DeleteRecords` through this agent).
    log_start: i64,
    producers: ProducerTable,
    pending: Vec<Pending>,
    /// Handing off: produces are refused while what was accepted commits.
    draining: bool,
}

#[derive(Default)]
struct WriteState {
    partitions: HashMap<TopicPartition, PartitionWriter>,
    pending_bytes: usize,
}

/// What one flush took: per partition, its epoch and batches.
type Taken = Vec<(TopicPartition, i32, Vec<Pending>)>;

/// A segment object uploaded and not yet committed.
struct Uploaded {
    commit: SegmentCommit,
    /// Each partition's chunk (first and last offset, batches) for the tail cache.
    tail: Vec<(TopicPartition, i64, i64, Bytes)>,
}

/// What a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// Its log start offset.
    pub log_start_offset: i64,
    /// Whole record batches from the one holding the offset on (possibly empty).
    pub records: Bytes,
}

/// A WAL record's payload: the partition and the batches appended to it.
///
/// ```text
/// topic id: 16 bytes | partition: i32 BE | batches (offsets assigned)
/// ```
/// `parts` as one buffer: the part itself when there is one (no copy).
fn concat(mut parts: Vec<Bytes>) -> Bytes {
    if parts.len() == 1 {
        return parts.pop().unwrap_or_default();
    }
    let mut out = BytesMut::with_capacity(parts.iter().map(Bytes::len).sum());
    for part in parts {
        out.extend_from_slice(&part);
    }
    out.freeze()
}

/// One WAL record: the partition, then its batches with their assigned offsets
/// (`(batch as received, base offset)`) and `epoch`.
fn wal_payload(partition: TopicPartition, batches: &[(Bytes, i64)], epoch: i32) -> Bytes {
    let len = 20 + batches.iter().map(|(b, _)| b.len()).sum::<usize>();
    let mut out = BytesMut::with_capacity(len);
    out.put_slice(partition.topic_id.0.as_bytes());
    out.put_i32(partition.partition);
    for (batch, base_offset) in batches {
        records::put_assigned(&mut out, batch, *base_offset, epoch);
    }
    out.freeze()
}

fn parse_wal_payload(mut payload: Bytes) -> Option<(TopicPartition, Bytes)> {
    if payload.len() < 20 {
        return None;
    }
    let topic = uuid::Uuid::from_slice(&payload[..16]).ok()?;
    payload.advance(16);
    let partition = payload.get_i32();
    Some((TopicPartition::new(TopicId(topic), partition), payload))
}

/// What [`PartitionLogs::find_by_timestamp`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampQuery {
    /// The first record whose timestamp is at least this.
    AtLeast(i64),
    /// The first record holding the largest timestamp.
    Max,
}

/// A record found by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampHit {
    /// Its offset.
    pub offset: i64,
    /// Its timestamp.
    pub timestamp: i64,
    /// The leader epoch it was written under.
    pub leader_epoch: i32,
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
    wal: Option<Wal>,
    /// Which partitions this agent should lead; `None`: all of them.
    cluster: Option<Arc<crate::cluster::ClusterView>>,
    tail: MemoryTailCache,
    reader: CachedReader,
    /// Held while offsets are assigned and the WAL record is queued; holds the
    /// sequence number the next WAL record gets.
    order: tokio::sync::Mutex<u64>,
    state: Mutex<WriteState>,
    /// Held while leadership of a partition is being taken.
    acquiring: tokio::sync::Mutex<()>,
    flush_now: Notify,
    /// Bumped whenever a commit lands or a partition is reset.
    changes: watch::Sender<u64>,
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
    /// one, `acks=1` waits for the commit like `acks=all`.
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
            store,
            objects: objects.clone(),
            keys,
            ids,
            clock,
            node_id,
            settings,
            wal,
            cluster: None,
            tail: MemoryTailCache::new(settings.tail_cache_bytes),
            reader: CachedReader::new(objects.clone(), None),
            order: tokio::sync::Mutex::new(next_sequence),
            state: Mutex::default(),
            acquiring: tokio::sync::Mutex::new(()),
            flush_now: Notify::new(),
            changes: watch::channel(0).0,
        }
    }

    /// Reads chunks through `disk` as well: object ranges already fetched are
    /// served from the agent's disk.
    pub fn with_disk_cache(mut self, disk: Arc<DiskRangeCache>) -> Self {
        self.reader = CachedReader::new(self.objects.clone(), Some(disk));
        self
    }

    /// Leads only the partitions `cluster` places on this agent: a produce for
    /// another partition gets `NOT_LEADER_OR_FOLLOWER`.
    pub fn with_cluster(mut self, cluster: Arc<crate::cluster::ClusterView>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// The epoch this agent leads `partition` under, if it does.
    pub fn leads(&self, partition: TopicPartition) -> Option<i32> {
        self.lock().partitions.get(&partition).map(|w| w.epoch)
    }

    /// The partitions this agent leads (or is handing off).
    pub fn led_partitions(&self) -> Vec<TopicPartition> {
        self.lock().partitions.keys().copied().collect()
    }

    /// Takes leadership of `partition` (the balancer found it should).
    pub async fn take_over(&self, partition: TopicPartition) -> Result<(), LogError> {
        self.ensure_leader(partition).await
    }

    /// Drops `partition`, led under `epoch`, after another agent took it over:
    /// pending producers get a retriable error.
    pub fn lost(&self, partition: TopicPartition, epoch: i32) {
        self.fail_partition(partition, epoch, &LogError::NotLeader(partition));
    }

    /// Hands `partition` off: refuses produces from now on, and once everything
    /// accepted is committed, releases leadership in metadata and forgets the
    /// partition. Called repeatedly until done.
    pub async fn hand_off(&self, partition: TopicPartition) {
        let ready = {
            let mut write = self.lock();
            let Some(writer) = write.partitions.get_mut(&partition) else {
                return;
            };
            writer.draining = true;
            (writer.pending.is_empty() && writer.committed == writer.next_offset)
                .then_some(writer.epoch)
        };
        let Some(epoch) = ready else {
            self.flush_now.notify_one();
            return;
        };
        match self
            .store
            .release_leadership(partition, self.node_id, epoch)
            .await
        {
            Ok(released) => {
                tracing::info!(%partition, epoch, released, "handed leadership off");
                let mut write = self.lock();
                if write.partitions.get(&partition).map(|w| w.epoch) == Some(epoch) {
                    write.partitions.remove(&partition);
                }
                drop(write);
                self.changes.send_modify(|n| *n += 1);
            }
            Err(error) => tracing::warn!(%partition, %error, "releasing leadership failed"),
        }
    }

    /// Records that `partition`'s log start moved to `log_start` (after a
    /// `DeleteRecords` committed in metadata).
    pub fn log_start_moved(&self, partition: TopicPartition, log_start: i64) {
        if let Some(writer) = self.lock().partitions.get_mut(&partition) {
            writer.log_start = writer.log_start.max(log_start);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WriteState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver that changes whenever a commit lands (long-polling fetches wait
    /// on it).
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// Takes leadership of `partition` unless this agent holds it already, reading
    /// the committed high watermark and producer states.
    async fn ensure_leader(&self, partition: TopicPartition) -> Result<(), LogError> {
        if let Some(writer) = self.lock().partitions.get(&partition) {
            return if writer.draining {
                Err(LogError::NotLeader(partition))
            } else {
                Ok(())
            };
        }
        // One acquisition at a time: a produce and the balancer taking the same
        // partition at once would bump its epoch twice and fence themselves.
        let _acquiring = self.acquiring.lock().await;
        if let Some(writer) = self.lock().partitions.get(&partition) {
            return if writer.draining {
                Err(LogError::NotLeader(partition))
            } else {
                Ok(())
            };
        }
        if let Some(cluster) = &self.cluster {
            let topic = self
                .store
                .topic_by_id(partition.topic_id)
                .await
                .map_err(|e| LogError::from_metadata(partition, e))?;
            if !cluster.owns(partition, topic.partition_count) {
                return Err(LogError::NotLeader(partition));
            }
            // Another live agent still holds it (handing off): wait for its
            // release rather than fence what it is committing.
            let current = self
                .store
                .partition_state(partition)
                .await
                .map_err(|e| LogError::from_metadata(partition, e))?;
            if let Some(holder) = current.leader
                && holder != self.node_id
                && cluster.is_live(holder)
            {
                return Err(LogError::NotLeader(partition));
            }
        }
        let state = self
            .store
            .acquire_leadership(partition, self.node_id)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))?;
        let producers = self
            .store
            .producer_states(partition)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))?;
        tracing::info!(%partition, epoch = state.leader_epoch, high_watermark = state.high_watermark, producers = producers.len(), "took leadership");
        self.lock()
            .partitions
            .entry(partition)
            .or_insert(PartitionWriter {
                epoch: state.leader_epoch,
                next_offset: state.high_watermark,
                committed: state.high_watermark,
                log_start: state.log_start_offset,
                producers: ProducerTable::from_committed(producers),
                pending: Vec::new(),
                draining: false,
            });
        Ok(())
    }

    /// Waits while more than the allowed bytes are accepted and unflushed.
    async fn wait_for_room(&self) {
        loop {
            let mut changes = self.changes.subscribe();
            if self.lock().pending_bytes < self.settings.max_pending_bytes {
                return;
            }
            self.flush_now.notify_one();
            let _ = changes.changed().await;
        }
    }

    /// Validates `records` (one or more batches), checks the idempotent
    /// producer's sequence, assigns offsets, queues the batches in the WAL and
    /// for the next flush. The returned future resolves as `acks` asks.
    pub async fn append(
        self: &Arc<Self>,
        partition: TopicPartition,
        records: &Bytes,
        acks: Acks,
    ) -> Result<Appended, LogError> {
        let batches = records::parse_batches(records)?;
        if let Some(large) = batches
            .iter()
            .find(|b| b.bytes.len() > self.settings.max_batch_bytes)
        {
            return Err(LogError::BatchTooLarge {
                size: large.bytes.len(),
                limit: self.settings.max_batch_bytes,
            });
        }
        if batches.len() > 1 && batches.iter().any(|b| b.producer_id >= 0) {
            return Err(LogError::Batch(BatchError::Corrupt(
                "an idempotent produce must hold one record batch per partition".into(),
            )));
        }
        self.wait_for_room().await;
        self.ensure_leader(partition).await?;
        let mut next_sequence = self.order.lock().await;
        let (done, receiver) = oneshot::channel();
        let (base_offset, payload) = {
            let mut write = self.lock();
            let WriteState {
                partitions,
                pending_bytes,
            } = &mut *write;
            let writer = partitions
                .get_mut(&partition)
                .filter(|w| !w.draining)
                .ok_or(LogError::NotLeader(partition))?;
            let decision = match batches.first() {
                Some(first) => writer.producers.check(first, writer.next_offset)?,
                None => Decision::Plain,
            };
            if let Decision::Duplicate {
                base_offset,
                last_offset,
            } = decision
            {
                let epoch = writer.epoch;
                drop(write);
                drop(next_sequence);
                let logs = self.clone();
                return Ok(Appended {
                    base_offset,
                    durable: Box::pin(async move {
                        logs.wait_committed(partition, epoch, last_offset).await?;
                        Ok(base_offset)
                    }),
                });
            }
            writer.producers.apply(&decision);
            let producer = match decision {
                Decision::Append { producer_id, state } => Some((producer_id, state)),
                Decision::Plain | Decision::Duplicate { .. } => None,
            };
            let wal_sequence = self.wal.as_ref().map(|_| *next_sequence);
            let base_offset = writer.next_offset;
            let count = batches.len();
            let mut done = Some(done);
            let mut stored = Vec::with_capacity(count);
            for (index, batch) in batches.into_iter().enumerate() {
                let offset = writer.next_offset;
                let last_offset = offset + i64::from(batch.last_offset_delta);
                *pending_bytes += batch.bytes.len();
                stored.push((batch.bytes.clone(), offset));
                let last = index + 1 == count;
                writer.pending.push(Pending {
                    batch: batch.bytes,
                    base_offset: offset,
                    last_offset,
                    record_count: u32::try_from(batch.record_count).unwrap_or(0),
                    max_timestamp: batch.max_timestamp,
                    wal_sequence,
                    producer: if last { producer.clone() } else { None },
                    // The request's waiter rides on its last batch.
                    done: if last { done.take() } else { None },
                });
                writer.next_offset = last_offset + 1;
            }
            if *pending_bytes >= self.settings.flush_bytes {
                self.flush_now.notify_one();
            }
            let payload = self
                .wal
                .as_ref()
                .map(|_| wal_payload(partition, &stored, writer.epoch));
            (base_offset, payload)
        };
        let ticket: Option<Result<AppendTicket, _>> = match (&self.wal, payload) {
            (Some(wal), Some(payload)) => {
                let queued = wal.enqueue(payload).await;
                if queued.is_ok() {
                    *next_sequence += 1;
                }
                Some(queued)
            }
            _ => None,
        };
        drop(next_sequence);
        let committed = async move {
            receiver
                .await
                .unwrap_or_else(|_| Err(LogError::Storage("the flusher stopped".into())))
                .map(|()| base_offset)
        };
        let durable: BoxFuture<'static, Result<i64, LogError>> = match (acks, ticket) {
            (Acks::None, _) => Box::pin(async move { Ok(base_offset) }),
            (Acks::Leader, Some(ticket)) => Box::pin(async move {
                let written = match ticket {
                    Ok(ticket) => ticket.await,
                    Err(error) => Err(error),
                };
                written
                    .map(|_| base_offset)
                    .map_err(|e| LogError::Storage(format!("write-ahead log: {e}")))
            }),
            (Acks::Leader, None) | (Acks::All, _) => Box::pin(committed),
        };
        Ok(Appended {
            base_offset,
            durable,
        })
    }

    /// Resolves once this leader has committed `partition` through `last_offset`
    /// under `epoch`; fails if the partition was reset or moved meanwhile.
    async fn wait_committed(
        &self,
        partition: TopicPartition,
        epoch: i32,
        last_offset: i64,
    ) -> Result<(), LogError> {
        let mut changes = self.changes.subscribe();
        loop {
            {
                let write = self.lock();
                match write.partitions.get(&partition) {
                    Some(writer) if writer.epoch == epoch => {
                        if writer.committed > last_offset {
                            return Ok(());
                        }
                    }
                    _ => return Err(LogError::NotLeader(partition)),
                }
            }
            if changes.changed().await.is_err() {
                return Err(LogError::Storage("the flusher stopped".into()));
            }
        }
    }

    /// Commits what the WAL holds beyond each partition's committed high
    /// watermark (records of an earlier run of this agent that were accepted and
    /// not committed), then truncates the WAL. Call once, before serving.
    pub async fn recover(self: &Arc<Self>, records: Vec<WalRecord>) -> Result<usize, LogError> {
        let Some(last_sequence) = records.last().map(|r| r.sequence) else {
            return Ok(0);
        };
        let mut by_partition: BTreeMap<TopicPartition, Vec<records::Batch>> = BTreeMap::new();
        for record in records {
            let Some((partition, batches)) = parse_wal_payload(record.payload) else {
                tracing::warn!(
                    sequence = record.sequence,
                    "skipping a malformed WAL record"
                );
                continue;
            };
            match records::parse_batches(&batches) {
                Ok(parsed) => by_partition.entry(partition).or_default().extend(parsed),
                Err(error) => {
                    tracing::warn!(sequence = record.sequence, %error, "skipping a WAL record");
                }
            }
        }
        let mut recovered = 0;
        for (partition, mut batches) in by_partition {
            match self.ensure_leader(partition).await {
                Ok(()) => {}
                Err(LogError::UnknownPartition(_)) => continue,
                // Another live agent leads it (it took over while this one was
                // down): what the WAL holds was never committed, so it is not
                // part of the log (acks=1 records lost, as with Kafka).
                Err(LogError::NotLeader(_)) => {
                    tracing::warn!(%partition, batches = batches.len(), "another agent leads the partition; dropping its WAL records");
                    continue;
                }
                Err(error) => return Err(error),
            }
            batches.sort_by_key(|b| b.base_offset);
            let mut write = self.lock();
            let WriteState {
                partitions,
                pending_bytes,
            } = &mut *write;
            let Some(writer) = partitions.get_mut(&partition) else {
                continue;
            };
            for batch in batches {
                if batch.base_offset < writer.next_offset {
                    continue; // committed already
                }
                if batch.base_offset > writer.next_offset {
                    tracing::warn!(%partition, expected = writer.next_offset, found = batch.base_offset, "WAL records do not follow the committed log; dropping the rest");
                    break;
                }
                let decision = match writer.producers.check(&batch, batch.base_offset) {
                    Ok(Decision::Duplicate { .. }) => continue,
                    Ok(decision) => decision,
                    Err(error) => {
                        tracing::warn!(%partition, %error, "dropping WAL records after a sequence error");
                        break;
                    }
                };
                writer.producers.apply(&decision);
                *pending_bytes += batch.bytes.len();
                let last_offset = batch.base_offset + i64::from(batch.last_offset_delta);
                writer.pending.push(Pending {
                    batch: batch.bytes,
                    base_offset: batch.base_offset,
                    last_offset,
                    record_count: u32::try_from(batch.record_count).unwrap_or(0),
                    max_timestamp: batch.max_timestamp,
                    wal_sequence: None,
                    producer: match decision {
                        Decision::Append { producer_id, state } => Some((producer_id, state)),
                        _ => None,
                    },
                    done: None,
                });
                writer.next_offset = last_offset + 1;
                recovered += 1;
            }
        }
        if recovered > 0 {
            self.flush_once().await?;
        }
        if let Some(wal) = &self.wal {
            wal.truncate(last_sequence)
                .await
                .map_err(|e| LogError::Storage(format!("write-ahead log: {e}")))?;
        }
        Ok(recovered)
    }

    /// Flushes on the interval, or sooner when enough is pending, until `shutdown`;
    /// then flushes what was accepted once more.
    ///
    /// Flushes are pipelined: up to [`LogSettings::max_inflight_uploads`]
    /// segments are built and uploaded at once, and each is committed only after
    /// every earlier one, in the order they were taken — so commits of a
    /// partition apply in offset order.
    pub async fn run_flusher(self: Arc<Self>, shutdown: CancellationToken) {
        let mut inflight: FuturesOrdered<BoxFuture<'static, (Taken, Result<Uploaded, LogError>)>> =
            FuturesOrdered::new();
        let mut tick = tokio::time::interval(self.settings.flush_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let room = inflight.len() < self.settings.max_inflight_uploads.max(1);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                Some((taken, uploaded)) = inflight.next(), if !inflight.is_empty() => {
                    let _ = self.commit_and_answer(taken, uploaded).await;
                    continue;
                }
                _ = tick.tick(), if room => {}
                _ = self.flush_now.notified(), if room => {}
            }
            if let Some(taken) = self.take() {
                let logs = self.clone();
                inflight.push_back(Box::pin(async move {
                    let uploaded = logs.upload(&taken).await;
                    (taken, uploaded)
                }));
            }
        }
        while let Some((taken, uploaded)) = inflight.next().await {
            let _ = self.commit_and_answer(taken, uploaded).await;
        }
        let _ = self.flush_once().await;
    }

    /// Resets `partition` if this agent still writes it under `epoch`: its pending
    /// batches fail with `error`, and its next producer takes leadership again
    /// from the committed state. A writer under a newer epoch is left alone.
    fn fail_partition(&self, partition: TopicPartition, epoch: i32, error: &LogError) {
        let mut write = self.lock();
        if write.partitions.get(&partition).map(|w| w.epoch) != Some(epoch) {
            return;
        }
        self.tail.invalidate_partition(tail_key(partition));
        if let Some(writer) = write.partitions.remove(&partition) {
            let bytes: usize = writer.pending.iter().map(|p| p.batch.len()).sum();
            write.pending_bytes -= bytes.min(write.pending_bytes);
            for pending in writer.pending {
                if let Some(done) = pending.done {
                    let _ = done.send(Err(error.clone()));
                }
            }
        }
        drop(write);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Takes everything pending, writes it as one segment object, commits it and
    /// answers the producers (one flush, not pipelined: recovery and shutdown).
    pub async fn flush_once(&self) -> Result<(), LogError> {
        let Some(taken) = self.take() else {
            return Ok(());
        };
        let uploaded = self.upload(&taken).await;
        self.commit_and_answer(taken, uploaded).await
    }

    /// Everything pending, per partition with its epoch.
    fn take(&self) -> Option<Taken> {
        let mut write = self.lock();
        let mut taken = Vec::new();
        let mut bytes = 0;
        for (partition, writer) in write.partitions.iter_mut() {
            if !writer.pending.is_empty() {
                let pending = std::mem::take(&mut writer.pending);
                bytes += pending.iter().map(|p| p.batch.len()).sum::<usize>();
                taken.push((*partition, writer.epoch, pending));
            }
        }
        write.pending_bytes -= bytes.min(write.pending_bytes);
        (!taken.is_empty()).then_some(taken)
    }

    /// Builds the segment object of `taken` and uploads it.
    async fn upload(&self, taken: &Taken) -> Result<Uploaded, LogError> {
        let segment_id = self.ids.ulid(self.clock.now_millis());
        let options = WriterOptions {
            compression: fjord_storage::Compression::Zstd {
                level: self.settings.compression_level,
            },
        };
        let mut writer = SegmentWriter::new(segment_id, options)
            .map_err(|e| LogError::Storage(e.to_string()))?;
        let mut producers = Vec::new();
        let mut tail = Vec::with_capacity(taken.len());
        for (partition, epoch, pending) in taken {
            let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
                continue;
            };
            let mut batches = BytesMut::with_capacity(pending.iter().map(|p| p.batch.len()).sum());
            let mut latest: HashMap<i64, &ProducerState> = HashMap::new();
            for entry in pending {
                records::put_assigned(&mut batches, &entry.batch, entry.base_offset, *epoch);
                if let Some((producer_id, state)) = &entry.producer {
                    latest.insert(*producer_id, state);
                }
            }
            producers.extend(
                latest
                    .into_iter()
                    .map(|(producer_id, state)| ProducerCommit {
                        partition: *partition,
                        producer_id,
                        state: state.clone(),
                    }),
            );
            let meta = ChunkMeta {
                topic_id: partition.topic_id.0,
                partition: partition.partition,
                first_offset: first.base_offset,
                last_offset: last.last_offset,
                record_count: pending.iter().map(|p| p.record_count).sum(),
                max_timestamp: pending.iter().map(|p| p.max_timestamp).max().unwrap_or(-1),
            };
            let batches = batches.freeze();
            tail.push((
                *partition,
                first.base_offset,
                last.last_offset,
                batches.clone(),
            ));
            let hint = records::chunk_hint(pending.iter().map(|entry| &entry.batch[..]));
            writer
                .add_chunk_with_hint(meta, batches, hint)
                .map_err(|e| LogError::Storage(e.to_string()))?;
        }
        // Compression is CPU work: off the async workers.
        let encoded = tokio::task::spawn_blocking(move || writer.finish())
            .await
            .map_err(|e| LogError::Storage(format!("building a segment: {e}")))?
            .map_err(|e| LogError::Storage(e.to_string()))?;
        let key = self.keys.segment(segment_id);
        let object_size = encoded.bytes.len() as u64;
        let chunks = encoded
            .footer
            .entries()
            .iter()
            .map(|entry| {
                let partition = TopicPartition::new(
                    fjord_metadata::TopicId(entry.meta.topic_id),
                    entry.meta.partition,
                );
                let epoch = taken
                    .iter()
                    .find(|(p, _, _)| *p == partition)
                    .map_or(-1, |(_, epoch, _)| *epoch);
                ChunkCommit {
                    partition,
                    leader_epoch: epoch,
                    base_offset: entry.meta.first_offset,
                    last_offset: entry.meta.last_offset,
                    record_count: entry.meta.record_count,
                    max_timestamp: entry.meta.max_timestamp,
                    byte_offset: entry.byte_offset,
                    byte_length: entry.byte_length,
                }
            })
            .collect();
        self.objects
            .put(&Path::from(key.as_str()), encoded.bytes.into())
            .await
            .map_err(|e| LogError::Storage(format!("uploading {}: {e}", key.as_str())))?;
        Ok(Uploaded {
            commit: SegmentCommit {
                segment_id: SegmentId(segment_id),
                object_key: key.into_string(),
                object_size,
                chunks,
                producers,
            },
            tail,
        })
    }

    /// Commits an uploaded segment (what is still valid of it) and answers the
    /// producers of everything in `taken`.
    ///
    /// A partition reset since it was taken (an earlier flush failed, or the
    /// partition moved) is left out of the commit: its batches were answered
    /// with the reset's error already, or are answered with it here. A partition
    /// the commit finds fenced or out of line is failed and the rest committed
    /// again under the same segment id.
    async fn commit_and_answer(
        &self,
        taken: Taken,
        uploaded: Result<Uploaded, LogError>,
    ) -> Result<(), LogError> {
        let wal_through = taken
            .iter()
            .flat_map(|(_, _, pending)| pending.iter().filter_map(|p| p.wal_sequence))
            .max();
        let mut failed: HashMap<TopicPartition, LogError> = HashMap::new();
        let mut result = Ok(());
        match uploaded {
            Err(error) => {
                for (partition, _, _) in &taken {
                    failed.insert(*partition, error.clone());
                }
                result = Err(error);
            }
            Ok(Uploaded { mut commit, tail }) => {
                {
                    let write = self.lock();
                    for (partition, epoch, _) in &taken {
                        if write.partitions.get(partition).map(|w| w.epoch) != Some(*epoch) {
                            failed.insert(*partition, LogError::NotLeader(*partition));
                        }
                    }
                }
                loop {
                    commit.chunks.retain(|c| !failed.contains_key(&c.partition));
                    commit
                        .producers
                        .retain(|p| !failed.contains_key(&p.partition));
                    if commit.chunks.is_empty() {
                        break;
                    }
                    match self.store.commit_segment(&commit).await {
                        Ok(_) => break,
                        Err(
                            MetadataError::Fenced { partition, .. }
                            | MetadataError::OffsetMismatch { partition, .. },
                        ) if commit.chunks.len() > 1 => {
                            tracing::warn!(%partition, segment = %commit.segment_id, "left out of a segment commit");
                            failed.insert(partition, LogError::NotLeader(partition));
                        }
                        Err(error) => {
                            tracing::warn!(%error, segment = %commit.segment_id, "segment commit failed");
                            let error = match error {
                                MetadataError::Fenced { partition, .. } => {
                                    LogError::NotLeader(partition)
                                }
                                other => LogError::Storage(other.to_string()),
                            };
                            for chunk in &commit.chunks {
                                failed.insert(chunk.partition, error.clone());
                            }
                            result = Err(error);
                            break;
                        }
                    }
                }
                let mut write = self.lock();
                for (partition, epoch, pending) in &taken {
                    if failed.contains_key(partition) {
                        continue;
                    }
                    if let (Some(writer), Some(last)) =
                        (write.partitions.get_mut(partition), pending.last())
                        && writer.epoch == *epoch
                    {
                        writer.committed = writer.committed.max(last.last_offset + 1);
                    }
                }
                drop(write);
                // Filled after the high watermark moved, so a read from memory
                // never returns more than the high watermark it reports (a read
                // in between misses and goes to the index).
                for (partition, first, last, batches) in tail {
                    if !failed.contains_key(&partition) {
                        self.tail.insert(tail_key(partition), first, last, batches);
                    }
                }
            }
        }
        for (partition, epoch, pending) in taken {
            let outcome = failed.get(&partition);
            for entry in pending {
                if let Some(done) = entry.done {
                    let _ = done.send(match outcome {
                        None => Ok(()),
                        Some(error) => Err(error.clone()),
                    });
                }
            }
            if let Some(error) = outcome {
                self.fail_partition(partition, epoch, error);
            }
        }
        self.changes.send_modify(|n| *n += 1);
        if result.is_ok()
            && let (Some(wal), Some(through)) = (&self.wal, wal_through)
            && let Err(error) = wal.truncate(through).await
        {
            tracing::warn!(%error, through, "truncating the write-ahead log failed");
        }
        result
    }

    /// Committed batches of `partition` from the one holding `offset` on, up to
    /// about `max_bytes` (at least one chunk, as Kafka returns at least one batch).
    pub async fn read(
        &self,
        partition: TopicPartition,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, LogError> {
        if let Some(read) = self.read_led(partition, offset, max_bytes)? {
            return Ok(read);
        }
        let lookup = self
            .store
            .lookup(partition, offset, 16)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))?;
        let state = lookup.state;
        if offset < state.log_start_offset || offset > state.high_watermark {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: state.log_start_offset,
                high_watermark: state.high_watermark,
            });
        }
        let mut parts = Vec::new();
        let mut len = 0;
        for entry in lookup.entries {
            if entry.base_offset >= state.high_watermark || (len > 0 && len >= max_bytes) {
                break;
            }
            let batches = records::skip_before(self.read_chunk(&entry).await?, offset);
            len += batches.len();
            parts.push(batches);
        }
        Ok(ReadResult {
            high_watermark: state.high_watermark,
            log_start_offset: state.log_start_offset,
            records: concat(parts),
        })
    }

    /// A read served by this partition's leader from memory: `None` unless this
    /// agent leads `partition` and its tail cache holds `offset` (or `offset` is
    /// the high watermark: nothing to return yet).
    fn read_led(
        &self,
        partition: TopicPartition,
        offset: i64,
        max_bytes: usize,
    ) -> Result<Option<ReadResult>, LogError> {
        let (high_watermark, log_start_offset) = {
            let write = self.lock();
            match write.partitions.get(&partition) {
                Some(writer) => (writer.committed, writer.log_start),
                None => return Ok(None),
            }
        };
        if offset > high_watermark {
            // Past what this leader committed: if another agent took the
            // partition over (this one was paused), metadata knows more.
            return Ok(None);
        }
        if offset < log_start_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start: log_start_offset,
                high_watermark,
            });
        }
        let records = if offset == high_watermark {
            Bytes::new()
        } else {
            let Some(hit) = self
                .tail
                .read(tail_key(partition), offset, max_bytes as u64)
            else {
                return Ok(None);
            };
            match hit.batches.split_first() {
                // Only the first chunk can start before `offset`.
                Some((first, rest)) => {
                    let mut parts = Vec::with_capacity(hit.batches.len());
                    parts.push(records::skip_before(first.clone(), offset));
                    parts.extend(rest.iter().cloned());
                    concat(parts)
                }
                None => Bytes::new(),
            }
        };
        Ok(Some(ReadResult {
            high_watermark,
            log_start_offset,
            records,
        }))
    }

    /// The batches of the chunk an index entry points at: from the disk cache,
    /// or one GET shared by concurrent readers (of the whole object when it is
    /// small enough, caching its other chunks for the reads that follow).
    async fn read_chunk(&self, entry: &IndexEntry) -> Result<Bytes, LogError> {
        let range = entry.byte_offset..entry.byte_offset + entry.byte_length;
        let key = self
            .keys
            .segment_id_of(&entry.object_key)
            .map(|id| self.keys.segment(id))
            .ok_or_else(|| {
                LogError::Storage(format!(
                    "the index names {}, which is not one of this cluster's segment keys",
                    entry.object_key
                ))
            })?;
        let bytes = self
            .reader
            .get_range_in_segment(
                &key,
                range,
                entry.object_size,
                self.settings.whole_object_read_bytes,
            )
            .await
            .map_err(|e| LogError::Storage(format!("reading {}: {e}", entry.object_key)))?;
        let chunk =
            fjord_storage::decode_chunk(bytes).map_err(|e| LogError::Storage(e.to_string()))?;
        Ok(chunk.batches)
    }

    /// Finds a committed record by timestamp, as Kafka's `ListOffsets` does,
    /// among the records from the log start on (reading at most `scan_limit`
    /// index entries):
    ///
    /// - [`TimestampQuery::AtLeast`]: the first record (by offset) whose timestamp
    ///   is at least the one given;
    /// - [`TimestampQuery::Max`]: the first record holding the largest timestamp.
    ///
    /// The index narrows the search to the chunks whose largest timestamp
    /// qualifies; only those are read and their records decoded. `None` when no
    /// record qualifies (or the log is empty).
    pub async fn find_by_timestamp(
        &self,
        partition: TopicPartition,
        query: TimestampQuery,
        scan_limit: usize,
    ) -> Result<Option<TimestampHit>, LogError> {
        let lookup = self
            .store
            .lookup(partition, 0, scan_limit)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))?;
        let log_start = lookup.state.log_start_offset;
        let entries: Vec<&IndexEntry> = lookup
            .entries
            .iter()
            .filter(|e| e.base_offset < lookup.state.high_watermark)
            .collect();
        // Each chunk's largest timestamp from the log start on: the index's,
        // except in a chunk the log start cuts, where it may belong to a deleted
        // record and is read from the records kept.
        let mut maxima = Vec::with_capacity(entries.len());
        for entry in &entries {
            let max = if entry.base_offset < log_start {
                self.records_from(entry, log_start, i64::MIN)
                    .await?
                    .iter()
                    .map(|(_, timestamp)| *timestamp)
                    .max()
                    .unwrap_or(i64::MIN)
            } else {
                entry.max_timestamp
            };
            maxima.push(max);
        }
        // A record qualifies by its timestamp: at least the one wanted, or equal
        // to the largest of all.
        let (threshold, exact) = match query {
            TimestampQuery::AtLeast(wanted) => (wanted, false),
            TimestampQuery::Max => match maxima.iter().max() {
                Some(max) => (*max, true),
                None => return Ok(None),
            },
        };
        for (entry, max) in entries.into_iter().zip(maxima) {
            if max < threshold {
                continue;
            }
            let found = self
                .records_from(entry, log_start, threshold)
                .await?
                .into_iter()
                .find(|(_, timestamp)| {
                    if exact {
                        *timestamp == threshold
                    } else {
                        *timestamp >= threshold
                    }
                });
            if let Some((offset, timestamp)) = found {
                return Ok(Some(TimestampHit {
                    offset,
                    timestamp,
                    leader_epoch: entry.leader_epoch,
                }));
            }
        }
        Ok(None)
    }

    /// The `(offset, timestamp)` of the records of an index entry's chunk from
    /// `log_start` on, decoding only the batches whose largest timestamp reaches
    /// `min_batch_timestamp` (the others cannot hold what a search looks for).
    async fn records_from(
        &self,
        entry: &IndexEntry,
        log_start: i64,
        min_batch_timestamp: i64,
    ) -> Result<Vec<(i64, i64)>, LogError> {
        let bytes = self.read_chunk(entry).await?;
        let mut found = Vec::new();
        for batch in records::parse_batches(&bytes)? {
            let last_offset = batch.base_offset + i64::from(batch.last_offset_delta);
            if last_offset < log_start || batch.max_timestamp < min_batch_timestamp {
                continue;
            }
            found.extend(
                records::record_timestamps(&batch)?
                    .into_iter()
                    .filter(|(offset, _)| *offset >= log_start),
            );
        }
        Ok(found)
    }

    /// The committed state of `partition`: (log start, high watermark, epoch).
    pub async fn bounds(
        &self,
        partition: TopicPartition,
    ) -> Result<fjord_metadata::PartitionState, LogError> {
        self.store
            .partition_state(partition)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))
    }

    /// `(log start, high watermark)` of `partition`: from memory when this agent
    /// leads it, else from metadata.
    pub async fn offsets(&self, partition: TopicPartition) -> Result<(i64, i64), LogError> {
        if let Some(writer) = self.lock().partitions.get(&partition) {
            return Ok((writer.log_start, writer.committed));
        }
        let state = self.bounds(partition).await?;
        Ok((state.log_start_offset, state.high_watermark))
    }
}
