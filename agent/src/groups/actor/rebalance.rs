//! The rebalance flows of a group actor: joins (first, known, pending and
//! static members), preparing and completing the join phase, and the sync that
//! distributes the leader's assignment.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use fjord_metadata::GroupPhase;
use tokio::time::Instant;

use super::{
    GroupActor, MEMBER_ID_PREFIX_CHARS, MIN_REBALANCE_TIMEOUT, NEW_MEMBER_JOIN_TIMEOUT, Reply,
    truncated,
};
use crate::groups::GroupError;
use crate::groups::state::{GroupState, InitialJoin, Member, PendingJoin, millis};
use crate::groups::types::*;

impl GroupActor {
    // ----- join -----

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

    pub(super) fn maybe_prepare_rebalance(&mut self, now: Instant, reason: &str) {
        if matches!(
            self.group.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(now, reason);
        }
    }

    /// Fails every pending sync with `error` and forgets the assignments.
    fn reset_assignments(&mut self, error: &GroupError) {
        for member in self.group.members.values_mut() {
            member.assignment = Bytes::new();
            member.answer_sync(SyncResponse::failed(error.clone()));
        }
    }

    pub(super) fn prepare_rebalance(&mut self, now: Instant, reason: &str) {
        if self.group.state == GroupState::CompletingRebalance {
            self.reset_assignments(&GroupError::RebalanceInProgress);
        }
        let settings = &self.context.settings;
        let group = &mut self.group;
        group.pending_sync.clear();
        group.sync_deadline = None;
        let rebalance_timeout = group.rebalance_timeout().max(MIN_REBALANCE_TIMEOUT);
        if group.state == GroupState::Empty {
            let delay = settings.initial_rebalance_delay.min(rebalance_timeout);
            group.join_deadline = Some(now + delay);
            group.initial_join = Some(InitialJoin {
                remaining: rebalance_timeout.saturating_sub(delay),
                new_member_added: false,
            });
        } else {
            group.join_deadline = Some(now + rebalance_timeout);
            group.initial_join = None;
        }
        group.state = GroupState::PreparingRebalance;
        group.rebalance_started = Some(now);
        tracing::info!(
            group = %group.group_id,
            generation = group.generation,
            members = group.members.len(),
            reason,
            "preparing rebalance"
        );
    }

    /// Completes the join phase once every member rejoined (not during the
    /// initial delay, which always runs its course).
    pub(super) async fn after_event(&mut self, now: Instant) {
        let group = &self.group;
        if group.state == GroupState::PreparingRebalance
            && group.initial_join.is_none()
            && group.all_joined()
        {
            self.complete_join(now).await;
        }
    }

    /// Makes sure the leader is a member that rejoined. False when no member did.
    fn elect_joined_leader(&mut self) -> bool {
        let group = &mut self.group;
        let Some(leader) = &group.leader else {
            return false;
        };
        if group
            .members
            .get(leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match group.members.values().find(|m| m.awaiting_join.is_some()) {
            Some(joined) => {
                group.leader = Some(joined.member_id.clone());
                true
            }
            None => false,
        }
    }

    pub(super) async fn complete_join(&mut self, now: Instant) {
        let not_rejoined: Vec<String> = self
            .group
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in not_rejoined {
            tracing::info!(group = %self.group.group_id, member = %member_id, "member did not rejoin in time; removed");
            self.group.remove_member(&member_id);
        }
        if !self.elect_joined_leader() && !self.group.members.is_empty() {
            // Only static members that have not rejoined remain: wait for them
            // (or for their sessions to expire).
            self.group.join_deadline =
                Some(now + self.group.rebalance_timeout().max(MIN_REBALANCE_TIMEOUT));
            return;
        }
        let next_generation = self.group.generation.checked_add(1).unwrap_or(1);
        let (phase, protocol_name) = if self.group.members.is_empty() {
            (GroupPhase::Empty, None)
        } else {
            (GroupPhase::AwaitingSync, self.group.select_protocol())
        };
        let mut record = self.group.to_record(phase);
        record.generation = next_generation;
        record.protocol_name = protocol_name.clone();
        for member in &mut record.members {
            member.assignment.clear();
        }
        if let Err(error) = self.persist(&record).await {
            for member in self.group.members.values_mut() {
                member.answer_join(JoinResponse::failed(
                    error.clone(),
                    member.member_id.clone(),
                ));
            }
            if !self.stopped() {
                // Members retry their joins; the phase completes again then.
                self.group.join_deadline =
                    Some(now + self.group.rebalance_timeout().max(MIN_REBALANCE_TIMEOUT));
            }
            return;
        }

        let group = &mut self.group;
        group.generation = next_generation;
        group.protocol_name = protocol_name;
        group.join_deadline = None;
        group.initial_join = None;
        let elapsed = group
            .rebalance_started
            .map(|started| now.duration_since(started));
        if group.members.is_empty() {
            group.state = GroupState::Empty;
            tracing::info!(group = %group.group_id, generation = group.generation, "group is empty");
            return;
        }
        group.state = GroupState::CompletingRebalance;
        let members = group.joined_members();
        let base = group.join_answer("", false, None, false);
        let leader = group.leader.clone();
        let mut rebalance_timeout = Duration::ZERO;
        for member in group.members.values_mut() {
            let is_leader = leader.as_deref() == Some(member.member_id.as_str());
            member.answer_join(JoinResponse {
                member_id: member.member_id.clone(),
                members: if is_leader {
                    members.clone()
                } else {
                    Vec::new()
                },
                ..base.clone()
            });
            member.is_new = false;
            member.session_deadline = now + member.session_timeout;
            rebalance_timeout = rebalance_timeout.max(member.rebalance_timeout);
            group.pending_sync.insert(member.member_id.clone());
        }
        group.sync_deadline = Some(now + rebalance_timeout.max(MIN_REBALANCE_TIMEOUT));
        tracing::info!(
            group = %group.group_id,
            generation = group.generation,
            protocol = group.protocol_name.as_deref().unwrap_or(""),
            members = group.members.len(),
            join_phase_ms = elapsed.map_or(0, |e| e.as_millis()),
            "generation formed"
        );
    }

    // ----- sync -----

    pub(super) async fn sync(
        &mut self,
        request: SyncRequest,
        reply: Reply<SyncResponse>,
        now: Instant,
    ) {
        let group = &self.group;
        if group.state == GroupState::Dead {
            let _ = reply.send(SyncResponse::failed(GroupError::CoordinatorNotAvailable));
            return;
        }
        let checked = group
            .validate_member(&request.member_id, request.group_instance_id.as_deref())
            .and_then(|()| {
                if request.generation != group.generation {
                    Err(GroupError::IllegalGeneration)
                } else if request
                    .protocol_type
                    .as_ref()
                    .is_some_and(|t| group.protocol_type.as_ref() != Some(t))
                    || request
                        .protocol_name
                        .as_ref()
                        .is_some_and(|n| group.protocol_name.as_ref() != Some(n))
                {
                    Err(GroupError::InconsistentGroupProtocol)
                } else {
                    Ok(())
                }
            });
        if let Err(error) = checked {
            let _ = reply.send(SyncResponse::failed(error));
            return;
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => {
                let _ = reply.send(SyncResponse::failed(GroupError::UnknownMemberId));
            }
            GroupState::PreparingRebalance => {
                let _ = reply.send(SyncResponse::failed(GroupError::RebalanceInProgress));
            }
            GroupState::CompletingRebalance => {
                let is_leader = group.is_leader(&request.member_id);
                let group = &mut self.group;
                group.pending_sync.remove(&request.member_id);
                if let Some(member) = group.members.get_mut(&request.member_id) {
                    member.awaiting_sync = Some(reply);
                }
                if is_leader {
                    self.store_assignment(request.assignments, now).await;
                }
            }
            GroupState::Stable => {
                let group = &mut self.group;
                group.pending_sync.remove(&request.member_id);
                if group.pending_sync.is_empty() {
                    group.sync_deadline = None;
                }
                let protocol_type = group.protocol_type.clone();
                let protocol_name = group.protocol_name.clone();
                if let Some(member) = group.members.get_mut(&request.member_id) {
                    member.session_deadline = now + member.session_timeout;
                    let _ = reply.send(SyncResponse {
                        error: None,
                        protocol_type,
                        protocol_name,
                        assignment: member.assignment.clone(),
                    });
                }
            }
        }
    }

    /// The leader's assignment: persist it, then hand every member its part.
    async fn store_assignment(&mut self, assignments: Vec<(String, Bytes)>, now: Instant) {
        let assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
        let mut record = self.group.to_record(GroupPhase::Stable);
        for member in &mut record.members {
            member.assignment = assignments
                .get(&member.member_id)
                .map(|a| a.to_vec())
                .unwrap_or_default();
        }
        if let Err(error) = self.persist(&record).await {
            if !self.stopped() {
                self.reset_assignments(&error);
                self.maybe_prepare_rebalance(now, "storing the assignment failed");
            } else {
                for member in self.group.members.values_mut() {
                    member.answer_sync(SyncResponse::failed(error.clone()));
                }
            }
            return;
        }
        let group = &mut self.group;
        group.state = GroupState::Stable;
        if group.pending_sync.is_empty() {
            group.sync_deadline = None;
        }
        let protocol_type = group.protocol_type.clone();
        let protocol_name = group.protocol_name.clone();
        for member in group.members.values_mut() {
            member.assignment = assignments
                .get(&member.member_id)
                .cloned()
                .unwrap_or_default();
            let assignment = member.assignment.clone();
            member.answer_sync(SyncResponse {
                error: None,
                protocol_type: protocol_type.clone(),
                protocol_name: protocol_name.clone(),
                assignment,
            });
        }
        tracing::info!(
            group = %group.group_id,
            generation = group.generation,
            members = group.members.len(),
            rebalance_ms = group.rebalance_started.take().map_or(0, |s| now.duration_since(s).as_millis()),
            "group stable"
        );
    }
}
