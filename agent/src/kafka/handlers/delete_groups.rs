//! `DeleteGroups` (v0–2): deletes empty groups with their committed offsets.

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::Broker;
use crate::kafka::errors::group_error_code;

pub(crate) async fn handle(broker: &Broker, request: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut response = DeleteGroupsResponse::default();
    for group_id in request.groups_names {
        let mut result = DeletableGroupResult::default();
        result.error_code = group_error_code(
            broker
                .groups
                .delete(group_id.0.as_str())
                .await
                .err()
                .as_ref(),
        );
        result.group_id = group_id;
        response.results.push(result);
    }
    response
}
