//! `ListOffsets`: earliest (-2), latest (-1), max timestamp (-3, v7),
//! earliest local (-4, v8), latest tiered (-5, v9) and by timestamp, answered
//! as Kafka answers them:
//!
//! - earliest: the log start offset (moved by `DeleteRecords`), with the epoch of
//!   the record there;
//! - earliest local (KIP-405): the same, as an agent keeps no local log: the
//!   bucket holds everything from the log start on;
//! - latest tiered (KIP-1005): the last offset in the bucket, which is the last
//!   committed one (high watermark − 1), or -1 when the log is empty;
//! - latest: the high watermark, with the current epoch; for
//!   `read_committed` (isolation level 1) the last stable offset;
//! - by timestamp: the first record whose timestamp is at least the one asked
//!   for, with its own timestamp and epoch;
//! - max timestamp: the first record holding the largest timestamp.
//!
//! A timestamp search that finds nothing answers offset -1 and timestamp -1
//! (Kafka's unknown offset), which clients read as "no such record".
//!
//! With an authorizer, each topic needs `DESCRIBE`, else its partitions are
//! `TOPIC_AUTHORIZATION_FAILED`.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::Broker;
use crate::kafka::errors::{log_error, metadata_error};
use crate::log::TimestampQuery;
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, MetadataError, TopicPartition};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// Fills `answer` for one partition, or returns the error to report.
async fn answer_partition(
    broker: &Broker,
    tp: TopicPartition,
    timestamp: i64,
    read_committed: bool,
    answer: &mut ListOffsetsPartitionResponse,
) -> Result<(), ResponseError> {
    let query = match timestamp {
        LATEST_TIERED => {
            let state = broker
                .store
                .partition_state(tp)
                .await
                .map_err(|error| metadata_error(&error))?;
            if state.high_watermark > state.log_start_offset {
                answer.offset = state.high_watermark - 1;
                answer.leader_epoch = state.leader_epoch;
            } else {
                answer.offset = -1;
                answer.leader_epoch = -1;
            }
            return Ok(());
        }
        LATEST | EARLIEST | EARLIEST_LOCAL => {
            let lookup = broker
                .store
                .lookup(tp, 0, 1)
                .await
                .map_err(|error| metadata_error(&error))?;
            let state = lookup.state;
            if timestamp == LATEST {
                answer.offset = if read_committed {
                    state.last_stable_offset()
                } else {
                    state.high_watermark
                };
                answer.leader_epoch = state.leader_epoch;
            } else {
                answer.offset = state.log_start_offset;
                // The epoch of the record at the log start, or the current one
                // when the log is empty.
                answer.leader_epoch = lookup
                    .entries
                    .first()
                    .filter(|entry| entry.base_offset < state.high_watermark)
                    .map_or(state.leader_epoch, |entry| entry.leader_epoch);
            }
            return Ok(());
        }
        MAX_TIMESTAMP => TimestampQuery::Max,
        // Any other value is a timestamp, negative ones included, as in Kafka.
        wanted => TimestampQuery::AtLeast(wanted),
    };
    match broker.logs.find_by_timestamp(tp, query).await {
        Ok(Some(hit)) => {
            answer.offset = hit.offset;
            answer.timestamp = hit.timestamp;
            answer.leader_epoch = hit.leader_epoch;
            Ok(())
        }
        Ok(None) => Ok(()),
        Err(error) => Err(log_error(&error)),
    }
}

pub(crate) async fn handle(
    broker: &Broker,
    request: ListOffsetsRequest,
    version: i16,
    access: &Session<'_>,
) -> ListOffsetsResponse {
    let mut response = ListOffsetsResponse::default();
    for topic in request.topics {
        let denied = access
            .topic(AclOperation::Describe, topic.name.0.as_str())
            .err()
            .map(ResponseError::from);
        let meta = broker.logs.topics().describe(topic.name.0.as_str()).await;
        let mut topic_response = ListOffsetsTopicResponse::default();
        topic_response.name = topic.name.clone();
        for partition in topic.partitions {
            let mut answer = ListOffsetsPartitionResponse::default();
            answer.partition_index = partition.partition_index;
            answer.timestamp = -1;
            answer.offset = -1;
            answer.leader_epoch = -1;
            let outcome = match (denied, &meta) {
                (Some(error), _) => Err(error),
                (None, Ok(meta))
                    if (0..meta.partition_count).contains(&partition.partition_index) =>
                {
                    let tp = TopicPartition::new(meta.id, partition.partition_index);
                    answer_partition(
                        broker,
                        tp,
                        partition.timestamp,
                        request.isolation_level == 1,
                        &mut answer,
                    )
                    .await
                }
                (None, Ok(_) | Err(MetadataError::UnknownTopic { .. })) => {
                    Err(ResponseError::UnknownTopicOrPartition)
                }
                (None, Err(error)) => Err(metadata_error(error)),
            };
            if let Err(error) = outcome {
                answer.error_code = error.code();
                answer.timestamp = -1;
                answer.offset = -1;
                answer.leader_epoch = -1;
            }
            // The leader epoch is in the response from v4 on.
            if version < 4 {
                answer.leader_epoch = -1;
            }
            topic_response.partitions.push(answer);
        }
        response.topics.push(topic_response);
    }
    response
}
