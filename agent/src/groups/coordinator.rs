//! Which groups this agent coordinates, the way to each group's actor, the
//! supervision of those actors, and the expiry of idle groups.
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
//! `NOT_COORDINATOR` (and `FindCoordinator` names the owner). A shard placed
//! here is taken, with a new epoch, on the first request after it moved here —
//! as a partition is: at once if metadata records no holder, this agent, or an
//! agent that is not live in this agent's view; while another live agent holds
//! it, requests are answered `COORDINATOR_NOT_AVAILABLE` (the client retries)
//! until that agent releases it. With one agent (or no cluster view, as in
//! unit tests) that agent coordinates every group and takes shards at once. On
//! every balancer tick an agent unloads the shards placed elsewhere (stopping
//! their actors, then releasing them in metadata) and those another agent took
//! meanwhile ([`GroupCoordinator::release_shards`]); at shutdown it releases
//! all of them. A shard that moved away is fenced by the new owner's epoch: the
//! old owner's next write fails, and it marks the shard lost.
//!
//! Supervision: each shard's actors run in the shard's supervised set
//! (`groups::shard`), watched by one supervisor task per shard. An actor that
//! panics is reloaded from metadata ([`MetadataStore::load_group`]) and started
//! again; a request that finds a dead actor first reloads it itself. A deleted
//! group's actor is forgotten; a fenced one gives the shard up.
//!
//! Expiry: [`GroupCoordinator::run_expiry`] runs
//! [`GroupCoordinator::expire_once`] every `offsets.retention.check.interval.ms`;
//! each group's actor drops its offsets past `offsets.retention.minutes` and an
//! empty group left without offsets is deleted, its actor ending.
//!
//! # Invariants
//!
//! - At most one actor per group runs on this agent, and only while this agent
//!   holds the group's shard under the fence its writes carry.
//! - A group's actor is never replaced by an empty group while the group is
//!   stored: a dead actor's successor is loaded from metadata; a new, empty
//!   group starts only for a group id metadata does not hold.
//! - No actor task is detached: each runs in its shard's set, its exit is
//!   observed, and a shard that is unloaded waits (bounded) for its actors to
//!   finish their current command before it is released in metadata.
//! - A shard another live agent holds is never taken from it; memory and
//!   metadata held for groups stay bounded by what clients used within the
//!   retention.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjord_common::{Clock, IdGenerator, SystemClock};
use fjord_metadata::{
    COORDINATOR_SHARDS, GroupOffset, GroupPhase, MetadataStore, ShardFence, coordinator_shard_of,
};
use futures::StreamExt;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::actor::{self, Command, Context, GroupExpiry, GroupHandle};
use super::shard::{ActorExit, Expect, Lookup, Shard, Start};
use super::state::Group;
use super::types::*;
use super::{GroupError, GroupSettings};

/// Longest group id accepted (metadata keys hold it with a topic name).
const MAX_GROUP_ID_BYTES: usize = 4_096;

/// How long an unloaded shard's actors get to finish their current command
/// before they are aborted.
const SHARD_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A group actor that panics more often than this within
/// [`RESTART_WINDOW`] is no longer reloaded at once, only on its group's next
/// request (a bug the group's state triggers must not spin the agent).
const MAX_RESTARTS: u32 = 3;
const RESTART_WINDOW: Duration = Duration::from_secs(60);

/// How many groups of a shard expire at once.
const EXPIRY_CONCURRENCY: usize = 16;

/// How many times a request looks a group up while its actor is being
/// replaced, before it answers `COORDINATOR_NOT_AVAILABLE`.
const LOOKUP_ATTEMPTS: usize = 4;

type GroupShard = Shard<GroupHandle>;

/// A shard this agent holds, with the task supervising its actors.
#[derive(Debug)]
struct HeldShard {
    shard: Arc<GroupShard>,
    supervisor: JoinHandle<()>,
}

type ShardSlot = Arc<tokio::sync::Mutex<Option<HeldShard>>>;

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

/// The group coordinator of this agent.
#[derive(Debug)]
pub struct GroupCoordinator {
    context: Arc<Context>,
    node_id: i32,
    slots: Mutex<HashMap<u32, ShardSlot>>,
    /// Where shards are placed; `None`: all on this agent.
    cluster: Option<Arc<crate::cluster::ClusterView>>,
    /// Shards metadata may record as this agent's although it does not hold
    /// them (every shard after a restart; any whose take was interrupted):
    /// [`GroupCoordinator::release_shards`] releases those placed elsewhere, so
    /// their owner does not wait for this agent.
    maybe_recorded_here: Mutex<BTreeSet<u32>>,
    /// Cancelled when the coordinator is dropped: its shards' supervisors stop
    /// their actors.
    dropped: CancellationToken,
}

impl Drop for GroupCoordinator {
    fn drop(&mut self) {
        self.dropped.cancel();
    }
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
                clock: Arc::new(SystemClock),
                next_actor_id: AtomicU64::new(1),
            }),
            node_id,
            slots: Mutex::default(),
            cluster: None,
            maybe_recorded_here: Mutex::new((0..COORDINATOR_SHARDS).collect()),
            dropped: CancellationToken::new(),
        }
    }

    /// Coordinates only the shards `cluster` places on this agent; requests for
    /// the others get `NOT_COORDINATOR`. A shard placed here is taken only once
    /// no other agent live in `cluster` holds it.
    pub fn with_cluster(mut self, cluster: Arc<crate::cluster::ClusterView>) -> Self {
        self.cluster = Some(cluster);
        self
    }

    /// Expires offsets by `clock` (default: the system clock). It must be the
    /// metadata store's clock, which stamps commits and group writes.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        let context = &self.context;
        self.context = Arc::new(Context {
            store: context.store.clone(),
            ids: context.ids.clone(),
            settings: context.settings,
            clock,
            next_actor_id: AtomicU64::new(
                context
                    .next_actor_id
                    .load(std::sync::atomic::Ordering::Relaxed),
            ),
        });
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
    /// not hold it. With a cluster view, a shard another live agent holds is
    /// not taken (`COORDINATOR_NOT_AVAILABLE`): that agent releases it once its
    /// own view places the shard here, or stops being live. Taking it anyway
    /// would fence what it is writing, and two agents whose views disagree
    /// would take the shard from each other with ever newer epochs.
    async fn shard_at(&self, index: u32) -> Result<Arc<GroupShard>, GroupError> {
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

    /// The actor of `group_id`: a dead one is replaced by one loaded from
    /// metadata; an absent one is created (as an empty group) if `create`.
    async fn handle(
        &self,
        group_id: &str,
        create: bool,
    ) -> Result<Option<GroupHandle>, GroupError> {
        let shard = self.shard_at(coordinator_shard_of(group_id)).await?;
        for _ in 0..LOOKUP_ATTEMPTS {
            match shard.lookup(group_id).ok_or(GroupError::NotCoordinator)? {
                Lookup::Alive(handle) => return Ok(Some(handle)),
                Lookup::Dead { actor_id } => {
                    if let Some(handle) = reload(&self.context, &shard, group_id, actor_id).await? {
                        return Ok(Some(handle));
                    }
                    // Gone from metadata (deleted), or replaced meanwhile.
                }
                Lookup::Absent if !create => return Ok(None),
                Lookup::Absent => {
                    let started = shard.start(group_id, Expect::Absent, || {
                        let group = Group::new(group_id);
                        actor::build(self.context.clone(), shard.lease().clone(), group, false)
                    });
                    match started {
                        Start::New(handle) | Start::Running(handle) => {
                            return Ok(Some(handle));
                        }
                        Start::Changed => {}
                        Start::Lost => return Err(GroupError::NotCoordinator),
                    }
                }
            }
        }
        Err(GroupError::CoordinatorNotAvailable)
    }

    /// Sends a command to the group's actor and waits for its answer; `None` if
    /// the group does not exist and `create` is false.
    async fn call<T>(
        &self,
        group_id: &str,
        create: bool,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<Option<T>, GroupError> {
        let (reply, answer) = oneshot::channel();
        let mut command = command(reply);
        // An actor that ended between the lookup and the send is replaced on
        // the second lookup.
        for _ in 0..2 {
            let Some(handle) = self.handle(group_id, create).await? else {
                return Ok(None);
            };
            match handle.commands.send(command).await {
                Ok(()) => {
                    // An actor that ends without answering lost its shard, was
                    // deleted meanwhile, or panicked: the client retries.
                    return answer
                        .await
                        .map(Some)
                        .map_err(|_| GroupError::NotCoordinator);
                }
                Err(returned) => command = returned.0,
            }
        }
        Err(GroupError::NotCoordinator)
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
            listings.extend(
                shard
                    .running()
                    .iter()
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

    /// Tests only: makes the group's actor panic; `NotCoordinator` once it did.
    #[cfg(test)]
    pub(crate) async fn inject_actor_panic(&self, group_id: &str) -> Result<(), GroupError> {
        self.call(group_id, false, Command::Panic)
            .await?
            .ok_or(GroupError::GroupIdNotFound)
    }
}

/// Loads `group_id` from metadata and starts its actor in place of the dead
/// actor `dead_actor_id`. `None` if the group is gone from metadata (its entry
/// is forgotten) or another actor took the dead one's place meanwhile and
/// ended too (look again).
async fn reload(
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
async fn supervise(
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
