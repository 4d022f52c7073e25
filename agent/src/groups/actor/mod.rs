//! The task that owns one group: it applies Kafka's classic group protocol to
//! the group's [`Group`] state, one command at a time, runs its timers, and
//! persists the durable part before answering.
//!
//! This module holds the task (commands, run loop, timers, persistence,
//! heartbeats and leaves); a rebalance's flows by phase: `join` the joins
//! (first, known, pending and static members), `rebalance` preparing and
//! completing the join phase, `sync` the sync that distributes the leader's
//! assignment; `offsets` commits, deletion and `OffsetDelete`; `expiry` the
//! expiry of offsets and of empty groups (`offsets.retention.minutes`).
//!
//! An actor is a future ([`build`]) that the coordinator runs in its shard's
//! supervised set ([`super::shard`]); it ends with an [`ActorExit`] saying why,
//! and never touches the shard's registry.
//!
//! # Flows (Apache Kafka's `GroupCoordinator` semantics)
//!
//! - **Join.** A first join without a member id gets `MEMBER_ID_REQUIRED` and an
//!   id (JoinGroup v4+), or joins at once (older versions, static members). A
//!   join moves the group to `PreparingRebalance`; the join phase completes when
//!   every member has rejoined (or at the rebalance timeout, dropping dynamic
//!   members that did not; the first generation waits out
//!   `group.initial.rebalance.delay.ms`, extended while members keep arriving).
//!   Completing persists the new generation, then answers every waiting join —
//!   the leader's answer lists the members and their metadata.
//! - **Sync.** The leader's `SyncGroup` carries the assignment: it is persisted,
//!   then every waiting member gets its part and the group is `Stable`.
//! - **Static members** (`group.instance.id`) that rejoin with a new process
//!   replace their old member id; a `Stable` group whose protocol does not
//!   change keeps its generation and assignment (no rebalance). The replaced
//!   member id is fenced (`FENCED_INSTANCE_ID`).
//! - **Timers.** A member expires when its session timeout passes without a
//!   heartbeat (not while it waits in a join or sync); members that do not sync
//!   within the rebalance timeout are removed; both trigger a rebalance.
//!
//! # Persistence and fencing
//!
//! Every durable change (a new generation, an assignment, a replaced static
//! member, offsets, deletion) is written with the shard's fence before the
//! members learn of it. A write that finds the shard's epoch moved on means
//! another coordinator owns the shard: the actor answers `NOT_COORDINATOR`, marks
//! the shard's lease lost and ends ([`ActorExit::Fenced`]); the shard's other
//! actors end at their next event ([`ActorExit::Stopped`]).
//!
//! # Invariants
//!
//! - What the actor holds in memory is what it persisted plus what Kafka does
//!   not persist (pending joins and syncs, timers): an actor rebuilt from
//!   metadata ([`Group::from_record`]) after this one died resumes the group's
//!   generation, protocol, members and assignments.
//! - One command at a time: a command's metadata writes finish before the next
//!   command is read, so the actor is its group's only writer on this agent.
//! - Once it decided to end (deleted, fenced, shard lost) it reads no further
//!   command; requests still queued are answered `NOT_COORDINATOR` (their
//!   answer channels close).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fjord_common::{Clock, IdGenerator};
use fjord_metadata::{GroupRecord, MetadataError, MetadataStore};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

mod consumer;
mod expiry;
mod join;
mod offsets;
mod rebalance;
mod sync;

pub(crate) use consumer::TopicsCache;
pub(crate) use expiry::GroupExpiry;

use super::shard::{ActorExit, ActorHandle, ShardLease};
use super::state::{Group, GroupState};
use super::types::*;
use super::{GroupError, GroupSettings};

/// How long a new member's first join may wait for its generation before it
/// expires (Kafka's `NewMemberJoinTimeoutMs`): a client that gave up on a long
/// rebalance retries with a new join, and the abandoned member must not block.
const NEW_MEMBER_JOIN_TIMEOUT: Duration = Duration::from_secs(300);

/// The shortest rebalance timeout honoured, so a client sending zero cannot make
/// the group's timers spin.
const MIN_REBALANCE_TIMEOUT: Duration = Duration::from_millis(100);

/// Longest prefix (from the client or instance id) of a generated member id.
const MEMBER_ID_PREFIX_CHARS: usize = 128;

/// The protocol type of Kafka consumers, whose subscriptions the coordinator
/// reads (for `OffsetDelete`).
const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

type Reply<T> = oneshot::Sender<T>;

/// What a group actor is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    Join(JoinRequest, Reply<JoinResponse>),
    Sync(SyncRequest, Reply<SyncResponse>),
    Heartbeat(HeartbeatRequest, Reply<Result<(), GroupError>>),
    Leave(
        Vec<LeavingMember>,
        Reply<Result<Vec<Result<(), GroupError>>, GroupError>>,
    ),
    Commit(CommitRequest, Reply<Result<(), GroupError>>),
    Describe(Reply<GroupDescription>),
    /// A `ConsumerGroupHeartbeat` (KIP-848) or a poll of an HTTP or gRPC member.
    ConsumerHeartbeat(
        ConsumerHeartbeatRequest,
        Reply<Result<ConsumerHeartbeatResponse, GroupError>>,
    ),
    /// `ConsumerGroupDescribe`.
    ConsumerDescribe(Reply<Result<ConsumerGroupDescription, GroupError>>),
    /// Checks a member's epoch (an `OffsetFetch` of a consumer-protocol
    /// member).
    ValidateMemberEpoch {
        member_id: String,
        member_epoch: i32,
        reply: Reply<Result<(), GroupError>>,
    },
    Delete(Reply<Result<(), GroupError>>),
    DeleteOffsets(
        Vec<(String, i32)>,
        Reply<Result<Vec<Option<GroupError>>, GroupError>>,
    ),
    /// Expire offsets (and the group, if empty with none left) as of `now_ms`
    /// by the coordinator's clock.
    Expire {
        now_ms: i64,
        reply: Reply<Result<GroupExpiry, GroupError>>,
    },
    /// Tests only: the actor panics while handling it (as a bug would).
    #[cfg(test)]
    Panic(Reply<()>),
}

/// What the actors of one coordinator share.
#[derive(Debug)]
pub(crate) struct Context {
    pub(crate) store: MetadataStore,
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) settings: GroupSettings,
    /// Wall-clock time for offset expiry: the metadata store's clock, which
    /// stamps commits and group writes.
    pub(crate) clock: Arc<dyn Clock>,
    /// The id of the next actor started.
    pub(crate) next_actor_id: AtomicU64,
    /// The topics as last read, for consumer-protocol assignments.
    pub(crate) topics: TopicsCache,
}

/// A way to reach a group's actor.
#[derive(Debug, Clone)]
pub(crate) struct GroupHandle {
    /// Tells this actor apart from a later one of the same group.
    pub(crate) actor_id: u64,
    pub(crate) commands: mpsc::Sender<Command>,
    pub(crate) listing: watch::Receiver<GroupListing>,
}

impl ActorHandle for GroupHandle {
    fn actor_id(&self) -> u64 {
        self.actor_id
    }

    fn is_alive(&self) -> bool {
        !self.commands.is_closed()
    }
}

/// Commands queued per group before senders wait.
const COMMAND_QUEUE: usize = 256;

/// The actor of `group` (a future the caller runs, in its shard's supervised
/// set) and its handle. `rebalance_on_start`: the group was stored before its
/// leader's assignment arrived, so it rebalances at once.
pub(crate) fn build(
    context: Arc<Context>,
    lease: Arc<ShardLease>,
    group: Group,
    rebalance_on_start: bool,
) -> (
    GroupHandle,
    impl Future<Output = ActorExit> + Send + 'static,
) {
    let actor_id = context.next_actor_id.fetch_add(1, Ordering::Relaxed);
    let (commands, receiver) = mpsc::channel(COMMAND_QUEUE);
    let (listing_sender, listing) = watch::channel(group.listing());
    let actor = GroupActor {
        group,
        context,
        lease,
        listing: listing_sender,
        exit: None,
    };
    let handle = GroupHandle {
        actor_id,
        commands,
        listing,
    };
    (handle, actor.run(receiver, rebalance_on_start))
}

struct GroupActor {
    group: Group,
    context: Arc<Context>,
    lease: Arc<ShardLease>,
    listing: watch::Sender<GroupListing>,
    /// Set once the actor decided to end (deleted, fenced): it ends after the
    /// current command.
    exit: Option<ActorExit>,
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Truncates `text` to at most `chars` characters.
fn truncated(text: &str, chars: usize) -> &str {
    match text.char_indices().nth(chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

impl GroupActor {
    fn stopped(&self) -> bool {
        self.exit.is_some()
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        rebalance_on_start: bool,
    ) -> ActorExit {
        let group_id = self.group.group_id.clone();
        let lease = self.lease.clone();
        if rebalance_on_start {
            self.prepare_rebalance(Instant::now(), "resumed before the assignment was stored");
        }
        self.track_empty_since();
        while !self.stopped() {
            let deadline = self.group.next_deadline();
            tokio::select! {
                // The shard was lost or unloaded: whatever is queued is answered
                // NOT_COORDINATOR as its reply channel closes.
                () = lease.lost() => {
                    self.exit = Some(ActorExit::Stopped);
                    break;
                }
                command = commands.recv() => match command {
                    Some(command) => self.handle(command).await,
                    // Every handle was dropped.
                    None => {
                        self.exit = Some(ActorExit::Stopped);
                        break;
                    }
                },
                () = sleep_until(deadline) => self.on_timers(Instant::now()).await,
            }
            if !self.stopped() {
                self.after_event(Instant::now()).await;
            }
            self.track_empty_since();
            self.group.debug_assert_invariants();
            if let Some(consumer) = &self.group.consumer {
                consumer.debug_assert_invariants();
            }
            let listing = self.group.listing();
            self.listing.send_if_modified(|current| {
                let changed = *current != listing;
                *current = listing;
                changed
            });
        }
        let exit = self.exit.take().unwrap_or(ActorExit::Stopped);
        tracing::debug!(group = %group_id, ?exit, "group actor ended");
        exit
    }

    /// Keeps `empty_since_ms` (when the group last became empty, for offset
    /// expiry) in step with the state.
    fn track_empty_since(&mut self) {
        if !self.group.is_empty() {
            self.group.empty_since_ms = None;
        } else if self.group.empty_since_ms.is_none() {
            self.group.empty_since_ms = Some(self.context.clock.now_millis());
        }
    }

    async fn handle(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::Join(request, reply) => self.join(request, reply, now).await,
            Command::Sync(request, reply) => self.sync(request, reply, now).await,
            Command::Heartbeat(request, reply) => {
                let _ = reply.send(self.heartbeat(&request, now));
            }
            Command::Leave(members, reply) => {
                let result = if self.group.has_consumer_members() {
                    self.consumer_leave(&members).await
                } else {
                    self.leave(&members, now)
                };
                let _ = reply.send(result);
            }
            Command::ConsumerHeartbeat(request, reply) => {
                let result = self.consumer_heartbeat(request, now).await;
                let _ = reply.send(result);
            }
            Command::ConsumerDescribe(reply) => {
                let result = self.consumer_describe().await;
                let _ = reply.send(result);
            }
            Command::ValidateMemberEpoch {
                member_id,
                member_epoch,
                reply,
            } => {
                let result = match &self.group.consumer {
                    Some(consumer) => consumer.validate_commit(&member_id, member_epoch),
                    None => Ok(()),
                };
                let _ = reply.send(result);
            }
            Command::Commit(request, reply) => {
                let result = self.commit(request, now).await;
                let _ = reply.send(result);
            }
            Command::Describe(reply) => {
                let description = match &self.group.consumer {
                    Some(consumer) => {
                        let consumer = consumer.clone();
                        let topics = self.topics().await.unwrap_or_default();
                        consumer.describe_classic(&self.group.group_id, &topics)
                    }
                    None => self.group.describe(),
                };
                let _ = reply.send(description);
            }
            Command::Delete(reply) => {
                let result = self.delete().await;
                let _ = reply.send(result);
            }
            Command::DeleteOffsets(partitions, reply) => {
                let result = self.delete_offsets(partitions).await;
                let _ = reply.send(result);
            }
            Command::Expire { now_ms, reply } => {
                let result = self.expire(now_ms).await;
                let _ = reply.send(result);
            }
            #[cfg(test)]
            Command::Panic(_reply) => panic!("test-injected panic in group actor"),
        }
    }

    // ----- persistence -----

    /// Maps a failed metadata write; a fenced one loses the shard.
    fn write_failed(&mut self, error: &MetadataError) -> GroupError {
        if let MetadataError::CoordinatorFenced { .. } = error {
            tracing::warn!(group = %self.group.group_id, %error, "coordinator shard lost; unloading its groups");
            self.exit = Some(ActorExit::Fenced);
            self.lease.mark_lost();
        } else {
            tracing::warn!(group = %self.group.group_id, %error, "group write failed");
        }
        GroupError::from_metadata(error)
    }

    async fn persist(&mut self, record: &GroupRecord) -> Result<(), GroupError> {
        let result = self
            .context
            .store
            .store_group(self.lease.fence(), record)
            .await;
        result.map_err(|error| self.write_failed(&error))
    }

    // ----- heartbeat and leave -----

    fn heartbeat(&mut self, request: &HeartbeatRequest, now: Instant) -> Result<(), GroupError> {
        let group = &mut self.group;
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        group.validate_member(&request.member_id, request.group_instance_id.as_deref())?;
        if request.generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        let state = group.state;
        if let Some(member) = group.members.get_mut(&request.member_id) {
            member.session_deadline = now + member.session_timeout;
        }
        match state {
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
        }
    }

    fn remove_member_and_rebalance(&mut self, member_id: &str, now: Instant, reason: &str) {
        if self.group.remove_member(member_id).is_none() {
            return;
        }
        match self.group.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(now, reason);
            }
            // The join phase re-checks whether everyone left has joined.
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {}
        }
    }

    fn leave(
        &mut self,
        members: &[LeavingMember],
        now: Instant,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if self.group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let mut results = Vec::with_capacity(members.len());
        for leaving in members {
            let result = match &leaving.group_instance_id {
                Some(instance) => match self.group.static_members.get(instance).cloned() {
                    None => Err(GroupError::UnknownMemberId),
                    Some(current)
                        if !leaving.member_id.is_empty() && leaving.member_id != current =>
                    {
                        Err(GroupError::FencedInstanceId)
                    }
                    Some(current) => {
                        self.remove_member_and_rebalance(&current, now, "a static member left");
                        Ok(())
                    }
                },
                None => {
                    if self
                        .group
                        .pending_members
                        .remove(&leaving.member_id)
                        .is_some()
                    {
                        Ok(())
                    } else if self.group.members.contains_key(&leaving.member_id) {
                        self.remove_member_and_rebalance(&leaving.member_id, now, "a member left");
                        Ok(())
                    } else {
                        Err(GroupError::UnknownMemberId)
                    }
                }
            };
            if result.is_ok() {
                tracing::info!(group = %self.group.group_id, member = %leaving.member_id, instance = leaving.group_instance_id.as_deref().unwrap_or(""), "member left");
            }
            results.push(result);
        }
        Ok(results)
    }

    // ----- timers -----

    async fn on_timers(&mut self, now: Instant) {
        let expired_pending: Vec<String> = self
            .group
            .pending_members
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for member_id in expired_pending {
            self.group.pending_members.remove(&member_id);
        }
        let expired: Vec<String> = self
            .group
            .members
            .values()
            .filter(|m| m.expired(now))
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in expired {
            tracing::info!(group = %self.group.group_id, member = %member_id, "member session expired");
            self.remove_member_and_rebalance(&member_id, now, "a member's session expired");
        }

        if self.group.join_deadline.is_some_and(|d| d <= now) {
            if self.group.state != GroupState::PreparingRebalance {
                self.group.join_deadline = None;
            } else {
                let initial_delay = self.context.settings.initial_rebalance_delay;
                match &mut self.group.initial_join {
                    Some(initial) if initial.new_member_added && !initial.remaining.is_zero() => {
                        // Members are still arriving: wait a little longer.
                        let delay = initial_delay.min(initial.remaining);
                        initial.remaining = initial.remaining.saturating_sub(delay);
                        initial.new_member_added = false;
                        self.group.join_deadline = Some(now + delay);
                    }
                    _ => {
                        self.group.initial_join = None;
                        self.complete_join(now).await;
                    }
                }
            }
        }

        self.consumer_timers(now).await;

        if self.group.sync_deadline.is_some_and(|d| d <= now) {
            self.group.sync_deadline = None;
            let syncing = matches!(
                self.group.state,
                GroupState::CompletingRebalance | GroupState::Stable
            );
            if syncing && !self.group.pending_sync.is_empty() {
                let laggards = std::mem::take(&mut self.group.pending_sync);
                for member_id in &laggards {
                    tracing::info!(group = %self.group.group_id, member = %member_id, "member did not sync in time; removed");
                    self.group.remove_member(member_id);
                }
                self.prepare_rebalance(now, "members did not sync in time");
            }
        }
    }
}
