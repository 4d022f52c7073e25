//! Failures as gRPC statuses. The code follows the HTTP status the HTTP API
//! answers the same failure with (one mapping from Kafka codes, in
//! [`crate::error`]); the details carry a `google.rpc.ErrorInfo`:
//!
//! - `reason`: Kafka's error name (`UNKNOWN_TOPIC_OR_PARTITION`) or the
//!   gateway's own (`BAD_REQUEST`, `OFFSET_MISMATCH`, …);
//! - `domain`: `fjord`;
//! - `metadata`: `kafka_error_code` (when the error is Kafka's), `retriable`
//!   (`true`/`false`) and, for `OFFSET_MISMATCH`, `next_offset`.
//!
//! The same values go in the trailers `fjord-error-code`,
//! `fjord-kafka-error-code`, `fjord-retriable` and `next_offset`, for clients
//! that do not decode details.

use std::collections::HashMap;

use axum::http::StatusCode;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt as _};

use crate::error::ApiError;
use crate::ops::Failure;

/// The `domain` of the gateway's `ErrorInfo`s.
const DOMAIN: &str = "fjord";

/// The gRPC code of an answer the HTTP API gives with `status`.
fn code_of(status: StatusCode, reason: &str) -> Code {
    match status {
        StatusCode::BAD_REQUEST => Code::InvalidArgument,
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::NotFound,
        StatusCode::CONFLICT if reason == "TOPIC_ALREADY_EXISTS" => Code::AlreadyExists,
        StatusCode::CONFLICT => Code::Aborted,
        StatusCode::PRECONDITION_FAILED => Code::FailedPrecondition,
        StatusCode::PAYLOAD_TOO_LARGE | StatusCode::TOO_MANY_REQUESTS => Code::ResourceExhausted,
        StatusCode::RANGE_NOT_SATISFIABLE => Code::OutOfRange,
        StatusCode::REQUEST_TIMEOUT | StatusCode::GATEWAY_TIMEOUT => Code::DeadlineExceeded,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        _ => Code::Internal,
    }
}

/// `failure` as a status, with its details and trailers.
pub(super) fn status(failure: Failure) -> Status {
    let error = ApiError::from(failure);
    let body = error.body;
    let code = code_of(error.status, &body.code);
    let mut metadata = HashMap::new();
    metadata.insert("retriable".to_owned(), body.retriable.to_string());
    if let Some(kafka) = body.kafka_error_code {
        metadata.insert("kafka_error_code".to_owned(), kafka.to_string());
    }
    if let Some(next) = body.next_offset {
        metadata.insert("next_offset".to_owned(), next.to_string());
    }
    let details = ErrorDetails::with_error_info(body.code.clone(), DOMAIN, metadata.clone());
    let mut status = Status::with_error_details(code, body.message, details);
    let trailers = status.metadata_mut();
    let pairs = [
        ("fjord-error-code", Some(body.code)),
        ("fjord-retriable", metadata.remove("retriable")),
        (
            "fjord-kafka-error-code",
            metadata.remove("kafka_error_code"),
        ),
        ("next_offset", metadata.remove("next_offset")),
    ];
    for (key, value) in pairs {
        if let Some(value) = value.and_then(|v| v.parse().ok()) {
            trailers.insert(key, value);
        }
    }
    status
}

/// A request the gateway refuses: `INVALID_ARGUMENT`.
pub(super) fn bad_request(message: impl Into<String>) -> Status {
    status(Failure::BadRequest(message.into()))
}

#[cfg(test)]
mod tests {
    use kafka_protocol::error::ResponseError;

    use super::*;
    use crate::core::KafkaError;

    #[test]
    fn kafka_errors_carry_their_code_name_and_retriability() {
        let status = status(Failure::Kafka(KafkaError::new(
            ResponseError::UnknownTopicOrPartition,
            "no topic t",
        )));
        assert_eq!(status.code(), Code::NotFound);
        let info = status.get_details_error_info().expect("an ErrorInfo");
        assert_eq!(info.reason, "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(info.domain, DOMAIN);
        assert_eq!(
            info.metadata.get("kafka_error_code").map(String::as_str),
            Some("3")
        );
        assert_eq!(
            status
                .metadata()
                .get("fjord-retriable")
                .map(|v| v.to_str().ok()),
            Some(Some("true"))
        );

        let retriable = status_of_kafka(ResponseError::NotLeaderOrFollower);
        assert_eq!(retriable.code(), Code::Unavailable);
        assert_eq!(
            status_of_kafka(ResponseError::TopicAlreadyExists).code(),
            Code::AlreadyExists
        );
        assert_eq!(
            status_of_kafka(ResponseError::OutOfOrderSequenceNumber).code(),
            Code::Aborted
        );
    }

    fn status_of_kafka(error: ResponseError) -> Status {
        status(Failure::Kafka(KafkaError::new(error, "x")))
    }

    #[test]
    fn an_offset_mismatch_names_the_next_offset() {
        let status = status(Failure::OffsetMismatch {
            expected: 3,
            actual: 7,
        });
        assert_eq!(status.code(), Code::FailedPrecondition);
        let info = status.get_details_error_info().expect("an ErrorInfo");
        assert_eq!(info.reason, "OFFSET_MISMATCH");
        assert_eq!(
            info.metadata.get("next_offset").map(String::as_str),
            Some("7")
        );
        assert_eq!(
            status
                .metadata()
                .get("next_offset")
                .map(|v| v.to_str().ok()),
            Some(Some("7"))
        );
    }
}
