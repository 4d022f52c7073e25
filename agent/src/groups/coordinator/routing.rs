//! Requests of the member protocol routed to their group's actor: finding (or
//! creating, or reloading) the actor, sending it a command and awaiting its
//! answer; `FindCoordinator`, `JoinGroup`, `SyncGroup`, `Heartbeat`,
//! `LeaveGroup`, `OffsetCommit` and `OffsetFetch`.

use fjord_metadata::{GroupOffset, coordinator_shard_of};
use tokio::sync::oneshot;

use super::GroupCoordinator;
use super::supervision::reload;
use crate::groups::GroupError;
use crate::groups::actor::{self, Command, GroupHandle};
use crate::groups::shard::{Expect, Lookup, Start};
use crate::groups::state::{Group, millis};
use crate::groups::types::*;

/// How many times a request looks a group up while its actor is being
/// replaced, before it answers `COORDINATOR_NOT_AVAILABLE`.
const LOOKUP_ATTEMPTS: usize = 4;

impl GroupCoordinator {
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
    pub(super) async fn call<T>(
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
        let session = millis(request.session_timeout_ms);
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

    /// `ConsumerGroupHeartbeat` (KIP-848), and the polls of HTTP and gRPC
    /// members.
    pub async fn consumer_heartbeat(
        &self,
        request: ConsumerHeartbeatRequest,
    ) -> Result<ConsumerHeartbeatResponse, GroupError> {
        Self::validate_group_id(&request.group_id)?;
        if let Some(timeout) = request.session_timeout_ms {
            let settings = &self.context.settings;
            let session = millis(timeout);
            if timeout < 0
                || session < settings.min_session_timeout
                || session > settings.max_session_timeout
            {
                return Err(GroupError::InvalidSessionTimeout);
            }
        }
        let group_id = request.group_id.clone();
        let create = request.member_epoch == 0;
        self.call(&group_id, create, |reply| {
            Command::ConsumerHeartbeat(request, reply)
        })
        .await?
        .unwrap_or(Err(GroupError::UnknownMemberId))
    }

    /// `ConsumerGroupDescribe` of one group.
    pub async fn consumer_describe(
        &self,
        group_id: &str,
    ) -> Result<ConsumerGroupDescription, GroupError> {
        Self::validate_group_id(group_id)?;
        self.call(group_id, false, Command::ConsumerDescribe)
            .await?
            .unwrap_or(Err(GroupError::GroupIdNotFound))
    }

    /// Checks that a consumer-protocol member is at `member_epoch` (an
    /// `OffsetFetch` v9+ naming its member); classic groups pass.
    pub async fn validate_member_epoch(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
    ) -> Result<(), GroupError> {
        Self::validate_group_id(group_id)?;
        let member_id = member_id.to_owned();
        self.call(group_id, false, |reply| Command::ValidateMemberEpoch {
            member_id,
            member_epoch,
            reply,
        })
        .await?
        .unwrap_or(Err(GroupError::UnknownMemberId))
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

    /// Tests only: makes the group's actor panic; `NotCoordinator` once it did.
    #[cfg(test)]
    pub(crate) async fn inject_actor_panic(&self, group_id: &str) -> Result<(), GroupError> {
        self.call(group_id, false, Command::Panic)
            .await?
            .ok_or(GroupError::GroupIdNotFound)
    }
}
