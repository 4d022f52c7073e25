//! Fjord's storage layer: everything about bytes in the bucket and on the agent's
//! local disk (segment objects, object keys, object-store decorators, the local
//! write-ahead cache and the read cache).
//!
//! What this crate must never do: consult or change metadata. It is joined with
//! `fjord-metadata` by the agent.
//!
//! # Parts
//!
//! | module | owns |
//! |---|---|
//! | [`paths`] | every object key ([`ObjectKeys`]); nothing else formats one |
//! | [`segment`] | the segment object format: [`SegmentWriter`] builds one, [`SegmentFooter::decode_tail`] and [`decode_chunk_with_entry`] read it back with ranged GETs |
//! | [`object_store`] | `ObjectStore` decorators (metrics, fault injection) and segment reads over any store ([`read_footer`](crate::object_store::read_footer), [`read_chunk`](crate::object_store::read_chunk)) |
//! | [`cache`] | the read cache: [`MemoryTailCache`](cache::MemoryTailCache) of just-committed batches, [`DiskRangeCache`](cache::DiskRangeCache) of object ranges, single-flight GETs ([`CachedReader`](cache::CachedReader)) |
//! | `error` | [`StorageError`] and the [`ErrorKind`] callers act on |
//!
//! # Data flow
//!
//! ```text
//! write: per-partition batches ─▶ SegmentWriter (zstd chunks + footer + trailer)
//!        ─▶ PUT at ObjectKeys::segment(ulid) ─▶ (agent) metadata commit of the
//!        footer's ChunkEntry byte ranges
//! read:  metadata index entry (key, byte range) ─▶ ranged GET of the chunk
//!        ─▶ decode_chunk / decode_chunk_with_entry ─▶ batches, byte for byte
//!        (without a byte range: GET the tail ─▶ SegmentFooter::decode_tail ─▶
//!        footer.find(topic, partition, offset) ─▶ ranged GET of that chunk)
//! ```
//!
//! # Invariants
//!
//! - Objects are immutable: a key is written once, with a fresh ULID, and never
//!   overwritten or appended to. Rewriting (compaction) writes new objects.
//! - Keys come from [`paths`] only, and the metadata index stores each key it
//!   references. State is never discovered by listing the bucket.
//! - A segment object is uploaded before the metadata commit that references it,
//!   and deleted only after no committed index entry references it and a grace
//!   period has passed (the agent enforces the order; this crate only provides the
//!   operations).
//! - Decoding bytes from storage never panics: damage, truncation and unknown format
//!   versions are typed errors ([`ErrorKind::Corrupt`], [`ErrorKind::Unsupported`]).
//! - No clocks, randomness or id generation here: ids and times are arguments.
//!
//! # Example
//!
//! ```
//! use bytes::Bytes;
//! use fjord_storage::{
//!     ChunkMeta, ObjectKeys, SegmentFooter, SegmentWriter, TailDecode, WriterOptions,
//!     decode_chunk_with_entry, DEFAULT_TAIL_READ_LEN,
//! };
//! use ulid::Ulid;
//! use uuid::Uuid;
//!
//! # fn main() -> Result<(), fjord_storage::StorageError> {
//! let topic_id = Uuid::from_u128(7);
//! let segment_id = Ulid::from_parts(1_700_000_000_000, 1); // from an IdGenerator
//! let key = ObjectKeys::new("cluster-1")?.segment(segment_id);
//! assert!(key.as_str().starts_with("cluster-1/segments/"));
//!
//! // Write: one chunk per partition (the batches are opaque Kafka v2 record batches).
//! let mut writer = SegmentWriter::new(segment_id, WriterOptions::default())?;
//! for partition in 0..3 {
//!     let meta = ChunkMeta {
//!         topic_id,
//!         partition,
//!         first_offset: 100,
//!         last_offset: 109,
//!         record_count: 10,
//!         max_timestamp: 1_700_000_000_123,
//!     };
//!     writer.add_chunk(meta, Bytes::from(vec![partition as u8; 1000]))?;
//! }
//! let object = writer.finish()?.bytes; // PUT this at `key`
//!
//! // Read: one ranged GET of the tail, then one of the chunk.
//! let object_len = object.len() as u64;
//! let tail_start = object_len.saturating_sub(DEFAULT_TAIL_READ_LEN) as usize;
//! let TailDecode::Footer(footer) = SegmentFooter::decode_tail(&object[tail_start..], object_len)?
//! else {
//!     unreachable!("a 3-chunk footer fits in the default tail");
//! };
//! assert_eq!(footer.segment_id(), segment_id);
//! let entry = footer.find(topic_id, 1, 105).expect("partition 1 holds offset 105");
//! let range = entry.byte_range();
//! let chunk = object.slice(range.start as usize..range.end as usize); // ranged GET
//! let batches = decode_chunk_with_entry(entry, chunk)?;
//! assert_eq!(batches, Bytes::from(vec![1u8; 1000]));
//! # Ok(())
//! # }
//! ```

pub mod cache;
mod error;
pub mod object_store;
pub mod paths;
pub mod segment;
#[doc(hidden)]
pub mod testing;
pub mod wal;

pub use error::{ErrorKind, Result, StorageError};
pub use paths::{ObjectKey, ObjectKeys};
pub use segment::{
    ChunkEntry, ChunkHint, ChunkMeta, ChunkPiece, Codec, CompressedPiece, Compression,
    DEFAULT_TAIL_READ_LEN, DEFAULT_ZSTD_LEVEL, DecodedChunk, DecodedSegment, EncodedSegment,
    SegmentFooter, SegmentWriter, StoredChunk, TailDecode, WriterOptions, decode_chunk,
    decode_chunk_with_entry, decode_segment, stored_chunk,
};
