//! `OffsetCommit` (v2–8): per-partition checks (known topic and partition,
//! metadata size) here; the group and generation checks and the fenced write in
//! the coordinator.
//!
//! With an authorizer, as Kafka's: `READ` on the group (else every partition
//! is `GROUP_AUTHORIZATION_FAILED`) and on each topic (else its partitions are
//! `TOPIC_AUTHORIZATION_FAILED`).

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use crate::Broker;
use crate::groups::GroupError;
use crate::groups::types::CommitRequest;
use crate::kafka::errors::{authorization_code, group_error_code};
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, OffsetCommit};

pub(crate) async fn handle(
    broker: &Broker,
    request: OffsetCommitRequest,
    version: i16,
    access: &Session<'_>,
) -> OffsetCommitResponse {
    let group_allowed = access.group(AclOperation::Read, request.group_id.0.as_str());
    let max_metadata = broker.groups.settings().max_offset_metadata_bytes;
    let mut response = OffsetCommitResponse::default();
    let mut offsets = Vec::new();
    // (topic index, partition index) of each offset sent to the coordinator.
    let mut committed_at = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.as_str();
        let allowed = group_allowed
            .clone()
            .and_then(|()| access.topic(AclOperation::Read, name));
        let mut topic_response = OffsetCommitResponseTopic::default();
        topic_response.name = topic.name.clone();
        if allowed.is_err() {
            for partition in &topic.partitions {
                let mut answer = OffsetCommitResponsePartition::default();
                answer.partition_index = partition.partition_index;
                answer.error_code = authorization_code(&allowed);
                topic_response.partitions.push(answer);
            }
            response.topics.push(topic_response);
            continue;
        }
        let meta = broker.store.describe_topic(name).await;
        for partition in &topic.partitions {
            let mut answer = OffsetCommitResponsePartition::default();
            answer.partition_index = partition.partition_index;
            let error = match &meta {
                Ok(meta) if (0..meta.partition_count).contains(&partition.partition_index) => {
                    let metadata_len = partition.committed_metadata.as_ref().map_or(0, |m| m.len());
                    (metadata_len > max_metadata).then_some(GroupError::OffsetMetadataTooLarge)
                }
                Ok(_) => Some(GroupError::UnknownTopicOrPartition),
                Err(error) => Some(GroupError::from_metadata(error)),
            };
            match error {
                Some(error) => answer.error_code = group_error_code(Some(&error)),
                None => {
                    committed_at.push((response.topics.len(), topic_response.partitions.len()));
                    offsets.push(OffsetCommit {
                        topic: name.to_owned(),
                        partition: partition.partition_index,
                        offset: partition.committed_offset,
                        leader_epoch: (version >= 6 && partition.committed_leader_epoch >= 0)
                            .then_some(partition.committed_leader_epoch),
                        metadata: partition.committed_metadata.as_ref().map(|m| m.to_string()),
                    });
                }
            }
            topic_response.partitions.push(answer);
        }
        response.topics.push(topic_response);
    }
    if offsets.is_empty() {
        return response;
    }
    let commit = CommitRequest {
        group_id: request.group_id.0.to_string(),
        generation: request.generation_id_or_member_epoch,
        member_id: request.member_id.to_string(),
        group_instance_id: if version >= 7 {
            request.group_instance_id.as_ref().map(|id| id.to_string())
        } else {
            None
        },
        offsets,
    };
    if let Err(error) = broker.groups.commit_offsets(commit).await {
        let code = group_error_code(Some(&error));
        for (topic, partition) in committed_at {
            if let Some(answer) = response
                .topics
                .get_mut(topic)
                .and_then(|t| t.partitions.get_mut(partition))
            {
                answer.error_code = code;
            }
        }
    }
    response
}
