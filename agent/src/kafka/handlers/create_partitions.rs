//! `CreatePartitions` (v0–3): raises topics' partition counts, with the checks
//! and error codes of Kafka's controller:
//!
//! | case | error |
//! |---|---|
//! | a topic named twice in the request | `INVALID_REQUEST` (once per name) |
//! | no `ALTER` on the topic (with an authorizer) | `TOPIC_AUTHORIZATION_FAILED` |
//! | unknown topic | `UNKNOWN_TOPIC_OR_PARTITION` |
//! | count not larger than the current one, or above the per-topic limit | `INVALID_PARTITIONS` |
//! | assignments that cannot apply: not one per new partition, an empty replica list, a broker twice in one list, or a broker not registered | `INVALID_REPLICA_ASSIGNMENT` |
//!
//! Valid assignments are accepted and otherwise ignored: a partition's data lives
//! in object storage and its leader is whichever agent takes it, so there are no
//! replicas to place. `validate_only` runs every check and writes nothing.

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use kafka_protocol::protocol::StrBytes;

use super::registry::registered_brokers;
use crate::Broker;
use crate::kafka::errors::metadata_error;
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, MAX_PARTITIONS_PER_TOPIC, MetadataError};

type Refusal = (ResponseError, String);

/// Checks a manual assignment against the partitions to add and the brokers
/// that exist.
fn check_assignments(
    topic: &CreatePartitionsTopic,
    added: i32,
    brokers: &BTreeSet<i32>,
) -> Result<(), Refusal> {
    let Some(assignments) = &topic.assignments else {
        return Ok(());
    };
    let invalid = |message: String| (ResponseError::InvalidReplicaAssignment, message);
    if i32::try_from(assignments.len()).ok() != Some(added) {
        return Err(invalid(format!(
            "attempted to add {added} additional partitions, but {} assignments were specified",
            assignments.len()
        )));
    }
    for assignment in assignments {
        if assignment.broker_ids.is_empty() {
            return Err(invalid(
                "the manual partition assignment includes an empty replica list".into(),
            ));
        }
        let mut seen = BTreeSet::new();
        for broker_id in &assignment.broker_ids {
            if !seen.insert(broker_id.0) {
                return Err(invalid(format!(
                    "the manual partition assignment includes broker {} more than once",
                    broker_id.0
                )));
            }
            if !brokers.contains(&broker_id.0) {
                return Err(invalid(format!(
                    "the manual partition assignment includes broker {}, but no such broker is registered",
                    broker_id.0
                )));
            }
        }
    }
    Ok(())
}

/// Validates one topic's request and, unless `validate_only`, applies it.
async fn create(
    broker: &Broker,
    topic: &CreatePartitionsTopic,
    validate_only: bool,
    brokers: &BTreeSet<i32>,
) -> Result<(), Refusal> {
    let name = topic.name.0.as_str();
    let meta = match broker.store.describe_topic(name).await {
        Ok(meta) => meta,
        Err(MetadataError::UnknownTopic { .. }) => {
            return Err((
                ResponseError::UnknownTopicOrPartition,
                format!("topic {name} does not exist"),
            ));
        }
        Err(error) => return Err((metadata_error(&error), error.to_string())),
    };
    let current = meta.partition_count;
    if topic.count < current {
        return Err((
            ResponseError::InvalidPartitions,
            format!(
                "topic currently has {current} partitions, which is higher than the requested {}",
                topic.count
            ),
        ));
    }
    if topic.count == current {
        return Err((
            ResponseError::InvalidPartitions,
            format!("topic already has {current} partitions"),
        ));
    }
    if topic.count > MAX_PARTITIONS_PER_TOPIC {
        return Err((
            ResponseError::InvalidPartitions,
            format!(
                "{} partitions exceed the limit of {MAX_PARTITIONS_PER_TOPIC} per topic",
                topic.count
            ),
        ));
    }
    check_assignments(topic, topic.count - current, brokers)?;
    if validate_only {
        return Ok(());
    }
    match broker.store.create_partitions(name, topic.count).await {
        Ok(_) => {
            broker.logs.topics().invalidate(name);
            Ok(())
        }
        // The count moved under us (another request grew the topic).
        Err(error @ MetadataError::Invalid { .. }) => {
            Err((ResponseError::InvalidPartitions, error.to_string()))
        }
        Err(error) => Err((metadata_error(&error), error.to_string())),
    }
}

pub(crate) async fn handle(
    broker: &Broker,
    request: CreatePartitionsRequest,
    _version: i16,
    access: &Session<'_>,
) -> CreatePartitionsResponse {
    let mut response = CreatePartitionsResponse::default();
    let mut occurrences: BTreeMap<&str, usize> = BTreeMap::new();
    for topic in &request.topics {
        *occurrences.entry(topic.name.0.as_str()).or_default() += 1;
    }
    let needs_brokers = request.topics.iter().any(|t| t.assignments.is_some());
    let brokers: Result<BTreeSet<i32>, MetadataError> = if needs_brokers {
        registered_brokers(broker)
            .await
            .map(|list| list.into_iter().map(|b| b.node_id).collect())
    } else {
        Ok(BTreeSet::new())
    };
    let mut duplicates_reported = BTreeSet::new();
    for topic in &request.topics {
        let name = topic.name.0.as_str();
        let outcome = if occurrences.get(name).copied().unwrap_or(0) > 1 {
            if !duplicates_reported.insert(name) {
                continue;
            }
            Err((ResponseError::InvalidRequest, "duplicate topic name".into()))
        } else if let Err(denied) = access.topic(AclOperation::Alter, name) {
            let message = denied.to_string();
            Err((ResponseError::from(denied), message))
        } else {
            match &brokers {
                Ok(brokers) => create(broker, topic, request.validate_only, brokers).await,
                Err(error) => Err((metadata_error(error), error.to_string())),
            }
        };
        let mut result = CreatePartitionsTopicResult::default();
        result.name = topic.name.clone();
        if let Err((error, message)) = outcome {
            result.error_code = error.code();
            result.error_message = Some(StrBytes::from_string(message));
        }
        response.results.push(result);
    }
    response
}
