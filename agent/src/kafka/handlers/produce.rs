//! `Produce`: batches are appended (offsets assigned) in request order while the
//! request is read; the response waits until every partition's batches are in the
//! WAL (`acks=1`) or committed (`acks=-1`), or is not sent at all (`acks=0`).
//! A retried batch of an idempotent producer is answered with its original offset.

use std::future::Future;
use std::pin::Pin;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::kafka::errors::log_error;
use crate::log::{Acks, Appended};
use fjord_metadata::{MetadataError, TopicPartition};

/// The rest of a produce request's work: awaiting durability and building the
/// answer (which, for `acks=0`, nobody is sent).
pub(crate) type Completion = Pin<Box<dyn Future<Output = ProduceResponse> + Send>>;

enum Outcome {
    Appended(Appended),
    Failed(ResponseError, String),
}

/// Appends every partition's batches now (so requests on one connection keep
/// their order) and returns the future that completes the response.
pub(crate) async fn append(broker: &Broker, request: ProduceRequest, version: i16) -> Completion {
    let durability = Acks::from_request(request.acks);
    let mut topics: Vec<(kafka_protocol::messages::TopicName, Vec<(i32, Outcome)>)> = Vec::new();
    if request.transactional_id.is_some() {
        for topic in request.topic_data {
            let outcomes = topic
                .partition_data
                .iter()
                .map(|p| {
                    (
                        p.index,
                        Outcome::Failed(
                            ResponseError::TransactionalIdAuthorizationFailed,
                            "transactions are not supported yet".into(),
                        ),
                    )
                })
                .collect();
            topics.push((topic.name, outcomes));
        }
    } else {
        for topic in request.topic_data {
            let meta = broker.store.describe_topic(topic.name.0.as_str()).await;
            let mut outcomes = Vec::new();
            for partition_data in topic.partition_data {
                let index = partition_data.index;
                let outcome = match (&meta, partition_data.records) {
                    (Err(MetadataError::UnknownTopic { .. }), _) => Outcome::Failed(
                        ResponseError::UnknownTopicOrPartition,
                        format!("unknown topic {}", topic.name.0),
                    ),
                    (Err(error), _) => {
                        Outcome::Failed(ResponseError::KafkaStorageError, error.to_string())
                    }
                    (Ok(meta), _) if index < 0 || index >= meta.partition_count => Outcome::Failed(
                        ResponseError::UnknownTopicOrPartition,
                        format!("partition {index} does not exist"),
                    ),
                    (Ok(_), None) => {
                        Outcome::Failed(ResponseError::InvalidRecord, "no records".into())
                    }
                    (Ok(meta), Some(records)) => {
                        let tp = TopicPartition::new(meta.id, index);
                        match broker.logs.append(tp, &records, durability).await {
                            Ok(appended) => Outcome::Appended(appended),
                            Err(error) => {
                                let message = error.to_string();
                                Outcome::Failed(log_error(&error), message)
                            }
                        }
                    }
                };
                outcomes.push((index, outcome));
            }
            topics.push((topic.name, outcomes));
        }
    }
    Box::pin(async move {
        let mut response = ProduceResponse::default();
        for (name, outcomes) in topics {
            let mut topic = TopicProduceResponse::default();
            topic.name = name;
            for (index, outcome) in outcomes {
                let mut partition = PartitionProduceResponse::default();
                partition.index = index;
                partition.log_append_time_ms = -1;
                match outcome {
                    Outcome::Appended(appended) => match appended.durable.await {
                        Ok(base_offset) => partition.base_offset = base_offset,
                        Err(error) => {
                            partition.error_code = log_error(&error).code();
                            if version >= 8 {
                                partition.error_message =
                                    Some(StrBytes::from_string(error.to_string()));
                            }
                            partition.base_offset = -1;
                        }
                    },
                    Outcome::Failed(error, message) => {
                        partition.error_code = error.code();
                        if version >= 8 {
                            partition.error_message = Some(StrBytes::from_string(message));
                        }
                        partition.base_offset = -1;
                    }
                }
                topic.partition_responses.push(partition);
            }
            response.responses.push(topic);
        }
        response
    })
}
