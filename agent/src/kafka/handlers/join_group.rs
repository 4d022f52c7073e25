//! `JoinGroup` (v0–9): waits until the group's join phase completes.
//!
//! With an authorizer, the group needs `READ` (else
//! `GROUP_AUTHORIZATION_FAILED`, as Kafka answers).

use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupRequest, JoinGroupResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::Broker;
use crate::groups::types::JoinRequest;
use crate::kafka::errors::{authorization_error, group_error_code};
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;

pub(crate) async fn handle(
    broker: &Broker,
    context: &RequestContext,
    request: JoinGroupRequest,
    version: i16,
    access: &Session<'_>,
) -> JoinGroupResponse {
    if let Err(denied) = access.group(AclOperation::Read, request.group_id.0.as_str()) {
        let mut response = JoinGroupResponse::default();
        response.error_code = authorization_error(&denied).code();
        response.generation_id = -1;
        // Not nullable before v7.
        response.protocol_name = (version < 7).then(StrBytes::default);
        return response;
    }
    let join = JoinRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        group_instance_id: if version >= 5 {
            request.group_instance_id.map(|id| id.to_string())
        } else {
            None
        },
        client_id: context.client_id.clone(),
        client_host: context.client_host.clone(),
        session_timeout_ms: request.session_timeout_ms,
        // v0 has no rebalance timeout: the session timeout bounds the rebalance.
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
    };
    let answer = broker.groups.join(join).await;
    let mut response = JoinGroupResponse::default();
    response.error_code = group_error_code(answer.error.as_ref());
    response.generation_id = answer.generation;
    if version >= 7 {
        response.protocol_type = answer.protocol_type.map(StrBytes::from_string);
        response.protocol_name = answer.protocol_name.map(StrBytes::from_string);
    } else {
        // Not nullable before v7.
        response.protocol_name = Some(StrBytes::from_string(
            answer.protocol_name.unwrap_or_default(),
        ));
    }
    response.leader = StrBytes::from_string(answer.leader);
    if version >= 9 {
        response.skip_assignment = answer.skip_assignment;
    }
    response.member_id = StrBytes::from_string(answer.member_id);
    response.members = answer
        .members
        .into_iter()
        .map(|member| {
            let mut joined = JoinGroupResponseMember::default();
            joined.member_id = StrBytes::from_string(member.member_id);
            if version >= 5 {
                joined.group_instance_id = member.group_instance_id.map(StrBytes::from_string);
            }
            joined.metadata = member.metadata;
            joined
        })
        .collect();
    response
}
