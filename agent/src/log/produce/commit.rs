//! Committing an uploaded segment and answering its producers.
//!
//! Each partition of a flush ends in one of three outcomes:
//!
//! - **committed**: the high watermark moves, producers are answered, the
//!   partition's WAL records are resolved;
//! - **retried**: the upload failed, or this partition is already retrying an
//!   earlier failed flush: its batches go back to the partition (see
//!   [`crate::log::state`]) and flush again, same offsets, same epoch, new
//!   object; producers keep waiting;
//! - **failed**: this agent no longer leads the partition (fenced by a newer
//!   epoch, the topic deleted, metadata out of line with what this leader
//!   holds), or the metadata store answered something retrying cannot fix: its
//!   producers are answered with the error and the partition is forgotten.
//!   Only that partition fails; the rest of the segment commits.
//!
//! A commit that fails with a retryable or *maybe committed* error is retried
//! under the same segment id, for as long as it takes: the metadata commit is
//! idempotent on the segment id (a commit that did apply is found and reported
//! as replayed), so retrying can never apply a segment twice, and giving up
//! could answer an error for data that did commit — or, re-flushed in a new
//! object, commit it twice.

use std::collections::HashMap;
use std::time::Duration;

use fjord_metadata::{ErrorKind, MetadataError, TopicPartition};

use super::flush::{Flush, Part, Uploaded};
use crate::log::state::{self, Pending};
use crate::log::{LogError, PartitionLogs, tail_key};

/// How a partition of a flush ended.
#[derive(Debug, Clone)]
enum Outcome {
    Committed,
    Retry,
    Failed(LogError),
}

/// The longest wait between two attempts of a commit whose outcome is unknown.
const MAX_COMMIT_BACKOFF: Duration = Duration::from_secs(1);

impl PartitionLogs {
    /// Partitions of `flush` whose outcome is already decided by this agent's
    /// state: forgotten or re-taken (failed), or retrying an earlier flush.
    fn classify_by_state(&self, flush: &Flush, outcomes: &mut HashMap<TopicPartition, Outcome>) {
        for part in &flush.parts {
            if outcomes.contains_key(&part.partition) {
                continue;
            }
            let decided = match self.writers.get(&part.partition) {
                None => Some(Outcome::Failed(LogError::NotLeader(part.partition))),
                Some(writer) => {
                    let writer = state::lock(&writer);
                    if writer.epoch != part.epoch || writer.removed {
                        Some(Outcome::Failed(LogError::NotLeader(part.partition)))
                    } else if !writer.returned.is_empty() {
                        Some(Outcome::Retry)
                    } else {
                        None
                    }
                }
            };
            if let Some(outcome) = decided {
                outcomes.insert(part.partition, outcome);
            }
        }
        if self.is_stopped() {
            for part in &flush.parts {
                outcomes
                    .entry(part.partition)
                    .or_insert(Outcome::Failed(LogError::Stopped));
            }
        }
    }

    /// Commits an uploaded segment (what is still valid of it), then answers,
    /// re-queues or fails each partition of `flush` (see the module docs).
    pub(crate) async fn commit_and_answer(
        &self,
        flush: Flush,
        uploaded: Result<Uploaded, LogError>,
    ) {
        let mut outcomes: HashMap<TopicPartition, Outcome> = HashMap::new();
        self.classify_by_state(&flush, &mut outcomes);
        let mut tail = Vec::new();
        match uploaded {
            Err(error) => {
                tracing::warn!(%error, partitions = flush.parts.len(), "segment upload failed; its batches flush again");
                for part in &flush.parts {
                    outcomes.entry(part.partition).or_insert(Outcome::Retry);
                }
            }
            Ok(uploaded) => {
                self.commit_segment(&flush, uploaded.commit, &mut outcomes)
                    .await;
                tail = uploaded.tail;
            }
        }
        // The high watermarks move first, then the tail cache is filled (a read
        // from memory never returns more than the high watermark it reports),
        // and only then are producers answered and long-polling reads woken:
        // a read woken by this commit finds what it waits for in memory rather
        // than fetching it from the bucket.
        let mut committed = HashMap::new();
        for part in flush.parts {
            let outcome = outcomes
                .remove(&part.partition)
                .unwrap_or(Outcome::Failed(LogError::Stopped));
            let partition = part.partition;
            if let Some(batches) = self.settle(part, outcome) {
                committed.insert(partition, batches);
            }
        }
        for (partition, first, last, batches) in tail {
            if committed.contains_key(&partition) {
                self.tail.insert(tail_key(partition), first, last, batches);
            }
        }
        for (partition, batches) in committed {
            self.finish(batches, &Ok(()));
            self.signals.notify(partition);
        }
        self.changes.send_modify(|n| *n += 1);
        self.truncate_wal().await;
    }

    /// Commits `commit` for the partitions still undecided in `outcomes`,
    /// deciding each of them.
    async fn commit_segment(
        &self,
        flush: &Flush,
        mut commit: fjord_metadata::SegmentCommit,
        outcomes: &mut HashMap<TopicPartition, Outcome>,
    ) {
        let mut attempt: u32 = 0;
        loop {
            commit
                .chunks
                .retain(|c| !outcomes.contains_key(&c.partition));
            commit
                .producers
                .retain(|p| !outcomes.contains_key(&p.partition));
            if commit.chunks.is_empty() {
                return;
            }
            let error = match self.store.commit_segment(&commit).await {
                Ok(_) => {
                    for chunk in &commit.chunks {
                        outcomes.insert(chunk.partition, Outcome::Committed);
                    }
                    return;
                }
                Err(error) => error,
            };
            match &error {
                MetadataError::Fenced { partition, .. }
                | MetadataError::OffsetMismatch { partition, .. } => {
                    tracing::warn!(%partition, %error, segment = %commit.segment_id, "left out of a segment commit");
                    outcomes.insert(*partition, Outcome::Failed(LogError::NotLeader(*partition)));
                }
                MetadataError::SegmentTooOld { .. } => {
                    // As a failed upload: the batches go in a new segment (the
                    // orphan sweep takes this object).
                    tracing::warn!(%error, "segment refused as too old; its batches flush again");
                    for chunk in &commit.chunks {
                        outcomes.insert(chunk.partition, Outcome::Retry);
                    }
                    return;
                }
                MetadataError::UnknownPartition { partition } => {
                    tracing::warn!(%partition, segment = %commit.segment_id, "partition deleted while its flush was in flight");
                    outcomes.insert(
                        *partition,
                        Outcome::Failed(LogError::UnknownPartition(*partition)),
                    );
                }
                _ if matches!(
                    error.kind(),
                    ErrorKind::Retryable | ErrorKind::MaybeCommitted
                ) =>
                {
                    attempt = attempt.saturating_add(1);
                    tracing::warn!(%error, attempt, segment = %commit.segment_id, "segment commit outcome unknown or refused for now; retrying under the same segment id");
                    let backoff = Duration::from_millis(20)
                        .saturating_mul(attempt)
                        .min(MAX_COMMIT_BACKOFF);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.stopped.cancelled() => {}
                    }
                    // Partitions forgotten meanwhile (the balancer saw them
                    // move) leave the commit.
                    self.classify_by_state(flush, outcomes);
                }
                _ => {
                    tracing::error!(%error, segment = %commit.segment_id, "segment commit failed for good");
                    for chunk in &commit.chunks {
                        outcomes.insert(
                            chunk.partition,
                            Outcome::Failed(LogError::Metadata(error.clone())),
                        );
                    }
                    return;
                }
            }
        }
    }

    /// Applies a partition's outcome to its state and its producers. A
    /// committed partition's batches are returned, to be answered (and its
    /// readers woken) once the tail cache holds them.
    fn settle(&self, part: Part, outcome: Outcome) -> Option<Vec<Pending>> {
        let Part {
            partition,
            epoch,
            batches,
        } = part;
        let writer = self
            .writers
            .get(&partition)
            .filter(|w| state::lock(w).epoch == epoch);
        match (outcome, writer) {
            (Outcome::Committed, writer) => {
                if let (Some(writer), Some(last)) = (writer, batches.last()) {
                    let mut writer = state::lock(&writer);
                    writer.commit_transactions(&batches);
                    writer.committed = writer.committed.max(last.last_offset + 1);
                    writer.in_flight = writer.in_flight.saturating_sub(1);
                }
                Some(batches)
            }
            (Outcome::Retry, Some(writer)) => {
                let bytes: usize = batches.iter().map(|p| p.batch.len()).sum();
                let mut locked = state::lock(&writer);
                if locked.removed {
                    drop(locked);
                    self.finish(batches, &Err(LogError::NotLeader(partition)));
                    return None;
                }
                locked.returned.extend(batches);
                locked.in_flight = locked.in_flight.saturating_sub(1);
                if locked.in_flight == 0 {
                    // Every flush holding this partition is resolved: what came
                    // back goes in front of what is pending, in offset order.
                    let mut queue = std::mem::take(&mut locked.returned);
                    queue.append(&mut locked.pending);
                    locked.pending = queue;
                }
                drop(locked);
                self.unflushed.add(bytes);
                None
            }
            (Outcome::Retry, None) => {
                self.finish(batches, &Err(LogError::NotLeader(partition)));
                None
            }
            (Outcome::Failed(error), writer) => {
                self.finish(batches, &Err(error.clone()));
                if writer.is_some() {
                    self.forget(partition, epoch, &error);
                }
                None
            }
        }
    }

    /// Answers `batches` with `outcome` and resolves their WAL records (unless
    /// the agent is stopping: then they stay in the WAL for the next start).
    fn finish(&self, batches: Vec<Pending>, outcome: &Result<(), LogError>) {
        if !matches!(outcome, Err(LogError::Stopped)) {
            self.resolve_wal(batches.iter().filter_map(|p| p.wal_sequence));
        }
        for mut pending in batches {
            pending.answer(outcome.clone());
        }
    }

    /// Marks one batch of each of these WAL records resolved.
    pub(crate) fn resolve_wal(&self, sequences: impl Iterator<Item = u64>) {
        if self.wal.is_none() {
            return;
        }
        let mut tracker = self.wal_tracker.lock().unwrap_or_else(|e| e.into_inner());
        for sequence in sequences {
            tracker.resolve(sequence);
        }
    }

    /// Truncates the WAL as far as every record before the point is resolved.
    pub(crate) async fn truncate_wal(&self) {
        let Some(wal) = &self.wal else {
            return;
        };
        if self.is_stopped() {
            return;
        }
        let through = self
            .wal_tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .advance();
        if let Some(through) = through
            && let Err(error) = wal.truncate(through).await
        {
            tracing::warn!(%error, through, "truncating the write-ahead log failed");
        }
    }
}
