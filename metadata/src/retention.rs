//! Releasing a partition's log prefix, and the objects no index entry
//! references any more.
//!
//! Retention ([`MetadataStore::apply_retention`]) and `DeleteRecords`
//! ([`MetadataStore::delete_records`]) move a partition's log start forward.
//! [`MetadataStore::release_prefix`] then removes the index entries that lie
//! wholly below it, a bounded number per transaction, and drops their
//! references to their segment objects ([`SegmentRecord::live_chunks`]). The
//! transaction that drops an object's last reference deletes its segment
//! record and records the object as garbage (`("garbage", segment_id)` →
//! [`GarbageObject`], with the time it was freed). A deleted topic's entries
//! are released the same way ([`MetadataStore::release_deleted_topic`]).
//!
//! The object itself is deleted by the agent's garbage collector only after a
//! grace period longer than any reader holds an index answer, and its garbage
//! record is forgotten ([`MetadataStore::forget_garbage`]) only after the
//! bucket confirmed the delete.
//!
//! # Invariants
//!
//! - Only a prefix goes: the log start never moves backwards nor past the high
//!   watermark, and an entry is released only when its last offset is below
//!   the log start (or its topic is deleted).
//! - An object becomes garbage in the transaction that removes the last index
//!   entry referencing it, never earlier.
//! - Retention by time stops at the first entry that is not expired, so a
//!   record with a timestamp in the future holds back everything after it, as
//!   in Kafka; retention by size keeps the partition at or above the limit (the
//!   oldest entry goes only while what remains without it still reaches the
//!   limit).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::MetadataError;
use crate::codec::{self, Versioned};
use crate::kv::{RangeOptions, Transaction, key_after, strinc};
use crate::model::*;
use crate::store::{MetadataStore, write};

/// How much of a partition retention keeps (`None`: no limit).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionLimits {
    /// `retention.ms`: entries whose largest timestamp is older than this
    /// before `now` go.
    pub max_age_ms: Option<i64>,
    /// `retention.bytes`: the partition's bytes in the bucket (its chunks'
    /// lengths) it keeps at least.
    pub max_bytes: Option<u64>,
}

/// What [`MetadataStore::apply_retention`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionOutcome {
    /// The log start offset afterwards.
    pub log_start_offset: i64,
    /// Whether it moved.
    pub moved: bool,
}

/// What one [`MetadataStore::release_prefix`] call released.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Released {
    /// Index entries removed.
    pub entries: usize,
    /// Their chunks' bytes.
    pub bytes: u64,
    /// Objects that lost their last reference (now garbage).
    pub objects: usize,
    /// Whether more remain to release (the call stopped at its limit).
    pub more: bool,
}

/// An object no index entry references: deleted from the bucket once `freed_at_ms`
/// is older than the grace period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GarbageObject {
    /// The segment it was.
    pub segment_id: SegmentId,
    /// Its key in the bucket.
    pub object_key: String,
    /// Its size.
    pub object_size: u64,
    /// When its last reference went (by the releasing agent's clock).
    pub freed_at_ms: i64,
}

impl Versioned for GarbageObject {
    const WHAT: &'static str = "garbage object";
    const VERSION: u8 = 1;
}

/// Entries read per page while looking for the retention point: small, since
/// most passes find the first entry unexpired.
const RETENTION_PAGE: usize = 64;
/// Pages one pass reads looking for the end of the expired prefix; a longer
/// prefix is trimmed over several passes.
const RETENTION_PAGES: usize = 64;

impl MetadataStore {
    /// Moves `partition`'s log start past the index entries `limits` expire at
    /// `now_ms` (see the module's invariants). Releases nothing: call
    /// [`release_prefix`](Self::release_prefix) for that.
    pub async fn apply_retention(
        &self,
        partition: TopicPartition,
        limits: RetentionLimits,
        now_ms: i64,
    ) -> Result<RetentionOutcome, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let mut state = Self::partition_in(keys, &txn, partition).await?;
                let mut target = state.log_start_offset;
                if let Some(max_age) = limits.max_age_ms {
                    let cutoff = now_ms.saturating_sub(max_age);
                    target =
                        target.max(expired_through(&txn, keys, partition, &state, cutoff).await?);
                }
                if let Some(max_bytes) = limits.max_bytes {
                    target = target
                        .max(bytes_kept_from(&txn, keys, partition, &state, max_bytes).await?);
                }
                let target = target.min(state.high_watermark);
                let moved = target > state.log_start_offset;
                if moved {
                    state.log_start_offset = target;
                    write(&txn, &keys.partition(partition), &state);
                }
                Ok(RetentionOutcome {
                    log_start_offset: state.log_start_offset,
                    moved,
                })
            })
            .await
    }

    /// Removes up to `limit` index entries of `partition` that lie wholly below
    /// its log start, dropping their objects' references (see the module docs),
    /// and the aborted transactions whose markers lie below it.
    pub async fn release_prefix(
        &self,
        partition: TopicPartition,
        limit: usize,
        now_ms: i64,
    ) -> Result<Released, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let state = Self::partition_in(keys, &txn, partition).await?;
                if state.log_start_offset <= 0 {
                    return Ok(Released::default());
                }
                // Aborted transactions whose markers lie below the log start
                // concern no read any more.
                txn.clear_range(
                    &keys.aborted_transactions_of(partition),
                    &keys.aborted_transaction(partition, state.log_start_offset),
                );
                let begin = keys.index_of(partition);
                let end = key_after(&keys.index_entry(partition, state.log_start_offset - 1));
                release_range(&txn, keys, &begin, &end, limit, now_ms).await
            })
            .await
    }

    /// Releases up to `limit` index entries of the deleted topic `topic_id`;
    /// once none is left, forgets the deletion record. Returns what it released
    /// (`more` while entries or the record remain).
    pub async fn release_deleted_topic(
        &self,
        topic_id: TopicId,
        limit: usize,
        now_ms: i64,
    ) -> Result<Released, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let prefix = keys.index_of_topic(topic_id);
                let released =
                    release_range(&txn, keys, &prefix, &strinc(&prefix), limit, now_ms).await?;
                if !released.more {
                    txn.clear(&keys.deleted_topic(topic_id));
                }
                Ok(released)
            })
            .await
    }

    /// Deleted topics whose entries still await release.
    pub async fn deleted_topics(&self) -> Result<Vec<DeletedTopic>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let prefix = keys.deleted_topics();
                let pairs = txn
                    .get_range(&prefix, &strinc(&prefix), RangeOptions::default())
                    .await?;
                pairs
                    .iter()
                    .map(|pair| codec::decode::<DeletedTopic>(&pair.value))
                    .collect()
            })
            .await
    }

    /// Up to `limit` objects awaiting deletion, oldest segment ids first.
    pub async fn garbage_objects(&self, limit: usize) -> Result<Vec<GarbageObject>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let prefix = keys.garbage_objects();
                let pairs = txn
                    .get_range(&prefix, &strinc(&prefix), RangeOptions::first(limit))
                    .await?;
                pairs
                    .iter()
                    .map(|pair| codec::decode::<GarbageObject>(&pair.value))
                    .collect()
            })
            .await
    }

    /// Which of `segments` metadata knows nothing of: neither committed (a
    /// segment record), nor awaiting deletion (a garbage record), nor a
    /// registered compaction output. Objects of
    /// such segments old enough that no commit may still take them are orphans.
    pub async fn unknown_segments(
        &self,
        segments: &[SegmentId],
    ) -> Result<Vec<SegmentId>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let mut reads = Vec::with_capacity(segments.len() * 3);
                for id in segments {
                    reads.push(keys.segment(*id));
                    reads.push(keys.garbage_object(*id));
                    reads.push(keys.compaction_output(*id));
                }
                let values = txn.get_many(&reads).await?;
                Ok(segments
                    .iter()
                    .zip(values.chunks(3))
                    .filter(|(_, known)| known.iter().all(Option::is_none))
                    .map(|(id, _)| *id)
                    .collect())
            })
            .await
    }

    /// Forgets a garbage object the bucket confirmed deleted.
    pub async fn forget_garbage(&self, segment_id: SegmentId) -> Result<(), MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                txn.clear(&keys.garbage_object(segment_id));
                Ok(())
            })
            .await
    }
}

/// The offset after the last entry of the expired prefix (entries whose
/// largest timestamp is below `cutoff`), from the log start on; the log start
/// when the first entry is not expired. Reads at most a few pages: what it
/// does not reach now, a later pass does.
async fn expired_through(
    txn: &Transaction,
    keys: &crate::keys::Keyspace,
    partition: TopicPartition,
    state: &PartitionState,
    cutoff: i64,
) -> Result<i64, MetadataError> {
    let mut through = state.log_start_offset;
    let end = strinc(&keys.index_of(partition));
    for _ in 0..RETENTION_PAGES {
        let begin = keys.index_entry(partition, through);
        let pairs = txn
            .get_range(&begin, &end, RangeOptions::first(RETENTION_PAGE))
            .await?;
        for pair in &pairs {
            let entry: IndexEntry = codec::decode(&pair.value)?;
            if entry.last_offset < through {
                continue;
            }
            if entry.max_timestamp >= cutoff || entry.last_offset >= state.high_watermark {
                return Ok(through);
            }
            through = entry.last_offset + 1;
        }
        if pairs.len() < RETENTION_PAGE {
            break;
        }
    }
    Ok(through)
}

/// Where the partition must start to keep at least `max_bytes` of chunks: the
/// base of the newest entries whose lengths reach `max_bytes` (walked from the
/// end), or the log start when all of them together do not.
async fn bytes_kept_from(
    txn: &Transaction,
    keys: &crate::keys::Keyspace,
    partition: TopicPartition,
    state: &PartitionState,
    max_bytes: u64,
) -> Result<i64, MetadataError> {
    let begin = keys.index_entry(partition, state.log_start_offset);
    let mut end = strinc(&keys.index_of(partition));
    let mut kept = 0u64;
    loop {
        let pairs = txn
            .get_range(&begin, &end, RangeOptions::last(RETENTION_PAGE))
            .await?;
        for pair in &pairs {
            let entry: IndexEntry = codec::decode(&pair.value)?;
            kept = kept.saturating_add(entry.byte_length);
            if kept >= max_bytes {
                return Ok(entry.base_offset.max(state.log_start_offset));
            }
        }
        match pairs.last() {
            Some(oldest) if pairs.len() == RETENTION_PAGE => end = oldest.key.clone(),
            _ => return Ok(state.log_start_offset),
        }
    }
}

/// Removes up to `limit` index entries in `begin..end`, dropping one
/// reference to each entry's segment per entry; a segment left without one
/// becomes garbage.
async fn release_range(
    txn: &Transaction,
    keys: &crate::keys::Keyspace,
    begin: &[u8],
    end: &[u8],
    limit: usize,
    now_ms: i64,
) -> Result<Released, MetadataError> {
    let pairs = txn
        .get_range(begin, end, RangeOptions::first(limit))
        .await?;
    let mut released = Released {
        more: pairs.len() == limit,
        ..Released::default()
    };
    let mut references: HashMap<SegmentId, u32> = HashMap::new();
    for pair in &pairs {
        let entry: IndexEntry = codec::decode(&pair.value)?;
        txn.clear(&pair.key);
        released.entries += 1;
        released.bytes += entry.byte_length;
        *references.entry(entry.segment_id).or_default() += 1;
    }
    released.objects = drop_references(txn, keys, &references, now_ms).await?;
    Ok(released)
}

/// Drops `dropped` references from each segment's record; a segment left
/// with none becomes garbage in this transaction. Returns how many did.
pub(crate) async fn drop_references(
    txn: &Transaction,
    keys: &crate::keys::Keyspace,
    dropped: &HashMap<SegmentId, u32>,
    now_ms: i64,
) -> Result<usize, MetadataError> {
    let segments: Vec<SegmentId> = dropped.keys().copied().collect();
    let segment_keys: Vec<Vec<u8>> = segments.iter().map(|id| keys.segment(*id)).collect();
    let records = txn.get_many(&segment_keys).await?;
    let mut freed = 0;
    for ((segment_id, key), value) in segments.iter().zip(&segment_keys).zip(records) {
        // A segment without a record (written before records were kept) has
        // nobody counting its references: it is left to the orphan sweep.
        let Some(value) = value else { continue };
        let mut record: SegmentRecord = codec::decode(&value)?;
        let count = dropped.get(segment_id).copied().unwrap_or(0);
        record.live_chunks = record.live_chunks.saturating_sub(count);
        if record.live_chunks == 0 {
            txn.clear(key);
            let garbage = GarbageObject {
                segment_id: *segment_id,
                object_key: record.object_key,
                object_size: record.object_size,
                freed_at_ms: now_ms,
            };
            write(txn, &keys.garbage_object(*segment_id), &garbage);
            freed += 1;
        } else {
            write(txn, key, &record);
        }
    }
    Ok(freed)
}
