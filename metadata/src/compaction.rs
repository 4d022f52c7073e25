//! Object compaction's side of metadata: small segment objects merged into
//! larger ones, and the index entries swapped over to them.
//!
//! A compactor reads the chunks of some small objects, writes them into a new
//! object (a partition's consecutive chunks merged into one, payloads copied
//! as stored), and then:
//!
//! 1. registers the new object *before* uploading it
//!    ([`MetadataStore::register_compaction_output`]): `("compacting",
//!    segment_id)` → [`CompactionOutput`]. A registered object is known to
//!    metadata, so the orphan sweep leaves it alone; one whose swap never
//!    came is made garbage once it is older than [`MAX_COMMIT_AGE_MS`]
//!    ([`MetadataStore::expire_compaction_outputs`]);
//! 2. uploads it;
//! 3. swaps the index entries over in one transaction
//!    ([`MetadataStore::swap_compacted`]): for each partition, only if its
//!    entries are still exactly the ones the compactor read (retention,
//!    `DeleteRecords`, a topic deletion or a racing compaction changed them
//!    otherwise: that partition is skipped and keeps its old entries). The
//!    old entries' references are dropped as retention drops them (an object
//!    left without one becomes garbage in the same transaction), the new
//!    object gets a segment record counting the entries that point at it (or
//!    becomes garbage at once if every partition was skipped), the
//!    registration goes, and of the time-index points of the entries a new
//!    entry replaces only the last stays (see `thin_time_index`).
//!
//! Log compaction (`cleanup.policy=compact`, the `log_compaction` module)
//! uses the same protocol with one difference: its new entries may hold
//! fewer records than those they replace (superseded records are dropped,
//! the others keep their offsets), and it never swaps entries reaching the
//! partition's last stable offset.
//!
//! # Invariants
//!
//! - An object compaction swap never changes what a partition holds: the new entries cover
//!   exactly the offsets of the entries they replace, each within one leader
//!   epoch, with the same record count. Offsets, the log start and the high
//!   watermark are untouched; a timestamp search answers the same (the time
//!   index keeps one point per new entry, the one a search reaches first).
//! - An entry is replaced only if it is still the one read: same last offset,
//!   same object, same byte offset.
//! - A new object is referenced only after it was uploaded (the caller swaps
//!   after the PUT), and an old one becomes garbage only in the transaction
//!   that removes its last reference; the garbage collector's grace period
//!   covers readers that still hold an old entry.
//! - A swap of an output older than [`MAX_COMMIT_AGE_MS`] is refused, as a
//!   segment commit is: past that age its registration may have expired and
//!   the garbage collector may take it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::MetadataError;
use crate::codec::{self, Versioned};
use crate::kv::{RangeOptions, Transaction, key_after, strinc};
use crate::model::TimeIndexPoint;
use crate::model::*;
use crate::retention::{GarbageObject, drop_references};
use crate::store::{MAX_COMMIT_AGE_MS, MetadataStore, read, write};

/// A compaction output registered before its upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompactionOutput {
    /// Its key in the bucket.
    pub object_key: String,
    /// When it was registered (the registering agent's clock).
    pub registered_at_ms: i64,
}

impl Versioned for CompactionOutput {
    const WHAT: &'static str = "compaction output";
    const VERSION: u8 = 1;
}

/// An index entry a compaction replaces, as the compactor read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactedInput {
    /// Its last offset (its key).
    pub last_offset: i64,
    /// The object it pointed at.
    pub segment_id: SegmentId,
    /// Where its chunk was in that object.
    pub byte_offset: u64,
}

/// One partition's part of a swap: the entries it replaces (in offset order,
/// consecutive) and the entries that replace them (in offset order, tiling the
/// same offsets, pointing into the new object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSwap {
    /// The partition.
    pub partition: TopicPartition,
    /// The entries it replaces.
    pub inputs: Vec<CompactedInput>,
    /// The entries that replace them.
    pub outputs: Vec<IndexEntry>,
}

/// A compaction's swap: the new object and each partition's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompactionSwap {
    /// The new object's segment id.
    pub segment_id: SegmentId,
    /// Its key.
    pub object_key: String,
    /// Its size.
    pub object_size: u64,
    /// The partitions it holds chunks of.
    pub partitions: Vec<PartitionSwap>,
}

/// What [`MetadataStore::swap_compacted`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SwapOutcome {
    /// Partitions whose entries now point at the new object.
    pub swapped: Vec<TopicPartition>,
    /// Partitions whose entries had changed: left as they were.
    pub skipped: Vec<TopicPartition>,
    /// Entries removed and written.
    pub entries_removed: usize,
    /// Entries written.
    pub entries_written: usize,
    /// Old objects that lost their last reference (now garbage).
    pub objects_freed: usize,
    /// Time-index points made redundant by the merge, removed.
    pub time_points_removed: usize,
    /// Whether the new object itself is garbage (every partition skipped).
    pub output_unused: bool,
    /// Nothing was written: the swap had applied already (a retry after a
    /// lost reply), or its output was given up
    /// ([`MetadataStore::expire_compaction_outputs`]).
    pub replayed: bool,
}

impl MetadataStore {
    /// Segment records in segment-id order (oldest first), after `after`, at
    /// most `limit`.
    pub async fn segment_records(
        &self,
        after: Option<SegmentId>,
        limit: usize,
    ) -> Result<Vec<(SegmentId, SegmentRecord)>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let prefix = keys.segments();
                let begin = match after {
                    Some(id) => key_after(&keys.segment(id)),
                    None => prefix.clone(),
                };
                let pairs = txn
                    .get_range(&begin, &strinc(&prefix), RangeOptions::first(limit))
                    .await?;
                pairs
                    .iter()
                    .map(|pair| {
                        let id = keys.segment_id_of(&pair.key).ok_or_else(|| {
                            MetadataError::Corrupt {
                                what: "segment record key",
                                detail: format!("no segment id in {:?}", pair.key),
                            }
                        })?;
                        Ok((id, codec::decode::<SegmentRecord>(&pair.value)?))
                    })
                    .collect()
            })
            .await
    }

    /// The index entries with these last offsets (`None` where there is none),
    /// and each partition's state (`None` for a partition that does not
    /// exist), from one snapshot.
    pub async fn index_entries_at(
        &self,
        at: &[(TopicPartition, i64)],
    ) -> Result<
        (
            Vec<Option<IndexEntry>>,
            HashMap<TopicPartition, PartitionState>,
        ),
        MetadataError,
    > {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let entry_keys: Vec<Vec<u8>> = at
                    .iter()
                    .map(|(partition, last)| keys.index_entry(*partition, *last))
                    .collect();
                let mut partitions: Vec<TopicPartition> = at.iter().map(|(p, _)| *p).collect();
                partitions.sort_unstable();
                partitions.dedup();
                let state_keys: Vec<Vec<u8>> =
                    partitions.iter().map(|p| keys.partition(*p)).collect();
                let entries = txn
                    .get_many(&entry_keys)
                    .await?
                    .into_iter()
                    .map(|value| value.map(|v| codec::decode::<IndexEntry>(&v)).transpose())
                    .collect::<Result<Vec<_>, _>>()?;
                let mut states = HashMap::new();
                for (partition, value) in partitions.iter().zip(txn.get_many(&state_keys).await?) {
                    if let Some(value) = value {
                        states.insert(*partition, codec::decode::<PartitionState>(&value)?);
                    }
                }
                Ok((entries, states))
            })
            .await
    }

    /// Registers a compaction output before its upload (see the module docs).
    pub async fn register_compaction_output(
        &self,
        segment_id: SegmentId,
        object_key: &str,
        now_ms: i64,
    ) -> Result<(), MetadataError> {
        let keys = self.keyspace();
        let output = CompactionOutput {
            object_key: object_key.to_owned(),
            registered_at_ms: now_ms,
        };
        self.database()
            .run(|txn, _| {
                let output = output.clone();
                async move {
                    write(&txn, &keys.compaction_output(segment_id), &output);
                    Ok(())
                }
            })
            .await
    }

    /// Swaps each partition of `swap` over to the new object if its entries
    /// are still the ones read (see the module's invariants), in one
    /// transaction. `now_ms` is the compactor's clock.
    pub async fn swap_compacted(
        &self,
        swap: &CompactionSwap,
        now_ms: i64,
    ) -> Result<SwapOutcome, MetadataError> {
        self.swap_entries(swap, now_ms, Records::Same).await
    }

    /// The swap of [`MetadataStore::swap_compacted`], its new entries
    /// accounting for the records of those they replace by `records`.
    pub(crate) async fn swap_entries(
        &self,
        swap: &CompactionSwap,
        now_ms: i64,
        records: Records,
    ) -> Result<SwapOutcome, MetadataError> {
        validate_swap(swap)?;
        let born = i64::try_from(swap.segment_id.0.timestamp_ms()).unwrap_or(i64::MAX);
        let age_ms = now_ms.saturating_sub(born);
        if age_ms > MAX_COMMIT_AGE_MS {
            return Err(MetadataError::SegmentTooOld {
                segment_id: swap.segment_id,
                age_ms,
                max_age_ms: MAX_COMMIT_AGE_MS,
            });
        }
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let registration = keys.compaction_output(swap.segment_id);
                if read::<CompactionOutput>(&txn, &registration)
                    .await?
                    .is_none()
                {
                    // Applied already (a lost reply) or given up; or never
                    // registered.
                    let known = txn.get(&keys.segment(swap.segment_id)).await?.is_some()
                        || txn
                            .get(&keys.garbage_object(swap.segment_id))
                            .await?
                            .is_some();
                    if known {
                        return Ok(SwapOutcome {
                            replayed: true,
                            ..SwapOutcome::default()
                        });
                    }
                    return Err(MetadataError::invalid(format!(
                        "compaction output {} is not registered",
                        swap.segment_id
                    )));
                }
                let mut outcome = SwapOutcome::default();
                let mut dropped: HashMap<SegmentId, u32> = HashMap::new();
                for part in &swap.partitions {
                    match current_inputs(&txn, keys, part, records).await? {
                        Some((current_keys, current)) => {
                            for (input, key) in part.inputs.iter().zip(&current_keys) {
                                txn.clear(key);
                                *dropped.entry(input.segment_id).or_default() += 1;
                            }
                            outcome.time_points_removed +=
                                thin_time_index(&txn, keys, part, &current).await?;
                            for entry in &part.outputs {
                                write(
                                    &txn,
                                    &keys.index_entry(part.partition, entry.last_offset),
                                    entry,
                                );
                            }
                            outcome.entries_removed += part.inputs.len();
                            outcome.entries_written += part.outputs.len();
                            outcome.swapped.push(part.partition);
                        }
                        None => outcome.skipped.push(part.partition),
                    }
                }
                outcome.objects_freed = drop_references(&txn, keys, &dropped, now_ms).await?;
                txn.clear(&registration);
                if outcome.entries_written == 0 {
                    let garbage = GarbageObject {
                        segment_id: swap.segment_id,
                        object_key: swap.object_key.clone(),
                        object_size: swap.object_size,
                        freed_at_ms: now_ms,
                    };
                    write(&txn, &keys.garbage_object(swap.segment_id), &garbage);
                    outcome.output_unused = true;
                } else {
                    let live_chunks = u32::try_from(outcome.entries_written).map_err(|_| {
                        MetadataError::invalid("an object may hold at most u32::MAX entries")
                    })?;
                    let record = SegmentRecord {
                        object_key: swap.object_key.clone(),
                        object_size: swap.object_size,
                        live_chunks,
                        committed_at_ms: now_ms,
                    };
                    write(&txn, &keys.segment(swap.segment_id), &record);
                }
                Ok(outcome)
            })
            .await
    }

    /// Makes garbage of compaction outputs registered more than `max_age_ms`
    /// before `now_ms` and never swapped in (the compactor died or gave up).
    /// Returns how many; at most `limit` per call.
    pub async fn expire_compaction_outputs(
        &self,
        now_ms: i64,
        max_age_ms: i64,
        limit: usize,
    ) -> Result<usize, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let prefix = keys.compaction_outputs();
                let pairs = txn
                    .get_range(&prefix, &strinc(&prefix), RangeOptions::first(limit))
                    .await?;
                let mut expired = 0;
                for pair in &pairs {
                    let output: CompactionOutput = codec::decode(&pair.value)?;
                    let Some(segment_id) = keys.segment_id_of(&pair.key) else {
                        continue;
                    };
                    let born = i64::try_from(segment_id.0.timestamp_ms()).unwrap_or(i64::MAX);
                    if now_ms.saturating_sub(born) <= max_age_ms
                        || now_ms.saturating_sub(output.registered_at_ms) <= max_age_ms
                    {
                        continue;
                    }
                    txn.clear(&pair.key);
                    let garbage = GarbageObject {
                        segment_id,
                        object_key: output.object_key,
                        object_size: 0,
                        freed_at_ms: now_ms,
                    };
                    write(&txn, &keys.garbage_object(segment_id), &garbage);
                    expired += 1;
                }
                Ok(expired)
            })
            .await
    }

    /// Compaction outputs registered and not yet swapped in or expired.
    pub async fn compaction_outputs(
        &self,
    ) -> Result<Vec<(SegmentId, CompactionOutput)>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let prefix = keys.compaction_outputs();
                let pairs = txn
                    .get_range(&prefix, &strinc(&prefix), RangeOptions::default())
                    .await?;
                pairs
                    .iter()
                    .filter_map(|pair| {
                        keys.segment_id_of(&pair.key)
                            .map(|id| codec::decode(&pair.value).map(|output| (id, output)))
                    })
                    .collect()
            })
            .await
    }
}

/// How the new entries of a swap account for the records of the entries they
/// replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Records {
    /// The same records (object compaction copies chunks as they are).
    Same,
    /// At most as many (log compaction drops superseded records, keeping the
    /// offsets of the others); the entries replaced must also lie wholly
    /// below the partition's last stable offset, or the partition is skipped.
    AtMost,
}

/// The keys and entries of `part`'s inputs if the partition's entries over
/// their range are still exactly those inputs and the outputs cover the same
/// offsets, epoch by epoch; `None` otherwise (the partition is skipped).
async fn current_inputs(
    txn: &Transaction,
    keys: &crate::keys::Keyspace,
    part: &PartitionSwap,
    records: Records,
) -> Result<Option<(Vec<Vec<u8>>, Vec<IndexEntry>)>, MetadataError> {
    let (Some(first), Some(last)) = (part.inputs.first(), part.inputs.last()) else {
        return Ok(None);
    };
    let Some(state) = txn.get(&keys.partition(part.partition)).await? else {
        return Ok(None);
    };
    if records == Records::AtMost {
        let state: PartitionState = codec::decode(&state)?;
        if last.last_offset >= state.last_stable_offset() {
            return Ok(None);
        }
    }
    let begin = keys.index_entry(part.partition, first.last_offset);
    let end = key_after(&keys.index_entry(part.partition, last.last_offset));
    let pairs = txn
        .get_range(&begin, &end, RangeOptions::first(part.inputs.len() + 1))
        .await?;
    if pairs.len() != part.inputs.len() {
        return Ok(None);
    }
    let mut current = Vec::with_capacity(pairs.len());
    for (pair, input) in pairs.iter().zip(&part.inputs) {
        let entry: IndexEntry = codec::decode(&pair.value)?;
        if entry.last_offset != input.last_offset
            || entry.segment_id != input.segment_id
            || entry.byte_offset != input.byte_offset
        {
            return Ok(None);
        }
        current.push(entry);
    }
    if !outputs_cover(&current, &part.outputs, records) {
        return Err(MetadataError::invalid(format!(
            "the new entries of {} do not cover the offsets, epochs and records of the \
             entries they replace",
            part.partition
        )));
    }
    Ok(Some((
        pairs.into_iter().map(|pair| pair.key).collect(),
        current,
    )))
}

/// Keeps one time-index point per new entry: the last (largest) of the
/// points of the entries it replaces, rewritten to name the new entry. A
/// timestamp search that reaches any of them lands in the new entry and
/// reads it from its start, and the last one is the one a search for any
/// timestamp up to it reaches first within that entry, so the others answer
/// nothing it does not. The point names the new entry's offsets, since the
/// largest-timestamp lookup reads the entry ending where its point ends.
/// Returns how many went.
///
/// A chunk that raised the partition's running maximum has its point at its
/// own largest timestamp (a new entry keeps the largest timestamp of those it
/// replaces, [`outputs_cover`]), and a replaced entry has at most one point
/// left (a flush's chunk has one or none; a compacted entry keeps one by this
/// rule), so the candidates are read by key, one per replaced entry.
async fn thin_time_index(
    txn: &Transaction,
    keys: &crate::keys::Keyspace,
    part: &PartitionSwap,
    current: &[IndexEntry],
) -> Result<usize, MetadataError> {
    let mut removed = 0;
    for output in &part.outputs {
        let inside: Vec<&IndexEntry> = current
            .iter()
            .filter(|e| e.base_offset >= output.base_offset && e.last_offset <= output.last_offset)
            .collect();
        if inside.is_empty() {
            continue;
        }
        let point_keys: Vec<Vec<u8>> = inside
            .iter()
            .map(|e| keys.time_index_point(part.partition, e.max_timestamp))
            .collect();
        let mut points: Vec<(i64, &Vec<u8>)> = Vec::new();
        for ((entry, key), value) in inside
            .iter()
            .zip(&point_keys)
            .zip(txn.get_many(&point_keys).await?)
        {
            let Some(value) = value else { continue };
            let point: TimeIndexPoint = codec::decode(&value)?;
            if point.base_offset >= entry.base_offset && point.last_offset <= entry.last_offset {
                points.push((entry.max_timestamp, key));
            }
        }
        points.sort_by_key(|(timestamp, _)| *timestamp);
        points.dedup_by_key(|(timestamp, _)| *timestamp);
        if let Some(((_, kept), older)) = points.split_last() {
            for (_, key) in older {
                txn.clear(key);
                removed += 1;
            }
            let renamed = TimeIndexPoint {
                base_offset: output.base_offset,
                last_offset: output.last_offset,
            };
            write(txn, kept, &renamed);
        }
    }
    Ok(removed)
}

/// Whether `outputs` tile the offsets of `current` (consecutive entries),
/// each output within one epoch, holding the records of the entries it spans
/// (all of them, or at most as many, as `records` says) and, for a log
/// compaction, their largest timestamp (the time index is keyed by it).
fn outputs_cover(current: &[IndexEntry], outputs: &[IndexEntry], records_rule: Records) -> bool {
    let mut inputs = current.iter().peekable();
    let mut next_base = match current.first() {
        Some(first) => first.base_offset,
        None => return false,
    };
    for output in outputs {
        if output.base_offset != next_base {
            return false;
        }
        let mut records = 0u64;
        let mut largest = i64::MIN;
        while let Some(input) = inputs.next_if(|input| input.last_offset <= output.last_offset) {
            if input.base_offset != next_base || input.leader_epoch != output.leader_epoch {
                return false;
            }
            records += u64::from(input.record_count);
            largest = largest.max(input.max_timestamp);
            next_base = input.last_offset + 1;
        }
        let counted = match records_rule {
            Records::Same => records == u64::from(output.record_count),
            Records::AtMost => u64::from(output.record_count) <= records,
        };
        // (Object compaction copies chunks, whose largest timestamps come
        // with them; a cleaner computes its own, so it is checked.)
        let timestamped = records_rule == Records::Same || output.max_timestamp == largest;
        if next_base != output.last_offset + 1 || !counted || !timestamped {
            return false;
        }
    }
    inputs.next().is_none()
}

/// Checks what can be checked without reading: outputs point at the new
/// object, inputs and outputs are in offset order.
fn validate_swap(swap: &CompactionSwap) -> Result<(), MetadataError> {
    for part in &swap.partitions {
        let ordered = part
            .inputs
            .windows(2)
            .all(|w| w[0].last_offset < w[1].last_offset)
            && part
                .outputs
                .windows(2)
                .all(|w| w[0].last_offset < w[1].last_offset);
        let ours = part.outputs.iter().all(|entry| {
            entry.segment_id == swap.segment_id
                && entry.object_key == swap.object_key
                && entry.object_size == swap.object_size
                && entry.byte_offset.saturating_add(entry.byte_length) <= swap.object_size
        });
        if !ordered || !ours || part.inputs.is_empty() || part.outputs.is_empty() {
            return Err(MetadataError::invalid(format!(
                "a compaction swap of {} must replace entries in offset order with entries \
                 of the new object",
                part.partition
            )));
        }
        if part
            .inputs
            .iter()
            .any(|input| input.segment_id == swap.segment_id)
        {
            return Err(MetadataError::invalid(
                "a compaction swap may not replace entries of its own output",
            ));
        }
    }
    Ok(())
}
