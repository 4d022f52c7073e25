//! `ApiVersions`: the served APIs and version ranges.

use kafka_protocol::messages::ApiVersionsResponse;

use crate::kafka::versions;

pub(crate) fn handle() -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.api_keys = versions::served();
    response.finalized_features_epoch = -1;
    response
}
