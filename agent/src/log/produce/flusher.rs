//! The flusher: takes what is pending into segment objects — on the interval,
//! sooner when `flush_bytes` are pending, and sooner still when waiting
//! cannot add to the segment — uploads several at once, and commits them one
//! at a time in the order they were taken.
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
//! With the produce trace on (`fjord::trace`), each flush logs why it started
//! and when it was taken, uploaded and committed.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use tokio_util::sync::CancellationToken;

use super::flush::{Flush, Part, Uploaded};
use crate::log::state;
use crate::log::{LogError, PartitionLogs};
use crate::trace::{self, FlushTimeline, FlushTrigger};

type InFlight =
    FuturesOrdered<BoxFuture<'static, (Flush, Result<Uploaded, LogError>, Option<FlushTimeline>)>>;

impl PartitionLogs {
    /// Flushes on the interval, or sooner when enough is pending, until
    /// `shutdown` (or [`PartitionLogs::stop`]); then commits what is in flight
    /// and flushes what was accepted once more. A panic here (a bug) ends the
    /// task: the agent's supervisor then stops the agent.
    ///
    /// Flushes are pipelined: up to [`super::super::LogSettings::max_inflight_uploads`]
    /// segments are built and uploaded at once, and each is committed only
    /// after every earlier one, in the order they were taken — so commits of a
    /// partition apply in offset order.
    pub async fn run_flusher(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut inflight: InFlight = FuturesOrdered::new();
        // The first tick one interval from now (nothing is pending yet).
        let interval = self.settings.flush_interval;
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let idle = self.settings.flush_idle;
        // When the idle trigger fires, if nothing arrives meanwhile.
        let mut idle_at: Option<tokio::time::Instant> = None;
        loop {
            let room = inflight.len() < self.settings.max_inflight_uploads.max(1);
            // Fires once nothing arrived for `idle` (and a flush may start).
            let idle_due = idle_at.filter(|_| room);
            let trigger = tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.stopped.cancelled() => break,
                Some((flush, uploaded, timeline)) = inflight.next(), if !inflight.is_empty() => {
                    self.commit_traced(flush, uploaded, timeline).await;
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
            };
            if let Some(flush) = self.take() {
                let logs = self.clone();
                let in_flight = inflight.len();
                inflight.push_back(Box::pin(async move {
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
                        uploaded: tokio::time::Instant::now(),
                        commit_started: taken,
                    });
                    (flush, uploaded, timeline)
                }));
            }
        }
        while let Some((flush, uploaded, timeline)) = inflight.next().await {
            self.commit_traced(flush, uploaded, timeline).await;
        }
        if !self.is_stopped() {
            self.flush_once().await;
        }
        Ok(())
    }

    /// Commits an uploaded flush and answers it, tracing its timeline.
    async fn commit_traced(
        &self,
        flush: Flush,
        uploaded: Result<Uploaded, LogError>,
        timeline: Option<FlushTimeline>,
    ) {
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
