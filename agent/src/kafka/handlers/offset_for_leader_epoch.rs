//! `OffsetForLeaderEpoch` (v2–4): where a leader epoch's records end, which
//! consumers ask after a leader change to detect a truncated log. Answers come
//! from [`MetadataStore::epoch_end_offset`](fjord_metadata::MetadataStore::epoch_end_offset)
//! (Kafka's leader-epoch cache semantics over the segment index).
//!
//! `current_leader_epoch` (-1: not checked) is the client's view of the
//! partition's epoch: older than the partition's is `FENCED_LEADER_EPOCH`, newer
//! is `UNKNOWN_LEADER_EPOCH` (the client refreshes metadata and retries). An
//! epoch the log knows nothing about answers epoch -1 and offset -1 without an
//! error, as Kafka does.
//!
//! With an authorizer, as Kafka's: `CLUSTER_ACTION` on the cluster (brokers'
//! followers) allows every topic, else each topic needs `DESCRIBE`, or its
//! partitions are `TOPIC_AUTHORIZATION_FAILED`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

use crate::Broker;
use crate::kafka::errors::{authorization_error, metadata_error};
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, EpochEnd, MetadataError, TopicMeta, TopicPartition};

/// `current_leader_epoch` when the client does not ask for the check.
const NO_EPOCH_CHECK: i32 = -1;

async fn end_offset(
    broker: &Broker,
    meta: &Result<TopicMeta, MetadataError>,
    partition: i32,
    current_leader_epoch: i32,
    leader_epoch: i32,
) -> Result<Option<EpochEnd>, ResponseError> {
    let meta = match meta {
        Ok(meta) if (0..meta.partition_count).contains(&partition) => meta,
        Ok(_) | Err(MetadataError::UnknownTopic { .. }) => {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        Err(error) => return Err(metadata_error(error)),
    };
    let lookup = broker
        .store
        .epoch_end_offset(TopicPartition::new(meta.id, partition), leader_epoch)
        .await
        .map_err(|error| metadata_error(&error))?;
    if current_leader_epoch != NO_EPOCH_CHECK {
        let current = lookup.state.leader_epoch;
        if current_leader_epoch < current {
            return Err(ResponseError::FencedLeaderEpoch);
        }
        if current_leader_epoch > current {
            return Err(ResponseError::UnknownLeaderEpoch);
        }
    }
    Ok(lookup.end)
}

pub(crate) async fn handle(
    broker: &Broker,
    request: OffsetForLeaderEpochRequest,
    _version: i16,
    access: &Session<'_>,
) -> OffsetForLeaderEpochResponse {
    let mut response = OffsetForLeaderEpochResponse::default();
    let cluster_action = access.authorize_cluster(AclOperation::ClusterAction);
    for requested in request.topics {
        let denied = (!cluster_action)
            .then(|| {
                access
                    .topic(AclOperation::Describe, requested.topic.0.as_str())
                    .err()
            })
            .flatten();
        let meta = broker
            .store
            .describe_topic(requested.topic.0.as_str())
            .await;
        let mut topic_result = OffsetForLeaderTopicResult::default();
        topic_result.topic = requested.topic.clone();
        for partition in requested.partitions {
            let mut result = EpochEndOffset::default();
            result.partition = partition.partition;
            result.leader_epoch = -1;
            result.end_offset = -1;
            if let Some(denied) = &denied {
                result.error_code = authorization_error(denied).code();
                topic_result.partitions.push(result);
                continue;
            }
            match end_offset(
                broker,
                &meta,
                partition.partition,
                partition.current_leader_epoch,
                partition.leader_epoch,
            )
            .await
            {
                Ok(Some(end)) => {
                    result.leader_epoch = end.leader_epoch;
                    result.end_offset = end.end_offset;
                }
                Ok(None) => {}
                Err(error) => result.error_code = error.code(),
            }
            topic_result.partitions.push(result);
        }
        response.topics.push(topic_result);
    }
    response
}
