//! `FindCoordinator`: one key (v0–3) or a batch of keys (v4). A group key is
//! answered with the live agent its coordinator shard is placed on (this agent
//! takes the shard in metadata first when that is itself); a transaction key
//! likewise, on the same shards ([`crate::transactions`]).
//!
//! With an authorizer, as Kafka's: a group key needs `DESCRIBE` on the group
//! (else `GROUP_AUTHORIZATION_FAILED`), a transaction key `DESCRIBE` on the
//! transactional id (else `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::kafka::errors::{group_error, txn_error};
use crate::security::authorizer::{Denied, Session};
use fjord_metadata::AclOperation;

const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;

async fn coordinator(
    broker: &Broker,
    key_type: i8,
    key: StrBytes,
    access: &Session<'_>,
) -> Coordinator {
    let refused = |denied: Denied| {
        let message = denied.to_string();
        (ResponseError::from(denied), message)
    };
    let outcome = match key_type {
        GROUP_KEY if let Err(denied) = access.group(AclOperation::Describe, key.as_str()) => {
            Err(refused(denied))
        }
        TRANSACTION_KEY
            if let Err(denied) = access.transactional_id(AclOperation::Describe, key.as_str()) =>
        {
            Err(refused(denied))
        }
        GROUP_KEY => broker
            .groups
            .find_coordinator(key.as_str())
            .await
            .map_err(|error| (group_error(&error), error.to_string())),
        TRANSACTION_KEY => broker
            .transactions
            .find_coordinator(key.as_str())
            .await
            .map_err(|error| (txn_error(&error, false), error.to_string())),
        other => Err((
            ResponseError::InvalidRequest,
            format!("unknown coordinator key type {other}"),
        )),
    };
    let mut answer = Coordinator::default();
    answer.key = key;
    match outcome {
        Ok(owner) => {
            let agent = broker
                .cluster
                .live()
                .into_iter()
                .find(|a| a.node_id == owner)
                .unwrap_or_else(|| broker.cluster.me().clone());
            answer.node_id = BrokerId(agent.node_id);
            answer.host = StrBytes::from_string(agent.host);
            answer.port = i32::from(agent.port);
        }
        Err((error, message)) => {
            answer.node_id = BrokerId(-1);
            answer.port = -1;
            answer.error_code = error.code();
            answer.error_message = Some(StrBytes::from_string(message));
        }
    }
    answer
}

pub(crate) async fn handle(
    broker: &Broker,
    request: FindCoordinatorRequest,
    version: i16,
    access: &Session<'_>,
) -> FindCoordinatorResponse {
    let mut response = FindCoordinatorResponse::default();
    let key_type = if version >= 1 {
        request.key_type
    } else {
        GROUP_KEY
    };
    if version >= 4 {
        for key in request.coordinator_keys {
            response
                .coordinators
                .push(coordinator(broker, key_type, key, access).await);
        }
        return response;
    }
    let answer = coordinator(broker, key_type, request.key, access).await;
    response.error_code = answer.error_code;
    if version >= 1 {
        response.error_message = answer.error_message;
    }
    response.node_id = answer.node_id;
    response.host = answer.host;
    response.port = answer.port;
    response
}
