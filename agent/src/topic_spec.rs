//! A topic to create, checked the one way Kafka's `CreateTopics` checks it,
//! for every way of creating one (the Kafka handler and the gateway): the
//! partition count in range, the configs valid ([`crate::configs::topic`]),
//! and the metadata store's refusal as Kafka's error.

use fjord_metadata::{MAX_PARTITIONS_PER_TOPIC, MetadataError, NewTopic};
use kafka_protocol::error::ResponseError;

use crate::configs::topic;
use crate::kafka::errors::{config_error, metadata_error};

/// A topic named `name` with `partitions` and the `configs` asked for; the
/// Kafka error and a message when the request is refused.
pub fn new_topic<'a>(
    name: String,
    partitions: i32,
    configs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<NewTopic, (ResponseError, String)> {
    if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&partitions) {
        return Err((
            ResponseError::InvalidPartitions,
            format!(
                "number of partitions must be in 1..={MAX_PARTITIONS_PER_TOPIC}, got {partitions}"
            ),
        ));
    }
    let configs = topic::from_request(configs).map_err(|e| (config_error(&e), e.to_string()))?;
    Ok(NewTopic {
        name,
        partition_count: partitions,
        configs,
    })
}

/// The Kafka error of a creation the metadata store refused: a name it finds
/// invalid is `INVALID_TOPIC_EXCEPTION`, as in Kafka.
pub fn creation_error(error: &MetadataError) -> ResponseError {
    match error {
        MetadataError::Invalid { .. } => ResponseError::InvalidTopicException,
        other => metadata_error(other),
    }
}
