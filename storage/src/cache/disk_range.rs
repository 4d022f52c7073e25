//! The disk range cache: byte ranges of objects kept in files on the agent's local
//! disk, so that repeated catch-up reads of the same chunks do not GET them again.
//!
//! # Files
//!
//! Every cached range is one file `<generation as 16 hex digits>.range` in the
//! cache directory, written once under a fresh generation number (to
//! `<name>.tmp`, then renamed) and never modified. Its layout, little-endian:
//!
//! ```text
//! magic "FJRC" | version u16 = 1 | reserved u16 = 0 | key length u32
//! | range start u64 | range end u64 | payload crc32c u32 | header crc32c u32
//! | object key (UTF-8) | payload (range end - range start bytes)
//! ```
//!
//! The header crc32c covers the 32 bytes before it and the key. Reads check the
//! whole file (magic, version, key, range, length, both checksums); anything
//! wrong, or a file that vanished, is a miss: the entry and its file are dropped,
//! it is counted in [`DiskCacheStats::damaged`], and damaged bytes are never
//! returned. Files are not fsynced: after a crash a file may hold anything, and the
//! checks make that a miss, which is all a cache needs.
//!
//! # Bounds and restart
//!
//! The total length of the files (headers included), counting writes in progress,
//! never exceeds the budget; the least recently used ranges are evicted first.
//! [`DiskRangeCache::open`] rebuilds the index by scanning the directory (this
//! agent's own local directory, never the bucket): leftover `.tmp` files and files
//! with a bad name or header are deleted, the rest are ordered least recently
//! used first by modification time, and the oldest are evicted if they exceed the
//! budget. Payload checksums are verified on read, not at startup, so opening a
//! large cache reads only headers.
//!
//! Only one `DiskRangeCache` may use a directory at a time.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

const MAGIC: [u8; 4] = *b"FJRC";
const VERSION: u16 = 1;
/// Fixed header length: magic, version, reserved, key length, range, two crcs.
const HEADER_LEN: usize = 4 + 2 + 2 + 4 + 8 + 8 + 4 + 4;
/// Offset of the header crc32c (it covers everything before it, then the key).
const HEADER_CRC_AT: usize = HEADER_LEN - 4;
const EXTENSION: &str = "range";
const TMP_SUFFIX: &str = ".tmp";
/// Longest object key accepted (keys are far shorter; this bounds header parsing).
const MAX_KEY_LEN: usize = 4096;

/// Counters of a [`DiskRangeCache`], copied by [`DiskRangeCache::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DiskCacheStats {
    /// Reads served from disk.
    pub hits: u64,
    /// Reads not cached (or not yet written, or damaged).
    pub misses: u64,
    /// Cached files found damaged, truncated or missing on read (each also a miss).
    pub damaged: u64,
    /// Entries evicted to stay within the byte budget.
    pub evictions: u64,
    /// Ranges written to disk.
    pub inserts: u64,
    /// Writes that failed (the range is simply not cached).
    pub write_errors: u64,
    /// Bytes of cache files, headers included, plus writes in progress.
    pub bytes: u64,
    /// Entries cached or being written.
    pub entries: u64,
}

/// A cached range: object key and byte range.
type RangeId = (String, u64, u64);

#[derive(Debug)]
struct Slot {
    generation: u64,
    file_len: u64,
    /// LRU position; `None` while the file is being written (not readable, not
    /// evictable, but its bytes are reserved).
    tick: Option<u64>,
}

#[derive(Debug, Default)]
struct Index {
    slots: HashMap<RangeId, Slot>,
    lru: BTreeMap<u64, RangeId>,
    next_tick: u64,
    next_generation: u64,
    bytes: u64,
}

impl Index {
    fn touch(&mut self, id: &RangeId) -> Option<u64> {
        let tick = self.next_tick;
        let slot = self.slots.get_mut(id)?;
        let old = slot.tick?;
        self.lru.remove(&old);
        slot.tick = Some(tick);
        self.lru.insert(tick, id.clone());
        self.next_tick += 1;
        Some(slot.generation)
    }

    fn remove(&mut self, id: &RangeId) -> Option<Slot> {
        let slot = self.slots.remove(id)?;
        if let Some(tick) = slot.tick {
            self.lru.remove(&tick);
        }
        self.bytes -= slot.file_len;
        Some(slot)
    }

    /// Removes the least recently used readable entry and returns its generation.
    fn evict_lru(&mut self) -> Option<u64> {
        let (_, id) = self.lru.pop_first()?;
        let slot = self.slots.remove(&id)?;
        self.bytes -= slot.file_len;
        Some(slot.generation)
    }
}

/// Bounded cache of object byte ranges in files on local disk. Share it behind an
/// `Arc`; every method takes `&self`. File I/O runs on Tokio's blocking pool.
#[derive(Debug)]
pub struct DiskRangeCache {
    dir: PathBuf,
    max_bytes: u64,
    index: Arc<Mutex<Index>>,
    hits: AtomicU64,
    misses: AtomicU64,
    damaged: AtomicU64,
    evictions: AtomicU64,
    inserts: AtomicU64,
    write_errors: AtomicU64,
}

impl DiskRangeCache {
    /// Opens (creating it if needed) the cache in `dir`, holding at most
    /// `max_bytes`, and rebuilds its index from the files there.
    ///
    /// Must be called within a Tokio runtime.
    pub async fn open(dir: impl Into<PathBuf>, max_bytes: u64) -> io::Result<Self> {
        let dir = dir.into();
        let scan_dir = dir.clone();
        let (index, evicted) = blocking(move || rebuild(&scan_dir, max_bytes)).await?;
        Ok(Self {
            dir,
            max_bytes,
            index: Arc::new(Mutex::new(index)),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            damaged: AtomicU64::new(0),
            evictions: AtomicU64::new(evicted),
            inserts: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
        })
    }

    /// The byte budget.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// The directory holding the cache files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cached bytes `range` of object `key`, if cached and intact. Never fails:
    /// anything wrong with the cache is a miss.
    pub async fn get(&self, key: &str, range: Range<u64>) -> Option<Bytes> {
        let id: RangeId = (key.to_owned(), range.start, range.end);
        let generation = self.lock().touch(&id);
        let Some(generation) = generation else {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return None;
        };
        let path = file_path(&self.dir, generation);
        let read_path = path.clone();
        let expected = (key.to_owned(), range);
        let payload = blocking(move || Ok(read_verified(&read_path, &expected.0, &expected.1)))
            .await
            .ok()
            .flatten();
        match payload {
            Some(payload) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                Some(payload)
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                self.damaged.fetch_add(1, Ordering::Relaxed);
                let removed = {
                    let mut index = self.lock();
                    let same = index
                        .slots
                        .get(&id)
                        .is_some_and(|slot| slot.generation == generation);
                    same && index.remove(&id).is_some()
                };
                if removed {
                    remove_files(vec![path]).await;
                }
                None
            }
        }
    }

    /// Caches `payload` as bytes `range` of object `key`. Returns whether it was
    /// written; a range that is already cached or being written, longer than the
    /// budget, or whose length does not match `payload`, is not, and a write error
    /// is counted in [`DiskCacheStats::write_errors`] rather than returned.
    pub async fn insert(&self, key: &str, range: Range<u64>, payload: Bytes) -> bool {
        let payload_len = payload.len() as u64;
        let file_len = (HEADER_LEN + key.len()) as u64 + payload_len;
        if key.len() > MAX_KEY_LEN
            || range.end.checked_sub(range.start) != Some(payload_len)
            || file_len > self.max_bytes
        {
            return false;
        }
        let id: RangeId = (key.to_owned(), range.start, range.end);
        let mut victims = Vec::new();
        let generation = {
            let mut index = self.lock();
            if index.slots.contains_key(&id) {
                return false;
            }
            while index.bytes + file_len > self.max_bytes {
                match index.evict_lru() {
                    Some(generation) => victims.push(file_path(&self.dir, generation)),
                    // Only writes in progress left: skip this one.
                    None => break,
                }
            }
            self.evictions
                .fetch_add(victims.len() as u64, Ordering::Relaxed);
            if index.bytes + file_len > self.max_bytes {
                None
            } else {
                let generation = index.next_generation;
                index.next_generation += 1;
                index.bytes += file_len;
                index.slots.insert(
                    id.clone(),
                    Slot {
                        generation,
                        file_len,
                        tick: None,
                    },
                );
                Some(generation)
            }
        };
        remove_files(victims).await;
        let Some(generation) = generation else {
            return false;
        };

        let path = file_path(&self.dir, generation);
        let header = encode_header(key, &range, &payload);
        let written = blocking(move || write_atomically(&path, &[&header, &payload])).await;
        let mut index = self.lock();
        if written.is_ok() {
            let tick = index.next_tick;
            index.next_tick += 1;
            if let Some(slot) = index.slots.get_mut(&id) {
                slot.tick = Some(tick);
                index.lru.insert(tick, id);
            }
            self.inserts.fetch_add(1, Ordering::Relaxed);
            true
        } else {
            index.remove(&id);
            self.write_errors.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Current counters.
    pub fn stats(&self) -> DiskCacheStats {
        let (bytes, entries) = {
            let index = self.lock();
            (index.bytes, index.slots.len() as u64)
        };
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        DiskCacheStats {
            hits: load(&self.hits),
            misses: load(&self.misses),
            damaged: load(&self.damaged),
            evictions: load(&self.evictions),
            inserts: load(&self.inserts),
            write_errors: load(&self.write_errors),
            bytes,
            entries,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        // The index is consistent after every statement that changes it.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs blocking file I/O off the async worker threads.
async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> io::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(io::Error::other)?
}

/// Deletes files, ignoring errors (a leftover file is found again at restart).
async fn remove_files(paths: Vec<PathBuf>) {
    if paths.is_empty() {
        return;
    }
    let _ = blocking(move || {
        for path in paths {
            let _ = fs::remove_file(path);
        }
        Ok(())
    })
    .await;
}

fn file_path(dir: &Path, generation: u64) -> PathBuf {
    dir.join(format!("{generation:016x}.{EXTENSION}"))
}

/// A cache file's header and key; its payload follows them.
fn encode_header(key: &str, range: &Range<u64>, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + key.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&range.start.to_le_bytes());
    out.extend_from_slice(&range.end.to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(payload).to_le_bytes());
    let header_crc = crc32c::crc32c_append(crc32c::crc32c(&out), key.as_bytes());
    out.extend_from_slice(&header_crc.to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out
}

/// A parsed and checked header.
#[derive(Debug, PartialEq, Eq)]
struct Header {
    key: String,
    range: Range<u64>,
    payload_crc: u32,
    /// Header length including the key: where the payload starts.
    len: usize,
}

impl Header {
    fn file_len(&self) -> Option<u64> {
        (self.len as u64).checked_add(self.range.end.checked_sub(self.range.start)?)
    }
}

fn le_u16(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn le_u32(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn le_u64(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Parses the header at the start of `bytes` (which must hold at least the
/// fixed header and the key); `None` if anything is off.
fn parse_header(bytes: &[u8]) -> Option<Header> {
    if bytes.get(..4)? != MAGIC || le_u16(bytes, 4)? != VERSION || le_u16(bytes, 6)? != 0 {
        return None;
    }
    let key_len = le_u32(bytes, 8)? as usize;
    if key_len > MAX_KEY_LEN {
        return None;
    }
    let start = le_u64(bytes, 12)?;
    let end = le_u64(bytes, 20)?;
    let payload_crc = le_u32(bytes, 28)?;
    let stored_header_crc = le_u32(bytes, HEADER_CRC_AT)?;
    let key = bytes.get(HEADER_LEN..HEADER_LEN + key_len)?;
    let header_crc = crc32c::crc32c_append(crc32c::crc32c(bytes.get(..HEADER_CRC_AT)?), key);
    if header_crc != stored_header_crc || end < start {
        return None;
    }
    Some(Header {
        key: std::str::from_utf8(key).ok()?.to_owned(),
        range: start..end,
        payload_crc,
        len: HEADER_LEN + key_len,
    })
}

/// Reads a cache file and returns its payload if every check passes and it holds
/// exactly `key`/`range`.
fn read_verified(path: &Path, key: &str, range: &Range<u64>) -> Option<Bytes> {
    let bytes = Bytes::from(fs::read(path).ok()?);
    let header = parse_header(&bytes)?;
    if header.key != key || header.range != *range || header.file_len()? != bytes.len() as u64 {
        return None;
    }
    let payload = bytes.slice(header.len..);
    (crc32c::crc32c(&payload) == header.payload_crc).then_some(payload)
}

fn write_atomically(path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(TMP_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        for part in parts {
            file.write_all(part)?;
        }
        drop(file);
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads just the header (and key) of a cache file, and checks the file's length.
fn scan_file(path: &Path) -> Option<(Header, u64)> {
    let mut file = fs::File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut fixed = vec![0u8; HEADER_LEN];
    file.read_exact(&mut fixed).ok()?;
    let key_len = le_u32(&fixed, 8)? as usize;
    if key_len > MAX_KEY_LEN {
        return None;
    }
    fixed.resize(HEADER_LEN + key_len, 0);
    file.read_exact(fixed.get_mut(HEADER_LEN..)?).ok()?;
    let header = parse_header(&fixed)?;
    (header.file_len()? == len).then_some((header, len))
}

/// Rebuilds the index from the files in `dir`; returns it and how many files were
/// evicted to fit the budget.
fn rebuild(dir: &Path, max_bytes: u64) -> io::Result<(Index, u64)> {
    fs::create_dir_all(dir)?;
    // (modified time, generation, id, file length)
    let mut found = Vec::new();
    let mut next_generation = 0u64;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let generation = name
            .strip_suffix(&format!(".{EXTENSION}"))
            .filter(|hex| hex.len() == 16)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok());
        if let Some(generation) = generation {
            next_generation = next_generation.max(generation.saturating_add(1));
        }
        let scanned = generation.and_then(|g| Some((g, scan_file(&path)?)));
        match scanned {
            Some((generation, (header, len))) => {
                let modified = entry.metadata().and_then(|m| m.modified()).ok();
                found.push((
                    modified,
                    generation,
                    (header.key, header.range.start, header.range.end),
                    len,
                ));
            }
            None if entry.file_type()?.is_file() => {
                // A partial write, a damaged header, or a stray file.
                let _ = fs::remove_file(&path);
            }
            None => {}
        }
    }
    // Least recently written first; the generation breaks ties.
    found.sort_by_key(|(modified, generation, ..)| (*modified, *generation));
    let mut index = Index {
        next_generation,
        ..Index::default()
    };
    for (_, generation, id, file_len) in found {
        // Two files for one range (a crash between writes): keep the newer.
        if let Some(old) = index.remove(&id) {
            let _ = fs::remove_file(file_path(dir, old.generation));
        }
        let tick = index.next_tick;
        index.next_tick += 1;
        index.bytes += file_len;
        index.lru.insert(tick, id.clone());
        index.slots.insert(
            id,
            Slot {
                generation,
                file_len,
                tick: Some(tick),
            },
        );
    }
    let mut evicted = 0;
    while index.bytes > max_bytes {
        let Some(generation) = index.evict_lru() else {
            break;
        };
        let _ = fs::remove_file(file_path(dir, generation));
        evicted += 1;
    }
    Ok((index, evicted))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(len: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; len])
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }

    const KEY: &str = "cluster/segments/01ARZ3NDEKTSV4RRFFQ69G5FAV";

    fn file_len(key: &str, payload_len: u64) -> u64 {
        (HEADER_LEN + key.len()) as u64 + payload_len
    }

    #[tokio::test]
    async fn round_trip_and_exact_range_match() {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskRangeCache::open(dir.path(), 1 << 20).await.unwrap();
        assert_eq!(cache.get(KEY, 0..10).await, None);
        assert!(cache.insert(KEY, 0..10, payload(10, 1)).await);
        assert!(
            !cache.insert(KEY, 0..10, payload(10, 1)).await,
            "already cached"
        );
        assert!(
            !cache.insert(KEY, 0..11, payload(10, 1)).await,
            "length mismatch"
        );
        assert_eq!(cache.get(KEY, 0..10).await, Some(payload(10, 1)));
        assert_eq!(cache.get(KEY, 0..9).await, None);
        assert_eq!(cache.get("other", 0..10).await, None);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.damaged), (1, 3, 0));
        assert_eq!((stats.entries, stats.bytes), (1, file_len(KEY, 10)));
        assert_eq!(files(dir.path()).len(), 1);
    }

    #[tokio::test]
    async fn evicts_least_recently_used_within_the_budget() {
        let dir = tempfile::tempdir().unwrap();
        let one = file_len(KEY, 100);
        let cache = DiskRangeCache::open(dir.path(), 3 * one).await.unwrap();
        for i in 0..3u64 {
            assert!(
                cache
                    .insert(KEY, i * 100..(i + 1) * 100, payload(100, i as u8))
                    .await
            );
        }
        // Use the oldest, so the second is now least recently used.
        assert!(cache.get(KEY, 0..100).await.is_some());
        assert!(cache.insert(KEY, 300..400, payload(100, 3)).await);
        assert!(cache.get(KEY, 100..200).await.is_none());
        for range in [0..100, 200..300, 300..400] {
            assert!(cache.get(KEY, range).await.is_some());
        }
        let stats = cache.stats();
        assert_eq!(
            (stats.evictions, stats.entries, stats.bytes),
            (1, 3, 3 * one)
        );
        assert_eq!(files(dir.path()).len(), 3);
        // Too large for the budget: refused, nothing evicted.
        assert!(!cache.insert(KEY, 0..600, payload(600, 9)).await);
        assert_eq!(cache.stats().entries, 3);
    }

    #[tokio::test]
    async fn survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let cache = DiskRangeCache::open(dir.path(), 1 << 20).await.unwrap();
            cache.insert(KEY, 0..10, payload(10, 1)).await;
            cache.insert("k2", 5..25, payload(20, 2)).await;
        }
        fs::write(dir.path().join("0000000000000009.range.tmp"), b"partial").unwrap();
        fs::write(dir.path().join("junk.txt"), b"junk").unwrap();
        let cache = DiskRangeCache::open(dir.path(), 1 << 20).await.unwrap();
        assert_eq!(cache.stats().entries, 2);
        assert_eq!(cache.get(KEY, 0..10).await, Some(payload(10, 1)));
        assert_eq!(cache.get("k2", 5..25).await, Some(payload(20, 2)));
        assert_eq!(
            files(dir.path()).len(),
            2,
            "tmp and stray files are removed"
        );
        // New files do not reuse a generation from before the restart.
        assert!(cache.insert(KEY, 10..20, payload(10, 3)).await);
        assert_eq!(cache.get(KEY, 0..10).await, Some(payload(10, 1)));
        assert_eq!(files(dir.path()).len(), 3);
    }

    #[tokio::test]
    async fn restart_with_a_smaller_budget_evicts() {
        let dir = tempfile::tempdir().unwrap();
        {
            let cache = DiskRangeCache::open(dir.path(), 1 << 20).await.unwrap();
            for i in 0..4u64 {
                cache.insert(KEY, i * 10..i * 10 + 10, payload(10, 1)).await;
            }
        }
        let cache = DiskRangeCache::open(dir.path(), 2 * file_len(KEY, 10))
            .await
            .unwrap();
        assert_eq!(cache.stats().entries, 2);
        assert_eq!(cache.stats().evictions, 2);
        assert_eq!(files(dir.path()).len(), 2);
    }

    async fn damaged_file_is_a_miss(damage: impl FnOnce(&Path)) {
        let dir = tempfile::tempdir().unwrap();
        let cache = DiskRangeCache::open(dir.path(), 1 << 20).await.unwrap();
        cache.insert(KEY, 0..100, payload(100, 7)).await;
        let file = files(dir.path()).pop().unwrap();
        damage(&file);
        assert_eq!(cache.get(KEY, 0..100).await, None);
        let stats = cache.stats();
        assert_eq!((stats.damaged, stats.entries, stats.bytes), (1, 0, 0));
        assert!(files(dir.path()).is_empty(), "the damaged file is removed");
        // It can be cached again.
        assert!(cache.insert(KEY, 0..100, payload(100, 7)).await);
        assert_eq!(cache.get(KEY, 0..100).await, Some(payload(100, 7)));
    }

    #[tokio::test]
    async fn a_flipped_payload_bit_is_a_miss() {
        damaged_file_is_a_miss(|file| {
            let mut bytes = fs::read(file).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x10;
            fs::write(file, bytes).unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn a_flipped_header_bit_is_a_miss() {
        damaged_file_is_a_miss(|file| {
            let mut bytes = fs::read(file).unwrap();
            bytes[14] ^= 0x01; // range start
            fs::write(file, bytes).unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn a_truncated_file_is_a_miss() {
        damaged_file_is_a_miss(|file| {
            let bytes = fs::read(file).unwrap();
            fs::write(file, &bytes[..bytes.len() - 1]).unwrap();
        })
        .await;
    }

    #[tokio::test]
    async fn a_missing_file_is_a_miss() {
        damaged_file_is_a_miss(|file| fs::remove_file(file).unwrap()).await;
    }

    #[tokio::test]
    async fn damaged_files_are_dropped_at_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let cache = DiskRangeCache::open(dir.path(), 1 << 20).await.unwrap();
            cache.insert(KEY, 0..100, payload(100, 7)).await;
            cache.insert(KEY, 100..200, payload(100, 8)).await;
        }
        let mut all = files(dir.path());
        let second = all.pop().unwrap();
        let first = all.pop().unwrap();
        let bytes = fs::read(&first).unwrap();
        fs::write(&first, &bytes[..bytes.len() - 10]).unwrap(); // truncated
        let mut bytes = fs::read(&second).unwrap();
        bytes[0] = b'X'; // bad magic
        fs::write(&second, bytes).unwrap();
        let cache = DiskRangeCache::open(dir.path(), 1 << 20).await.unwrap();
        assert_eq!(cache.stats().entries, 0);
        assert!(files(dir.path()).is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        /// Random inserts and reads: the index's byte count and the files on disk
        /// never exceed the budget, and every hit returns what was inserted.
        #[test]
        fn never_exceeds_the_budget(
            max_bytes in 0u64..2_000,
            ops in proptest::collection::vec((0u64..8, 0usize..600, proptest::bool::ANY), 1..40),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let cache = DiskRangeCache::open(dir.path(), max_bytes).await.unwrap();
                for (slot, len, read) in ops {
                    let range = slot * 1_000..slot * 1_000 + len as u64;
                    if read {
                        if let Some(bytes) = cache.get(KEY, range).await {
                            assert_eq!(bytes, payload(len, slot as u8));
                        }
                    } else {
                        cache.insert(KEY, range, payload(len, slot as u8)).await;
                    }
                    let on_disk: u64 = files(dir.path())
                        .iter()
                        .map(|f| fs::metadata(f).unwrap().len())
                        .sum();
                    let stats = cache.stats();
                    assert!(stats.bytes <= max_bytes, "{stats:?}");
                    assert_eq!(on_disk, stats.bytes);
                    assert_eq!(stats.damaged, 0);
                }
            });
        }
    }

    #[test]
    fn header_parsing_never_panics_on_prefixes_or_bit_flips() {
        let mut file = encode_header(KEY, &(3..13), &[5u8; 10]);
        file.extend_from_slice(&[5u8; 10]);
        assert!(parse_header(&file).is_some());
        for len in 0..file.len() {
            let _ = parse_header(&file[..len]);
        }
        for byte in 0..HEADER_LEN + KEY.len() {
            let mut damaged = file.clone();
            damaged[byte] ^= 0x80;
            assert!(
                parse_header(&damaged).is_none(),
                "flip in byte {byte} undetected"
            );
        }
    }
}
