//! Supervision of a shard's group actors: a panicked actor's group is reloaded
//! from metadata (never restarted empty), a deleted group is forgotten, and a
//! fenced write gives the whole shard up.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fjord_metadata::GroupPhase;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{GroupShard, SHARD_DRAIN_TIMEOUT};
use crate::groups::GroupError;
use crate::groups::actor::{self, Context, GroupHandle};
use crate::groups::shard::{ActorExit, Expect, Start};
use crate::groups::state::Group;

/// A group actor that panics more often than this within
/// [`RESTART_WINDOW`] is no longer reloaded at once, only on its group's next
/// request (a bug the group's state triggers must not spin the agent).
const MAX_RESTARTS: u32 = 3;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// Loads `group_id` from metadata and starts its actor in place of the dead
/// actor `dead_actor_id`. `None` if the group is gone from metadata (its entry
/// is forgotten) or another actor took the dead one's place meanwhile and
/// ended too (look again).
pub(super) async fn reload(
    context: &Arc<Context>,
    shard: &Arc<GroupShard>,
    group_id: &str,
    dead_actor_id: u64,
) -> Result<Option<GroupHandle>, GroupError> {
    let record = context
        .store
        .load_group(group_id)
        .await
        .map_err(|e| GroupError::from_metadata(&e))?;
    let Some(record) = record else {
        shard.forget(group_id, dead_actor_id);
        return Ok(None);
    };
    let rebalance = record.phase == GroupPhase::AwaitingSync;
    let generation = record.generation;
    let group = Group::from_record(record, Instant::now());
    let started = shard.start(group_id, Expect::Dead(dead_actor_id), || {
        actor::build(context.clone(), shard.lease().clone(), group, rebalance)
    });
    match started {
        Start::New(handle) => {
            tracing::info!(group = %group_id, generation, "group actor reloaded from metadata");
            Ok(Some(handle))
        }
        Start::Running(handle) => Ok(Some(handle)),
        Start::Changed => Ok(None),
        Start::Lost => Err(GroupError::NotCoordinator),
    }
}

/// Panics of one group's actor within the restart window.
#[derive(Debug)]
struct Restarts {
    window_start: Instant,
    count: u32,
}

/// Watches the actors of `shard` until it is lost (or the coordinator is
/// dropped), then stops them:
///
/// - a panicked actor is reloaded from metadata at once (at most
///   [`MAX_RESTARTS`] times per [`RESTART_WINDOW`]; beyond, on its group's next
///   request), so its members' sessions and timers go on;
/// - a deleted group's entry is forgotten;
/// - a fenced write gives the whole shard up.
pub(super) async fn supervise(
    context: Arc<Context>,
    index: u32,
    shard: Arc<GroupShard>,
    dropped: CancellationToken,
) {
    let mut restarts: HashMap<String, Restarts> = HashMap::new();
    loop {
        let report = tokio::select! {
            biased;
            () = shard.lease().lost() => break,
            () = dropped.cancelled() => break,
            report = shard.next_exit() => report,
        };
        match report.exit {
            ActorExit::Stopped | ActorExit::Deleted => {
                shard.forget(&report.group_id, report.actor_id);
            }
            ActorExit::Fenced => break,
            ActorExit::Panicked(message) => {
                let now = Instant::now();
                restarts.retain(|_, r| now.duration_since(r.window_start) < RESTART_WINDOW);
                let entry = restarts.entry(report.group_id.clone()).or_insert(Restarts {
                    window_start: now,
                    count: 0,
                });
                entry.count += 1;
                if entry.count > MAX_RESTARTS {
                    tracing::error!(shard = index, group = %report.group_id, %message, "group actor panicked again; reloaded on its next request only");
                    continue;
                }
                tracing::error!(shard = index, group = %report.group_id, %message, "group actor panicked; reloading the group from metadata");
                if let Err(error) =
                    reload(&context, &shard, &report.group_id, report.actor_id).await
                {
                    tracing::warn!(shard = index, group = %report.group_id, %error, "reloading a group failed; its next request retries");
                }
            }
        }
    }
    shard.mark_lost();
    shard.drain(SHARD_DRAIN_TIMEOUT).await;
    tracing::debug!(shard = index, "coordinator shard unloaded");
}
