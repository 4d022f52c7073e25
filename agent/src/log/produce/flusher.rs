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
//! - **Idle** (`flush_idle`): requests wait for a commit, no flush is in
//!   flight, and no batch arrived for `flush_idle`. A Kafka client keeps only
//!   a few requests in flight per connection; once they are all waiting for
//!   their answers nothing more arrives, so waiting for the interval would
//!   only stall the client. Requiring an idle flusher makes this a group
//!   commit: while one flush is uploading and committing, what arrives
//!   gathers into the next one, so the number of PUTs this trigger adds is at
//!   most one per upload-and-commit round trip (a few hundred per second over
//!   a local disk, a few tens over S3), and at light load every request gets
//!   its own PUT. Setting it to zero trades that latency for PUTs bounded by
//!   the interval.

use std::sync::Arc;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use tokio_util::sync::CancellationToken;

use super::flush::{Flush, Part, Uploaded};
use crate::log::state;
use crate::log::{LogError, PartitionLogs};

type InFlight = FuturesOrdered<BoxFuture<'static, (Flush, Result<Uploaded, LogError>)>>;

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
            let idle_due = idle_at.filter(|_| inflight.is_empty());
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.stopped.cancelled() => break,
                Some((flush, uploaded)) = inflight.next(), if !inflight.is_empty() => {
                    self.commit_and_answer(flush, uploaded).await;
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
                }
                _ = tick.tick(), if room => {}
                _ = self.flush_now.notified(), if room => {}
            }
            if let Some(flush) = self.take() {
                let logs = self.clone();
                inflight.push_back(Box::pin(async move {
                    let uploaded = logs.upload(&flush).await;
                    (flush, uploaded)
                }));
            }
        }
        while let Some((flush, uploaded)) = inflight.next().await {
            self.commit_and_answer(flush, uploaded).await;
        }
        if !self.is_stopped() {
            self.flush_once().await;
        }
        Ok(())
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
