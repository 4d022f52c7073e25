//! `Produce`: batches are appended (offsets assigned) in request order while the
//! request is read; the response waits until every partition's batches are in the
//! WAL (`acks=1`) or committed (`acks=-1`), or is not sent at all (`acks=0`).
//! A retried batch of an idempotent producer is answered with its original offset.
//!
//! As in Kafka:
//! - `acks` other than -1, 0 and 1 is refused with `INVALID_REQUIRED_ACKS` for
//!   every partition, and nothing is appended;
//! - a partition whose batches are not durable within the request's
//!   `timeout_ms` (counted from when they were appended) is answered
//!   `REQUEST_TIMED_OUT`. They are still in the write path and may commit
//!   later (waiting stops, not the write), which is what Kafka's producers
//!   expect of that error: an idempotent producer's retry is then recognised
//!   as a duplicate.
//!
//! Authorization (with an authorizer, as Kafka's): `WRITE` on each topic, else
//! its partitions are `TOPIC_AUTHORIZATION_FAILED` (idempotent producers need
//! nothing more, as since Kafka 3.0); a request with transactional records
//! also needs `WRITE` on its transactional id, else every partition is
//! `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` and nothing is appended.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::TopicProduceData;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::configs::topic::cleanup_policy_compacts;
use crate::kafka::errors::{authorization_error, log_error};
use crate::log::produce::windows::ClientWindow;
use crate::log::{Acks, Appended};
use crate::maintenance::log_compaction::batch::split_batches;
use crate::records;
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, MetadataError, TopicPartition};

/// The rest of a produce request's work: awaiting durability and building the
/// answer (which, for `acks=0`, nobody is sent).
pub(crate) type Completion = Pin<Box<dyn Future<Output = ProduceResponse> + Send>>;

enum Outcome {
    Appended(Appended),
    Failed(ResponseError, String),
}

/// Appends every partition's batches now (so requests on one connection keep
/// their order) and returns the future that completes the response.
pub(crate) async fn append(
    broker: &Broker,
    request: ProduceRequest,
    version: i16,
    window: Option<&Arc<ClientWindow>>,
    access: &Session<'_>,
) -> Completion {
    record_target(&request);
    // Checked only with an authorizer: a walk over every batch's header.
    let transactional = access.is_enforced()
        && (request.transactional_id.is_some()
            || request.topic_data.iter().any(|topic| {
                topic
                    .partition_data
                    .iter()
                    .any(|p| p.records.as_deref().is_some_and(records::has_transactional))
            }));
    let transactional_id_denied = transactional
        .then(|| match &request.transactional_id {
            Some(id) => access
                .transactional_id(AclOperation::Write, id.0.as_str())
                .err()
                .map(|denied| (authorization_error(&denied), denied.to_string())),
            None => Some((
                ResponseError::TransactionalIdAuthorizationFailed,
                "transactional records without a transactional id".to_owned(),
            )),
        })
        .flatten();
    let idempotent = request.topic_data.iter().all(|topic| {
        topic.partition_data.iter().all(|partition| {
            partition
                .records
                .as_deref()
                .and_then(records::first_producer_id)
                .is_some_and(|id| id >= 0)
        })
    });
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let acks = Acks::from_request(request.acks);
    let topics = match (&request.transactional_id, acks, transactional_id_denied) {
        (_, _, Some((error, message))) => refuse_all(request.topic_data, error, &message),
        // A transactional produce must wait for all, as Kafka requires.
        (Some(_), Some(Acks::All), None) => {
            append_all(broker, request.topic_data, Acks::All, access).await
        }
        (Some(_), _, None) => refuse_all(
            request.topic_data,
            ResponseError::InvalidRequiredAcks,
            "a transactional produce needs acks=-1 (all)",
        ),
        (None, None, None) => refuse_all(
            request.topic_data,
            ResponseError::InvalidRequiredAcks,
            "acks must be -1 (all), 0 or 1",
        ),
        (None, Some(durability), None) => {
            append_all(broker, request.topic_data, durability, access).await
        }
    };
    // The timeout runs from here: every partition was appended (or refused).
    let appended_at = tokio::time::Instant::now();
    let deadline = appended_at.checked_add(timeout).unwrap_or(appended_at);
    // Counted in the connection's window while it waits for a commit (its
    // batches are queued by now), so the flusher knows when the client
    // cannot send more.
    let waits_for_commit = request.acks == -1
        && topics.iter().any(|(_, outcomes)| {
            outcomes
                .iter()
                .any(|(_, outcome)| matches!(outcome, Outcome::Appended(_)))
        });
    let slot = window
        .filter(|_| waits_for_commit)
        .map(|window| window.wait(idempotent));
    Box::pin(async move {
        let mut response = ProduceResponse::default();
        for (name, outcomes) in topics {
            let mut topic = TopicProduceResponse::default();
            topic.name = name;
            for (index, outcome) in outcomes {
                let settled = match outcome {
                    // Dropping `durable` at the deadline stops the waiting
                    // only: the batches stay queued for their commit.
                    Outcome::Appended(appended) => {
                        match tokio::time::timeout_at(deadline, appended.durable).await {
                            Ok(Ok(base_offset)) => Ok(base_offset),
                            Ok(Err(error)) => Err((log_error(&error), error.to_string())),
                            Err(_elapsed) => Err((
                                ResponseError::RequestTimedOut,
                                format!("not durable within timeout_ms ({timeout:?})"),
                            )),
                        }
                    }
                    Outcome::Failed(error, message) => Err((error, message)),
                };
                let mut partition = PartitionProduceResponse::default();
                partition.index = index;
                partition.log_append_time_ms = -1;
                match settled {
                    Ok(base_offset) => partition.base_offset = base_offset,
                    Err((error, message)) => {
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
        drop(slot);
        response
    })
}

/// Appends the batches of every partition of `topic_data`, in order.
async fn append_all(
    broker: &Broker,
    topic_data: Vec<TopicProduceData>,
    durability: Acks,
    access: &Session<'_>,
) -> Vec<(TopicName, Vec<(i32, Outcome)>)> {
    let mut topics = Vec::with_capacity(topic_data.len());
    for topic in topic_data {
        if let Err(denied) = access.topic(AclOperation::Write, topic.name.0.as_str()) {
            let outcomes = topic
                .partition_data
                .iter()
                .map(|p| {
                    let error = authorization_error(&denied);
                    (p.index, Outcome::Failed(error, denied.to_string()))
                })
                .collect();
            topics.push((topic.name, outcomes));
            continue;
        }
        let cache = broker.logs.topics();
        let mut meta = cache.describe(topic.name.0.as_str()).await;
        // Partitions past a cached count may have been added since.
        if let Ok(cached) = &meta
            && topic
                .partition_data
                .iter()
                .any(|p| p.index >= cached.partition_count)
        {
            meta = cache.describe_fresh(topic.name.0.as_str()).await;
        }
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
                (Ok(_), None) => Outcome::Failed(ResponseError::InvalidRecord, "no records".into()),
                (Ok(meta), Some(records))
                    if cleanup_policy_compacts(&meta.configs) && has_keyless_record(&records) =>
                {
                    Outcome::Failed(
                        ResponseError::InvalidRecord,
                        format!(
                            "topic {} is compacted (cleanup.policy=compact): every record needs a key",
                            topic.name.0
                        ),
                    )
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
    topics
}

/// Whether a record of `records` has a null key, which a compacted topic
/// refuses (`INVALID_RECORD`, as Kafka's validator does). Batches that do not
/// parse are left to the write path's validation, which refuses them.
fn has_keyless_record(records: &bytes::Bytes) -> bool {
    let Ok(batches) = split_batches(records) else {
        return false;
    };
    batches.iter().filter(|b| !b.is_control()).any(|batch| {
        batch
            .decompressed()
            .ok()
            .and_then(|bytes| {
                batch
                    .records(&bytes)
                    .ok()
                    .map(|records| records.iter().any(|r| r.key.is_none()))
            })
            .unwrap_or(false)
    })
}

/// Every partition of `topic_data` refused with `error`.
fn refuse_all(
    topic_data: Vec<TopicProduceData>,
    error: ResponseError,
    message: &str,
) -> Vec<(TopicName, Vec<(i32, Outcome)>)> {
    topic_data
        .into_iter()
        .map(|topic| {
            let outcomes = topic
                .partition_data
                .iter()
                .map(|p| (p.index, Outcome::Failed(error, message.to_owned())))
                .collect();
            (topic.name, outcomes)
        })
        .collect()
}

/// Names the topic and partition on the request's span when it has only one
/// (librdkafka sends one partition per request).
fn record_target(request: &ProduceRequest) {
    let [topic] = request.topic_data.as_slice() else {
        return;
    };
    let span = tracing::Span::current();
    span.record("topic", topic.name.0.as_str());
    if let [partition] = topic.partition_data.as_slice() {
        span.record("partition", partition.index);
    }
}
