//! The byte layout of a segment object, version 1, and the types it describes.
//!
//! `docs/segment-format.md` is the prose version of this file; keep them in step.
//! All integers are little-endian; topic ids are the UUID's 16 bytes; the segment id
//! is the ULID's 16 bytes, big-endian (so ids compare like their text form).
//!
//! ```text
//! object  = header chunk* footer trailer
//! header  = magic "FJSG" | version u16 | flags u16                           (8 bytes)
//! chunk   = chunk-header payload
//! chunk-header = magic "FJCK" | codec u8 | reserved [3] | topic_id [16]
//!              | partition i32 | record_count u32 | first_offset i64
//!              | last_offset i64 | max_timestamp i64 | uncompressed_length u64
//!              | payload_length u64 | payload_crc32c u32 | header_crc32c u32  (80 bytes)
//! footer  = segment_id [16] | entry_count u32 | reserved u32 | entry*
//! entry   = topic_id [16] | partition i32 | record_count u32 | first_offset i64
//!         | last_offset i64 | max_timestamp i64 | byte_offset u64 | byte_length u64
//!         | uncompressed_length u64 | payload_crc32c u32 | codec u8 | reserved [3]
//!                                                                            (80 bytes)
//! trailer = footer_offset u64 | footer_length u64 | footer_crc32c u32
//!         | trailer_crc32c u32 | flags u16 | version u16 | magic "FJSG"     (32 bytes)
//! ```
//!
//! Encoding is infallible here (inputs are validated by the writer); decoding of
//! every fixed-size part is total: any byte string gives a value or an error.

use std::fmt;

use ulid::Ulid;
use uuid::Uuid;

use crate::error::{ErrorRepr, Part};

/// Magic number at the start (header) and end (trailer) of every segment object.
pub(crate) const SEGMENT_MAGIC: [u8; 4] = *b"FJSG";
/// Magic number at the start of every chunk, so a wrong byte range is detected.
pub(crate) const CHUNK_MAGIC: [u8; 4] = *b"FJCK";

/// The format version this build writes.
pub const FORMAT_VERSION: u16 = 1;
/// The oldest format version this build reads.
pub const OLDEST_READABLE_VERSION: u16 = 1;

/// Length of the fixed header at the start of an object.
pub const HEADER_LEN: u64 = 8;
/// Length of the fixed trailer at the end of an object.
pub const TRAILER_LEN: u64 = 32;
/// Length of each chunk's fixed header, which precedes its payload.
pub const CHUNK_HEADER_LEN: u64 = 80;
/// Length of the footer's fixed part, before its entries.
pub(crate) const FOOTER_HEADER_LEN: u64 = 24;
/// Length of one footer entry.
pub(crate) const FOOTER_ENTRY_LEN: u64 = 80;

/// The largest chunk, uncompressed, this build writes or reads: bounds the memory a
/// (possibly hostile) object can make a reader allocate.
pub const MAX_CHUNK_UNCOMPRESSED_LEN: u64 = 1 << 30;
/// The most chunks one segment may hold (bounds the footer to 16 MiB).
pub const MAX_CHUNKS: usize = ((16 << 20) - FOOTER_HEADER_LEN as usize) / FOOTER_ENTRY_LEN as usize;
/// The largest footer this build reads.
pub(crate) const MAX_FOOTER_LEN: u64 = FOOTER_HEADER_LEN + FOOTER_ENTRY_LEN * MAX_CHUNKS as u64;

/// How a chunk's payload is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// The batches as given (used when compression would not make them smaller,
    /// for example batches the producer compressed already).
    None,
    /// zstd frames holding the batches: one, or one per piece of a chunk
    /// built from pieces compressed ahead (decompressed one after another).
    Zstd,
}

impl Codec {
    fn to_byte(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Zstd => 1,
        }
    }

    fn from_byte(byte: u8, part: Part) -> Result<Self, ErrorRepr> {
        match byte {
            0 => Ok(Codec::None),
            1 => Ok(Codec::Zstd),
            other => Err(ErrorRepr::malformed(part, format!("unknown codec {other}"))),
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::None => "none",
            Codec::Zstd => "zstd",
        })
    }
}

/// What a chunk holds: one partition's consecutive record batches. The caller that
/// built the batches supplies it; the segment stores it in the chunk header and the
/// footer, and checks it is self-consistent, but does not parse the batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkMeta {
    /// The topic's id (Kafka's topic UUID).
    pub topic_id: Uuid,
    /// The partition index.
    pub partition: i32,
    /// The base offset of the first batch.
    pub first_offset: i64,
    /// The last offset of the last batch (inclusive).
    pub last_offset: i64,
    /// Records in all the batches (at most `last_offset - first_offset + 1`; fewer
    /// after log compaction).
    pub record_count: u32,
    /// The largest record timestamp in the batches (`-1` if none).
    pub max_timestamp: i64,
}

impl ChunkMeta {
    /// Why this metadata cannot describe a chunk, if it cannot.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.partition < 0 {
            return Err(format!("partition {} is negative", self.partition));
        }
        if self.first_offset < 0 {
            return Err(format!("first offset {} is negative", self.first_offset));
        }
        if self.last_offset < self.first_offset {
            return Err(format!(
                "last offset {} is before first offset {}",
                self.last_offset, self.first_offset
            ));
        }
        // Both offsets are non-negative and ordered, so the difference fits.
        let span = u64::try_from(self.last_offset - self.first_offset)
            .map_err(|_| "offset span does not fit u64".to_owned())?
            .saturating_add(1);
        if u64::from(self.record_count) > span {
            return Err(format!(
                "record count {} exceeds the {span} offsets from {} to {}",
                self.record_count, self.first_offset, self.last_offset
            ));
        }
        Ok(())
    }

    /// The order chunks are stored in: by topic, partition, then offset.
    pub(crate) fn sort_key(&self) -> (Uuid, i32, i64) {
        (self.topic_id, self.partition, self.first_offset)
    }
}

/// One footer entry: where a chunk is in the object and how to verify it. This is
/// everything a reader (or the metadata index) needs to fetch and check a chunk with
/// one ranged GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkEntry {
    /// What the chunk holds.
    pub meta: ChunkMeta,
    /// Where the chunk (its header) starts in the object.
    pub byte_offset: u64,
    /// The chunk's length in the object, header included.
    pub byte_length: u64,
    /// The batches' length once decoded.
    pub uncompressed_length: u64,
    /// crc32c of the stored (compressed) payload.
    pub payload_crc32c: u32,
    /// How the payload is stored.
    pub codec: Codec,
}

impl ChunkEntry {
    /// The chunk's byte range in the object, for a ranged GET.
    pub fn byte_range(&self) -> std::ops::Range<u64> {
        self.byte_offset..self.byte_offset.saturating_add(self.byte_length)
    }

    /// The length of the stored payload (the chunk without its header).
    pub fn payload_length(&self) -> u64 {
        self.byte_length.saturating_sub(CHUNK_HEADER_LEN)
    }
}

/// A chunk's fixed header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkHeader {
    pub(crate) meta: ChunkMeta,
    pub(crate) codec: Codec,
    pub(crate) uncompressed_length: u64,
    pub(crate) payload_length: u64,
    pub(crate) payload_crc32c: u32,
}

/// The object's fixed trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Trailer {
    pub(crate) footer_offset: u64,
    pub(crate) footer_length: u64,
    pub(crate) footer_crc32c: u32,
    pub(crate) version: u16,
}

/// The footer's fixed part.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FooterHeader {
    pub(crate) segment_id: Ulid,
    pub(crate) entry_count: u32,
}

// ---- encoding ----

pub(crate) fn encode_header(out: &mut Vec<u8>) {
    out.extend_from_slice(&SEGMENT_MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
}

pub(crate) fn encode_chunk_header(out: &mut Vec<u8>, header: &ChunkHeader) {
    let start = out.len();
    out.extend_from_slice(&CHUNK_MAGIC);
    out.push(header.codec.to_byte());
    out.extend_from_slice(&[0; 3]);
    encode_meta(out, &header.meta);
    out.extend_from_slice(&header.uncompressed_length.to_le_bytes());
    out.extend_from_slice(&header.payload_length.to_le_bytes());
    out.extend_from_slice(&header.payload_crc32c.to_le_bytes());
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

pub(crate) fn encode_footer(out: &mut Vec<u8>, segment_id: Ulid, entries: &[ChunkEntry]) {
    out.extend_from_slice(&segment_id.to_bytes());
    // The writer caps the count at MAX_CHUNKS, far below u32::MAX.
    out.extend_from_slice(
        &u32::try_from(entries.len())
            .unwrap_or(u32::MAX)
            .to_le_bytes(),
    );
    out.extend_from_slice(&0u32.to_le_bytes());
    for entry in entries {
        encode_meta(out, &entry.meta);
        out.extend_from_slice(&entry.byte_offset.to_le_bytes());
        out.extend_from_slice(&entry.byte_length.to_le_bytes());
        out.extend_from_slice(&entry.uncompressed_length.to_le_bytes());
        out.extend_from_slice(&entry.payload_crc32c.to_le_bytes());
        out.push(entry.codec.to_byte());
        out.extend_from_slice(&[0; 3]);
    }
}

pub(crate) fn encode_trailer(out: &mut Vec<u8>, trailer: &Trailer) {
    let start = out.len();
    out.extend_from_slice(&trailer.footer_offset.to_le_bytes());
    out.extend_from_slice(&trailer.footer_length.to_le_bytes());
    out.extend_from_slice(&trailer.footer_crc32c.to_le_bytes());
    let crc = crc32c::crc32c(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&trailer.version.to_le_bytes());
    out.extend_from_slice(&SEGMENT_MAGIC);
}

/// topic_id | partition | record_count | first_offset | last_offset | max_timestamp
fn encode_meta(out: &mut Vec<u8>, meta: &ChunkMeta) {
    out.extend_from_slice(meta.topic_id.as_bytes());
    out.extend_from_slice(&meta.partition.to_le_bytes());
    out.extend_from_slice(&meta.record_count.to_le_bytes());
    out.extend_from_slice(&meta.first_offset.to_le_bytes());
    out.extend_from_slice(&meta.last_offset.to_le_bytes());
    out.extend_from_slice(&meta.max_timestamp.to_le_bytes());
}

// ---- decoding ----

/// A bounds-checked little-endian cursor over one part of an object. Every read
/// either returns the bytes or a [`ErrorRepr::TooShort`] naming the part.
pub(crate) struct Cursor<'a> {
    part: Part,
    whole_len: usize,
    rest: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(part: Part, bytes: &'a [u8]) -> Self {
        Self {
            part,
            whole_len: bytes.len(),
            rest: bytes,
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ErrorRepr> {
        match self.rest.split_first_chunk::<N>() {
            Some((head, rest)) => {
                self.rest = rest;
                Ok(*head)
            }
            None => Err(ErrorRepr::TooShort {
                part: self.part,
                len: self.whole_len as u64,
                needed: (self.whole_len - self.rest.len() + N) as u64,
            }),
        }
    }

    fn u8(&mut self) -> Result<u8, ErrorRepr> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, ErrorRepr> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, ErrorRepr> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, ErrorRepr> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, ErrorRepr> {
        Ok(i32::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, ErrorRepr> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn magic(&mut self, expected: [u8; 4]) -> Result<(), ErrorRepr> {
        let found = self.array::<4>()?;
        if found == expected {
            Ok(())
        } else {
            Err(ErrorRepr::BadMagic {
                part: self.part,
                found,
            })
        }
    }

    fn reserved_zero<const N: usize>(&mut self, field: &'static str) -> Result<(), ErrorRepr> {
        let bytes = self.array::<N>()?;
        if bytes.iter().all(|b| *b == 0) {
            Ok(())
        } else {
            let mut value = [0u8; 8];
            for (slot, byte) in value.iter_mut().zip(bytes) {
                *slot = byte;
            }
            Err(ErrorRepr::ReservedNonZero {
                part: self.part,
                field,
                value: u64::from_le_bytes(value),
            })
        }
    }

    /// Fails unless every byte was consumed.
    fn finish(self) -> Result<(), ErrorRepr> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(ErrorRepr::malformed(
                self.part,
                format!("{} unexpected trailing bytes", self.rest.len()),
            ))
        }
    }

    fn meta(&mut self) -> Result<ChunkMeta, ErrorRepr> {
        let topic_id = Uuid::from_bytes(self.array()?);
        let partition = self.i32()?;
        let record_count = self.u32()?;
        let first_offset = self.i64()?;
        let last_offset = self.i64()?;
        let max_timestamp = self.i64()?;
        let meta = ChunkMeta {
            topic_id,
            partition,
            first_offset,
            last_offset,
            record_count,
            max_timestamp,
        };
        meta.check()
            .map_err(|reason| ErrorRepr::malformed(self.part, reason))?;
        Ok(meta)
    }
}

/// Checks a version number found in `part`.
fn check_version(part: Part, version: u16) -> Result<u16, ErrorRepr> {
    if (OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
        Ok(version)
    } else {
        Err(ErrorRepr::UnsupportedVersion {
            part,
            found: version,
        })
    }
}

/// Decodes the object header (exactly [`HEADER_LEN`] bytes); returns its version.
pub(crate) fn decode_header(bytes: &[u8]) -> Result<u16, ErrorRepr> {
    let mut cursor = Cursor::new(Part::Header, bytes);
    cursor.magic(SEGMENT_MAGIC)?;
    let version = check_version(Part::Header, cursor.u16()?)?;
    cursor.reserved_zero::<2>("flags")?;
    cursor.finish()?;
    Ok(version)
}

/// Decodes the trailer (exactly [`TRAILER_LEN`] bytes). The magic and version, at the
/// very end, are checked before the checksum, so that a future format (which keeps
/// those last six bytes) is reported as unsupported rather than corrupt.
pub(crate) fn decode_trailer(bytes: &[u8]) -> Result<Trailer, ErrorRepr> {
    let Ok(bytes) = <&[u8; TRAILER_LEN as usize]>::try_from(bytes) else {
        return Err(ErrorRepr::TooShort {
            part: Part::Trailer,
            len: bytes.len() as u64,
            needed: TRAILER_LEN,
        });
    };
    let (body, tail) = bytes.split_at(24);
    let mut tail_cursor = Cursor::new(Part::Trailer, tail);
    let flags = tail_cursor.u16()?;
    let version = tail_cursor.u16()?;
    tail_cursor.magic(SEGMENT_MAGIC)?;
    let version = check_version(Part::Trailer, version)?;
    if flags != 0 {
        return Err(ErrorRepr::ReservedNonZero {
            part: Part::Trailer,
            field: "flags",
            value: u64::from(flags),
        });
    }

    let (covered, _) = body.split_at(20);
    let mut cursor = Cursor::new(Part::Trailer, body);
    let footer_offset = cursor.u64()?;
    let footer_length = cursor.u64()?;
    let footer_crc32c = cursor.u32()?;
    let stored = cursor.u32()?;
    cursor.finish()?;
    let computed = crc32c::crc32c(covered);
    if stored != computed {
        return Err(ErrorRepr::ChecksumMismatch {
            part: Part::Trailer,
            stored,
            computed,
        });
    }
    Ok(Trailer {
        footer_offset,
        footer_length,
        footer_crc32c,
        version,
    })
}

/// Decodes a chunk header (exactly [`CHUNK_HEADER_LEN`] bytes), checking its own
/// checksum before trusting any field.
pub(crate) fn decode_chunk_header(bytes: &[u8]) -> Result<ChunkHeader, ErrorRepr> {
    let Ok(bytes) = <&[u8; CHUNK_HEADER_LEN as usize]>::try_from(bytes) else {
        return Err(ErrorRepr::TooShort {
            part: Part::ChunkHeader,
            len: bytes.len() as u64,
            needed: CHUNK_HEADER_LEN,
        });
    };
    let (covered, stored) = bytes.split_at(bytes.len() - 4);
    let mut cursor = Cursor::new(Part::ChunkHeader, covered);
    cursor.magic(CHUNK_MAGIC)?;
    let mut stored_cursor = Cursor::new(Part::ChunkHeader, stored);
    let stored = stored_cursor.u32()?;
    let computed = crc32c::crc32c(covered);
    if stored != computed {
        return Err(ErrorRepr::ChecksumMismatch {
            part: Part::ChunkHeader,
            stored,
            computed,
        });
    }
    let codec = Codec::from_byte(cursor.u8()?, Part::ChunkHeader)?;
    cursor.reserved_zero::<3>("reserved")?;
    let meta = cursor.meta()?;
    let uncompressed_length = cursor.u64()?;
    let payload_length = cursor.u64()?;
    let payload_crc32c = cursor.u32()?;
    cursor.finish()?;
    Ok(ChunkHeader {
        meta,
        codec,
        uncompressed_length,
        payload_length,
        payload_crc32c,
    })
}

/// Decodes the footer's fixed part (the first [`FOOTER_HEADER_LEN`] bytes of
/// `footer`) and returns it with the entry bytes that follow.
pub(crate) fn decode_footer_header(footer: &[u8]) -> Result<(FooterHeader, &[u8]), ErrorRepr> {
    let mut cursor = Cursor::new(Part::Footer, footer);
    let segment_id = Ulid::from_bytes(cursor.array()?);
    let entry_count = cursor.u32()?;
    cursor.reserved_zero::<4>("reserved")?;
    Ok((
        FooterHeader {
            segment_id,
            entry_count,
        },
        cursor.rest,
    ))
}

/// Decodes one footer entry (exactly [`FOOTER_ENTRY_LEN`] bytes).
pub(crate) fn decode_footer_entry(bytes: &[u8]) -> Result<ChunkEntry, ErrorRepr> {
    let mut cursor = Cursor::new(Part::Footer, bytes);
    let meta = cursor.meta()?;
    let byte_offset = cursor.u64()?;
    let byte_length = cursor.u64()?;
    let uncompressed_length = cursor.u64()?;
    let payload_crc32c = cursor.u32()?;
    let codec = Codec::from_byte(cursor.u8()?, Part::Footer)?;
    cursor.reserved_zero::<3>("reserved")?;
    cursor.finish()?;
    Ok(ChunkEntry {
        meta,
        byte_offset,
        byte_length,
        uncompressed_length,
        payload_crc32c,
        codec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ChunkMeta {
        ChunkMeta {
            topic_id: Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef),
            partition: 7,
            first_offset: 100,
            last_offset: 109,
            record_count: 10,
            max_timestamp: 1_700_000_000_000,
        }
    }

    #[test]
    fn fixed_parts_have_their_documented_lengths() {
        let mut out = Vec::new();
        encode_header(&mut out);
        assert_eq!(out.len() as u64, HEADER_LEN);

        let mut out = Vec::new();
        let header = ChunkHeader {
            meta: meta(),
            codec: Codec::Zstd,
            uncompressed_length: 1,
            payload_length: 2,
            payload_crc32c: 3,
        };
        encode_chunk_header(&mut out, &header);
        assert_eq!(out.len() as u64, CHUNK_HEADER_LEN);
        assert_eq!(decode_chunk_header(&out).unwrap(), header);

        let mut out = Vec::new();
        let trailer = Trailer {
            footer_offset: 1,
            footer_length: 2,
            footer_crc32c: 3,
            version: FORMAT_VERSION,
        };
        encode_trailer(&mut out, &trailer);
        assert_eq!(out.len() as u64, TRAILER_LEN);
        assert_eq!(decode_trailer(&out).unwrap(), trailer);

        let entry = ChunkEntry {
            meta: meta(),
            byte_offset: 8,
            byte_length: 90,
            uncompressed_length: 100,
            payload_crc32c: 0xdead_beef,
            codec: Codec::None,
        };
        let mut out = Vec::new();
        encode_footer(&mut out, Ulid::from_parts(1, 2), &[entry]);
        assert_eq!(out.len() as u64, FOOTER_HEADER_LEN + FOOTER_ENTRY_LEN);
        let (header, rest) = decode_footer_header(&out).unwrap();
        assert_eq!(header.segment_id, Ulid::from_parts(1, 2));
        assert_eq!(header.entry_count, 1);
        assert_eq!(decode_footer_entry(rest).unwrap(), entry);
    }

    #[test]
    fn meta_check_rejects_impossible_ranges() {
        assert!(meta().check().is_ok());
        let bad = [
            ChunkMeta {
                partition: -1,
                ..meta()
            },
            ChunkMeta {
                first_offset: -5,
                ..meta()
            },
            ChunkMeta {
                last_offset: 99,
                ..meta()
            },
            ChunkMeta {
                record_count: 11,
                ..meta()
            },
        ];
        for meta in bad {
            assert!(meta.check().is_err(), "{meta:?}");
        }
        let extreme = ChunkMeta {
            first_offset: 0,
            last_offset: i64::MAX,
            record_count: u32::MAX,
            ..meta()
        };
        assert!(extreme.check().is_ok());
    }

    #[test]
    fn future_version_in_trailer_is_unsupported_not_corrupt() {
        let mut out = Vec::new();
        encode_trailer(
            &mut out,
            &Trailer {
                footer_offset: 1,
                footer_length: 2,
                footer_crc32c: 3,
                version: FORMAT_VERSION + 1,
            },
        );
        assert!(matches!(
            decode_trailer(&out),
            Err(ErrorRepr::UnsupportedVersion {
                part: Part::Trailer,
                found: 2
            })
        ));
    }

    #[test]
    fn short_inputs_are_errors() {
        for len in 0..TRAILER_LEN as usize {
            assert!(decode_trailer(&vec![0; len]).is_err());
        }
        for len in 0..CHUNK_HEADER_LEN as usize {
            assert!(decode_chunk_header(&vec![0; len]).is_err());
        }
        for len in 0..HEADER_LEN as usize {
            assert!(decode_header(&vec![0; len]).is_err());
        }
        assert!(decode_footer_entry(&[0; 79]).is_err());
        assert!(decode_footer_header(&[0; 23]).is_err());
    }
}
