//! Building a segment object from partitions' record batches.

use bytes::Bytes;
use ulid::Ulid;

use crate::error::{ErrorRepr, Result};
use crate::segment::format::{
    self, CHUNK_HEADER_LEN, ChunkEntry, ChunkHeader, ChunkMeta, Codec, FOOTER_ENTRY_LEN,
    FOOTER_HEADER_LEN, FORMAT_VERSION, HEADER_LEN, MAX_CHUNK_UNCOMPRESSED_LEN, MAX_CHUNKS,
    TRAILER_LEN, Trailer,
};
use crate::segment::reader::{SegmentFooter, StoredChunk};

/// The zstd level of [`WriterOptions::default`], and so of every segment the agent
/// writes unless told otherwise. This is the one place the default lives. Level
/// 1: on Kafka-like records it compresses as well as level 3 (JSON-like records
/// even slightly better) at two to three times the speed, and the flush path is
/// the agent's hottest loop (`cargo bench -p fjord-storage --bench segment`
/// measures levels 1 and 3).
pub const DEFAULT_ZSTD_LEVEL: i32 = 1;

/// Chunks longer than this are first judged by compressing their first
/// [`SAMPLE_LEN`] bytes: when the sample does not shrink below
/// [`SAMPLE_KEEP_RATIO`] of its size, the chunk is stored as given without
/// compressing the rest (incompressible records cost the flush path almost no
/// zstd time). Record batches of one partition are alike from end to end; a
/// chunk whose start does not compress but whose rest would is stored larger
/// than it could be, never wrongly.
const SAMPLE_LEN: usize = 64 * 1024;
/// See [`SAMPLE_LEN`].
const SAMPLE_KEEP_RATIO: f64 = 0.97;

/// How a writer stores chunk payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Store batches as given.
    None,
    /// Compress each chunk with zstd at `level` (see
    /// [`zstd::compression_level_range`]; 1–3 suit the flush path). A chunk that
    /// does not get smaller is stored as given instead, so data that does not
    /// compress costs no extra space and no decompression on read; a chunk added
    /// with [`ChunkHint::ProducerCompressed`] is stored as given without trying.
    Zstd {
        /// The zstd level.
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd {
            level: DEFAULT_ZSTD_LEVEL,
        }
    }
}

/// Settings for [`SegmentWriter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterOptions {
    /// How chunk payloads are stored (default: zstd at [`DEFAULT_ZSTD_LEVEL`]).
    pub compression: Compression,
}

impl WriterOptions {
    /// Options compressing every chunk with zstd at `level` (checked by
    /// [`SegmentWriter::new`]).
    pub fn zstd(level: i32) -> Self {
        Self {
            compression: Compression::Zstd { level },
        }
    }

    /// Options storing every chunk as given.
    pub fn uncompressed() -> Self {
        Self {
            compression: Compression::None,
        }
    }
}

/// What the caller knows about a chunk's batches, given to
/// [`SegmentWriter::add_chunk_with_hint`] so the writer can skip work that cannot
/// pay off. A hint never changes what a reader gets back, only how it is stored.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ChunkHint {
    /// Nothing is known: the chunk is stored as [`WriterOptions::compression`] says.
    #[default]
    Unknown,
    /// Every batch of the chunk holds records its producer already compressed
    /// (Kafka v2 batch attributes bits 0–2 ≠ 0). Such records are close to
    /// incompressible, so the chunk is stored as given (codec none) without
    /// spending CPU on a zstd pass that would gain almost nothing. A chunk with
    /// any uncompressed batch must use [`ChunkHint::Unknown`].
    ProducerCompressed,
}

/// Record batches compressed ahead of their segment, so that building the
/// segment later costs a copy rather than a zstd pass (the agent compresses a
/// large produce while it waits for its flush). Made by
/// [`CompressedPiece::new`]; given to [`SegmentWriter::add_pieces`].
#[derive(Debug, Clone)]
pub struct CompressedPiece {
    batches: Bytes,
    /// One zstd frame of `batches`, when compressing was worth it (see
    /// [`SAMPLE_LEN`]) and made them smaller.
    frame: Option<Bytes>,
}

impl CompressedPiece {
    /// `batches` compressed with zstd at `level` (this thread's context). A
    /// level zstd rejects, or a zstd failure, keeps them uncompressed: the
    /// writer then compresses them itself and reports the error there.
    pub fn new(batches: Bytes, level: i32) -> Self {
        let mut out = Vec::new();
        let frame = with_compressor(level, |compressor| {
            compress_into(compressor, &batches, &mut out)
        });
        let frame = matches!(frame, Ok(true)).then(|| Bytes::from(out));
        Self { batches, frame }
    }

    /// The batches, uncompressed.
    pub fn batches(&self) -> &Bytes {
        &self.batches
    }

    /// Whether they were compressed.
    pub fn is_compressed(&self) -> bool {
        self.frame.is_some()
    }
}

/// Part of a chunk's batches for [`SegmentWriter::add_pieces`].
#[derive(Debug, Clone)]
pub enum ChunkPiece {
    /// Batches the writer stores as its options and the chunk's hint say.
    Batches(Bytes),
    /// Batches compressed ahead.
    Compressed(CompressedPiece),
}

impl ChunkPiece {
    /// The piece's batches, uncompressed.
    pub fn batches(&self) -> &Bytes {
        match self {
            ChunkPiece::Batches(batches) => batches,
            ChunkPiece::Compressed(piece) => &piece.batches,
        }
    }
}

/// A chunk waiting for [`SegmentWriter::finish`].
#[derive(Debug)]
struct PendingChunk {
    meta: ChunkMeta,
    body: PendingBody,
}

/// What a pending chunk's payload is made of.
#[derive(Debug)]
enum PendingBody {
    /// Batches, stored as the writer's options and the hint say.
    Pieces {
        pieces: Vec<ChunkPiece>,
        hint: ChunkHint,
    },
    /// Payloads of stored chunks, copied as they are one after another.
    Stored {
        codec: Codec,
        payloads: Vec<Bytes>,
        uncompressed_len: u64,
    },
}

impl PendingChunk {
    fn uncompressed_len(&self) -> u64 {
        match &self.body {
            PendingBody::Pieces { pieces, .. } => pieces
                .iter()
                .map(|piece| piece.batches().len() as u64)
                .sum(),
            PendingBody::Stored {
                uncompressed_len, ..
            } => *uncompressed_len,
        }
    }

    /// The most bytes its payload may take.
    fn payload_bound(&self) -> u64 {
        match &self.body {
            PendingBody::Pieces { pieces, .. } => pieces
                .iter()
                .map(|piece| zstd::zstd_safe::compress_bound(piece.batches().len()) as u64)
                .sum(),
            PendingBody::Stored { payloads, .. } => {
                payloads.iter().map(|payload| payload.len() as u64).sum()
            }
        }
    }
}

/// A finished segment object: the bytes to upload, and the footer describing them
/// (whose entries give each chunk's byte range for the metadata index).
#[derive(Debug, Clone)]
pub struct EncodedSegment {
    /// The whole object.
    pub bytes: Bytes,
    /// Its footer, as a reader will decode it.
    pub footer: SegmentFooter,
}

/// Accumulates chunks and encodes them as one segment object.
///
/// Chunks may be added in any order; the object stores them sorted by
/// (topic id, partition, first offset), so the same chunks always give the same
/// bytes. A partition may have several chunks if their offset ranges do not overlap.
#[derive(Debug)]
pub struct SegmentWriter {
    segment_id: Ulid,
    options: WriterOptions,
    chunks: Vec<PendingChunk>,
    uncompressed_bytes: u64,
}

impl SegmentWriter {
    /// A writer for the segment `segment_id` (the ULID also used in its object
    /// key, see [`ObjectKeys::segment`](crate::ObjectKeys::segment); it is recorded in
    /// the footer so an object can be matched to its key).
    pub fn new(segment_id: Ulid, options: WriterOptions) -> Result<Self> {
        if let Compression::Zstd { level } = options.compression {
            let range = zstd::compression_level_range();
            if !range.contains(&level) {
                return Err(ErrorRepr::InvalidCompressionLevel {
                    level,
                    min: *range.start(),
                    max: *range.end(),
                }
                .into());
            }
        }
        Ok(Self {
            segment_id,
            options,
            chunks: Vec::new(),
            uncompressed_bytes: 0,
        })
    }

    /// Adds one partition's consecutive record batches, `batches` being Kafka v2
    /// record batches concatenated, stored verbatim. The batches are not parsed:
    /// `meta` must describe them (the produce path has validated them already).
    /// The same as [`add_chunk_with_hint`](Self::add_chunk_with_hint) with
    /// [`ChunkHint::Unknown`].
    pub fn add_chunk(&mut self, meta: ChunkMeta, batches: Bytes) -> Result<()> {
        self.add_chunk_with_hint(meta, batches, ChunkHint::Unknown)
    }

    /// [`add_chunk`](Self::add_chunk), telling the writer what the caller knows
    /// about the batches (see [`ChunkHint`]).
    pub fn add_chunk_with_hint(
        &mut self,
        meta: ChunkMeta,
        batches: Bytes,
        hint: ChunkHint,
    ) -> Result<()> {
        self.add_pieces(meta, vec![ChunkPiece::Batches(batches)], hint)
    }

    /// Adds one partition's consecutive record batches given in pieces, in
    /// offset order, some of them compressed ahead ([`CompressedPiece`]). The
    /// chunk is stored as if its batches had been added at once, except that
    /// when any piece was compressed ahead, the payload is one zstd frame per
    /// piece (the pieces given uncompressed are compressed here, each on its
    /// own) and a piece's compressed frame is used as it is.
    pub fn add_pieces(
        &mut self,
        meta: ChunkMeta,
        mut pieces: Vec<ChunkPiece>,
        hint: ChunkHint,
    ) -> Result<()> {
        let invalid = |reason: String| ErrorRepr::InvalidChunk {
            topic_id: meta.topic_id,
            partition: meta.partition,
            reason,
        };
        meta.check().map_err(invalid)?;
        let len: u64 = pieces.iter().map(|p| p.batches().len() as u64).sum();
        if len == 0 {
            return Err(invalid("no batches".to_owned()).into());
        }
        if len > MAX_CHUNK_UNCOMPRESSED_LEN {
            return Err(invalid(format!(
                "{len} bytes of batches, at most {MAX_CHUNK_UNCOMPRESSED_LEN} per chunk"
            ))
            .into());
        }
        self.check_room()?;
        self.uncompressed_bytes = self.uncompressed_bytes.saturating_add(len);
        pieces.retain(|piece| !piece.batches().is_empty());
        self.chunks.push(PendingChunk {
            meta,
            body: PendingBody::Pieces { pieces, hint },
        });
        Ok(())
    }

    /// Adds one chunk made of `chunks` of other objects, copied as they are
    /// stored (no decompression, no recompression): one partition's, with
    /// consecutive offsets (each starts right after the one before), all of one
    /// codec. Their payloads are concatenated, which is again a valid payload
    /// of that codec: batches after batches, or zstd frames after zstd frames.
    pub fn add_stored(&mut self, chunks: Vec<StoredChunk>) -> Result<()> {
        let Some(first) = chunks.first() else {
            return Err(ErrorRepr::NoChunks.into());
        };
        let mut meta = first.meta;
        let codec = first.codec;
        let invalid = |reason: String| ErrorRepr::InvalidChunk {
            topic_id: first.meta.topic_id,
            partition: first.meta.partition,
            reason,
        };
        let mut uncompressed_len = 0u64;
        for (index, chunk) in chunks.iter().enumerate() {
            chunk.meta.check().map_err(invalid)?;
            if index > 0 {
                if (chunk.meta.topic_id, chunk.meta.partition) != (meta.topic_id, meta.partition) {
                    return Err(invalid("stored chunks of different partitions".to_owned()).into());
                }
                if chunk.meta.first_offset != meta.last_offset.saturating_add(1) {
                    return Err(invalid(format!(
                        "stored chunk at {} does not follow offset {}",
                        chunk.meta.first_offset, meta.last_offset
                    ))
                    .into());
                }
                if chunk.codec != codec {
                    return Err(invalid("stored chunks of different codecs".to_owned()).into());
                }
                meta.last_offset = chunk.meta.last_offset;
                meta.record_count = meta
                    .record_count
                    .checked_add(chunk.meta.record_count)
                    .ok_or_else(|| invalid("record count overflows".to_owned()))?;
                meta.max_timestamp = meta.max_timestamp.max(chunk.meta.max_timestamp);
            }
            uncompressed_len = uncompressed_len.saturating_add(chunk.uncompressed_length);
        }
        if uncompressed_len > MAX_CHUNK_UNCOMPRESSED_LEN {
            return Err(invalid(format!(
                "{uncompressed_len} bytes of batches, at most {MAX_CHUNK_UNCOMPRESSED_LEN} per chunk"
            ))
            .into());
        }
        self.check_room()?;
        self.uncompressed_bytes = self.uncompressed_bytes.saturating_add(uncompressed_len);
        self.chunks.push(PendingChunk {
            meta,
            body: PendingBody::Stored {
                codec,
                payloads: chunks.into_iter().map(|chunk| chunk.payload).collect(),
                uncompressed_len,
            },
        });
        Ok(())
    }

    /// Fails when the object holds as many chunks as it may.
    fn check_room(&self) -> Result<()> {
        if self.chunks.len() >= MAX_CHUNKS {
            return Err(ErrorRepr::TooManyChunks {
                count: self.chunks.len().saturating_add(1),
                max: MAX_CHUNKS,
            }
            .into());
        }
        Ok(())
    }

    /// Chunks added so far.
    pub fn chunk_count(&self) -> usize {
        self.chunks.len()
    }

    /// Bytes of batches added so far, before compression (for flush-size policy).
    pub fn uncompressed_bytes(&self) -> u64 {
        self.uncompressed_bytes
    }

    /// Encodes the object.
    pub fn finish(mut self) -> Result<EncodedSegment> {
        if self.chunks.is_empty() {
            return Err(ErrorRepr::NoChunks.into());
        }
        self.chunks.sort_by_key(|chunk| chunk.meta.sort_key());
        for pair in self.chunks.windows(2) {
            if let [previous, next] = pair
                && let (previous, next) = (&previous.meta, &next.meta)
                && previous.topic_id == next.topic_id
                && previous.partition == next.partition
                && previous.last_offset >= next.first_offset
            {
                return Err(ErrorRepr::InvalidChunk {
                    topic_id: next.topic_id,
                    partition: next.partition,
                    reason: format!(
                        "offsets {}..={} overlap another chunk's {}..={}",
                        next.first_offset,
                        next.last_offset,
                        previous.first_offset,
                        previous.last_offset
                    ),
                }
                .into());
            }
        }

        let level = match self.options.compression {
            Compression::None => None,
            Compression::Zstd { level } => Some(level),
        };
        // Room for every chunk at its worst (zstd's bound), so compressing
        // straight into the object never reallocates it.
        let estimate = HEADER_LEN
            + TRAILER_LEN
            + FOOTER_HEADER_LEN
            + (CHUNK_HEADER_LEN + FOOTER_ENTRY_LEN) * self.chunks.len() as u64
            + self
                .chunks
                .iter()
                .map(PendingChunk::payload_bound)
                .sum::<u64>();
        let mut out = Vec::with_capacity(usize::try_from(estimate).unwrap_or(0));
        format::encode_header(&mut out);
        let mut entries = Vec::with_capacity(self.chunks.len());
        for chunk in &self.chunks {
            let meta = &chunk.meta;
            let byte_offset = out.len();
            // The header goes in front once the payload's length and checksum
            // are known.
            out.resize(byte_offset + CHUNK_HEADER_LEN as usize, 0);
            let payload_at = out.len();
            let codec = match &chunk.body {
                PendingBody::Pieces { pieces, hint } => {
                    let compressed = match (level, hint) {
                        (None, _) | (Some(_), ChunkHint::ProducerCompressed) => false,
                        (Some(level), ChunkHint::Unknown) => write_pieces(level, pieces, &mut out)?,
                    };
                    if !compressed {
                        out.truncate(payload_at);
                        for piece in pieces {
                            out.extend_from_slice(piece.batches());
                        }
                    }
                    if compressed { Codec::Zstd } else { Codec::None }
                }
                PendingBody::Stored {
                    codec, payloads, ..
                } => {
                    for payload in payloads {
                        out.extend_from_slice(payload);
                    }
                    *codec
                }
            };
            let payload = &out[payload_at..];
            let header = ChunkHeader {
                meta: *meta,
                codec,
                uncompressed_length: chunk.uncompressed_len(),
                payload_length: payload.len() as u64,
                payload_crc32c: crc32c::crc32c(payload),
            };
            let mut encoded = Vec::with_capacity(CHUNK_HEADER_LEN as usize);
            format::encode_chunk_header(&mut encoded, &header);
            out[byte_offset..payload_at].copy_from_slice(&encoded);
            entries.push(ChunkEntry {
                meta: *meta,
                byte_offset: byte_offset as u64,
                byte_length: (out.len() - byte_offset) as u64,
                uncompressed_length: header.uncompressed_length,
                payload_crc32c: header.payload_crc32c,
                codec: header.codec,
            });
        }

        let footer_offset = out.len() as u64;
        format::encode_footer(&mut out, self.segment_id, &entries);
        let footer_length = out.len() as u64 - footer_offset;
        let footer_crc32c = crc32c::crc32c(&out[footer_offset as usize..]);
        format::encode_trailer(
            &mut out,
            &Trailer {
                footer_offset,
                footer_length,
                footer_crc32c,
                version: FORMAT_VERSION,
            },
        );
        let object_len = out.len() as u64;
        Ok(EncodedSegment {
            bytes: Bytes::from(out),
            footer: SegmentFooter::new(
                self.segment_id,
                FORMAT_VERSION,
                footer_offset,
                object_len,
                entries,
            ),
        })
    }
}

/// Writes a chunk's `pieces` compressed onto the end of `out`; returns whether
/// it did (else the caller stores them as given). Without a piece compressed
/// ahead, the pieces are compressed as one frame when that is worth it (as a
/// chunk added whole); with one, every piece becomes a frame of its own: the
/// frames compressed ahead as they are, the others compressed here.
fn write_pieces(level: i32, pieces: &[ChunkPiece], out: &mut Vec<u8>) -> Result<bool> {
    let ahead = pieces
        .iter()
        .any(|piece| matches!(piece, ChunkPiece::Compressed(p) if p.frame.is_some()));
    with_compressor(level, |compressor| {
        if !ahead {
            return match pieces {
                [one] => compress_into(compressor, one.batches(), out),
                _ => {
                    let mut whole =
                        Vec::with_capacity(pieces.iter().map(|p| p.batches().len()).sum());
                    for piece in pieces {
                        whole.extend_from_slice(piece.batches());
                    }
                    compress_into(compressor, &whole, out)
                }
            };
        }
        for piece in pieces {
            match piece {
                ChunkPiece::Compressed(CompressedPiece {
                    frame: Some(frame), ..
                }) => out.extend_from_slice(frame),
                other => {
                    let batches = other.batches();
                    out.reserve(zstd::zstd_safe::compress_bound(batches.len()));
                    let start = out.len();
                    let mut cursor = std::io::Cursor::new(&mut *out);
                    cursor.set_position(start as u64);
                    compressor
                        .compress_to_buffer(batches, &mut cursor)
                        .map_err(|source| ErrorRepr::Compress { source })?;
                }
            }
        }
        Ok(true)
    })
}

/// Compresses `batches` onto the end of `out` when that is worth it (see
/// [`SAMPLE_LEN`]); returns whether it did. `out` has room for zstd's bound.
fn compress_into(
    compressor: &mut zstd::bulk::Compressor<'static>,
    batches: &[u8],
    out: &mut Vec<u8>,
) -> Result<bool> {
    let worth_trying = batches.len() <= 2 * SAMPLE_LEN || {
        let sample = compressor
            .compress(&batches[..SAMPLE_LEN])
            .map_err(|source| ErrorRepr::Compress { source })?;
        (sample.len() as f64) < SAMPLE_LEN as f64 * SAMPLE_KEEP_RATIO
    };
    if !worth_trying {
        return Ok(false);
    }
    let start = out.len();
    out.reserve(zstd::zstd_safe::compress_bound(batches.len()));
    let mut cursor = std::io::Cursor::new(&mut *out);
    cursor.set_position(start as u64);
    let written = compressor
        .compress_to_buffer(batches, &mut cursor)
        .map_err(|source| ErrorRepr::Compress { source })?;
    Ok(written < batches.len())
}

/// Runs `f` with this thread's zstd compressor at `level`. The compressor (its
/// context and tables, a few MiB) lives as long as the thread: building one
/// per segment costs an allocation the size of its tables and page faults to
/// fill them, on every flush.
fn with_compressor<T>(
    level: i32,
    f: impl FnOnce(&mut zstd::bulk::Compressor<'static>) -> Result<T>,
) -> Result<T> {
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(None) };
    }
    COMPRESSOR.with(|cell| {
        let mut cached = cell.borrow_mut();
        let compressor = match &mut *cached {
            Some((cached_level, compressor)) if *cached_level == level => compressor,
            slot => {
                let compressor = zstd::bulk::Compressor::new(level)
                    .map_err(|source| ErrorRepr::Compress { source })?;
                &mut slot.insert((level, compressor)).1
            }
        };
        f(compressor)
    })
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::ErrorKind;

    fn meta(partition: i32, first_offset: i64, last_offset: i64) -> ChunkMeta {
        ChunkMeta {
            topic_id: Uuid::from_u128(1),
            partition,
            first_offset,
            last_offset,
            record_count: 1,
            max_timestamp: -1,
        }
    }

    #[test]
    fn rejects_bad_levels_and_inputs() {
        let level = *zstd::compression_level_range().end() + 1;
        let options = WriterOptions {
            compression: Compression::Zstd { level },
        };
        let error = SegmentWriter::new(Ulid::nil(), options).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid);

        let mut writer = SegmentWriter::new(Ulid::nil(), WriterOptions::default()).unwrap();
        let error = writer.add_chunk(meta(0, 0, 0), Bytes::new()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid);
        let error = writer
            .add_chunk(meta(0, 5, 4), Bytes::from_static(b"x"))
            .unwrap_err();
        assert!(error.to_string().contains("before first offset"), "{error}");
        assert_eq!(writer.chunk_count(), 0);

        let error = writer.finish().unwrap_err();
        assert!(matches!(error.repr(), ErrorRepr::NoChunks));
    }

    #[test]
    fn rejects_overlapping_chunks_of_a_partition() {
        let mut writer = SegmentWriter::new(Ulid::nil(), WriterOptions::default()).unwrap();
        writer
            .add_chunk(meta(0, 10, 20), Bytes::from_static(b"a"))
            .unwrap();
        writer
            .add_chunk(meta(1, 10, 20), Bytes::from_static(b"b"))
            .unwrap();
        writer
            .add_chunk(meta(0, 20, 30), Bytes::from_static(b"c"))
            .unwrap();
        let error = writer.finish().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid);
        assert!(error.to_string().contains("overlap"), "{error}");
    }

    #[test]
    fn incompressible_chunks_are_stored_as_given() {
        let mut writer = SegmentWriter::new(Ulid::nil(), WriterOptions::default()).unwrap();
        writer
            .add_chunk(meta(0, 0, 0), Bytes::from_static(b"tiny"))
            .unwrap();
        writer
            .add_chunk(meta(1, 0, 0), Bytes::from(vec![b'a'; 4096]))
            .unwrap();
        let segment = writer.finish().unwrap();
        let codecs: Vec<Codec> = segment.footer.entries().iter().map(|e| e.codec).collect();
        assert_eq!(codecs, [Codec::None, Codec::Zstd]);
    }

    #[test]
    fn a_long_chunk_whose_start_does_not_compress_is_stored_as_given() {
        let random = noise(4 * SAMPLE_LEN, 0x2545_f491_4f6c_dd1d);
        // Noisy start, then text that would compress: judged by the sample.
        let mut mixed = noise(SAMPLE_LEN, 0x9e37_79b9_7f4a_7c15);
        mixed.extend(b"abcd".repeat(SAMPLE_LEN));
        // Compressible start: compressed as a whole.
        let text = b"{\"user\":17,\"event\":\"view\"}".repeat(SAMPLE_LEN / 8);
        let mut writer = SegmentWriter::new(Ulid::nil(), WriterOptions::default()).unwrap();
        for (partition, bytes) in [random, mixed, text.clone()].into_iter().enumerate() {
            writer
                .add_chunk(meta(partition as i32, 0, 0), Bytes::from(bytes))
                .unwrap();
        }
        let segment = writer.finish().unwrap();
        let codecs: Vec<Codec> = segment.footer.entries().iter().map(|e| e.codec).collect();
        assert_eq!(codecs, [Codec::None, Codec::None, Codec::Zstd]);
        let decoded = crate::decode_segment(segment.bytes).unwrap();
        assert_eq!(decoded.chunks[2], Bytes::from(text));
    }

    /// xorshift bytes: they do not compress.
    fn noise(len: usize, mut state: u64) -> Vec<u8> {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect()
    }

    #[test]
    fn chunks_from_pieces_compressed_ahead_decode_to_their_batches_in_order() {
        let text = |tag: &str, n: usize| Bytes::from(format!("{{\"{tag}\":17}}").repeat(n));
        let (a, b, c) = (text("a", 9_000), text("bb", 40), text("ccc", 20_000));
        let random = Bytes::from(noise(3 * SAMPLE_LEN, 7));
        let ahead = |bytes: &Bytes| ChunkPiece::Compressed(CompressedPiece::new(bytes.clone(), 1));
        assert!(CompressedPiece::new(a.clone(), 1).is_compressed());
        assert!(!CompressedPiece::new(random.clone(), 1).is_compressed());
        let chunks: [(Vec<ChunkPiece>, Codec); 4] = [
            // Compressed ahead, plain, compressed ahead: a frame each.
            (
                vec![ahead(&a), ChunkPiece::Batches(b.clone()), ahead(&c)],
                Codec::Zstd,
            ),
            // Nothing compressed ahead: as one chunk.
            (
                vec![
                    ChunkPiece::Batches(a.clone()),
                    ChunkPiece::Batches(b.clone()),
                ],
                Codec::Zstd,
            ),
            // Noise compressed ahead (kept as given) next to text: still zstd.
            (vec![ahead(&random), ahead(&c)], Codec::Zstd),
            // Only noise: stored as given.
            (
                vec![ahead(&random), ChunkPiece::Batches(random.clone())],
                Codec::None,
            ),
        ];
        let mut writer = SegmentWriter::new(Ulid::nil(), WriterOptions::default()).unwrap();
        let mut expected = Vec::new();
        for (partition, (pieces, _)) in chunks.iter().enumerate() {
            let mut whole = Vec::new();
            for piece in pieces {
                whole.extend_from_slice(piece.batches());
            }
            expected.push(Bytes::from(whole));
            writer
                .add_pieces(
                    meta(partition as i32, 0, 0),
                    pieces.clone(),
                    ChunkHint::Unknown,
                )
                .unwrap();
        }
        let segment = writer.finish().unwrap();
        let codecs: Vec<Codec> = segment.footer.entries().iter().map(|e| e.codec).collect();
        let wanted: Vec<Codec> = chunks.iter().map(|(_, codec)| *codec).collect();
        assert_eq!(codecs, wanted);
        let decoded = crate::decode_segment(segment.bytes.clone()).unwrap();
        assert_eq!(decoded.chunks, expected);
        // A piece compressed ahead is used as it is, not compressed again.
        let frame = match &chunks[0].0[0] {
            ChunkPiece::Compressed(piece) => piece.frame.clone().unwrap(),
            ChunkPiece::Batches(_) => unreachable!(),
        };
        let first = &segment.footer.entries()[0];
        let payload_at = (first.byte_offset + CHUNK_HEADER_LEN) as usize;
        assert_eq!(
            segment.bytes[payload_at..payload_at + frame.len()],
            frame[..]
        );
    }

    #[test]
    fn pieces_none_compressed_ahead_store_like_one_chunk() {
        let a = Bytes::from(b"{\"event\":\"click\"}".repeat(300));
        let b = Bytes::from(b"{\"event\":\"view\"}".repeat(500));
        let mut whole = a.to_vec();
        whole.extend_from_slice(&b);
        let mut pieces = SegmentWriter::new(Ulid::nil(), WriterOptions::default()).unwrap();
        pieces
            .add_pieces(
                meta(0, 0, 0),
                vec![ChunkPiece::Batches(a), ChunkPiece::Batches(b)],
                ChunkHint::Unknown,
            )
            .unwrap();
        let mut one = SegmentWriter::new(Ulid::nil(), WriterOptions::default()).unwrap();
        one.add_chunk(meta(0, 0, 0), Bytes::from(whole)).unwrap();
        assert_eq!(pieces.finish().unwrap().bytes, one.finish().unwrap().bytes);
    }

    #[test]
    fn producer_compressed_chunks_skip_zstd_and_round_trip() {
        // Compressible bytes, so only the hint can explain codec none.
        let compressible = Bytes::from(b"{\"event\":\"click\"}".repeat(200));
        let mut writer = SegmentWriter::new(Ulid::nil(), WriterOptions::default()).unwrap();
        writer
            .add_chunk_with_hint(
                meta(0, 0, 9),
                compressible.clone(),
                ChunkHint::ProducerCompressed,
            )
            .unwrap();
        writer
            .add_chunk_with_hint(meta(1, 0, 9), compressible.clone(), ChunkHint::Unknown)
            .unwrap();
        writer
            .add_chunk(meta(2, 0, 9), compressible.clone())
            .unwrap();
        let segment = writer.finish().unwrap();
        let codecs: Vec<Codec> = segment.footer.entries().iter().map(|e| e.codec).collect();
        assert_eq!(codecs, [Codec::None, Codec::Zstd, Codec::Zstd]);
        let stored = &segment.footer.entries()[0];
        assert_eq!(stored.uncompressed_length, compressible.len() as u64);

        let decoded = crate::decode_segment(segment.bytes.clone()).unwrap();
        assert_eq!(decoded.chunks.len(), 3);
        for batches in &decoded.chunks {
            assert_eq!(batches, &compressible);
        }
    }

    #[test]
    fn hints_do_not_matter_without_compression() {
        let mut writer = SegmentWriter::new(Ulid::nil(), WriterOptions::uncompressed()).unwrap();
        for (partition, hint) in [(0, ChunkHint::Unknown), (1, ChunkHint::ProducerCompressed)] {
            writer
                .add_chunk_with_hint(meta(partition, 0, 0), Bytes::from(vec![b'a'; 4096]), hint)
                .unwrap();
        }
        let segment = writer.finish().unwrap();
        let codecs: Vec<Codec> = segment.footer.entries().iter().map(|e| e.codec).collect();
        assert_eq!(codecs, [Codec::None, Codec::None]);
    }

    #[test]
    fn default_options_use_the_default_level() {
        assert_eq!(
            WriterOptions::default(),
            WriterOptions::zstd(DEFAULT_ZSTD_LEVEL)
        );
        assert!(zstd::compression_level_range().contains(&DEFAULT_ZSTD_LEVEL));
    }

    #[test]
    fn output_does_not_depend_on_insertion_order() {
        let chunks = [
            (meta(2, 0, 0), Bytes::from_static(b"two")),
            (meta(0, 3, 3), Bytes::from_static(b"zero-late")),
            (meta(0, 0, 2), Bytes::from_static(b"zero-early")),
        ];
        let build = |order: &[usize]| {
            let mut writer =
                SegmentWriter::new(Ulid::from_parts(9, 9), WriterOptions::default()).unwrap();
            for &i in order {
                let (meta, batches) = chunks[i].clone();
                writer.add_chunk(meta, batches).unwrap();
            }
            writer.finish().unwrap().bytes
        };
        assert_eq!(build(&[0, 1, 2]), build(&[2, 1, 0]));
    }
}
