//! Stored Kafka v2 record batches as a clean reads and rewrites them.
//!
//! Stored batches come from the bucket: every length is checked before it is
//! used, the batch CRC is verified, and decompression stops at
//! [`MAX_DECOMPRESSED_BATCH_BYTES`] (a producer's "zip bomb" fails the clean
//! of its partition, never the agent).
//!
//! A batch a clean changes is rewritten as Kafka's cleaner rewrites it
//! (`MemoryRecords.filterTo`): the same base offset and last offset delta
//! (so offsets, and the producer's last sequence, stay), producer id, epoch,
//! base sequence, partition leader epoch and attributes; only the records
//! kept, each byte for byte except for its timestamp delta when the batch
//! gets a delete horizon (KIP-534: attribute bit 6, the base timestamp then
//! holding the horizon and the records' timestamps counted from it);
//! compressed again with the batch's codec; a new CRC. A batch emptied of
//! its records but kept (a producer's last batch) is a header with no
//! records, uncompressed, as Kafka writes it.

use bytes::{BufMut, Bytes, BytesMut};

/// Bytes before the records of a batch.
pub const HEADER_LEN: usize = 61;
/// The most bytes one batch's records may decompress to.
pub const MAX_DECOMPRESSED_BATCH_BYTES: usize = 128 << 20;
const LENGTH_FIELD_END: usize = 12;
const CRC_AT: usize = 17;
const CRC_COVERED_FROM: usize = 21;
const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_FLAG: i16 = 0x08;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;
const DELETE_HORIZON_FLAG: i16 = 0x40;

/// Why stored bytes cannot be cleaned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Truncated, inconsistent or failing its checksum.
    #[error("corrupt stored batch at offset {base_offset}: {detail}")]
    Corrupt {
        /// The batch's base offset (-1 before it could be read).
        base_offset: i64,
        /// What is wrong.
        detail: String,
    },
    /// Something a clean does not handle (an unknown codec, records larger
    /// than [`MAX_DECOMPRESSED_BATCH_BYTES`]).
    #[error("stored batch at offset {base_offset} cannot be cleaned: {detail}")]
    Unsupported {
        /// The batch's base offset.
        base_offset: i64,
        /// Why.
        detail: String,
    },
}

fn corrupt(base_offset: i64, detail: impl Into<String>) -> BatchError {
    BatchError::Corrupt {
        base_offset,
        detail: detail.into(),
    }
}

/// How a batch's records are compressed (attributes bits 0–2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchCodec {
    /// Uncompressed.
    None,
    /// gzip.
    Gzip,
    /// Snappy (raw, or xerial-framed as the Java client writes it).
    Snappy,
    /// LZ4 frames.
    Lz4,
    /// zstd.
    Zstd,
}

impl BatchCodec {
    fn from_attributes(attributes: i16) -> Option<Self> {
        match attributes & COMPRESSION_MASK {
            0 => Some(Self::None),
            1 => Some(Self::Gzip),
            2 => Some(Self::Snappy),
            3 => Some(Self::Lz4),
            4 => Some(Self::Zstd),
            _ => None,
        }
    }

    fn bits(self) -> i16 {
        match self {
            Self::None => 0,
            Self::Gzip => 1,
            Self::Snappy => 2,
            Self::Lz4 => 3,
            Self::Zstd => 4,
        }
    }
}

/// One stored batch: its header fields and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    /// The whole batch.
    pub bytes: Bytes,
    /// `baseOffset`.
    pub base_offset: i64,
    /// `partitionLeaderEpoch`.
    pub partition_leader_epoch: i32,
    /// `attributes`.
    pub attributes: i16,
    /// `lastOffsetDelta`.
    pub last_offset_delta: i32,
    /// `baseTimestamp` (the delete horizon when the batch has one).
    pub base_timestamp: i64,
    /// `maxTimestamp`.
    pub max_timestamp: i64,
    /// `producerId` (-1: none).
    pub producer_id: i64,
    /// `producerEpoch`.
    pub producer_epoch: i16,
    /// `baseSequence`.
    pub base_sequence: i32,
    /// `recordCount`.
    pub record_count: i32,
}

fn i16_at(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn i32_at(bytes: &[u8], at: usize) -> i32 {
    let mut field = [0u8; 4];
    field.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(field)
}

fn i64_at(bytes: &[u8], at: usize) -> i64 {
    let mut field = [0u8; 8];
    field.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(field)
}

impl StoredBatch {
    /// The offset of its last record (`baseOffset + lastOffsetDelta`).
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Whether it belongs to a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    /// Whether it is a control batch (a transaction marker).
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// Its delete horizon, if a clean set one.
    pub fn delete_horizon(&self) -> Option<i64> {
        (self.attributes & DELETE_HORIZON_FLAG != 0).then_some(self.base_timestamp)
    }

    /// Whether its timestamps are the broker's (`LogAppendTime`).
    fn log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_FLAG != 0
    }

    /// The bytes after the header (compressed records, or records).
    fn records_section(&self) -> &[u8] {
        &self.bytes[HEADER_LEN..]
    }

    /// Its records, decompressed if need be (at most
    /// [`MAX_DECOMPRESSED_BATCH_BYTES`]), as one buffer.
    pub fn decompressed(&self) -> Result<Bytes, BatchError> {
        let codec = BatchCodec::from_attributes(self.attributes).ok_or_else(|| {
            BatchError::Unsupported {
                base_offset: self.base_offset,
                detail: format!("compression codec {}", self.attributes & COMPRESSION_MASK),
            }
        })?;
        if codec == BatchCodec::None {
            return Ok(self.bytes.slice(HEADER_LEN..));
        }
        codec::decompress(codec, self.records_section(), MAX_DECOMPRESSED_BATCH_BYTES).map_err(
            |detail| match detail {
                codec::Failure::TooLarge => BatchError::Unsupported {
                    base_offset: self.base_offset,
                    detail: format!(
                        "records decompress to more than {MAX_DECOMPRESSED_BATCH_BYTES} bytes"
                    ),
                },
                codec::Failure::Damaged(detail) => corrupt(self.base_offset, detail),
            },
        )
    }

    /// Its records, from [`StoredBatch::decompressed`]'s buffer.
    pub fn records<'a>(&self, decompressed: &'a [u8]) -> Result<Vec<RecordView<'a>>, BatchError> {
        let expected = usize::try_from(self.record_count)
            .map_err(|_| corrupt(self.base_offset, "negative record count"))?;
        let mut records = Vec::with_capacity(expected.min(decompressed.len() / 7 + 1));
        let mut at = 0usize;
        while at < decompressed.len() {
            if records.len() == expected {
                return Err(corrupt(
                    self.base_offset,
                    format!("more than the {expected} records the header claims"),
                ));
            }
            let record = RecordView::parse(&decompressed[at..])
                .ok_or_else(|| corrupt(self.base_offset, format!("record {}", records.len())))?;
            if record.offset_delta < 0 || record.offset_delta > self.last_offset_delta {
                return Err(corrupt(
                    self.base_offset,
                    format!("record offset delta {} out of range", record.offset_delta),
                ));
            }
            at += record.raw.len();
            records.push(record);
        }
        if records.len() != expected {
            return Err(corrupt(
                self.base_offset,
                format!("{} records, the header claims {expected}", records.len()),
            ));
        }
        Ok(records)
    }
}

/// Splits the batches a chunk holds, checking each one's framing and CRC.
pub fn split_batches(stored: &Bytes) -> Result<Vec<StoredBatch>, BatchError> {
    let mut batches = Vec::new();
    let mut at = 0usize;
    while at < stored.len() {
        let rest = &stored[at..];
        if rest.len() < HEADER_LEN {
            return Err(corrupt(-1, format!("{} trailing bytes", rest.len())));
        }
        let base_offset = i64_at(rest, 0);
        let total = usize::try_from(i32_at(rest, 8))
            .ok()
            .and_then(|len| len.checked_add(LENGTH_FIELD_END))
            .filter(|total| *total >= HEADER_LEN && *total <= rest.len())
            .ok_or_else(|| corrupt(base_offset, "batch length out of range"))?;
        let bytes = &rest[..total];
        if bytes[16] != 2 {
            return Err(BatchError::Unsupported {
                base_offset,
                detail: format!("magic {}", bytes[16]),
            });
        }
        let stored_crc = u32::from_be_bytes([
            bytes[CRC_AT],
            bytes[CRC_AT + 1],
            bytes[CRC_AT + 2],
            bytes[CRC_AT + 3],
        ]);
        if crc32c::crc32c(&bytes[CRC_COVERED_FROM..]) != stored_crc {
            return Err(corrupt(base_offset, "crc mismatch"));
        }
        let batch = StoredBatch {
            bytes: stored.slice(at..at + total),
            base_offset,
            partition_leader_epoch: i32_at(bytes, 12),
            attributes: i16_at(bytes, 21),
            last_offset_delta: i32_at(bytes, 23),
            base_timestamp: i64_at(bytes, 27),
            max_timestamp: i64_at(bytes, 35),
            producer_id: i64_at(bytes, 43),
            producer_epoch: i16_at(bytes, 51),
            base_sequence: i32_at(bytes, 53),
            record_count: i32_at(bytes, 57),
        };
        if batch.base_offset < 0
            || batch.last_offset_delta < 0
            || batch.record_count < 0
            || i64::from(batch.record_count) > i64::from(batch.last_offset_delta) + 1
        {
            return Err(corrupt(
                base_offset,
                "inconsistent offsets and record count",
            ));
        }
        batches.push(batch);
        at += total;
    }
    Ok(batches)
}

/// One record of a batch, as stored (Kafka's `DefaultRecord`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordView<'a> {
    /// The whole record, its length varint included.
    pub raw: &'a [u8],
    /// Where in `raw` the offset delta starts (after the attributes and the
    /// timestamp delta).
    after_timestamp: usize,
    /// `timestampDelta`.
    pub timestamp_delta: i64,
    /// `offsetDelta`.
    pub offset_delta: i32,
    /// The key (`None`: null).
    pub key: Option<&'a [u8]>,
    /// Whether the value is null (a tombstone).
    pub is_tombstone: bool,
}

impl<'a> RecordView<'a> {
    /// Parses the record at the start of `bytes`; `None` if it is malformed.
    fn parse(bytes: &'a [u8]) -> Option<Self> {
        let (length, taken) = varint(bytes)?;
        let length = usize::try_from(length).ok()?;
        let end = taken.checked_add(length)?;
        let raw = bytes.get(..end)?;
        let body = &raw[taken..];
        let mut at = 1usize; // attributes
        let (timestamp_delta, used) = varlong(body.get(at..)?)?;
        at += used;
        let after_timestamp = taken + at;
        let (offset_delta, used) = varint(body.get(at..)?)?;
        at += used;
        let (key_length, used) = varint(body.get(at..)?)?;
        at += used;
        let key = if key_length < 0 {
            None
        } else {
            let key_end = at.checked_add(usize::try_from(key_length).ok()?)?;
            let key = body.get(at..key_end)?;
            at = key_end;
            Some(key)
        };
        let (value_length, used) = varint(body.get(at..)?)?;
        at += used;
        if value_length >= 0 {
            at = at.checked_add(usize::try_from(value_length).ok()?)?;
            body.get(..at)?;
        }
        // The headers are not needed; they are copied with the record.
        Some(Self {
            raw,
            after_timestamp,
            timestamp_delta,
            offset_delta,
            key,
            is_tombstone: value_length < 0,
        })
    }
}

/// A zigzag varint of at most 5 bytes: the value and the bytes it took.
fn varint(bytes: &[u8]) -> Option<(i32, usize)> {
    let mut raw: u32 = 0;
    for (index, byte) in bytes.iter().take(5).enumerate() {
        raw |= u32::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((((raw >> 1) as i32) ^ -((raw & 1) as i32), index + 1));
        }
    }
    None
}

/// A zigzag varlong of at most 10 bytes.
fn varlong(bytes: &[u8]) -> Option<(i64, usize)> {
    let mut raw: u64 = 0;
    for (index, byte) in bytes.iter().take(10).enumerate() {
        raw |= u64::from(byte & 0x7f) << (7 * index);
        if byte & 0x80 == 0 {
            return Some((((raw >> 1) as i64) ^ -((raw & 1) as i64), index + 1));
        }
    }
    None
}

fn put_varint(out: &mut BytesMut, value: i32) {
    let mut raw = ((value << 1) ^ (value >> 31)) as u32;
    while raw >= 0x80 {
        out.put_u8((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.put_u8(raw as u8);
}

fn put_varlong(out: &mut BytesMut, value: i64) {
    let mut raw = ((value << 1) ^ (value >> 63)) as u64;
    while raw >= 0x80 {
        out.put_u8((raw as u8) | 0x80);
        raw >>= 7;
    }
    out.put_u8(raw as u8);
}

/// `batch` with only `kept` of its records (in order, taken from its
/// [`StoredBatch::records`]), and with delete horizon `new_horizon` when the
/// batch gets one now (it must not have one already). An empty `kept` gives
/// the header alone.
pub fn rewrite(
    batch: &StoredBatch,
    kept: &[RecordView<'_>],
    new_horizon: Option<i64>,
) -> Result<Bytes, BatchError> {
    debug_assert!(new_horizon.is_none() || batch.delete_horizon().is_none());
    let (base_timestamp, horizon_flag) = match (new_horizon, batch.delete_horizon()) {
        (Some(horizon), _) => (horizon, DELETE_HORIZON_FLAG),
        (None, Some(horizon)) => (horizon, DELETE_HORIZON_FLAG),
        (None, None) => (batch.base_timestamp, 0),
    };
    let mut records = BytesMut::new();
    let mut max_timestamp: Option<i64> = None;
    for record in kept {
        let timestamp = batch.base_timestamp.saturating_add(record.timestamp_delta);
        max_timestamp = max_timestamp.max(Some(timestamp));
        if new_horizon.is_none() {
            records.put_slice(record.raw);
            continue;
        }
        let mut body = BytesMut::with_capacity(record.raw.len() + 8);
        // attributes: the byte after the length varint
        let (_, length_bytes) =
            varint(record.raw).ok_or_else(|| corrupt(batch.base_offset, "record length"))?;
        body.put_u8(record.raw[length_bytes]);
        put_varlong(&mut body, timestamp.saturating_sub(base_timestamp));
        body.put_slice(&record.raw[record.after_timestamp..]);
        let length =
            i32::try_from(body.len()).map_err(|_| corrupt(batch.base_offset, "record too long"))?;
        put_varint(&mut records, length);
        records.put_slice(&body);
    }
    let codec = if kept.is_empty() {
        BatchCodec::None
    } else {
        BatchCodec::from_attributes(batch.attributes).ok_or_else(|| BatchError::Unsupported {
            base_offset: batch.base_offset,
            detail: "unknown codec".into(),
        })?
    };
    let section = match codec {
        BatchCodec::None => records.freeze(),
        other => codec::compress(other, &records)
            .map_err(|detail| corrupt(batch.base_offset, format!("compressing: {detail}")))?,
    };
    // CreateTime: the largest timestamp of the records kept (Kafka
    // recomputes it); LogAppendTime and an empty batch keep the batch's.
    let max_timestamp = match max_timestamp {
        Some(max) if !batch.log_append_time() => max,
        _ => batch.max_timestamp,
    };
    let attributes = (batch.attributes & !(COMPRESSION_MASK | DELETE_HORIZON_FLAG))
        | codec.bits()
        | if kept.is_empty() { 0 } else { horizon_flag };
    let record_count =
        i32::try_from(kept.len()).map_err(|_| corrupt(batch.base_offset, "record count"))?;
    let batch_length = i32::try_from(HEADER_LEN - LENGTH_FIELD_END + section.len())
        .map_err(|_| corrupt(batch.base_offset, "batch too long"))?;
    let mut out = BytesMut::with_capacity(HEADER_LEN + section.len());
    out.put_i64(batch.base_offset);
    out.put_i32(batch_length);
    out.put_i32(batch.partition_leader_epoch);
    out.put_i8(2);
    out.put_u32(0); // the CRC, below
    out.put_i16(attributes);
    out.put_i32(batch.last_offset_delta);
    out.put_i64(if kept.is_empty() {
        batch.base_timestamp
    } else {
        base_timestamp
    });
    out.put_i64(max_timestamp);
    out.put_i64(batch.producer_id);
    out.put_i16(batch.producer_epoch);
    out.put_i32(batch.base_sequence);
    out.put_i32(record_count);
    out.put_slice(&section);
    let crc = crc32c::crc32c(&out[CRC_COVERED_FROM..]);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}

/// Compression and decompression of batch records with each Kafka codec.
mod codec {
    use std::io::Read;

    use bytes::{Bytes, BytesMut};
    use kafka_protocol::compression::{Compressor, Gzip, Lz4, Snappy, Zstd};

    use super::BatchCodec;

    /// Why decompression failed.
    pub(super) enum Failure {
        /// The records are larger than the limit.
        TooLarge,
        /// Not a valid stream of the codec.
        Damaged(String),
    }

    /// Reads `reader` to its end, failing past `limit` bytes.
    fn read_bounded(reader: impl Read, limit: usize) -> Result<Bytes, Failure> {
        let mut out = Vec::new();
        let bound = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
        reader
            .take(bound)
            .read_to_end(&mut out)
            .map_err(|e| Failure::Damaged(e.to_string()))?;
        if out.len() > limit {
            return Err(Failure::TooLarge);
        }
        Ok(Bytes::from(out))
    }

    /// The xerial framing the Java client wraps snappy blocks in.
    const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
    /// Magic, version and compatible version.
    const XERIAL_HEADER_LEN: usize = 16;

    fn snappy_block(block: &[u8], out: &mut Vec<u8>, limit: usize) -> Result<(), Failure> {
        let length =
            snap::raw::decompress_len(block).map_err(|e| Failure::Damaged(e.to_string()))?;
        if out.len().saturating_add(length) > limit {
            return Err(Failure::TooLarge);
        }
        let start = out.len();
        out.resize(start + length, 0);
        snap::raw::Decoder::new()
            .decompress(block, &mut out[start..])
            .map_err(|e| Failure::Damaged(e.to_string()))?;
        Ok(())
    }

    /// The records of a batch compressed with `codec`, at most `limit` bytes.
    pub(super) fn decompress(
        codec: BatchCodec,
        compressed: &[u8],
        limit: usize,
    ) -> Result<Bytes, Failure> {
        match codec {
            BatchCodec::None => Ok(Bytes::copy_from_slice(compressed)),
            BatchCodec::Gzip => read_bounded(flate2::read::GzDecoder::new(compressed), limit),
            BatchCodec::Lz4 => read_bounded(
                lz4::Decoder::new(compressed).map_err(|e| Failure::Damaged(e.to_string()))?,
                limit,
            ),
            BatchCodec::Zstd => read_bounded(
                zstd::stream::read::Decoder::new(compressed)
                    .map_err(|e| Failure::Damaged(e.to_string()))?,
                limit,
            ),
            BatchCodec::Snappy => {
                let mut out = Vec::new();
                if compressed.starts_with(XERIAL_MAGIC) {
                    let mut at = XERIAL_HEADER_LEN.min(compressed.len());
                    while at < compressed.len() {
                        let length = compressed
                            .get(at..at + 4)
                            .and_then(|field| <[u8; 4]>::try_from(field).ok())
                            .map(u32::from_be_bytes)
                            .and_then(|length| usize::try_from(length).ok())
                            .ok_or_else(|| Failure::Damaged("snappy block length".into()))?;
                        at += 4;
                        let block = at
                            .checked_add(length)
                            .and_then(|end| compressed.get(at..end))
                            .ok_or_else(|| Failure::Damaged("snappy block".into()))?;
                        snappy_block(block, &mut out, limit)?;
                        at += length;
                    }
                } else {
                    snappy_block(compressed, &mut out, limit)?;
                }
                Ok(Bytes::from(out))
            }
        }
    }

    /// `records` compressed with `codec` as Kafka clients expect it.
    pub(super) fn compress(codec: BatchCodec, records: &[u8]) -> Result<Bytes, String> {
        let mut out = BytesMut::new();
        let fill = |tmp: &mut BytesMut| {
            tmp.extend_from_slice(records);
            Ok(())
        };
        match codec {
            BatchCodec::None => out.extend_from_slice(records),
            BatchCodec::Gzip => Gzip::compress(&mut out, fill).map_err(|e| e.to_string())?,
            BatchCodec::Snappy => Snappy::compress(&mut out, fill).map_err(|e| e.to_string())?,
            BatchCodec::Lz4 => Lz4::compress(&mut out, fill).map_err(|e| e.to_string())?,
            BatchCodec::Zstd => Zstd::compress(&mut out, fill).map_err(|e| e.to_string())?,
        }
        Ok(out.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
        TimestampType,
    };

    /// One batch of `records` (key, value; `None` value: a tombstone) at
    /// `base_offset`, from producer 7 epoch 2 sequence 100.
    fn encoded(
        base_offset: i64,
        records: &[(Option<&str>, Option<&str>)],
        compression: Compression,
    ) -> Bytes {
        let records: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, (key, value))| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 3,
                producer_id: 7,
                producer_epoch: 2,
                timestamp_type: TimestampType::Creation,
                offset: base_offset + i as i64,
                sequence: 100 + i as i32,
                timestamp: 1_700_000_000_000 + i as i64 * 10,
                key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
                value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
                headers: [(
                    kafka_protocol::protocol::StrBytes::from_static_str("h"),
                    Some(Bytes::from_static(b"v")),
                )]
                .into_iter()
                .collect(),
            })
            .collect();
        let mut out = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut out,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )
        .unwrap();
        out.freeze()
    }

    fn decode(bytes: &Bytes) -> Vec<Record> {
        let mut buf = bytes.clone();
        RecordBatchDecoder::decode_all(&mut buf)
            .unwrap()
            .into_iter()
            .flat_map(|set| set.records)
            .collect()
    }

    const CODECS: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    #[test]
    fn a_rewritten_batch_keeps_offsets_producer_fields_and_the_records_kept() {
        for compression in CODECS {
            let stored = encoded(
                40,
                &[
                    (Some("a"), Some("1")),
                    (Some("b"), Some("2")),
                    (None, Some("keyless")),
                    (Some("a"), None),
                ],
                compression,
            );
            let batches = split_batches(&stored).unwrap();
            assert_eq!(batches.len(), 1);
            let batch = &batches[0];
            let decompressed = batch.decompressed().unwrap();
            let records = batch.records(&decompressed).unwrap();
            assert_eq!(records.len(), 4);
            assert_eq!(records[3].key, Some(&b"a"[..]));
            assert!(records[3].is_tombstone);
            assert_eq!(records[2].key, None);
            // Keep the second and the last.
            let kept = [records[1], records[3]];
            let rewritten = rewrite(batch, &kept, None).unwrap();
            let again = split_batches(&rewritten).unwrap();
            let out = &again[0];
            assert_eq!(out.base_offset, 40);
            assert_eq!(out.last_offset(), 43);
            assert_eq!(out.record_count, 2);
            assert_eq!(
                (out.producer_id, out.producer_epoch, out.base_sequence),
                (7, 2, 100)
            );
            assert_eq!(out.partition_leader_epoch, 3);
            assert_eq!(
                out.attributes & COMPRESSION_MASK,
                batch.attributes & COMPRESSION_MASK
            );
            assert_eq!(out.max_timestamp, 1_700_000_000_030);
            let decoded = decode(&rewritten);
            let seen: Vec<(i64, i64, Option<Bytes>, i32)> = decoded
                .iter()
                .map(|r| (r.offset, r.timestamp, r.value.clone(), r.sequence))
                .collect();
            assert_eq!(
                seen,
                vec![
                    (41, 1_700_000_000_010, Some(Bytes::from_static(b"2")), 101),
                    (43, 1_700_000_000_030, None, 103),
                ],
                "{compression:?}"
            );
            assert_eq!(decoded[0].headers.len(), 1);
        }
    }

    #[test]
    fn a_delete_horizon_moves_the_base_timestamp_not_the_records_timestamps() {
        for compression in CODECS {
            let stored = encoded(0, &[(Some("a"), Some("1")), (Some("a"), None)], compression);
            let batch = &split_batches(&stored).unwrap()[0];
            let decompressed = batch.decompressed().unwrap();
            let records = batch.records(&decompressed).unwrap();
            let horizon = 1_800_000_000_000;
            let rewritten = rewrite(batch, &records, Some(horizon)).unwrap();
            let out = &split_batches(&rewritten).unwrap()[0];
            assert_eq!(out.delete_horizon(), Some(horizon));
            let decoded = decode(&rewritten);
            assert!(decoded.iter().all(|r| r.delete_horizon));
            let timestamps: Vec<i64> = decoded.iter().map(|r| r.timestamp).collect();
            assert_eq!(timestamps, vec![1_700_000_000_000, 1_700_000_000_010]);
            // A later rewrite keeps the horizon.
            let decompressed = out.decompressed().unwrap();
            let records = out.records(&decompressed).unwrap();
            let again = rewrite(out, &records[..1], None).unwrap();
            let again_batch = &split_batches(&again).unwrap()[0];
            assert_eq!(again_batch.delete_horizon(), Some(horizon));
            assert_eq!(decode(&again)[0].timestamp, 1_700_000_000_000);
        }
    }

    #[test]
    fn an_emptied_batch_is_a_header_that_clients_decode() {
        let stored = encoded(
            10,
            &[(Some("a"), Some("1")), (Some("b"), Some("2"))],
            Compression::Zstd,
        );
        let batch = &split_batches(&stored).unwrap()[0];
        let empty = rewrite(batch, &[], None).unwrap();
        assert_eq!(empty.len(), HEADER_LEN);
        let out = &split_batches(&empty).unwrap()[0];
        assert_eq!(
            (out.base_offset, out.last_offset(), out.record_count),
            (10, 11, 0)
        );
        assert_eq!(out.attributes & COMPRESSION_MASK, 0);
        assert_eq!(out.base_sequence, 100);
        assert!(decode(&empty).is_empty());
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let stored = encoded(
            5,
            &[(Some("k"), Some("v")), (Some("k2"), None)],
            Compression::None,
        );
        assert!(split_batches(&stored).is_ok());
        for len in 0..stored.len() {
            let _ = split_batches(&stored.slice(..len));
        }
        for i in 0..stored.len() {
            for mask in [1u8, 0x80, 0xff] {
                let mut bytes = stored.to_vec();
                bytes[i] ^= mask;
                // Fix the CRC so the damage reaches the record parser.
                if bytes.len() >= HEADER_LEN {
                    let crc = crc32c::crc32c(&bytes[CRC_COVERED_FROM..]);
                    bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
                }
                if let Ok(batches) = split_batches(&Bytes::from(bytes)) {
                    for batch in batches {
                        if let Ok(records) = batch.decompressed() {
                            let _ = batch.records(&records);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn decompression_stops_at_its_limit() {
        let big = vec![b'x'; 1 << 20];
        for codec in [
            BatchCodec::Gzip,
            BatchCodec::Snappy,
            BatchCodec::Lz4,
            BatchCodec::Zstd,
        ] {
            let compressed = codec::compress(codec, &big).unwrap();
            assert!(matches!(
                codec::decompress(codec, &compressed, 1 << 19),
                Err(codec::Failure::TooLarge)
            ));
            let back = codec::decompress(codec, &compressed, 1 << 20).ok().unwrap();
            assert_eq!(back.len(), 1 << 20);
        }
    }
}
