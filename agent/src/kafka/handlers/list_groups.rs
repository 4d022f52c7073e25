//! `ListGroups` (v0–5, with the v4 state filter and the v5 type filter).
//!
//! With an authorizer, as Kafka's: `DESCRIBE` on the cluster lists every
//! group; otherwise only the groups the client may `DESCRIBE`.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::kafka::errors::group_error_code;
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, ResourceType};

pub(crate) async fn handle(
    broker: &Broker,
    request: ListGroupsRequest,
    version: i16,
    access: &Session<'_>,
) -> ListGroupsResponse {
    let sees_all = access.authorize_cluster(AclOperation::Describe);
    let mut response = ListGroupsResponse::default();
    let listings = match broker.groups.list().await {
        Ok(listings) => listings,
        Err(error) => {
            response.error_code = group_error_code(Some(&error));
            return response;
        }
    };
    let states: Vec<&str> = if version >= 4 {
        request.states_filter.iter().map(|s| s.as_str()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<&str> = if version >= 5 {
        request.types_filter.iter().map(|s| s.as_str()).collect()
    } else {
        Vec::new()
    };
    response.groups = listings
        .into_iter()
        .filter(|l| states.is_empty() || states.iter().any(|s| s.eq_ignore_ascii_case(l.state)))
        .filter(|l| types.is_empty() || types.iter().any(|t| t.eq_ignore_ascii_case(l.group_type)))
        .filter(|l| {
            sees_all || access.authorize(AclOperation::Describe, ResourceType::Group, &l.group_id)
        })
        .map(|listing| {
            let mut group = ListedGroup::default();
            group.group_id = GroupId(StrBytes::from_string(listing.group_id));
            group.protocol_type = StrBytes::from_string(listing.protocol_type);
            if version >= 4 {
                group.group_state = StrBytes::from_static_str(listing.state);
            }
            if version >= 5 {
                group.group_type = StrBytes::from_static_str(listing.group_type);
            }
            group
        })
        .collect();
    response
}
