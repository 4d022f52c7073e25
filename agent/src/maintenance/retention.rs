//! Retention and garbage collection of the bucket.
//!
//! Every `log.retention.check.interval.ms` each agent with the jobs role
//! (`--roles`) takes the partitions of the job shards it holds
//! ([`super::leases`]: placed over the live agents with that role, held in
//! metadata; led or not, so an idle partition without a leader still
//! expires) and, for topics whose `cleanup.policy` includes
//! `delete`, moves their log start past what `retention.ms` and
//! `retention.bytes` expire ([`MetadataStore::apply_retention`]). Then it
//! releases the index entries below every such partition's log start, whether
//! retention or `DeleteRecords` moved it, and those of deleted topics; an
//! object whose last entry goes becomes garbage in the same transaction
//! ([`fjord_metadata::GarbageObject`]). Garbage older than the grace period is
//! deleted from the bucket and forgotten only once the delete succeeded (or the
//! object was already gone). The grace period outlasts any index answer a
//! reader still holds, so no read that found an entry finds its object gone.
//!
//! Passes on several agents at once are safe: every step is one metadata
//! transaction that reads what it changes, and deleting an object twice is
//! harmless. The job leases only keep them from doing the same work.

use std::sync::Arc;
use std::time::Duration;

use fjord_common::Clock;
use fjord_metadata::{MetadataStore, RetentionLimits, TopicMeta, TopicPartition};
use fjord_storage::ObjectKeys;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio_util::sync::CancellationToken;

use super::leases::{self, BUCKET_SHARD, JobLeases};
use super::orphans;
use crate::configs::topic;
use crate::log::PartitionLogs;

/// Kafka's `log.initial.task.delay.ms`.
const INITIAL_DELAY: Duration = Duration::from_secs(30);
/// How often the agent owning shard 0 lists the bucket for orphans.
const SWEEP_INTERVAL: Duration = Duration::from_secs(3_600);
/// Candidates one sweep looks at.
const SWEEP_LIMIT: usize = 10_000;
/// Index entries released per metadata transaction.
const RELEASE_BATCH: usize = 500;
/// Garbage objects looked at per pass.
const GARBAGE_BATCH: usize = 1_000;

/// The broker-wide retention settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionSettings {
    /// `log.retention.check.interval.ms`.
    pub check_interval: Duration,
    /// `log.retention.ms` (or `log.retention.hours`): a topic's `retention.ms`
    /// when it sets none; -1 keeps everything.
    pub default_retention_ms: i64,
    /// `log.retention.bytes`: a topic's `retention.bytes` when it sets none; -1
    /// is no limit.
    pub default_retention_bytes: i64,
    /// How long an object no index entry references stays in the bucket.
    pub object_grace: Duration,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            check_interval: Duration::from_millis(300_000),
            default_retention_ms: 604_800_000,
            default_retention_bytes: -1,
            object_grace: Duration::from_secs(600),
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Partitions whose log start retention moved.
    pub partitions_trimmed: usize,
    /// Index entries released.
    pub entries_released: usize,
    /// Their bytes.
    pub bytes_released: u64,
    /// Objects deleted from the bucket.
    pub objects_deleted: usize,
    /// Orphans (written, never committed) deleted by the sweep.
    pub orphans_deleted: usize,
}

/// The retention job of one agent.
#[derive(Debug, Clone)]
pub struct Retention {
    store: MetadataStore,
    logs: Arc<PartitionLogs>,
    objects: Arc<dyn ObjectStore>,
    keys: ObjectKeys,
    leases: Arc<JobLeases>,
    clock: Arc<dyn Clock>,
    settings: RetentionSettings,
    /// When this agent last swept for orphans.
    last_sweep: Arc<std::sync::Mutex<Option<tokio::time::Instant>>>,
}

impl Retention {
    /// The job over these components.
    pub fn new(
        store: MetadataStore,
        logs: Arc<PartitionLogs>,
        objects: Arc<dyn ObjectStore>,
        keys: ObjectKeys,
        leases: Arc<JobLeases>,
        clock: Arc<dyn Clock>,
        settings: RetentionSettings,
    ) -> Self {
        Self {
            store,
            logs,
            objects,
            keys,
            leases,
            clock,
            settings,
            last_sweep: Arc::default(),
        }
    }

    /// Runs a pass every check interval until `shutdown`, the first after
    /// [`INITIAL_DELAY`] (or the interval, if shorter), as Kafka's
    /// `log.initial.task.delay.ms`: a restarting cluster settles first.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let interval = self.settings.check_interval;
        let start = tokio::time::Instant::now() + interval.min(INITIAL_DELAY);
        let mut tick = tokio::time::interval_at(start, interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // A graceful stop: the others take this agent's shards at
                    // their next pass.
                    self.leases.release_all().await;
                    return Ok(());
                }
                _ = tick.tick() => {}
            }
            match self.pass().await {
                Ok(report) if report != PassReport::default() => {
                    tracing::info!(?report, "retention pass");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%error, "retention pass failed; retrying next interval")
                }
            }
        }
    }

    /// One pass over the partitions, deleted topics and garbage of the job
    /// shards this agent holds (taken or given up first, as its view says).
    pub async fn pass(&self) -> Result<PassReport, fjord_metadata::MetadataError> {
        let mut report = PassReport::default();
        let held = self.leases.refresh().await?;
        let topics = self.store.all_partition_states().await?;
        for (meta, states) in &topics {
            let limits = self.limits(meta);
            for (index, state) in states.iter().enumerate() {
                let Ok(index) = i32::try_from(index) else {
                    continue;
                };
                let partition = TopicPartition::new(meta.id, index);
                if !held.holds_partition(partition) {
                    continue;
                }
                // One partition's failure (deleted meanwhile, a metadata
                // hiccup) does not hold up the others: the next pass retries.
                if let Err(error) = self
                    .partition_pass(&mut report, partition, state.log_start_offset, limits)
                    .await
                {
                    tracing::warn!(%partition, %error, "retention of a partition failed; retrying next pass");
                }
            }
        }
        for deleted in self.store.deleted_topics().await? {
            if !held.holds(leases::shard_of(deleted.topic.id.0.as_bytes())) {
                continue;
            }
            let topic_id = deleted.topic.id;
            self.release(&mut report, |store, now| async move {
                store
                    .release_deleted_topic(topic_id, RELEASE_BATCH, now)
                    .await
            })
            .await?;
        }
        self.collect_garbage(&mut report, &held).await?;
        if held.holds(BUCKET_SHARD) && self.sweep_due() {
            let now = self.clock.now_millis();
            match orphans::sweep(
                &self.store,
                &*self.objects,
                &self.keys,
                now,
                SWEEP_LIMIT,
                false,
            )
            .await
            {
                Ok(swept) => {
                    if !swept.orphans.is_empty() {
                        tracing::info!(orphans = ?swept.orphans, bytes = swept.orphan_bytes, "deleted orphaned objects");
                    }
                    report.orphans_deleted += swept.deleted;
                }
                Err(error) => tracing::warn!(%error, "orphan sweep failed; retrying next pass"),
            }
        }
        Ok(report)
    }

    /// Whether an orphan sweep is due (one per [`SWEEP_INTERVAL`]), marking
    /// it done if so.
    fn sweep_due(&self) -> bool {
        let mut last = self
            .last_sweep
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = tokio::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < SWEEP_INTERVAL) {
            return false;
        }
        *last = Some(now);
        true
    }

    /// Retention of one partition, then the release of what lies below its
    /// log start.
    async fn partition_pass(
        &self,
        report: &mut PassReport,
        partition: TopicPartition,
        log_start: i64,
        limits: Option<RetentionLimits>,
    ) -> Result<(), fjord_metadata::MetadataError> {
        let mut log_start = log_start;
        if let Some(limits) = limits {
            let now = self.clock.now_millis();
            let outcome = self.store.apply_retention(partition, limits, now).await?;
            if outcome.moved {
                report.partitions_trimmed += 1;
                self.logs
                    .log_start_moved(partition, outcome.log_start_offset);
            }
            log_start = outcome.log_start_offset;
        }
        if log_start > 0 {
            self.release(report, |store, now| async move {
                store.release_prefix(partition, RELEASE_BATCH, now).await
            })
            .await?;
        }
        Ok(())
    }

    /// The limits of `meta`'s partitions.
    fn limits(&self, meta: &TopicMeta) -> Option<RetentionLimits> {
        limits_of(meta, &self.settings)
    }

    /// Calls `step` until it reports nothing more to release.
    async fn release<F, Fut>(
        &self,
        report: &mut PassReport,
        step: F,
    ) -> Result<(), fjord_metadata::MetadataError>
    where
        F: Fn(MetadataStore, i64) -> Fut,
        Fut: std::future::Future<
                Output = Result<fjord_metadata::Released, fjord_metadata::MetadataError>,
            >,
    {
        loop {
            let released = step(self.store.clone(), self.clock.now_millis()).await?;
            report.entries_released += released.entries;
            report.bytes_released += released.bytes;
            if !released.more {
                return Ok(());
            }
        }
    }

    /// Deletes the garbage of this agent's shards whose grace period is over.
    async fn collect_garbage(
        &self,
        report: &mut PassReport,
        held: &leases::HeldShards,
    ) -> Result<(), fjord_metadata::MetadataError> {
        let grace = i64::try_from(self.settings.object_grace.as_millis()).unwrap_or(i64::MAX);
        let now = self.clock.now_millis();
        for garbage in self.store.garbage_objects(GARBAGE_BATCH).await? {
            if now.saturating_sub(garbage.freed_at_ms) < grace
                || !held.holds(leases::shard_of(&garbage.segment_id.0.to_bytes()))
            {
                continue;
            }
            // Only keys of Fjord's own shape, under this cluster's prefix.
            if self.keys.segment_id_of(&garbage.object_key).is_none() {
                tracing::warn!(key = %garbage.object_key, "not deleting a key of a foreign shape");
                continue;
            }
            match self
                .objects
                .delete(&Path::from(garbage.object_key.as_str()))
                .await
            {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {
                    crate::faults::crash_point("gc-deleted");
                    self.store.forget_garbage(garbage.segment_id).await?;
                    report.objects_deleted += 1;
                }
                Err(error) => {
                    tracing::warn!(key = %garbage.object_key, %error, "deleting an object failed; retrying next pass");
                }
            }
        }
        Ok(())
    }
}

/// The retention limits of `meta`'s partitions under the broker defaults of
/// `settings`, `None` when its `cleanup.policy` does not include `delete`.
pub(crate) fn limits_of(meta: &TopicMeta, settings: &RetentionSettings) -> Option<RetentionLimits> {
    if !topic::cleanup_policy_deletes(&meta.configs) {
        return None;
    }
    let setting = |name: &str, default: i64| {
        meta.configs
            .get(name)
            .and_then(|value| value.trim().parse::<i64>().ok())
            .unwrap_or(default)
    };
    let ms = setting("retention.ms", settings.default_retention_ms);
    let bytes = setting("retention.bytes", settings.default_retention_bytes);
    Some(RetentionLimits {
        max_age_ms: (ms >= 0).then_some(ms),
        max_bytes: u64::try_from(bytes).ok(),
    })
}
