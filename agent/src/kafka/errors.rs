//! The one mapping from Fjord's errors to Kafka error codes.

use fjord_metadata::{ErrorKind, MetadataError};
use kafka_protocol::error::ResponseError;

/// The Kafka error a metadata error becomes, for APIs about topics. Exhaustive on
/// purpose: a new error variant must be classified here, not fall into a default.
pub fn metadata_error(error: &MetadataError) -> ResponseError {
    match error {
        MetadataError::TopicAlreadyExists { .. } => ResponseError::TopicAlreadyExists,
        MetadataError::UnknownTopic { .. } | MetadataError::UnknownPartition { .. } => {
            ResponseError::UnknownTopicOrPartition
        }
        MetadataError::Invalid { .. } => ResponseError::InvalidRequest,
        MetadataError::Fenced { .. } => ResponseError::NotLeaderOrFollower,
        MetadataError::OffsetMismatch { .. }
        | MetadataError::UnknownAgent { .. }
        | MetadataError::Corrupt { .. }
        | MetadataError::UnsupportedUrl { .. } => ResponseError::UnknownServerError,
        MetadataError::Kv(_) => match error.kind() {
            ErrorKind::Retryable | ErrorKind::MaybeCommitted => ResponseError::RequestTimedOut,
            ErrorKind::Invalid => ResponseError::PolicyViolation,
            ErrorKind::Fenced
            | ErrorKind::NotFound
            | ErrorKind::AlreadyExists
            | ErrorKind::Corrupt
            | ErrorKind::Internal => ResponseError::UnknownServerError,
        },
    }
}
