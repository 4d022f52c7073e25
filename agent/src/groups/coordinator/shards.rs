//! Which coordinator shards this agent holds: taking a shard placed here
//! (never from a live holder; a new epoch, its groups loaded from metadata,
//! a supervisor started) and releasing the shards placed elsewhere, taken by
//! another agent meanwhile, or recorded as this agent's without it holding
//! them.

use std::sync::Arc;

use fjord_metadata::{GroupPhase, ShardFence};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::supervision::supervise;
use super::{GroupCoordinator, GroupShard, SHARD_DRAIN_TIMEOUT};
use crate::groups::GroupError;
use crate::groups::actor;
use crate::groups::shard::{Expect, Shard, Start};
use crate::groups::state::Group;

/// A shard this agent holds, with the task supervising its actors.
#[derive(Debug)]
pub(super) struct HeldShard {
    shard: Arc<GroupShard>,
    supervisor: JoinHandle<()>,
}

pub(super) type ShardSlot = Arc<tokio::sync::Mutex<Option<HeldShard>>>;

impl GroupCoordinator {
    fn slot(&self, index: u32) -> ShardSlot {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(index)
            .or_default()
            .clone()
    }

    /// Unloads the shards this agent holds but should not, and returns how many:
    ///
    /// - placed on another agent (one joined), or every shard when `all` (this
    ///   agent is stopping): its group actors stop (each finishes the command
    ///   it is on), then the shard is released in metadata, so the next
    ///   coordinator takes it at once with the next epoch and loads everything
    ///   this one persisted;
    /// - taken by another coordinator meanwhile (a newer epoch in metadata: this
    ///   agent was paused past its lease): its actors stop before they serve
    ///   stale state; the next request for it takes it again, reloading.
    ///
    /// It also releases the shards metadata records as this agent's without it
    /// holding them (after a restart), when they are placed elsewhere.
    ///
    /// The balancer calls this on every tick, and with `all` at shutdown.
    pub async fn release_shards(&self, all: bool) -> usize {
        let slots: Vec<(u32, ShardSlot)> = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(index, slot)| (*index, slot.clone()))
            .collect();
        let store = &self.context.store;
        let mut unloaded = 0;
        for (index, slot) in slots {
            let mut held = slot.lock().await;
            let Some(current) = held.as_ref() else {
                continue;
            };
            let shard = current.shard.clone();
            if shard.is_lost() {
                *held = None; // its supervisor stops its actors
                continue;
            }
            if !all && self.placed_here(index) {
                match store.coordinator_shard(index).await {
                    Ok(state)
                        if state.epoch != shard.fence().epoch
                            || state.leader != Some(self.node_id) =>
                    {
                        tracing::warn!(
                            shard = index,
                            epoch = shard.fence().epoch,
                            current = state.epoch,
                            "coordinator shard taken over by another agent; unloading its groups"
                        );
                        shard.mark_lost();
                        *held = None;
                        unloaded += 1;
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(shard = index, %error, "reading a coordinator shard failed");
                    }
                }
                continue;
            }
            let Some(HeldShard {
                shard,
                mut supervisor,
            }) = held.take()
            else {
                continue;
            };
            shard.mark_lost();
            unloaded += 1;
            // Its actors end (finishing their current command) before the next
            // coordinator may take the shard.
            if tokio::time::timeout(SHARD_DRAIN_TIMEOUT * 2, &mut supervisor)
                .await
                .is_err()
            {
                supervisor.abort();
            }
            match store
                .release_coordinator_shard(shard.fence(), self.node_id)
                .await
            {
                Ok(released) => tracing::info!(
                    shard = index,
                    epoch = shard.fence().epoch,
                    released,
                    "handed coordinator shard off"
                ),
                Err(error) => {
                    tracing::warn!(shard = index, %error, "releasing a coordinator shard failed");
                    self.note_maybe_recorded_here(index);
                }
            }
        }
        self.release_unheld_shards(all).await;
        unloaded
    }

    fn note_maybe_recorded_here(&self, index: u32) {
        self.maybe_recorded_here
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(index);
    }

    /// Releases the shards metadata records as this agent's while it does not
    /// hold them, if they are placed elsewhere (or `all`).
    async fn release_unheld_shards(&self, all: bool) {
        let candidates: Vec<u32> = self
            .maybe_recorded_here
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .copied()
            .filter(|index| all || !self.placed_here(*index))
            .collect();
        let store = &self.context.store;
        for index in candidates {
            let slot = self.slot(index);
            let held = slot.lock().await;
            if held.is_some() {
                continue; // held: unloaded as such
            }
            let state = match store.coordinator_shard(index).await {
                Ok(state) => state,
                Err(error) => {
                    tracing::warn!(shard = index, %error, "reading a coordinator shard failed");
                    continue;
                }
            };
            if state.leader == Some(self.node_id) {
                let fence = ShardFence {
                    shard: index,
                    epoch: state.epoch,
                };
                match store.release_coordinator_shard(fence, self.node_id).await {
                    Ok(released) => tracing::info!(
                        shard = index,
                        epoch = state.epoch,
                        released,
                        "released a coordinator shard recorded as this agent's"
                    ),
                    Err(error) => {
                        tracing::warn!(shard = index, %error, "releasing a coordinator shard failed");
                        continue;
                    }
                }
            }
            self.maybe_recorded_here
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&index);
            drop(held);
        }
    }

    /// The shard at `index`, taken (and its groups loaded) if this agent does
    /// not hold it. With a cluster view, a shard another live agent holds is
    /// not taken (`COORDINATOR_NOT_AVAILABLE`): that agent releases it once its
    /// own view places the shard here, or stops being live. Taking it anyway
    /// would fence what it is writing, and two agents whose views disagree
    /// would take the shard from each other with ever newer epochs.
    pub(super) async fn shard_at(&self, index: u32) -> Result<Arc<GroupShard>, GroupError> {
        if !self.placed_here(index) {
            return Err(GroupError::NotCoordinator);
        }
        let slot = self.slot(index);
        let mut held = slot.lock().await;
        if let Some(current) = held.as_ref()
            && !current.shard.is_lost()
        {
            return Ok(current.shard.clone());
        }
        // A lost shard's supervisor stops its actors on its own.
        *held = None;
        let store = &self.context.store;
        if let Some(cluster) = &self.cluster {
            let state = store
                .coordinator_shard(index)
                .await
                .map_err(|e| GroupError::from_metadata(&e))?;
            if let Some(holder) = state.leader
                && holder != self.node_id
                && cluster.is_live(holder)
            {
                tracing::debug!(
                    shard = index,
                    holder,
                    epoch = state.epoch,
                    "coordinator shard still held by a live agent; waiting for its release"
                );
                return Err(GroupError::CoordinatorNotAvailable);
            }
        }
        self.note_maybe_recorded_here(index);
        let fence = store
            .acquire_coordinator_shard(index, self.node_id)
            .await
            .map_err(|e| GroupError::from_metadata(&e))?;
        let records = match store.load_groups(index).await {
            Ok(records) => records,
            Err(error) => {
                // Give it back rather than leave a live holder others wait for.
                if let Err(release_error) =
                    store.release_coordinator_shard(fence, self.node_id).await
                {
                    tracing::warn!(shard = index, error = %release_error, "releasing a coordinator shard failed");
                }
                return Err(GroupError::from_metadata(&error));
            }
        };
        let shard = Arc::new(Shard::new(fence));
        let now = Instant::now();
        let loaded = records.len();
        for record in records {
            let rebalance = record.phase == GroupPhase::AwaitingSync;
            let group_id = record.group_id.clone();
            let group = Group::from_record(record, now);
            let started = shard.start(&group_id, Expect::Absent, || {
                actor::build(
                    self.context.clone(),
                    shard.lease().clone(),
                    group,
                    rebalance,
                )
            });
            debug_assert!(matches!(started, Start::New(_)), "{started:?}");
        }
        let supervisor = tokio::spawn(supervise(
            self.context.clone(),
            index,
            shard.clone(),
            self.dropped.clone(),
        ));
        tracing::info!(
            shard = index,
            epoch = fence.epoch,
            groups = loaded,
            "took over coordinator shard"
        );
        *held = Some(HeldShard {
            shard: shard.clone(),
            supervisor,
        });
        Ok(shard)
    }

    /// Tests only: (groups registered, actor tasks not yet reaped) over the
    /// shards this agent holds.
    #[cfg(test)]
    pub(crate) async fn actors_held(&self) -> (usize, usize) {
        let slots: Vec<ShardSlot> = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        let (mut registered, mut tasks) = (0, 0);
        for slot in slots {
            if let Some(held) = slot.lock().await.as_ref() {
                registered += held.shard.registered();
                tasks += held.shard.actor_count();
            }
        }
        (registered, tasks)
    }
}
