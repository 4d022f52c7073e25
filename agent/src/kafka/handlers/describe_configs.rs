//! `DescribeConfigs` (v1–4): every known config of a topic (its value, and
//! whether it is the topic's override or the default) or of this agent as a
//! broker, filtered by `configuration_keys` (none or empty: all). Synonyms are
//! included when asked for; the config type (v3+) always, its documentation
//! (v3+) when asked for.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::config_resources::{Refusal, Resource, authorize, resource, topic_refusal};
use crate::Broker;
use crate::configs::{DescribedConfig, broker as broker_configs, topic};
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;

fn to_wire(
    described: DescribedConfig,
    include_synonyms: bool,
    include_documentation: bool,
    version: i16,
) -> DescribeConfigsResourceResult {
    let mut config = DescribeConfigsResourceResult::default();
    config.name = StrBytes::from_static_str(described.name);
    config.value = Some(StrBytes::from_string(described.value));
    config.read_only = described.read_only;
    config.config_source = described.source.code();
    config.is_sensitive = false;
    if include_synonyms {
        config.synonyms = described
            .synonyms
            .into_iter()
            .map(|synonym| {
                let mut wire = DescribeConfigsSynonym::default();
                wire.name = StrBytes::from_static_str(synonym.name);
                wire.value = Some(StrBytes::from_string(synonym.value));
                wire.source = synonym.source.code();
                wire
            })
            .collect();
    }
    if version >= 3 {
        config.config_type = described.config_type.code();
        if include_documentation {
            config.documentation = Some(StrBytes::from_static_str(described.documentation));
        }
    }
    config
}

async fn describe(
    broker: &Broker,
    resource_type: i8,
    name: &str,
    access: &Session<'_>,
) -> Result<Vec<DescribedConfig>, Refusal> {
    let resource = resource(broker, resource_type, name)?;
    authorize(access, resource, AclOperation::DescribeConfigs)?;
    match resource {
        Resource::Topic(topic_name) => {
            let meta = broker
                .store
                .describe_topic(topic_name)
                .await
                .map_err(|error| topic_refusal(topic_name, &error))?;
            Ok(topic::describe(
                &meta.configs,
                &broker.settings.static_log_configs,
            ))
        }
        Resource::Broker => Ok(broker_configs::describe(broker)),
    }
}

pub(crate) async fn handle(
    broker: &Broker,
    request: DescribeConfigsRequest,
    version: i16,
    access: &Session<'_>,
) -> DescribeConfigsResponse {
    let mut response = DescribeConfigsResponse::default();
    // Documentation exists from v3 on.
    let include_documentation = version >= 3 && request.include_documentation;
    for requested in request.resources {
        let mut result = DescribeConfigsResult::default();
        result.resource_type = requested.resource_type;
        result.resource_name = requested.resource_name.clone();
        match describe(
            broker,
            requested.resource_type,
            requested.resource_name.as_str(),
            access,
        )
        .await
        {
            Ok(configs) => {
                let wanted = requested
                    .configuration_keys
                    .as_ref()
                    .filter(|keys| !keys.is_empty());
                result.configs = configs
                    .into_iter()
                    .filter(|config| {
                        wanted.is_none_or(|keys| keys.iter().any(|key| key.as_str() == config.name))
                    })
                    .map(|config| {
                        to_wire(
                            config,
                            request.include_synonyms,
                            include_documentation,
                            version,
                        )
                    })
                    .collect();
            }
            Err((error, message)) => {
                result.error_code = error.code();
                result.error_message = Some(StrBytes::from_string(message));
            }
        }
        response.results.push(result);
    }
    response
}
