//! The one error shape of the HTTP API, and the one mapping from Kafka error
//! codes to HTTP statuses.
//!
//! ```json
//! {"error": {"code": "UNKNOWN_TOPIC_OR_PARTITION", "kafka_error_code": 3,
//!            "message": "unknown topic t", "retriable": false}}
//! ```
//!
//! `code` is Kafka's error name when there is one, else one of the gateway's
//! own (`BAD_REQUEST`, `NOT_FOUND`, `PAYLOAD_TOO_LARGE`, …); `kafka_error_code`
//! is then absent. `retriable` is Kafka's classification; errors answered 503
//! (a retriable Kafka error that is not the request's fault) carry `Retry-After`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kafka_protocol::error::ResponseError;
use serde::Serialize;

use crate::core::KafkaError;
use crate::ops::Failure;

/// Seconds a client is told to wait before retrying a retriable error.
const RETRY_AFTER_SECONDS: &str = "1";

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The error's body.
    pub body: ErrorBody,
}

/// The `error` object of an error answer (and of a failed record in a produce
/// answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// Kafka's error name (`UNKNOWN_TOPIC_OR_PARTITION`) or the gateway's.
    pub code: String,
    /// Kafka's numeric error code, when the error is Kafka's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kafka_error_code: Option<i16>,
    /// What went wrong.
    pub message: String,
    /// Whether the same request may succeed later.
    pub retriable: bool,
    /// For `OFFSET_MISMATCH` (412): the partition's next offset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_offset: Option<i64>,
}

#[derive(Serialize)]
struct Envelope<'a> {
    error: &'a ErrorBody,
}

impl ApiError {
    /// A gateway error (no Kafka code).
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code: code.to_owned(),
                kafka_error_code: None,
                message: message.into(),
                retriable: matches!(
                    status,
                    StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
                ),
                next_offset: None,
            },
        }
    }

    /// 400: the request is malformed (bad JSON, wrong types, bad base64, …).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BAD_REQUEST", message)
    }

    /// 404 for a route that does not exist.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!("no route {path}"),
        )
    }

    /// 413: the body is larger than the gateway accepts.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "PAYLOAD_TOO_LARGE",
            format!("the body is larger than {limit} bytes"),
        )
    }

    /// 415: a body type the route does not take.
    pub fn unsupported_media_type(got: &str, takes: &str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UNSUPPORTED_MEDIA_TYPE",
            format!("content type {got:?} is not taken here; send {takes}"),
        )
    }

    /// 503: the agent is not taking requests now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", message)
    }
}

/// The HTTP status a Kafka error is answered with.
pub fn status_of(error: ResponseError) -> StatusCode {
    use ResponseError as E;
    match error {
        E::UnknownTopicOrPartition | E::UnknownTopicId => StatusCode::NOT_FOUND,
        E::TopicAlreadyExists => StatusCode::CONFLICT,
        E::OffsetOutOfRange => StatusCode::RANGE_NOT_SATISFIABLE,
        E::MessageTooLarge | E::RecordListTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        E::OutOfOrderSequenceNumber
        | E::InvalidProducerEpoch
        | E::ProducerFenced
        | E::DuplicateSequenceNumber => StatusCode::CONFLICT,
        // Group members: fenced or stale epochs, an instance id in use.
        E::FencedMemberEpoch
        | E::StaleMemberEpoch
        | E::UnreleasedInstanceId
        | E::FencedInstanceId
        | E::GroupMaxSizeReached
        | E::NonEmptyGroup
        | E::InconsistentGroupProtocol => StatusCode::CONFLICT,
        E::UnknownMemberId | E::GroupIdNotFound => StatusCode::NOT_FOUND,
        E::UnsupportedAssignor
        | E::InvalidRegularExpression
        | E::InvalidGroupId
        | E::InvalidSessionTimeout => StatusCode::BAD_REQUEST,
        E::TopicAuthorizationFailed
        | E::ClusterAuthorizationFailed
        | E::TransactionalIdAuthorizationFailed => StatusCode::FORBIDDEN,
        E::PolicyViolation
        | E::InvalidConfig
        | E::InvalidPartitions
        | E::InvalidReplicationFactor
        | E::InvalidTopicException
        | E::InvalidRequiredAcks
        | E::InvalidRecord
        | E::CorruptMessage
        | E::InvalidTimestamp
        | E::InvalidRequest
        | E::UnsupportedForMessageFormat
        | E::UnsupportedCompressionType => StatusCode::BAD_REQUEST,
        other if other.is_retriable() => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Kafka's name of an error (`UNKNOWN_TOPIC_OR_PARTITION`), from the variant's
/// name.
pub fn kafka_name(error: ResponseError) -> String {
    let variant = format!("{error:?}");
    let mut name = String::with_capacity(variant.len() + 8);
    for (i, c) in variant.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            name.push('_');
        }
        name.push(c.to_ascii_uppercase());
    }
    name
}

impl ErrorBody {
    /// The body of a Kafka error.
    pub fn of_kafka(error: &KafkaError) -> Self {
        Self {
            code: kafka_name(error.error),
            kafka_error_code: Some(error.error.code()),
            message: error.message.clone(),
            retriable: error.error.is_retriable(),
            next_offset: None,
        }
    }
}

impl From<KafkaError> for ApiError {
    fn from(error: KafkaError) -> Self {
        Self {
            status: status_of(error.error),
            body: ErrorBody::of_kafka(&error),
        }
    }
}

impl From<Failure> for ApiError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::BadRequest(message) => Self::bad_request(message),
            Failure::Kafka(error) => Self::from(error),
            Failure::OffsetMismatch { expected, actual } => {
                let mut error = Self::new(
                    StatusCode::PRECONDITION_FAILED,
                    "OFFSET_MISMATCH",
                    format!(
                        "expected_offset is {expected}, but the partition's next offset is {actual}; \
                         nothing was written"
                    ),
                );
                error.body.next_offset = Some(actual);
                error
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(Envelope { error: &self.body })).into_response();
        if matches!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECONDS),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_are_screaming_snake_case() {
        assert_eq!(
            kafka_name(ResponseError::UnknownTopicOrPartition),
            "UNKNOWN_TOPIC_OR_PARTITION"
        );
        assert_eq!(
            kafka_name(ResponseError::NotLeaderOrFollower),
            "NOT_LEADER_OR_FOLLOWER"
        );
    }

    #[test]
    fn retriable_kafka_errors_are_503_with_retry_after() {
        let error = ApiError::from(KafkaError::new(ResponseError::RequestTimedOut, "slow"));
        assert_eq!(error.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(error.body.retriable);
        let response = error.into_response();
        assert_eq!(
            response
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        let fatal = ApiError::from(KafkaError::new(ResponseError::InvalidRecord, "bad"));
        assert_eq!(fatal.status, StatusCode::BAD_REQUEST);
        assert!(!fatal.body.retriable);
        assert!(
            fatal
                .into_response()
                .headers()
                .get(header::RETRY_AFTER)
                .is_none()
        );
    }
}
