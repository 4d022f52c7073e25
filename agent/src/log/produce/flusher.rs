//! The flusher: takes what is pending into segment objects — on the interval,
//! sooner when `flush_bytes` are pending, and sooner still when waiting
//! cannot add to the segment — uploads several at once, and commits them one
//! at a time, each once every earlier flush holding one of its partitions is
//! resolved ([`Pipeline`]).
//!
//! # When a flush starts
//!
//! - **Interval** (`flush_interval`): the upper bound on how long an accepted
//!   batch waits for its flush to start.
//! - **Size** (`flush_bytes`): enough is pending for a full segment.
//! - **Idle** (`flush_idle`): requests wait for a commit, batches are
//!   pending, and no batch arrived for `flush_idle`. A Kafka client keeps
//!   only a few requests in flight per connection; once they are all waiting
//!   for their answers nothing more arrives, so waiting for the interval
//!   would only stall the client — and waiting for a flush already in flight
//!   to finish would add its whole upload-and-commit round trip (tens to
//!   hundreds of milliseconds over S3) to the requests that missed it. So an
//!   idle flush starts while others are in flight, up to
//!   `max_inflight_uploads` at once; beyond that what arrives gathers into
//!   the next one (a group commit). The PUTs this trigger adds are bounded by
//!   `max_inflight_uploads` per round trip; at light load every request gets
//!   its own PUT; under load segments grow to what arrives in a round trip.
//!   Setting it to zero trades that latency for PUTs bounded by the interval.
//!
//! - **Window full** ([`super::windows`]): every connection with requests
//!   waiting for a commit has as many in flight as its client allows, so
//!   nothing more can arrive before an answer leaves.
//!
//! With the produce trace on (`fjord::trace`), each flush logs why it started
//! and when it was taken, uploaded and committed.

use std::sync::Arc;

use std::collections::{BTreeMap, HashSet, VecDeque};

use fjord_metadata::TopicPartition;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio_util::sync::CancellationToken;

use super::flush::{Flush, Part, Uploaded};
use crate::log::state;
use crate::log::{LogError, PartitionLogs};
use crate::trace::{self, FlushTimeline, FlushTrigger};

/// A flush whose upload finished (or failed).
struct Done {
    sequence: u64,
    flush: Flush,
    uploaded: Result<Uploaded, LogError>,
    timeline: Option<FlushTimeline>,
}

/// The flushes taken and not yet resolved, in the order they were taken.
///
/// Uploads run at once and finish in any order. A flush commits once its
/// upload finished and no earlier unresolved flush holds one of its
/// partitions: a partition's commits apply in offset order (invariant 4 of
/// [`super`]), and a slow PUT holds back only the flushes that share a
/// partition with it, not every later one. When an earlier flush of a
/// partition fails, the later ones holding it find the partition retrying
/// and give their batches back ([`super::commit`]).
#[derive(Default)]
struct Pipeline {
    uploading: FuturesUnordered<BoxFuture<'static, Done>>,
    /// Every unresolved flush's sequence and partitions, in take order.
    order: VecDeque<(u64, HashSet<TopicPartition>)>,
    /// Uploaded flushes waiting for an earlier one, by sequence.
    uploaded: BTreeMap<u64, Done>,
    next_sequence: u64,
}

impl Pipeline {
    fn len(&self) -> usize {
        self.order.len()
    }

    fn push(&mut self, flush_partitions: HashSet<TopicPartition>) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.order.push_back((sequence, flush_partitions));
        sequence
    }

    /// An uploaded flush no earlier unresolved flush shares a partition
    /// with, taken out of the pipeline.
    fn next_committable(&mut self) -> Option<Done> {
        let mut earlier: HashSet<TopicPartition> = HashSet::new();
        let mut found = None;
        for (index, (sequence, partitions)) in self.order.iter().enumerate() {
            if self.uploaded.contains_key(sequence) && partitions.is_disjoint(&earlier) {
                found = Some((index, *sequence));
                break;
            }
            earlier.extend(partitions.iter().copied());
        }
        let (index, sequence) = found?;
        self.order.remove(index);
        self.uploaded.remove(&sequence)
    }
}

impl PartitionLogs {
    /// Flushes on the interval, or sooner when enough is pending, until
    /// `shutdown` (or [`PartitionLogs::stop`]); then commits what is in flight
    /// and flushes what was accepted once more. A panic here (a bug) ends the
    /// task: the agent's supervisor then stops the agent.
    ///
    /// Flushes are pipelined: up to [`super::super::LogSettings::max_inflight_uploads`]
    /// segments are built and uploaded at once, and each is committed only
    /// after every earlier one holding one of its partitions ([`Pipeline`]) —
    /// so commits of a partition apply in offset order.
    pub async fn run_flusher(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut pipeline = Pipeline::default();
        // The first tick one interval from now (nothing is pending yet).
        let interval = self.settings.flush_interval;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let idle = self.settings.flush_idle;
        // When the idle trigger fires, if nothing arrives meanwhile.
        let mut idle_at: Option<tokio::time::Instant> = None;
        loop {
            let room = pipeline.len() < self.settings.max_inflight_uploads.max(1);
            // Fires once nothing arrived for `idle` (and a flush may start).
            let idle_due = idle_at.filter(|_| room);
            let trigger = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.stopped.cancelled() => break,
                Some(done) = pipeline.uploading.next(), if !pipeline.uploading.is_empty() => {
                    pipeline.uploaded.insert(done.sequence, done);
                    while let Some(done) = pipeline.next_committable() {
                        self.commit_traced(done).await;
                    }
                    continue;
                }
                _ = self.appended.notified(), if !idle.is_zero() => {
                    idle_at = Some(tokio::time::Instant::now() + idle);
                    continue;
                }
                _ = tokio::time::sleep_until(idle_due.unwrap_or_else(tokio::time::Instant::now)), if idle_due.is_some() => {
                    idle_at = None;
                    if self.commit_waiters.load(std::sync::atomic::Ordering::Relaxed) == 0 {
                        continue;
                    }
                    FlushTrigger::Idle
                }
                _ = tick.tick(), if room => FlushTrigger::Interval,
                _ = self.flush_now.notified(), if room => FlushTrigger::Asked,
                _ = self.windows.all_full(), if room => {
                    // The permit may be older than the last flush (kept
                    // while there was no room): only what is true now counts.
                    if !self.windows.are_all_full() {
                        continue;
                    }
                    FlushTrigger::WindowFull
                }
            };
            if let Some(flush) = self.take() {
                let logs = self.clone();
                let in_flight = pipeline.len();
                let sequence =
                    pipeline.push(flush.parts.iter().map(|part| part.partition).collect());
                pipeline.uploading.push(Box::pin(async move {
                    let taken = tokio::time::Instant::now();
                    let uploaded = logs.upload(&flush).await;
                    let timeline = trace::flush_enabled().then(|| FlushTimeline {
                        trigger,
                        partitions: flush.parts.len(),
                        bytes: flush
                            .parts
                            .iter()
                            .flat_map(|part| &part.batches)
                            .map(|pending| pending.batch.len())
                            .sum(),
                        in_flight,
                        taken,
                        built: uploaded.as_ref().ok().map(|uploaded| uploaded.built),
                        uploaded: tokio::time::Instant::now(),
                        commit_started: taken,
                    });
                    Done {
                        sequence,
                        flush,
                        uploaded,
                        timeline,
                    }
                }));
            }
        }
        while let Some(done) = pipeline.uploading.next().await {
            pipeline.uploaded.insert(done.sequence, done);
            while let Some(done) = pipeline.next_committable() {
                self.commit_traced(done).await;
            }
        }
        if !self.is_stopped() {
            self.flush_once().await;
        }
        Ok(())
    }

    /// Commits an uploaded flush and answers it, tracing its timeline.
    async fn commit_traced(&self, done: Done) {
        let Done {
            flush,
            uploaded,
            timeline,
            ..
        } = done;
        let commit_started = tokio::time::Instant::now();
        self.commit_and_answer(flush, uploaded).await;
        if let Some(timeline) = timeline {
            FlushTimeline {
                commit_started,
                ..timeline
            }
            .emit();
        }
    }

    /// Takes everything pending, writes it as one segment object, commits it and
    /// answers the producers (one flush, not pipelined: recovery and shutdown).
    /// What fails goes back to its partition, as in the pipelined flusher.
    pub async fn flush_once(&self) {
        let Some(flush) = self.take() else {
            return;
        };
        let uploaded = self.upload(&flush).await;
        self.commit_and_answer(flush, uploaded).await;
    }

    /// Everything a flush may take now: the pending batches of every partition
    /// that is not retrying a failed flush.
    pub(crate) fn take(&self) -> Option<Flush> {
        let mut parts = Vec::new();
        let mut bytes = 0;
        for (partition, writer) in self.writers.all() {
            let mut writer = state::lock(&writer);
            if !writer.takeable() {
                continue;
            }
            let batches = std::mem::take(&mut writer.pending);
            bytes += batches.iter().map(|p| p.batch.len()).sum::<usize>();
            writer.in_flight += 1;
            parts.push(Part {
                partition,
                epoch: writer.epoch,
                batches,
            });
        }
        self.unflushed.release(bytes);
        (!parts.is_empty()).then_some(Flush { parts })
    }
}
