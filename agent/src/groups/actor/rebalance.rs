//! The join phase of a rebalance in a group actor: preparing it (the
//! initial delay of a first generation, the rebalance timeout otherwise) and
//! completing it once every member rejoined or the time is up (the new
//! generation persisted before any member is answered).

use std::time::Duration;

use bytes::Bytes;
use fjord_metadata::GroupPhase;
use tokio::time::Instant;

use super::{GroupActor, MIN_REBALANCE_TIMEOUT};
use crate::groups::GroupError;
use crate::groups::state::{GroupState, InitialJoin};
use crate::groups::types::*;

impl GroupActor {
    pub(super) fn maybe_prepare_rebalance(&mut self, now: Instant, reason: &str) {
        if matches!(
            self.group.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(now, reason);
        }
    }

    /// Fails every pending sync with `error` and forgets the assignments.
    pub(super) fn reset_assignments(&mut self, error: &GroupError) {
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
}
