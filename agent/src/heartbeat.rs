//! This agent's registration and its heartbeat: its liveness in metadata.
//!
//! A data directory is one agent: [`register`] keeps the node id it had, so a
//! restart stays the same node to clients and to the other agents.
//!
//! It bumps the agent's counter every interval; the others judge it dead when
//! the counter stops (by their own clocks). It stops on its token — after the
//! hand-off at a graceful shutdown, or at once when a critical task failed, so
//! the others take this agent's partitions over within the lease — and fails
//! (ending the agent) when the registration was removed because the others
//! judged this agent dead: a zombie must not keep serving.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use fjord_common::IdGenerator;
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
            // Stopping: the agent deregisters right after cancelling `stop`,
            // which a beat already under way may see.
            Err(MetadataError::UnknownAgent { .. }) if stop.is_cancelled() => return Ok(()),
            Err(MetadataError::UnknownAgent { .. }) => {
                anyhow::bail!(
                    "this agent's registration (node {node_id}) was removed: the others judged it dead"
                );
            }
            Err(error) => tracing::warn!(node_id, %error, "heartbeat failed"),
        }
    }
}

/// Reads the node id this data directory had (a restart keeps it, so clients'
/// and other agents' views of it stay valid) and registers under it, or
/// registers anew.
pub async fn register(
    store: &MetadataStore,
    data_dir: &Path,
    advertised: &str,
    gateway: Option<&str>,
    roles: fjord_metadata::AgentRoles,
    ids: &dyn IdGenerator,
) -> anyhow::Result<i32> {
    let instance = ids.uuid();
    let node_id_file = data_dir.join("node-id");
    let previous = tokio::fs::read_to_string(&node_id_file)
        .await
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok());
    let reregistered = match previous {
        Some(node_id) => store
            .reregister_agent(node_id, instance, advertised, gateway, roles)
            .await
            .context("registering the agent again")?,
        None => None,
    };
    let agent = match reregistered {
        Some(agent) => agent,
        None => store
            .register_agent(instance, advertised, gateway, roles)
            .await
            .context("registering the agent")?,
    };
    tokio::fs::write(&node_id_file, format!("{}\n", agent.node_id))
        .await
        .with_context(|| format!("writing {}", node_id_file.display()))?;
    tracing::info!(
        node_id = agent.node_id,
        %instance,
        backend = store.database().backend_name(),
        advertised = %agent.advertised_address,
        "agent registered"
    );
    Ok(agent.node_id)
}
