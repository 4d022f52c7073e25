//! Background upkeep that keeps state bounded: jobs that run under the
//! agent's supervisor on an interval.
//!
//! | module | job |
//! |---|---|
//! | [`producer_expiry`] | forget idempotent producers idle for `producer.id.expiration.ms`, in memory and in metadata |
//! | [`compaction`] | object compaction: small segment objects merged into large ones, index entries swapped over where unchanged |
//! | [`log_compaction`] | log compaction (`cleanup.policy=compact`): the latest record of each key kept, tombstones and aborted transactions dropped, offsets unchanged, by the same swap |
//! | [`leases`] | which job shards this agent runs, held in metadata and moved as the cluster view places them |
//! | [`orphans`] | the orphan sweep: objects written but never committed, old enough that no commit can take them |
//! | [`report`] | not a job: what the bucket holds and what the jobs owe (`fjord storage-report`) |
//! | [`retention`] | `retention.ms` / `retention.bytes`, releasing index entries below the log start (retention, `DeleteRecords`, deleted topics), deleting unreferenced objects after a grace period |
//!
//! Empty consumer groups and their offsets expire in the group coordinator
//! ([`crate::groups`], `offsets.retention.minutes`).

pub mod compaction;
pub mod leases;
pub mod log_compaction;
pub mod orphans;
pub mod producer_expiry;
pub mod report;
pub mod retention;

/// Runs `pass` every `interval` until `shutdown` (never, if the interval is
/// zero), the first one an interval from now, and logs what each pass did:
/// its report at info when it is not the default (nothing done), its error as
/// a warning (the next interval retries). A pass in progress is dropped at
/// shutdown; the jobs' steps are single metadata transactions, so a dropped
/// pass leaves at worst what a crash leaves.
pub(crate) async fn run_every<R, F, Fut>(
    job: &'static str,
    interval: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
    mut pass: F,
) -> anyhow::Result<()>
where
    R: std::fmt::Debug + Default + PartialEq,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<anyhow::Result<R>>>,
{
    if interval.is_zero() {
        shutdown.cancelled().await;
        return Ok(());
    }
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            outcome = pass() => outcome,
        };
        match outcome {
            // Nothing to do on this agent this time.
            None => {}
            Some(Ok(report)) if report != R::default() => {
                tracing::info!(?report, "{job} pass");
            }
            Some(Ok(_)) => {}
            Some(Err(error)) => {
                tracing::warn!(%error, "{job} pass failed; retrying next interval");
            }
        }
    }
}
