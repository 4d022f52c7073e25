//! `DescribeGroups` (v0–5): state, protocol and members (with their metadata and
//! assignments once the group is stable). A group that does not exist is `Dead`.
//!
//! With an authorizer, each group needs `DESCRIBE` (else
//! `GROUP_AUTHORIZATION_FAILED`, as Kafka answers); its authorized operations
//! (v3+) are reported when asked for.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::kafka::errors::{authorization_code, group_error_code};
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, ResourceType};

pub(crate) async fn handle(
    broker: &Broker,
    request: DescribeGroupsRequest,
    version: i16,
    access: &Session<'_>,
) -> DescribeGroupsResponse {
    let mut response = DescribeGroupsResponse::default();
    for group_id in request.groups {
        let mut described = DescribedGroup::default();
        described.group_id = group_id.clone();
        let allowed = access.group(AclOperation::Describe, group_id.0.as_str());
        if allowed.is_err() {
            described.error_code = authorization_code(&allowed);
            response.groups.push(described);
            continue;
        }
        if version >= 3 && request.include_authorized_operations {
            described.authorized_operations =
                access.authorized_operations(ResourceType::Group, group_id.0.as_str());
        }
        match broker.groups.describe(group_id.0.as_str()).await {
            Ok(description) => {
                described.group_state = StrBytes::from_static_str(description.state);
                described.protocol_type = StrBytes::from_string(description.protocol_type);
                described.protocol_data = StrBytes::from_string(description.protocol_name);
                described.members = description
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut member = DescribedGroupMember::default();
                        member.member_id = StrBytes::from_string(m.member_id);
                        if version >= 4 {
                            member.group_instance_id =
                                m.group_instance_id.map(StrBytes::from_string);
                        }
                        member.client_id = StrBytes::from_string(m.client_id);
                        member.client_host = StrBytes::from_string(m.client_host);
                        member.member_metadata = m.metadata;
                        member.member_assignment = m.assignment;
                        member
                    })
                    .collect();
            }
            Err(error) => described.error_code = group_error_code(Some(&error)),
        }
        response.groups.push(described);
    }
    response
}
