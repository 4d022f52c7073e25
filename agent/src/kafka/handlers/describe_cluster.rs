//! `DescribeCluster` (v0–1): the cluster id, this agent as the controller, and
//! the registered agents as brokers. Only the broker endpoint type (1) exists
//! here: asking for controllers (2) is `UNSUPPORTED_ENDPOINT_TYPE`, as a Kafka
//! broker answers it.
//!
//! As in Kafka, any client may describe the cluster (its brokers are in every
//! `Metadata` answer too); with an authorizer, `cluster_authorized_operations`
//! holds what the client may do to the cluster, or 0 without `DESCRIBE` on it.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};
use kafka_protocol::protocol::StrBytes;

use super::registry::registered_brokers;
use crate::Broker;
use crate::kafka::errors::metadata_error;
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, CLUSTER_RESOURCE_NAME, ResourceType};

/// The endpoint type of brokers (v1).
const BROKER_ENDPOINTS: i8 = 1;

/// The "not requested" value of `cluster_authorized_operations`.
const OPERATIONS_NOT_REQUESTED: i32 = i32::MIN;

pub(crate) async fn handle(
    broker: &Broker,
    request: DescribeClusterRequest,
    version: i16,
    access: &Session<'_>,
) -> DescribeClusterResponse {
    let mut response = DescribeClusterResponse::default();
    response.cluster_id = StrBytes::from_string(broker.cluster_id.clone());
    response.controller_id = BrokerId(broker.node_id);
    // Without an authorizer every operation a cluster supports is reported,
    // as Kafka reports it.
    response.cluster_authorized_operations = if !request.include_cluster_authorized_operations {
        OPERATIONS_NOT_REQUESTED
    } else if access.authorize_cluster(AclOperation::Describe) {
        access.authorized_operations(ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
    } else {
        0
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
