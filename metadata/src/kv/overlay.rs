//! Read-your-writes for backends that buffer writes until commit (memory, SQLite).
//!
//! The overlay records each write in order (replayed at commit) and keeps a view of
//! their net effect, so reads inside the transaction see the transaction's own
//! writes merged over the backend's snapshot.

use std::collections::BTreeMap;

use super::{KeyValue, RangeOptions, apply_add};

/// One buffered write, in the order the transaction made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Op {
    Set(Vec<u8>, Vec<u8>),
    Clear(Vec<u8>),
    ClearRange(Vec<u8>, Vec<u8>),
    Add(Vec<u8>, i64),
}

impl Op {
    /// The key range this write touches, `[begin, end)`.
    pub(crate) fn written_range(&self) -> (Vec<u8>, Vec<u8>) {
        match self {
            Op::Set(key, _) | Op::Clear(key) | Op::Add(key, _) => {
                (key.clone(), super::key_after(key))
            }
            Op::ClearRange(begin, end) => (begin.clone(), end.clone()),
        }
    }
}

#[derive(Debug, Clone)]
enum Pending {
    Set(Vec<u8>),
    Cleared,
    /// Add to whatever the snapshot holds.
    Add(i64),
}

/// How a point read resolves against the overlay.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// The transaction's own writes decide the value.
    Known(Option<Vec<u8>>),
    /// Read the snapshot.
    Snapshot,
    /// Read the snapshot and add this delta.
    AddToSnapshot(i64),
}

#[derive(Debug, Default)]
pub(crate) struct WriteOverlay {
    entries: BTreeMap<Vec<u8>, Pending>,
    cleared: Vec<(Vec<u8>, Vec<u8>)>,
    ops: Vec<Op>,
}

impl WriteOverlay {
    pub(crate) fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The buffered writes, in order, consuming the overlay.
    pub(crate) fn into_ops(self) -> Vec<Op> {
        self.ops
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn in_cleared_range(&self, key: &[u8]) -> bool {
        self.cleared
            .iter()
            .any(|(begin, end)| begin.as_slice() <= key && key < end.as_slice())
    }

    pub(crate) fn set(&mut self, key: &[u8], value: &[u8]) {
        self.entries
            .insert(key.to_vec(), Pending::Set(value.to_vec()));
        self.ops.push(Op::Set(key.to_vec(), value.to_vec()));
    }

    pub(crate) fn clear(&mut self, key: &[u8]) {
        self.entries.insert(key.to_vec(), Pending::Cleared);
        self.ops.push(Op::Clear(key.to_vec()));
    }

    pub(crate) fn clear_range(&mut self, begin: &[u8], end: &[u8]) {
        let doomed: Vec<Vec<u8>> = self
            .entries
            .range(begin.to_vec()..end.to_vec())
            .map(|(key, _)| key.clone())
            .collect();
        for key in doomed {
            self.entries.remove(&key);
        }
        self.cleared.push((begin.to_vec(), end.to_vec()));
        self.ops.push(Op::ClearRange(begin.to_vec(), end.to_vec()));
    }

    pub(crate) fn add(&mut self, key: &[u8], delta: i64) {
        let next = match self.entries.get(key) {
            Some(Pending::Set(value)) => Pending::Set(apply_add(Some(value), delta)),
            Some(Pending::Cleared) => Pending::Set(apply_add(None, delta)),
            Some(Pending::Add(earlier)) => Pending::Add(earlier.wrapping_add(delta)),
            None if self.in_cleared_range(key) => Pending::Set(apply_add(None, delta)),
            None => Pending::Add(delta),
        };
        self.entries.insert(key.to_vec(), next);
        self.ops.push(Op::Add(key.to_vec(), delta));
    }

    pub(crate) fn lookup(&self, key: &[u8]) -> Lookup {
        match self.entries.get(key) {
            Some(Pending::Set(value)) => Lookup::Known(Some(value.clone())),
            Some(Pending::Cleared) => Lookup::Known(None),
            Some(Pending::Add(delta)) => Lookup::AddToSnapshot(*delta),
            None if self.in_cleared_range(key) => Lookup::Known(None),
            None => Lookup::Snapshot,
        }
    }

    /// Whether any buffered write falls in `[begin, end)`. When none does, a range
    /// read goes straight to the snapshot with its limit.
    pub(crate) fn touches(&self, begin: &[u8], end: &[u8]) -> bool {
        self.entries
            .range(begin.to_vec()..end.to_vec())
            .next()
            .is_some()
            || self
                .cleared
                .iter()
                .any(|(b, e)| b.as_slice() < end && begin < e.as_slice())
    }

    /// Merges the snapshot's whole `[begin, end)` with the buffered writes, then
    /// orders and limits the result.
    pub(crate) fn merge_range(
        &self,
        snapshot_range: Vec<KeyValue>,
        begin: &[u8],
        end: &[u8],
        options: RangeOptions,
    ) -> Vec<KeyValue> {
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = snapshot_range
            .into_iter()
            .filter(|pair| !self.in_cleared_range(&pair.key))
            .map(|pair| (pair.key, pair.value))
            .collect();
        for (key, pending) in self.entries.range(begin.to_vec()..end.to_vec()) {
            match pending {
                Pending::Set(value) => {
                    merged.insert(key.clone(), value.clone());
                }
                Pending::Cleared => {
                    merged.remove(key);
                }
                Pending::Add(delta) => {
                    let value = apply_add(merged.get(key).map(Vec::as_slice), *delta);
                    merged.insert(key.clone(), value);
                }
            }
        }
        let limit = options.limit.unwrap_or(usize::MAX);
        let pairs = merged
            .into_iter()
            .map(|(key, value)| KeyValue { key, value });
        if options.reverse {
            pairs.rev().take(limit).collect()
        } else {
            pairs.take(limit).collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.as_bytes().to_vec(),
            value: value.as_bytes().to_vec(),
        }
    }

    #[test]
    fn merge_applies_writes_in_order() {
        let mut overlay = WriteOverlay::default();
        overlay.set(b"b", b"new-b");
        overlay.clear_range(b"c", b"e");
        overlay.set(b"d", b"new-d");
        overlay.clear(b"a");
        let snapshot = vec![kv("a", "1"), kv("c", "3"), kv("d", "4"), kv("f", "6")];
        let all = overlay.merge_range(snapshot.clone(), b"a", b"z", RangeOptions::default());
        assert_eq!(all, vec![kv("b", "new-b"), kv("d", "new-d"), kv("f", "6")]);
        let last = overlay.merge_range(snapshot, b"a", b"z", RangeOptions::last(2));
        assert_eq!(last, vec![kv("f", "6"), kv("d", "new-d")]);
        assert_eq!(overlay.lookup(b"c"), Lookup::Known(None));
        assert_eq!(overlay.lookup(b"f"), Lookup::Snapshot);
        assert!(overlay.touches(b"c", b"cc"));
        assert!(!overlay.touches(b"e", b"f"));
    }

    #[test]
    fn add_composes_with_set_clear_and_itself() {
        let mut overlay = WriteOverlay::default();
        overlay.add(b"n", 2);
        overlay.add(b"n", 3);
        assert_eq!(overlay.lookup(b"n"), Lookup::AddToSnapshot(5));
        overlay.clear_range(b"m", b"o");
        overlay.add(b"n", 7);
        assert_eq!(
            overlay.lookup(b"n"),
            Lookup::Known(Some(7i64.to_le_bytes().to_vec()))
        );
        assert_eq!(overlay.ops().len(), 4);
    }
}
