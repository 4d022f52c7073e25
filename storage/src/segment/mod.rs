//! Segment objects: the immutable objects an agent flush writes to the bucket.
//!
//! A segment holds one *chunk* per partition in the flush (or several per partition,
//! for objects rewritten by compaction), each being that partition's Kafka v2 record
//! batches, byte for byte, usually zstd-compressed. A footer indexes the chunks and
//! a fixed-size trailer locates the footer, so a reader needs at most two ranged
//! GETs: the object's tail, then one chunk. When the metadata index already holds a
//! chunk's byte range, one GET of the chunk suffices, because every chunk carries a
//! checksummed header that describes it.
//!
//! - `format.rs`: the byte layout and the types it describes (the same layout is
//!   explained in `docs/segment-format.md`).
//! - `writer.rs`: [`SegmentWriter`] builds an object from chunks (batches to
//!   store, or chunks of other objects copied as stored: compaction).
//! - `reader.rs`: [`SegmentFooter::decode_tail`], [`decode_chunk_with_entry`],
//!   [`decode_chunk`] and [`decode_segment`] read one back ([`stored_chunk`]
//!   without decompressing), rejecting any damaged
//!   byte with an [`ErrorKind::Corrupt`](crate::ErrorKind::Corrupt) error.
//!
//! Invariants:
//! - The format is versioned in the header and the trailer; a reader refuses any
//!   version it does not know ([`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported))
//!   and reads every older one.
//! - Every byte of an object is covered by a magic number, an exact check of a
//!   reserved field, or a crc32c checksum: damage is detected, never served.
//! - Decoding never panics and never allocates more than
//!   [`MAX_CHUNK_UNCOMPRESSED_LEN`] for a chunk, whatever the input.

pub(crate) mod format;
mod reader;
mod writer;

pub use format::{
    CHUNK_HEADER_LEN, ChunkEntry, ChunkMeta, Codec, FORMAT_VERSION, HEADER_LEN,
    MAX_CHUNK_UNCOMPRESSED_LEN, MAX_CHUNKS, OLDEST_READABLE_VERSION, TRAILER_LEN,
};
pub use reader::{
    DEFAULT_TAIL_READ_LEN, DecodedChunk, DecodedSegment, SegmentFooter, StoredChunk, TailDecode,
    decode_chunk, decode_chunk_with_entry, decode_segment, stored_chunk,
};
pub use writer::{
    ChunkHint, ChunkPiece, CompressedPiece, Compression, DEFAULT_ZSTD_LEVEL, EncodedSegment,
    SegmentWriter, WriterOptions,
};
