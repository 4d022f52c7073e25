//! Compatibility with Confluent's REST Proxy, so its clients and scripts work
//! against any agent unchanged: the paths, bodies, content types and error
//! bodies (`{"error_code": 40403, "message": "..."}`) of its API v2 and v3.
//! What users see of it, and how it differs from Confluent's: `docs/rest-proxy.md`.
//!
//! | module | owns |
//! |---|---|
//! | [`v3`] | `/v3` (and `/kafka/v3`): clusters, topics, partitions, consumer groups |
//! | [`v3_produce`] | `POST /v3/clusters/{c}/topics/{t}/records` (one record, or a stream of them) and `records:batch` |
//! | [`v2`] | `/topics`: topic metadata and produce with the `binary` and `json` embedded formats |
//! | [`v2_consumers`] | `/consumers`: consumer instances, their subscriptions, reads, seeks and commits |
//! | [`instances`] | consumer instances kept in metadata: loaded, worked on and stored back by compare-and-set on every call |
//! | [`json`] | JSON whose objects keep their member order; RFC 3339 timestamps |
//!
//! Everything here is an adapter over the gateway's operations (`crate::ops`)
//! and the broker core: a v3 produce is the gateway's produce (murmur2 on the
//! key, one batch per partition), a v2 consumer instance is a member of the
//! server-side consumer protocol whose heartbeat is its read, as `/v1/groups`
//! members are.
//!
//! Invariants:
//!
//! - No state lives in the agent that answered: a consumer instance is a
//!   metadata record every call loads and stores back, so its `base_uri`
//!   names the agent that created it but every agent serves it.
//! - Two calls of one instance never overwrite each other's state: a store
//!   names the version it loaded; the loser of a race reloads and redoes its
//!   call (a read it loses is not answered, so no record is skipped).
//! - Errors always carry Confluent's body and content type (v2:
//!   `application/vnd.kafka.v2+json`, v3: `application/json`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use kafka_protocol::error::ResponseError;
use serde::Serialize;

use super::State;
use crate::core::KafkaError;
use crate::error::ApiError;
use crate::ops::Failure;

pub(crate) mod instances;
pub(crate) mod json;
mod v2;
mod v2_consumers;
mod v3;
mod v3_produce;

/// The media type of the v2 API's bodies without embedded data.
pub(crate) const V2_JSON: &str = "application/vnd.kafka.v2+json";
/// The v2 embedded format `binary` (base64 keys and values).
pub(crate) const V2_BINARY: &str = "application/vnd.kafka.binary.v2+json";
/// The v2 embedded format `json` (keys and values embedded as JSON).
pub(crate) const V2_EMBEDDED_JSON: &str = "application/vnd.kafka.json.v2+json";
/// The media type of the v3 API.
pub(crate) const JSON: &str = "application/json";

/// Which API an answer belongs to: it decides the error body's content type
/// and the codes of Kafka errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    V2,
    V3,
}

/// The state of the REST Proxy routes.
#[derive(Debug, Clone)]
pub(crate) struct Confluent {
    pub(crate) inner: State,
    /// When this agent last swept expired consumer instances (ms since the epoch).
    pub(crate) last_sweep_ms: Arc<AtomicI64>,
}

/// The REST Proxy routes over the gateway's `state` (to merge into its router).
pub(crate) fn router(state: &State) -> Router<State> {
    let state = Confluent {
        inner: state.clone(),
        last_sweep_ms: Arc::new(AtomicI64::new(0)),
    };
    Router::new()
        .merge(v3::routes())
        .merge(v3_produce::routes())
        .merge(v2::routes())
        .merge(v2_consumers::routes())
        .with_state(state)
}

/// An error answer in Confluent's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RestError {
    pub(crate) api: Api,
    pub(crate) status: StatusCode,
    pub(crate) error_code: i32,
    pub(crate) message: String,
}

#[derive(Serialize)]
struct ErrorJson<'a> {
    error_code: i32,
    message: &'a str,
}

impl RestError {
    pub(crate) fn new(
        api: Api,
        status: StatusCode,
        error_code: i32,
        message: impl Into<String>,
    ) -> Self {
        Self {
            api,
            status,
            error_code,
            message: message.into(),
        }
    }

    /// An error whose code is its HTTP status (Confluent's generic errors).
    pub(crate) fn plain(api: Api, status: StatusCode, message: impl Into<String>) -> Self {
        Self::new(api, status, i32::from(status.as_u16()), message)
    }

    /// 400: the body is not what the route takes.
    pub(crate) fn bad_request(api: Api, message: impl Into<String>) -> Self {
        Self::plain(api, StatusCode::BAD_REQUEST, message)
    }

    /// 422: the body parses but breaks a rule.
    pub(crate) fn unprocessable(api: Api, error_code: i32, message: impl Into<String>) -> Self {
        Self::new(api, StatusCode::UNPROCESSABLE_ENTITY, error_code, message)
    }

    /// 415 for a body of another media type than the route takes.
    pub(crate) fn unsupported_media_type(api: Api, got: Option<&str>) -> Self {
        Self::plain(
            api,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "HTTP 415 Unsupported Media Type: {} is not taken here",
                got.unwrap_or("a body without a content type")
            ),
        )
    }

    /// 406 for an `Accept` header the route cannot satisfy.
    pub(crate) fn not_acceptable(api: Api) -> Self {
        Self::plain(api, StatusCode::NOT_ACCEPTABLE, "HTTP 406 Not Acceptable")
    }

    /// 404 40403 (v2): no such consumer instance.
    pub(crate) fn instance_not_found() -> Self {
        Self::new(
            Api::V2,
            StatusCode::NOT_FOUND,
            40403,
            "Consumer instance not found.",
        )
    }

    /// 404 40401 (v2) / 40403 (v3): no such topic.
    pub(crate) fn topic_not_found(api: Api) -> Self {
        match api {
            Api::V2 => Self::new(api, StatusCode::NOT_FOUND, 40401, "Topic not found."),
            Api::V3 => Self::new(api, StatusCode::NOT_FOUND, 40403, "Topic not found."),
        }
    }

    /// 404 40402 (v2) / 40403 (v3): no such partition.
    pub(crate) fn partition_not_found(api: Api) -> Self {
        match api {
            Api::V2 => Self::new(api, StatusCode::NOT_FOUND, 40402, "Partition not found."),
            Api::V3 => Self::new(
                api,
                StatusCode::NOT_FOUND,
                40403,
                "This server does not host this topic-partition.",
            ),
        }
    }

    /// 409 40903 (v2): what the consumer was asked cannot be done in its state
    /// (Kafka's `IllegalStateException`).
    pub(crate) fn illegal_state(message: impl std::fmt::Display) -> Self {
        Self::new(
            Api::V2,
            StatusCode::CONFLICT,
            40903,
            format!("Illegal state: {message}"),
        )
    }

    /// A Kafka error, with the codes of `api`.
    pub(crate) fn kafka(api: Api, error: &KafkaError) -> Self {
        let (status, code) = kafka_code(api, error.error);
        Self::new(api, status, code, error.message.clone())
    }

    /// A gateway operation's failure.
    pub(crate) fn failure(api: Api, failure: Failure) -> Self {
        match failure {
            Failure::BadRequest(message) => Self::bad_request(api, message),
            Failure::Kafka(error) => Self::kafka(api, &error),
            Failure::OffsetMismatch { expected, actual } => Self::plain(
                api,
                StatusCode::PRECONDITION_FAILED,
                format!("expected offset {expected}, the partition's next offset is {actual}"),
            ),
        }
    }

    /// A gateway error (from the shared helpers: the body limit, …), with its
    /// status as the code.
    pub(crate) fn of_api(api: Api, error: ApiError) -> Self {
        Self::plain(api, error.status, error.body.message)
    }

    /// The error as one JSON object (for produce results and streams).
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::json!({"error_code": self.error_code, "message": self.message})
    }
}

/// The HTTP status and Confluent error code of a Kafka error.
pub(crate) fn kafka_code(api: Api, error: ResponseError) -> (StatusCode, i32) {
    use ResponseError as E;
    match error {
        E::UnknownTopicOrPartition | E::UnknownTopicId => match api {
            Api::V2 => (StatusCode::NOT_FOUND, 40401),
            Api::V3 => (StatusCode::NOT_FOUND, 40403),
        },
        E::GroupIdNotFound => (StatusCode::NOT_FOUND, 404),
        E::UnknownMemberId
        | E::FencedMemberEpoch
        | E::StaleMemberEpoch
        | E::IllegalGeneration
        | E::RebalanceInProgress
        | E::UnreleasedInstanceId
        | E::FencedInstanceId
        | E::GroupMaxSizeReached => (StatusCode::CONFLICT, 40903),
        E::TopicAuthorizationFailed
        | E::GroupAuthorizationFailed
        | E::ClusterAuthorizationFailed
        | E::TransactionalIdAuthorizationFailed => (StatusCode::FORBIDDEN, 40301),
        E::SaslAuthenticationFailed => (StatusCode::UNAUTHORIZED, 40101),
        E::TopicAlreadyExists
        | E::InvalidTopicException
        | E::InvalidPartitions
        | E::InvalidReplicationFactor
        | E::InvalidReplicaAssignment
        | E::InvalidConfig
        | E::PolicyViolation
        | E::InvalidRequest
        | E::InvalidRecord
        | E::CorruptMessage
        | E::InvalidTimestamp
        | E::InvalidRequiredAcks
        | E::MessageTooLarge
        | E::RecordListTooLarge
        | E::UnsupportedForMessageFormat
        | E::UnsupportedCompressionType
        | E::InvalidGroupId
        | E::InvalidRegularExpression
        | E::UnsupportedAssignor
        | E::InvalidSessionTimeout => (StatusCode::BAD_REQUEST, 40002),
        other if other.is_retriable() => (StatusCode::INTERNAL_SERVER_ERROR, 50003),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, 50002),
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&ErrorJson {
            error_code: self.error_code,
            message: &self.message,
        })
        .unwrap_or_default();
        let content_type = match self.api {
            Api::V2 => V2_JSON,
            Api::V3 => JSON,
        };
        let mut response =
            (self.status, [(header::CONTENT_TYPE, content_type)], body).into_response();
        if self.error_code == 50003 {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

/// A JSON answer with `content_type`.
pub(crate) fn answer<T: Serialize>(status: StatusCode, content_type: &str, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, content_type.to_owned())],
            bytes,
        )
            .into_response(),
        Err(error) => RestError::plain(
            Api::V3,
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the answer: {error}"),
        )
        .into_response(),
    }
}

/// 204 No Content.
pub(crate) fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// The media types an `Accept` header lists, lower-cased, without parameters
/// (those with `q=0` left out); empty when there is no such header.
pub(crate) fn accepted(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|item| {
            let mut parts = item.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            let refused = parts.any(|p| {
                let p = p.trim();
                p.strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            (!media.is_empty() && !refused).then_some(media)
        })
        .collect()
}

/// Whether `media` (say `application/json`) is one the listed `accepted`
/// types allow (`*/*`, `application/*`, or itself).
pub(crate) fn allows(accepted: &[String], media: &str) -> bool {
    let kind = media.split('/').next().unwrap_or_default();
    accepted.iter().any(|a| {
        a == "*/*" || a == media || a.strip_suffix("/*").is_some_and(|prefix| prefix == kind)
    })
}

/// Refuses (406) an `Accept` header that allows none of `offered`.
pub(crate) fn check_accept(
    api: Api,
    headers: &HeaderMap,
    offered: &[&str],
) -> Result<(), RestError> {
    if !headers.contains_key(header::ACCEPT) {
        return Ok(());
    }
    let accepted = accepted(headers);
    if offered.iter().any(|o| allows(&accepted, o)) {
        return Ok(());
    }
    Err(RestError::not_acceptable(api))
}

/// The request's media type, lower-cased, without parameters.
pub(crate) fn content_type(headers: &HeaderMap) -> Option<String> {
    super::media_type(headers).filter(|m| !m.is_empty())
}

/// The body, at most the gateway's limit.
pub(crate) async fn body_bytes(
    api: Api,
    state: &Confluent,
    headers: &HeaderMap,
    body: Body,
) -> Result<bytes::Bytes, RestError> {
    super::read_body(headers, body, state.inner.settings.max_body_bytes)
        .await
        .map_err(|e| RestError::of_api(api, e))
}

/// `http://<host>` of the agent the request reached (the `Host` header, or
/// the authority of an HTTP/2 request), for links in answers.
pub(crate) fn base_url(headers: &HeaderMap, uri: &Uri) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_else(|| "localhost".to_owned());
    format!("http://{host}")
}

/// `text` percent-encoded for a path segment (unreserved characters kept).
pub(crate) fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

impl Confluent {
    /// Starts a sweep of expired consumer instances when this agent has not
    /// swept for a while (instances are also expired when they are called).
    pub(crate) fn maybe_sweep(&self) {
        let now = self.inner.core.now_millis();
        let last = self.last_sweep_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) < instances::SWEEP_INTERVAL_MS {
            return;
        }
        if self
            .last_sweep_ms
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            return; // another request started it
        }
        let core = self.inner.core.clone();
        tokio::spawn(async move {
            if let Err(error) = instances::sweep(&core).await {
                tracing::debug!(error = %error.message, "sweeping expired rest consumer instances failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn accept_headers_are_matched_with_wildcards_and_refusals() {
        assert!(check_accept(Api::V3, &HeaderMap::new(), &[JSON]).is_ok());
        assert!(check_accept(Api::V3, &accept("*/*"), &[JSON]).is_ok());
        assert!(check_accept(Api::V3, &accept("application/*"), &[JSON]).is_ok());
        assert!(
            check_accept(
                Api::V3,
                &accept("text/html, application/json;q=0.5"),
                &[JSON]
            )
            .is_ok()
        );
        let refused = check_accept(Api::V3, &accept("text/html"), &[JSON]).unwrap_err();
        assert_eq!(
            (refused.status, refused.error_code),
            (StatusCode::NOT_ACCEPTABLE, 406)
        );
        assert!(check_accept(Api::V3, &accept("application/json;q=0"), &[JSON]).is_err());
        assert_eq!(
            accepted(&accept("Application/VND.kafka.v2+json; q=0.9, */*")),
            vec!["application/vnd.kafka.v2+json".to_owned(), "*/*".to_owned()]
        );
    }

    #[test]
    fn kafka_errors_get_confluents_codes() {
        assert_eq!(
            kafka_code(Api::V2, ResponseError::UnknownTopicOrPartition),
            (StatusCode::NOT_FOUND, 40401)
        );
        assert_eq!(
            kafka_code(Api::V3, ResponseError::UnknownTopicOrPartition),
            (StatusCode::NOT_FOUND, 40403)
        );
        assert_eq!(
            kafka_code(Api::V3, ResponseError::TopicAlreadyExists),
            (StatusCode::BAD_REQUEST, 40002)
        );
        assert_eq!(
            kafka_code(Api::V3, ResponseError::NotLeaderOrFollower),
            (StatusCode::INTERNAL_SERVER_ERROR, 50003)
        );
        assert_eq!(
            kafka_code(Api::V3, ResponseError::UnknownServerError),
            (StatusCode::INTERNAL_SERVER_ERROR, 50002)
        );
        let response = RestError::instance_not_found().into_response();
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers().get(header::CONTENT_TYPE).unwrap(),
            V2_JSON
        );
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(path_segment("group-1.a_b~"), "group-1.a_b~");
        assert_eq!(path_segment("a b/c"), "a%20b%2Fc");
    }
}
