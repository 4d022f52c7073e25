//! Offsets and administration in a group actor: generation-fenced commits,
//! group deletion and `OffsetDelete`.

use std::collections::BTreeSet;

use tokio::time::Instant;

use super::{CONSUMER_PROTOCOL_TYPE, GroupActor};
use crate::groups::GroupError;
use crate::groups::consumer_protocol;
use crate::groups::state::GroupState;
use crate::groups::types::CommitRequest;

impl GroupActor {
    // ----- offsets and administration -----

    pub(super) async fn commit(
        &mut self,
        request: CommitRequest,
        now: Instant,
    ) -> Result<(), GroupError> {
        let group = &mut self.group;
        if group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if let Some(consumer) = &group.consumer {
            // Fenced by the member's epoch (KIP-848); the actor is the group's
            // only writer, so the check holds until the write lands.
            consumer.validate_commit(&request.member_id, request.generation)?;
            let result = self
                .context
                .store
                .commit_offsets(
                    self.lease.fence(),
                    &request.group_id,
                    None,
                    &request.offsets,
                )
                .await;
            return result.map_err(|error| self.write_failed(&error));
        }
        let from_member = request.generation >= 0
            || !request.member_id.is_empty()
            || request.group_instance_id.is_some();
        if from_member {
            group.validate_member(&request.member_id, request.group_instance_id.as_deref())?;
            if request.generation != group.generation {
                return Err(GroupError::IllegalGeneration);
            }
        } else if group.state != GroupState::Empty {
            // Only members may commit for a group that has members.
            return Err(GroupError::UnknownMemberId);
        }
        let generation = if !from_member {
            None
        } else if group.state == GroupState::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        } else {
            if let Some(member) = group.members.get_mut(&request.member_id) {
                member.session_deadline = now + member.session_timeout;
            }
            Some(request.generation)
        };
        let result = self
            .context
            .store
            .commit_offsets(
                self.lease.fence(),
                &request.group_id,
                generation,
                &request.offsets,
            )
            .await;
        result.map_err(|error| self.write_failed(&error))
    }

    pub(super) async fn delete(&mut self) -> Result<(), GroupError> {
        if self.group.has_consumer_members() {
            return Err(GroupError::NonEmptyGroup);
        }
        match self.group.state {
            GroupState::Dead => return Err(GroupError::GroupIdNotFound),
            GroupState::Empty => {}
            GroupState::PreparingRebalance
            | GroupState::CompletingRebalance
            | GroupState::Stable => return Err(GroupError::NonEmptyGroup),
        }
        self.delete_stored_group().await?;
        tracing::info!(group = %self.group.group_id, "group deleted");
        Ok(())
    }

    /// The topics the group's members subscribe to; `None` if a subscription
    /// does not decode (then every topic counts as subscribed).
    pub(super) fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        let mut topics = BTreeSet::new();
        for member in self.group.members.values() {
            let metadata = match &self.group.protocol_name {
                Some(protocol) => member.metadata_for(protocol),
                None => member.protocols.first().map(|(_, m)| m.clone())?,
            };
            topics.extend(consumer_protocol::subscribed_topics(&metadata)?);
        }
        Some(topics)
    }

    pub(super) async fn delete_offsets(
        &mut self,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Option<GroupError>>, GroupError> {
        let errors: Vec<Option<GroupError>> = match self.group.state {
            GroupState::Dead => return Err(GroupError::GroupIdNotFound),
            _ if self.group.has_consumer_members() => {
                let topics = self.topics().await.ok();
                let subscribed = self
                    .group
                    .consumer
                    .as_ref()
                    .map(|c| c.subscribed_topic_names(topics.as_deref()))
                    .unwrap_or_default();
                partitions
                    .iter()
                    .map(|(topic, _)| {
                        subscribed
                            .contains(topic)
                            .then_some(GroupError::GroupSubscribedToTopic)
                    })
                    .collect()
            }
            GroupState::Empty => vec![None; partitions.len()],
            GroupState::PreparingRebalance
            | GroupState::CompletingRebalance
            | GroupState::Stable
                if self.group.protocol_type.as_deref() == Some(CONSUMER_PROTOCOL_TYPE) =>
            {
                let subscribed = self.subscribed_topics();
                partitions
                    .iter()
                    .map(|(topic, _)| {
                        let consumed = subscribed.as_ref().is_none_or(|s| s.contains(topic));
                        consumed.then_some(GroupError::GroupSubscribedToTopic)
                    })
                    .collect()
            }
            GroupState::PreparingRebalance
            | GroupState::CompletingRebalance
            | GroupState::Stable => return Err(GroupError::NonEmptyGroup),
        };
        let eligible: Vec<(String, i32)> = partitions
            .iter()
            .zip(&errors)
            .filter(|(_, error)| error.is_none())
            .map(|(partition, _)| partition.clone())
            .collect();
        if !eligible.is_empty() {
            let result = self
                .context
                .store
                .delete_offsets(self.lease.fence(), &self.group.group_id, &eligible)
                .await;
            result.map_err(|error| self.write_failed(&error))?;
        }
        Ok(errors)
    }
}
