//! Log compaction's side of metadata (`cleanup.policy=compact`): each
//! partition's cleaner checkpoint, what a cleaner reads to plan a clean, and
//! the swap of cleaned entries.
//!
//! A cleaner (the agent's `maintenance::log_compaction` job) rewrites a
//! prefix of a partition's index entries with the records Kafka's rules keep
//! and swaps the new entries in with the object-compaction protocol (see the
//! `compaction` module: register the output, upload it, swap entries that did
//! not change meanwhile), except that the new entries may hold fewer records
//! than those they replace ([`MetadataStore::swap_log_compacted`]).
//!
//! Per partition, `("log_compaction", topic_id, partition)` →
//! [`LogCompactionState`] records what Kafka keeps in its
//! `cleaner-offset-checkpoint` file: the first offset not yet cleaned (the
//! first *dirty* offset), so the next clean knows how much is dirty. It also
//! keeps the earliest delete horizon of the cleaned part, so that a clean
//! comes back for expired tombstones even when nothing new was written.
//!
//! # Invariants
//!
//! - A log compaction swap keeps every offset's place: its new entries tile
//!   exactly the offsets of the entries they replace, epoch by epoch, and
//!   hold at most their records; the log start, the high watermark and the
//!   time index points stay valid (records only go).
//! - Entries reaching the partition's last stable offset are never replaced.
//! - The checkpoint only moves forward ([`MetadataStore::record_log_compaction`]);
//!   a checkpoint that moved too little costs a clean that finds nothing to
//!   drop, never a wrong answer.

use serde::{Deserialize, Serialize};

use crate::MetadataError;
use crate::codec::{self, Versioned};
use crate::compaction::{CompactionSwap, Records, SwapOutcome};
use crate::kv::{RangeOptions, strinc};
use crate::model::*;
use crate::store::{MetadataStore, read, write};

/// Log compaction's state of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogCompactionState {
    /// The first offset not yet cleaned (Kafka's cleaner checkpoint): the
    /// records below it were deduplicated against every key below it.
    pub first_dirty_offset: i64,
    /// The earliest delete horizon of a batch of the cleaned part that still
    /// holds a tombstone or a transaction marker: once it has passed, a clean
    /// is due even without new data. `None`: none.
    pub delete_horizon_ms: Option<i64>,
    /// When the last clean finished, by the cleaner's clock (informational).
    pub cleaned_at_ms: i64,
}

impl Versioned for LogCompactionState {
    const WHAT: &'static str = "log compaction state";
    const VERSION: u8 = 1;
}

/// A producer whose state the partition keeps (an idempotent or
/// transactional producer not yet expired).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    /// Its id.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
    /// The last offset of its last data batch in the partition, if known.
    pub last_data_offset: Option<i64>,
}

/// What a cleaner reads to plan a clean of one partition, from one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogCompactionView {
    /// The partition's state.
    pub state: PartitionState,
    /// Its log compaction state (`None`: never cleaned).
    pub compaction: Option<LogCompactionState>,
    /// The producers whose last batch a clean must keep (Kafka keeps it, even
    /// emptied of records, so the producer's state can be rebuilt from the
    /// log).
    pub producers: Vec<ActiveProducer>,
}

impl MetadataStore {
    /// The partition's state, its log compaction state and its active
    /// producers, from one snapshot.
    pub async fn log_compaction_view(
        &self,
        partition: TopicPartition,
    ) -> Result<LogCompactionView, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let state = Self::partition_in(keys, &txn, partition).await?;
                let compaction = read(&txn, &keys.log_compaction(partition)).await?;
                let prefix = keys.producer_states_of(partition);
                let pairs = txn
                    .get_range(&prefix, &strinc(&prefix), RangeOptions::default())
                    .await?;
                let mut producers = Vec::with_capacity(pairs.len());
                for pair in &pairs {
                    let Some(producer_id) = keys.producer_state_id(&pair.key) else {
                        continue;
                    };
                    let producer: ProducerState = codec::decode(&pair.value)?;
                    producers.push(ActiveProducer {
                        producer_id,
                        producer_epoch: producer.producer_epoch,
                        last_data_offset: producer.batches.last().map(|b| b.last_offset),
                    });
                }
                Ok(LogCompactionView {
                    state,
                    compaction,
                    producers,
                })
            })
            .await
    }

    /// A partition's log compaction state (`None`: never cleaned).
    pub async fn log_compaction_state(
        &self,
        partition: TopicPartition,
    ) -> Result<Option<LogCompactionState>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move { read(&txn, &keys.log_compaction(partition)).await })
            .await
    }

    /// The log compaction states of every cleaned partition of `topic_id`,
    /// by partition (one range read: a leader notices cleans by them).
    pub async fn log_compaction_states_of_topic(
        &self,
        topic_id: TopicId,
    ) -> Result<Vec<(i32, LogCompactionState)>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let pairs = txn
                    .get_prefix(
                        &keys.log_compactions_of_topic(topic_id),
                        RangeOptions::default(),
                    )
                    .await?;
                let mut states = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    let partition =
                        keys.partition_of_log_compaction(&pair.key).ok_or_else(|| {
                            MetadataError::Corrupt {
                                what: LogCompactionState::WHAT,
                                detail: "malformed log compaction key".into(),
                            }
                        })?;
                    states.push((partition, codec::decode(&pair.value)?));
                }
                Ok(states)
            })
            .await
    }

    /// Records a finished clean of `partition`: the checkpoint moves to
    /// `state.first_dirty_offset` unless it is further already (two cleaners
    /// racing), and the delete horizon and time are `state`'s. Nothing is
    /// written for a partition that no longer exists.
    pub async fn record_log_compaction(
        &self,
        partition: TopicPartition,
        state: LogCompactionState,
    ) -> Result<(), MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                if txn.get(&keys.partition(partition)).await?.is_none() {
                    return Ok(());
                }
                let key = keys.log_compaction(partition);
                let previous: Option<LogCompactionState> = read(&txn, &key).await?;
                let first_dirty_offset = previous.map_or(state.first_dirty_offset, |p| {
                    p.first_dirty_offset.max(state.first_dirty_offset)
                });
                let next = LogCompactionState {
                    first_dirty_offset,
                    ..state
                };
                write(&txn, &key, &next);
                Ok(())
            })
            .await
    }

    /// Forgets the log compaction states of a deleted topic's partitions.
    pub async fn forget_log_compaction(&self, topic_id: TopicId) -> Result<(), MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let prefix = keys.log_compactions_of_topic(topic_id);
                txn.clear_range(&prefix, &strinc(&prefix));
                Ok(())
            })
            .await
    }

    /// Swaps cleaned entries in, as [`MetadataStore::swap_compacted`] does for
    /// object compaction (the output registered with
    /// [`MetadataStore::register_compaction_output`] and uploaded first; a
    /// partition whose entries changed meanwhile is skipped), except that each
    /// new entry may hold fewer records than the entries it replaces, and a
    /// partition whose replaced entries reach its last stable offset is
    /// skipped. `now_ms` is the cleaner's clock.
    pub async fn swap_log_compacted(
        &self,
        swap: &CompactionSwap,
        now_ms: i64,
    ) -> Result<SwapOutcome, MetadataError> {
        self.swap_entries(swap, now_ms, Records::AtMost).await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fjord_common::{ManualClock, SequentialIds};

    use super::*;
    use crate::compaction::{CompactedInput, PartitionSwap};
    use crate::kv::memory::MemoryBackend;
    use crate::kv::{Database, RetryPolicy};
    use crate::{ChunkCommit, NewTopic, SegmentCommit};

    /// A store whose clock stands at 2023-11-14 (the segment ids' time).
    fn store() -> MetadataStore {
        let db = Database::new(Arc::new(MemoryBackend::new()), RetryPolicy::default(), 1);
        MetadataStore::new(
            db,
            "test",
            Arc::new(ManualClock::new(1_700_000_000_000)),
            Arc::new(SequentialIds::default()),
        )
    }

    async fn commit(store: &MetadataStore, tp: TopicPartition, base: i64, last: i64, n: u64) {
        commit_at(store, tp, base, last, n, 1_700_000_000_000).await;
    }

    async fn commit_at(
        store: &MetadataStore,
        tp: TopicPartition,
        base: i64,
        last: i64,
        n: u64,
        max_timestamp: i64,
    ) {
        let id = SegmentId(ulid::Ulid::from_parts(1_700_000_000_000, u128::from(n) + 1));
        let commit = SegmentCommit {
            segment_id: id,
            object_key: format!("o/{n}"),
            object_size: 1_000,
            chunks: vec![ChunkCommit {
                partition: tp,
                leader_epoch: 1,
                base_offset: base,
                last_offset: last,
                record_count: u32::try_from(last - base + 1).unwrap(),
                max_timestamp,
                byte_offset: 0,
                byte_length: 100,
            }],
            producers: Vec::new(),
            aborted: Vec::new(),
        };
        store.commit_segment(&commit).await.unwrap();
    }

    fn output(swap_id: SegmentId, base: i64, last: i64, records: u32) -> IndexEntry {
        IndexEntry {
            base_offset: base,
            last_offset: last,
            record_count: records,
            max_timestamp: 1_700_000_000_000,
            leader_epoch: 1,
            segment_id: swap_id,
            object_key: "o/out".into(),
            byte_offset: 0,
            byte_length: 50,
            object_size: 500,
        }
    }

    #[tokio::test]
    async fn a_log_compaction_swap_may_drop_records_but_not_offsets() {
        let store = store();
        let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
        let tp = TopicPartition::new(topic.id, 0);
        store.acquire_leadership(tp, 1).await.unwrap();
        for (n, (base, last)) in [(0, 9), (10, 19), (20, 29)].into_iter().enumerate() {
            commit(&store, tp, base, last, n as u64).await;
        }
        let lookup = store.lookup(tp, 0, 10).await.unwrap();
        let inputs: Vec<CompactedInput> = lookup.entries[..2]
            .iter()
            .map(|e| CompactedInput {
                last_offset: e.last_offset,
                segment_id: e.segment_id,
                byte_offset: e.byte_offset,
            })
            .collect();
        let now = 1_700_000_000_010;
        let out = SegmentId(ulid::Ulid::from_parts(1_700_000_000_005, 99));
        store
            .register_compaction_output(out, "o/out", now)
            .await
            .unwrap();
        let swap = |outputs: Vec<IndexEntry>| CompactionSwap {
            segment_id: out,
            object_key: "o/out".into(),
            object_size: 500,
            partitions: vec![PartitionSwap {
                partition: tp,
                inputs: inputs.clone(),
                outputs,
            }],
        };
        // Object compaction's rule refuses fewer records.
        assert!(
            store
                .swap_compacted(&swap(vec![output(out, 0, 19, 3)]), now)
                .await
                .is_err()
        );
        // More records than replaced, or offsets not tiled: refused.
        assert!(
            store
                .swap_log_compacted(&swap(vec![output(out, 0, 19, 21)]), now)
                .await
                .is_err()
        );
        assert!(
            store
                .swap_log_compacted(&swap(vec![output(out, 0, 18, 3)]), now)
                .await
                .is_err()
        );
        let outcome = store
            .swap_log_compacted(
                &swap(vec![output(out, 0, 9, 1), output(out, 10, 19, 2)]),
                now,
            )
            .await
            .unwrap();
        assert_eq!(outcome.swapped, vec![tp]);
        assert_eq!(outcome.objects_freed, 2);
        let entries = store.lookup(tp, 0, 10).await.unwrap().entries;
        let shape: Vec<(i64, i64, u32)> = entries
            .iter()
            .map(|e| (e.base_offset, e.last_offset, e.record_count))
            .collect();
        assert_eq!(shape, vec![(0, 9, 1), (10, 19, 2), (20, 29, 10)]);

        // A second cleaner that read the same entries: they changed, its
        // swap is skipped and its output is garbage at once.
        let late = SegmentId(ulid::Ulid::from_parts(1_700_000_000_006, 7));
        store
            .register_compaction_output(late, "o/late", now)
            .await
            .unwrap();
        let late_swap = CompactionSwap {
            segment_id: late,
            object_key: "o/late".into(),
            object_size: 500,
            partitions: vec![PartitionSwap {
                partition: tp,
                inputs: inputs.clone(),
                outputs: vec![IndexEntry {
                    segment_id: late,
                    object_key: "o/late".into(),
                    ..output(late, 0, 19, 2)
                }],
            }],
        };
        let outcome = store.swap_log_compacted(&late_swap, now).await.unwrap();
        assert_eq!(outcome.skipped, vec![tp]);
        assert!(outcome.output_unused);
        assert_eq!(store.lookup(tp, 0, 10).await.unwrap().entries, entries);
    }

    /// The chunk that raised the running maximum is not the last one
    /// replaced: the point kept must name the new entry (the largest
    /// timestamp lookup reads the entry ending where its point ends), and the
    /// new entry keeps the largest timestamp of those it replaces.
    #[tokio::test]
    async fn the_time_index_point_kept_names_the_new_entry() {
        for log_compaction in [false, true] {
            let store = store();
            let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
            let tp = TopicPartition::new(topic.id, 0);
            store.acquire_leadership(tp, 1).await.unwrap();
            let high = 1_700_000_000_500;
            commit_at(&store, tp, 0, 9, 0, 1_700_000_000_100).await;
            commit_at(&store, tp, 10, 19, 1, high).await;
            commit_at(&store, tp, 20, 29, 2, 1_700_000_000_200).await;
            let entries = store.lookup(tp, 0, 10).await.unwrap().entries;
            let out = SegmentId(ulid::Ulid::from_parts(1_700_000_000_005, 99));
            let now = 1_700_000_000_010;
            store
                .register_compaction_output(out, "o/out", now)
                .await
                .unwrap();
            let merged = |max_timestamp| IndexEntry {
                max_timestamp,
                ..output(out, 0, 29, if log_compaction { 3 } else { 30 })
            };
            let swap = |outputs| CompactionSwap {
                segment_id: out,
                object_key: "o/out".into(),
                object_size: 500,
                partitions: vec![PartitionSwap {
                    partition: tp,
                    inputs: entries
                        .iter()
                        .map(|e| CompactedInput {
                            last_offset: e.last_offset,
                            segment_id: e.segment_id,
                            byte_offset: e.byte_offset,
                        })
                        .collect(),
                    outputs,
                }],
            };
            let run = |swap: CompactionSwap| {
                let store = store.clone();
                async move {
                    if log_compaction {
                        store.swap_log_compacted(&swap, now).await
                    } else {
                        store.swap_compacted(&swap, now).await
                    }
                }
            };
            // A cleaner's lower largest timestamp is refused: the point is
            // keyed by it.
            if log_compaction {
                assert!(run(swap(vec![merged(high - 1)])).await.is_err());
            }
            let outcome = run(swap(vec![merged(high)])).await.unwrap();
            assert_eq!(outcome.swapped, vec![tp]);
            assert_eq!(outcome.time_points_removed, 1);
            let max = store.max_timestamp(tp).await.unwrap().max.unwrap();
            assert_eq!(max.timestamp, high);
            assert_eq!((max.entry.base_offset, max.entry.last_offset), (0, 29));
            let found = store.lookup_by_timestamp(tp, high, 1).await.unwrap();
            assert_eq!(found.entries[0].last_offset, 29);
        }
    }

    #[tokio::test]
    async fn the_checkpoint_only_moves_forward_and_goes_with_its_topic() {
        let store = store();
        let topic = store.create_topic(NewTopic::new("t", 2)).await.unwrap();
        let tp = TopicPartition::new(topic.id, 1);
        let state = |first_dirty_offset, horizon| LogCompactionState {
            first_dirty_offset,
            delete_horizon_ms: horizon,
            cleaned_at_ms: 5,
        };
        assert_eq!(store.log_compaction_state(tp).await.unwrap(), None);
        store
            .record_log_compaction(tp, state(100, Some(7)))
            .await
            .unwrap();
        store
            .record_log_compaction(tp, state(50, None))
            .await
            .unwrap();
        assert_eq!(
            store.log_compaction_state(tp).await.unwrap(),
            Some(state(100, None))
        );
        let view = store.log_compaction_view(tp).await.unwrap();
        assert_eq!(view.compaction, Some(state(100, None)));
        assert!(view.producers.is_empty());
        store.forget_log_compaction(topic.id).await.unwrap();
        assert_eq!(store.log_compaction_state(tp).await.unwrap(), None);
    }
}
