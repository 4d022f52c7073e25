//! The sync phase of a rebalance in a group actor: members wait for the
//! leader's assignment, which is persisted before each member gets its part.

use std::collections::HashMap;

use bytes::Bytes;
use fjord_metadata::GroupPhase;
use tokio::time::Instant;

use super::{GroupActor, Reply};
use crate::groups::GroupError;
use crate::groups::state::GroupState;
use crate::groups::types::*;

impl GroupActor {
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
