//! Building a segment object from partitions' record batches.

use bytes::Bytes;
use ulid::Ulid;

use crate::error::{ErrorRepr, Result};
use crate::segment::format::{
    self, CHUNK_HEADER_LEN, ChunkEntry, ChunkHeader, ChunkMeta, Codec, FOOTER_ENTRY_LEN,
    FOOTER_HEADER_LEN, FORMAT_VERSION, HEADER_LEN, MAX_CHUNK_UNCOMPRESSED_LEN, MAX_CHUNKS,
    TRAILER_LEN, Trailer,
};
use crate::segment::reader::SegmentFooter;

/// How a writer stores chunk payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Store batches as given.
    None,
    /// Compress each chunk with zstd at `level` (see
    /// [`zstd::compression_level_range`]; 1–3 suit the flush path). A chunk that
    /// does not get smaller is stored as given instead, so batches a producer
    /// already compressed cost no extra space and no decompression on read.
    Zstd {
        /// The zstd level.
        level: i32,
    },
}

impl Default for Compression {
    fn default() -> Self {
        Compression::Zstd { level: 3 }
    }
}

/// Settings for [`SegmentWriter`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterOptions {
    /// How chunk payloads are stored.
    pub compression: Compression,
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
    chunks: Vec<(ChunkMeta, Bytes)>,
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
    pub fn add_chunk(&mut self, meta: ChunkMeta, batches: Bytes) -> Result<()> {
        let invalid = |reason: String| ErrorRepr::InvalidChunk {
            topic_id: meta.topic_id,
            partition: meta.partition,
            reason,
        };
        meta.check().map_err(invalid)?;
        if batches.is_empty() {
            return Err(invalid("no batches".to_owned()).into());
        }
        let len = batches.len() as u64;
        if len > MAX_CHUNK_UNCOMPRESSED_LEN {
            return Err(invalid(format!(
                "{len} bytes of batches, at most {MAX_CHUNK_UNCOMPRESSED_LEN} per chunk"
            ))
            .into());
        }
        if self.chunks.len() >= MAX_CHUNKS {
            return Err(ErrorRepr::TooManyChunks {
                count: self.chunks.len().saturating_add(1),
                max: MAX_CHUNKS,
            }
            .into());
        }
        self.uncompressed_bytes = self.uncompressed_bytes.saturating_add(len);
        self.chunks.push((meta, batches));
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
        self.chunks.sort_by_key(|(meta, _)| meta.sort_key());
        for pair in self.chunks.windows(2) {
            if let [(previous, _), (next, _)] = pair
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

        let mut compressor = match self.options.compression {
            Compression::None => None,
            Compression::Zstd { level } => Some(
                zstd::bulk::Compressor::new(level)
                    .map_err(|source| ErrorRepr::Compress { source })?,
            ),
        };

        let estimate = HEADER_LEN
            + TRAILER_LEN
            + FOOTER_HEADER_LEN
            + (CHUNK_HEADER_LEN + FOOTER_ENTRY_LEN) * self.chunks.len() as u64
            + self.uncompressed_bytes / 2;
        let mut out = Vec::with_capacity(usize::try_from(estimate).unwrap_or(0));
        format::encode_header(&mut out);
        let mut entries = Vec::with_capacity(self.chunks.len());
        for (meta, batches) in &self.chunks {
            let compressed = match compressor.as_mut() {
                None => None,
                Some(compressor) => {
                    let compressed = compressor
                        .compress(batches)
                        .map_err(|source| ErrorRepr::Compress { source })?;
                    (compressed.len() < batches.len()).then_some(compressed)
                }
            };
            let (codec, payload): (Codec, &[u8]) = match &compressed {
                Some(compressed) => (Codec::Zstd, compressed),
                None => (Codec::None, batches),
            };
            let header = ChunkHeader {
                meta: *meta,
                codec,
                uncompressed_length: batches.len() as u64,
                payload_length: payload.len() as u64,
                payload_crc32c: crc32c::crc32c(payload),
            };
            let byte_offset = out.len() as u64;
            format::encode_chunk_header(&mut out, &header);
            out.extend_from_slice(payload);
            entries.push(ChunkEntry {
                meta: *meta,
                byte_offset,
                byte_length: out.len() as u64 - byte_offset,
                uncompressed_length: header.uncompressed_length,
                payload_crc32c: header.payload_crc32c,
                codec,
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
