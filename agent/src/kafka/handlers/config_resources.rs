//! What `DescribeConfigs`, `AlterConfigs` and `IncrementalAlterConfigs` share:
//! which resources they address and how an alteration reaches a topic.
//!
//! Resources are topics (type 2) and brokers (type 4, named by node id, or `""`
//! for the cluster-wide defaults). Any other type is `INVALID_REQUEST`. Broker
//! configs are read-only (fixed when the agent starts): altering them is
//! `INVALID_REQUEST`, as Kafka answers a change to a config it cannot update.
//!
//! With an authorizer, as Kafka's: describing needs `DESCRIBE_CONFIGS` and
//! altering `ALTER_CONFIGS`, on the topic (else `TOPIC_AUTHORIZATION_FAILED`)
//! or, for a broker, on the cluster (else `CLUSTER_AUTHORIZATION_FAILED`).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use crate::Broker;
use crate::configs::topic::ConfigError;
use crate::kafka::errors::{config_error, metadata_error};
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, MetadataError};

/// Kafka's `ConfigResource.Type` of a topic.
const TOPIC: i8 = 2;
/// Kafka's `ConfigResource.Type` of a broker.
const BROKER: i8 = 4;

/// An error code with its message.
pub(super) type Refusal = (ResponseError, String);

/// A resource whose configs a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resource<'a> {
    Topic(&'a str),
    Broker,
}

/// The resource of type `resource_type` named `name`; a broker must be this
/// agent or the cluster default.
pub(super) fn resource<'a>(
    broker: &Broker,
    resource_type: i8,
    name: &'a str,
) -> Result<Resource<'a>, Refusal> {
    match resource_type {
        TOPIC => Ok(Resource::Topic(name)),
        BROKER if name.is_empty() || name == broker.node_id.to_string() => Ok(Resource::Broker),
        BROKER => Err((
            ResponseError::InvalidRequest,
            format!(
                "unexpected broker id, expected {} or empty string, but received {name}",
                broker.node_id
            ),
        )),
        other => Err((
            ResponseError::InvalidRequest,
            format!("resource type {other} is not supported; topics (2) and brokers (4) are"),
        )),
    }
}

/// Refuses `operation` on `resource` unless the session may do it: on the
/// topic, or on the cluster for a broker.
pub(super) fn authorize(
    access: &Session<'_>,
    resource: Resource<'_>,
    operation: AclOperation,
) -> Result<(), Refusal> {
    let checked = match resource {
        Resource::Topic(name) => access.topic(operation, name),
        Resource::Broker => access.cluster(operation),
    };
    checked.map_err(|denied| {
        let message = denied.to_string();
        (ResponseError::from(denied), message)
    })
}

/// The refusal for altering broker configs.
pub(super) fn read_only_broker() -> Refusal {
    (
        ResponseError::InvalidRequest,
        "broker configs are read-only: an agent's settings are fixed when it starts".into(),
    )
}

/// Whether each `(type, name)` appears more than once in a request.
pub(super) fn duplicated<'a>(resources: impl Iterator<Item = (i8, &'a str)>) -> Vec<bool> {
    let keys: Vec<(i8, &str)> = resources.collect();
    keys.iter()
        .map(|key| keys.iter().filter(|other| *other == key).count() > 1)
        .collect()
}

/// The refusal for a resource named twice in one request.
pub(super) fn duplicate_resource() -> Refusal {
    (ResponseError::InvalidRequest, "duplicate resource".into())
}

/// The refusal for a topic that does not exist, or another metadata failure.
pub(super) fn topic_refusal(name: &str, error: &MetadataError) -> Refusal {
    match error {
        MetadataError::UnknownTopic { .. } => (
            ResponseError::UnknownTopicOrPartition,
            format!("topic {name} does not exist"),
        ),
        other => (metadata_error(other), other.to_string()),
    }
}

/// Alters topic `name`'s override set to what `alter` makes of the current one
/// (which validates it), and stores the difference unless `validate_only`.
///
/// Reading the current set and storing the difference are two transactions: two
/// requests altering the same config at once end with the later one's value.
pub(super) async fn alter_topic(
    broker: &Broker,
    name: &str,
    validate_only: bool,
    alter: impl FnOnce(&BTreeMap<String, String>) -> Result<BTreeMap<String, String>, ConfigError>,
) -> Result<(), Refusal> {
    let topic = broker
        .store
        .describe_topic(name)
        .await
        .map_err(|error| topic_refusal(name, &error))?;
    let next = alter(&topic.configs).map_err(|error| (config_error(&error), error.to_string()))?;
    if validate_only {
        return Ok(());
    }
    let mut changes: Vec<(String, Option<String>)> = topic
        .configs
        .keys()
        .filter(|key| !next.contains_key(*key))
        .map(|key| (key.clone(), None))
        .collect();
    changes.extend(
        next.iter()
            .filter(|(key, value)| topic.configs.get(*key) != Some(*value))
            .map(|(key, value)| (key.clone(), Some(value.clone()))),
    );
    if changes.is_empty() {
        return Ok(());
    }
    let updated = broker
        .store
        .update_topic_configs(name, &changes)
        .await
        .map(|_| ())
        .map_err(|error| topic_refusal(name, &error));
    broker.logs.topics().invalidate(name);
    updated
}
