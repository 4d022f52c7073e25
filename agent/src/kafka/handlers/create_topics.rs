//! `CreateTopics`. Topic configs are validated by
//! [`configs::topic`](crate::configs::topic): an unknown name or a bad value
//! fails the topic with `INVALID_CONFIG`, as in Kafka. From v5 on, a created (or
//! validated) topic's whole config set is reported back.
//!
//! With an authorizer, as Kafka's: `CREATE` on the cluster, or on the topic,
//! else the topic is `TOPIC_AUTHORIZATION_FAILED`; its configs are reported
//! only with `DESCRIBE_CONFIGS` on it (else `topic_config_error_code` says
//! `TOPIC_AUTHORIZATION_FAILED`).

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::configs::topic;
use crate::security::authorizer::Session;
use crate::{Broker, topic_spec};
use fjord_metadata::{AclOperation, ResourceType};

/// The topic's configs as the v5+ response reports them.
fn reported_configs(
    overrides: &BTreeMap<String, String>,
    static_broker: &BTreeMap<&'static str, String>,
) -> Vec<CreatableTopicConfigs> {
    topic::describe(overrides, static_broker)
        .into_iter()
        .map(|described| {
            let mut config = CreatableTopicConfigs::default();
            config.name = StrBytes::from_static_str(described.name);
            config.value = Some(StrBytes::from_string(described.value));
            config.read_only = described.read_only;
            config.config_source = described.source.code();
            config.is_sensitive = false;
            config
        })
        .collect()
}

pub(crate) async fn handle(
    broker: &Broker,
    request: CreateTopicsRequest,
    version: i16,
    access: &Session<'_>,
) -> CreateTopicsResponse {
    let mut response = CreateTopicsResponse::default();
    let may_create_any = access.authorize_cluster(AclOperation::Create);
    for topic in request.topics {
        let mut result = CreatableTopicResult::default();
        result.name = topic.name.clone();
        // Replicas are the bucket's business; any requested factor is honoured by
        // object storage, so it is reported back as asked (-1 means default: 1).
        let replication_factor = if topic.replication_factor < 0 {
            1
        } else {
            topic.replication_factor
        };
        // Counts are reported from v5, the topic id from v7.
        let (reports_counts, reports_id) = (version >= 5, version >= 7);
        if reports_counts {
            result.replication_factor = replication_factor;
        }
        let partitions = if !topic.assignments.is_empty() {
            i32::try_from(topic.assignments.len()).unwrap_or(i32::MAX)
        } else if topic.num_partitions == -1 {
            broker.settings.default_partitions
        } else {
            topic.num_partitions
        };
        let fail = |result: &mut CreatableTopicResult, error: ResponseError, message: String| {
            result.error_code = error.code();
            result.error_message = Some(StrBytes::from_string(message));
            result.num_partitions = -1;
            result.replication_factor = -1;
        };
        if !may_create_any
            && let Err(denied) = access.topic(AclOperation::Create, topic.name.0.as_str())
        {
            let message = denied.to_string();
            fail(&mut result, ResponseError::from(denied), message);
            response.topics.push(result);
            continue;
        }
        // The configs are told only to who may describe them.
        let configs_denied = !access.authorize(
            AclOperation::DescribeConfigs,
            ResourceType::Topic,
            topic.name.0.as_str(),
        );
        let reported = |result: &mut CreatableTopicResult, configs: Vec<CreatableTopicConfigs>| {
            if configs_denied {
                result.topic_config_error_code = ResponseError::TopicAuthorizationFailed.code();
            } else {
                result.configs = Some(configs);
            }
        };
        if topic.replication_factor == 0 || topic.replication_factor < -1 {
            fail(
                &mut result,
                ResponseError::InvalidReplicationFactor,
                format!(
                    "replication factor must be -1 or at least 1, got {}",
                    topic.replication_factor
                ),
            );
            response.topics.push(result);
            continue;
        }
        let requested = topic.configs.iter().map(|config| {
            (
                config.name.as_str(),
                config.value.as_ref().map(|v| v.as_str()),
            )
        });
        let spec = match topic_spec::new_topic(topic.name.0.to_string(), partitions, requested) {
            Ok(spec) => spec,
            Err((error, message)) => {
                fail(&mut result, error, message);
                response.topics.push(result);
                continue;
            }
        };
        if request.validate_only {
            match broker.store.describe_topic(&spec.name).await {
                Ok(_) => fail(
                    &mut result,
                    ResponseError::TopicAlreadyExists,
                    format!("topic '{}' already exists", spec.name),
                ),
                Err(_) if reports_counts => {
                    result.num_partitions = partitions;
                    reported(
                        &mut result,
                        reported_configs(&spec.configs, &broker.settings.static_log_configs),
                    );
                }
                Err(_) => {}
            }
            response.topics.push(result);
            continue;
        }
        match broker.store.create_topic(spec).await {
            Ok(created) => {
                if reports_id {
                    result.topic_id = created.id.0;
                }
                if reports_counts {
                    result.num_partitions = created.partition_count;
                    reported(
                        &mut result,
                        reported_configs(&created.configs, &broker.settings.static_log_configs),
                    );
                }
            }
            Err(error) => fail(
                &mut result,
                topic_spec::creation_error(&error),
                error.to_string(),
            ),
        }
        response.topics.push(result);
    }
    response
}
