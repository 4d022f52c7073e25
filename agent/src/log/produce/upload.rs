//! Building a flush's segment object and putting it in the bucket.
//!
//! The object is uploaded before the metadata commit that references it (see
//! the ordering invariants in [`super`]); its key is new for every attempt, so
//! an upload retried after a failure never overwrites anything.

use std::collections::HashMap;

use bytes::BytesMut;
use fjord_metadata::{ChunkCommit, ProducerCommit, ProducerState, SegmentCommit, SegmentId};
use fjord_metadata::{TopicId, TopicPartition};
use fjord_storage::{ChunkMeta, SegmentWriter, WriterOptions};
use object_store::ObjectStoreExt;
use object_store::path::Path;

use super::flush::{Flush, Uploaded};
use crate::log::{LogError, PartitionLogs};
use crate::records;

impl PartitionLogs {
    /// Builds the segment object of `flush` and uploads it.
    pub(crate) async fn upload(&self, flush: &Flush) -> Result<Uploaded, LogError> {
        let segment_id = self.ids.ulid(self.clock.now_millis());
        let options = WriterOptions {
            compression: fjord_storage::Compression::Zstd {
                level: self.settings.compression_level,
            },
        };
        let mut writer = SegmentWriter::new(segment_id, options).map_err(LogError::storage)?;
        let mut producers = Vec::new();
        let mut tail = Vec::with_capacity(flush.parts.len());
        for part in &flush.parts {
            let (Some(first), Some(last)) = (part.batches.first(), part.batches.last()) else {
                continue;
            };
            let mut batches =
                BytesMut::with_capacity(part.batches.iter().map(|p| p.batch.len()).sum());
            let mut latest: HashMap<i64, &ProducerState> = HashMap::new();
            for entry in &part.batches {
                records::put_assigned(&mut batches, &entry.batch, entry.base_offset, part.epoch);
                if let Some((producer_id, state)) = &entry.producer {
                    latest.insert(*producer_id, state);
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
            let batches = batches.freeze();
            tail.push((
                part.partition,
                first.base_offset,
                last.last_offset,
                batches.clone(),
            ));
            let hint = records::chunk_hint(part.batches.iter().map(|entry| &entry.batch[..]));
            writer
                .add_chunk_with_hint(meta, batches, hint)
                .map_err(LogError::storage)?;
        }
        // Compression is CPU work: off the async workers.
        let encoded = tokio::task::spawn_blocking(move || writer.finish())
            .await
            .map_err(|e| match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => LogError::Stopped,
            })?
            .map_err(LogError::storage)?;
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
            },
            tail,
            built,
        })
    }
}
