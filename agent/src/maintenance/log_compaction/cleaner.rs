//! The rules of a clean, as pure functions over stored batches: what goes
//! into the key map, which records and batches stay, and how the batches
//! kept are laid out into the chunks that replace a run of index entries.
//!
//! The rules are Kafka's (`Cleaner.shouldRetainRecord` and the cleaner's
//! `RecordFilter`), with the Fjord mappings `docs/compaction.md` explains:
//!
//! - a record past the key map's last offset stays;
//! - a record without a key stays (Kafka refuses them at produce time for
//!   compacted topics; a clean never loses one that got in);
//! - otherwise it stays if it is the latest of its key in the map and it has
//!   a value, or it is a tombstone whose batch has no delete horizon yet or
//!   one still in the future;
//! - a batch of an aborted transaction loses all its records; a transaction
//!   marker goes once no batch of its transaction kept a record and its
//!   delete horizon passed;
//! - a batch keeping a tombstone or a removable marker without a horizon
//!   gets one: now + `delete.retention.ms` (KIP-534);
//! - a producer's last batch stays, emptied if nothing in it stays, and so
//!   does the last batch of each output chunk (Kafka keeps the last batch of
//!   a cleaning round), so the entries that replace a run keep its offsets,
//!   end to end.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use fjord_metadata::{AbortedTransaction, ActiveProducer, IndexEntry};

use super::batch::{self, BatchError, RecordView, StoredBatch};
use super::offset_map::OffsetMap;

/// The aborted transactions of the part of the log a clean reads, by
/// producer.
#[derive(Debug, Default)]
pub struct AbortedIndex {
    by_producer: HashMap<i64, Vec<(i64, i64)>>,
}

impl AbortedIndex {
    /// The index of `aborted`.
    pub fn new(aborted: &[AbortedTransaction]) -> Self {
        let mut by_producer: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        for txn in aborted {
            by_producer
                .entry(txn.producer_id)
                .or_default()
                .push((txn.first_offset, txn.last_offset));
        }
        Self { by_producer }
    }

    /// Whether the transactional batch of `producer_id` at `offset` belongs
    /// to an aborted transaction.
    pub fn is_aborted(&self, producer_id: i64, offset: i64) -> bool {
        self.by_producer.get(&producer_id).is_some_and(|ranges| {
            ranges
                .iter()
                .any(|(first, last)| *first <= offset && offset <= *last)
        })
    }
}

/// What a clean decides by.
#[derive(Debug)]
pub struct Rules<'a> {
    /// The latest offset of each key of the part mapped.
    pub map: &'a OffsetMap,
    /// The last offset the map covers: records after it stay as they are.
    pub map_end: i64,
    /// The cleaner's clock.
    pub now_ms: i64,
    /// The topic's `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// The aborted transactions.
    pub aborted: &'a AbortedIndex,
    /// The partition's active producers, by id.
    pub producers: &'a HashMap<i64, ActiveProducer>,
}

impl Rules<'_> {
    /// The horizon a batch gets now.
    fn new_horizon(&self) -> i64 {
        self.now_ms.saturating_add(self.delete_retention_ms)
    }

    /// Whether `batch` is its active producer's last (Kafka keeps it,
    /// emptied if need be, so the producer's state can be rebuilt from the
    /// log): its last data batch or, for a producer known by no data batch,
    /// a marker of its current epoch.
    fn is_producers_last(&self, batch: &StoredBatch) -> bool {
        if batch.producer_id < 0 {
            return false;
        }
        let Some(producer) = self.producers.get(&batch.producer_id) else {
            return false;
        };
        match producer.last_data_offset {
            Some(last) => !batch.is_control() && batch.last_offset() == last,
            None => batch.is_control() && batch.producer_epoch == producer.producer_epoch,
        }
    }

    /// Whether `record` of `batch` stays (see the module docs).
    pub fn keeps_record(&self, batch: &StoredBatch, record: &RecordView<'_>) -> bool {
        let offset = batch.base_offset + i64::from(record.offset_delta);
        if offset > self.map_end {
            return true;
        }
        let Some(key) = record.key else {
            return true;
        };
        let latest = self.map.get(key).is_none_or(|found| offset >= found);
        let value_kept = !record.is_tombstone
            || batch
                .delete_horizon()
                .is_none_or(|horizon| self.now_ms < horizon);
        latest && value_kept
    }
}

/// The transactions of the log seen so far by a clean reading it from the
/// log start: per producer, whether its open transaction kept a record.
#[derive(Debug, Default)]
pub struct Transactions {
    open: HashMap<i64, bool>,
}

/// What a clean does with one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Kept byte for byte.
    Same,
    /// Kept, rewritten (fewer records, or a delete horizon set).
    Rewritten(Bytes),
    /// Dropped (it stays as an empty header only if it ends its chunk).
    Dropped,
}

/// One batch, cleaned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cleaned {
    /// What becomes of it.
    pub output: Output,
    /// Records it held.
    pub records_in: u32,
    /// Records kept.
    pub records_out: u32,
    /// The delete horizon of what is kept, when it still holds a tombstone
    /// or a marker a later clean removes once the horizon passed.
    pub pending_horizon: Option<i64>,
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Cleans one batch under `rules`, `txns` being the transactions seen
/// before it.
pub fn clean_batch(
    batch: &StoredBatch,
    rules: &Rules<'_>,
    txns: &mut Transactions,
) -> Result<Cleaned, BatchError> {
    let records_in = u32::try_from(batch.record_count).unwrap_or(0);
    let producers_last = rules.is_producers_last(batch);
    let emptied = |records_in: u32| -> Result<Cleaned, BatchError> {
        let output = if producers_last {
            Output::Rewritten(batch::rewrite(batch, &[], None)?)
        } else {
            Output::Dropped
        };
        Ok(Cleaned {
            output,
            records_in,
            records_out: 0,
            pending_horizon: None,
        })
    };
    if batch.is_control() {
        // The marker ends the producer's open transaction.
        let kept_data = txns.open.remove(&batch.producer_id).unwrap_or(false);
        if kept_data {
            return Ok(unchanged(records_in, None));
        }
        return match batch.delete_horizon() {
            Some(horizon) if rules.now_ms >= horizon => emptied(records_in),
            Some(horizon) => Ok(unchanged(records_in, Some(horizon))),
            None => {
                let decompressed = batch.decompressed()?;
                let records = batch.records(&decompressed)?;
                let horizon = rules.new_horizon();
                Ok(Cleaned {
                    output: Output::Rewritten(batch::rewrite(batch, &records, Some(horizon))?),
                    records_in,
                    records_out: records_in,
                    pending_horizon: Some(horizon),
                })
            }
        };
    }
    if batch.is_transactional()
        && rules
            .aborted
            .is_aborted(batch.producer_id, batch.base_offset)
    {
        return emptied(records_in);
    }
    let decompressed = batch.decompressed()?;
    let records = batch.records(&decompressed)?;
    let kept: Vec<RecordView<'_>> = records
        .iter()
        .filter(|record| rules.keeps_record(batch, record))
        .copied()
        .collect();
    if batch.is_transactional() {
        let open = txns.open.entry(batch.producer_id).or_insert(false);
        *open |= !kept.is_empty();
    }
    let keeps_tombstone = kept.iter().any(|record| record.is_tombstone);
    let new_horizon =
        (keeps_tombstone && batch.delete_horizon().is_none()).then(|| rules.new_horizon());
    let pending_horizon = keeps_tombstone
        .then(|| batch.delete_horizon().or(new_horizon))
        .flatten();
    if kept.is_empty() {
        return emptied(records_in);
    }
    if kept.len() == records.len() && new_horizon.is_none() {
        return Ok(unchanged(records_in, pending_horizon));
    }
    Ok(Cleaned {
        output: Output::Rewritten(batch::rewrite(batch, &kept, new_horizon)?),
        records_in,
        records_out: count(kept.len()),
        pending_horizon,
    })
}

fn unchanged(records: u32, pending_horizon: Option<i64>) -> Cleaned {
    Cleaned {
        output: Output::Same,
        records_in: records,
        records_out: records,
        pending_horizon,
    }
}

/// How far a key map got through a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mapped {
    /// Every batch is mapped.
    Whole,
    /// The map filled: the batches up to this offset (inclusive) are
    /// mapped, the rest is not. `None`: not even the first batch.
    Until(Option<i64>),
}

/// Puts the keys of `batches` (one chunk's, in offset order) from
/// `first_dirty` on into `map`, each key with the offset of its last record:
/// data batches only, not those of aborted transactions (Kafka's
/// `buildOffsetMapForSegment`).
pub fn map_batches(
    batches: &[StoredBatch],
    map: &mut OffsetMap,
    first_dirty: i64,
    aborted: &AbortedIndex,
) -> Result<Mapped, BatchError> {
    let mut mapped_through = None;
    for batch in batches {
        let skip = batch.last_offset() < first_dirty
            || batch.is_control()
            || (batch.is_transactional()
                && aborted.is_aborted(batch.producer_id, batch.base_offset));
        if !skip {
            let decompressed = batch.decompressed()?;
            for record in batch.records(&decompressed)? {
                let offset = batch.base_offset + i64::from(record.offset_delta);
                if let Some(key) = record.key
                    && offset >= first_dirty
                    && !map.put(key, offset)
                {
                    return Ok(Mapped::Until(mapped_through));
                }
            }
        }
        mapped_through = Some(batch.last_offset());
    }
    Ok(Mapped::Whole)
}

/// One chunk of a clean's output: batches of one leader epoch replacing
/// the offsets `first_offset..=last_offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputChunk {
    /// The first offset it covers (its first batch may start later).
    pub first_offset: i64,
    /// The last offset it covers.
    pub last_offset: i64,
    /// The leader epoch of the entries it replaces.
    pub leader_epoch: i32,
    /// Its batches, in offset order.
    pub batches: Vec<Bytes>,
    /// Their bytes.
    pub bytes: u64,
    /// Their records.
    pub record_count: u32,
    /// The largest timestamp of the entries it replaces (not of what is
    /// left: the partition's time index is keyed by the entries' largest
    /// timestamps, so an entry keeps its own; an upper bound for retention).
    pub max_timestamp: i64,
}

impl OutputChunk {
    /// The batches as one buffer.
    pub fn concatenated(&self) -> Bytes {
        let mut out = BytesMut::with_capacity(usize::try_from(self.bytes).unwrap_or(0));
        for batch in &self.batches {
            out.extend_from_slice(batch);
        }
        out.freeze()
    }

    fn push(&mut self, batch: Bytes, records: u32) {
        self.bytes += batch.len() as u64;
        self.record_count = self.record_count.saturating_add(records);
        self.batches.push(batch);
    }
}

/// A run of consecutive index entries being replaced, and what replaces
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// The entries replaced, in offset order.
    pub inputs: Vec<IndexEntry>,
    /// The chunks replacing them, tiling the same offsets.
    pub chunks: Vec<OutputChunk>,
    /// Whether anything differs from the inputs (a batch dropped or
    /// rewritten); a unit that changed nothing is not written.
    pub changed: bool,
    /// Stored bytes of the inputs.
    pub input_bytes: u64,
}

/// Lays cleaned batches out into output chunks: each within one leader
/// epoch, closed at an input entry's end once it holds `max_chunk_bytes`,
/// its last batch kept (as an empty header if it was dropped).
#[derive(Debug)]
pub struct UnitBuilder {
    max_chunk_bytes: u64,
    unit: Unit,
    open: Option<OutputChunk>,
    last_dropped: Option<StoredBatch>,
}

impl UnitBuilder {
    /// An empty unit.
    pub fn new(max_chunk_bytes: u64) -> Self {
        Self {
            max_chunk_bytes,
            unit: Unit {
                inputs: Vec::new(),
                chunks: Vec::new(),
                changed: false,
                input_bytes: 0,
            },
            open: None,
            last_dropped: None,
        }
    }

    /// Stored bytes of the entries added.
    pub fn input_bytes(&self) -> u64 {
        self.unit.input_bytes
    }

    /// Whether no entry was added.
    pub fn is_empty(&self) -> bool {
        self.unit.inputs.is_empty()
    }

    /// Adds the next entry (following the last one added) with its batches,
    /// cleaned.
    pub fn add(
        &mut self,
        entry: IndexEntry,
        cleaned: Vec<(StoredBatch, Cleaned)>,
    ) -> Result<(), BatchError> {
        if self
            .open
            .as_ref()
            .is_some_and(|open| open.leader_epoch != entry.leader_epoch)
        {
            self.close()?;
        }
        let open = self.open.get_or_insert_with(|| OutputChunk {
            first_offset: entry.base_offset,
            last_offset: entry.last_offset,
            leader_epoch: entry.leader_epoch,
            batches: Vec::new(),
            bytes: 0,
            record_count: 0,
            max_timestamp: i64::MIN,
        });
        for (batch, outcome) in cleaned {
            match outcome.output {
                Output::Same => {
                    open.push(batch.bytes.clone(), outcome.records_out);
                    self.last_dropped = None;
                }
                Output::Rewritten(bytes) => {
                    open.push(bytes, outcome.records_out);
                    self.unit.changed = true;
                    self.last_dropped = None;
                }
                Output::Dropped => {
                    self.unit.changed = true;
                    self.last_dropped = Some(batch);
                }
            }
        }
        open.last_offset = entry.last_offset;
        open.max_timestamp = open.max_timestamp.max(entry.max_timestamp);
        let full = open.bytes >= self.max_chunk_bytes;
        self.unit.input_bytes += entry.byte_length;
        self.unit.inputs.push(entry);
        if full {
            self.close()?;
        }
        Ok(())
    }

    /// Closes the open chunk, keeping its last batch.
    fn close(&mut self) -> Result<(), BatchError> {
        let Some(mut chunk) = self.open.take() else {
            return Ok(());
        };
        if let Some(dropped) = self.last_dropped.take() {
            let empty = batch::rewrite(&dropped, &[], None)?;
            chunk.push(empty, 0);
        }
        if chunk.batches.is_empty() {
            return Err(BatchError::Corrupt {
                base_offset: chunk.first_offset,
                detail: "index entries without batches".into(),
            });
        }
        self.unit.chunks.push(chunk);
        Ok(())
    }

    /// The unit.
    pub fn finish(mut self) -> Result<Unit, BatchError> {
        self.close()?;
        Ok(self.unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_metadata::SegmentId;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    const NOW: i64 = 1_800_000_000_000;
    const RETENTION: i64 = 1_000;

    /// A batch at `base` of `(key, value)` records from `producer` (-1:
    /// none), transactional or not.
    fn stored(
        base: i64,
        records: &[(&str, Option<&str>)],
        producer: i64,
        txn: bool,
    ) -> StoredBatch {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: txn,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 1,
                producer_id: producer,
                producer_epoch: if producer < 0 { -1 } else { 0 },
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                // Base sequence -1 without a producer; the encoder keeps a
                // batch together while offset - sequence stays the same.
                sequence: if producer < 0 { i as i32 - 1 } else { i as i32 },
                timestamp: 1_700_000_000_000,
                key: (!key.is_empty()).then(|| Bytes::copy_from_slice(key.as_bytes())),
                value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                headers: Default::default(),
            })
            .collect();
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut out,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        batch::split_batches(&out.freeze()).unwrap().remove(0)
    }

    /// A commit or abort marker of `producer` at `offset`.
    fn marker(offset: i64, producer: i64, commit: bool) -> StoredBatch {
        let record = Record {
            transactional: true,
            control: true,
            delete_horizon: false,
            partition_leader_epoch: 1,
            producer_id: producer,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from(vec![0, 0, 0, u8::from(commit)])),
            value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
            headers: Default::default(),
        };
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut out,
            [&record],
            &RecordEncodeOptions {
                version: 2,
                compression: Compression::None,
            },
        )
        .unwrap();
        batch::split_batches(&out.freeze()).unwrap().remove(0)
    }

    /// The (offset, key, value) of what `output` holds for `batch`.
    fn kept(batch: &StoredBatch, output: &Output) -> Vec<(i64, String, Option<String>)> {
        let bytes = match output {
            Output::Same => batch.bytes.clone(),
            Output::Rewritten(bytes) => bytes.clone(),
            Output::Dropped => return Vec::new(),
        };
        let mut buf = bytes;
        RecordBatchDecoder::decode_all(&mut buf)
            .unwrap()
            .into_iter()
            .flat_map(|set| set.records)
            .map(|r| {
                (
                    r.offset,
                    r.key
                        .map(|k| String::from_utf8(k.to_vec()).unwrap())
                        .unwrap_or_default(),
                    r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                )
            })
            .collect()
    }

    struct Fixture {
        map: OffsetMap,
        aborted: AbortedIndex,
        producers: HashMap<i64, ActiveProducer>,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                map: OffsetMap::new(1 << 16, 100, 3),
                aborted: AbortedIndex::default(),
                producers: HashMap::new(),
            }
        }

        fn rules(&self, map_end: i64) -> Rules<'_> {
            Rules {
                map: &self.map,
                map_end,
                now_ms: NOW,
                delete_retention_ms: RETENTION,
                aborted: &self.aborted,
                producers: &self.producers,
            }
        }

        fn map(&mut self, batches: &[StoredBatch], first_dirty: i64) -> Mapped {
            map_batches(batches, &mut self.map, first_dirty, &self.aborted).unwrap()
        }
    }

    #[test]
    fn the_latest_record_of_each_key_stays_with_its_offset() {
        let mut fx = Fixture::new();
        let batches = vec![
            stored(
                0,
                &[("a", Some("a0")), ("b", Some("b0")), ("", Some("nokey"))],
                -1,
                false,
            ),
            stored(3, &[("a", Some("a1")), ("c", Some("c0"))], -1, false),
        ];
        assert_eq!(fx.map(&batches, 0), Mapped::Whole);
        let rules = fx.rules(4);
        let mut txns = Transactions::default();
        let first = clean_batch(&batches[0], &rules, &mut txns).unwrap();
        assert_eq!(
            kept(&batches[0], &first.output),
            vec![
                (1, "b".into(), Some("b0".into())),
                (2, "".into(), Some("nokey".into()))
            ]
        );
        assert_eq!((first.records_in, first.records_out), (3, 2));
        let second = clean_batch(&batches[1], &rules, &mut txns).unwrap();
        assert_eq!(second.output, Output::Same);
        // Past the map's end everything stays.
        let rules = fx.rules(2);
        assert_eq!(
            clean_batch(&batches[1], &rules, &mut txns).unwrap().output,
            Output::Same
        );
    }

    #[test]
    fn a_tombstone_gets_a_horizon_then_goes_once_it_passed() {
        let mut fx = Fixture::new();
        let batch = stored(0, &[("a", Some("a0")), ("a", None)], -1, false);
        fx.map(std::slice::from_ref(&batch), 0);
        let mut txns = Transactions::default();
        let first = clean_batch(&batch, &fx.rules(1), &mut txns).unwrap();
        assert_eq!(first.pending_horizon, Some(NOW + RETENTION));
        let Output::Rewritten(bytes) = &first.output else {
            panic!("{first:?}")
        };
        assert_eq!(kept(&batch, &first.output), vec![(1, "a".into(), None)]);
        let marked = batch::split_batches(bytes).unwrap().remove(0);
        assert_eq!(marked.delete_horizon(), Some(NOW + RETENTION));
        // Before the horizon: kept as it is.
        let mut rules = fx.rules(1);
        let again = clean_batch(&marked, &rules, &mut txns).unwrap();
        assert_eq!(again.output, Output::Same);
        assert_eq!(again.pending_horizon, Some(NOW + RETENTION));
        // After it: gone.
        rules.now_ms = NOW + RETENTION;
        let later = clean_batch(&marked, &rules, &mut txns).unwrap();
        assert_eq!(later.output, Output::Dropped);
        assert_eq!(later.pending_horizon, None);
    }

    #[test]
    fn a_producers_last_batch_stays_empty() {
        let mut fx = Fixture::new();
        let old = stored(0, &[("a", Some("1"))], 9, false);
        let new = stored(1, &[("a", Some("2"))], 5, false);
        fx.map(&[old.clone(), new], 0);
        fx.producers.insert(
            9,
            ActiveProducer {
                producer_id: 9,
                producer_epoch: 0,
                last_data_offset: Some(0),
            },
        );
        let cleaned = clean_batch(&old, &fx.rules(1), &mut Transactions::default()).unwrap();
        let Output::Rewritten(bytes) = cleaned.output else {
            panic!("{cleaned:?}")
        };
        let empty = batch::split_batches(&bytes).unwrap().remove(0);
        assert_eq!((empty.base_offset, empty.record_count), (0, 0));
        assert_eq!((empty.producer_id, empty.base_sequence), (9, 0));
        // Not its last: dropped.
        fx.producers.clear();
        let cleaned = clean_batch(&old, &fx.rules(1), &mut Transactions::default()).unwrap();
        assert_eq!(cleaned.output, Output::Dropped);
    }

    #[test]
    fn aborted_data_goes_and_markers_go_after_their_horizon_once_their_data_is_gone() {
        let mut fx = Fixture::new();
        fx.aborted = AbortedIndex::new(&[AbortedTransaction {
            producer_id: 3,
            first_offset: 0,
            last_offset: 1,
        }]);
        let aborted = stored(0, &[("x", Some("aborted"))], 3, true);
        let abort = marker(1, 3, false);
        let committed = stored(2, &[("y", Some("kept"))], 4, true);
        let commit = marker(3, 4, true);
        let batches = vec![
            aborted.clone(),
            abort.clone(),
            committed.clone(),
            commit.clone(),
        ];
        fx.map(&batches, 0);
        assert_eq!(fx.map.get(b"x"), None, "aborted keys are not mapped");
        assert_eq!(fx.map.get(b"y"), Some(2));
        let rules = fx.rules(3);
        let mut txns = Transactions::default();
        let outputs: Vec<Cleaned> = batches
            .iter()
            .map(|b| clean_batch(b, &rules, &mut txns).unwrap())
            .collect();
        assert_eq!(outputs[0].output, Output::Dropped);
        // The abort marker's transaction kept nothing: it gets a horizon.
        assert!(matches!(outputs[1].output, Output::Rewritten(_)));
        assert_eq!(outputs[1].pending_horizon, Some(NOW + RETENTION));
        assert_eq!(outputs[2].output, Output::Same);
        // The commit marker's transaction kept a record: it stays as it is.
        assert_eq!(outputs[3].output, Output::Same);
        assert_eq!(outputs[3].pending_horizon, None);
        // Past the horizon the abort marker goes.
        let Output::Rewritten(bytes) = &outputs[1].output else {
            unreachable!()
        };
        let marked = batch::split_batches(bytes).unwrap().remove(0);
        let mut later = fx.rules(3);
        later.now_ms = NOW + RETENTION;
        let mut txns = Transactions::default();
        assert_eq!(
            clean_batch(&marked, &later, &mut txns).unwrap().output,
            Output::Dropped
        );
    }

    #[test]
    fn a_full_map_stops_before_the_batch_it_could_not_take() {
        let mut fx = Fixture::new();
        fx.map = OffsetMap::new(4 * super::super::offset_map::SLOT_BYTES, 1_000, 1);
        assert_eq!(fx.map.room(), 3);
        let batches = vec![
            stored(0, &[("a", Some("1")), ("b", Some("1"))], -1, false),
            stored(
                2,
                &[("a", Some("2")), ("c", Some("1")), ("d", Some("1"))],
                -1,
                false,
            ),
        ];
        assert_eq!(fx.map(&batches, 0), Mapped::Until(Some(1)));
        // From offset 2 on the first batch is skipped (below the dirty part).
        let mut fx = Fixture::new();
        assert_eq!(fx.map(&batches, 2), Mapped::Whole);
        assert_eq!(fx.map.get(b"b"), None);
    }

    fn entry(base: i64, last: i64, epoch: i32) -> IndexEntry {
        IndexEntry {
            base_offset: base,
            last_offset: last,
            record_count: u32::try_from(last - base + 1).unwrap(),
            max_timestamp: 1_700_000_000_000,
            leader_epoch: epoch,
            segment_id: SegmentId(fjord_common::IdGenerator::ulid(
                &fjord_common::RandomIds::new(),
                1,
            )),
            object_key: String::new(),
            byte_offset: 0,
            byte_length: 100,
            object_size: 100,
        }
    }

    #[test]
    fn output_chunks_tile_the_entries_keep_epochs_and_end_with_a_batch() {
        let mut fx = Fixture::new();
        let batches = [
            stored(0, &[("a", Some("1"))], -1, false),
            stored(1, &[("b", Some("1"))], -1, false),
            stored(2, &[("a", Some("2"))], -1, false),
            stored(3, &[("b", Some("2"))], -1, false),
        ];
        fx.map(&batches, 0);
        let rules = fx.rules(3);
        let mut txns = Transactions::default();
        let mut clean = |b: &StoredBatch| (b.clone(), clean_batch(b, &rules, &mut txns).unwrap());
        let mut builder = UnitBuilder::new(1 << 20);
        builder
            .add(entry(0, 1, 1), vec![clean(&batches[0]), clean(&batches[1])])
            .unwrap();
        builder
            .add(entry(2, 2, 2), vec![clean(&batches[2])])
            .unwrap();
        builder
            .add(entry(3, 3, 2), vec![clean(&batches[3])])
            .unwrap();
        let unit = builder.finish().unwrap();
        assert!(unit.changed);
        let shape: Vec<(i64, i64, i32, u32, usize)> = unit
            .chunks
            .iter()
            .map(|c| {
                (
                    c.first_offset,
                    c.last_offset,
                    c.leader_epoch,
                    c.record_count,
                    c.batches.len(),
                )
            })
            .collect();
        // Epoch 1 lost both records; its last batch stays as an empty header.
        assert_eq!(shape, vec![(0, 1, 1, 0, 1), (2, 3, 2, 2, 2)]);
        let empty = batch::split_batches(&unit.chunks[0].batches[0]).unwrap();
        assert_eq!((empty[0].base_offset, empty[0].record_count), (1, 0));
        assert_eq!(unit.inputs.len(), 3);
    }

    #[test]
    fn a_unit_that_drops_nothing_is_unchanged() {
        let mut fx = Fixture::new();
        let batches = [
            stored(0, &[("a", Some("1"))], -1, false),
            stored(1, &[("b", Some("1"))], -1, false),
        ];
        fx.map(&batches, 0);
        let rules = fx.rules(1);
        let mut txns = Transactions::default();
        let mut builder = UnitBuilder::new(1);
        for (i, b) in batches.iter().enumerate() {
            let cleaned = clean_batch(b, &rules, &mut txns).unwrap();
            builder
                .add(entry(i as i64, i as i64, 1), vec![(b.clone(), cleaned)])
                .unwrap();
        }
        let unit = builder.finish().unwrap();
        assert!(!unit.changed);
        assert_eq!(unit.chunks.len(), 2, "chunks close at their size bound");
        assert_eq!(unit.chunks[1].concatenated(), batches[1].bytes);
    }
}
