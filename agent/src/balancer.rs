//! The balancer: keeps this agent's view of the cluster current and moves
//! partition leadership and coordinator shards to match it. It sits above the
//! logs and the group coordinator, which know nothing of it.
//!
//! Every agent runs [`run_balancer`]. On each tick, for each partition:
//!
//! - placed here and not led: take it (epoch + 1) once nobody live holds it —
//!   at once when the holder is dead or released it; many at once;
//! - led here and placed elsewhere (an agent joined): stop accepting produces
//!   for it, let what was accepted commit, then release it in metadata, so the
//!   next leader starts from everything acknowledged;
//! - led here, being handed off, and placed here again (the agent it was
//!   placed on died first): the hand-off is undone, produces are accepted
//!   again;
//! - led in memory while metadata names a newer epoch (this agent was paused
//!   past its lease and others took over): drop it, failing pending producers
//!   with a retriable `NOT_LEADER_OR_FOLLOWER`;
//! - recorded in metadata as led by this agent, not led in memory, placed
//!   elsewhere (a partition forgotten after a commit found it out of line):
//!   release it, so its owner does not wait for this agent forever.
//!
//! Where a partition is placed is the agent an operator chose for it
//! (`AlterPartitionReassignments`, read from metadata each tick) while that
//! agent is live, else the shared hashing's choice ([`ClusterView::owner`]).
//!
//! Coordinator shards placed elsewhere, or taken by another agent meanwhile,
//! are unloaded the same way ([`GroupCoordinator::release_shards`]).
//!
//! # Graceful shutdown
//!
//! When its shutdown token is cancelled the balancer hands everything off
//! ([`hand_off_everything`]): the agent leaves its own view (it places nothing
//! on itself, `Metadata` names only the others, produces are refused with
//! `NOT_LEADER_OR_FOLLOWER`), every partition is drained and released as above,
//! and every coordinator shard is released. The agent then deregisters, and the
//! others take the released partitions at their next balance tick, without
//! waiting for a lease to lapse.

use std::sync::Arc;
use std::time::Duration;

use fjord_metadata::{MetadataStore, TopicPartition};
use futures::StreamExt;
use futures::future::BoxFuture;
use tokio_util::sync::CancellationToken;

use crate::cluster::{ClusterSettings, ClusterView, LiveAgent, Liveness};
use crate::groups::GroupCoordinator;
use crate::log::PartitionLogs;

/// Leadership changes (takeovers, hand-offs, releases) run at once per tick.
const CONCURRENT_MOVES: usize = 64;

/// What a graceful hand-off at shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandOffReport {
    /// Partitions this agent stopped leading: released in metadata once
    /// everything they accepted was committed (or dropped, their pending
    /// producers failed, when a commit found another leader).
    pub partitions: usize,
    /// Partitions still led when the hand-off timed out (their pending
    /// producers get a retriable error; the next leader takes them with a new
    /// epoch once this agent is gone).
    pub partitions_left: usize,
    /// Coordinator shards released.
    pub shards: usize,
    /// How long it took.
    pub took: Duration,
}

/// Keeps `view` current and moves partition leadership and coordinator shards
/// to match it, until `shutdown`; then hands every partition and shard off (see
/// the module docs) and returns what it did.
pub async fn run_balancer(
    store: MetadataStore,
    logs: Arc<PartitionLogs>,
    groups: Arc<GroupCoordinator>,
    view: Arc<ClusterView>,
    settings: ClusterSettings,
    shutdown: CancellationToken,
) -> HandOffReport {
    let mut liveness = Liveness::default();
    let mut tick = tokio::time::interval(settings.balance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(error) = balance_once(&store, &logs, &view, &mut liveness, settings).await {
            tracing::warn!(%error, "balancing failed; retrying");
        }
        groups.release_shards(false).await;
    }
    hand_off_everything(&logs, &groups, &view, settings.hand_off_timeout).await
}

/// Graceful shutdown: this agent leaves the view (it places nothing on itself
/// and refuses new produces), then every partition it leads is drained —
/// produces refused with `NOT_LEADER_OR_FOLLOWER` while what was accepted
/// commits and its producers are answered — and released in metadata, and
/// every coordinator shard is released. Gives up on the partitions still led
/// after `timeout` (a bucket that does not answer).
pub async fn hand_off_everything(
    logs: &PartitionLogs,
    groups: &GroupCoordinator,
    view: &ClusterView,
    timeout: Duration,
) -> HandOffReport {
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    view.leave();
    let mut changes = logs.commits();
    let mut released = 0;
    loop {
        changes.borrow_and_update();
        let led = logs.led_partitions();
        for partition in &led {
            logs.hand_off(*partition).await;
        }
        let left = logs.led_partitions().len();
        released += led.len().saturating_sub(left);
        if left == 0 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                partitions = left,
                "handing partitions off timed out; the others take them over once this agent is gone"
            );
            break;
        }
        // A commit (or a reset) lets a drained partition go.
        let _ = tokio::time::timeout(HAND_OFF_POLL, changes.changed()).await;
    }
    let shards = groups.release_shards(true).await;
    HandOffReport {
        partitions: released,
        partitions_left: logs.led_partitions().len(),
        shards,
        took: started.elapsed(),
    }
}

/// How often a hand-off looks again when no commit woke it.
const HAND_OFF_POLL: Duration = Duration::from_millis(50);

async fn balance_once(
    store: &MetadataStore,
    logs: &Arc<PartitionLogs>,
    view: &ClusterView,
    liveness: &mut Liveness,
    settings: ClusterSettings,
) -> Result<(), fjord_metadata::MetadataError> {
    let me = view.me().node_id;
    let agents = store.list_agents().await?;
    // The time of the read, not of the call: a read retried for seconds (a
    // metadata store that loses replies) must not date what it saw back to
    // when it started, or a counter seen moving then looks silent since.
    let now = tokio::time::Instant::now();
    let live = liveness.observe(&agents, me, now, settings.lease_timeout);
    view.set_roles(
        live.iter()
            .filter(|record| record.node_id != me)
            .map(|record| (record.node_id, record.roles)),
    );
    view.set_live(live.iter().filter_map(LiveAgent::from_record).collect());
    // Registrations dead for a long time are removed, so restarts do not pile
    // up; an agent that comes back finds its registration gone and stops.
    for node in liveness.dead_for(now, settings.lease_timeout * 30) {
        if node != me {
            tracing::info!(
                node_id = node,
                "removing the registration of a long-dead agent"
            );
            store.deregister_agent(node).await?;
        }
    }
    // Where operators placed leaders, then every topic and partition state
    // from one snapshot, in one transaction.
    view.set_leader_placements(
        store
            .leader_placements()
            .await?
            .into_iter()
            .map(|(partition, placement)| (partition, placement.node_id))
            .collect(),
    );
    let topics = store.all_partition_states().await?;
    logs.topics()
        .replace_all(&topics.iter().map(|(t, _)| t.clone()).collect::<Vec<_>>());
    let mut moves: Vec<BoxFuture<'_, ()>> = Vec::new();
    for (topic, states) in &topics {
        for (index, state) in states.iter().enumerate() {
            let Ok(index) = i32::try_from(index) else {
                continue;
            };
            let partition = TopicPartition::new(topic.id, index);
            let leads = logs.leads(partition);
            if leads.is_some() {
                // Retention or `DeleteRecords` through another agent.
                logs.log_start_moved(partition, state.log_start_offset);
            }
            if let Some(epoch) = leads
                && state.leader_epoch > epoch
            {
                tracing::warn!(%partition, epoch, current = state.leader_epoch, "lost leadership");
                logs.lost(partition, epoch);
                continue;
            }
            let owned = view.owns(partition, topic.partition_count);
            match (owned, leads) {
                (true, None) => {
                    let held_by_live_other = state
                        .leader
                        .is_some_and(|leader| leader != me && view.is_live(leader));
                    if !held_by_live_other {
                        moves.push(Box::pin(async move {
                            if let Err(error) = logs.take_over(partition).await {
                                tracing::warn!(%partition, %error, "taking leadership failed");
                            }
                        }));
                    }
                }
                (true, Some(_)) if logs.handing_off(partition) => {
                    moves.push(Box::pin(logs.keep(partition)));
                }
                (false, Some(_)) => moves.push(Box::pin(logs.hand_off(partition))),
                (false, None) if state.leader == Some(me) => {
                    let epoch = state.leader_epoch;
                    moves.push(Box::pin(async move {
                        if let Err(error) = logs.release_if_unheld(partition, epoch).await {
                            tracing::warn!(%partition, %error, "releasing leadership failed");
                        }
                    }));
                }
                (true, Some(_)) | (false, None) => {}
            }
        }
    }
    futures::stream::iter(moves)
        .buffer_unordered(CONCURRENT_MOVES)
        .for_each(|()| async {})
        .await;
    let metas: Vec<_> = topics.into_iter().map(|(topic, _)| topic).collect();
    logs.follow_log_compaction(&metas).await;
    Ok(())
}
