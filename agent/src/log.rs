//! The partition logs this agent leads: the write path (validate, assign offsets,
//! batch across partitions into one segment object, upload, commit, acknowledge)
//! and the read path (index lookup, ranged GET, decode).
//!
//! # Ordering invariants (the write path)
//!
//! 1. Offsets are assigned here, under one lock, by a leader-local counter that
//!    starts at the partition's committed high watermark when leadership is taken
//!    (with a new epoch).
//! 2. A segment object is uploaded **before** the metadata commit that references
//!    it. An object whose commit failed is an orphan nobody references; garbage
//!    collection removes such objects after a grace period.
//! 3. The commit checks every chunk's epoch and that it starts at the high
//!    watermark; producers are acknowledged only after it succeeded.
//! 4. One flush runs at a time, so commits for a partition apply in offset order.
//!    When a flush fails, every partition in it is reset: its pending batches (also
//!    those accepted after the flush began) fail with a retriable error, and the
//!    partition's next producer re-takes leadership from the committed high
//!    watermark — never a gap, never a silent loss.
//!
//! Not yet here: the local write-ahead log (`acks=1` is acknowledged at commit,
//! like `acks=all`, which is stronger than Kafka promises), idempotent producers,
//! the read cache, and leadership spread over many agents.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fjord_common::{Clock, IdGenerator};
use fjord_metadata::{
    ChunkCommit, IndexEntry, MetadataError, MetadataStore, SegmentCommit, SegmentId, TopicPartition,
};
use fjord_storage::{ChunkMeta, ObjectKeys, SegmentWriter, WriterOptions};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::sync::{Notify, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::records::{self, BatchError};

/// Write-path settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// Flush at least this often while anything is pending.
    pub flush_interval: Duration,
    /// Flush as soon as this many bytes are pending.
    pub flush_bytes: usize,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            flush_interval: Duration::from_millis(100),
            flush_bytes: 4 * 1024 * 1024,
        }
    }
}

/// Why a produce or fetch failed, as Kafka error classes.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// A malformed batch.
    #[error(transparent)]
    Batch(#[from] BatchError),
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
    /// Object storage or metadata failed; retrying may succeed.
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

struct Pending {
    batch: Bytes,
    base_offset: i64,
    last_offset: i64,
    record_count: u32,
    max_timestamp: i64,
    done: Option<oneshot::Sender<Result<(), LogError>>>,
}

struct PartitionWriter {
    epoch: i32,
    next_offset: i64,
    pending: Vec<Pending>,
}

#[derive(Default)]
struct WriteState {
    partitions: HashMap<TopicPartition, PartitionWriter>,
    pending_bytes: usize,
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

/// The logs of the partitions this agent writes and reads.
pub struct PartitionLogs {
    store: MetadataStore,
    objects: Arc<dyn ObjectStore>,
    keys: ObjectKeys,
    ids: Arc<dyn IdGenerator>,
    clock: Arc<dyn Clock>,
    node_id: i32,
    settings: LogSettings,
    state: Mutex<WriteState>,
    flush_now: Notify,
    commits: watch::Sender<u64>,
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
    /// Logs writing segment objects under `keys` into `objects`.
    pub fn new(
        store: MetadataStore,
        objects: Arc<dyn ObjectStore>,
        keys: ObjectKeys,
        ids: Arc<dyn IdGenerator>,
        clock: Arc<dyn Clock>,
        node_id: i32,
        settings: LogSettings,
    ) -> Self {
        Self {
            store,
            objects,
            keys,
            ids,
            clock,
            node_id,
            settings,
            state: Mutex::default(),
            flush_now: Notify::new(),
            commits: watch::channel(0).0,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WriteState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver that changes whenever a commit lands (long-polling fetches wait
    /// on it).
    pub fn commits(&self) -> watch::Receiver<u64> {
        self.commits.subscribe()
    }

    /// Validates `records` (one or more batches), assigns their offsets and queues
    /// them for the next flush. Returns the first assigned offset and a receiver
    /// that resolves once the batches are committed.
    pub async fn append(
        &self,
        partition: TopicPartition,
        records: &Bytes,
    ) -> Result<(i64, oneshot::Receiver<Result<(), LogError>>), LogError> {
        let batches = records::parse_batches(records)?;
        let loaded = self.lock().partitions.contains_key(&partition);
        if !loaded {
            let state = self
                .store
                .acquire_leadership(partition, self.node_id)
                .await
                .map_err(|e| LogError::from_metadata(partition, e))?;
            tracing::info!(%partition, epoch = state.leader_epoch, high_watermark = state.high_watermark, "took leadership");
            let mut write = self.lock();
            write
                .partitions
                .entry(partition)
                .or_insert(PartitionWriter {
                    epoch: state.leader_epoch,
                    next_offset: state.high_watermark,
                    pending: Vec::new(),
                });
        }
        let (done, receiver) = oneshot::channel();
        let mut write = self.lock();
        let WriteState {
            partitions,
            pending_bytes,
        } = &mut *write;
        let writer = partitions
            .get_mut(&partition)
            .ok_or(LogError::NotLeader(partition))?;
        let base_offset = writer.next_offset;
        let count = batches.len();
        let mut done = Some(done);
        for (index, batch) in batches.into_iter().enumerate() {
            let offset = writer.next_offset;
            let last_offset = offset + i64::from(batch.last_offset_delta);
            let bytes = records::assign_offset(&batch.bytes, offset, writer.epoch);
            *pending_bytes += bytes.len();
            writer.pending.push(Pending {
                batch: bytes,
                base_offset: offset,
                last_offset,
                record_count: u32::try_from(batch.record_count).unwrap_or(0),
                max_timestamp: batch.max_timestamp,
                // The request's waiter rides on its last batch.
                done: if index + 1 == count {
                    done.take()
                } else {
                    None
                },
            });
            writer.next_offset = last_offset + 1;
        }
        if *pending_bytes >= self.settings.flush_bytes {
            self.flush_now.notify_one();
        }
        Ok((base_offset, receiver))
    }

    /// Flushes on the interval, or sooner when enough is pending, until `shutdown`;
    /// then flushes what was accepted once more.
    pub async fn run_flusher(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.flush_once().await;
                    return;
                }
                _ = tokio::time::sleep(self.settings.flush_interval) => {}
                _ = self.flush_now.notified() => {}
            }
            self.flush_once().await;
        }
    }

    fn fail_partition(&self, partition: TopicPartition, error: &LogError) {
        let mut write = self.lock();
        if let Some(writer) = write.partitions.remove(&partition) {
            let bytes: usize = writer.pending.iter().map(|p| p.batch.len()).sum();
            write.pending_bytes -= bytes.min(write.pending_bytes);
            for pending in writer.pending {
                if let Some(done) = pending.done {
                    let _ = done.send(Err(error.clone()));
                }
            }
        }
    }

    /// Takes everything pending, writes it as one segment object, commits it and
    /// answers the producers.
    pub async fn flush_once(&self) {
        let taken: Vec<(TopicPartition, i32, Vec<Pending>)> = {
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
            taken
        };
        if taken.is_empty() {
            return;
        }
        let result = self.write_segment(&taken).await;
        let failed = result.err();
        for (partition, _, pending) in taken {
            for entry in pending {
                if let Some(done) = entry.done {
                    let _ = done.send(match &failed {
                        None => Ok(()),
                        Some(error) => Err(error.clone()),
                    });
                }
            }
            if let Some(error) = &failed {
                self.fail_partition(partition, error);
            }
        }
        if failed.is_none() {
            self.commits.send_modify(|n| *n += 1);
        }
    }

    async fn write_segment(
        &self,
        taken: &[(TopicPartition, i32, Vec<Pending>)],
    ) -> Result<(), LogError> {
        let segment_id = self.ids.ulid(self.clock.now_millis());
        let mut writer = SegmentWriter::new(segment_id, WriterOptions::default())
            .map_err(|e| LogError::Storage(e.to_string()))?;
        for (partition, _, pending) in taken {
            let (Some(first), Some(last)) = (pending.first(), pending.last()) else {
                continue;
            };
            let mut batches = BytesMut::new();
            for entry in pending {
                batches.extend_from_slice(&entry.batch);
            }
            let first_offset = first.base_offset;
            let meta = ChunkMeta {
                topic_id: partition.topic_id.0,
                partition: partition.partition,
                first_offset,
                last_offset: last.last_offset,
                record_count: pending.iter().map(|p| p.record_count).sum(),
                max_timestamp: pending.iter().map(|p| p.max_timestamp).max().unwrap_or(-1),
            };
            writer
                .add_chunk(meta, batches.freeze())
                .map_err(|e| LogError::Storage(e.to_string()))?;
        }
        let encoded = writer
            .finish()
            .map_err(|e| LogError::Storage(e.to_string()))?;
        let key = self.keys.segment(segment_id);
        let object_size = encoded.bytes.len() as u64;
        self.objects
            .put(&Path::from(key.as_str()), encoded.bytes.into())
            .await
            .map_err(|e| LogError::Storage(format!("uploading {}: {e}", key.as_str())))?;
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
        let commit = SegmentCommit {
            segment_id: SegmentId(segment_id),
            object_key: key.into_string(),
            object_size,
            chunks,
        };
        self.store.commit_segment(&commit).await.map_err(|error| {
            tracing::warn!(%error, segment = %commit.segment_id, "segment commit failed");
            match error {
                MetadataError::Fenced { partition, .. } => LogError::NotLeader(partition),
                other => LogError::Storage(other.to_string()),
            }
        })?;
        Ok(())
    }

    /// Committed batches of `partition` from the one holding `offset` on, up to
    /// about `max_bytes` (at least one chunk, as Kafka returns at least one batch).
    pub async fn read(
        &self,
        partition: TopicPartition,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, LogError> {
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
        let mut out = BytesMut::new();
        for entry in lookup.entries {
            if entry.base_offset >= state.high_watermark
                || (!out.is_empty() && out.len() >= max_bytes)
            {
                break;
            }
            let batches = self.read_chunk(&entry).await?;
            out.extend_from_slice(&records::skip_before(batches, offset));
        }
        Ok(ReadResult {
            high_watermark: state.high_watermark,
            log_start_offset: state.log_start_offset,
            records: out.freeze(),
        })
    }

    /// The batches of the chunk an index entry points at.
    async fn read_chunk(&self, entry: &IndexEntry) -> Result<Bytes, LogError> {
        let range = entry.byte_offset..entry.byte_offset + entry.byte_length;
        let bytes = self
            .objects
            .get_range(&Path::from(entry.object_key.as_str()), range)
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
}
