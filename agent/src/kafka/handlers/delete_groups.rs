//! `DeleteGroups` (v0–2): deletes empty groups with their committed offsets.
//!
//! With an authorizer, each group needs `DELETE` (else
//! `GROUP_AUTHORIZATION_FAILED`, as Kafka answers).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse};

use crate::Broker;
use crate::kafka::errors::{authorization_code, group_error_code};
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;

pub(crate) async fn handle(
    broker: &Broker,
    request: DeleteGroupsRequest,
    access: &Session<'_>,
) -> DeleteGroupsResponse {
    let mut response = DeleteGroupsResponse::default();
    for group_id in request.groups_names {
        let mut result = DeletableGroupResult::default();
        let allowed = access.group(AclOperation::Delete, group_id.0.as_str());
        if allowed.is_err() {
            result.error_code = authorization_code(&allowed);
            result.group_id = group_id;
            response.results.push(result);
            continue;
        }
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
