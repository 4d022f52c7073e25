//! The key map of a clean: each key's digest → the last offset it was
//! written at, in a fixed memory budget (Kafka's `SkimpyOffsetMap`).
//!
//! A slot is 24 bytes: a 16-byte digest of the key and its 8-byte offset.
//! Keys themselves are never stored, so a key map of `budget / 24` slots
//! holds that many keys whatever their length. Like Kafka's, the map is
//! filled to at most [`LOAD_FACTOR`] of its slots (open addressing with
//! linear probing stays short), and a clean whose dirty part has more keys
//! maps a prefix of it: the offsets after the last batch mapped are left
//! dirty for a later clean.
//!
//! The digest is two SipHash-1-3 values of the key, each under a seed drawn
//! per clean (from the agent's id generator), so two keys collide — one
//! record dropped in favour of another key's — with probability about
//! 2^-128 per pair, and a producer cannot craft a collision without knowing
//! the seed. (Kafka uses MD5, whose collisions can be crafted.)

use std::hash::Hasher;

/// Bytes one slot takes: a 16-byte digest and an 8-byte offset.
pub const SLOT_BYTES: u64 = 24;
/// The share of slots a map fills at most (Kafka's
/// `log.cleaner.io.buffer.load.factor`).
pub const LOAD_FACTOR: f64 = 0.9;
/// The fewest slots a map has.
const MIN_SLOTS: usize = 2;
/// An empty slot's offset (offsets are never negative).
const EMPTY: i64 = -1;

/// Key digests → the last offset written, in a bounded number of slots.
#[derive(Debug)]
pub struct OffsetMap {
    digests: Vec<u128>,
    offsets: Vec<i64>,
    entries: usize,
    max_entries: usize,
    seeds: (u64, u64),
}

impl OffsetMap {
    /// A map of at most `budget_bytes` (at least two slots), no larger than
    /// `expected_keys` need at the load factor, digesting under `seed`.
    pub fn new(budget_bytes: u64, expected_keys: u64, seed: u64) -> Self {
        let budget_slots = usize::try_from(budget_bytes / SLOT_BYTES).unwrap_or(usize::MAX);
        // f64 is exact enough here: a slot count only sizes an allocation.
        let needed = ((expected_keys as f64 / LOAD_FACTOR).ceil() as usize).saturating_add(1);
        let slots = budget_slots.min(needed).max(MIN_SLOTS);
        let max_entries = ((slots as f64 * LOAD_FACTOR) as usize).clamp(1, slots - 1);
        Self {
            digests: vec![0; slots],
            offsets: vec![EMPTY; slots],
            entries: 0,
            max_entries,
            seeds: (seed, seed.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15),
        }
    }

    /// The digest of `key`.
    fn digest(&self, key: &[u8]) -> u128 {
        let half = |seed: u64| {
            // `DefaultHasher::new` is SipHash-1-3 under fixed keys; the seed
            // written first keys it per clean.
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            hasher.write_u64(seed);
            hasher.write(key);
            hasher.finish()
        };
        (u128::from(half(self.seeds.0)) << 64) | u128::from(half(self.seeds.1))
    }

    /// The slot holding `digest`, or the empty slot where it would go.
    fn slot(&self, digest: u128) -> usize {
        let slots = self.digests.len();
        // The low bits of a SipHash value are as good as any.
        let mut at = (digest as u64 % slots as u64) as usize;
        loop {
            if self.offsets[at] == EMPTY || self.digests[at] == digest {
                return at;
            }
            at = (at + 1) % slots;
        }
    }

    /// Records that `key` was written at `offset` (a later offset than any
    /// recorded for it: the map is filled in offset order). `false`, and
    /// nothing recorded, when the key is new and the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        debug_assert!(offset >= 0, "offsets are never negative");
        let digest = self.digest(key);
        let at = self.slot(digest);
        if self.offsets[at] == EMPTY {
            if self.entries >= self.max_entries {
                return false;
            }
            self.entries += 1;
            self.digests[at] = digest;
        }
        self.offsets[at] = offset;
        true
    }

    /// The last offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        let at = self.slot(self.digest(key));
        let offset = self.offsets[at];
        (offset != EMPTY).then_some(offset)
    }

    /// Keys recorded.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether no key is recorded.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// How many more new keys fit.
    pub fn room(&self) -> usize {
        self.max_entries - self.entries
    }

    /// The bytes its slots take.
    pub fn bytes(&self) -> u64 {
        self.digests.len() as u64 * SLOT_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_offset_of_each_key_is_kept() {
        let mut map = OffsetMap::new(1 << 20, 1_000, 42);
        for version in 0..5i64 {
            for key in 0..1_000i64 {
                assert!(map.put(format!("key-{key}").as_bytes(), version * 1_000 + key));
            }
        }
        assert_eq!(map.len(), 1_000);
        for key in 0..1_000i64 {
            assert_eq!(map.get(format!("key-{key}").as_bytes()), Some(4_000 + key));
        }
        assert_eq!(map.get(b"never written"), None);
        assert!(map.bytes() <= 1 << 20);
    }

    #[test]
    fn a_full_map_refuses_new_keys_but_updates_known_ones() {
        // 10 slots: 9 keys at the load factor.
        let mut map = OffsetMap::new(10 * SLOT_BYTES, 1_000_000, 7);
        assert_eq!(map.bytes(), 10 * SLOT_BYTES);
        let mut taken = 0;
        for key in 0..20i64 {
            if map.put(&key.to_be_bytes(), key) {
                taken += 1;
            }
        }
        assert_eq!(taken, 9);
        assert_eq!(map.room(), 0);
        assert!(map.put(&0i64.to_be_bytes(), 100), "a known key is updated");
        assert_eq!(map.get(&0i64.to_be_bytes()), Some(100));
        assert_eq!(map.get(&15i64.to_be_bytes()), None);
    }

    #[test]
    fn a_map_is_no_larger_than_its_keys_need() {
        let map = OffsetMap::new(128 << 20, 90, 1);
        assert_eq!(map.bytes(), 101 * SLOT_BYTES);
        assert_eq!(map.room(), 90);
        let tiny = OffsetMap::new(0, 0, 1);
        assert_eq!(tiny.room(), 1);
    }

    #[test]
    fn seeds_change_the_digest_not_the_answers() {
        let a = OffsetMap::new(1 << 10, 10, 1);
        let b = OffsetMap::new(1 << 10, 10, 2);
        assert_ne!(a.digest(b"k"), b.digest(b"k"));
        assert_eq!(a.digest(b"k"), a.digest(b"k"));
    }
}
