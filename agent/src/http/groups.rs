//! The gateway's group members (HTTP, gRPC), as Kafka requests to the
//! group's coordinator: `ConsumerGroupHeartbeat`, `OffsetCommit` v9 and
//! `OffsetFetch` v9, handled in this process when this agent coordinates the
//! group, and sent to the coordinator's Kafka listener otherwise. So a
//! gateway member is a member of the server-side consumer protocol like any
//! Kafka consumer, and one set of handlers checks them all.

use std::time::Duration;

use bytes::Bytes;
use fjord_gateway::{GroupAssignment, GroupHeartbeat, KafkaError};
use fjord_metadata::TopicId;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::{GatewayCore, of_metadata};
use crate::kafka::in_process::{self, SESSION_TIMEOUT_TAG};

/// How long a forwarded group request may take.
const GROUP_CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// The client id gateway members show in group descriptions.
const CLIENT_ID: &str = "fjord-gateway";

fn failed(code: i16, message: Option<&StrBytes>) -> Result<(), KafkaError> {
    if code == 0 {
        return Ok(());
    }
    let error = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
    let message = message.map_or_else(|| format!("{error:?}"), |m| m.to_string());
    Err(KafkaError::new(error, message))
}

impl GatewayCore {
    /// The Kafka address of the group's coordinator; `None` when it is this
    /// agent.
    fn coordinator_address(&self, group: &str) -> Result<Option<String>, KafkaError> {
        let node = self.broker.groups.coordinator_of(group);
        if node == self.broker.node_id {
            return Ok(None);
        }
        self.kafka_address(node).map(Some).ok_or_else(|| {
            KafkaError::new(
                ResponseError::CoordinatorNotAvailable,
                format!("the coordinator of group {group} (node {node}) is not live"),
            )
        })
    }

    async fn topic_id(&self, name: &str) -> Result<TopicId, KafkaError> {
        Ok(self
            .broker
            .logs
            .topics()
            .describe(name)
            .await
            .map_err(|e| of_metadata(&e))?
            .id)
    }

    pub(super) async fn heartbeat_group(
        &self,
        heartbeat: GroupHeartbeat,
    ) -> Result<GroupAssignment, KafkaError> {
        let mut request = ConsumerGroupHeartbeatRequest::default();
        request.group_id = GroupId(StrBytes::from_string(heartbeat.group.clone()));
        request.member_id = StrBytes::from_string(if heartbeat.member_id.is_empty() {
            // Heartbeat v1: the member id is the client's to make.
            self.broker.groups.new_member_id()
        } else {
            heartbeat.member_id.clone()
        });
        let member_id = request.member_id.to_string();
        request.member_epoch = heartbeat.member_epoch;
        request.instance_id = heartbeat.instance_id.map(StrBytes::from_string);
        request.rebalance_timeout_ms = heartbeat.rebalance_timeout_ms;
        request.subscribed_topic_names = heartbeat.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| TopicName(StrBytes::from_string(t)))
                .collect()
        });
        request.subscribed_topic_regex = heartbeat.pattern.map(StrBytes::from_string);
        request.server_assignor = heartbeat.assignor.map(StrBytes::from_string);
        if let Some(owned) = heartbeat.owned {
            let mut topics = Vec::with_capacity(owned.len());
            for (topic, partitions) in owned {
                // A topic deleted since is owned no more.
                let Ok(id) = self.topic_id(&topic).await else {
                    continue;
                };
                let mut entry = TopicPartitions::default();
                entry.topic_id = id.0;
                entry.partitions = partitions;
                topics.push(entry);
            }
            request.topic_partitions = Some(topics);
        }
        if let Some(timeout) = heartbeat.session_timeout_ms {
            request.unknown_tagged_fields.insert(
                SESSION_TIMEOUT_TAG,
                Bytes::copy_from_slice(&timeout.to_be_bytes()),
            );
        }
        let response: ConsumerGroupHeartbeatResponse = match self
            .coordinator_address(&heartbeat.group)?
        {
            None => in_process::consumer_group_heartbeat(&self.broker, request, CLIENT_ID).await,
            Some(address) => {
                self.forwarder
                    .request(
                        &address,
                        ApiKey::ConsumerGroupHeartbeat,
                        in_process::HEARTBEAT_VERSION,
                        &request,
                        GROUP_CALL_TIMEOUT,
                    )
                    .await?
            }
        };
        failed(response.error_code, response.error_message.as_ref())?;
        let assignment = match response.assignment {
            None => None,
            Some(assignment) => {
                let mut named = Vec::with_capacity(assignment.topic_partitions.len());
                for topic in assignment.topic_partitions {
                    let meta = self
                        .broker
                        .logs
                        .topics()
                        .by_id(TopicId(topic.topic_id))
                        .await
                        .map_err(|e| of_metadata(&e))?;
                    named.push((meta.name, topic.partitions));
                }
                Some(named)
            }
        };
        Ok(GroupAssignment {
            member_id: response
                .member_id
                .map(|m| m.to_string())
                .unwrap_or(member_id),
            member_epoch: response.member_epoch,
            heartbeat_interval_ms: response.heartbeat_interval_ms,
            assignment,
        })
    }

    pub(super) async fn commit_group_offsets(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: i32,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), KafkaError> {
        let mut request = OffsetCommitRequest::default();
        request.group_id = GroupId(StrBytes::from_string(group.to_owned()));
        request.generation_id_or_member_epoch = member_epoch;
        request.member_id = StrBytes::from_string(member_id.to_owned());
        let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
        for (topic, partition, offset) in offsets {
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = *partition;
            p.committed_offset = *offset;
            p.committed_leader_epoch = -1;
            match topics.iter_mut().find(|t| t.name.0.as_str() == topic) {
                Some(t) => t.partitions.push(p),
                None => {
                    let mut t = OffsetCommitRequestTopic::default();
                    t.name = TopicName(StrBytes::from_string(topic.clone()));
                    t.partitions = vec![p];
                    topics.push(t);
                }
            }
        }
        request.topics = topics;
        let response: OffsetCommitResponse = match self.coordinator_address(group)? {
            None => in_process::offset_commit(&self.broker, request).await,
            Some(address) => {
                self.forwarder
                    .request(
                        &address,
                        ApiKey::OffsetCommit,
                        in_process::OFFSET_COMMIT_VERSION,
                        &request,
                        GROUP_CALL_TIMEOUT,
                    )
                    .await?
            }
        };
        for topic in &response.topics {
            for partition in &topic.partitions {
                failed(partition.error_code, None).map_err(|e| {
                    KafkaError::new(
                        e.error,
                        format!(
                            "committing {}/{}: {}",
                            topic.name.0, partition.partition_index, e.message
                        ),
                    )
                })?;
            }
        }
        Ok(())
    }

    pub(super) async fn committed_group_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<i64>>, KafkaError> {
        let mut wanted: Vec<OffsetFetchRequestTopics> = Vec::new();
        for (topic, partition) in partitions {
            match wanted.iter_mut().find(|t| t.name.0.as_str() == topic) {
                Some(t) => t.partition_indexes.push(*partition),
                None => {
                    let mut t = OffsetFetchRequestTopics::default();
                    t.name = TopicName(StrBytes::from_string(topic.clone()));
                    t.partition_indexes = vec![*partition];
                    wanted.push(t);
                }
            }
        }
        let mut entry = OffsetFetchRequestGroup::default();
        entry.group_id = GroupId(StrBytes::from_string(group.to_owned()));
        entry.member_epoch = -1;
        entry.topics = Some(wanted);
        let mut request = OffsetFetchRequest::default();
        request.groups = vec![entry];
        let response: OffsetFetchResponse = match self.coordinator_address(group)? {
            None => in_process::offset_fetch(&self.broker, request).await,
            Some(address) => {
                self.forwarder
                    .request(
                        &address,
                        ApiKey::OffsetFetch,
                        in_process::OFFSET_FETCH_VERSION,
                        &request,
                        GROUP_CALL_TIMEOUT,
                    )
                    .await?
            }
        };
        let Some(answer) = response.groups.first() else {
            return Err(KafkaError::new(
                ResponseError::UnknownServerError,
                "the coordinator answered no group",
            ));
        };
        failed(answer.error_code, None)?;
        Ok(partitions
            .iter()
            .map(|(topic, partition)| {
                answer
                    .topics
                    .iter()
                    .filter(|t| t.name.0.as_str() == topic)
                    .flat_map(|t| &t.partitions)
                    .find(|p| p.partition_index == *partition && p.error_code == 0)
                    .map(|p| p.committed_offset)
                    .filter(|offset| *offset >= 0)
            })
            .collect())
    }
}
