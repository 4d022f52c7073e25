//! `Heartbeat` (v0–4): keeps a member's session alive and tells it when to
//! rejoin (`REBALANCE_IN_PROGRESS`).

use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

use crate::Broker;
use crate::groups::types;
use crate::kafka::errors::group_error_code;

pub(crate) async fn handle(
    broker: &Broker,
    request: HeartbeatRequest,
    version: i16,
) -> HeartbeatResponse {
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
