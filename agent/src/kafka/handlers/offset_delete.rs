//! `OffsetDelete` (v0): deletes committed offsets of partitions the group does
//! not consume (any, for an empty group).
//!
//! With an authorizer, as Kafka's: `DELETE` on the group (else
//! `GROUP_AUTHORIZATION_FAILED`) and `READ` on each topic (else its
//! partitions are `TOPIC_AUTHORIZATION_FAILED`, and their offsets stay).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::Broker;
use crate::kafka::errors::{authorization_code, group_error_code};
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;

pub(crate) async fn handle(
    broker: &Broker,
    request: OffsetDeleteRequest,
    access: &Session<'_>,
) -> OffsetDeleteResponse {
    let mut response = OffsetDeleteResponse::default();
    let allowed = access.group(AclOperation::Delete, request.group_id.0.as_str());
    if allowed.is_err() {
        response.error_code = authorization_code(&allowed);
        return response;
    }
    let readable: Vec<Result<(), crate::security::authorizer::Denied>> = request
        .topics
        .iter()
        .map(|topic| access.topic(AclOperation::Read, topic.name.0.as_str()))
        .collect();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .zip(&readable)
        .filter(|(_, readable)| readable.is_ok())
        .flat_map(|(topic, _)| {
            topic
                .partitions
                .iter()
                .map(|p| (topic.name.0.to_string(), p.partition_index))
        })
        .collect();
    let errors = match broker
        .groups
        .delete_offsets(request.group_id.0.as_str(), partitions)
        .await
    {
        Ok(errors) => errors,
        Err(error) => {
            response.error_code = group_error_code(Some(&error));
            return response;
        }
    };
    let mut errors = errors.into_iter();
    for (topic, readable) in request.topics.into_iter().zip(readable) {
        let mut topic_answer = OffsetDeleteResponseTopic::default();
        topic_answer.name = topic.name;
        for partition in topic.partitions {
            let mut answer = OffsetDeleteResponsePartition::default();
            answer.partition_index = partition.partition_index;
            answer.error_code = if readable.is_err() {
                authorization_code(&readable)
            } else {
                group_error_code(errors.next().flatten().as_ref())
            };
            topic_answer.partitions.push(answer);
        }
        response.topics.push(topic_answer);
    }
    response
}
