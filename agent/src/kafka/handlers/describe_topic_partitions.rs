//! `DescribeTopicPartitions` (v0, KIP-966): topics and their partitions as
//! `Metadata` describes them, paged by a cursor.
//!
//! Topics are answered in name order (every topic when the request names
//! none), from the cursor's topic and partition on, with at most
//! `response_partition_limit` partitions in all; when the limit cuts a topic
//! short, `next_cursor` names the first partition left out. A partition's
//! replica set and ISR are its leader (its one copy is the bucket's); eligible
//! leader replicas are empty (there is no unclean election to guard against)
//! and no replica is offline.
//!
//! With an authorizer, as Kafka's: every topic needs `DESCRIBE`; listing all
//! topics leaves out the others, a topic named without it is
//! `TOPIC_AUTHORIZATION_FAILED`.

use fjord_metadata::TopicMeta;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::metadata::advertised_leader;
use crate::Broker;
use crate::kafka::errors::metadata_error;
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, ResourceType};

/// Kafka's cap on `response_partition_limit` (its default as well).
const MAX_PARTITIONS: i32 = 2000;

pub(crate) async fn handle(
    broker: &Broker,
    request: DescribeTopicPartitionsRequest,
    access: &Session<'_>,
) -> DescribeTopicPartitionsResponse {
    let mut response = DescribeTopicPartitionsResponse::default();
    let mut names: Vec<String> = if request.topics.is_empty() {
        match broker.store.list_topics().await {
            Ok(topics) => topics
                .into_iter()
                .map(|t| t.name)
                .filter(|name| access.authorize(AclOperation::Describe, ResourceType::Topic, name))
                .collect(),
            Err(error) => {
                tracing::warn!(%error, "listing topics failed");
                return response;
            }
        }
    } else {
        request
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect()
    };
    names.sort();
    names.dedup();
    let (cursor_topic, cursor_partition) = match &request.cursor {
        Some(cursor) => (
            Some(cursor.topic_name.0.to_string()),
            cursor.partition_index,
        ),
        None => (None, 0),
    };
    let mut budget = request.response_partition_limit.clamp(1, MAX_PARTITIONS);
    for name in names {
        if cursor_topic.as_ref().is_some_and(|c| name < *c) {
            continue;
        }
        let first = if cursor_topic.as_ref() == Some(&name) {
            cursor_partition.max(0)
        } else {
            0
        };
        if budget == 0 {
            response.next_cursor = Some(cursor_at(name, first));
            break;
        }
        let mut topic = DescribeTopicPartitionsResponseTopic::default();
        topic.name = Some(TopicName(StrBytes::from_string(name.clone())));
        if let Err(denied) = access.topic(AclOperation::Describe, &name) {
            topic.error_code = ResponseError::from(denied).code();
            response.topics.push(topic);
            continue;
        }
        let meta = match broker.store.describe_topic(&name).await {
            Ok(meta) => meta,
            Err(error) => {
                topic.error_code = metadata_error(&error).code();
                response.topics.push(topic);
                continue;
            }
        };
        topic.topic_id = meta.id.0;
        match describe(broker, &meta, first, &mut budget).await {
            Ok((partitions, next)) => {
                topic.partitions = partitions;
                response.topics.push(topic);
                if let Some(next) = next {
                    response.next_cursor = Some(cursor_at(name, next));
                    break;
                }
            }
            Err(error) => {
                topic.error_code = error.code();
                response.topics.push(topic);
            }
        }
    }
    response
}

fn cursor_at(topic: String, partition: i32) -> Cursor {
    let mut cursor = Cursor::default();
    cursor.topic_name = TopicName(StrBytes::from_string(topic));
    cursor.partition_index = partition;
    cursor
}

/// The partitions of `topic` from `first` on, while `budget` lasts, and the
/// first partition left out, if the budget ran out before the topic did.
async fn describe(
    broker: &Broker,
    topic: &TopicMeta,
    first: i32,
    budget: &mut i32,
) -> Result<(Vec<DescribeTopicPartitionsResponsePartition>, Option<i32>), ResponseError> {
    let states = broker
        .store
        .partition_states(topic.id)
        .await
        .map_err(|error| metadata_error(&error))?;
    let mut partitions = Vec::new();
    for (index, state) in states.iter().enumerate() {
        let index = i32::try_from(index).unwrap_or(i32::MAX);
        if index < first {
            continue;
        }
        if *budget == 0 {
            return Ok((partitions, Some(index)));
        }
        *budget -= 1;
        let leader = BrokerId(advertised_leader(broker, topic, index, state));
        let mut partition = DescribeTopicPartitionsResponsePartition::default();
        partition.partition_index = index;
        partition.leader_id = leader;
        partition.leader_epoch = state.leader_epoch;
        partition.replica_nodes = vec![leader];
        partition.isr_nodes = vec![leader];
        partition.eligible_leader_replicas = Some(Vec::new());
        partition.last_known_elr = Some(Vec::new());
        partitions.push(partition);
    }
    Ok((partitions, None))
}
