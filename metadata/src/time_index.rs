//! The per-partition time index: Kafka's `ListOffsets` by timestamp (and for the
//! largest timestamp) without scanning the log.
//!
//! Each partition keeps the running maximum of its chunks' largest timestamps
//! ([`PartitionState::max_timestamp`]). A segment commit that raises it writes a
//! *point* `("time_index", topic, partition, new maximum)` → the chunk
//! ([`TimeIndexPoint`]), in the same transaction as the chunk's index entry
//! ([`record_chunk`]). Because the running maximum never falls:
//!
//! - the first record with a timestamp at or above `ts` lies in the first chunk
//!   whose running maximum reaches `ts`, which is the first point at or after
//!   `ts` (one range read), however the timestamps go up and down;
//! - the largest timestamp is the last point, and its chunk is the first to hold
//!   it.
//!
//! The log start. The running maximum covers the whole log, deleted records
//! included. When the point found lies below the log start (`DeleteRecords` or
//! retention removed the records that reached `ts` first), the search is
//! *clamped*: it starts at the entry covering the log start, and the answer may
//! lie further on (see [`TimestampLookup::clamped`]); a largest timestamp first
//! reached below the log start is reported as such
//! ([`MaxTimestampLookup::below_log_start`]). Points of chunks below the log
//! start stay where they are: reads clamp instead. They go with the topic
//! ([`MetadataStore::delete_topic`](crate::MetadataStore::delete_topic)); a
//! retention job that releases a partition's index entries below the log start
//! may clear them too: they are a prefix of the partition's points in key order.
//!
//! Partitions written by builds before the time index (their state decodes from
//! version 1) are time-indexed from their high watermark at upgrade on
//! ([`PartitionState::time_indexed_from`]); the index entries before it are
//! searched entry by entry, in the same transaction, until the log start passes
//! them.

use crate::MetadataError;
use crate::codec::{self, Versioned};
use crate::keys::Keyspace;
use crate::kv::{RangeOptions, Transaction, key_after, strinc};
use crate::model::{
    ChunkCommit, IndexEntry, MaxTimestampLookup, PartitionState, TimeIndexPoint, TimestampLookup,
    TimestampMax, TopicPartition,
};
use crate::store::{MetadataStore, read, write};

/// Index entries read per range read while scanning the entries before a
/// partition's time index begins.
const LEGACY_SCAN_PAGE: usize = 1024;

/// Records `chunk` in its partition's time index: a point if it raises the
/// running maximum. Called by the segment commit for every chunk, after its
/// checks and before `state` is written.
pub(crate) fn record_chunk(
    keys: &Keyspace,
    txn: &Transaction,
    state: &mut PartitionState,
    chunk: &ChunkCommit,
) {
    if state
        .max_timestamp
        .is_some_and(|max| chunk.max_timestamp <= max)
    {
        return;
    }
    let point = TimeIndexPoint {
        base_offset: chunk.base_offset,
        last_offset: chunk.last_offset,
    };
    write(
        txn,
        &keys.time_index_point(chunk.partition, chunk.max_timestamp),
        &point,
    );
    state.max_timestamp = Some(chunk.max_timestamp);
}

/// Where a timestamp search starts: the last offset of the first entry to read
/// (or any offset it covers), and whether the start was clamped to the log start.
#[derive(Debug, Clone, Copy)]
struct SearchStart {
    covering: i64,
    clamped: bool,
}

impl SearchStart {
    /// The search starts at the chunk `base_offset..=last_offset`, clamped to the
    /// log start if the chunk starts below it.
    fn at(base_offset: i64, last_offset: i64, log_start: i64) -> Self {
        if base_offset < log_start {
            Self {
                covering: log_start,
                clamped: true,
            }
        } else {
            Self {
                covering: last_offset,
                clamped: false,
            }
        }
    }
}

/// The index entries from the one covering `log_start` up to (not including)
/// the time index's first offset, a page at a time, handed to `visit` until it
/// returns `false`.
async fn scan_unindexed_entries(
    keys: &Keyspace,
    txn: &Transaction,
    partition: TopicPartition,
    state: &PartitionState,
    mut visit: impl FnMut(IndexEntry) -> bool,
) -> Result<(), MetadataError> {
    if state.time_indexed_from <= state.log_start_offset {
        return Ok(());
    }
    let mut begin = keys.index_entry(partition, state.log_start_offset);
    // Entries are keyed by their last offset; those before the time index end
    // below `time_indexed_from` (a chunk starts at the high watermark, so none
    // straddles it).
    let end = keys.index_entry(partition, state.time_indexed_from);
    loop {
        let pairs = txn
            .get_range(&begin, &end, RangeOptions::first(LEGACY_SCAN_PAGE))
            .await?;
        for pair in &pairs {
            if !visit(codec::decode(&pair.value)?) {
                return Ok(());
            }
        }
        match pairs.last() {
            Some(last) if pairs.len() == LEGACY_SCAN_PAGE => begin = key_after(&last.key),
            _ => return Ok(()),
        }
    }
}

impl MetadataStore {
    /// The index entries of `partition` to search for the first record whose
    /// timestamp is at least `timestamp` (Kafka's `ListOffsets` by timestamp), at
    /// most `limit`, with the partition's state, from one snapshot.
    ///
    /// The entries start at the first chunk whose running maximum timestamp
    /// reaches `timestamp`, which holds the record, unless that chunk starts
    /// below the log start: then they start at the entry covering the log start
    /// and [`TimestampLookup::clamped`] is set. No entries: no record reaches
    /// `timestamp`.
    ///
    /// Cost: one range read of the time index and one of the index, however
    /// long the log, for partitions created with the time index. Partitions
    /// written before it also scan their older entries (from the log start to
    /// [`PartitionState::time_indexed_from`]) until the log start passes them.
    pub async fn lookup_by_timestamp(
        &self,
        partition: TopicPartition,
        timestamp: i64,
        limit: usize,
    ) -> Result<TimestampLookup, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let state = Self::partition_in(keys, &txn, partition).await?;
                let log_start = state.log_start_offset;
                let mut start = None;
                scan_unindexed_entries(keys, &txn, partition, &state, |entry| {
                    if entry.max_timestamp < timestamp {
                        return true;
                    }
                    start = Some(SearchStart::at(
                        entry.base_offset,
                        entry.last_offset,
                        log_start,
                    ));
                    false
                })
                .await?;
                if start.is_none() {
                    let begin = keys.time_index_point(partition, timestamp);
                    let end = strinc(&keys.time_index_of(partition));
                    let pairs = txn.get_range(&begin, &end, RangeOptions::first(1)).await?;
                    if let Some(pair) = pairs.first() {
                        let point: TimeIndexPoint = codec::decode(&pair.value)?;
                        start = Some(SearchStart::at(
                            point.base_offset,
                            point.last_offset,
                            log_start,
                        ));
                    }
                }
                let Some(start) = start else {
                    return Ok(TimestampLookup {
                        state,
                        entries: Vec::new(),
                        clamped: false,
                    });
                };
                let begin = keys.index_entry(partition, start.covering);
                let end = strinc(&keys.index_of(partition));
                let entries = txn
                    .get_range(&begin, &end, RangeOptions::first(limit))
                    .await?
                    .iter()
                    .map(|pair| codec::decode::<IndexEntry>(&pair.value))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(TimestampLookup {
                    state,
                    entries,
                    clamped: start.clamped,
                })
            })
            .await
    }

    /// The largest record timestamp of `partition` and the first chunk holding
    /// it (Kafka's `ListOffsets` for `MAX_TIMESTAMP`), with the partition's
    /// state, from one snapshot. If that chunk starts below the log start the
    /// answer is [`MaxTimestampLookup::below_log_start`] instead: the time index
    /// cannot tell the largest readable timestamp. The answer reads the last
    /// time-index point (plus, for partitions written before the time index,
    /// their older entries, as [`MetadataStore::lookup_by_timestamp`] does).
    pub async fn max_timestamp(
        &self,
        partition: TopicPartition,
    ) -> Result<MaxTimestampLookup, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let state = Self::partition_in(keys, &txn, partition).await?;
                let log_start = state.log_start_offset;
                // (timestamp, chunk base offset, chunk last offset), first holder.
                let mut best: Option<(i64, i64, i64)> = None;
                scan_unindexed_entries(keys, &txn, partition, &state, |entry| {
                    if best.is_none_or(|(max, _, _)| entry.max_timestamp > max) {
                        best = Some((entry.max_timestamp, entry.base_offset, entry.last_offset));
                    }
                    true
                })
                .await?;
                let last_point = txn
                    .get_prefix(&keys.time_index_of(partition), RangeOptions::last(1))
                    .await?;
                if let Some(pair) = last_point.first() {
                    let timestamp = keys.time_index_timestamp(&pair.key).ok_or_else(|| {
                        MetadataError::Corrupt {
                            what: TimeIndexPoint::WHAT,
                            detail: "malformed time index key".into(),
                        }
                    })?;
                    let point: TimeIndexPoint = codec::decode(&pair.value)?;
                    // Indexed chunks come after the unindexed ones: they hold the
                    // maximum first only if they hold a larger one.
                    if best.is_none_or(|(max, _, _)| timestamp > max) {
                        best = Some((timestamp, point.base_offset, point.last_offset));
                    }
                }
                let Some((timestamp, base_offset, last_offset)) = best else {
                    return Ok(MaxTimestampLookup {
                        state,
                        max: None,
                        below_log_start: false,
                    });
                };
                if base_offset < log_start {
                    return Ok(MaxTimestampLookup {
                        state,
                        max: None,
                        below_log_start: true,
                    });
                }
                let entry: IndexEntry = read(&txn, &keys.index_entry(partition, last_offset))
                    .await?
                    .ok_or_else(|| MetadataError::Corrupt {
                        what: TimeIndexPoint::WHAT,
                        detail: format!(
                            "the time index of {partition} names offset {last_offset}, which no \
                             index entry ends at"
                        ),
                    })?;
                Ok(MaxTimestampLookup {
                    state,
                    max: Some(TimestampMax { timestamp, entry }),
                    below_log_start: false,
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fjord_common::{ManualClock, SequentialIds};
    use serde::Serialize;
    use ulid::Ulid;

    use super::*;
    use crate::kv::memory::MemoryBackend;
    use crate::kv::{Database, KvError, RetryPolicy};
    use crate::model::{NewTopic, SegmentCommit, SegmentId};

    /// A partition state as version 1 wrote it.
    #[derive(Serialize)]
    struct PartitionStateV1 {
        leader: Option<i32>,
        leader_epoch: i32,
        log_start_offset: i64,
        high_watermark: i64,
    }

    fn store() -> MetadataStore {
        let db = Database::new(Arc::new(MemoryBackend::new()), RetryPolicy::default(), 1);
        MetadataStore::new(
            db,
            "test",
            Arc::new(ManualClock::new(1_700_000_000_000)),
            Arc::new(SequentialIds::default()),
        )
    }

    async fn commit(store: &MetadataStore, tp: TopicPartition, base: i64, max_timestamp: i64) {
        let id = SegmentId(Ulid::from_parts(
            1_700_000_000_000,
            u128::try_from(base).unwrap(),
        ));
        let commit = SegmentCommit {
            segment_id: id,
            object_key: format!("segments/{id}"),
            object_size: 10,
            chunks: vec![ChunkCommit {
                partition: tp,
                leader_epoch: 1,
                base_offset: base,
                last_offset: base + 1,
                record_count: 2,
                max_timestamp,
                byte_offset: 0,
                byte_length: 10,
            }],
            producers: Vec::new(),
            aborted: Vec::new(),
        };
        store.commit_segment(&commit).await.unwrap();
    }

    /// A partition whose first chunks were committed before the time index (its
    /// state is version 1, no points for them): searches cover those entries one
    /// by one and the time index after them, exactly.
    #[tokio::test]
    async fn partitions_from_before_the_time_index_are_searched_exactly() {
        let store = store();
        let topic = store.create_topic(NewTopic::new("old", 1)).await.unwrap();
        let tp = TopicPartition::new(topic.id, 0);
        store.acquire_leadership(tp, 1).await.unwrap();
        // Chunk i covers offsets 2i..=2i+1; its timestamps go down and up.
        let timestamps: Vec<i64> = (0..60)
            .map(|i: i64| 1_000 + (i * 37 % 23) * 10 + if i == 20 { 5_000 } else { 0 })
            .collect();
        for (i, timestamp) in timestamps.iter().take(30).enumerate() {
            commit(&store, tp, 2 * i as i64, *timestamp).await;
        }
        // Make those 30 chunks pre-time-index: a version 1 state, no points.
        let keys = store.keyspace().clone();
        let mut v1 = vec![1u8];
        v1.extend(
            postcard::to_allocvec(&PartitionStateV1 {
                leader: Some(1),
                leader_epoch: 1,
                log_start_offset: 0,
                high_watermark: 60,
            })
            .unwrap(),
        );
        store
            .database()
            .run(|txn, _| {
                let (keys, v1) = (keys.clone(), v1.clone());
                async move {
                    txn.clear_prefix(&keys.time_index_of(tp));
                    txn.set(&keys.partition(tp), &v1);
                    Ok::<_, KvError>(())
                }
            })
            .await
            .unwrap();
        assert_eq!(
            store.partition_state(tp).await.unwrap().time_indexed_from,
            60
        );
        for (i, timestamp) in timestamps.iter().enumerate().skip(30) {
            commit(&store, tp, 2 * i as i64, *timestamp).await;
        }
        let state = store.partition_state(tp).await.unwrap();
        assert_eq!((state.time_indexed_from, state.high_watermark), (60, 120));

        for log_start in [0, 21, 41, 59, 60, 75] {
            store.delete_records(tp, log_start).await.unwrap();
            let first_chunk = usize::try_from(log_start / 2).unwrap();
            // The chunks a search covers: from the one covering the log start
            // while unindexed chunks are readable (they are scanned one by one),
            // else every indexed chunk (the running maximum began at chunk 30).
            let searched = if log_start < 60 { first_chunk } else { 30 };
            let base_of = |chunk: usize| 2 * chunk as i64;
            for wanted in 900..1_300 {
                let lookup = store.lookup_by_timestamp(tp, wanted, 1).await.unwrap();
                let expected = match (searched..60).find(|&i| timestamps[i] >= wanted) {
                    None => (None, false),
                    Some(i) if base_of(i) >= log_start => (Some(base_of(i) + 1), false),
                    // Reached first below the log start: clamped to the chunk
                    // covering it.
                    Some(_) => (Some(base_of(first_chunk) + 1), true),
                };
                let got = (
                    lookup.entries.first().map(|e| e.last_offset),
                    lookup.clamped,
                );
                assert_eq!(got, expected, "log start {log_start}, timestamp {wanted}");
            }
            // The largest timestamp and its first chunk, unless that chunk starts
            // below the log start.
            let max = store.max_timestamp(tp).await.unwrap();
            let largest = *timestamps[searched..].iter().max().unwrap();
            let holder = (searched..60).find(|&i| timestamps[i] == largest).unwrap();
            if base_of(holder) >= log_start {
                let found = max.max.unwrap();
                assert_eq!(
                    (
                        found.timestamp,
                        found.entry.last_offset,
                        max.below_log_start
                    ),
                    (largest, base_of(holder) + 1, false),
                    "log start {log_start}"
                );
            } else {
                assert_eq!(
                    (max.max, max.below_log_start),
                    (None, true),
                    "log start {log_start}"
                );
            }
        }
    }
}
