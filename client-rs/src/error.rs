//! The one error type of the client, carrying the gateway's error answer.
//!
//! The gateway answers every error with one shape:
//!
//! ```json
//! {"error": {"code": "UNKNOWN_TOPIC_OR_PARTITION", "kafka_error_code": 3,
//!            "message": "unknown topic t", "retriable": true}}
//! ```
//!
//! and a status (`404`, `409`, `503` with `Retry-After`, …). [`Error::Api`]
//! keeps both.

use std::time::Duration;

use serde::Deserialize;

/// What the client's calls return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The `error` object of a gateway error answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    /// Kafka's error name (`UNKNOWN_TOPIC_OR_PARTITION`) or the gateway's own
    /// (`BAD_REQUEST`, `NOT_FOUND`, …).
    pub code: String,
    /// Kafka's numeric error code, when the error is Kafka's.
    #[serde(default)]
    pub kafka_error_code: Option<i16>,
    /// What went wrong.
    #[serde(default)]
    pub message: String,
    /// Whether the same request may succeed later (Kafka's classification).
    #[serde(default)]
    pub retriable: bool,
    /// For `OFFSET_MISMATCH` (412): the partition's next offset.
    #[serde(default)]
    pub next_offset: Option<i64>,
}

/// The envelope `{"error": …}` (a tail's `error` event also carries the
/// status a plain read would have answered).
#[derive(Debug, Deserialize)]
pub(crate) struct ErrorEnvelope {
    pub(crate) error: ErrorBody,
    #[serde(default)]
    pub(crate) status: Option<u16>,
}

/// Everything that can go wrong.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The gateway answered an error.
    #[error("HTTP {status}: {} ({})", body.message, body.code)]
    Api {
        /// The HTTP status.
        status: u16,
        /// The gateway's error object (a synthesized one, code `HTTP_<status>`,
        /// when the answer had no error body).
        body: ErrorBody,
        /// The `Retry-After` the gateway sent, if any.
        retry_after: Option<Duration>,
    },
    /// A gRPC call failed (feature `grpc`): its status code and the gateway's
    /// error object, from the status and its trailers.
    #[error("gRPC {code}: {} ({})", body.message, body.code)]
    Rpc {
        /// The gRPC status code's name (`NotFound`, `Unavailable`, …).
        code: String,
        /// The gateway's error object.
        body: ErrorBody,
    },
    /// No agent could be reached, or the connection failed mid-request.
    #[error("transport: {0}")]
    Transport(String),
    /// An answer that is not what the API documents.
    #[error("unexpected answer: {0}")]
    Decode(String),
    /// A bad argument (a URL the client cannot use, a record it cannot send).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The producer or stream was closed, or its background task ended.
    #[error("closed: {0}")]
    Closed(String),
}

impl Error {
    /// Whether the same call may succeed later: transport failures, `503`s,
    /// and gateway errors Kafka classifies as retriable.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Api { status, body, .. } => {
                *status == 503 || *status == 429 || *status == 502 || body.retriable
            }
            Error::Rpc { code, body, .. } => code == "Unavailable" || body.retriable,
            Error::Transport(_) => true,
            Error::Decode(_) | Error::InvalidArgument(_) | Error::Closed(_) => false,
        }
    }

    /// For a precondition that did not hold (`OFFSET_MISMATCH`): the
    /// partition's next offset.
    pub fn next_offset(&self) -> Option<i64> {
        match self {
            Error::Api { body, .. } | Error::Rpc { body, .. } => body.next_offset,
            _ => None,
        }
    }

    /// The HTTP status, for [`Error::Api`].
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The error code (`OUT_OF_ORDER_SEQUENCE_NUMBER`, `BAD_REQUEST`, …), for
    /// [`Error::Api`].
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { body, .. } | Error::Rpc { body, .. } => Some(&body.code),
            _ => None,
        }
    }

    /// Whether the client moves this request to another agent: a transport
    /// failure, or a 503 (the gateway's "not now, here").
    pub(crate) fn moves_on(&self) -> bool {
        match self {
            Error::Transport(_) => true,
            Error::Api { status, .. } => *status == 503,
            _ => false,
        }
    }

    /// The error of an answer with `status` and `body`.
    pub(crate) fn from_answer(status: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        let body = match serde_json::from_slice::<ErrorEnvelope>(body) {
            Ok(envelope) => envelope.error,
            Err(_) => ErrorBody {
                code: format!("HTTP_{status}"),
                kafka_error_code: None,
                message: String::from_utf8_lossy(body).chars().take(500).collect(),
                retriable: status == 503,
                next_offset: None,
            },
        };
        Error::Api {
            status,
            body,
            retry_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_answers_keep_the_gateway_body() {
        let error = Error::from_answer(
            409,
            br#"{"error":{"code":"OUT_OF_ORDER_SEQUENCE_NUMBER","kafka_error_code":45,"message":"gap","retriable":false}}"#,
            None,
        );
        assert_eq!(error.status(), Some(409));
        assert_eq!(error.code(), Some("OUT_OF_ORDER_SEQUENCE_NUMBER"));
        assert!(!error.is_retriable());
        let unavailable = Error::from_answer(503, b"busy", Some(Duration::from_secs(1)));
        assert!(unavailable.is_retriable());
        assert!(unavailable.moves_on());
        assert_eq!(unavailable.code(), Some("HTTP_503"));
    }
}
