//! One group's in-memory state: its members, generation and rebalance phase, with
//! the queries and small mutations the protocol flows ([`super::actor`]) are
//! built from. Nothing here does I/O or reads a clock: times are passed in.
//!
//! Invariants (checked by `debug_assert_invariants` after every change):
//!
//! - every static member's instance id maps to its member id in
//!   `static_members`, and nothing else is there;
//! - the leader, when set, is a member; a group with members has a leader;
//! - members awaiting a join answer exist only while `PreparingRebalance`;
//! - `pending_sync` only names members;
//! - `empty_since_ms` is set only while `Empty` (kept so by the actor).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use bytes::Bytes;
use fjord_metadata::{GroupMemberRecord, GroupPhase, GroupProtocol, GroupRecord};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::consumer::ConsumerGroup;
use super::types::{
    GroupDescription, GroupListing, JoinResponse, JoinedMember, MemberDescription, SyncResponse,
};

/// Kafka's classic group states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GroupState {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// A generation formed; waiting for the leader's assignment.
    CompletingRebalance,
    /// The generation's assignment was distributed.
    Stable,
    /// Deleted.
    Dead,
}

impl GroupState {
    /// The name Kafka's tools show.
    pub(crate) fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// A member's outstanding `JoinGroup`.
#[derive(Debug)]
pub(crate) struct PendingJoin {
    pub(crate) reply: oneshot::Sender<JoinResponse>,
    /// The request's version understands `skip_assignment` (v9+).
    pub(crate) supports_skip_assignment: bool,
}

/// One member.
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    /// Supported protocols with the member's metadata, preferred first.
    pub(crate) protocols: Vec<(String, Bytes)>,
    pub(crate) assignment: Bytes,
    pub(crate) awaiting_join: Option<PendingJoin>,
    pub(crate) awaiting_sync: Option<oneshot::Sender<SyncResponse>>,
    /// Joined but not yet part of a generation.
    pub(crate) is_new: bool,
    /// When the member expires unless it heartbeats (or waits in a join or sync).
    pub(crate) session_deadline: Instant,
}

impl Member {
    /// The member's metadata for `protocol`.
    pub(crate) fn metadata_for(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    /// Whether `protocols` are exactly the member's (names, order and metadata).
    pub(crate) fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }

    /// Whether the session deadline applies: not while the member waits in a
    /// join (unless it is new: a new member's deadline is the longer
    /// new-member join timeout) or in a sync.
    pub(crate) fn can_expire(&self) -> bool {
        let kept_alive =
            (self.awaiting_join.is_some() && !self.is_new) || self.awaiting_sync.is_some();
        !kept_alive
    }

    /// Whether the member has expired at `now`.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.can_expire() && now >= self.session_deadline
    }

    /// Answers a pending join, if any.
    pub(crate) fn answer_join(&mut self, response: JoinResponse) {
        if let Some(pending) = self.awaiting_join.take() {
            let _ = pending.reply.send(response);
        }
    }

    /// Answers a pending sync, if any.
    pub(crate) fn answer_sync(&mut self, response: SyncResponse) {
        if let Some(reply) = self.awaiting_sync.take() {
            let _ = reply.send(response);
        }
    }

    fn to_record(&self) -> GroupMemberRecord {
        GroupMemberRecord {
            member_id: self.member_id.clone(),
            group_instance_id: self.group_instance_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            session_timeout_ms: millis_i32(self.session_timeout),
            rebalance_timeout_ms: millis_i32(self.rebalance_timeout),
            protocols: self
                .protocols
                .iter()
                .map(|(name, metadata)| GroupProtocol {
                    name: name.clone(),
                    metadata: metadata.to_vec(),
                })
                .collect(),
            assignment: self.assignment.to_vec(),
        }
    }

    fn from_record(record: GroupMemberRecord, now: Instant) -> Self {
        let session_timeout = millis(record.session_timeout_ms);
        Self {
            member_id: record.member_id,
            group_instance_id: record.group_instance_id,
            client_id: record.client_id,
            client_host: record.client_host,
            session_timeout,
            rebalance_timeout: millis(record.rebalance_timeout_ms),
            protocols: record
                .protocols
                .into_iter()
                .map(|p| (p.name, Bytes::from(p.metadata)))
                .collect(),
            assignment: Bytes::from(record.assignment),
            awaiting_join: None,
            awaiting_sync: None,
            is_new: false,
            session_deadline: now + session_timeout,
        }
    }
}

/// A positive millisecond count as a duration (negative counts are zero).
pub(crate) fn millis(ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn millis_i32(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

/// The initial-rebalance delay of a group's first generation
/// (`group.initial.rebalance.delay.ms`): the join phase is extended while new
/// members keep arriving, up to the rebalance timeout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InitialJoin {
    /// Extension still available.
    pub(crate) remaining: Duration,
    /// A member joined during the current delay.
    pub(crate) new_member_added: bool,
}

/// One group.
#[derive(Debug)]
pub(crate) struct Group {
    pub(crate) group_id: String,
    pub(crate) state: GroupState,
    pub(crate) protocol_type: Option<String>,
    pub(crate) protocol_name: Option<String>,
    pub(crate) generation: i32,
    pub(crate) leader: Option<String>,
    pub(crate) members: BTreeMap<String, Member>,
    /// Static instance id → member id.
    pub(crate) static_members: HashMap<String, String>,
    /// Member ids handed out with `MEMBER_ID_REQUIRED`, with the deadline by
    /// which they must join.
    pub(crate) pending_members: HashMap<String, Instant>,
    /// When the join phase completes at the latest.
    pub(crate) join_deadline: Option<Instant>,
    pub(crate) initial_join: Option<InitialJoin>,
    /// Members of the generation that have not sent `SyncGroup` yet.
    pub(crate) pending_sync: BTreeSet<String>,
    /// When members still in `pending_sync` are removed.
    pub(crate) sync_deadline: Option<Instant>,
    /// When the current rebalance began (for logs).
    pub(crate) rebalance_started: Option<Instant>,
    /// While `Empty`: when the group became empty, in wall-clock milliseconds
    /// (offsets of an empty group expire counting from then at the earliest).
    pub(crate) empty_since_ms: Option<i64>,
    /// Set for a group of the server-side consumer protocol (KIP-848); the
    /// classic state is then `Empty`, without members.
    pub(crate) consumer: Option<ConsumerGroup>,
}

impl Group {
    /// A new, empty group.
    pub(crate) fn new(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: HashMap::new(),
            join_deadline: None,
            initial_join: None,
            pending_sync: BTreeSet::new(),
            sync_deadline: None,
            rebalance_started: None,
            empty_since_ms: None,
            consumer: None,
        }
    }

    /// Whether no member of either protocol is in the group.
    pub(crate) fn is_empty(&self) -> bool {
        self.state == GroupState::Empty
            && self.consumer.as_ref().is_none_or(ConsumerGroup::is_empty)
    }

    /// Whether the group is a consumer-protocol group with members.
    pub(crate) fn has_consumer_members(&self) -> bool {
        self.consumer.as_ref().is_some_and(|c| !c.is_empty())
    }

    /// A group as persisted: `Empty` or `Stable` as stored; a group stored
    /// before its leader's assignment arrived comes back `Stable` without
    /// assignments, and the caller must rebalance it (see [`GroupPhase`]).
    /// An empty group counts as empty since it was last written.
    ///
    /// Total on any record: a member whose member id or instance id an earlier
    /// member of the record already has is left out (the invariants hold).
    pub(crate) fn from_record(record: GroupRecord, now: Instant) -> Self {
        let mut group = Group::new(record.group_id);
        group.protocol_type = record.protocol_type;
        group.protocol_name = record.protocol_name;
        group.generation = record.generation;
        for member in record.members {
            let member = Member::from_record(member, now);
            let duplicate = group.members.contains_key(&member.member_id)
                || member
                    .group_instance_id
                    .as_ref()
                    .is_some_and(|instance| group.static_members.contains_key(instance));
            if duplicate {
                tracing::warn!(group = %group.group_id, member = %member.member_id, "stored group repeats a member or instance id; left out");
                continue;
            }
            if let Some(instance) = &member.group_instance_id {
                group
                    .static_members
                    .insert(instance.clone(), member.member_id.clone());
            }
            group.members.insert(member.member_id.clone(), member);
        }
        group.leader = record
            .leader
            .filter(|leader| group.members.contains_key(leader))
            .or_else(|| group.members.keys().next().cloned());
        group.state = match record.phase {
            _ if group.members.is_empty() => GroupState::Empty,
            GroupPhase::Empty | GroupPhase::AwaitingSync | GroupPhase::Stable => GroupState::Stable,
        };
        if group.state == GroupState::Empty {
            group.consumer = record
                .consumer
                .map(|consumer| ConsumerGroup::from_record(consumer, now));
        }
        if group.is_empty() {
            group.empty_since_ms = Some(record.updated_at_ms);
        }
        group.debug_assert_invariants();
        group
    }

    /// The durable part of the group, in `phase`.
    pub(crate) fn to_record(&self, phase: GroupPhase) -> GroupRecord {
        GroupRecord {
            group_id: self.group_id.clone(),
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            generation: self.generation,
            leader: self.leader.clone(),
            phase,
            members: self.members.values().map(Member::to_record).collect(),
            consumer: self.consumer.as_ref().map(ConsumerGroup::to_record),
            updated_at_ms: 0,
        }
    }

    pub(crate) fn is_leader(&self, member_id: &str) -> bool {
        self.leader.as_deref() == Some(member_id)
    }

    /// The largest rebalance timeout of the members (how long a join phase may
    /// last).
    pub(crate) fn rebalance_timeout(&self) -> Duration {
        self.members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default()
    }

    /// Every member has rejoined and no member id handed out is still expected.
    pub(crate) fn all_joined(&self) -> bool {
        self.pending_members.is_empty() && self.members.values().all(|m| m.awaiting_join.is_some())
    }

    /// Protocols every member supports.
    fn candidate_protocols(&self) -> Vec<String> {
        let Some(first) = self.members.values().next() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(name, _)| name.clone())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect()
    }

    /// Whether a member of `protocol_type` supporting `protocols` may join: an
    /// empty group takes any non-empty set; otherwise the type must match and
    /// one of the protocols must be supported by every current member.
    pub(crate) fn supports_protocols(
        &self,
        protocol_type: &str,
        protocols: &[(String, Bytes)],
    ) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        let candidates = self.candidate_protocols();
        protocols.iter().any(|(name, _)| candidates.contains(name))
    }

    /// The protocol for the next generation: among those every member supports,
    /// the one most members prefer (each votes for its most preferred candidate);
    /// ties go to the leader's preference.
    pub(crate) fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidate_protocols();
        let mut votes: BTreeMap<&str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(name, _)| candidates.contains(name))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let best = votes.values().copied().max()?;
        let leader_order = self
            .leader
            .as_ref()
            .and_then(|leader| self.members.get(leader))
            .or_else(|| self.members.values().next())?;
        leader_order
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .find(|name| votes.get(name) == Some(&best))
            .map(str::to_owned)
    }

    /// Checks that `member_id` is the current member (and, for a static member,
    /// the current holder of its instance id).
    pub(crate) fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), super::GroupError> {
        if let Some(instance) = group_instance_id {
            match self.static_members.get(instance) {
                Some(current) if current != member_id => {
                    return Err(super::GroupError::FencedInstanceId);
                }
                Some(_) => {}
                None => return Err(super::GroupError::UnknownMemberId),
            }
        }
        if !self.members.contains_key(member_id) {
            return Err(super::GroupError::UnknownMemberId);
        }
        Ok(())
    }

    /// The members as the leader sees them in its join answer.
    pub(crate) fn joined_members(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        self.members
            .values()
            .map(|m| JoinedMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                metadata: m.metadata_for(&protocol),
            })
            .collect()
    }

    /// The join answer of the current generation for `member_id`.
    pub(crate) fn join_answer(
        &self,
        member_id: &str,
        with_members: bool,
        leader: Option<String>,
        skip_assignment: bool,
    ) -> JoinResponse {
        JoinResponse {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: leader.or_else(|| self.leader.clone()).unwrap_or_default(),
            skip_assignment,
            member_id: member_id.to_owned(),
            members: if with_members {
                self.joined_members()
            } else {
                Vec::new()
            },
        }
    }

    /// Removes a member, answering its pending requests with `UNKNOWN_MEMBER_ID`,
    /// and moves the leadership on if it led.
    pub(crate) fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let mut member = self.members.remove(member_id)?;
        member.answer_join(JoinResponse::failed(
            super::GroupError::UnknownMemberId,
            member_id,
        ));
        member.answer_sync(SyncResponse::failed(super::GroupError::UnknownMemberId));
        if let Some(instance) = &member.group_instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        self.pending_sync.remove(member_id);
        if self.is_leader(member_id) {
            self.leader = self
                .members
                .values()
                .find(|m| m.awaiting_join.is_some())
                .or_else(|| self.members.values().next())
                .map(|m| m.member_id.clone());
        }
        Some(member)
    }

    /// The next deadline any timer of the group fires at.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let sessions = self
            .members
            .values()
            .filter(|m| m.can_expire())
            .map(|m| m.session_deadline);
        self.join_deadline
            .into_iter()
            .chain(self.sync_deadline)
            .chain(self.pending_members.values().copied())
            .chain(sessions)
            .chain(
                self.consumer
                    .as_ref()
                    .and_then(ConsumerGroup::next_deadline),
            )
            .min()
    }

    /// A listing entry.
    pub(crate) fn listing(&self) -> GroupListing {
        match &self.consumer {
            Some(consumer) => GroupListing {
                group_id: self.group_id.clone(),
                protocol_type: "consumer".to_owned(),
                state: consumer.state_name(),
                group_type: "consumer",
            },
            None => GroupListing {
                group_id: self.group_id.clone(),
                protocol_type: self.protocol_type.clone().unwrap_or_default(),
                state: self.state.name(),
                group_type: "classic",
            },
        }
    }

    /// A `DescribeGroups` answer (metadata and assignments in `Stable` only, as
    /// Kafka answers).
    pub(crate) fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = if stable {
            self.protocol_name.clone().unwrap_or_default()
        } else {
            String::new()
        };
        GroupDescription {
            group_id: self.group_id.clone(),
            state: self.state.name(),
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            protocol_name: protocol.clone(),
            generation: self.generation,
            members: self
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        }
    }

    /// Checks the invariants in the module docs (debug builds only).
    pub(crate) fn debug_assert_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        for (instance, member_id) in &self.static_members {
            debug_assert_eq!(
                self.members
                    .get(member_id)
                    .and_then(|m| m.group_instance_id.as_deref()),
                Some(instance.as_str()),
                "static member {instance} of group {}",
                self.group_id
            );
        }
        let statics = self
            .members
            .values()
            .filter(|m| m.group_instance_id.is_some())
            .count();
        debug_assert_eq!(
            statics,
            self.static_members.len(),
            "group {}",
            self.group_id
        );
        match &self.leader {
            Some(leader) => {
                debug_assert!(self.members.contains_key(leader), "group {}", self.group_id)
            }
            None => debug_assert!(self.members.is_empty(), "group {}", self.group_id),
        }
        if self.state != GroupState::PreparingRebalance {
            debug_assert!(
                self.members.values().all(|m| m.awaiting_join.is_none()),
                "group {} answers joins only while preparing a rebalance",
                self.group_id
            );
        }
        debug_assert!(
            self.pending_sync
                .iter()
                .all(|m| self.members.contains_key(m)),
            "group {}",
            self.group_id
        );
        debug_assert!(
            self.state == GroupState::Empty || self.empty_since_ms.is_none(),
            "group {} is empty since a time only while empty",
            self.group_id
        );
    }
}
