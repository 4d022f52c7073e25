//! What the write path holds per partition in memory, and the byte budget of
//! what it accepted and has not committed.
//!
//! # Invariants
//!
//! - A partition's batches are, in offset order: committed (up to `committed`),
//!   then in flight (taken by `in_flight` flushes not yet resolved), then
//!   `returned` (from flushes that failed, waiting for the in-flight ones to
//!   resolve), then `pending`. Offsets are contiguous across all four and end
//!   at `next_offset - 1`.
//! - While `returned` is not empty the partition is *retrying*: no flush takes
//!   it, so a later flush never commits offsets past a gap. When the last
//!   in-flight flush holding it resolves, `returned` goes back in front of
//!   `pending` and the partition flushes again — the same offsets under the
//!   same epoch, in a new segment object.
//! - A writer removed from the table (`removed`) accepts nothing more; its
//!   waiters have been answered.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use bytes::Bytes;
use fjord_metadata::{ProducerState, TopicPartition};
use tokio::sync::{Notify, oneshot};

use super::LogError;
use super::produce::ahead::Ahead;
use crate::idempotence::ProducerTable;

/// One accepted batch, not yet committed.
#[derive(Debug)]
pub(crate) struct Pending {
    /// The batch as received: its `baseOffset` and `partitionLeaderEpoch` are
    /// written (`base_offset`, the writer's epoch) when it is copied into the
    /// WAL and the segment ([`crate::records::put_assigned`]).
    pub(crate) batch: Bytes,
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    pub(crate) record_count: u32,
    pub(crate) max_timestamp: i64,
    /// The WAL record holding this batch, if it was written to the WAL.
    pub(crate) wal_sequence: Option<u64>,
    /// The producer's state once this batch is appended.
    pub(crate) producer: Option<(i64, ProducerState)>,
    /// For an abort marker: the first offset of the transaction it aborts.
    pub(crate) aborts: Option<i64>,
    /// The request's waiter (on the last batch of a request).
    pub(crate) done: Option<oneshot::Sender<Result<(), LogError>>>,
    /// Its copy compressed ahead of the flush, for a large batch.
    pub(crate) ahead: Option<Arc<Ahead>>,
}

impl Pending {
    /// Answers the batch's waiter, if it has one.
    pub(crate) fn answer(&mut self, outcome: Result<(), LogError>) {
        if let Some(done) = self.done.take() {
            let _ = done.send(outcome);
        }
    }
}

/// A partition this agent leads.
#[derive(Debug)]
pub(crate) struct PartitionWriter {
    pub(crate) epoch: i32,
    /// The offset the next accepted batch gets.
    pub(crate) next_offset: i64,
    /// The high watermark as committed by this leader.
    pub(crate) committed: i64,
    /// The log start offset (moved by `DeleteRecords` through this agent).
    pub(crate) log_start: i64,
    /// The end of the last batch accepted without a WAL record. While
    /// `committed` is below it, the WAL holds no run contiguous from the high
    /// watermark past it, so nothing accepted meanwhile may be answered on
    /// the WAL's fsync (`acks=1` waits for the commit instead).
    pub(crate) unlogged_through: i64,
    pub(crate) producers: ProducerTable,
    /// The transactions open in the committed log (producer id → first
    /// offset): what the last stable offset is computed from. Moved by
    /// commits, as the committed producer states are.
    pub(crate) committed_open: BTreeMap<i64, i64>,
    /// Accepted, not taken by a flush.
    pub(crate) pending: Vec<Pending>,
    /// Taken by flushes that failed; back in `pending` once `in_flight` is 0.
    pub(crate) returned: Vec<Pending>,
    /// Flushes holding batches of this partition that are not resolved yet.
    pub(crate) in_flight: u32,
    /// Handing off: produces are refused while what was accepted commits.
    pub(crate) draining: bool,
    /// Forgotten: no longer in the table; accepts nothing.
    pub(crate) removed: bool,
}

impl PartitionWriter {
    pub(crate) fn new(
        epoch: i32,
        high_watermark: i64,
        log_start: i64,
        producers: ProducerTable,
    ) -> Self {
        let committed_open = producers.open_transactions().collect();
        Self {
            epoch,
            next_offset: high_watermark,
            committed: high_watermark,
            log_start,
            unlogged_through: high_watermark,
            producers,
            committed_open,
            pending: Vec::new(),
            returned: Vec::new(),
            in_flight: 0,
            draining: false,
            removed: false,
        }
    }

    /// The last stable offset: the first offset of the oldest transaction
    /// open in the committed log, or the high watermark.
    pub(crate) fn last_stable(&self) -> i64 {
        self.committed_open
            .values()
            .min()
            .map_or(self.committed, |first| (*first).min(self.committed))
    }

    /// Moves the committed open transactions over committed batches.
    pub(crate) fn commit_transactions(&mut self, batches: &[Pending]) {
        for pending in batches {
            if let Some((producer_id, state)) = &pending.producer {
                match state.txn_first_offset {
                    Some(first) => self.committed_open.insert(*producer_id, first),
                    None => self.committed_open.remove(producer_id),
                };
            }
        }
    }

    /// Whether everything accepted is committed.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty()
            && self.returned.is_empty()
            && self.in_flight == 0
            && self.committed == self.next_offset
    }

    /// Whether a flush may take its pending batches now.
    pub(crate) fn takeable(&self) -> bool {
        !self.removed && self.returned.is_empty() && !self.pending.is_empty()
    }
}

/// A shared handle to one partition's writer.
pub(crate) type Writer = Arc<Mutex<PartitionWriter>>;

/// Locks a writer (a poisoned lock is recovered: the state is plain data).
pub(crate) fn lock(writer: &Writer) -> MutexGuard<'_, PartitionWriter> {
    writer.lock().unwrap_or_else(|e| e.into_inner())
}

/// The partitions this agent leads.
#[derive(Debug, Default)]
pub(crate) struct Writers {
    map: RwLock<HashMap<TopicPartition, Writer>>,
}

impl Writers {
    pub(crate) fn get(&self, partition: &TopicPartition) -> Option<Writer> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(partition)
            .cloned()
    }

    /// Inserts `writer` unless one is there; returns the one in the table.
    pub(crate) fn insert(&self, partition: TopicPartition, writer: PartitionWriter) -> Writer {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .entry(partition)
            .or_insert_with(|| Arc::new(Mutex::new(writer)))
            .clone()
    }

    /// Removes the writer of `partition` if it is `writer`.
    pub(crate) fn remove_if(&self, partition: &TopicPartition, writer: &Writer) -> bool {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if map.get(partition).is_some_and(|w| Arc::ptr_eq(w, writer)) {
            map.remove(partition);
            return true;
        }
        false
    }

    pub(crate) fn all(&self) -> Vec<(TopicPartition, Writer)> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(p, w)| (*p, w.clone()))
            .collect()
    }

    pub(crate) fn partitions(&self) -> Vec<TopicPartition> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .copied()
            .collect()
    }
}

/// Bytes accepted and not yet taken by a flush (pending and returned), with a
/// limit appends wait under.
#[derive(Debug)]
pub(crate) struct Unflushed {
    bytes: AtomicUsize,
    limit: usize,
    /// Notified when bytes are released.
    room: Notify,
}

impl Unflushed {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            bytes: AtomicUsize::new(0),
            limit,
            room: Notify::new(),
        }
    }

    pub(crate) fn add(&self, bytes: usize) -> usize {
        self.bytes.fetch_add(bytes, Ordering::SeqCst) + bytes
    }

    pub(crate) fn release(&self, bytes: usize) {
        let _ = self
            .bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |b| {
                Some(b.saturating_sub(bytes))
            });
        self.room.notify_waiters();
    }

    pub(crate) fn current(&self) -> usize {
        self.bytes.load(Ordering::SeqCst)
    }

    pub(crate) fn is_full(&self) -> bool {
        self.current() >= self.limit
    }

    /// Waits until there is room (or a release happened).
    pub(crate) async fn wait_for_release(&self) {
        let released = self.room.notified();
        if !self.is_full() {
            return;
        }
        released.await;
    }
}
