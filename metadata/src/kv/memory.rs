//! The in-memory backend: optimistic concurrency over persistent (copy-on-write)
//! maps, for unit tests and simulation.
//!
//! A transaction reads an O(1) snapshot of the map taken at `begin` and records the
//! key ranges it read. Commit takes the lock, rejects the transaction with
//! [`KvError::Conflict`] if any commit after its snapshot wrote into a range it
//! read, and otherwise replays its writes. That is FoundationDB's conflict rule, so
//! the memory backend exhibits the same conflicts the production backend does.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use imbl::OrdMap;

use super::overlay::{Lookup, Op, WriteOverlay};
use super::{KeyValue, KvBackend, KvError, KvTransaction, RangeOptions, apply_add, key_after};

/// How many recent commits are kept for conflict checks; a transaction whose
/// snapshot is older than the oldest kept commit is rejected (FoundationDB's
/// "transaction too old").
const COMMIT_LOG_LEN: usize = 4096;

type Map = OrdMap<Vec<u8>, Vec<u8>>;
type KeyRange = (Vec<u8>, Vec<u8>);

#[derive(Debug, Default)]
struct Shared {
    map: Map,
    version: u64,
    /// Write ranges of recent commits, oldest first.
    log: VecDeque<(u64, Vec<KeyRange>)>,
    /// Versions at or below this are no longer in `log`.
    log_floor: u64,
}

/// An in-memory key-value store. Clones share the same data.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    shared: Arc<Mutex<Shared>>,
}

impl MemoryBackend {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl KvBackend for MemoryBackend {
    async fn begin(&self) -> Result<Box<dyn KvTransaction>, KvError> {
        let shared = self.lock();
        Ok(Box::new(MemoryTransaction {
            backend: self.clone(),
            snapshot: shared.map.clone(),
            read_version: shared.version,
            state: Mutex::default(),
        }))
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[derive(Debug, Default)]
struct TxnState {
    overlay: WriteOverlay,
    reads: Vec<KeyRange>,
    finished: bool,
}

#[derive(Debug)]
struct MemoryTransaction {
    backend: MemoryBackend,
    snapshot: Map,
    read_version: u64,
    state: Mutex<TxnState>,
}

impl MemoryTransaction {
    fn lock(&self) -> std::sync::MutexGuard<'_, TxnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn snapshot_range(&self, begin: &[u8], end: &[u8], options: RangeOptions) -> Vec<KeyValue> {
        let limit = options.limit.unwrap_or(usize::MAX);
        let range = self.snapshot.range(begin.to_vec()..end.to_vec());
        let pairs = |(key, value): (&Vec<u8>, &Vec<u8>)| KeyValue {
            key: key.clone(),
            value: value.clone(),
        };
        if options.reverse {
            range.rev().take(limit).map(pairs).collect()
        } else {
            range.take(limit).map(pairs).collect()
        }
    }
}

fn overlaps(a: &KeyRange, b: &KeyRange) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[async_trait]
impl KvTransaction for MemoryTransaction {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let mut state = self.lock();
        state.reads.push((key.to_vec(), key_after(key)));
        Ok(match state.overlay.lookup(key) {
            Lookup::Known(value) => value,
            Lookup::Snapshot => self.snapshot.get(key).cloned(),
            Lookup::AddToSnapshot(delta) => {
                Some(apply_add(self.snapshot.get(key).map(Vec::as_slice), delta))
            }
        })
    }

    async fn get_range(
        &self,
        begin: &[u8],
        end: &[u8],
        options: RangeOptions,
    ) -> Result<Vec<KeyValue>, KvError> {
        let mut state = self.lock();
        let result = if state.overlay.touches(begin, end) {
            let whole = self.snapshot_range(begin, end, RangeOptions::default());
            state.overlay.merge_range(whole, begin, end, options)
        } else {
            self.snapshot_range(begin, end, options)
        };
        // Only the part of the range that decided the answer is a read conflict.
        let hit_limit = options.limit.is_some_and(|limit| result.len() >= limit);
        let read = match (hit_limit, options.reverse, result.last()) {
            (true, false, Some(last)) => (begin.to_vec(), key_after(&last.key)),
            (true, true, Some(last)) => (last.key.clone(), end.to_vec()),
            _ => (begin.to_vec(), end.to_vec()),
        };
        state.reads.push(read);
        Ok(result)
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        self.lock().overlay.set(key, value);
    }

    fn clear(&self, key: &[u8]) {
        self.lock().overlay.clear(key);
    }

    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.lock().overlay.clear_range(begin, end);
    }

    fn atomic_add(&self, key: &[u8], delta: i64) {
        self.lock().overlay.add(key, delta);
    }

    async fn commit(&self) -> Result<(), KvError> {
        let mut state = self.lock();
        if state.finished {
            return Err(KvError::Backend("transaction already committed".into()));
        }
        state.finished = true;
        if state.overlay.is_empty() {
            return Ok(());
        }
        let mut shared = self.backend.lock();
        if self.read_version < shared.log_floor {
            return Err(KvError::Conflict);
        }
        let conflicted = shared
            .log
            .iter()
            .filter(|(version, _)| *version > self.read_version)
            .flat_map(|(_, writes)| writes.iter())
            .any(|written| state.reads.iter().any(|read| overlaps(read, written)));
        if conflicted {
            return Err(KvError::Conflict);
        }
        let mut written = Vec::with_capacity(state.overlay.ops().len());
        for op in state.overlay.ops() {
            written.push(op.written_range());
            match op {
                Op::Set(key, value) => {
                    shared.map.insert(key.clone(), value.clone());
                }
                Op::Clear(key) => {
                    shared.map.remove(key);
                }
                Op::ClearRange(begin, end) => {
                    let doomed: Vec<Vec<u8>> = shared
                        .map
                        .range(begin.clone()..end.clone())
                        .map(|(key, _)| key.clone())
                        .collect();
                    for key in doomed {
                        shared.map.remove(&key);
                    }
                }
                Op::Add(key, delta) => {
                    let value = apply_add(shared.map.get(key).map(Vec::as_slice), *delta);
                    shared.map.insert(key.clone(), value);
                }
            }
        }
        shared.version += 1;
        let version = shared.version;
        shared.log.push_back((version, written));
        while shared.log.len() > COMMIT_LOG_LEN {
            if let Some((dropped, _)) = shared.log.pop_front() {
                shared.log_floor = dropped;
            }
        }
        Ok(())
    }
}
