//! The read cache: recent data in memory, object byte ranges on local disk, and
//! single-flight so concurrent identical reads share one GET.
//!
//! ```text
//! fetch at offset ─▶ MemoryTailCache (batches this agent just committed)
//!   miss ─▶ (metadata index: key, byte range) ─▶ CachedReader::read_chunk
//!            ─▶ DiskRangeCache (raw object bytes, crc32c-checked)
//!            ─▶ miss: SingleFlight ─▶ one ranged GET through Arc<dyn ObjectStore>
//!                     ─▶ written to the disk cache ─▶ shared with every waiter
//!            ─▶ decode_chunk_with_entry (decoding stays in `segment`)
//! ```
//!
//! - [`MemoryTailCache`]: decoded record batches by partition and offset range,
//!   bounded by bytes, oldest insert evicted first. The agent fills it at commit
//!   and invalidates a partition when it loses leadership.
//! - [`DiskRangeCache`]: raw object ranges in files, bounded by bytes, LRU,
//!   written atomically, verified on every read, index rebuilt at startup by
//!   scanning its own directory.
//! - [`SingleFlight`]: one spawned fetch per key; waiters that go away cancel
//!   nothing; results (errors included) are not kept once the fetch ends.
//! - [`CachedReader`]: composes the disk cache and single-flight GETs.
//!
//! # Why not `foyer`
//!
//! `foyer` (0.22) is a hybrid memory and disk cache made for this, but it brings
//! four crates of its own plus `lz4` (a C build), `fs4`, `fastant`, `mixtrics`,
//! `itertools`, `parking_lot`, `hashbrown`, `twox-hash` and more, which is a
//! noticeable share of a 2-core build. Its disk engine stores entries in its own
//! block format, whereas the caches here need little: a byte-bounded FIFO keyed by
//! offset ranges (the tail cache wants range lookups, not key lookups) and an LRU
//! of checksummed files. Together they are a few hundred lines on `std`, `bytes`,
//! `crc32c` and `tokio`, all already dependencies.
//!
//! Invariants: nothing here lists the bucket; the caches never return bytes that
//! failed a check; a cache problem is a miss, never an error to the reader.

mod disk_range;
mod memory_tail;
mod single_flight;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};

use crate::error::{ErrorKind, ErrorRepr, Result, StorageError};
use crate::paths::ObjectKey;
use crate::segment::{ChunkEntry, SegmentFooter, TailDecode, decode_chunk_with_entry};

pub use disk_range::{DiskCacheStats, DiskRangeCache};
pub use memory_tail::{MemoryTailCache, TailCacheStats, TailRead, TopicPartition};
pub use single_flight::{FetchAborted, SingleFlight};

/// What one single-flight GET yields: shared by every waiter, so the error is in
/// an `Arc`.
type SharedGet = std::result::Result<Bytes, Arc<StorageError>>;

/// Reads object byte ranges through the disk range cache (if any) and, on a miss,
/// with one ranged GET per distinct range however many callers ask at once.
///
/// The GET (and the disk cache write after it) runs in a spawned task, so
/// dropping a read future never aborts a fetch other readers are waiting for.
pub struct CachedReader {
    store: Arc<dyn ObjectStore>,
    disk: Option<Arc<DiskRangeCache>>,
    flights: SingleFlight<(String, u64, u64), SharedGet>,
    /// Whole segment objects fetched last, so the reads of their other chunks
    /// that usually follow come from memory rather than the disk cache.
    recent: std::sync::Mutex<RecentObjects>,
}

/// The most recently fetched whole objects, oldest dropped first, at most
/// [`RECENT_OBJECT_BYTES`] in all.
#[derive(Debug, Default)]
struct RecentObjects {
    objects: std::collections::VecDeque<(String, Bytes)>,
    bytes: usize,
}

/// Memory kept for recently fetched whole objects.
const RECENT_OBJECT_BYTES: usize = 64 * 1024 * 1024;

impl RecentObjects {
    fn get(&self, key: &str) -> Option<Bytes> {
        self.objects
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, bytes)| bytes.clone())
    }

    fn insert(&mut self, key: &str, object: Bytes) {
        if object.len() > RECENT_OBJECT_BYTES || self.get(key).is_some() {
            return;
        }
        self.bytes += object.len();
        self.objects.push_back((key.to_owned(), object));
        while self.bytes > RECENT_OBJECT_BYTES {
            match self.objects.pop_front() {
                Some((_, dropped)) => self.bytes -= dropped.len(),
                None => break,
            }
        }
    }
}

impl fmt::Debug for CachedReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedReader")
            .field("store", &self.store.to_string())
            .field("disk", &self.disk)
            .field("flights", &self.flights)
            .finish()
    }
}

impl CachedReader {
    /// Reads from `store`, caching ranges in `disk` if given.
    pub fn new(store: Arc<dyn ObjectStore>, disk: Option<Arc<DiskRangeCache>>) -> Self {
        Self {
            store,
            disk,
            flights: SingleFlight::new(),
            recent: std::sync::Mutex::default(),
        }
    }

    /// The disk cache, if any.
    pub fn disk_cache(&self) -> Option<&Arc<DiskRangeCache>> {
        self.disk.as_ref()
    }

    /// Fetches one chunk (from the disk cache or with a ranged GET) and returns its
    /// verified record batches.
    pub async fn read_chunk(&self, key: &ObjectKey, entry: &ChunkEntry) -> Result<Bytes> {
        let chunk = self.get_range(key, entry.byte_range()).await?;
        decode_chunk_with_entry(entry, chunk)
    }

    /// Bytes `range` of object `key`, exactly `range.end - range.start` of them.
    ///
    /// Must be called within a Tokio runtime.
    pub async fn get_range(&self, key: &ObjectKey, range: Range<u64>) -> Result<Bytes> {
        if range.end <= range.start {
            return Ok(Bytes::new());
        }
        if let Some(disk) = &self.disk
            && let Some(bytes) = disk.get(key.as_str(), range.clone()).await
        {
            return Ok(bytes);
        }
        let store = Arc::clone(&self.store);
        let disk = self.disk.clone();
        let fetch_key = key.clone();
        let fetch_range = range.clone();
        let flight = (key.as_str().to_owned(), range.start, range.end);
        let shared = self
            .flights
            .run(flight, move || async move {
                let bytes = get_exact(&*store, &fetch_key, fetch_range.clone())
                    .await
                    .map_err(Arc::new)?;
                if let Some(disk) = disk {
                    disk.insert(fetch_key.as_str(), fetch_range, bytes.clone())
                        .await;
                }
                Ok(bytes)
            })
            .await;
        match shared {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(error)) => Err(unshare(key, error)),
            Err(aborted) => Err(rebuild(key, ErrorKind::Internal, aborted.to_string())),
        }
    }

    /// Bytes `range` of the segment object `key`, which is `object_size` bytes
    /// long, reading the **whole object** with one GET on a miss when it is at
    /// most `whole_object_max` bytes; the object stays in memory among the last
    /// 64 MiB fetched, and every chunk its footer names goes to the disk cache
    /// (if any), so the reads of the other partitions in the object that
    /// usually follow (a consumer catching up on a topic) cost no request and,
    /// while it is recent, no disk read. Otherwise (a larger object, or an
    /// unknown size of 0) this is [`get_range`](Self::get_range).
    ///
    /// Requests against bytes: a whole-object GET fetches chunks the caller may
    /// never read, which costs transfer but no request, and S3 bills requests.
    ///
    /// Must be called within a Tokio runtime.
    pub async fn get_range_in_segment(
        &self,
        key: &ObjectKey,
        range: Range<u64>,
        object_size: u64,
        whole_object_max: u64,
    ) -> Result<Bytes> {
        if object_size == 0
            || object_size > whole_object_max
            || range.end > object_size
            || range.end <= range.start
        {
            return self.get_range(key, range).await;
        }
        let recent = self
            .recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(key.as_str());
        if let Some(object) = recent
            && let Some(bytes) = slice_of(&object, &range)
        {
            return Ok(bytes);
        }
        let disk = self.disk.clone();
        if let Some(disk) = &disk
            && let Some(bytes) = disk.get(key.as_str(), range.clone()).await
        {
            return Ok(bytes);
        }
        let store = Arc::clone(&self.store);
        let fetch_key = key.clone();
        let flight = (key.as_str().to_owned(), 0, object_size);
        let shared = self
            .flights
            .run(flight, move || async move {
                let object = get_exact(&*store, &fetch_key, 0..object_size)
                    .await
                    .map_err(Arc::new)?;
                // Every chunk into the disk cache before the flight ends, so a
                // reader arriving after it finds them there. A footer that does
                // not decode caches nothing: the caller's own chunk is still
                // checked when it is decoded.
                if let Some(disk) = disk
                    && let Ok(TailDecode::Footer(footer)) =
                        SegmentFooter::decode_tail(&object, object_size)
                {
                    let ranges: Vec<Range<u64>> = footer
                        .entries()
                        .iter()
                        .map(ChunkEntry::byte_range)
                        .collect();
                    futures::stream::iter(ranges)
                        .for_each_concurrent(16, |chunk| {
                            let disk = &disk;
                            let fetch_key = &fetch_key;
                            let bytes = slice_of(&object, &chunk);
                            async move {
                                if let Some(bytes) = bytes {
                                    disk.insert(fetch_key.as_str(), chunk, bytes).await;
                                }
                            }
                        })
                        .await;
                }
                Ok(object)
            })
            .await;
        let object = match shared {
            Ok(Ok(object)) => object,
            Ok(Err(error)) => return Err(unshare(key, error)),
            Err(aborted) => return Err(rebuild(key, ErrorKind::Internal, aborted.to_string())),
        };
        self.recent
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key.as_str(), object.clone());
        slice_of(&object, &range).ok_or_else(|| {
            rebuild(
                key,
                ErrorKind::Corrupt,
                format!(
                    "range {}..{} is outside the {}-byte object",
                    range.start,
                    range.end,
                    object.len()
                ),
            )
        })
    }
}

/// `range` of `bytes`, if it lies within them.
fn slice_of(bytes: &Bytes, range: &Range<u64>) -> Option<Bytes> {
    let start = usize::try_from(range.start).ok()?;
    let end = usize::try_from(range.end).ok()?;
    (start <= end && end <= bytes.len()).then(|| bytes.slice(start..end))
}

/// One ranged GET that must return the whole range.
async fn get_exact(store: &dyn ObjectStore, key: &ObjectKey, range: Range<u64>) -> Result<Bytes> {
    let object_error = |source| ErrorRepr::ObjectStore {
        operation: "GET",
        key: key.to_string(),
        source,
    };
    let bytes = store
        .get_opts(
            &Path::from(key),
            GetOptions {
                range: Some(GetRange::Bounded(range.clone())),
                ..GetOptions::default()
            },
        )
        .await
        .map_err(object_error)?
        .bytes()
        .await
        .map_err(object_error)?;
    if bytes.len() as u64 != range.end - range.start {
        return Err(ErrorRepr::ShortRead {
            key: key.to_string(),
            received: bytes.len() as u64,
            range,
        }
        .into());
    }
    Ok(bytes)
}

/// Gives each waiter its own [`StorageError`] for a shared one: the original if
/// this is the last reference, otherwise an object-store error of the same kind
/// whose message includes the original's.
fn unshare(key: &ObjectKey, error: Arc<StorageError>) -> StorageError {
    match Arc::try_unwrap(error) {
        Ok(error) => error,
        Err(shared) => rebuild(key, shared.kind(), shared.to_string()),
    }
}

fn rebuild(key: &ObjectKey, kind: ErrorKind, message: String) -> StorageError {
    let source: Box<dyn std::error::Error + Send + Sync> = message.clone().into();
    let source = match kind {
        ErrorKind::NotFound => object_store::Error::NotFound {
            path: key.to_string(),
            source,
        },
        ErrorKind::Transient => object_store::Error::Generic {
            store: "shared GET",
            source,
        },
        ErrorKind::Invalid => object_store::Error::NotSupported { source },
        // A raw GET fails only with the kinds above, or internally.
        ErrorKind::Corrupt | ErrorKind::Unsupported | ErrorKind::Internal => {
            object_store::Error::NotImplemented {
                operation: format!("GET ({message})"),
                implementer: "shared GET".to_owned(),
            }
        }
    };
    ErrorRepr::ObjectStore {
        operation: "GET",
        key: key.to_string(),
        source,
    }
    .into()
}
