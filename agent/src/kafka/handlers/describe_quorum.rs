//! `DescribeQuorum` (v0–2): refused, with a clear error.
//!
//! Kafka answers it from its KRaft controller quorum. Fjord has none: its
//! metadata lives in a transactional key-value store (FoundationDB, or SQLite
//! on one machine) that keeps its own replicas, which an agent cannot see as
//! voters with log end offsets. Rather than invent a quorum, the answer is
//! `INVALID_REQUEST` with a message saying where the metadata is (the message
//! field exists from v2 on). With an authorizer, a client without `DESCRIBE`
//! on the cluster is told `CLUSTER_AUTHORIZATION_FAILED` instead, as Kafka
//! checks that first.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse};
use kafka_protocol::protocol::StrBytes;

use crate::kafka::errors::authorization_code;
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;

/// What every `DescribeQuorum` is told.
const NO_QUORUM: &str = "Fjord has no KRaft quorum: its metadata lives in a transactional \
     key-value store (FoundationDB, or SQLite on one machine); see `fjord groups` and \
     `fjord storage-report` for what it holds";

pub(crate) fn handle(
    _request: DescribeQuorumRequest,
    access: &Session<'_>,
) -> DescribeQuorumResponse {
    let mut response = DescribeQuorumResponse::default();
    let allowed = access.cluster(AclOperation::Describe);
    if allowed.is_err() {
        response.error_code = authorization_code(&allowed);
        return response;
    }
    response.error_code = ResponseError::InvalidRequest.code();
    response.error_message = Some(StrBytes::from_static_str(NO_QUORUM));
    response
}
