//! The in-memory tail cache: record batches this agent just committed, so that
//! consumers reading at the tail of a partition are served without a GET.
//!
//! Entries are `(base offset ..= last offset, batches)` per partition. The cache
//! is bounded by the total length of the cached batches; when an insert would
//! exceed the budget, the oldest *inserted* entries go first (FIFO). For a tail
//! cache that is also the least recently useful data: consumers at the tail read
//! what was committed last, and a lagging consumer that falls off the end is served
//! from the disk range cache or the bucket instead.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use uuid::Uuid;

/// A topic partition, as the caches key it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// The topic's id.
    pub topic_id: Uuid,
    /// The partition index.
    pub partition: i32,
}

impl TopicPartition {
    /// The partition `partition` of topic `topic_id`.
    pub fn new(topic_id: Uuid, partition: i32) -> Self {
        Self {
            topic_id,
            partition,
        }
    }
}

/// What a [`MemoryTailCache::read`] found: consecutive cached entries of one
/// partition, the first of which holds the requested offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailRead {
    /// Base offset of the first entry (at or before the requested offset: the
    /// caller skips the batches before it, or returns them as Kafka allows).
    pub base_offset: i64,
    /// Last offset held by the last entry.
    pub last_offset: i64,
    /// The entries' record batches, in offset order, exactly as inserted.
    pub batches: Vec<Bytes>,
}

impl TailRead {
    /// Total length of the returned batches.
    pub fn len_bytes(&self) -> u64 {
        self.batches.iter().map(|b| b.len() as u64).sum()
    }
}

/// Counters of a [`MemoryTailCache`], copied by [`MemoryTailCache::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TailCacheStats {
    /// Reads that found the offset.
    pub hits: u64,
    /// Reads that did not.
    pub misses: u64,
    /// Entries dropped to stay within the byte budget.
    pub evictions: u64,
    /// Entries accepted by `insert`.
    pub inserts: u64,
    /// Bytes currently cached.
    pub bytes: u64,
    /// Entries currently cached.
    pub entries: u64,
}

/// Bounded in-memory cache of recently committed record batches per partition.
///
/// Cheap to share behind an `Arc`; every method takes `&self`. The lock is never
/// held across an `.await` (there are none) and operations are `O(log n)` in the
/// number of cached entries, plus the batches returned by a read.
#[derive(Debug)]
pub struct MemoryTailCache {
    max_bytes: u64,
    inner: Mutex<Inner>,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    inserts: AtomicU64,
    bytes: AtomicU64,
    entries: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    partitions: HashMap<TopicPartition, BTreeMap<i64, Entry>>,
    /// Insertion sequence number → entry, oldest first: the eviction order.
    order: BTreeMap<u64, (TopicPartition, i64)>,
    next_seq: u64,
    bytes: u64,
}

#[derive(Debug)]
struct Entry {
    last_offset: i64,
    batches: Bytes,
    seq: u64,
}

impl MemoryTailCache {
    /// A cache holding at most `max_bytes` of batches.
    pub fn new(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            inner: Mutex::new(Inner::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            evictions: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            entries: AtomicU64::new(0),
        }
    }

    /// The byte budget.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Caches the batches holding offsets `base_offset..=last_offset` of `tp`.
    ///
    /// Entries of `tp` overlapping that range are replaced (the newest commit
    /// wins). Returns `false`, caching nothing, if the range is empty
    /// (`last_offset < base_offset`) or the batches alone exceed the budget.
    pub fn insert(
        &self,
        tp: TopicPartition,
        base_offset: i64,
        last_offset: i64,
        batches: Bytes,
    ) -> bool {
        let len = batches.len() as u64;
        if last_offset < base_offset || len > self.max_bytes {
            return false;
        }
        let mut inner = self.lock();
        inner.remove_overlapping(tp, base_offset, last_offset);
        let mut evicted = 0u64;
        while inner.bytes + len > self.max_bytes {
            if !inner.evict_oldest() {
                break;
            }
            evicted += 1;
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.order.insert(seq, (tp, base_offset));
        inner.partitions.entry(tp).or_default().insert(
            base_offset,
            Entry {
                last_offset,
                batches,
                seq,
            },
        );
        inner.bytes += len;
        self.evictions.fetch_add(evicted, Ordering::Relaxed);
        self.inserts.fetch_add(1, Ordering::Relaxed);
        self.publish(&inner);
        true
    }

    /// The cached entries of `tp` from the one holding `offset` on, as long as they
    /// are contiguous (each starts right after the previous one ends) and their
    /// total length stays within `max_bytes`. The first entry is always returned,
    /// even if it alone is longer than `max_bytes` (as Kafka returns at least one
    /// batch). `None` if no cached entry holds `offset`.
    pub fn read(&self, tp: TopicPartition, offset: i64, max_bytes: u64) -> Option<TailRead> {
        let inner = self.lock();
        let found = inner.partitions.get(&tp).and_then(|entries| {
            let (&base, first) = entries.range(..=offset).next_back()?;
            if first.last_offset < offset {
                return None;
            }
            let mut read = TailRead {
                base_offset: base,
                last_offset: first.last_offset,
                batches: vec![first.batches.clone()],
            };
            let mut total = first.batches.len() as u64;
            for (&next_base, next) in entries.range(base.saturating_add(1)..) {
                let contiguous = read.last_offset.checked_add(1) == Some(next_base);
                let next_len = next.batches.len() as u64;
                if !contiguous || total + next_len > max_bytes {
                    break;
                }
                total += next_len;
                read.last_offset = next.last_offset;
                read.batches.push(next.batches.clone());
            }
            Some(read)
        });
        drop(inner);
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Drops everything cached for `tp` (this agent lost its leadership, or the
    /// partition was truncated or deleted).
    pub fn invalidate_partition(&self, tp: TopicPartition) {
        let mut inner = self.lock();
        if let Some(entries) = inner.partitions.remove(&tp) {
            for entry in entries.values() {
                inner.order.remove(&entry.seq);
                inner.bytes -= entry.batches.len() as u64;
            }
        }
        self.publish(&inner);
    }

    /// Current counters; lock-free.
    pub fn stats(&self) -> TailCacheStats {
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        TailCacheStats {
            hits: load(&self.hits),
            misses: load(&self.misses),
            evictions: load(&self.evictions),
            inserts: load(&self.inserts),
            bytes: load(&self.bytes),
            entries: load(&self.entries),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation leaves `Inner` consistent before anything can panic, so a
        // poisoned lock still guards valid state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn publish(&self, inner: &Inner) {
        self.bytes.store(inner.bytes, Ordering::Relaxed);
        self.entries
            .store(inner.order.len() as u64, Ordering::Relaxed);
    }
}

impl Inner {
    /// Removes the oldest entry; `false` if the cache is empty.
    fn evict_oldest(&mut self) -> bool {
        let Some((_, (tp, base))) = self.order.pop_first() else {
            return false;
        };
        self.remove_entry(tp, base);
        true
    }

    /// Removes entry `base` of `tp` from `partitions` (not from `order`).
    fn remove_entry(&mut self, tp: TopicPartition, base: i64) -> Option<Entry> {
        let entries = self.partitions.get_mut(&tp)?;
        let entry = entries.remove(&base)?;
        if entries.is_empty() {
            self.partitions.remove(&tp);
        }
        self.bytes -= entry.batches.len() as u64;
        Some(entry)
    }

    fn remove_overlapping(&mut self, tp: TopicPartition, base: i64, last: i64) {
        let Some(entries) = self.partitions.get(&tp) else {
            return;
        };
        // An entry overlaps if it starts at or before `last` and ends at or after
        // `base`. Entries of one partition never overlap each other, so only the
        // one starting before `base` can reach into the range from the left.
        let overlapping: Vec<i64> = entries
            .range(..=last)
            .rev()
            .take_while(|(_, entry)| entry.last_offset >= base)
            .map(|(&start, _)| start)
            .collect();
        for start in overlapping {
            if let Some(entry) = self.remove_entry(tp, start) {
                self.order.remove(&entry.seq);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn tp(partition: i32) -> TopicPartition {
        TopicPartition::new(Uuid::from_u128(1), partition)
    }

    fn batch(len: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; len])
    }

    #[test]
    fn reads_return_the_entries_covering_the_offset_and_what_follows() {
        let cache = MemoryTailCache::new(1_000);
        assert!(cache.insert(tp(0), 0, 9, batch(10, 1)));
        assert!(cache.insert(tp(0), 10, 19, batch(10, 2)));
        assert!(cache.insert(tp(0), 25, 29, batch(10, 3))); // gap 20..25

        let read = cache.read(tp(0), 5, 1_000).unwrap();
        assert_eq!((read.base_offset, read.last_offset), (0, 19));
        assert_eq!(read.batches, vec![batch(10, 1), batch(10, 2)]);

        let read = cache.read(tp(0), 19, 1_000).unwrap();
        assert_eq!((read.base_offset, read.last_offset), (10, 19));
        assert_eq!(read.batches, vec![batch(10, 2)]);

        assert_eq!(cache.read(tp(0), 22, 1_000), None); // in the gap
        assert_eq!(cache.read(tp(0), 30, 1_000), None); // past the end
        assert_eq!(cache.read(tp(0), -1, 1_000), None); // before the start
        assert_eq!(cache.read(tp(1), 5, 1_000), None); // other partition
        let read = cache.read(tp(0), 27, 1_000).unwrap();
        assert_eq!(read.batches, vec![batch(10, 3)]);

        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses), (3, 4));
        assert_eq!((stats.bytes, stats.entries, stats.inserts), (30, 3, 3));
    }

    #[test]
    fn max_bytes_limits_a_read_but_the_first_entry_always_comes_back() {
        let cache = MemoryTailCache::new(1_000);
        cache.insert(tp(0), 0, 0, batch(100, 1));
        cache.insert(tp(0), 1, 1, batch(100, 2));
        cache.insert(tp(0), 2, 2, batch(100, 3));
        assert_eq!(cache.read(tp(0), 0, 1).unwrap().batches.len(), 1);
        assert_eq!(cache.read(tp(0), 0, 200).unwrap().batches.len(), 2);
        let read = cache.read(tp(0), 0, 299).unwrap();
        assert_eq!((read.last_offset, read.len_bytes()), (1, 200));
        assert_eq!(cache.read(tp(0), 0, 300).unwrap().last_offset, 2);
    }

    #[test]
    fn the_oldest_insert_is_evicted_first() {
        let cache = MemoryTailCache::new(30);
        cache.insert(tp(0), 0, 0, batch(10, 0));
        cache.insert(tp(1), 0, 0, batch(10, 1));
        cache.insert(tp(0), 1, 1, batch(10, 2));
        cache.insert(tp(1), 1, 1, batch(15, 3)); // evicts tp0@0 and tp1@0
        assert_eq!(cache.read(tp(0), 0, 100), None);
        assert_eq!(cache.read(tp(1), 0, 100), None);
        assert!(cache.read(tp(0), 1, 100).is_some());
        assert!(cache.read(tp(1), 1, 100).is_some());
        let stats = cache.stats();
        assert_eq!((stats.evictions, stats.bytes, stats.entries), (2, 25, 2));
    }

    #[test]
    fn oversized_and_empty_inserts_are_refused() {
        let cache = MemoryTailCache::new(10);
        assert!(!cache.insert(tp(0), 0, 0, batch(11, 0)));
        assert!(!cache.insert(tp(0), 5, 4, batch(1, 0)));
        assert_eq!(cache.stats().entries, 0);
    }

    #[test]
    fn overlapping_inserts_replace_older_entries() {
        let cache = MemoryTailCache::new(1_000);
        cache.insert(tp(0), 0, 9, batch(10, 1));
        cache.insert(tp(0), 10, 19, batch(10, 2));
        cache.insert(tp(0), 20, 29, batch(10, 3));
        cache.insert(tp(0), 5, 14, batch(7, 9)); // overlaps the first two
        assert_eq!(cache.read(tp(0), 0, 1_000), None);
        let read = cache.read(tp(0), 14, 1_000).unwrap();
        assert_eq!((read.base_offset, read.last_offset), (5, 14));
        assert_eq!(read.batches, vec![batch(7, 9)]); // 15..20 is now a gap
        assert_eq!(cache.stats().bytes, 17);
    }

    #[test]
    fn invalidate_drops_one_partition_only() {
        let cache = MemoryTailCache::new(1_000);
        cache.insert(tp(0), 0, 9, batch(10, 1));
        cache.insert(tp(0), 10, 19, batch(10, 2));
        cache.insert(tp(1), 0, 9, batch(10, 3));
        cache.invalidate_partition(tp(0));
        assert_eq!(cache.read(tp(0), 0, 1_000), None);
        assert!(cache.read(tp(1), 0, 1_000).is_some());
        assert_eq!((cache.stats().bytes, cache.stats().entries), (10, 1));
        // Eviction after an invalidation skips nothing and double-frees nothing.
        cache.insert(tp(1), 10, 10, batch(995, 4));
        assert_eq!((cache.stats().bytes, cache.stats().entries), (995, 1));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert {
            partition: i32,
            base: i64,
            count: i64,
            len: usize,
        },
        Invalidate(i32),
        Read {
            partition: i32,
            offset: i64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            6 => (0..3i32, 0..200i64, 1..20i64, 0..120usize)
                .prop_map(|(partition, base, count, len)| Op::Insert { partition, base, count, len }),
            1 => (0..3i32).prop_map(Op::Invalidate),
            3 => (0..3i32, 0..220i64).prop_map(|(partition, offset)| Op::Read { partition, offset }),
        ]
    }

    proptest! {
        /// Against a simple model (a list of live entries in insertion order): the
        /// byte budget is never exceeded, the counted bytes match the entries,
        /// and a read returns exactly the model's entry covering the offset.
        #[test]
        fn never_exceeds_the_budget_and_matches_a_model(
            max_bytes in 0u64..400,
            ops in proptest::collection::vec(op(), 1..200),
        ) {
            let cache = MemoryTailCache::new(max_bytes);
            // (partition, base, last, bytes), oldest first.
            let mut model: Vec<(i32, i64, i64, Bytes)> = Vec::new();
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Insert { partition, base, count, len } => {
                        let last = base + count - 1;
                        let bytes = batch(len, i as u8);
                        let accepted = cache.insert(tp(partition), base, last, bytes.clone());
                        prop_assert_eq!(accepted, len as u64 <= max_bytes);
                        if accepted {
                            model.retain(|(p, b, l, _)| *p != partition || *l < base || *b > last);
                            let mut total: u64 = model.iter().map(|e| e.3.len() as u64).sum();
                            while total + len as u64 > max_bytes {
                                total -= model.remove(0).3.len() as u64;
                            }
                            model.push((partition, base, last, bytes));
                        }
                    }
                    Op::Invalidate(partition) => {
                        cache.invalidate_partition(tp(partition));
                        model.retain(|(p, ..)| *p != partition);
                    }
                    Op::Read { partition, offset } => {
                        let expected = model
                            .iter()
                            .find(|(p, b, l, _)| *p == partition && *b <= offset && offset <= *l);
                        let read = cache.read(tp(partition), offset, 0);
                        match (expected, read) {
                            (None, None) => {}
                            (Some((_, b, l, bytes)), Some(read)) => {
                                prop_assert_eq!((read.base_offset, read.last_offset), (*b, *l));
                                prop_assert_eq!(&read.batches, &vec![bytes.clone()]);
                            }
                            (expected, read) => prop_assert!(false, "model {expected:?}, cache {read:?}"),
                        }
                    }
                }
                let stats = cache.stats();
                let model_bytes: u64 = model.iter().map(|e| e.3.len() as u64).sum();
                prop_assert!(stats.bytes <= max_bytes);
                prop_assert_eq!(stats.bytes, model_bytes);
                prop_assert_eq!(stats.entries, model.len() as u64);
            }
        }
    }
}
