//! Reading a segment object: its footer from the tail, and single chunks.
//!
//! Every function here takes untrusted bytes. Each length and offset is checked
//! against the bytes actually present (or against the object length) before use,
//! every checksum before the data it covers is interpreted, and the uncompressed
//! size a chunk claims is bounded before memory is allocated for it.

use std::ops::Range;

use bytes::Bytes;
use ulid::Ulid;
use uuid::Uuid;

use crate::error::{ErrorRepr, Part, Result};
use crate::segment::format::{
    self, CHUNK_HEADER_LEN, ChunkEntry, ChunkHeader, ChunkMeta, Codec, FOOTER_ENTRY_LEN,
    FOOTER_HEADER_LEN, HEADER_LEN, MAX_CHUNK_UNCOMPRESSED_LEN, MAX_FOOTER_LEN, TRAILER_LEN,
};

/// How many bytes of an object's end to fetch first: enough for the footer of a
/// segment with about 800 chunks, so one ranged GET nearly always suffices.
pub const DEFAULT_TAIL_READ_LEN: u64 = 64 * 1024;

/// The decoded footer of a segment object: its index of chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentFooter {
    segment_id: Ulid,
    format_version: u16,
    footer_offset: u64,
    object_len: u64,
    entries: Vec<ChunkEntry>,
}

/// The outcome of [`SegmentFooter::decode_tail`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailDecode {
    /// The tail held the whole footer.
    Footer(SegmentFooter),
    /// The footer is longer than the tail given: fetch the last `tail_len` bytes
    /// of the object and decode again.
    NeedLongerTail {
        /// How many bytes from the end of the object are needed.
        tail_len: u64,
    },
}

impl SegmentFooter {
    pub(crate) fn new(
        segment_id: Ulid,
        format_version: u16,
        footer_offset: u64,
        object_len: u64,
        entries: Vec<ChunkEntry>,
    ) -> Self {
        Self {
            segment_id,
            format_version,
            footer_offset,
            object_len,
            entries,
        }
    }

    /// Decodes the footer from `tail`, the last `tail.len()` bytes of an object of
    /// `object_len` bytes (a suffix ranged GET returns both). Fetch
    /// [`DEFAULT_TAIL_READ_LEN`] bytes (or the whole object if smaller); if the
    /// footer does not fit, the answer says how much to fetch.
    pub fn decode_tail(tail: &[u8], object_len: u64) -> Result<TailDecode> {
        let tail_len = tail.len() as u64;
        if tail_len > object_len {
            return Err(ErrorRepr::TailLongerThanObject {
                tail_len,
                object_len,
            }
            .into());
        }
        let min_object_len = HEADER_LEN + TRAILER_LEN;
        if object_len < min_object_len {
            return Err(ErrorRepr::TooShort {
                part: Part::Object,
                len: object_len,
                needed: min_object_len,
            }
            .into());
        }
        let Some((before_trailer, trailer_bytes)) =
            tail.split_last_chunk::<{ TRAILER_LEN as usize }>()
        else {
            return Ok(TailDecode::NeedLongerTail {
                tail_len: TRAILER_LEN,
            });
        };
        let trailer = format::decode_trailer(trailer_bytes)?;

        let footer_range = footer_range(trailer.footer_offset, trailer.footer_length, object_len)?;
        let needed = trailer.footer_length + TRAILER_LEN; // both bounded by footer_range
        let Some(footer_start) = before_trailer
            .len()
            .checked_sub(footer_range_len(&footer_range))
        else {
            return Ok(TailDecode::NeedLongerTail { tail_len: needed });
        };
        let footer = before_trailer
            .get(footer_start..)
            .ok_or_else(|| ErrorRepr::malformed(Part::Footer, "footer outside the tail"))?;
        let computed = crc32c::crc32c(footer);
        if computed != trailer.footer_crc32c {
            return Err(ErrorRepr::ChecksumMismatch {
                part: Part::Footer,
                stored: trailer.footer_crc32c,
                computed,
            }
            .into());
        }
        let (footer_header, entry_bytes) = format::decode_footer_header(footer)?;
        let entries = decode_entries(
            footer_header.entry_count,
            entry_bytes,
            trailer.footer_offset,
        )?;
        Ok(TailDecode::Footer(SegmentFooter {
            segment_id: footer_header.segment_id,
            format_version: trailer.version,
            footer_offset: trailer.footer_offset,
            object_len,
            entries,
        }))
    }

    /// The segment's id, as given to the writer.
    pub fn segment_id(&self) -> Ulid {
        self.segment_id
    }

    /// The format version the object was written in.
    pub fn format_version(&self) -> u16 {
        self.format_version
    }

    /// The whole object's length in bytes.
    pub fn object_len(&self) -> u64 {
        self.object_len
    }

    /// Where the footer starts; chunks occupy `HEADER_LEN..footer_offset`.
    pub fn footer_offset(&self) -> u64 {
        self.footer_offset
    }

    /// Every chunk, sorted by (topic id, partition, first offset).
    pub fn entries(&self) -> &[ChunkEntry] {
        &self.entries
    }

    /// The chunks of one partition, in offset order (usually one).
    pub fn chunks_of(&self, topic_id: Uuid, partition: i32) -> &[ChunkEntry] {
        let key = (topic_id, partition);
        let start = self
            .entries
            .partition_point(|e| (e.meta.topic_id, e.meta.partition) < key);
        let end = self
            .entries
            .partition_point(|e| (e.meta.topic_id, e.meta.partition) <= key);
        self.entries.get(start..end).unwrap_or_default()
    }

    /// The first chunk of the partition that holds `offset` or, if none does (a gap
    /// left by log compaction), the first chunk after it.
    pub fn find(&self, topic_id: Uuid, partition: i32, offset: i64) -> Option<&ChunkEntry> {
        let chunks = self.chunks_of(topic_id, partition);
        chunks.get(chunks.partition_point(|e| e.meta.last_offset < offset))
    }
}

/// The footer's byte range, checked against the object's length.
fn footer_range(footer_offset: u64, footer_length: u64, object_len: u64) -> Result<Range<u64>> {
    if !(FOOTER_HEADER_LEN + FOOTER_ENTRY_LEN..=MAX_FOOTER_LEN).contains(&footer_length) {
        return Err(ErrorRepr::malformed(
            Part::Trailer,
            format!(
                "footer length {footer_length} is outside {}..={MAX_FOOTER_LEN}",
                FOOTER_HEADER_LEN + FOOTER_ENTRY_LEN
            ),
        )
        .into());
    }
    if footer_offset < HEADER_LEN {
        return Err(ErrorRepr::malformed(
            Part::Trailer,
            format!("footer offset {footer_offset} is inside the header"),
        )
        .into());
    }
    let end = footer_offset.checked_add(footer_length);
    if end.and_then(|end| end.checked_add(TRAILER_LEN)) != Some(object_len) {
        return Err(ErrorRepr::malformed(
            Part::Trailer,
            format!(
                "footer at {footer_offset} of {footer_length} bytes, then the trailer, do not \
                 end the {object_len}-byte object (truncated or extended?)"
            ),
        )
        .into());
    }
    Ok(footer_offset..object_len - TRAILER_LEN)
}

fn footer_range_len(range: &Range<u64>) -> usize {
    // Bounded by MAX_FOOTER_LEN (16 MiB), so it fits any usize we run on.
    usize::try_from(range.end - range.start).unwrap_or(usize::MAX)
}

/// Decodes and cross-checks the footer entries of a footer starting at
/// `footer_offset`: entries sorted, offsets not overlapping within a partition,
/// chunks contiguous from the header to the footer, lengths plausible.
fn decode_entries(entry_count: u32, bytes: &[u8], footer_offset: u64) -> Result<Vec<ChunkEntry>> {
    let malformed = |reason: String| ErrorRepr::malformed(Part::Footer, reason);
    if entry_count == 0 {
        return Err(malformed("no chunks".to_owned()).into());
    }
    if Some(bytes.len() as u64) != u64::from(entry_count).checked_mul(FOOTER_ENTRY_LEN) {
        return Err(malformed(format!(
            "{entry_count} entries need {} bytes, the footer has {}",
            u64::from(entry_count).saturating_mul(FOOTER_ENTRY_LEN),
            bytes.len()
        ))
        .into());
    }
    let mut entries: Vec<ChunkEntry> = Vec::with_capacity(entry_count as usize);
    let mut next_offset = HEADER_LEN;
    for (index, raw) in bytes.chunks_exact(FOOTER_ENTRY_LEN as usize).enumerate() {
        let entry = format::decode_footer_entry(raw)?;
        if let Some(previous) = entries.last() {
            if previous.meta.sort_key() >= entry.meta.sort_key() {
                return Err(malformed(format!("entry {index} is out of order")).into());
            }
            if previous.meta.topic_id == entry.meta.topic_id
                && previous.meta.partition == entry.meta.partition
                && previous.meta.last_offset >= entry.meta.first_offset
            {
                return Err(malformed(format!(
                    "entry {index} overlaps the offsets of the entry before it"
                ))
                .into());
            }
        }
        if entry.byte_offset != next_offset {
            return Err(malformed(format!(
                "entry {index} starts at byte {}, expected {next_offset}",
                entry.byte_offset
            ))
            .into());
        }
        check_lengths(
            Part::Footer,
            entry.codec,
            entry.byte_length.checked_sub(CHUNK_HEADER_LEN),
            entry.uncompressed_length,
        )?;
        next_offset = entry
            .byte_offset
            .checked_add(entry.byte_length)
            .ok_or_else(|| malformed(format!("entry {index} ends past u64::MAX")))?;
        if next_offset > footer_offset {
            return Err(malformed(format!(
                "entry {index} ends at byte {next_offset}, past the footer at {footer_offset}"
            ))
            .into());
        }
        entries.push(entry);
    }
    if next_offset != footer_offset {
        return Err(malformed(format!(
            "chunks end at byte {next_offset} but the footer starts at {footer_offset}"
        ))
        .into());
    }
    Ok(entries)
}

/// Checks a chunk's payload and uncompressed lengths as recorded in `part`.
fn check_lengths(
    part: Part,
    codec: Codec,
    payload_length: Option<u64>,
    uncompressed_length: u64,
) -> Result<(), ErrorRepr> {
    let payload_length = match payload_length {
        Some(len) if len > 0 => len,
        _ => return Err(ErrorRepr::malformed(part, "chunk has an empty payload")),
    };
    if uncompressed_length == 0 || uncompressed_length > MAX_CHUNK_UNCOMPRESSED_LEN {
        return Err(ErrorRepr::malformed(
            part,
            format!(
                "uncompressed length {uncompressed_length} is outside 1..={MAX_CHUNK_UNCOMPRESSED_LEN}"
            ),
        ));
    }
    if codec == Codec::None && uncompressed_length != payload_length {
        return Err(ErrorRepr::malformed(
            part,
            format!(
                "uncompressed chunk has payload length {payload_length} but uncompressed \
                 length {uncompressed_length}"
            ),
        ));
    }
    Ok(())
}

/// A chunk decoded from its bytes alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedChunk {
    /// What the chunk holds, from its header.
    pub meta: ChunkMeta,
    /// How its payload was stored.
    pub codec: Codec,
    /// The record batches, byte for byte as given to the writer.
    pub batches: Bytes,
}

/// Decodes one chunk from exactly its bytes (the byte range a footer entry or the
/// metadata index gives), verifying its header and payload checksums. The chunk
/// header describes the chunk, so no footer is needed.
pub fn decode_chunk(chunk: Bytes) -> Result<DecodedChunk> {
    let (header, payload) = split_chunk(&chunk)?;
    let batches = decode_payload(&header, payload)?;
    Ok(DecodedChunk {
        meta: header.meta,
        codec: header.codec,
        batches,
    })
}

/// A chunk as stored: what its header says and its payload, checked against
/// the header's checksum but not decompressed. Compaction copies these
/// ([`SegmentWriter::add_stored`](crate::SegmentWriter::add_stored)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredChunk {
    /// What the chunk holds.
    pub meta: ChunkMeta,
    /// How the payload is stored.
    pub codec: Codec,
    /// The batches' length once decoded.
    pub uncompressed_length: u64,
    /// The stored payload (zstd frames for [`Codec::Zstd`]).
    pub payload: Bytes,
}

/// Reads one chunk from exactly its bytes, verifying its header and its
/// payload's checksum, without decompressing it.
pub fn stored_chunk(chunk: Bytes) -> Result<StoredChunk> {
    let (header, payload) = split_chunk(&chunk)?;
    verify_payload(&header, &payload)?;
    Ok(StoredChunk {
        meta: header.meta,
        codec: header.codec,
        uncompressed_length: header.uncompressed_length,
        payload,
    })
}

/// Decodes one chunk from exactly the bytes of `entry`'s byte range, checking also
/// that the chunk is the one the entry describes. Returns the record batches.
pub fn decode_chunk_with_entry(entry: &ChunkEntry, chunk: Bytes) -> Result<Bytes> {
    if chunk.len() as u64 != entry.byte_length {
        return Err(ErrorRepr::ChunkEntryMismatch {
            field: "byte length",
            in_entry: entry.byte_length.to_string(),
            in_chunk: chunk.len().to_string(),
        }
        .into());
    }
    let (header, payload) = split_chunk(&chunk)?;
    let mismatch = |field: &'static str, in_entry: String, in_chunk: String| {
        Err(ErrorRepr::ChunkEntryMismatch {
            field,
            in_entry,
            in_chunk,
        }
        .into())
    };
    if header.meta != entry.meta {
        return mismatch(
            "metadata",
            format!("{:?}", entry.meta),
            format!("{:?}", header.meta),
        );
    }
    if header.codec != entry.codec {
        return mismatch("codec", entry.codec.to_string(), header.codec.to_string());
    }
    if header.uncompressed_length != entry.uncompressed_length {
        return mismatch(
            "uncompressed length",
            entry.uncompressed_length.to_string(),
            header.uncompressed_length.to_string(),
        );
    }
    if header.payload_crc32c != entry.payload_crc32c {
        return mismatch(
            "payload crc32c",
            format!("{:#010x}", entry.payload_crc32c),
            format!("{:#010x}", header.payload_crc32c),
        );
    }
    decode_payload(&header, payload)
}

/// Splits a chunk into its decoded header and its payload bytes.
fn split_chunk(chunk: &Bytes) -> Result<(ChunkHeader, Bytes)> {
    let header_len = CHUNK_HEADER_LEN as usize;
    let Some(header_bytes) = chunk.get(..header_len) else {
        return Err(ErrorRepr::TooShort {
            part: Part::ChunkHeader,
            len: chunk.len() as u64,
            needed: CHUNK_HEADER_LEN,
        }
        .into());
    };
    let header = format::decode_chunk_header(header_bytes)?;
    check_lengths(
        Part::ChunkHeader,
        header.codec,
        Some(header.payload_length),
        header.uncompressed_length,
    )?;
    Ok((header, chunk.slice(header_len..)))
}

/// Verifies a payload against its header and decodes it.
fn decode_payload(header: &ChunkHeader, payload: Bytes) -> Result<Bytes> {
    verify_payload(header, &payload)?;
    match header.codec {
        // check_lengths made uncompressed_length == payload_length.
        Codec::None => Ok(payload),
        Codec::Zstd => {
            // Bounded by MAX_CHUNK_UNCOMPRESSED_LEN in check_lengths.
            let capacity = usize::try_from(header.uncompressed_length).map_err(|_| {
                ErrorRepr::malformed(Part::ChunkHeader, "uncompressed length exceeds memory")
            })?;
            let decompressed =
                decompress(&payload, capacity).map_err(|source| ErrorRepr::Decompress {
                    topic_id: header.meta.topic_id,
                    partition: header.meta.partition,
                    source,
                })?;
            if decompressed.len() != capacity {
                return Err(ErrorRepr::DecompressedLength {
                    topic_id: header.meta.topic_id,
                    partition: header.meta.partition,
                    expected: header.uncompressed_length,
                    actual: decompressed.len() as u64,
                }
                .into());
            }
            Ok(Bytes::from(decompressed))
        }
    }
}

/// Checks a payload's length and checksum against its header.
fn verify_payload(header: &ChunkHeader, payload: &[u8]) -> Result<()> {
    let len = payload.len() as u64;
    if len < header.payload_length {
        return Err(ErrorRepr::TooShort {
            part: Part::ChunkPayload,
            len,
            needed: header.payload_length,
        }
        .into());
    }
    if len > header.payload_length {
        return Err(ErrorRepr::malformed(
            Part::ChunkPayload,
            format!(
                "{len} bytes where the chunk header says {}",
                header.payload_length
            ),
        )
        .into());
    }
    let computed = crc32c::crc32c(payload);
    if computed != header.payload_crc32c {
        return Err(ErrorRepr::ChecksumMismatch {
            part: Part::ChunkPayload,
            stored: header.payload_crc32c,
            computed,
        }
        .into());
    }
    Ok(())
}

/// `payload` decompressed into at most `capacity` bytes, with this thread's
/// zstd context (allocating and freeing one per chunk showed in profiles).
fn decompress(payload: &[u8], capacity: usize) -> std::io::Result<Vec<u8>> {
    thread_local! {
        static DECOMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DECOMPRESSOR.with(|cell| {
        let mut cached = cell.borrow_mut();
        let decompressor = match &mut *cached {
            Some(decompressor) => decompressor,
            slot => slot.insert(zstd::bulk::Decompressor::new()?),
        };
        decompressor.decompress(payload, capacity)
    })
}

/// A whole segment object, decoded and verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedSegment {
    /// Its footer.
    pub footer: SegmentFooter,
    /// Each chunk's batches, in footer order (`chunks[i]` belongs to
    /// `footer.entries()[i]`).
    pub chunks: Vec<Bytes>,
}

/// Decodes and verifies a whole segment object: header, footer, trailer and every
/// chunk. For tools, compaction and tests; the read path fetches only the tail and
/// the chunks it needs.
pub fn decode_segment(object: Bytes) -> Result<DecodedSegment> {
    let object_len = object.len() as u64;
    let Some(header_bytes) = object.get(..HEADER_LEN as usize) else {
        return Err(ErrorRepr::TooShort {
            part: Part::Object,
            len: object_len,
            needed: HEADER_LEN + TRAILER_LEN,
        }
        .into());
    };
    let header_version = format::decode_header(header_bytes)?;
    let footer = match SegmentFooter::decode_tail(&object, object_len)? {
        TailDecode::Footer(footer) => footer,
        TailDecode::NeedLongerTail { tail_len } => {
            // Only possible if the object is shorter than its own footer claims,
            // which decode_tail reports as an error first.
            return Err(ErrorRepr::TooShort {
                part: Part::Object,
                len: object_len,
                needed: tail_len,
            }
            .into());
        }
    };
    if header_version != footer.format_version {
        return Err(ErrorRepr::VersionMismatch {
            header: header_version,
            trailer: footer.format_version,
        }
        .into());
    }
    let mut chunks = Vec::with_capacity(footer.entries.len());
    for entry in &footer.entries {
        let range = entry.byte_range();
        let bytes = usize::try_from(range.start)
            .ok()
            .zip(usize::try_from(range.end).ok())
            .filter(|(start, end)| start <= end && *end <= object.len())
            .map(|(start, end)| object.slice(start..end))
            .ok_or_else(|| {
                ErrorRepr::malformed(Part::Footer, format!("chunk range {range:?} is outside"))
            })?;
        chunks.push(decode_chunk_with_entry(entry, bytes)?);
    }
    Ok(DecodedSegment { footer, chunks })
}
