//! `IncrementalAlterConfigs` (v0–1): `SET`, `DELETE`, and `APPEND`/`SUBTRACT` on
//! list configs, applied to a topic's current overrides by
//! [`configs::topic::apply_incremental`](crate::configs::topic::apply_incremental).
//! Unknown names and bad values are `INVALID_CONFIG`; a missing value, an unknown
//! operation or a config named twice is `INVALID_REQUEST`; broker resources are
//! read-only.

use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::config_resources::{
    Refusal, Resource, alter_topic, authorize, duplicate_resource, duplicated, read_only_broker,
    resource,
};
use crate::Broker;
use crate::configs::topic::{self, AlterOp};
use crate::kafka::errors::config_error;
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;

async fn alter(
    broker: &Broker,
    requested: &AlterConfigsResource,
    validate_only: bool,
    access: &Session<'_>,
) -> Result<(), Refusal> {
    let resource = resource(
        broker,
        requested.resource_type,
        requested.resource_name.as_str(),
    )?;
    authorize(access, resource, AclOperation::AlterConfigs)?;
    match resource {
        Resource::Broker => Err(read_only_broker()),
        Resource::Topic(name) => {
            let ops = requested
                .configs
                .iter()
                .map(|config| {
                    let op = AlterOp::from_wire(
                        config.name.as_str(),
                        config.config_operation,
                        config.value.as_ref().map(|v| v.as_str()),
                    )?;
                    Ok((config.name.to_string(), op))
                })
                .collect::<Result<Vec<_>, topic::ConfigError>>()
                .map_err(|error| (config_error(&error), error.to_string()))?;
            alter_topic(broker, name, validate_only, |current| {
                topic::apply_incremental(current, ops)
            })
            .await
        }
    }
}

pub(crate) async fn handle(
    broker: &Broker,
    request: IncrementalAlterConfigsRequest,
    _version: i16,
    access: &Session<'_>,
) -> IncrementalAlterConfigsResponse {
    let mut response = IncrementalAlterConfigsResponse::default();
    let duplicates = duplicated(
        request
            .resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let mut reported = Vec::new();
    for (requested, duplicate) in request.resources.iter().zip(duplicates) {
        let key = (requested.resource_type, requested.resource_name.as_str());
        let outcome = if duplicate {
            if reported.contains(&key) {
                continue;
            }
            reported.push(key);
            Err(duplicate_resource())
        } else {
            alter(broker, requested, request.validate_only, access).await
        };
        let mut result = AlterConfigsResourceResponse::default();
        result.resource_type = requested.resource_type;
        result.resource_name = requested.resource_name.clone();
        if let Err((error, message)) = outcome {
            result.error_code = error.code();
            result.error_message = Some(StrBytes::from_string(message));
        }
        response.responses.push(result);
    }
    response
}
