//! Groups of the server-side consumer protocol (KIP-848, `group.protocol=consumer`):
//! members heartbeat their subscription and what they own; the coordinator
//! computes the target assignment itself and moves every member to it, one
//! member at a time, so no partition ever has two owners and members that are
//! not affected keep consuming.
//!
//! - **Group epoch.** Bumped when membership, a subscription, or the partitions
//!   of a subscribed topic change; a new target assignment is computed at it
//!   (the *assignment epoch*) by the chosen assignor (`assignor`).
//! - **Member epoch.** A member reaches the assignment epoch once it no longer
//!   owns partitions the target gave to others (`reconcile`). Offset commits
//!   must carry the member's current epoch (`STALE_MEMBER_EPOCH` otherwise);
//!   a heartbeat with an epoch the member never had is `FENCED_MEMBER_EPOCH`.
//! - **Static members** (`group.instance.id`) leave temporarily with epoch -2
//!   and keep their partitions until their session times out; the instance
//!   that comes back takes them over without a new group epoch.
//! - **Timers.** A member is removed when its session times out, or when it
//!   holds partitions to revoke past its rebalance timeout.
//!
//! This module holds the state and its rules and does no I/O: the group actor
//! (`actor::consumer`) feeds it heartbeats, the topic view and the time, and
//! persists the record it yields before answering.
//!
//! # Invariants
//!
//! - A partition is owned (assigned or pending revocation) by at most one
//!   member at any time.
//! - A member's epoch is at most the assignment epoch, which is at most the
//!   group epoch.
//! - Every static instance id maps to exactly one member, which has it.

pub(crate) mod assignor;
pub(crate) mod reconcile;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use fjord_metadata::{
    ConsumerGroupRecord, ConsumerMemberRecord, ConsumerMemberState, TopicId, TopicPartitionSet,
};
use tokio::time::Instant;

use super::GroupError;
use super::consumer_protocol::{encode_assignment, encode_subscription};
use super::state::millis;
use super::types::{
    ConsumerGroupDescription, ConsumerHeartbeatRequest, ConsumerHeartbeatResponse,
    ConsumerMemberDescription, GroupDescription, MemberDescription,
};
use reconcile::Position;

/// Partitions by topic.
pub(crate) type Assignment = BTreeMap<TopicId, BTreeSet<i32>>;

/// The epoch a member leaves with.
pub(crate) const LEAVE_EPOCH: i32 = -1;
/// The epoch a static member leaves with when it will come back.
pub(crate) const STATIC_LEAVE_EPOCH: i32 = -2;

/// Longest regular expression accepted in a subscription.
const MAX_REGEX_BYTES: usize = 4_096;

/// Settings of consumer-protocol groups (Kafka's `group.consumer.*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConsumerGroupSettings {
    /// `group.consumer.session.timeout.ms` (45 s).
    pub session_timeout: Duration,
    /// `group.consumer.heartbeat.interval.ms` (5 s).
    pub heartbeat_interval: Duration,
    /// `group.consumer.max.size`: members per group.
    pub max_size: usize,
}

impl Default for ConsumerGroupSettings {
    fn default() -> Self {
        Self {
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(5_000),
            max_size: 10_000,
        }
    }
}

/// The topics that exist, as the coordinator last read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TopicsView {
    /// name → (id, partition count)
    pub(crate) by_name: BTreeMap<String, (TopicId, i32)>,
    /// Which read of the topics this is (0: none in particular, always
    /// looked at): a group skips re-reading a view it already looked at.
    pub(crate) version: u64,
}

impl TopicsView {
    fn name_of(&self, id: TopicId) -> Option<&str> {
        self.by_name
            .iter()
            .find(|(_, (topic, _))| *topic == id)
            .map(|(name, _)| name.as_str())
    }
}

/// One member.
#[derive(Debug, Clone)]
pub(crate) struct ConsumerMember {
    pub(crate) member_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) rack_id: Option<String>,
    pub(crate) client_id: String,
    pub(crate) client_host: String,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) session_timeout: Duration,
    pub(crate) subscribed_topic_names: BTreeSet<String>,
    pub(crate) subscribed_topic_regex: Option<String>,
    pub(crate) server_assignor: Option<String>,
    pub(crate) member_epoch: i32,
    pub(crate) previous_member_epoch: i32,
    pub(crate) state: ConsumerMemberState,
    pub(crate) assigned: Assignment,
    pub(crate) pending_revocation: Assignment,
    pub(crate) target: Assignment,
    /// When it is removed unless it heartbeats.
    pub(crate) session_deadline: Instant,
    /// When it is removed unless it revoked what it must (set while
    /// `UnrevokedPartitions`).
    pub(crate) revocation_deadline: Option<Instant>,
}

fn to_set(assignment: &Assignment) -> TopicPartitionSet {
    assignment
        .iter()
        .filter(|(_, partitions)| !partitions.is_empty())
        .map(|(topic, partitions)| (*topic, partitions.iter().copied().collect()))
        .collect()
}

fn from_set(set: TopicPartitionSet) -> Assignment {
    set.into_iter()
        .map(|(topic, partitions)| (topic, partitions.into_iter().collect()))
        .filter(|(_, partitions): &(TopicId, BTreeSet<i32>)| !partitions.is_empty())
        .collect()
}

fn millis_i32(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis()).unwrap_or(i32::MAX)
}

impl ConsumerMember {
    fn to_record(&self) -> ConsumerMemberRecord {
        ConsumerMemberRecord {
            member_id: self.member_id.clone(),
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            rebalance_timeout_ms: millis_i32(self.rebalance_timeout),
            session_timeout_ms: millis_i32(self.session_timeout),
            subscribed_topic_names: self.subscribed_topic_names.iter().cloned().collect(),
            subscribed_topic_regex: self.subscribed_topic_regex.clone(),
            server_assignor: self.server_assignor.clone(),
            member_epoch: self.member_epoch,
            previous_member_epoch: self.previous_member_epoch,
            state: self.state,
            assigned: to_set(&self.assigned),
            pending_revocation: to_set(&self.pending_revocation),
            target: to_set(&self.target),
        }
    }

    /// A member loaded from metadata gets a full session from `now`.
    fn from_record(record: ConsumerMemberRecord, now: Instant) -> Self {
        let session_timeout = millis(record.session_timeout_ms);
        let rebalance_timeout = millis(record.rebalance_timeout_ms);
        let revocation_deadline = (record.state == ConsumerMemberState::UnrevokedPartitions)
            .then(|| now + rebalance_timeout);
        Self {
            member_id: record.member_id,
            instance_id: record.instance_id,
            rack_id: record.rack_id,
            client_id: record.client_id,
            client_host: record.client_host,
            rebalance_timeout,
            session_timeout,
            subscribed_topic_names: record.subscribed_topic_names.into_iter().collect(),
            subscribed_topic_regex: record.subscribed_topic_regex,
            server_assignor: record.server_assignor,
            member_epoch: record.member_epoch,
            previous_member_epoch: record.previous_member_epoch,
            state: record.state,
            assigned: from_set(record.assigned),
            pending_revocation: from_set(record.pending_revocation),
            target: from_set(record.target),
            session_deadline: now + session_timeout,
            revocation_deadline,
        }
    }

    fn position(&self) -> Position {
        Position {
            member_epoch: self.member_epoch,
            state: self.state,
            assigned: self.assigned.clone(),
            pending_revocation: self.pending_revocation.clone(),
        }
    }

    fn owns(&self, topic: TopicId, partition: i32) -> bool {
        let has = |a: &Assignment| a.get(&topic).is_some_and(|p| p.contains(&partition));
        has(&self.assigned) || has(&self.pending_revocation)
    }

    /// The topic names it subscribes to among `topics` (literal names and
    /// regular-expression matches).
    fn subscribed_in(
        &self,
        topics: &TopicsView,
        regexes: &HashMap<String, regex::Regex>,
    ) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self
            .subscribed_topic_names
            .iter()
            .filter(|name| topics.by_name.contains_key(*name))
            .cloned()
            .collect();
        if let Some(regex) = self
            .subscribed_topic_regex
            .as_ref()
            .and_then(|r| regexes.get(r))
        {
            names.extend(
                topics
                    .by_name
                    .keys()
                    .filter(|name| regex.is_match(name))
                    .cloned(),
            );
        }
        names
    }
}

/// Compiles a subscription's regular expression (RE2 syntax, as Kafka's RE2/J),
/// matched against whole topic names.
pub(crate) fn compile_regex(pattern: &str) -> Result<regex::Regex, GroupError> {
    if pattern.len() > MAX_REGEX_BYTES {
        return Err(GroupError::InvalidRegularExpression(
            "the regular expression is too long".into(),
        ));
    }
    regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|error| GroupError::InvalidRegularExpression(error.to_string()))
}

/// One consumer-protocol group's state.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConsumerGroup {
    pub(crate) group_epoch: i32,
    pub(crate) assignment_epoch: i32,
    pub(crate) members: BTreeMap<String, ConsumerMember>,
    /// instance id → member id
    pub(crate) static_members: HashMap<String, String>,
    /// The subscribed topics' ids and partition counts the target was computed
    /// for; `None` until first computed (after a load).
    subscribed: Option<BTreeMap<String, (TopicId, i32)>>,
    /// The version of the topic view `subscribed` was last checked against.
    checked_version: u64,
    regexes: HashMap<String, regex::Regex>,
}

/// What a heartbeat did, for the actor.
#[derive(Debug)]
pub(crate) struct HeartbeatOutcome {
    pub(crate) response: ConsumerHeartbeatResponse,
    /// The durable state changed: persist before answering.
    pub(crate) changed: bool,
}

impl ConsumerGroup {
    pub(crate) fn from_record(record: ConsumerGroupRecord, now: Instant) -> Self {
        let mut group = ConsumerGroup {
            group_epoch: record.group_epoch,
            assignment_epoch: record.assignment_epoch,
            ..ConsumerGroup::default()
        };
        for member in record.members {
            let member = ConsumerMember::from_record(member, now);
            if let Some(regex) = &member.subscribed_topic_regex
                && let Ok(compiled) = compile_regex(regex)
            {
                group.regexes.insert(regex.clone(), compiled);
            }
            if let Some(instance) = &member.instance_id {
                if group.static_members.contains_key(instance) {
                    tracing::warn!(member = %member.member_id, "stored group repeats an instance id; left out");
                    continue;
                }
                group
                    .static_members
                    .insert(instance.clone(), member.member_id.clone());
            }
            group.members.insert(member.member_id.clone(), member);
        }
        group
    }

    pub(crate) fn to_record(&self) -> ConsumerGroupRecord {
        ConsumerGroupRecord {
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            members: self
                .members
                .values()
                .map(ConsumerMember::to_record)
                .collect(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Kafka's name of the group's state.
    pub(crate) fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self.members.values().any(|m| {
            m.member_epoch != self.assignment_epoch || m.state != ConsumerMemberState::Stable
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The topic names some member subscribes to (for `OffsetDelete`).
    pub(crate) fn subscribed_topic_names(&self, topics: Option<&TopicsView>) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for member in self.members.values() {
            names.extend(member.subscribed_topic_names.iter().cloned());
            if let Some(topics) = topics {
                names.extend(member.subscribed_in(topics, &self.regexes));
            }
        }
        names
    }

    /// The earliest timer deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.members
            .values()
            .flat_map(|m| [Some(m.session_deadline), m.revocation_deadline])
            .flatten()
            .min()
    }

    /// Validates a member's commit (or `OffsetFetch`) epoch: `None` if it may
    /// go on. A commit without a member (negative epoch, no member id) is
    /// allowed only while the group has no members.
    pub(crate) fn validate_commit(&self, member_id: &str, epoch: i32) -> Result<(), GroupError> {
        if epoch < 0 && member_id.is_empty() {
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(GroupError::UnknownMemberId)
            };
        }
        let member = self
            .members
            .get(member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if epoch != member.member_epoch {
            return Err(GroupError::StaleMemberEpoch);
        }
        Ok(())
    }

    /// Removes members whose session or revocation time ran out; whether any
    /// was (then the target is recomputed and the group must be persisted).
    pub(crate) fn expire(&mut self, now: Instant, topics: &TopicsView) -> bool {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                m.session_deadline <= now || m.revocation_deadline.is_some_and(|d| d <= now)
            })
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in &expired {
            tracing::info!(member = %member_id, "consumer group member expired");
            self.remove_member(member_id);
        }
        if expired.is_empty() {
            return false;
        }
        self.bump_and_assign(topics);
        true
    }

    fn remove_member(&mut self, member_id: &str) -> Option<ConsumerMember> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.instance_id
            && self.static_members.get(instance).map(String::as_str) == Some(member_id)
        {
            self.static_members.remove(instance);
        }
        Some(member)
    }

    /// The assignor the group uses: the one most members ask for (the default
    /// on a tie or when none asks).
    fn assignor(&self) -> &'static str {
        let mut votes: BTreeMap<&'static str, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some(name) = member.server_assignor.as_deref()
                && let Some(known) = assignor::ASSIGNORS.iter().find(|a| **a == name)
            {
                *votes.entry(known).or_default() += 1;
            }
        }
        let best = votes.values().copied().max().unwrap_or(0);
        assignor::ASSIGNORS
            .iter()
            .find(|name| best > 0 && votes.get(*name) == Some(&best))
            .copied()
            .unwrap_or(assignor::ASSIGNORS[0])
    }

    /// The subscribed topics' ids and partitions in `topics`.
    fn subscription_metadata(&self, topics: &TopicsView) -> BTreeMap<String, (TopicId, i32)> {
        let mut metadata = BTreeMap::new();
        for member in self.members.values() {
            for name in member.subscribed_in(topics, &self.regexes) {
                if let Some(entry) = topics.by_name.get(&name) {
                    metadata.insert(name, *entry);
                }
            }
        }
        metadata
    }

    /// A new group epoch and the target assignment computed at it.
    fn bump_and_assign(&mut self, topics: &TopicsView) {
        self.group_epoch = self.group_epoch.saturating_add(1);
        self.assign(topics);
    }

    fn assign(&mut self, topics: &TopicsView) {
        let metadata = self.subscription_metadata(topics);
        let partitions: BTreeMap<TopicId, i32> = metadata.values().copied().collect();
        let specs: Vec<assignor::MemberSpec<'_>> = self
            .members
            .values()
            .map(|m| assignor::MemberSpec {
                member_id: &m.member_id,
                topics: m
                    .subscribed_in(topics, &self.regexes)
                    .iter()
                    .filter_map(|name| topics.by_name.get(name).map(|(id, _)| *id))
                    .collect(),
                previous: &m.target,
            })
            .collect();
        let mut targets = assignor::assign(self.assignor(), &specs, &partitions);
        for member in self.members.values_mut() {
            member.target = targets.remove(&member.member_id).unwrap_or_default();
        }
        self.assignment_epoch = self.group_epoch;
        self.subscribed = Some(metadata);
    }

    /// Re-reads the subscribed topics in `topics`: when their partitions
    /// changed (or were never read since the group was loaded) and that changes
    /// the target, a new group epoch. Returns whether it bumped.
    pub(crate) fn refresh_metadata(&mut self, topics: &TopicsView) -> bool {
        // Subscriptions and membership changes recompute the target
        // themselves; only a new read of the topics needs a look.
        if topics.version != 0
            && topics.version == self.checked_version
            && self.subscribed.is_some()
        {
            return false;
        }
        self.checked_version = topics.version;
        let metadata = self.subscription_metadata(topics);
        match &self.subscribed {
            Some(current) if *current == metadata => false,
            Some(_) => {
                self.bump_and_assign(topics);
                true
            }
            None => {
                // First look since the group was loaded: only a target that
                // differs from the stored one is a change.
                let before: Vec<Assignment> =
                    self.members.values().map(|m| m.target.clone()).collect();
                let (group_epoch, assignment_epoch) = (self.group_epoch, self.assignment_epoch);
                self.assign(topics);
                let after: Vec<Assignment> =
                    self.members.values().map(|m| m.target.clone()).collect();
                self.assignment_epoch = assignment_epoch;
                if before == after && assignment_epoch == group_epoch {
                    return false;
                }
                self.group_epoch = group_epoch;
                self.bump_and_assign(topics);
                true
            }
        }
    }

    /// Whether a member other than `member_id` owns the partition.
    fn held_by_other(&self, member_id: &str, topic: TopicId, partition: i32) -> bool {
        self.members
            .values()
            .any(|m| m.member_id != member_id && m.owns(topic, partition))
    }

    /// Moves `member_id` towards its target; whether it changed.
    fn reconcile(&mut self, member_id: &str, owned: Option<&Assignment>, now: Instant) -> bool {
        let Some(member) = self.members.get(member_id) else {
            return false;
        };
        let current = member.position();
        let target = member.target.clone();
        let next = reconcile::next(&current, self.assignment_epoch, &target, owned, |t, p| {
            self.held_by_other(member_id, t, p)
        });
        if next == current {
            return false;
        }
        let Some(member) = self.members.get_mut(member_id) else {
            return false;
        };
        if next.member_epoch != member.member_epoch {
            member.previous_member_epoch = member.member_epoch;
        }
        member.member_epoch = next.member_epoch;
        member.state = next.state;
        member.assigned = next.assigned;
        member.pending_revocation = next.pending_revocation;
        member.revocation_deadline = match member.state {
            ConsumerMemberState::UnrevokedPartitions => Some(
                member
                    .revocation_deadline
                    .unwrap_or(now + member.rebalance_timeout),
            ),
            _ => None,
        };
        true
    }

    /// Applies one `ConsumerGroupHeartbeat`.
    pub(crate) fn heartbeat(
        &mut self,
        request: &ConsumerHeartbeatRequest,
        topics: &TopicsView,
        settings: &ConsumerGroupSettings,
        now: Instant,
        new_member_id: impl FnOnce() -> String,
    ) -> Result<HeartbeatOutcome, GroupError> {
        let epoch = request.member_epoch;
        if epoch < STATIC_LEAVE_EPOCH {
            return Err(GroupError::InvalidRequest(format!(
                "member epoch {epoch} is invalid"
            )));
        }
        if epoch != 0 && request.member_id.is_empty() {
            return Err(GroupError::InvalidRequest("MemberId can't be empty".into()));
        }
        if epoch == STATIC_LEAVE_EPOCH && request.instance_id.is_none() {
            return Err(GroupError::InvalidRequest(
                "InstanceId can't be null when leaving with epoch -2".into(),
            ));
        }
        if epoch == LEAVE_EPOCH || epoch == STATIC_LEAVE_EPOCH {
            return self.leave(request, topics, settings);
        }
        if let Some(name) = &request.server_assignor
            && !assignor::ASSIGNORS.contains(&name.as_str())
        {
            return Err(GroupError::UnsupportedAssignor(name.clone()));
        }
        if let Some(regex) = &request.subscribed_topic_regex
            && !regex.is_empty()
            && !self.regexes.contains_key(regex)
        {
            let compiled = compile_regex(regex)?;
            self.regexes.insert(regex.clone(), compiled);
        }
        let owned: Option<Assignment> = request.owned.as_ref().map(|owned| {
            let mut set = Assignment::new();
            for (topic, partitions) in owned {
                set.entry(*topic)
                    .or_default()
                    .extend(partitions.iter().copied());
            }
            set.retain(|_, partitions| !partitions.is_empty());
            set
        });
        let mut changed = false;
        let full;
        let mut new_member = false;
        let member_id = if epoch == 0 {
            full = true;
            if request.subscribed_topic_names.is_none() && request.subscribed_topic_regex.is_none()
            {
                return Err(GroupError::InvalidRequest(
                    "SubscribedTopicNames or SubscribedTopicRegex must be set in the first request"
                        .into(),
                ));
            }
            if owned.as_ref().is_some_and(|o| !o.is_empty()) {
                return Err(GroupError::InvalidRequest(
                    "TopicPartitions must be empty when (re-)joining".into(),
                ));
            }
            let (member_id, is_new) = self.join(request, settings, now, new_member_id)?;
            changed = true;
            // A new member needs a target: a new group epoch.
            new_member = is_new;
            member_id
        } else {
            let member = self
                .members
                .get(&request.member_id)
                .ok_or(GroupError::UnknownMemberId)?;
            if epoch > member.member_epoch {
                return Err(GroupError::FencedMemberEpoch);
            }
            if epoch < member.member_epoch {
                // The member may have missed the answer that moved it on.
                let caught_up = epoch == member.previous_member_epoch
                    && owned
                        .as_ref()
                        .is_some_and(|owned| reconcile::is_subset(owned, &member.assigned));
                if !caught_up {
                    return Err(GroupError::FencedMemberEpoch);
                }
            }
            if let Some(instance) = &request.instance_id
                && member.instance_id.as_ref() != Some(instance)
            {
                return Err(GroupError::FencedInstanceId);
            }
            full = request.rebalance_timeout_ms != -1
                && request.subscribed_topic_names.is_some()
                && owned.is_some();
            request.member_id.clone()
        };
        let before_assigned = self
            .members
            .get(&member_id)
            .map(|m| m.assigned.clone())
            .unwrap_or_default();
        // Subscription updates.
        let mut subscription_changed = new_member;
        if let Some(member) = self.members.get_mut(&member_id) {
            member.session_deadline = now + member.session_timeout;
            if let Some(names) = &request.subscribed_topic_names {
                let names: BTreeSet<String> = names.iter().cloned().collect();
                if names != member.subscribed_topic_names {
                    member.subscribed_topic_names = names;
                    subscription_changed = true;
                }
            }
            if let Some(regex) = &request.subscribed_topic_regex {
                let regex = (!regex.is_empty()).then(|| regex.clone());
                if regex != member.subscribed_topic_regex {
                    member.subscribed_topic_regex = regex;
                    subscription_changed = true;
                }
            }
            if request.server_assignor.is_some()
                && request.server_assignor != member.server_assignor
            {
                member.server_assignor = request.server_assignor.clone();
                subscription_changed = true;
            }
            if request.rebalance_timeout_ms >= 0 {
                let timeout = millis(request.rebalance_timeout_ms);
                if timeout != member.rebalance_timeout {
                    member.rebalance_timeout = timeout;
                    changed = true;
                }
            }
            if request.rack_id.is_some() && request.rack_id != member.rack_id {
                member.rack_id = request.rack_id.clone();
                changed = true;
            }
        }
        if subscription_changed {
            self.bump_and_assign(topics);
            changed = true;
        } else if self.refresh_metadata(topics) {
            changed = true;
        } else if self.assignment_epoch < self.group_epoch {
            self.assign(topics);
            changed = true;
        }
        changed |= self.reconcile(&member_id, owned.as_ref(), now);
        let member = self
            .members
            .get(&member_id)
            .ok_or(GroupError::UnknownMemberId)?;
        // The assignment goes out on a full request, when it changed, and when
        // the member's epoch moved (also for a member that missed the answer
        // that moved it).
        let send = full || member.assigned != before_assigned || epoch != member.member_epoch;
        let assignment = send.then(|| to_set(&member.assigned));
        Ok(HeartbeatOutcome {
            response: ConsumerHeartbeatResponse {
                member_id: member_id.clone(),
                member_epoch: member.member_epoch,
                heartbeat_interval_ms: millis_i32(settings.heartbeat_interval),
                assignment,
            },
            changed,
        })
    }

    /// A join (epoch 0): a new member, a member rejoining after it was fenced,
    /// or a static instance coming back. Returns the member id and whether it
    /// is a new member.
    fn join(
        &mut self,
        request: &ConsumerHeartbeatRequest,
        settings: &ConsumerGroupSettings,
        now: Instant,
        new_member_id: impl FnOnce() -> String,
    ) -> Result<(String, bool), GroupError> {
        let member_id = if request.member_id.is_empty() {
            new_member_id()
        } else {
            request.member_id.clone()
        };
        let session_timeout = request
            .session_timeout_ms
            .map(millis)
            .unwrap_or(settings.session_timeout);
        let rebalance_timeout = if request.rebalance_timeout_ms >= 0 {
            millis(request.rebalance_timeout_ms)
        } else {
            Duration::from_millis(300_000)
        };
        let fresh = |member_id: &str| ConsumerMember {
            member_id: member_id.to_owned(),
            instance_id: request.instance_id.clone(),
            rack_id: request.rack_id.clone(),
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            rebalance_timeout,
            session_timeout,
            subscribed_topic_names: BTreeSet::new(),
            subscribed_topic_regex: None,
            server_assignor: None,
            member_epoch: 0,
            previous_member_epoch: 0,
            state: ConsumerMemberState::Stable,
            assigned: Assignment::new(),
            pending_revocation: Assignment::new(),
            target: Assignment::new(),
            session_deadline: now + session_timeout,
            revocation_deadline: None,
        };
        if let Some(instance) = &request.instance_id
            && let Some(existing_id) = self.static_members.get(instance).cloned()
            && existing_id != member_id
        {
            let existing = self
                .members
                .get(&existing_id)
                .ok_or(GroupError::UnknownMemberId)?;
            if existing.member_epoch != STATIC_LEAVE_EPOCH {
                return Err(GroupError::UnreleasedInstanceId);
            }
            // The instance comes back: the new member takes over what the old
            // one owned, at the epoch it owned it, without a new group epoch.
            let mut replacement = existing.clone();
            replacement.member_id = member_id.clone();
            replacement.member_epoch = existing.previous_member_epoch;
            replacement.client_id = request.client_id.clone();
            replacement.client_host = request.client_host.clone();
            replacement.session_timeout = session_timeout;
            replacement.session_deadline = now + session_timeout;
            self.members.remove(&existing_id);
            self.members.insert(member_id.clone(), replacement);
            self.static_members
                .insert(instance.clone(), member_id.clone());
            return Ok((member_id, false));
        }
        if let Some(existing) = self.members.get_mut(&member_id) {
            // A known member rejoining gave up everything it owned.
            existing.assigned.clear();
            existing.pending_revocation.clear();
            existing.previous_member_epoch = existing.member_epoch;
            existing.member_epoch = 0;
            existing.state = ConsumerMemberState::Stable;
            existing.revocation_deadline = None;
            existing.session_timeout = session_timeout;
            return Ok((member_id, false));
        }
        if self.members.len() >= settings.max_size {
            return Err(GroupError::GroupMaxSizeReached);
        }
        self.members.insert(member_id.clone(), fresh(&member_id));
        if let Some(instance) = &request.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        Ok((member_id, true))
    }

    fn leave(
        &mut self,
        request: &ConsumerHeartbeatRequest,
        topics: &TopicsView,
        settings: &ConsumerGroupSettings,
    ) -> Result<HeartbeatOutcome, GroupError> {
        let member_id = match (
            &request.instance_id,
            self.members.contains_key(&request.member_id),
        ) {
            (_, true) => request.member_id.clone(),
            (Some(instance), false) => self
                .static_members
                .get(instance)
                .cloned()
                .ok_or(GroupError::UnknownMemberId)?,
            (None, false) => return Err(GroupError::UnknownMemberId),
        };
        let response = |epoch| ConsumerHeartbeatResponse {
            member_id: member_id.clone(),
            member_epoch: epoch,
            heartbeat_interval_ms: millis_i32(settings.heartbeat_interval),
            assignment: None,
        };
        if request.member_epoch == STATIC_LEAVE_EPOCH {
            let member = self
                .members
                .get_mut(&member_id)
                .ok_or(GroupError::UnknownMemberId)?;
            if member.member_epoch != STATIC_LEAVE_EPOCH {
                member.previous_member_epoch = member.member_epoch;
                member.member_epoch = STATIC_LEAVE_EPOCH;
            }
            return Ok(HeartbeatOutcome {
                response: response(STATIC_LEAVE_EPOCH),
                changed: true,
            });
        }
        self.remove_member(&member_id);
        self.bump_and_assign(topics);
        Ok(HeartbeatOutcome {
            response: response(LEAVE_EPOCH),
            changed: true,
        })
    }

    /// Removes members named by a `LeaveGroup` (by instance id or member id).
    pub(crate) fn remove_by_admin(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        topics: &TopicsView,
    ) -> Result<(), GroupError> {
        let id = match instance_id {
            Some(instance) => self
                .static_members
                .get(instance)
                .cloned()
                .ok_or(GroupError::UnknownMemberId)?,
            None => member_id.to_owned(),
        };
        if !member_id.is_empty() && id != member_id {
            return Err(GroupError::FencedInstanceId);
        }
        self.remove_member(&id).ok_or(GroupError::UnknownMemberId)?;
        self.bump_and_assign(topics);
        Ok(())
    }

    /// `ConsumerGroupDescribe`.
    pub(crate) fn describe(&self, group_id: &str, topics: &TopicsView) -> ConsumerGroupDescription {
        let named = |assignment: &Assignment| -> Vec<(TopicId, String, Vec<i32>)> {
            assignment
                .iter()
                .map(|(topic, partitions)| {
                    let name = topics.name_of(*topic).unwrap_or_default().to_owned();
                    (*topic, name, partitions.iter().copied().collect())
                })
                .collect()
        };
        ConsumerGroupDescription {
            group_id: group_id.to_owned(),
            state: self.state_name(),
            group_epoch: self.group_epoch,
            assignment_epoch: self.assignment_epoch,
            assignor: self.assignor().to_owned(),
            members: self
                .members
                .values()
                .map(|m| ConsumerMemberDescription {
                    member_id: m.member_id.clone(),
                    instance_id: m.instance_id.clone(),
                    rack_id: m.rack_id.clone(),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
                    subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                    assignment: named(&m.assigned),
                    target_assignment: named(&m.target),
                })
                .collect(),
        }
    }

    /// How `DescribeGroups` (the classic API) shows the group: protocol type
    /// `consumer`, each member's assignment in the consumer protocol's
    /// embedded format.
    pub(crate) fn describe_classic(&self, group_id: &str, topics: &TopicsView) -> GroupDescription {
        let named = |assignment: &Assignment| -> Vec<(String, Vec<i32>)> {
            assignment
                .iter()
                .filter_map(|(topic, partitions)| {
                    let name = topics.name_of(*topic)?;
                    Some((name.to_owned(), partitions.iter().copied().collect()))
                })
                .collect()
        };
        GroupDescription {
            group_id: group_id.to_owned(),
            state: self.state_name(),
            protocol_type: "consumer".to_owned(),
            protocol_name: self.assignor().to_owned(),
            generation: self.group_epoch,
            members: self
                .members
                .values()
                .map(|m| MemberDescription {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: encode_subscription(
                        &m.subscribed_in(topics, &self.regexes)
                            .into_iter()
                            .collect::<Vec<_>>(),
                    ),
                    assignment: encode_assignment(&named(&m.assigned)),
                })
                .collect(),
        }
    }

    /// Checks the invariants (debug builds).
    pub(crate) fn debug_assert_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        let mut owners: BTreeMap<(TopicId, i32), &str> = BTreeMap::new();
        for member in self.members.values() {
            for assignment in [&member.assigned, &member.pending_revocation] {
                for (topic, partitions) in assignment {
                    for partition in partitions {
                        let previous = owners.insert((*topic, *partition), &member.member_id);
                        debug_assert!(
                            previous.is_none(),
                            "{topic}/{partition} owned by {previous:?} and {}",
                            member.member_id
                        );
                    }
                }
            }
            debug_assert!(member.member_epoch <= self.assignment_epoch);
        }
        debug_assert!(self.assignment_epoch <= self.group_epoch);
        for (instance, member_id) in &self.static_members {
            debug_assert_eq!(
                self.members
                    .get(member_id)
                    .and_then(|m| m.instance_id.as_ref()),
                Some(instance)
            );
        }
    }
}

#[cfg(test)]
mod tests;
