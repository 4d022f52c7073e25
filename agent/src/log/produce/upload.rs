//! Building a flush's segment object and putting it in the bucket.
//!
//! The object is uploaded before the metadata commit that references it (see
//! the ordering invariants in [`super`]); its key is new for every attempt, so
//! an upload retried after a failure never overwrites anything.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use fjord_metadata::{
    AbortedTransactionCommit, ChunkCommit, ProducerCommit, ProducerState, SegmentCommit, SegmentId,
};
use fjord_metadata::{TopicId, TopicPartition};
use fjord_storage::{ChunkMeta, ChunkPiece, EncodedSegment, SegmentWriter, WriterOptions};
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::ahead::Ahead;
use super::flush::{Flush, Uploaded};
use crate::log::{LogError, PartitionLogs};
use crate::records;

/// One batch of a flush, as the build needs it (owned: the build runs on the
/// blocking pool).
struct BatchInput {
    batch: Bytes,
    base_offset: i64,
    last_offset: i64,
    ahead: Option<Arc<Ahead>>,
}

/// One partition's share of a flush, as the build needs it.
struct PartInput {
    partition: TopicPartition,
    epoch: i32,
    meta: ChunkMeta,
    batches: Vec<BatchInput>,
}

/// A built segment and what the tail cache gets: (partition, first offset,
/// last offset, batches) per piece of each chunk.
type Built = (EncodedSegment, Vec<(TopicPartition, i64, i64, Bytes)>);

/// Builds the segment object: each partition's batches assigned their offsets
/// and epoch, runs of small batches compressed here, large ones taken as
/// compressed ahead ([`super::ahead`]). Blocks: runs on the blocking pool.
fn build(mut writer: SegmentWriter, level: i32, parts: Vec<PartInput>) -> Result<Built, LogError> {
    let mut tail = Vec::new();
    for part in parts {
        let hint = records::chunk_hint(part.batches.iter().map(|entry| &entry.batch[..]));
        // A batch compressed ahead under another epoch is assigned again here.
        let epoch = part.epoch;
        let ahead_of = |entry: &BatchInput| entry.ahead.clone().filter(|a| a.epoch() == epoch);
        let mut pieces = Vec::new();
        let mut index = 0;
        while index < part.batches.len() {
            let entry = &part.batches[index];
            if let Some(ahead) = ahead_of(entry) {
                let piece = ahead.piece(&entry.batch, entry.base_offset, level).clone();
                tail.push((
                    part.partition,
                    entry.base_offset,
                    entry.last_offset,
                    piece.batches().clone(),
                ));
                pieces.push(ChunkPiece::Compressed(piece));
                index += 1;
                continue;
            }
            // A run of batches up to the next one compressed ahead.
            let run = part.batches[index..]
                .iter()
                .take_while(|e| ahead_of(e).is_none())
                .count();
            let run = &part.batches[index..index + run];
            let mut batches = BytesMut::with_capacity(run.iter().map(|e| e.batch.len()).sum());
            for entry in run {
                records::put_assigned(&mut batches, &entry.batch, entry.base_offset, part.epoch);
            }
            let batches = batches.freeze();
            if let (Some(first), Some(last)) = (run.first(), run.last()) {
                tail.push((
                    part.partition,
                    first.base_offset,
                    last.last_offset,
                    batches.clone(),
                ));
            }
            pieces.push(ChunkPiece::Batches(batches));
            index += run.len().max(1);
        }
        writer
            .add_pieces(part.meta, pieces, hint)
            .map_err(LogError::storage)?;
    }
    let encoded = writer.finish().map_err(LogError::storage)?;
    Ok((encoded, tail))
}

impl PartitionLogs {
    /// Builds the segment object of `flush` and uploads it.
    pub(crate) async fn upload(&self, flush: &Flush) -> Result<Uploaded, LogError> {
        let segment_id = self.ids.ulid(self.clock.now_millis());
        let mut producers = Vec::new();
        let mut aborted = Vec::new();
        let mut parts = Vec::with_capacity(flush.parts.len());
        for part in &flush.parts {
            let (Some(first), Some(last)) = (part.batches.first(), part.batches.last()) else {
                continue;
            };
            let mut latest: HashMap<i64, &ProducerState> = HashMap::new();
            for entry in &part.batches {
                if let Some((producer_id, state)) = &entry.producer {
                    latest.insert(*producer_id, state);
                }
                // An abort marker ends its producer's transaction that began
                // at `first_offset`.
                if let Some(first_offset) = entry.aborts
                    && let Some((producer_id, _)) = &entry.producer
                {
                    aborted.push(AbortedTransactionCommit {
                        partition: part.partition,
                        producer_id: *producer_id,
                        first_offset,
                        last_offset: entry.base_offset,
                    });
                }
            }
            producers.extend(
                latest
                    .into_iter()
                    .map(|(producer_id, state)| ProducerCommit {
                        partition: part.partition,
                        producer_id,
                        state: state.clone(),
                    }),
            );
            let meta = ChunkMeta {
                topic_id: part.partition.topic_id.0,
                partition: part.partition.partition,
                first_offset: first.base_offset,
                last_offset: last.last_offset,
                record_count: part.batches.iter().map(|p| p.record_count).sum(),
                max_timestamp: part
                    .batches
                    .iter()
                    .map(|p| p.max_timestamp)
                    .max()
                    .unwrap_or(-1),
            };
            parts.push(PartInput {
                partition: part.partition,
                epoch: part.epoch,
                meta,
                batches: part
                    .batches
                    .iter()
                    .map(|entry| BatchInput {
                        batch: entry.batch.clone(),
                        base_offset: entry.base_offset,
                        last_offset: entry.last_offset,
                        ahead: entry.ahead.clone(),
                    })
                    .collect(),
            });
        }
        // Compression and copies are CPU work: off the async workers.
        let level = self.settings.compression_level;
        let writer = SegmentWriter::new(segment_id, WriterOptions::zstd(level))
            .map_err(LogError::storage)?;
        let (encoded, tail) = tokio::task::spawn_blocking(move || build(writer, level, parts))
            .await
            .map_err(|e| match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => LogError::Stopped,
            })??;
        let built = tokio::time::Instant::now();
        let key = self.keys.segment(segment_id);
        let object_size = encoded.bytes.len() as u64;
        let chunks = encoded
            .footer
            .entries()
            .iter()
            .map(|entry| {
                let partition =
                    TopicPartition::new(TopicId(entry.meta.topic_id), entry.meta.partition);
                let epoch = flush
                    .parts
                    .iter()
                    .find(|part| part.partition == partition)
                    .map_or(-1, |part| part.epoch);
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
            .map_err(|e| {
                LogError::storage(fjord_storage::StorageError::object_store("put", &key, e))
            })?;
        Ok(Uploaded {
            commit: SegmentCommit {
                segment_id: SegmentId(segment_id),
                object_key: key.into_string(),
                object_size,
                chunks,
                producers,
                aborted,
            },
            tail,
            built,
        })
    }
}
