//! `ApiVersions`: the served APIs and version ranges.

use kafka_protocol::messages::ApiVersionsResponse;
use kafka_protocol::messages::api_versions_response::ApiVersion;

use crate::kafka::versions::supported_versions;

/// The served ranges in wire form.
pub(crate) fn served() -> Vec<ApiVersion> {
    supported_versions()
        .iter()
        .map(|(api, min, max)| {
            let mut version = ApiVersion::default();
            version.api_key = *api as i16;
            version.min_version = *min;
            version.max_version = *max;
            version
        })
        .collect()
}

pub(super) fn handle() -> ApiVersionsResponse {
    let mut response = ApiVersionsResponse::default();
    response.api_keys = served();
    response.finalized_features_epoch = -1;
    response
}
