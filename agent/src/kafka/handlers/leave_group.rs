//! `LeaveGroup`: one member (v0–2) or a batch of members (v3–5, which may name
//! static members by instance id).
//!
//! With an authorizer, the group needs `READ` (else
//! `GROUP_AUTHORIZATION_FAILED`, as Kafka answers).

use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

use crate::Broker;
use crate::groups::types::LeavingMember;
use crate::kafka::errors::{authorization_code, group_error_code};
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;

pub(crate) async fn handle(
    broker: &Broker,
    request: LeaveGroupRequest,
    version: i16,
    access: &Session<'_>,
) -> LeaveGroupResponse {
    let allowed = access.group(AclOperation::Read, request.group_id.0.as_str());
    if allowed.is_err() {
        let mut response = LeaveGroupResponse::default();
        response.error_code = authorization_code(&allowed);
        return response;
    }
    let members: Vec<LeavingMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|id| id.to_string()),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.to_string(),
            group_instance_id: None,
        }]
    };
    let result = broker
        .groups
        .leave(request.group_id.0.as_str(), members)
        .await;
    let mut response = LeaveGroupResponse::default();
    match result {
        Err(error) => response.error_code = group_error_code(Some(&error)),
        Ok(results) if version < 3 => {
            response.error_code = group_error_code(results.first().and_then(|r| r.as_ref().err()));
        }
        Ok(results) => {
            response.members = request
                .members
                .into_iter()
                .zip(results)
                .map(|(member, result)| {
                    let mut answer = MemberResponse::default();
                    answer.member_id = member.member_id;
                    answer.group_instance_id = member.group_instance_id;
                    answer.error_code = group_error_code(result.err().as_ref());
                    answer
                })
                .collect();
        }
    }
    response
}
