//! Expiry of idle idempotent producers (`producer.id.expiration.ms`, Kafka's
//! default one day, checked every `producer.id.expiration.check.interval.ms`).
//!
//! Any client may send any producer id, and Java clients are idempotent by
//! default, so producer states grow with every producer restart unless they
//! expire. As in Kafka, a producer is idle when the timestamp of its last batch
//! is older than the expiration; the leader of each partition forgets it in
//! memory and removes its state in metadata in one transaction fenced by the
//! partition's epoch. A partition with a flush in flight is skipped until the
//! next check (a batch in flight carries its producer's state to the commit).
//! A producer forgotten here that comes back is treated as new (any sequence
//! is accepted from an unknown producer), as in Kafka.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::log::PartitionLogs;

/// Checks every `interval` until `shutdown`.
pub async fn run(
    logs: Arc<PartitionLogs>,
    interval: Duration,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick fires at once; expiry can wait one interval after start.
    tick.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        let expired = logs.expire_producers().await;
        if expired > 0 {
            tracing::info!(producers = expired, "expired idle idempotent producers");
        }
    }
}
