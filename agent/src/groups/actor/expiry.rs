//! Expiry in a group actor: committed offsets that outlived
//! `offsets.retention.minutes`, and empty groups left with no offsets, as
//! Apache Kafka expires them since KIP-211 (`GroupMetadata.removeExpiredOffsets`
//! and `cleanupGroupMetadata`).
//!
//! Which offsets of a group expire, by the group's state:
//!
//! - **empty, with a protocol type** (its members all left): each offset
//!   `retention` after the later of its commit and the time the group became
//!   empty, so a consumer group that stops for a while keeps its position for
//!   the whole retention;
//! - **empty, without a protocol type** (a group that only stores offsets, for
//!   simple consumers): each offset `retention` after its commit;
//! - **stable consumer group**: offsets of topics no member subscribes to,
//!   `retention` after their commit (members keep what they consume);
//! - otherwise (rebalancing, or members of another protocol type): none.
//!
//! A group that is empty, has no offsets left and no member id handed out that
//! may still join, is deleted (header, members and offsets in one fenced
//! metadata transaction) and its actor ends with [`ActorExit::Deleted`]; so an
//! idle group costs neither memory nor metadata after the retention, however
//! many group ids clients invent.
//!
//! Invariants: only offsets past the retention are deleted, and only by the
//! group's actor under the shard's fence (the actor is the group's only writer,
//! so no commit can slip between reading the offsets and deleting them); a group
//! with members is never deleted.

use std::collections::BTreeSet;

use fjord_metadata::GroupOffset;

use super::{CONSUMER_PROTOCOL_TYPE, GroupActor};
use crate::groups::GroupError;
use crate::groups::shard::ActorExit;
use crate::groups::state::GroupState;

/// What one expiry pass did to a group.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct GroupExpiry {
    /// Offsets deleted.
    pub(crate) offsets_expired: usize,
    /// The group was deleted.
    pub(crate) group_deleted: bool,
}

/// From when an offset's retention counts.
enum Rule {
    /// The later of its commit and this time (when the group became empty).
    SinceEmptyOrCommit(i64),
    /// Its commit, for offsets of topics outside `kept`.
    SinceCommit { kept: Option<BTreeSet<String>> },
}

impl Rule {
    fn expired(&self, offset: &GroupOffset, now_ms: i64, retention_ms: i64) -> bool {
        let committed_ms = offset.committed.commit_timestamp_ms;
        let since_ms = match self {
            Rule::SinceEmptyOrCommit(empty_since_ms) => committed_ms.max(*empty_since_ms),
            Rule::SinceCommit { kept } => {
                if kept.as_ref().is_some_and(|k| k.contains(&offset.topic)) {
                    return false;
                }
                committed_ms
            }
        };
        now_ms.saturating_sub(since_ms) >= retention_ms
    }
}

impl GroupActor {
    pub(super) async fn expire(&mut self, now_ms: i64) -> Result<GroupExpiry, GroupError> {
        let retention_ms =
            i64::try_from(self.context.settings.offsets_retention.as_millis()).unwrap_or(i64::MAX);
        let group = &self.group;
        let consumer_members = group.consumer.as_ref().filter(|c| !c.is_empty());
        let rule = match (group.state, group.protocol_type.as_deref()) {
            _ if consumer_members.is_some() => Rule::SinceCommit {
                kept: consumer_members.map(|c| c.subscribed_topic_names(None)),
            },
            (GroupState::Empty, Some(_)) => {
                Rule::SinceEmptyOrCommit(group.empty_since_ms.unwrap_or(i64::MIN))
            }
            (GroupState::Empty, None) => Rule::SinceCommit { kept: None },
            (GroupState::Stable, Some(CONSUMER_PROTOCOL_TYPE)) => match self.subscribed_topics() {
                Some(subscribed) => Rule::SinceCommit {
                    kept: Some(subscribed),
                },
                // A subscription that does not decode: every topic is kept.
                None => return Ok(GroupExpiry::default()),
            },
            (
                GroupState::PreparingRebalance
                | GroupState::CompletingRebalance
                | GroupState::Stable
                | GroupState::Dead,
                _,
            ) => return Ok(GroupExpiry::default()),
        };
        let offsets = self
            .context
            .store
            .fetch_offsets(&self.group.group_id)
            .await
            .map_err(|error| GroupError::from_metadata(&error))?;
        let expired: Vec<(String, i32)> = offsets
            .iter()
            .filter(|offset| rule.expired(offset, now_ms, retention_ms))
            .map(|offset| (offset.topic.clone(), offset.partition))
            .collect();
        let removable = self.group.is_empty()
            && self.group.pending_members.is_empty()
            && expired.len() == offsets.len();
        if removable {
            self.delete_stored_group().await?;
            tracing::debug!(group = %self.group.group_id, offsets = expired.len(), "empty group expired");
            return Ok(GroupExpiry {
                offsets_expired: expired.len(),
                group_deleted: true,
            });
        }
        if !expired.is_empty() {
            let result = self
                .context
                .store
                .delete_offsets(self.lease.fence(), &self.group.group_id, &expired)
                .await;
            result.map_err(|error| self.write_failed(&error))?;
            tracing::debug!(group = %self.group.group_id, offsets = expired.len(), "offsets expired");
        }
        Ok(GroupExpiry {
            offsets_expired: expired.len(),
            group_deleted: false,
        })
    }

    /// Deletes the (empty) group in metadata, with its offsets, and ends the
    /// actor.
    pub(super) async fn delete_stored_group(&mut self) -> Result<(), GroupError> {
        debug_assert_eq!(self.group.state, GroupState::Empty);
        let result = self
            .context
            .store
            .delete_group(self.lease.fence(), &self.group.group_id)
            .await;
        result.map_err(|error| self.write_failed(&error))?;
        self.group.state = GroupState::Dead;
        self.group.pending_members.clear();
        self.exit = Some(ActorExit::Deleted);
        Ok(())
    }
}
