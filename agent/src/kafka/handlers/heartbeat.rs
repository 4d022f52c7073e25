//! `Heartbeat` (v0–4): keeps a member's session alive and tells it when to
//! rejoin (`REBALANCE_IN_PROGRESS`).
//!
//! With an authorizer, the group needs `READ` (else
//! `GROUP_AUTHORIZATION_FAILED`, as Kafka answers).

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::Broker;
use crate::groups::types;
use crate::kafka::errors::{authorization_code, group_error_code};
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;

pub(crate) async fn handle(
    broker: &Broker,
    request: HeartbeatRequest,
    version: i16,
    access: &Session<'_>,
) -> HeartbeatResponse {
    let allowed = access.group(AclOperation::Read, request.group_id.0.as_str());
    if allowed.is_err() {
        let mut response = HeartbeatResponse::default();
        response.error_code = authorization_code(&allowed);
        return response;
    }
    let heartbeat = types::HeartbeatRequest {
        group_id: request.group_id.0.to_string(),
        generation: request.generation_id,
        member_id: request.member_id.to_string(),
        group_instance_id: if version >= 3 {
            request.group_instance_id.map(|id| id.to_string())
        } else {
            None
        },
    };
    let result = broker.groups.heartbeat(heartbeat).await;
    let mut response = HeartbeatResponse::default();
    response.error_code = group_error_code(result.err().as_ref());
    response
}
