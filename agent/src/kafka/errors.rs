//! The one mapping from Fjord's errors to Kafka error codes.

use fjord_metadata::{ErrorKind, MetadataError};

use crate::log::LogError;
use crate::records::BatchError;
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
        MetadataError::CoordinatorFenced { .. } => ResponseError::NotCoordinator,
        MetadataError::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
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

/// The Kafka error a produce or fetch failure becomes.
pub fn log_error(error: &LogError) -> ResponseError {
    match error {
        LogError::Batch(BatchError::Corrupt(_)) => ResponseError::CorruptMessage,
        LogError::Batch(BatchError::Unsupported(_)) => ResponseError::UnsupportedForMessageFormat,
        LogError::NotLeader(_) => ResponseError::NotLeaderOrFollower,
        LogError::UnknownPartition(_) => ResponseError::UnknownTopicOrPartition,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        LogError::Storage(_) => ResponseError::KafkaStorageError,
    }
}
