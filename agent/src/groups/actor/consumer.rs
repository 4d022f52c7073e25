//! The server-side consumer protocol (KIP-848) in a group actor: heartbeats,
//! member timers, leaves by `LeaveGroup`, and describing the group. The rules
//! live in [`crate::groups::consumer`]; this module reads the topics, persists
//! and answers.
//!
//! Every change is applied to a copy of the group and persisted (fenced by
//! the shard) before it replaces the group and the member is answered, so
//! what members learn is durable and what the actor holds is what metadata
//! holds.

use std::sync::Arc;
use std::time::Duration;

use fjord_metadata::{GroupPhase, MetadataStore};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::GroupActor;
use crate::groups::GroupError;
use crate::groups::consumer::{ConsumerGroup, TopicsView};
use crate::groups::state::GroupState;
use crate::groups::types::*;

/// How long a read of the topics serves heartbeats before it is read again (a
/// new partition or a topic matching a regular expression is seen within it).
const TOPICS_REFRESH: Duration = Duration::from_secs(1);

/// The topics as last read from metadata, shared by a coordinator's actors.
#[derive(Debug, Default)]
pub(crate) struct TopicsCache {
    last: Mutex<Option<(Instant, Arc<TopicsView>)>>,
}

/// Numbers the reads of the topics (from 1).
static TOPICS_VERSION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl TopicsCache {
    async fn get(&self, store: &MetadataStore) -> Result<Arc<TopicsView>, GroupError> {
        let mut last = self.last.lock().await;
        if let Some((read_at, view)) = last.as_ref()
            && read_at.elapsed() < TOPICS_REFRESH
        {
            return Ok(view.clone());
        }
        let topics = store
            .list_topics()
            .await
            .map_err(|error| GroupError::from_metadata(&error))?;
        let view = Arc::new(TopicsView {
            by_name: topics
                .into_iter()
                .map(|topic| (topic.name, (topic.id, topic.partition_count)))
                .collect(),
            version: TOPICS_VERSION.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        });
        *last = Some((Instant::now(), view.clone()));
        Ok(view)
    }
}

impl GroupActor {
    pub(super) async fn topics(&self) -> Result<Arc<TopicsView>, GroupError> {
        self.context.topics.get(&self.context.store).await
    }

    /// Persists `updated` as the group's consumer state, then installs it.
    async fn install(&mut self, updated: ConsumerGroup) -> Result<(), GroupError> {
        let previous = self.group.consumer.replace(updated);
        let previous_type = self.group.protocol_type.clone();
        self.group.protocol_type = Some("consumer".to_owned());
        let record = self.group.to_record(GroupPhase::Empty);
        if let Err(error) = self.persist(&record).await {
            self.group.consumer = previous;
            self.group.protocol_type = previous_type;
            return Err(error);
        }
        Ok(())
    }

    pub(super) async fn consumer_heartbeat(
        &mut self,
        request: ConsumerHeartbeatRequest,
        now: Instant,
    ) -> Result<ConsumerHeartbeatResponse, GroupError> {
        if self.group.state == GroupState::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if self.group.state != GroupState::Empty {
            // Classic members own the group (upgrading a group with live
            // classic members is not supported: they leave first).
            return Err(GroupError::GroupIdNotFound);
        }
        let topics = self.topics().await?;
        let mut updated = self.group.consumer.clone().unwrap_or_default();
        let ids = self.context.ids.clone();
        let settings = self.context.settings.consumer;
        let outcome =
            updated.heartbeat(&request, &topics, &settings, now, || ids.uuid().to_string())?;
        if outcome.changed || self.group.consumer.is_none() {
            self.install(updated).await?;
        } else if let Some(current) = self.group.consumer.as_mut() {
            // Only timers moved (session deadlines): nothing to persist.
            *current = updated;
        }
        Ok(outcome.response)
    }

    /// Expires members of a consumer-protocol group whose time ran out.
    pub(super) async fn consumer_timers(&mut self, now: Instant) {
        let Some(consumer) = &self.group.consumer else {
            return;
        };
        if consumer
            .next_deadline()
            .is_none_or(|deadline| deadline > now)
        {
            return;
        }
        let topics = match self.topics().await {
            Ok(topics) => topics,
            Err(error) => {
                tracing::warn!(group = %self.group.group_id, %error, "cannot read topics to expire members");
                return;
            }
        };
        let mut updated = consumer.clone();
        if updated.expire(now, &topics)
            && let Err(error) = self.install(updated).await
        {
            tracing::warn!(group = %self.group.group_id, %error, "expiring consumer group members failed; retried");
        }
    }

    /// `LeaveGroup` naming members of a consumer-protocol group (an admin
    /// removing them).
    pub(super) async fn consumer_leave(
        &mut self,
        members: &[LeavingMember],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        let topics = self.topics().await?;
        let Some(mut updated) = self.group.consumer.clone() else {
            return Ok(vec![Err(GroupError::UnknownMemberId); members.len()]);
        };
        let results: Vec<Result<(), GroupError>> = members
            .iter()
            .map(|leaving| {
                updated.remove_by_admin(
                    &leaving.member_id,
                    leaving.group_instance_id.as_deref(),
                    &topics,
                )
            })
            .collect();
        if results.iter().any(Result::is_ok) {
            self.install(updated).await?;
        }
        Ok(results)
    }

    pub(super) async fn consumer_describe(
        &mut self,
    ) -> Result<ConsumerGroupDescription, GroupError> {
        let Some(consumer) = &self.group.consumer else {
            return Err(GroupError::GroupIdNotFound);
        };
        let consumer = consumer.clone();
        let topics = self.topics().await?;
        Ok(consumer.describe(&self.group.group_id, &topics))
    }
}
