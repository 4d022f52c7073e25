//! `SyncGroup` (v0–5): the leader sends the assignment; every member waits for
//! its part.
//!
//! With an authorizer, the group needs `READ` (else
//! `GROUP_AUTHORIZATION_FAILED`, as Kafka answers).

use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::groups::types::SyncRequest;
use crate::kafka::errors::{authorization_code, group_error_code};
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;

pub(crate) async fn handle(
    broker: &Broker,
    request: SyncGroupRequest,
    version: i16,
    access: &Session<'_>,
) -> SyncGroupResponse {
    let allowed = access.group(AclOperation::Read, request.group_id.0.as_str());
    if allowed.is_err() {
        let mut response = SyncGroupResponse::default();
        response.error_code = authorization_code(&allowed);
        return response;
    }
    let sync = SyncRequest {
        group_id: request.group_id.0.to_string(),
        generation: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: if version >= 3 {
            request.group_instance_id.map(|id| id.to_string())
        } else {
            None
        },
        protocol_type: (version >= 5)
            .then(|| request.protocol_type.map(|t| t.to_string()))
            .flatten(),
        protocol_name: (version >= 5)
            .then(|| request.protocol_name.map(|n| n.to_string()))
            .flatten(),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.to_string(), a.assignment))
            .collect(),
    };
    let answer = broker.groups.sync(sync).await;
    let mut response = SyncGroupResponse::default();
    response.error_code = group_error_code(answer.error.as_ref());
    if version >= 5 {
        response.protocol_type = answer.protocol_type.map(StrBytes::from_string);
        response.protocol_name = answer.protocol_name.map(StrBytes::from_string);
    }
    response.assignment = answer.assignment;
    response
}
