//! `DeleteRecords` (v0–2): moves partitions' log start offsets forward
//! ([`MetadataStore::delete_records`](fjord_metadata::MetadataStore::delete_records),
//! one transaction each) and answers each partition's new low watermark.
//!
//! | case | error |
//! |---|---|
//! | unknown topic or partition | `UNKNOWN_TOPIC_OR_PARTITION` |
//! | `cleanup.policy` without `delete` | `POLICY_VIOLATION` (as Kafka) |
//! | offset beyond the high watermark, or negative other than -1 | `OFFSET_OUT_OF_RANGE` |
//!
//! Offset -1 means the high watermark; an offset below the log start moves
//! nothing. Afterwards fetches below the new log start are `OFFSET_OUT_OF_RANGE`
//! and `ListOffsets` earliest answers it.
//!
//! With an authorizer, each topic needs `DELETE`, else its partitions are
//! `TOPIC_AUTHORIZATION_FAILED` (as Kafka's).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::Broker;
use crate::configs::topic;
use crate::kafka::errors::metadata_error;
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, MetadataError, TopicMeta, TopicPartition};

async fn delete(
    broker: &Broker,
    meta: &Result<TopicMeta, MetadataError>,
    partition: i32,
    offset: i64,
) -> Result<i64, ResponseError> {
    let meta = match meta {
        Ok(meta) if (0..meta.partition_count).contains(&partition) => meta,
        Ok(_) | Err(MetadataError::UnknownTopic { .. }) => {
            return Err(ResponseError::UnknownTopicOrPartition);
        }
        Err(error) => return Err(metadata_error(error)),
    };
    if !topic::cleanup_policy_deletes(&meta.configs) {
        return Err(ResponseError::PolicyViolation);
    }
    let tp = TopicPartition::new(meta.id, partition);
    let low_watermark = broker
        .store
        .delete_records(tp, offset)
        .await
        .map_err(|error| metadata_error(&error))?;
    // This agent's reads from memory honour the new log start at once.
    broker.logs.log_start_moved(tp, low_watermark);
    Ok(low_watermark)
}

pub(crate) async fn handle(
    broker: &Broker,
    request: DeleteRecordsRequest,
    _version: i16,
    access: &Session<'_>,
) -> DeleteRecordsResponse {
    let mut response = DeleteRecordsResponse::default();
    for requested in request.topics {
        let denied = access
            .topic(AclOperation::Delete, requested.name.0.as_str())
            .err()
            .map(ResponseError::from);
        let meta = broker.store.describe_topic(requested.name.0.as_str()).await;
        let mut topic_result = DeleteRecordsTopicResult::default();
        topic_result.name = requested.name.clone();
        for partition in requested.partitions {
            let mut result = DeleteRecordsPartitionResult::default();
            result.partition_index = partition.partition_index;
            if let Some(error) = denied {
                result.low_watermark = -1;
                result.error_code = error.code();
                topic_result.partitions.push(result);
                continue;
            }
            match delete(broker, &meta, partition.partition_index, partition.offset).await {
                Ok(low_watermark) => result.low_watermark = low_watermark,
                Err(error) => {
                    result.low_watermark = -1;
                    result.error_code = error.code();
                }
            }
            topic_result.partitions.push(result);
        }
        response.topics.push(topic_result);
    }
    response
}
