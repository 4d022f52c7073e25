//! Reading committed batches from an offset.
//!
//! For a partition this agent leads, the committed high watermark and log
//! start are known here, and recently committed chunks are served from memory
//! (the tail cache, filled at commit) without touching metadata or the bucket.
//! Otherwise: index lookup in metadata, then the chunk's byte range from the
//! local disk cache, or one ranged GET shared by every concurrent reader of that
//! range. Chunks are decompressed off the async workers when they are large.
//!
//! An object the index names that the bucket does not have was either moved
//! by compaction and deleted after the grace period (a second look at the
//! index finds the chunks in their new object), or released because the log
//! start moved past it (retention or `DeleteRecords`: the read is out of
//! range), or lost: data loss, reported as such.

use bytes::{Bytes, BytesMut};
use fjord_metadata::{IndexEntry, TopicPartition};

use crate::log::state;
use crate::log::{LogError, PartitionLogs, tail_key};
use crate::records;

/// Aborted transactions looked up for one `read_committed` read.
const MAX_ABORTED_PER_READ: usize = 10_000;

/// Chunks larger than this are decompressed on the blocking pool.
const INLINE_DECODE_BYTES: usize = 64 * 1024;

/// What a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// Its last stable offset (at most the high watermark).
    pub last_stable_offset: i64,
    /// Its log start offset.
    pub log_start_offset: i64,
    /// Whole record batches from the one holding the offset on (possibly empty).
    pub records: Bytes,
}

/// Why a read through the index failed.
enum ReadError {
    /// An object the index named is not in the bucket.
    Missing(LogError),
    /// Anything else.
    Other(LogError),
}

impl From<LogError> for ReadError {
    fn from(error: LogError) -> Self {
        ReadError::Other(error)
    }
}

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

impl PartitionLogs {
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
        match self.read_indexed(partition, offset, max_bytes).await {
            // The object an entry named is gone: compaction may have moved
            // its chunks and the garbage collector deleted it after this
            // reader's look at the index. One more look finds where they are.
            Err(ReadError::Missing(_)) => {
                match self.read_indexed(partition, offset, max_bytes).await {
                    Ok(read) => Ok(read),
                    Err(ReadError::Missing(error)) => {
                        Err(self.explain_missing(partition, offset, error).await)
                    }
                    Err(ReadError::Other(error)) => Err(error),
                }
            }
            Ok(read) => Ok(read),
            Err(ReadError::Other(error)) => Err(error),
        }
    }

    /// A read through the index in metadata: one lookup, then the chunks.
    async fn read_indexed(
        &self,
        partition: TopicPartition,
        offset: i64,
        max_bytes: usize,
    ) -> Result<ReadResult, ReadError> {
        let lookup = self
            .store
            .lookup(partition, offset, 16)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))?;
        let state = lookup.state;
        if offset < state.log_start_offset || offset > state.high_watermark {
            return Err(ReadError::Other(LogError::OffsetOutOfRange {
                offset,
                log_start: state.log_start_offset,
                high_watermark: state.high_watermark,
            }));
        }
        let mut parts = Vec::new();
        let mut len = 0;
        for entry in lookup.entries {
            if entry.base_offset >= state.high_watermark || (len > 0 && len >= max_bytes) {
                break;
            }
            let chunk = self.read_chunk(&entry).await.map_err(|error| {
                let missing = matches!(&error, LogError::Storage(e) if e.kind() == fjord_storage::ErrorKind::NotFound);
                if missing {
                    ReadError::Missing(error)
                } else {
                    ReadError::Other(error)
                }
            })?;
            let batches = records::skip_before(chunk, offset);
            len += batches.len();
            parts.push(batches);
        }
        Ok(ReadResult {
            high_watermark: state.high_watermark,
            last_stable_offset: state.last_stable_offset(),
            log_start_offset: state.log_start_offset,
            records: concat(parts),
        })
    }

    /// A chunk missing from the bucket twice: out of range if the log start
    /// moved past `offset` meanwhile, else data loss, reported as it is.
    async fn explain_missing(
        &self,
        partition: TopicPartition,
        offset: i64,
        error: LogError,
    ) -> LogError {
        if let Ok(state) = self.store.partition_state(partition).await
            && offset < state.log_start_offset
        {
            return LogError::OffsetOutOfRange {
                offset,
                log_start: state.log_start_offset,
                high_watermark: state.high_watermark,
            };
        }
        error
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
        let Some(writer) = self.writers.get(&partition) else {
            return Ok(None);
        };
        let (high_watermark, log_start_offset, last_stable_offset) = {
            let writer = state::lock(&writer);
            (writer.committed, writer.log_start, writer.last_stable())
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
            last_stable_offset,
            log_start_offset,
            records,
        }))
    }

    /// The batches of the chunk an index entry points at: from the disk cache,
    /// or one GET shared by concurrent readers (of the whole object when it is
    /// small enough, caching its other chunks for the reads that follow).
    pub(crate) async fn read_chunk(&self, entry: &IndexEntry) -> Result<Bytes, LogError> {
        let range = entry.byte_offset..entry.byte_offset + entry.byte_length;
        let key = self
            .keys
            .segment_id_of(&entry.object_key)
            .map(|id| self.keys.segment(id))
            .ok_or_else(|| LogError::ForeignObject(entry.object_key.clone()))?;
        let bytes = self
            .reader
            .get_range_in_segment(
                &key,
                range,
                entry.object_size,
                self.settings.whole_object_read_bytes,
            )
            .await
            .map_err(LogError::storage)?;
        let chunk = if bytes.len() > INLINE_DECODE_BYTES {
            tokio::task::spawn_blocking(move || fjord_storage::decode_chunk(bytes))
                .await
                .map_err(|e| match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(_) => LogError::Stopped,
                })?
        } else {
            fjord_storage::decode_chunk(bytes)
        }
        .map_err(LogError::storage)?;
        Ok(chunk.batches)
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
        if let Some(writer) = self.writers.get(&partition) {
            let writer = state::lock(&writer);
            return Ok((writer.log_start, writer.committed));
        }
        let state = self.bounds(partition).await?;
        Ok((state.log_start_offset, state.high_watermark))
    }

    /// `(log start, high watermark, last stable offset)` of `partition`: from
    /// memory when this agent leads it, else from metadata.
    pub async fn stable_offsets(
        &self,
        partition: TopicPartition,
    ) -> Result<(i64, i64, i64), LogError> {
        if let Some(writer) = self.writers.get(&partition) {
            let writer = state::lock(&writer);
            return Ok((writer.log_start, writer.committed, writer.last_stable()));
        }
        let state = self.bounds(partition).await?;
        Ok((
            state.log_start_offset,
            state.high_watermark,
            state.last_stable_offset(),
        ))
    }

    /// The idempotent and transactional producers of `partition`: this
    /// leader's table (what it accepted), else the committed states.
    pub async fn producers(
        &self,
        partition: TopicPartition,
    ) -> Result<Vec<(i64, fjord_metadata::ProducerState)>, LogError> {
        if let Some(writer) = self.writers.get(&partition) {
            let writer = state::lock(&writer);
            return Ok(writer.producers.all());
        }
        self.store
            .producer_states(partition)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))
    }

    /// The aborted transactions a `read_committed` read of `partition` from
    /// `from_offset` to `to_offset` must skip (Fetch's `aborted_transactions`).
    pub async fn aborted_transactions(
        &self,
        partition: TopicPartition,
        from_offset: i64,
        to_offset: i64,
    ) -> Result<Vec<fjord_metadata::AbortedTransaction>, LogError> {
        self.store
            .aborted_transactions(partition, from_offset, to_offset, MAX_ABORTED_PER_READ)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))
    }
}
