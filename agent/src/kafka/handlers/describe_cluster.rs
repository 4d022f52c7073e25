//! `DescribeCluster` (v0–1): the cluster id, this agent as the controller, and
//! the registered agents as brokers. Only the broker endpoint type (1) exists
//! here: asking for controllers (2) is `UNSUPPORTED_ENDPOINT_TYPE`, as a Kafka
//! broker answers it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::registry::registered_brokers;
use crate::Broker;
use crate::kafka::errors::metadata_error;

/// The endpoint type of brokers (v1).
const BROKER_ENDPOINTS: i8 = 1;

/// Kafka's `AclOperation` codes a cluster supports: with no authorizer, every
/// client may do all of them (Kafka reports the same when it runs without one).
const CLUSTER_OPERATIONS: [i32; 7] = [
    5,  // CREATE
    7,  // ALTER
    8,  // DESCRIBE
    9,  // CLUSTER_ACTION
    10, // DESCRIBE_CONFIGS
    11, // ALTER_CONFIGS
    12, // IDEMPOTENT_WRITE
];

/// The "not requested" value of `cluster_authorized_operations`.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub(crate) async fn handle(
    broker: &Broker,
    request: DescribeClusterRequest,
    version: i16,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    response.cluster_id = StrBytes::from_string(broker.cluster_id.clone());
    response.controller_id = BrokerId(broker.node_id);
    response.cluster_authorized_operations = if request.include_cluster_authorized_operations {
        CLUSTER_OPERATIONS
            .iter()
            .fold(0, |bits, op| bits | (1 << op))
    } else {
        OPERATIONS_NOT_REQUESTED
    };
    // The endpoint type exists from v1 on; v0 asks for brokers.
    if version >= 1 {
        response.endpoint_type = request.endpoint_type;
        if request.endpoint_type != BROKER_ENDPOINTS {
            response.error_code = ResponseError::UnsupportedEndpointType.code();
            response.error_message = Some(StrBytes::from_string(format!(
                "endpoint type {} is not served; brokers ({BROKER_ENDPOINTS}) are",
                request.endpoint_type
            )));
            return response;
        }
    }
    match registered_brokers(broker).await {
        Ok(brokers) => {
            response.brokers = brokers
                .into_iter()
                .map(|advertised| {
                    let mut wire = DescribeClusterBroker::default();
                    wire.broker_id = BrokerId(advertised.node_id);
                    wire.host = StrBytes::from_string(advertised.host);
                    wire.port = advertised.port;
                    wire.rack = None;
                    wire
                })
                .collect();
        }
        Err(error) => {
            tracing::warn!(%error, "listing agents for describe cluster failed");
            response.error_code = metadata_error(&error).code();
            response.error_message = Some(StrBytes::from_string(error.to_string()));
        }
    }
    response
}
