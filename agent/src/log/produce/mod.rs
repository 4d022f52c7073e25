//! The write path: append, flush, upload, commit, acknowledge.
//!
//! | module | job |
//! |---|---|
//! | [`append`] | validate, check the idempotent producer, assign offsets, queue `acks=1` batches in the WAL, queue every batch for the next flush |
//! | [`ahead`] | compressing a large batch on the blocking pool while it waits for its flush |
//! | [`flush`] | what a flush carries between its stages (a leaf) |
//! | [`flusher`] | the loop that takes what is pending into segments: on the interval, at `flush_bytes`, when requests wait and nothing arrives; pipelined |
//! | [`upload`] | builds a segment object (zstd chunks + footer) and PUTs it |
//! | [`commit`] | commits an uploaded segment in metadata, answers producers, re-queues what failed, truncates the WAL |
//! | [`windows`] | the clients' in-flight windows: when every waiting connection is full, the flusher starts at once |
//! | [`wal_record`] | the WAL record format and how far the WAL may be truncated |
//! | [`producers`] | forgetting idle idempotent producers (`producer.id.expiration.ms`) |
//! | [`recovery`] | commits at start-up what an earlier run accepted into the WAL |
//!
//! # Ordering invariants
//!
//! 1. Offsets are assigned under the partition's lock by a leader-local
//!    counter that starts at the committed high watermark when leadership is
//!    taken (with a new epoch). The same lock numbers and queues the batch's WAL
//!    record, so per partition WAL order is offset order.
//! 2. A segment object is uploaded **before** the metadata commit that
//!    references it. An object whose commit failed is an orphan nobody
//!    references; garbage collection removes such objects after a grace period.
//! 3. The commit checks every chunk's epoch and that it starts at the high
//!    watermark, and records the producers' idempotence state as of its last
//!    batch; `acks=all` producers are answered only after it succeeded.
//!    `acks=1` producers are answered once their batch is fsynced in the WAL.
//!    Only `acks=1` batches are written to the WAL, and only while every
//!    uncommitted batch before them in their partition is in it
//!    (`unlogged_through`); otherwise they are answered on their commit.
//! 4. Flushes are pipelined — several segments upload at once — and commit one
//!    at a time, each only after every earlier flush holding one of its
//!    partitions, so a partition's commits apply in offset order while a slow
//!    upload holds back only the flushes that share a partition with it.
//! 5. A flush that fails (the upload, or a commit that certainly did not
//!    apply) loses nothing: its batches go back to their partitions and are
//!    flushed again at the same offsets under the same epoch, in a new segment
//!    object, while this agent leads the partition; a later in-flight flush
//!    holding the same partition gives its batches back too, so nothing commits
//!    past a gap. A commit whose outcome is unknown is retried under the same
//!    segment id, which the metadata commit is idempotent on. Only a partition
//!    this agent no longer leads (fenced, deleted, out of line with metadata)
//!    fails its batches — and only that partition: the rest of the segment
//!    commits.
//! 6. The WAL is truncated only through the record before the lowest one
//!    holding a batch that is neither committed nor dropped with its partition
//!    ([`wal_record::WalTracker`]).
//! 7. At start-up the WAL's records past each partition's committed high
//!    watermark, written under the epoch metadata still records for this agent,
//!    are committed again (contiguous from the watermark) before anything else
//!    is accepted ([`recovery`]).

pub mod ahead;
pub mod append;
pub mod commit;
pub mod flush;
pub mod flusher;
pub mod producers;
pub mod recovery;
pub mod upload;
pub mod wal_record;
pub mod windows;
