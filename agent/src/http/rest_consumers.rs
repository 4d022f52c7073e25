//! What the gateway's Confluent REST Proxy compatibility needs from this
//! agent beyond produce and read: consumer groups as an admin API describes
//! them (read from metadata, so every agent answers for every group), and the
//! REST Proxy consumer instances it keeps in metadata
//! ([`fjord_metadata::rest_consumers`]), so that any agent serves any
//! instance URL.

use fjord_gateway::KafkaError;
use fjord_gateway::core::{GroupMemberSummary, GroupSummary, RestConsumer};
use fjord_metadata::rest_consumers::{RestConsumerRecord, RestConsumerWrite};
use fjord_metadata::{ConsumerMemberState, GroupPhase, GroupRecord};

use super::{GatewayCore, of_metadata};

impl GatewayCore {
    pub(super) async fn group_summaries(&self) -> Result<Vec<GroupSummary>, KafkaError> {
        let ids = self
            .broker
            .store
            .list_group_ids()
            .await
            .map_err(|e| of_metadata(&e))?;
        let mut groups = Vec::with_capacity(ids.len());
        for id in ids {
            // A group deleted since the listing is left out.
            if let Some(group) = self.group_summary(&id).await? {
                groups.push(group);
            }
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(groups)
    }

    pub(super) async fn group_summary(
        &self,
        group: &str,
    ) -> Result<Option<GroupSummary>, KafkaError> {
        let record = self
            .broker
            .store
            .load_group(group)
            .await
            .map_err(|e| of_metadata(&e))?;
        Ok(record.map(|record| {
            let coordinator = self.broker.groups.coordinator_of(group);
            summary(record, coordinator)
        }))
    }

    pub(super) async fn create_rest_instance(
        &self,
        consumer: &RestConsumer,
    ) -> Result<bool, KafkaError> {
        let record = to_record(consumer, self.broker.groups.new_member_id());
        self.broker
            .store
            .create_rest_consumer(&record)
            .await
            .map_err(|e| of_metadata(&e))
    }

    pub(super) async fn rest_instance(
        &self,
        group: &str,
        instance: &str,
    ) -> Result<Option<RestConsumer>, KafkaError> {
        Ok(self
            .broker
            .store
            .rest_consumer(group, instance)
            .await
            .map_err(|e| of_metadata(&e))?
            .map(of_record))
    }

    pub(super) async fn store_rest_instance(
        &self,
        consumer: &RestConsumer,
    ) -> Result<Option<u64>, KafkaError> {
        // A fresh write id per store: a retried commit recognises its own write.
        let record = to_record(consumer, self.broker.groups.new_member_id());
        match self
            .broker
            .store
            .store_rest_consumer(&record)
            .await
            .map_err(|e| of_metadata(&e))?
        {
            RestConsumerWrite::Stored { version } => Ok(Some(version)),
            RestConsumerWrite::Conflict { .. } => Ok(None),
        }
    }

    pub(super) async fn delete_rest_instance(
        &self,
        group: &str,
        instance: &str,
        version: u64,
    ) -> Result<bool, KafkaError> {
        self.broker
            .store
            .delete_rest_consumer(group, instance, version)
            .await
            .map_err(|e| of_metadata(&e))
    }

    pub(super) async fn rest_instances(&self) -> Result<Vec<RestConsumer>, KafkaError> {
        Ok(self
            .broker
            .store
            .list_rest_consumers(None)
            .await
            .map_err(|e| of_metadata(&e))?
            .into_iter()
            .map(of_record)
            .collect())
    }
}

/// A stored group as an admin API describes it.
fn summary(record: GroupRecord, coordinator: i32) -> GroupSummary {
    match record.consumer {
        Some(consumer) => {
            let reconciling = consumer.assignment_epoch < consumer.group_epoch
                || consumer.members.iter().any(|m| {
                    m.state != ConsumerMemberState::Stable
                        || m.member_epoch != consumer.assignment_epoch
                });
            let state = if consumer.members.is_empty() {
                "Empty"
            } else if reconciling {
                "Reconciling"
            } else {
                "Stable"
            };
            let assignor = consumer
                .members
                .iter()
                .find_map(|m| m.server_assignor.clone())
                .unwrap_or_else(|| "uniform".to_owned());
            GroupSummary {
                group_id: record.group_id,
                group_type: "consumer",
                is_simple: false,
                assignor,
                state,
                coordinator,
                members: consumer
                    .members
                    .into_iter()
                    .map(|m| GroupMemberSummary {
                        member_id: m.member_id,
                        instance_id: m.instance_id,
                        client_id: m.client_id,
                    })
                    .collect(),
            }
        }
        None => {
            let state = match record.phase {
                _ if record.members.is_empty() => "Empty",
                GroupPhase::Empty => "Empty",
                GroupPhase::AwaitingSync => "CompletingRebalance",
                GroupPhase::Stable => "Stable",
            };
            GroupSummary {
                group_id: record.group_id,
                group_type: "classic",
                is_simple: record.protocol_type.is_none() && record.members.is_empty(),
                assignor: record.protocol_name.unwrap_or_default(),
                state,
                coordinator,
                members: record
                    .members
                    .into_iter()
                    .map(|m| GroupMemberSummary {
                        member_id: m.member_id,
                        instance_id: m.group_instance_id,
                        client_id: m.client_id,
                    })
                    .collect(),
            }
        }
    }
}

fn to_record(consumer: &RestConsumer, write_id: String) -> RestConsumerRecord {
    let RestConsumer {
        group,
        instance,
        version,
        format,
        auto_offset_reset,
        auto_commit,
        fetch_min_bytes,
        request_timeout_ms,
        session_timeout_ms,
        instance_timeout_ms,
        topics,
        pattern,
        assigned,
        member_id,
        member_epoch,
        positions,
        created_at_ms,
        last_used_ms,
    } = consumer.clone();
    RestConsumerRecord {
        group,
        instance,
        version,
        write_id,
        format,
        auto_offset_reset,
        auto_commit,
        fetch_min_bytes,
        request_timeout_ms,
        session_timeout_ms,
        instance_timeout_ms,
        subscribed_topics: topics,
        subscribed_pattern: pattern,
        assigned,
        member_id,
        member_epoch,
        positions,
        created_at_ms,
        last_used_ms,
    }
}

fn of_record(record: RestConsumerRecord) -> RestConsumer {
    let RestConsumerRecord {
        group,
        instance,
        version,
        write_id: _,
        format,
        auto_offset_reset,
        auto_commit,
        fetch_min_bytes,
        request_timeout_ms,
        session_timeout_ms,
        instance_timeout_ms,
        subscribed_topics,
        subscribed_pattern,
        assigned,
        member_id,
        member_epoch,
        positions,
        created_at_ms,
        last_used_ms,
    } = record;
    RestConsumer {
        group,
        instance,
        version,
        format,
        auto_offset_reset,
        auto_commit,
        fetch_min_bytes,
        request_timeout_ms,
        session_timeout_ms,
        instance_timeout_ms,
        topics: subscribed_topics,
        pattern: subscribed_pattern,
        assigned,
        member_id,
        member_epoch,
        positions,
        created_at_ms,
        last_used_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_convert_to_records_and_back() {
        let consumer = RestConsumer {
            group: "g".into(),
            instance: "i".into(),
            version: 3,
            format: "json".into(),
            auto_offset_reset: "earliest".into(),
            auto_commit: true,
            fetch_min_bytes: 10,
            request_timeout_ms: 1_000,
            session_timeout_ms: 6_000,
            instance_timeout_ms: 300_000,
            topics: vec!["t".into()],
            pattern: Some("t.*".into()),
            assigned: vec![("u".into(), 1)],
            member_id: "m".into(),
            member_epoch: 2,
            positions: vec![("t".into(), 0, 5)],
            created_at_ms: 10,
            last_used_ms: 20,
        };
        let record = to_record(&consumer, "w".into());
        assert_eq!(record.write_id, "w");
        assert_eq!(of_record(record), consumer);
    }
}
