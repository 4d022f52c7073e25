//! `ListOffsets`: earliest (-2), latest (-1), max timestamp (-3) and by timestamp.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::Broker;
use crate::kafka::errors::metadata_error;
use fjord_metadata::{MetadataError, TopicPartition};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
/// How many index entries a timestamp search reads at most.
const TIMESTAMP_SCAN_LIMIT: usize = 100_000;

pub(super) async fn handle(
    broker: &Broker,
    request: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut response = ListOffsetsResponse::default();
    for topic in request.topics {
        let meta = broker.store.describe_topic(topic.name.0.as_str()).await;
        let mut topic_response = ListOffsetsTopicResponse::default();
        topic_response.name = topic.name.clone();
        for partition in topic.partitions {
            let mut answer = ListOffsetsPartitionResponse::default();
            answer.partition_index = partition.partition_index;
            answer.timestamp = -1;
            answer.offset = -1;
            answer.leader_epoch = -1;
            let meta = match &meta {
                Ok(meta) if (0..meta.partition_count).contains(&partition.partition_index) => meta,
                Ok(_) | Err(MetadataError::UnknownTopic { .. }) => {
                    answer.error_code = ResponseError::UnknownTopicOrPartition.code();
                    topic_response.partitions.push(answer);
                    continue;
                }
                Err(error) => {
                    answer.error_code = metadata_error(error).code();
                    topic_response.partitions.push(answer);
                    continue;
                }
            };
            let tp = TopicPartition::new(meta.id, partition.partition_index);
            let lookup = match broker.store.lookup(tp, 0, TIMESTAMP_SCAN_LIMIT).await {
                Ok(lookup) => lookup,
                Err(error) => {
                    answer.error_code = metadata_error(&error).code();
                    topic_response.partitions.push(answer);
                    continue;
                }
            };
            let state = lookup.state;
            if version >= 4 {
                answer.leader_epoch = state.leader_epoch;
            }
            match partition.timestamp {
                LATEST => answer.offset = state.high_watermark,
                EARLIEST => answer.offset = state.log_start_offset,
                MAX_TIMESTAMP => {
                    // The batch-level answer: the last batch holding the largest
                    // timestamp (record-level precision needs decoding records).
                    if let Some(entry) = lookup
                        .entries
                        .iter()
                        .max_by_key(|e| (e.max_timestamp, e.base_offset))
                    {
                        answer.timestamp = entry.max_timestamp;
                        answer.offset = entry.base_offset;
                    }
                }
                wanted => {
                    // The first chunk whose largest timestamp reaches `wanted`; its
                    // first offset is where a consumer starts scanning.
                    match lookup.entries.iter().find(|e| e.max_timestamp >= wanted) {
                        Some(entry) => {
                            answer.timestamp = entry.max_timestamp;
                            answer.offset = entry.base_offset;
                        }
                        None => answer.offset = state.high_watermark,
                    }
                }
            }
            topic_response.partitions.push(answer);
        }
        response.topics.push(topic_response);
    }
    response
}
