//! `AlterConfigs` (v0–2): replaces a topic's whole override set with the one in
//! the request (configs left out go back to their defaults). Unknown names and
//! bad values are `INVALID_CONFIG`; broker resources are read-only.

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};
use kafka_protocol::protocol::StrBytes;

use super::config_resources::{
    Refusal, Resource, alter_topic, authorize, duplicate_resource, duplicated, read_only_broker,
    resource,
};
use crate::Broker;
use crate::configs::topic;
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;
use kafka_protocol::messages::alter_configs_request::AlterConfigsResource;

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
            let wanted = requested.configs.iter().map(|config| {
                (
                    config.name.as_str(),
                    config.value.as_ref().map(|v| v.as_str()),
                )
            });
            alter_topic(broker, name, validate_only, |_current| {
                topic::from_request(wanted)
            })
            .await
        }
    }
}

pub(crate) async fn handle(
    broker: &Broker,
    request: AlterConfigsRequest,
    _version: i16,
    access: &Session<'_>,
) -> AlterConfigsResponse {
    let mut response = AlterConfigsResponse::default();
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
