//! The expiry of offsets and empty groups: one pass over every shard placed
//! here ([`GroupCoordinator::expire_once`]), and the loop that runs it every
//! `offsets.retention.check.interval.ms` ([`GroupCoordinator::run_expiry`]).

use std::sync::Arc;

use fjord_metadata::COORDINATOR_SHARDS;
use futures::StreamExt;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::GroupCoordinator;
use crate::groups::GroupError;
use crate::groups::actor::{Command, GroupExpiry};

/// How many groups of a shard expire at once.
const EXPIRY_CONCURRENCY: usize = 16;

/// What one expiry pass ([`GroupCoordinator::expire_once`]) did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Groups whose offsets were checked.
    pub groups_checked: usize,
    /// Committed offsets deleted.
    pub offsets_expired: usize,
    /// Empty groups without offsets deleted.
    pub groups_deleted: usize,
    /// Groups or shards that could not be checked (retried on the next pass).
    pub failures: usize,
}

impl GroupCoordinator {
    /// One expiry pass as of `now_ms` (by the coordinator's clock, see
    /// [`GroupCoordinator::with_clock`]): every group of every shard placed
    /// here (taking the shards this agent does not hold yet) drops its offsets
    /// past `offsets.retention.minutes`, and empty groups left without offsets
    /// are deleted (see the `actor::expiry` docs for which offsets expire when).
    /// Failures are counted and logged; the next pass retries them.
    pub async fn expire_once(&self, now_ms: i64) -> ExpiryReport {
        let mut report = ExpiryReport::default();
        for index in 0..COORDINATOR_SHARDS {
            if !self.placed_here(index) {
                continue;
            }
            let shard = match self.shard_at(index).await {
                Ok(shard) => shard,
                Err(error) => {
                    tracing::debug!(shard = index, %error, "coordinator shard not expired this time");
                    report.failures += 1;
                    continue;
                }
            };
            let outcomes: Vec<Result<GroupExpiry, GroupError>> =
                futures::stream::iter(shard.running())
                    .map(|handle| async move {
                        let (reply, answer) = oneshot::channel();
                        let command = Command::Expire { now_ms, reply };
                        handle
                            .commands
                            .send(command)
                            .await
                            .map_err(|_| GroupError::NotCoordinator)?;
                        answer.await.map_err(|_| GroupError::NotCoordinator)?
                    })
                    .buffer_unordered(EXPIRY_CONCURRENCY)
                    .collect()
                    .await;
            for outcome in outcomes {
                report.groups_checked += 1;
                match outcome {
                    Ok(expired) => {
                        report.offsets_expired += expired.offsets_expired;
                        report.groups_deleted += usize::from(expired.group_deleted);
                    }
                    Err(error) => {
                        tracing::debug!(shard = index, %error, "a group was not expired this time");
                        report.failures += 1;
                    }
                }
            }
        }
        report
    }

    /// Expires offsets and empty groups every
    /// `offsets.retention.check.interval.ms` (the first pass one interval
    /// after the start) until `shutdown`. Ticks on tokio time, reads wall time
    /// from the coordinator's clock. A pass that fails in part is retried on
    /// the next tick; cancelling mid-pass is safe (each group's expiry is one
    /// command its actor finishes on its own).
    pub async fn run_expiry(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let period = self.context.settings.offsets_retention_check_interval;
        anyhow::ensure!(
            !period.is_zero(),
            "offsets.retention.check.interval.ms must be positive"
        );
        let mut tick = tokio::time::interval_at(Instant::now() + period, period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            let now_ms = self.context.clock.now_millis();
            let report = tokio::select! {
                biased;
                () = shutdown.cancelled() => return Ok(()),
                report = self.expire_once(now_ms) => report,
            };
            if report.offsets_expired > 0 || report.groups_deleted > 0 || report.failures > 0 {
                tracing::info!(
                    groups = report.groups_checked,
                    offsets_expired = report.offsets_expired,
                    groups_deleted = report.groups_deleted,
                    failures = report.failures,
                    "expired group offsets"
                );
            }
        }
    }
}
