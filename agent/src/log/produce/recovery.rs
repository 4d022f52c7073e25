//! Start-up: committing what an earlier run of this agent accepted into its WAL
//! and did not commit (`acks=1` batches survive a crash of the agent process
//! when its disk survives).
//!
//! A partition's WAL batches are committed again only while metadata still
//! records this agent as its leader under the epoch they were written in: then
//! no other agent has written to it since, and the batches past the committed
//! high watermark continue it exactly. The partition is resumed under that same
//! epoch (this agent is the same node). If another agent took the partition
//! over meanwhile (this one was judged dead), the batches are dropped — the
//! partition moved before they were committed, which `acks=1` does not survive
//! (see [`crate::log`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fjord_metadata::{MetadataError, TopicPartition};
use fjord_storage::wal::WalRecord;

use super::wal_record;
use crate::idempotence::{Decision, ProducerTable};
use crate::log::state::{self, PartitionWriter, Pending};
use crate::log::{LogError, PartitionLogs};
use crate::records;

/// Flushes recovery tries before it gives up (the agent then fails to start,
/// and the WAL is kept for the next try).
const RECOVERY_FLUSH_ATTEMPTS: u32 = 20;

/// The leader epoch a stored batch was written under (`partitionLeaderEpoch`,
/// bytes 12..16 of the header).
fn written_epoch(batch: &records::Batch) -> Option<i32> {
    let field: [u8; 4] = batch.bytes.get(12..16)?.try_into().ok()?;
    Some(i32::from_be_bytes(field))
}

impl PartitionLogs {
    /// Commits what the WAL holds beyond each partition's committed high
    /// watermark (see the module docs), then truncates the WAL. Call once,
    /// before serving. Returns the batches committed.
    pub async fn recover(self: &Arc<Self>, records: Vec<WalRecord>) -> Result<usize, LogError> {
        let mut by_partition: BTreeMap<TopicPartition, Vec<(u64, records::Batch)>> =
            BTreeMap::new();
        for record in records {
            let sequence = record.sequence;
            let Some((partition, batches)) = wal_record::parse(record.payload) else {
                tracing::warn!(sequence, "skipping a malformed WAL record");
                continue;
            };
            match records::parse_batches(&batches) {
                Ok(parsed) => by_partition
                    .entry(partition)
                    .or_default()
                    .extend(parsed.into_iter().map(|b| (sequence, b))),
                Err(error) => {
                    tracing::warn!(sequence, %error, "skipping a WAL record");
                }
            }
        }
        let mut recovered = Vec::new();
        let mut count = 0;
        for (partition, batches) in by_partition {
            let resumed = self.resume(partition, batches).await?;
            if resumed > 0 {
                recovered.push(partition);
                count += resumed;
            }
        }
        for attempt in 1..=RECOVERY_FLUSH_ATTEMPTS {
            let waiting = recovered.iter().any(|p| {
                self.writers
                    .get(p)
                    .is_some_and(|w| !state::lock(&w).is_idle())
            });
            if !waiting {
                break;
            }
            if attempt == RECOVERY_FLUSH_ATTEMPTS {
                return Err(LogError::Stopped);
            }
            self.flush_once().await;
            if recovered.iter().any(|p| {
                self.writers
                    .get(p)
                    .is_some_and(|w| !state::lock(&w).is_idle())
            }) {
                tokio::time::sleep(Duration::from_millis(100) * attempt).await;
            }
        }
        self.truncate_wal().await;
        Ok(count)
    }

    /// Resumes `partition` with the WAL's batches that continue its committed
    /// log under the epoch metadata records for this agent; returns how many.
    async fn resume(
        &self,
        partition: TopicPartition,
        mut batches: Vec<(u64, records::Batch)>,
    ) -> Result<usize, LogError> {
        let state = match self.store.partition_state(partition).await {
            Ok(state) => state,
            Err(MetadataError::UnknownPartition { .. } | MetadataError::UnknownTopic { .. }) => {
                return Ok(0);
            }
            Err(error) => return Err(LogError::Metadata(error)),
        };
        let epoch = state.leader_epoch;
        if state.leader != Some(self.node_id) {
            let uncommitted = batches
                .iter()
                .filter(|(_, b)| b.base_offset >= state.high_watermark)
                .count();
            if uncommitted > 0 {
                tracing::warn!(%partition, batches = uncommitted, leader = ?state.leader, "the partition moved before these WAL batches were committed; dropping them");
            }
            return Ok(0);
        }
        batches.retain(|(_, b)| written_epoch(b) == Some(epoch));
        batches.sort_by_key(|(_, b)| b.base_offset);
        let producers = self
            .store
            .producer_states(partition)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))?;
        let mut writer = PartitionWriter::new(
            epoch,
            state.high_watermark,
            state.log_start_offset,
            ProducerTable::from_committed(producers),
        );
        let mut kept = Vec::new();
        for (sequence, batch) in batches {
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
            let last_offset = batch.base_offset + i64::from(batch.last_offset_delta);
            kept.push(Pending {
                batch: batch.bytes,
                base_offset: batch.base_offset,
                last_offset,
                record_count: u32::try_from(batch.record_count).unwrap_or(0),
                max_timestamp: batch.max_timestamp,
                wal_sequence: Some(sequence),
                producer: match decision {
                    Decision::Append { producer_id, state } => Some((producer_id, state)),
                    Decision::Plain | Decision::Duplicate { .. } => None,
                },
                aborts: None,
                done: None,
                ahead: None,
            });
            writer.next_offset = last_offset + 1;
        }
        if kept.is_empty() {
            return Ok(0);
        }
        {
            let mut tracker = self.wal_tracker.lock().unwrap_or_else(|e| e.into_inner());
            for pending in &kept {
                if let Some(sequence) = pending.wal_sequence {
                    tracker.register(sequence, 1);
                }
            }
        }
        let count = kept.len();
        self.unflushed
            .add(kept.iter().map(|p| p.batch.len()).sum::<usize>());
        writer.pending = kept;
        tracing::info!(%partition, epoch, batches = count, from = state.high_watermark, "resuming a partition from the WAL");
        self.writers.insert(partition, writer);
        Ok(count)
    }
}
