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
//!
//! # Parts
//!
//! | module | holds |
//! |---|---|
//! | this one | [`GroupCoordinator`] itself: its construction, where shards are placed, group id checks |
//! | `shards` | taking a shard (fenced by a new epoch, its groups loaded) and releasing the shards placed elsewhere |
//! | `supervision` | the task watching a shard's actors, and reloading a dead actor's group from metadata |
//! | `routing` | finding a group's actor and sending it the member protocol's requests (join, sync, heartbeat, leave, commits) |
//! | `admin` | describing, listing and deleting groups, and `OffsetDelete` |
//! | `expiry` | the expiry pass and its loop (`offsets.retention.check.interval.ms`) |
//!
//! Dependencies between them point one way: `admin` → `routing` → `shards`
//! → `supervision`, and `expiry` → `shards`.

mod admin;
mod expiry;
mod routing;
mod shards;
mod supervision;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjord_common::{Clock, IdGenerator, SystemClock};
use fjord_metadata::{COORDINATOR_SHARDS, MetadataStore, coordinator_shard_of};
use tokio_util::sync::CancellationToken;

pub use expiry::ExpiryReport;
use shards::ShardSlot;

use super::actor::{Context, GroupHandle, TopicsCache};
use super::shard::Shard;
use super::{GroupError, GroupSettings};

/// Longest group id accepted (metadata keys hold it with a topic name).
const MAX_GROUP_ID_BYTES: usize = 4_096;

/// How long an unloaded shard's actors get to finish their current command
/// before they are aborted.
const SHARD_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

type GroupShard = Shard<GroupHandle>;

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
                topics: TopicsCache::default(),
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
            topics: TopicsCache::default(),
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

    /// The fence of coordinator shard `index`, taken if this agent does not
    /// hold it: the transaction coordinator writes under the same shards.
    pub(crate) async fn shard_fence(
        &self,
        index: u32,
    ) -> Result<fjord_metadata::ShardFence, GroupError> {
        Ok(self.shard_at(index).await?.fence())
    }

    /// Whether this agent should coordinate shard `index` now.
    pub(crate) fn coordinates_shard(&self, index: u32) -> bool {
        self.placed_here(index)
    }

    /// The node id of the agent that should coordinate shard `index`.
    pub(crate) fn shard_owner(&self, index: u32) -> i32 {
        self.owner_of_shard(index)
    }

    /// A new member id (a UUID), for members that do not make their own.
    pub fn new_member_id(&self) -> String {
        self.context.ids.uuid().to_string()
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
}
