//! Which groups this agent coordinates, and the way to each group's actor.
//!
//! Groups hash onto coordinator shards ([`fjord_metadata::coordinator_shard_of`]).
//! Before serving any group of a shard, the coordinator takes the shard's
//! leadership in metadata (a new epoch: [`MetadataStore::acquire_coordinator_shard`])
//! and loads the shard's groups from metadata, so it resumes whatever a previous
//! coordinator persisted. The shard's fence is then carried by every group
//! write; when one fails as fenced, the shard is marked lost, its actors stop,
//! and requests for it are answered `NOT_COORDINATOR` until it is taken again.
//!
//! Placement: shards are spread over the live agents by the same bounded-load
//! rendezvous placement as partitions ([`crate::cluster::ClusterView::shard_owner`]).
//! An agent serves a shard only while its view of the cluster places the shard
//! on it: a request for a group whose shard lives elsewhere is answered
//! `NOT_COORDINATOR` (and `FindCoordinator` names the owner), and a shard is
//! taken, with a new epoch, on the first request after it moved here. With one
//! agent (or no cluster view, as in unit tests) that agent coordinates every
//! group. On every balancer tick an agent unloads the shards placed elsewhere
//! (releasing them in metadata) and those another agent took meanwhile
//! ([`GroupCoordinator::release_shards`]); at shutdown it releases all of them.
//! A shard that moved away is fenced by the new owner's epoch: the old owner's
//! next write fails, and it marks the shard lost.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use fjord_common::IdGenerator;
use fjord_metadata::{
    COORDINATOR_SHARDS, GroupOffset, GroupPhase, MetadataStore, ShardFence, coordinator_shard_of,
};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::actor::{self, Command, Context, GroupHandle};
use super::state::Group;
use super::types::*;
use super::{GroupError, GroupSettings};

/// Longest group id accepted (metadata keys hold it with a topic name).
const MAX_GROUP_ID_BYTES: usize = 4_096;

/// One coordinator shard this agent holds.
#[derive(Debug)]
pub(crate) struct Shard {
    fence: ShardFence,
    groups: Mutex<HashMap<String, GroupHandle>>,
    lost: AtomicBool,
}

impl Shard {
    fn new(fence: ShardFence) -> Self {
        Self {
            fence,
            groups: Mutex::default(),
            lost: AtomicBool::new(false),
        }
    }

    /// The fence every group write of this shard carries.
    pub(crate) fn fence(&self) -> ShardFence {
        self.fence
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, GroupHandle>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }

    /// Another coordinator took the shard: drop every group handle, so the
    /// shard's actors stop once their queued commands are answered.
    pub(crate) fn mark_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
        self.lock().clear();
    }

    /// Forgets a deleted group's actor (unless a newer actor took its place).
    pub(crate) fn remove_group(&self, group_id: &str, actor_id: u64) {
        let mut groups = self.lock();
        if groups.get(group_id).is_some_and(|h| h.actor_id == actor_id) {
            groups.remove(group_id);
        }
    }
}

type ShardSlot = Arc<tokio::sync::Mutex<Option<Arc<Shard>>>>;

/// The group coordinator of this agent.
#[derive(Debug)]
pub struct GroupCoordinator {
    context: Arc<Context>,
    node_id: i32,
    slots: Mutex<HashMap<u32, ShardSlot>>,
    next_actor_id: AtomicU64,
    /// Where shards are placed; `None`: all on this agent.
    cluster: Option<Arc<crate::cluster::ClusterView>>,
}

impl GroupCoordinator {
    /// A coordinator for agent `node_id`, holding nothing yet.
    pub fn new(
        store: MetadataStore,
        node_id: i32,
        ids: Arc<dyn IdGenerator>,
        settings: GroupSettings,
    ) -> Self {
        Self {
            context: Arc::new(Context {
                store,
                ids,
                settings,
            }),
            node_id,
            slots: Mutex::default(),
            next_actor_id: AtomicU64::new(1),
            cluster: None,
        }
    }

    /// Coordinates only the shards `cluster` places on this agent; requests for
    /// the others get `NOT_COORDINATOR`.
    pub fn with_cluster(mut self, cluster: Arc<crate::cluster::ClusterView>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// The node id of the agent that should coordinate `group_id`.
    pub fn coordinator_of(&self, group_id: &str) -> i32 {
        self.owner_of_shard(coordinator_shard_of(group_id))
    }

    fn owner_of_shard(&self, index: u32) -> i32 {
        match &self.cluster {
            Some(cluster) => cluster.shard_owner(index, COORDINATOR_SHARDS),
            None => self.node_id,
        }
    }

    /// Whether this agent should coordinate shard `index` (never while it is
    /// leaving the cluster).
    fn placed_here(&self, index: u32) -> bool {
        match &self.cluster {
            Some(cluster) => cluster.owns_shard(index, COORDINATOR_SHARDS),
            None => true,
        }
    }

    /// Unloads the shards this agent holds but should not, and returns how many:
    ///
    /// - placed on another agent (one joined), or every shard when `all` (this
    ///   agent is stopping): its group actors stop, then the shard is released
    ///   in metadata, so the next coordinator takes it with the next epoch and
    ///   loads everything this one persisted;
    /// - taken by another coordinator meanwhile (a newer epoch in metadata: this
    ///   agent was paused past its lease): its actors stop before they serve
    ///   stale state; the next request for it takes it again, reloading.
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
            let Some(shard) = held.clone() else {
                continue;
            };
            if shard.is_lost() {
                *held = None;
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
            shard.mark_lost();
            *held = None;
            unloaded += 1;
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
                }
            }
        }
        unloaded
    }

    /// The settings groups run with.
    pub fn settings(&self) -> &GroupSettings {
        &self.context.settings
    }

    fn validate_group_id(group_id: &str) -> Result<(), GroupError> {
        if group_id.is_empty() || group_id.len() > MAX_GROUP_ID_BYTES {
            return Err(GroupError::InvalidGroupId);
        }
        Ok(())
    }

    /// The shard at `index`, taken (and its groups loaded) if this agent does
    /// not hold it.
    async fn shard_at(&self, index: u32) -> Result<Arc<Shard>, GroupError> {
        if !self.placed_here(index) {
            return Err(GroupError::NotCoordinator);
        }
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(index)
            .or_default()
            .clone();
        let mut held = slot.lock().await;
        if let Some(shard) = held.as_ref()
            && !shard.is_lost()
        {
            return Ok(shard.clone());
        }
        let store = &self.context.store;
        let fence = store
            .acquire_coordinator_shard(index, self.node_id)
            .await
            .map_err(|e| GroupError::from_metadata(&e))?;
        let records = store
            .load_groups(index)
            .await
            .map_err(|e| GroupError::from_metadata(&e))?;
        let shard = Arc::new(Shard::new(fence));
        let now = Instant::now();
        let loaded = records.len();
        {
            let mut groups = shard.lock();
            for record in records {
                let rebalance = record.phase == GroupPhase::AwaitingSync;
                let group_id = record.group_id.clone();
                let group = Group::from_record(record, now);
                let handle = self.spawn(&shard, group, rebalance);
                groups.insert(group_id, handle);
            }
        }
        tracing::info!(
            shard = index,
            epoch = fence.epoch,
            groups = loaded,
            "took over coordinator shard"
        );
        *held = Some(shard.clone());
        Ok(shard)
    }

    fn spawn(&self, shard: &Arc<Shard>, group: Group, rebalance_on_start: bool) -> GroupHandle {
        let actor_id = self.next_actor_id.fetch_add(1, Ordering::Relaxed);
        actor::spawn(
            self.context.clone(),
            shard.clone(),
            actor_id,
            group,
            rebalance_on_start,
        )
    }

    /// The actor of `group_id`; created (as an empty group) if absent and
    /// `create`.
    async fn handle(
        &self,
        group_id: &str,
        create: bool,
    ) -> Result<Option<GroupHandle>, GroupError> {
        let shard = self.shard_at(coordinator_shard_of(group_id)).await?;
        let mut groups = shard.lock();
        if shard.is_lost() {
            return Err(GroupError::NotCoordinator);
        }
        if let Some(handle) = groups.get(group_id)
            && !handle.commands.is_closed()
        {
            return Ok(Some(handle.clone()));
        }
        if !create {
            return Ok(None);
        }
        let handle = self.spawn(&shard, Group::new(group_id), false);
        groups.insert(group_id.to_owned(), handle.clone());
        Ok(Some(handle))
    }

    /// Sends a command to the group's actor and waits for its answer; `None` if
    /// the group does not exist and `create` is false.
    async fn call<T>(
        &self,
        group_id: &str,
        create: bool,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<Option<T>, GroupError> {
        let Some(handle) = self.handle(group_id, create).await? else {
            return Ok(None);
        };
        let (reply, answer) = oneshot::channel();
        if handle.commands.send(command(reply)).await.is_err() {
            return Err(GroupError::NotCoordinator);
        }
        // An actor that stops without answering lost its shard (or its group was
        // deleted meanwhile): the client looks the coordinator up again.
        answer
            .await
            .map(Some)
            .map_err(|_| GroupError::NotCoordinator)
    }

    /// `FindCoordinator`: makes sure this agent coordinates `group_id`.
    pub async fn find_coordinator(&self, group_id: &str) -> Result<i32, GroupError> {
        Self::validate_group_id(group_id)?;
        let owner = self.coordinator_of(group_id);
        if owner == self.node_id {
            // Taken now, so the member's first request finds it loaded.
            self.shard_at(coordinator_shard_of(group_id)).await?;
        }
        Ok(owner)
    }

    /// `JoinGroup`. Waits until the join phase completes.
    pub async fn join(&self, request: JoinRequest) -> JoinResponse {
        let member_id = request.member_id.clone();
        if let Err(error) = Self::validate_group_id(&request.group_id) {
            return JoinResponse::failed(error, member_id);
        }
        let settings = &self.context.settings;
        let session = super::state::millis(request.session_timeout_ms);
        if request.session_timeout_ms < 0
            || session < settings.min_session_timeout
            || session > settings.max_session_timeout
        {
            return JoinResponse::failed(GroupError::InvalidSessionTimeout, member_id);
        }
        let group_id = request.group_id.clone();
        let create = request.member_id.is_empty();
        match self
            .call(&group_id, create, |reply| Command::Join(request, reply))
            .await
        {
            Ok(Some(response)) => response,
            Ok(None) => JoinResponse::failed(GroupError::UnknownMemberId, member_id),
            Err(error) => JoinResponse::failed(error, member_id),
        }
    }

    /// `SyncGroup`. The leader's call carries the assignment; every member
    /// waits for it.
    pub async fn sync(&self, request: SyncRequest) -> SyncResponse {
        if let Err(error) = Self::validate_group_id(&request.group_id) {
            return SyncResponse::failed(error);
        }
        let group_id = request.group_id.clone();
        match self
            .call(&group_id, false, |reply| Command::Sync(request, reply))
            .await
        {
            Ok(Some(response)) => response,
            Ok(None) => SyncResponse::failed(GroupError::UnknownMemberId),
            Err(error) => SyncResponse::failed(error),
        }
    }

    /// `Heartbeat`.
    pub async fn heartbeat(&self, request: HeartbeatRequest) -> Result<(), GroupError> {
        Self::validate_group_id(&request.group_id)?;
        let group_id = request.group_id.clone();
        self.call(&group_id, false, |reply| Command::Heartbeat(request, reply))
            .await?
            .unwrap_or(Err(GroupError::UnknownMemberId))
    }

    /// `LeaveGroup`: a result per leaving member.
    pub async fn leave(
        &self,
        group_id: &str,
        members: Vec<LeavingMember>,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        Self::validate_group_id(group_id)?;
        let count = members.len();
        match self
            .call(group_id, false, |reply| Command::Leave(members, reply))
            .await?
        {
            Some(results) => results,
            None => Ok(vec![Err(GroupError::UnknownMemberId); count]),
        }
    }

    /// `OffsetCommit` (of partitions the handler checked).
    pub async fn commit_offsets(&self, request: CommitRequest) -> Result<(), GroupError> {
        Self::validate_group_id(&request.group_id)?;
        let group_id = request.group_id.clone();
        // A simple commit creates the group, as in Kafka; a member's commit for a
        // group that does not exist comes from a generation that is gone.
        let create = request.generation < 0;
        self.call(&group_id, create, |reply| Command::Commit(request, reply))
            .await?
            .unwrap_or(Err(GroupError::IllegalGeneration))
    }

    /// `OffsetFetch`: the group's committed offsets.
    pub async fn fetch_offsets(&self, group_id: &str) -> Result<Vec<GroupOffset>, GroupError> {
        Self::validate_group_id(group_id)?;
        self.shard_at(coordinator_shard_of(group_id)).await?;
        self.context
            .store
            .fetch_offsets(group_id)
            .await
            .map_err(|e| GroupError::from_metadata(&e))
    }

    /// `DescribeGroups` for one group (`Dead` if it does not exist).
    pub async fn describe(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        Self::validate_group_id(group_id)?;
        Ok(self
            .call(group_id, false, Command::Describe)
            .await?
            .unwrap_or_else(|| GroupDescription::dead(group_id)))
    }

    /// `ListGroups`: every group this agent coordinates (taking every shard, see
    /// the module docs).
    pub async fn list(&self) -> Result<Vec<GroupListing>, GroupError> {
        let mut listings = Vec::new();
        for index in 0..COORDINATOR_SHARDS {
            if !self.placed_here(index) {
                continue; // another agent lists it
            }
            let shard = self.shard_at(index).await?;
            let groups = shard.lock();
            listings.extend(
                groups
                    .values()
                    .filter(|h| !h.commands.is_closed())
                    .map(|h| h.listing.borrow().clone())
                    .filter(|l| l.state != "Dead"),
            );
        }
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(listings)
    }

    /// `DeleteGroups` for one group: only an empty group may be deleted.
    pub async fn delete(&self, group_id: &str) -> Result<(), GroupError> {
        Self::validate_group_id(group_id)?;
        self.call(group_id, false, Command::Delete)
            .await?
            .unwrap_or(Err(GroupError::GroupIdNotFound))
    }

    /// `OffsetDelete`: an error (or none) per partition.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Option<GroupError>>, GroupError> {
        Self::validate_group_id(group_id)?;
        self.call(group_id, false, |reply| {
            Command::DeleteOffsets(partitions, reply)
        })
        .await?
        .unwrap_or(Err(GroupError::GroupIdNotFound))
    }
}
