//! The heartbeat: this agent's liveness in metadata.
//!
//! It bumps the agent's counter every interval; the others judge it dead when
//! the counter stops (by their own clocks). It stops on its token — after the
//! hand-off at a graceful shutdown, or at once when a critical task failed, so
//! the others take this agent's partitions over within the lease — and fails
//! (ending the agent) when the registration was removed because the others
//! judged this agent dead: a zombie must not keep serving.

use std::time::Duration;

use fjord_metadata::{MetadataError, MetadataStore};
use tokio_util::sync::CancellationToken;

/// Beats every `interval` until `stop`; fails when the registration is gone.
pub async fn run_heartbeat(
    store: MetadataStore,
    node_id: i32,
    interval: Duration,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut ticker = tokio::time::interval(interval);
    // After a stall, one beat and then the usual pace, not a burst: the
    // balancer judges others only once its own beats have moved
    // (`cluster::OWN_BEATS_TO_JUDGE`), which then takes real time.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        match store.heartbeat(node_id).await {
            Ok(_) => {}
            Err(MetadataError::UnknownAgent { .. }) => {
                anyhow::bail!(
                    "this agent's registration (node {node_id}) was removed: the others judged it dead"
                );
            }
            Err(error) => tracing::warn!(node_id, %error, "heartbeat failed"),
        }
    }
}
