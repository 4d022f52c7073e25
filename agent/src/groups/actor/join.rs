//! The joins of a group actor: a first join (a member id handed out, or the
//! member added at once), a known or pending member's rejoin, and a static
//! member that comes back with a new process and replaces its old member id.

use bytes::Bytes;
use fjord_metadata::GroupPhase;
use tokio::time::Instant;

use super::{
    GroupActor, MEMBER_ID_PREFIX_CHARS, MIN_REBALANCE_TIMEOUT, NEW_MEMBER_JOIN_TIMEOUT, Reply,
    truncated,
};
use crate::groups::GroupError;
use crate::groups::state::{GroupState, Member, PendingJoin, millis};
use crate::groups::types::*;

impl GroupActor {
    pub(super) async fn join(
        &mut self,
        request: JoinRequest,
        reply: Reply<JoinResponse>,
        now: Instant,
    ) {
        if self.group.state == GroupState::Dead {
            let _ = reply.send(JoinResponse::failed(
                GroupError::CoordinatorNotAvailable,
                request.member_id,
            ));
            return;
        }
        if self.group.has_consumer_members() {
            // Members of the server-side protocol own the group.
            let _ = reply.send(JoinResponse::failed(
                GroupError::InconsistentGroupProtocol,
                request.member_id,
            ));
            return;
        }
        if self.group.consumer.take().is_some() {
            // An empty consumer-protocol group turns classic (Kafka's
            // downgrade of an empty group); its offsets stay.
            tracing::info!(group = %self.group.group_id, "empty consumer-protocol group converted to a classic group");
        }
        if !self
            .group
            .supports_protocols(&request.protocol_type, &request.protocols)
        {
            let _ = reply.send(JoinResponse::failed(
                GroupError::InconsistentGroupProtocol,
                request.member_id,
            ));
            return;
        }
        if request.member_id.is_empty() {
            self.join_new_member(request, reply, now).await;
        } else {
            self.join_known_member(request, reply, now).await;
        }
    }

    fn new_member_id(&self, request: &JoinRequest) -> String {
        let prefix = request
            .group_instance_id
            .as_deref()
            .unwrap_or(&request.client_id);
        format!(
            "{}-{}",
            truncated(prefix, MEMBER_ID_PREFIX_CHARS),
            self.context.ids.uuid()
        )
    }

    async fn join_new_member(
        &mut self,
        request: JoinRequest,
        reply: Reply<JoinResponse>,
        now: Instant,
    ) {
        let member_id = self.new_member_id(&request);
        if let Some(instance) = request.group_instance_id.clone() {
            match self.group.static_members.get(&instance).cloned() {
                Some(old_member_id) => {
                    self.replace_static_member(old_member_id, member_id, request, reply, now)
                        .await;
                }
                None => self.add_member_and_rebalance(member_id, request, reply, now),
            }
        } else if request.require_known_member_id {
            // The member must come back with this id: only then is it counted,
            // so a client that never sees the answer leaves no member behind.
            let deadline = now + millis(request.session_timeout_ms);
            self.group
                .pending_members
                .insert(member_id.clone(), deadline);
            let _ = reply.send(JoinResponse::failed(
                GroupError::MemberIdRequired,
                member_id,
            ));
        } else {
            self.add_member_and_rebalance(member_id, request, reply, now);
        }
    }

    async fn join_known_member(
        &mut self,
        request: JoinRequest,
        reply: Reply<JoinResponse>,
        now: Instant,
    ) {
        let member_id = request.member_id.clone();
        if self.group.pending_members.remove(&member_id).is_some() {
            if request.group_instance_id.is_some() {
                // Pending ids are handed out to dynamic members only; a static
                // member never needs one. Refusing keeps one member per instance.
                let _ = reply.send(JoinResponse::failed(GroupError::UnknownMemberId, member_id));
                return;
            }
            self.add_member_and_rebalance(member_id, request, reply, now);
            return;
        }
        if let Err(error) = self
            .group
            .validate_member(&member_id, request.group_instance_id.as_deref())
        {
            let _ = reply.send(JoinResponse::failed(error, member_id));
            return;
        }
        let group = &self.group;
        let Some(member) = group.members.get(&member_id) else {
            let _ = reply.send(JoinResponse::failed(GroupError::UnknownMemberId, member_id));
            return;
        };
        let unchanged = member.same_protocols(&request.protocols);
        match group.state {
            GroupState::PreparingRebalance => {
                self.update_member_and_rebalance(request, reply, now);
            }
            GroupState::CompletingRebalance if unchanged => {
                // The member missed its join answer: give it again.
                let answer =
                    group.join_answer(&member_id, group.is_leader(&member_id), None, false);
                let _ = reply.send(answer);
            }
            GroupState::Stable if unchanged && !group.is_leader(&member_id) => {
                // A follower rejoining with the same metadata: nothing to do. (A
                // leader's join always rebalances: it is how a consumer leader
                // asks for a new assignment after topic metadata changed.)
                let answer = group.join_answer(&member_id, false, None, false);
                let _ = reply.send(answer);
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(request, reply, now);
            }
            GroupState::Empty | GroupState::Dead => {
                let _ = reply.send(JoinResponse::failed(GroupError::UnknownMemberId, member_id));
            }
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        member_id: String,
        request: JoinRequest,
        reply: Reply<JoinResponse>,
        now: Instant,
    ) {
        let group = &mut self.group;
        if group.members.is_empty() {
            group.protocol_type = Some(request.protocol_type.clone());
        }
        if let Some(instance) = &request.group_instance_id {
            group
                .static_members
                .insert(instance.clone(), member_id.clone());
        }
        if group.leader.is_none() {
            group.leader = Some(member_id.clone());
        }
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id,
            client_id: request.client_id,
            client_host: request.client_host,
            session_timeout: millis(request.session_timeout_ms),
            rebalance_timeout: millis(request.rebalance_timeout_ms).max(MIN_REBALANCE_TIMEOUT),
            protocols: request.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(PendingJoin {
                reply,
                supports_skip_assignment: request.supports_skip_assignment,
            }),
            awaiting_sync: None,
            is_new: true,
            session_deadline: now + NEW_MEMBER_JOIN_TIMEOUT,
        };
        group.members.insert(member_id.clone(), member);
        if let Some(initial) = &mut group.initial_join {
            initial.new_member_added = true;
        }
        tracing::info!(group = %group.group_id, member = %member_id, "member joined");
        self.maybe_prepare_rebalance(now, "a member joined");
    }

    fn update_member_and_rebalance(
        &mut self,
        request: JoinRequest,
        reply: Reply<JoinResponse>,
        now: Instant,
    ) {
        if let Some(member) = self.group.members.get_mut(&request.member_id) {
            member.protocols = request.protocols;
            member.session_timeout = millis(request.session_timeout_ms);
            member.rebalance_timeout =
                millis(request.rebalance_timeout_ms).max(MIN_REBALANCE_TIMEOUT);
            member.client_id = request.client_id;
            member.client_host = request.client_host;
            // A join already waiting (a client that reconnected) is superseded.
            member.awaiting_join = Some(PendingJoin {
                reply,
                supports_skip_assignment: request.supports_skip_assignment,
            });
        }
        self.maybe_prepare_rebalance(now, "a member rejoined");
    }

    async fn replace_static_member(
        &mut self,
        old_member_id: String,
        new_member_id: String,
        request: JoinRequest,
        reply: Reply<JoinResponse>,
        now: Instant,
    ) {
        let group = &mut self.group;
        let Some(mut old) = group.members.remove(&old_member_id) else {
            let _ = reply.send(JoinResponse::failed(
                GroupError::UnknownMemberId,
                new_member_id,
            ));
            return;
        };
        // The replaced process is fenced: its outstanding requests learn so.
        old.answer_join(JoinResponse::failed(
            GroupError::FencedInstanceId,
            old_member_id.clone(),
        ));
        old.answer_sync(SyncResponse::failed(GroupError::FencedInstanceId));
        let leader_before = group.leader.clone();
        let was_pending_sync = group.pending_sync.remove(&old_member_id);
        let instance = request.group_instance_id.clone().unwrap_or_default();
        let replacement = Member {
            member_id: new_member_id.clone(),
            group_instance_id: old.group_instance_id.clone(),
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            session_timeout: millis(request.session_timeout_ms),
            rebalance_timeout: millis(request.rebalance_timeout_ms).max(MIN_REBALANCE_TIMEOUT),
            protocols: request.protocols.clone(),
            assignment: old.assignment.clone(),
            awaiting_join: Some(PendingJoin {
                reply,
                supports_skip_assignment: request.supports_skip_assignment,
            }),
            awaiting_sync: None,
            is_new: false,
            session_deadline: now + millis(request.session_timeout_ms),
        };
        group.members.insert(new_member_id.clone(), replacement);
        group
            .static_members
            .insert(instance.clone(), new_member_id.clone());
        if leader_before.as_deref() == Some(old_member_id.as_str()) {
            group.leader = Some(new_member_id.clone());
        }
        if was_pending_sync {
            group.pending_sync.insert(new_member_id.clone());
        }
        tracing::info!(
            group = %group.group_id,
            instance = %instance,
            old_member = %old_member_id,
            new_member = %new_member_id,
            "static member replaced"
        );
        match group.state {
            GroupState::Stable => {
                if group.select_protocol() != group.protocol_name {
                    self.maybe_prepare_rebalance(now, "a static member changed the protocol");
                    return;
                }
                // Same generation, same assignment: persist the new member id and
                // answer without a rebalance.
                let record = group.to_record(GroupPhase::Stable);
                match self.persist(&record).await {
                    Ok(()) => {
                        let group = &mut self.group;
                        let is_leader = group.is_leader(&new_member_id);
                        let supports_skip = group
                            .members
                            .get(&new_member_id)
                            .and_then(|m| m.awaiting_join.as_ref())
                            .is_some_and(|p| p.supports_skip_assignment);
                        // Before v9 the old leader id is returned, so a restarted
                        // leader does not compute an assignment a stable group
                        // would ignore; from v9 it learns it leads but skips the
                        // assignment.
                        let answer = if supports_skip {
                            group.join_answer(&new_member_id, is_leader, None, is_leader)
                        } else {
                            group.join_answer(&new_member_id, false, leader_before, false)
                        };
                        if let Some(member) = group.members.get_mut(&new_member_id) {
                            member.answer_join(answer);
                        }
                    }
                    Err(error) => {
                        if self.stopped() {
                            return;
                        }
                        // Undo the replacement: the old member id stays valid.
                        let group = &mut self.group;
                        if let Some(mut replacement) = group.members.remove(&new_member_id) {
                            replacement.answer_join(JoinResponse::failed(error, ""));
                        }
                        old.session_deadline = now + old.session_timeout;
                        group.members.insert(old_member_id.clone(), old);
                        group.static_members.insert(instance, old_member_id.clone());
                        group.leader = leader_before;
                        if group.pending_sync.remove(&new_member_id) {
                            group.pending_sync.insert(old_member_id);
                        }
                    }
                }
            }
            GroupState::CompletingRebalance => {
                // The leader may be assigning to the old member id: rebalance so
                // the new id gets an assignment.
                self.prepare_rebalance(now, "a static member rejoined during a sync");
            }
            GroupState::PreparingRebalance => {}
            GroupState::Empty | GroupState::Dead => {
                self.maybe_prepare_rebalance(now, "a static member rejoined");
            }
        }
    }
}
