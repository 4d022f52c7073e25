//! `DeleteTopics`, by name (v1–v6) or by id (v6).
//!
//! With an authorizer, as Kafka's: each topic needs `DELETE`, else it is
//! `TOPIC_AUTHORIZATION_FAILED`; a topic named by id without `DESCRIBE` is
//! refused so without its name.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::kafka::errors::metadata_error;
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, MetadataError, TopicId};

pub(crate) async fn handle(
    broker: &Broker,
    request: DeleteTopicsRequest,
    version: i16,
    access: &Session<'_>,
) -> DeleteTopicsResponse {
    let mut targets: Vec<(Option<TopicName>, uuid::Uuid)> = request
        .topic_names
        .into_iter()
        .map(|name| (Some(name), uuid::Uuid::nil()))
        .collect();
    targets.extend(request.topics.into_iter().map(|t| (t.name, t.topic_id)));

    let mut response = DeleteTopicsResponse::default();
    for (name, topic_id) in targets {
        let mut result = DeletableTopicResult::default();
        result.name = name.clone();
        result.topic_id = topic_id;
        let resolved = match &name {
            Some(name) => Ok(name.0.to_string()),
            None => broker
                .store
                .topic_by_id(TopicId(topic_id))
                .await
                .map(|topic| topic.name),
        };
        if let Ok(resolved_name) = &resolved {
            let denied = access
                .topic(AclOperation::Describe, resolved_name)
                .and_then(|()| access.topic(AclOperation::Delete, resolved_name));
            if let Err(denied) = denied {
                if name.is_none() {
                    // Not told to who may not describe it.
                    result.name = None;
                }
                result.error_code = ResponseError::from(denied.clone()).code();
                if version >= 5 {
                    result.error_message = Some(StrBytes::from_string(denied.to_string()));
                }
                response.responses.push(result);
                continue;
            }
        }
        let deleted = match resolved {
            Ok(name) => broker.store.delete_topic(&name).await,
            Err(error) => Err(error),
        };
        match deleted {
            Ok(topic) => {
                broker.logs.topics().invalidate(&topic.name);
                if version >= 6 {
                    result.topic_id = topic.id.0;
                }
                result.name = Some(TopicName(StrBytes::from_string(topic.name)));
            }
            Err(error) => {
                let code = match &error {
                    MetadataError::UnknownTopic { .. } if name.is_none() => {
                        ResponseError::UnknownTopicId
                    }
                    other => metadata_error(other),
                };
                result.error_code = code.code();
                if version >= 5 {
                    result.error_message = Some(StrBytes::from_string(error.to_string()));
                }
            }
        }
        response.responses.push(result);
    }
    response
}
