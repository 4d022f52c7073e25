//! Kafka v2 record batches (magic 2) as the broker sees them: a header to
//! validate and two fields to rewrite (`baseOffset`, `partitionLeaderEpoch`, which
//! the CRC does not cover). Batches are stored and served byte for byte; records
//! inside a batch are decoded only to answer timestamp searches
//! ([`record_timestamps`], for `ListOffsets`).
//!
//! Header layout (big-endian), from Apache Kafka's `DefaultRecordBatch`:
//!
//! ```text
//! 0  baseOffset i64 | 8  batchLength i32 | 12 partitionLeaderEpoch i32 | 16 magic i8
//! 17 crc u32 (CRC-32C of bytes 21..end) | 21 attributes i16 | 23 lastOffsetDelta i32
//! 27 baseTimestamp i64 | 35 maxTimestamp i64 | 43 producerId i64 | 51 producerEpoch i16
//! 53 baseSequence i32 | 57 recordCount i32 | 61 records...
//! ```

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes before the records of a batch.
pub const BATCH_HEADER_LEN: usize = 61;
const LENGTH_FIELD_END: usize = 12;
const CRC_COVERED_FROM: usize = 21;
const ATTRIBUTES_AT: usize = 21;
/// Attribute bits 0–2: the codec the producer compressed the records with
/// (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
const COMPRESSION_CODEC_MASK: i16 = 0x07;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

/// Why a batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Truncated, inconsistent lengths, or a checksum mismatch (`CORRUPT_MESSAGE`).
    #[error("corrupt record batch: {0}")]
    Corrupt(String),
    /// Well-formed but not something this broker accepts
    /// (`UNSUPPORTED_FOR_MESSAGE_FORMAT`).
    #[error("unsupported record batch: {0}")]
    Unsupported(String),
    /// A checksum-valid batch whose header contradicts its records: the offset
    /// range and the record count disagree, or an uncompressed batch holds a
    /// different number of records than it claims (`INVALID_RECORD`).
    #[error("invalid record batch: {0}")]
    Invalid(String),
}

/// Reads a zigzag varint of at most 5 bytes (a Kafka `varint`) from the front
/// of `bytes`: the value and the bytes it took.
fn read_varint(bytes: &[u8]) -> Option<(i32, usize)> {
    let mut raw: u32 = 0;
    for (index, byte) in bytes.iter().take(5).enumerate() {
        raw |= u32::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            let value = ((raw >> 1) as i32) ^ -((raw & 1) as i32);
            return Some((value, index + 1));
        }
    }
    None
}

/// Walks the length-prefixed records of an uncompressed batch: exactly
/// `record_count` of them must fill `records` to its end.
fn check_record_framing(records: &[u8], record_count: i32) -> Result<(), BatchError> {
    let mut at = 0usize;
    let mut found = 0i32;
    while at < records.len() {
        let (length, taken) = read_varint(&records[at..])
            .ok_or_else(|| BatchError::Corrupt(format!("record {found}: bad length varint")))?;
        let end = usize::try_from(length)
            .ok()
            .and_then(|length| (at + taken).checked_add(length))
            .filter(|end| *end <= records.len())
            .ok_or_else(|| {
                BatchError::Corrupt(format!(
                    "record {found}: length {length} does not fit the {} bytes left",
                    records.len() - at - taken
                ))
            })?;
        at = end;
        found = found.saturating_add(1);
        if found > record_count {
            break;
        }
    }
    if found != record_count {
        return Err(BatchError::Invalid(format!(
            "the batch claims {record_count} records and holds {found}{}",
            if found > record_count { " or more" } else { "" }
        )));
    }
    Ok(())
}

/// One validated batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The whole batch, as sent.
    pub bytes: Bytes,
    /// `lastOffsetDelta`: the batch spans `lastOffsetDelta + 1` offsets.
    pub last_offset_delta: i32,
    /// Records in the batch.
    pub record_count: i32,
    /// The batch's `maxTimestamp`.
    pub max_timestamp: i64,
    /// `baseOffset` as stored.
    pub base_offset: i64,
    /// `producerId` (-1 when the producer is not idempotent).
    pub producer_id: i64,
    /// `producerEpoch`.
    pub producer_epoch: i16,
    /// `baseSequence`.
    pub base_sequence: i32,
    /// Part of a transaction (attributes bit 4).
    pub transactional: bool,
    /// A control batch: a transaction marker (attributes bit 5). Only the
    /// leader writes them; a producer's are refused.
    pub control: bool,
}

fn read_i16(bytes: &[u8], at: usize) -> i16 {
    let mut field = [0u8; 2];
    field.copy_from_slice(&bytes[at..at + 2]);
    i16::from_be_bytes(field)
}

fn read_i32(bytes: &[u8], at: usize) -> i32 {
    let mut field = [0u8; 4];
    field.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(field)
}

/// The producer id of the first batch in `records`, if its header is there
/// (-1: no idempotent producer). Read before validation, as a hint only.
pub fn first_producer_id(records: &[u8]) -> Option<i64> {
    (records.len() >= 51).then(|| read_i64(records, 43))
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(field)
}

/// Splits `records` into batches, validating each header and checksum. Every
/// slice index is checked against the length first: bytes from the network never
/// cause a panic.
pub fn parse_batches(records: &Bytes) -> Result<Vec<Batch>, BatchError> {
    parse(records, true)
}

/// Splits stored batches, as [`parse_batches`] does, except that a batch may
/// hold fewer records than its offsets span (log compaction removes records
/// and keeps the offsets of the rest), even none.
pub fn parse_stored_batches(records: &Bytes) -> Result<Vec<Batch>, BatchError> {
    parse(records, false)
}

fn parse(records: &Bytes, produced: bool) -> Result<Vec<Batch>, BatchError> {
    let mut batches = Vec::new();
    let mut at = 0usize;
    while at < records.len() {
        let rest = &records[at..];
        if rest.len() < BATCH_HEADER_LEN {
            return Err(BatchError::Corrupt(format!(
                "{} trailing bytes are shorter than a batch header",
                rest.len()
            )));
        }
        let batch_length = read_i32(rest, 8);
        let total = usize::try_from(batch_length)
            .ok()
            .and_then(|len| len.checked_add(LENGTH_FIELD_END))
            .filter(|total| *total >= BATCH_HEADER_LEN && *total <= rest.len())
            .ok_or_else(|| {
                BatchError::Corrupt(format!(
                    "batch length {batch_length} does not fit the {} bytes left",
                    rest.len()
                ))
            })?;
        let bytes = &rest[..total];
        let magic = bytes[16];
        if magic != 2 {
            return Err(BatchError::Unsupported(format!(
                "record batch magic {magic}; only magic 2 (Kafka 0.11+) is accepted"
            )));
        }
        let mut crc_field = [0u8; 4];
        crc_field.copy_from_slice(&bytes[17..21]);
        let stored_crc = u32::from_be_bytes(crc_field);
        let computed_crc = crc32c::crc32c(&bytes[CRC_COVERED_FROM..]);
        if stored_crc != computed_crc {
            return Err(BatchError::Corrupt(format!(
                "crc mismatch: stored {stored_crc:#010x}, computed {computed_crc:#010x}"
            )));
        }
        let attributes = read_i16(bytes, ATTRIBUTES_AT);
        let last_offset_delta = read_i32(bytes, 23);
        let record_count = read_i32(bytes, 57);
        // As Kafka's validator: a produced batch spans exactly its records'
        // offsets (only compaction leaves gaps, and it never produces). In i64:
        // a delta of i32::MAX must not overflow (a panic on bad input).
        let span_ok = if produced {
            record_count >= 1 && i64::from(record_count) == i64::from(last_offset_delta) + 1
        } else {
            record_count >= 0 && i64::from(record_count) <= i64::from(last_offset_delta) + 1
        };
        if last_offset_delta < 0 || !span_ok {
            return Err(BatchError::Invalid(format!(
                "inconsistent batch offset range (delta {last_offset_delta}) and count of records ({record_count})"
            )));
        }
        // An uncompressed batch must hold the records it claims (a compressed
        // one is checked only by its CRC: counting its records would mean
        // decompressing every produced batch).
        if produced && attributes & COMPRESSION_CODEC_MASK == 0 {
            check_record_framing(&bytes[BATCH_HEADER_LEN..], record_count)?;
        }
        batches.push(Batch {
            bytes: records.slice(at..at + total),
            last_offset_delta,
            record_count,
            max_timestamp: read_i64(bytes, 35),
            base_offset: read_i64(bytes, 0),
            producer_id: read_i64(bytes, 43),
            producer_epoch: read_i16(bytes, 51),
            base_sequence: read_i32(bytes, 53),
            transactional: attributes & TRANSACTIONAL_FLAG != 0,
            control: attributes & CONTROL_FLAG != 0,
        });
        at += total;
    }
    if batches.is_empty() {
        return Err(BatchError::Corrupt("no record batch".into()));
    }
    Ok(batches)
}

/// The batch with its `baseOffset` and `partitionLeaderEpoch` set by the leader
/// (neither is covered by the CRC, so the checksum stays valid).
pub fn assign_offset(batch: &Bytes, base_offset: i64, leader_epoch: i32) -> Bytes {
    let mut out = BytesMut::with_capacity(batch.len());
    put_assigned(&mut out, batch, base_offset, leader_epoch);
    out.freeze()
}

/// Appends a validated `batch` (at least [`BATCH_HEADER_LEN`] bytes, as
/// [`parse_batches`] checks) to `out` with the leader's `baseOffset` and
/// `partitionLeaderEpoch`: the write path keeps batches as received and
/// rewrites the two fields while copying them into the WAL and the segment,
/// so no copy is made only to rewrite 12 bytes.
pub fn put_assigned(out: &mut BytesMut, batch: &[u8], base_offset: i64, leader_epoch: i32) {
    out.put_i64(base_offset);
    out.put_slice(&batch[8..12]);
    out.put_i32(leader_epoch);
    out.put_slice(&batch[16..]);
}

/// Whether the producer compressed the records of `batch` (attributes bits 0–2
/// ≠ 0). A slice too short to hold the attributes counts as uncompressed.
pub fn is_producer_compressed(batch: &[u8]) -> bool {
    batch
        .get(ATTRIBUTES_AT..ATTRIBUTES_AT + 2)
        .and_then(|field| <[u8; 2]>::try_from(field).ok())
        .is_some_and(|field| i16::from_be_bytes(field) & COMPRESSION_CODEC_MASK != 0)
}

/// How the segment writer should treat a chunk made of `batches`: when the
/// producer compressed every one of them, zstd would gain almost nothing, so the
/// chunk is stored as given; one uncompressed batch makes the chunk worth
/// compressing.
pub fn chunk_hint<'a>(batches: impl IntoIterator<Item = &'a [u8]>) -> fjord_storage::ChunkHint {
    let mut any = false;
    for batch in batches {
        if !is_producer_compressed(batch) {
            return fjord_storage::ChunkHint::Unknown;
        }
        any = true;
    }
    if any {
        fjord_storage::ChunkHint::ProducerCompressed
    } else {
        fjord_storage::ChunkHint::Unknown
    }
}

/// Drops the batches that end before `offset` from stored (valid) batches; the
/// rest is returned as one buffer (a slice: nothing is copied). Only the batch
/// headers' lengths and offsets are read — stored batches were validated when
/// they were produced, and their chunk's checksum when it was read — and
/// malformed input is returned unchanged.
pub fn skip_before(stored: Bytes, offset: i64) -> Bytes {
    let Some(spans) = batch_spans(&stored) else {
        return stored;
    };
    for (at, _) in spans {
        let rest = &stored[at..];
        let last_offset = read_i64(rest, 0).saturating_add(i64::from(read_i32(rest, 23)));
        if last_offset >= offset {
            return stored.slice(at..);
        }
    }
    Bytes::new()
}

/// Where each batch of stored (valid) batches starts and how long it is, from
/// the headers' lengths only; `None` when they do not frame `stored` exactly.
fn batch_spans(stored: &[u8]) -> Option<Vec<(usize, usize)>> {
    let mut spans = Vec::new();
    let mut at = 0usize;
    while at < stored.len() {
        let rest = &stored[at..];
        if rest.len() < BATCH_HEADER_LEN {
            return None;
        }
        let total = usize::try_from(read_i32(rest, 8))
            .ok()
            .and_then(|len| len.checked_add(LENGTH_FIELD_END))
            .filter(|total| *total >= BATCH_HEADER_LEN && *total <= rest.len())?;
        spans.push((at, total));
        at += total;
    }
    Some(spans)
}

/// A transaction marker: the control batch the leader writes into a
/// partition when the transaction coordinator ends a producer's transaction
/// there (Kafka's `EndTransactionMarker`): one control record whose key is
/// `(version 0, type)` — 0 abort, 1 commit — and whose value is
/// `(version 0, coordinator epoch)`. Its offset is 0 and its sequence -1; the
/// leader assigns the offset as for any batch.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Result<Bytes, BatchError> {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(i16::from(commit));
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    let record = Record {
        transactional: true,
        control: true,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id,
        producer_epoch,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
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
    .map_err(|error| BatchError::Corrupt(format!("encoding a transaction marker: {error:#}")))?;
    Ok(out.freeze())
}

/// Stored (valid) batches up to the first one at or after `end` (a batch
/// boundary: the last stable offset is the first offset of a batch, or the
/// high watermark), as one slice; malformed input is returned unchanged.
pub fn take_before(stored: Bytes, end: i64) -> Bytes {
    let Some(spans) = batch_spans(&stored) else {
        return stored;
    };
    match spans
        .iter()
        .find(|(at, _)| read_i64(&stored[*at..], 0) >= end)
    {
        Some((at, _)) => stored.slice(..*at),
        None => stored,
    }
}

/// Whether any of the stored batches is transactional (so a
/// `read_committed` reader needs the partition's aborted transactions).
pub fn has_transactional(stored: &[u8]) -> bool {
    batch_spans(stored).is_some_and(|spans| {
        spans
            .iter()
            .any(|(at, _)| read_i16(&stored[*at..], ATTRIBUTES_AT) & TRANSACTIONAL_FLAG != 0)
    })
}

/// The `(offset, timestamp)` of every record in a stored batch, in offset order,
/// decompressing if need be. Records of a `LogAppendTime` batch report the
/// batch's `maxTimestamp`, as Kafka's do.
pub fn record_timestamps(batch: &Batch) -> Result<Vec<(i64, i64)>, BatchError> {
    use kafka_protocol::records::{RecordBatchDecoder, TimestampType};
    let mut bytes = batch.bytes.clone();
    let set = RecordBatchDecoder::decode(&mut bytes)
        .map_err(|error| BatchError::Corrupt(format!("decoding records: {error:#}")))?;
    Ok(set
        .records
        .iter()
        .map(|record| {
            let timestamp = match record.timestamp_type {
                TimestampType::LogAppend => batch.max_timestamp,
                TimestampType::Creation => record.timestamp,
            };
            (record.offset, timestamp)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_valid_control_batches() {
        for commit in [false, true] {
            let marker = control_batch(42, 3, commit, 7, 1_000).unwrap();
            let parsed = parse_batches(&marker).unwrap();
            assert_eq!(parsed.len(), 1);
            let batch = &parsed[0];
            assert!(batch.control && batch.transactional);
            assert_eq!((batch.producer_id, batch.producer_epoch), (42, 3));
            assert_eq!((batch.base_sequence, batch.record_count), (-1, 1));
            // The control record's key says which marker it is.
            use kafka_protocol::records::RecordBatchDecoder;
            let mut bytes = marker.clone();
            let records = RecordBatchDecoder::decode(&mut bytes).unwrap().records;
            let key = records[0].key.clone().unwrap();
            assert_eq!(&key[..], &[0, 0, 0, u8::from(commit)]);
            assert!(has_transactional(&marker));
        }
    }

    #[test]
    fn reads_end_before_the_last_stable_offset() {
        let mut stored = BytesMut::new();
        stored.extend_from_slice(&assign_offset(&batch(0, 3), 10, 1));
        stored.extend_from_slice(&assign_offset(&batch(0, 2), 13, 1));
        stored.extend_from_slice(&assign_offset(&batch(0, 4), 15, 1));
        let stored = stored.freeze();
        let first_len = assign_offset(&batch(0, 3), 10, 1).len();
        assert_eq!(take_before(stored.clone(), 13).len(), first_len);
        assert_eq!(take_before(stored.clone(), 10).len(), 0);
        assert_eq!(take_before(stored.clone(), 19), stored);
        assert_eq!(
            take_before(stored.clone(), 14).len(),
            stored.len() - assign_offset(&batch(0, 4), 15, 1).len()
        );
        assert!(!has_transactional(&stored));
        // Malformed input comes back unchanged, never a panic.
        let junk = Bytes::from_static(&[1, 2, 3]);
        assert_eq!(take_before(junk.clone(), 0), junk);
        assert!(!has_transactional(&junk));
    }

    /// A valid batch of `count` empty-valued records (records are opaque here).
    fn batch(base_offset: i64, count: i32) -> Bytes {
        let mut body = BytesMut::new();
        body.put_i16(0); // attributes
        body.put_i32(count - 1); // lastOffsetDelta
        body.put_i64(1_000); // baseTimestamp
        body.put_i64(2_000); // maxTimestamp
        body.put_i64(-1); // producerId
        body.put_i16(-1); // producerEpoch
        body.put_i32(-1); // baseSequence
        body.put_i32(count);
        for delta in 0..count {
            // A record with a null key and value: length, attributes,
            // timestampDelta, offsetDelta (zigzag), key and value lengths -1,
            // no headers.
            let delta = u8::try_from(delta * 2).expect("small test batches");
            body.put_slice(&[12, 0, 0, delta, 1, 1, 0]);
        }
        let crc = crc32c::crc32c(&body);
        let mut out = BytesMut::new();
        out.put_i64(base_offset);
        out.put_i32(i32::try_from(body.len() + 9).unwrap());
        out.put_i32(0);
        out.put_i8(2);
        out.put_u32(crc);
        out.put_slice(&body);
        out.freeze()
    }

    #[test]
    fn batches_parse_rewrite_and_skip() {
        let mut both = BytesMut::new();
        both.put_slice(&batch(0, 3));
        both.put_slice(&batch(0, 2));
        let parsed = parse_batches(&both.freeze()).unwrap();
        assert_eq!(parsed.len(), 2);
        assert_eq!(parsed[0].record_count, 3);
        let moved = assign_offset(&parsed[1].bytes, 3, 9);
        let reparsed = parse_batches(&moved).unwrap();
        assert_eq!(
            reparsed[0].base_offset, 3,
            "the crc still holds after rewriting"
        );
        let mut stored = BytesMut::new();
        stored.put_slice(&assign_offset(&parsed[0].bytes, 0, 9));
        stored.put_slice(&moved);
        let stored = stored.freeze();
        assert_eq!(skip_before(stored.clone(), 2), stored);
        assert_eq!(skip_before(stored.clone(), 3), moved);
        assert!(skip_before(stored, 5).is_empty());
    }

    #[test]
    fn damage_is_refused_never_a_panic() {
        let good = batch(0, 2);
        let mut flipped = good.to_vec();
        flipped[40] ^= 1;
        assert!(matches!(
            parse_batches(&Bytes::from(flipped)),
            Err(BatchError::Corrupt(_))
        ));
        let mut magic = good.to_vec();
        magic[16] = 1;
        assert!(matches!(
            parse_batches(&Bytes::from(magic)),
            Err(BatchError::Unsupported(_))
        ));
        for len in 0..good.len() {
            assert!(
                parse_batches(&good.slice(..len)).is_err(),
                "truncated at {len}"
            );
        }
        for i in 0..good.len() {
            for mask in [1u8, 0x80, 0xff] {
                let mut bytes = good.to_vec();
                bytes[i] ^= mask;
                let _ = parse_batches(&Bytes::from(bytes));
            }
        }
    }

    /// `batch` with its header fields at `at` set to `value` and its CRC fixed.
    fn with_field(batch: &Bytes, at: usize, value: i32) -> Bytes {
        let mut bytes = batch.to_vec();
        bytes[at..at + 4].copy_from_slice(&value.to_be_bytes());
        let crc = crc32c::crc32c(&bytes[CRC_COVERED_FROM..]);
        bytes[17..21].copy_from_slice(&crc.to_be_bytes());
        Bytes::from(bytes)
    }

    #[test]
    fn a_batch_whose_header_contradicts_its_records_is_invalid() {
        let good = batch(0, 3);
        assert!(parse_batches(&good).is_ok());
        let cases = [
            // Offsets span more than the records claimed (or fewer).
            (with_field(&good, 23, 9), "offset range"),
            (with_field(&good, 23, 1), "offset range"),
            (with_field(&good, 23, i32::MAX), "offset range"),
            // The count and the range agree, but the batch holds 3 records.
            (
                with_field(&with_field(&good, 23, i32::MAX - 1), 57, i32::MAX),
                "holds 3",
            ),
            (with_field(&with_field(&good, 23, 1), 57, 2), "or more"),
        ];
        for (bad, why) in cases {
            match parse_batches(&bad) {
                Err(BatchError::Invalid(message)) => {
                    assert!(message.contains(why), "{message}")
                }
                other => panic!("{why}: {other:?}"),
            }
        }
        // Record framing that overruns the batch is corrupt.
        let mut overrun = good.to_vec();
        overrun[BATCH_HEADER_LEN] = 0x7e; // first record length 63
        let crc = crc32c::crc32c(&overrun[CRC_COVERED_FROM..]);
        overrun[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            parse_batches(&Bytes::from(overrun)),
            Err(BatchError::Corrupt(_))
        ));
        // Real producers' batches, compressed or not, pass.
        for compression in [
            kafka_protocol::records::Compression::None,
            kafka_protocol::records::Compression::Lz4,
        ] {
            let encoded = encoded(&[10, 20, 30, 40], compression);
            assert_eq!(parse_batches(&encoded).unwrap()[0].record_count, 4);
        }
    }

    /// A batch encoded as a producer would, records at `timestamps`.
    fn encoded(timestamps: &[i64], compression: kafka_protocol::records::Compression) -> Bytes {
        use kafka_protocol::records::{
            Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let records: Vec<Record> = timestamps
            .iter()
            .enumerate()
            .map(|(i, timestamp)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i64::try_from(i).unwrap(),
                // Consecutive sequences keep the records in one batch.
                sequence: i32::try_from(i).unwrap(),
                timestamp: *timestamp,
                key: None,
                value: Some(Bytes::from_static(b"value")),
                headers: Default::default(),
            })
            .collect();
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
        out.freeze()
    }

    #[test]
    fn record_timestamps_decode_compressed_batches_and_log_append_time() {
        use kafka_protocol::records::Compression;
        for compression in [Compression::None, Compression::Lz4, Compression::Zstd] {
            let bytes = assign_offset(&encoded(&[100, 300, 200, 300], compression), 40, 3);
            let batch = parse_batches(&bytes).unwrap().remove(0);
            assert_eq!(batch.max_timestamp, 300);
            assert_eq!(
                record_timestamps(&batch).unwrap(),
                vec![(40, 100), (41, 300), (42, 200), (43, 300)],
                "{compression:?}"
            );
        }
        // The same batch stamped LogAppendTime (attribute bit 3): every record
        // reports the batch's max timestamp.
        let mut stamped = encoded(&[100, 300, 200], Compression::None).to_vec();
        stamped[22] |= 0x08;
        let crc = crc32c::crc32c(&stamped[CRC_COVERED_FROM..]);
        stamped[17..21].copy_from_slice(&crc.to_be_bytes());
        let batch = parse_batches(&Bytes::from(stamped)).unwrap().remove(0);
        assert_eq!(
            record_timestamps(&batch).unwrap(),
            vec![(0, 300), (1, 300), (2, 300)]
        );
    }

    /// A flush chunk of batches as the write path builds one.
    fn chunk_of(batches: &[Bytes]) -> Bytes {
        let mut out = BytesMut::new();
        for batch in batches {
            out.put_slice(batch);
        }
        out.freeze()
    }

    fn stored_codec(batches: &[Bytes]) -> (fjord_storage::Codec, Bytes) {
        use fjord_common::IdGenerator;
        use fjord_storage::{ChunkMeta, SegmentWriter, WriterOptions, decode_segment};
        let chunk = chunk_of(batches);
        let segment_id = fjord_common::SequentialIds::default().ulid(1);
        let mut writer = SegmentWriter::new(segment_id, WriterOptions::default()).unwrap();
        let meta = ChunkMeta {
            topic_id: uuid::Uuid::from_u128(1),
            partition: 0,
            first_offset: 0,
            last_offset: 99,
            record_count: 100,
            max_timestamp: -1,
        };
        let hint = chunk_hint(batches.iter().map(|b| &b[..]));
        writer.add_chunk_with_hint(meta, chunk, hint).unwrap();
        let segment = writer.finish().unwrap();
        let codec = segment.footer.entries()[0].codec;
        let mut decoded = decode_segment(segment.bytes).unwrap();
        (codec, decoded.chunks.remove(0))
    }

    #[test]
    fn chunks_of_producer_compressed_batches_are_stored_as_given() {
        use fjord_storage::{ChunkHint, Codec};
        use kafka_protocol::records::Compression;
        let timestamps: Vec<i64> = (0..50).collect();
        let plain = encoded(&timestamps, Compression::None);
        let lz4 = encoded(&timestamps, Compression::Lz4);
        let zstd = encoded(&timestamps, Compression::Zstd);
        assert!(!is_producer_compressed(&plain));
        assert!(is_producer_compressed(&lz4));
        assert!(is_producer_compressed(&zstd));
        assert!(!is_producer_compressed(&lz4[..ATTRIBUTES_AT + 1]));
        assert_eq!(chunk_hint(std::iter::empty()), ChunkHint::Unknown);

        // Identical compressed batches repeat, so zstd would shrink the chunk:
        // only the hint keeps it as given.
        let compressed = vec![lz4.clone(), zstd.clone(), lz4.clone(), zstd.clone(), lz4];
        assert_eq!(
            chunk_hint(compressed.iter().map(|b| &b[..])),
            ChunkHint::ProducerCompressed
        );
        let (codec, round_tripped) = stored_codec(&compressed);
        assert_eq!(codec, Codec::None);
        assert_eq!(round_tripped, chunk_of(&compressed));
        assert_eq!(
            parse_batches(&round_tripped).unwrap().len(),
            compressed.len()
        );

        // One uncompressed batch among them: the chunk is compressed.
        let mut mixed = compressed.clone();
        mixed.insert(2, plain);
        assert_eq!(chunk_hint(mixed.iter().map(|b| &b[..])), ChunkHint::Unknown);
        let (codec, round_tripped) = stored_codec(&mixed);
        assert_eq!(codec, Codec::Zstd);
        assert_eq!(round_tripped, chunk_of(&mixed));
    }
}
