//! `DescribeGroups` (v0–5): state, protocol and members (with their metadata and
//! assignments once the group is stable). A group that does not exist is `Dead`.

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::kafka::errors::group_error_code;

pub(crate) async fn handle(
    broker: &Broker,
    request: DescribeGroupsRequest,
    version: i16,
) -> DescribeGroupsResponse {
    let mut response = DescribeGroupsResponse::default();
    for group_id in request.groups {
        let mut described = DescribedGroup::default();
        described.group_id = group_id.clone();
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
