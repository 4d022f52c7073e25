//! Why a produce or a fetch failed: a precise, typed error, and the class of it
//! a caller acts on ([`LogErrorKind`]). The Kafka error code of each is chosen in
//! one exhaustive function, [`crate::kafka::errors::log_error`].

use std::sync::Arc;

use fjord_metadata::{MetadataError, TopicPartition};
use fjord_storage::StorageError;
use fjord_storage::wal::WalError;

use crate::idempotence::SequenceError;
use crate::records::BatchError;

/// Why a produce or fetch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LogError {
    /// A malformed batch.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// A batch larger than `message.max.bytes`.
    #[error("record batch of {size} bytes exceeds message.max.bytes ({limit})")]
    BatchTooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An idempotent producer's epoch or sequence is wrong.
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    /// Leadership moved (or was never here); the client should refresh metadata.
    #[error("not the leader of {0}")]
    NotLeader(TopicPartition),
    /// The topic or partition does not exist (or was deleted).
    #[error("unknown partition {0}")]
    UnknownPartition(TopicPartition),
    /// The fetch offset lies outside the log.
    #[error("offset {offset} is outside {log_start}..={high_watermark}")]
    OffsetOutOfRange {
        /// Asked for.
        offset: i64,
        /// First readable.
        log_start: i64,
        /// Next to be written.
        high_watermark: i64,
    },
    /// A produce's expected offset (the gateway's `expected_offset`
    /// precondition) was not the partition's next offset: nothing was written.
    #[error("expected offset {expected}, the partition's next offset is {actual}")]
    OffsetMismatch {
        /// What the produce expected.
        expected: i64,
        /// The partition's next offset.
        actual: i64,
    },
    /// The metadata store failed (its own class says whether to retry).
    #[error("metadata: {0}")]
    Metadata(MetadataError),
    /// Object storage failed, or a segment object could not be built or read.
    #[error("object storage: {0}")]
    Storage(Arc<StorageError>),
    /// The agent's write-ahead log failed.
    #[error("write-ahead log: {0}")]
    Wal(Arc<WalError>),
    /// The index names an object key this cluster never writes.
    #[error("the index names {0}, which is not one of this cluster's segment keys")]
    ForeignObject(String),
    /// This agent is stopping (a shutdown, or a fatal error in one of its
    /// tasks); another agent takes its partitions over.
    #[error("this agent is stopping")]
    Stopped,
}

/// What a caller should do about a [`LogError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogErrorKind {
    /// The request is wrong; retrying it unchanged fails the same way.
    Invalid,
    /// Retry, possibly elsewhere (leadership moved, a transient failure).
    Retriable,
    /// Committed data cannot be read (an object the index names is missing or
    /// damaged): retrying will not help; an operator must look.
    DataLoss,
    /// A bug or an environment failure.
    Internal,
}

impl LogError {
    /// A metadata error about `partition`, as the log reports it.
    pub fn from_metadata(partition: TopicPartition, error: MetadataError) -> Self {
        match error {
            MetadataError::Fenced { partition, .. } => LogError::NotLeader(partition),
            MetadataError::UnknownPartition { .. } | MetadataError::UnknownTopic { .. } => {
                LogError::UnknownPartition(partition)
            }
            other => LogError::Metadata(other),
        }
    }

    /// An object-storage error.
    pub fn storage(error: StorageError) -> Self {
        LogError::Storage(Arc::new(error))
    }

    /// A WAL error.
    pub fn wal(error: WalError) -> Self {
        LogError::Wal(Arc::new(error))
    }

    /// What to do about it. Exhaustive on purpose.
    pub fn kind(&self) -> LogErrorKind {
        match self {
            LogError::Batch(_)
            | LogError::BatchTooLarge { .. }
            | LogError::Sequence(_)
            | LogError::UnknownPartition(_)
            | LogError::OffsetOutOfRange { .. }
            | LogError::OffsetMismatch { .. } => LogErrorKind::Invalid,
            LogError::NotLeader(_) | LogError::Stopped => LogErrorKind::Retriable,
            LogError::Metadata(error) => match error.kind() {
                fjord_metadata::ErrorKind::Retryable
                | fjord_metadata::ErrorKind::MaybeCommitted
                | fjord_metadata::ErrorKind::Fenced => LogErrorKind::Retriable,
                fjord_metadata::ErrorKind::NotFound
                | fjord_metadata::ErrorKind::AlreadyExists
                | fjord_metadata::ErrorKind::Invalid => LogErrorKind::Invalid,
                fjord_metadata::ErrorKind::Corrupt => LogErrorKind::DataLoss,
                fjord_metadata::ErrorKind::Internal => LogErrorKind::Internal,
            },
            LogError::Storage(error) => match error.kind() {
                fjord_storage::ErrorKind::Transient => LogErrorKind::Retriable,
                fjord_storage::ErrorKind::NotFound | fjord_storage::ErrorKind::Corrupt => {
                    LogErrorKind::DataLoss
                }
                fjord_storage::ErrorKind::Unsupported
                | fjord_storage::ErrorKind::Invalid
                | fjord_storage::ErrorKind::Internal => LogErrorKind::Internal,
            },
            LogError::Wal(error) => match error.kind() {
                fjord_storage::ErrorKind::Transient => LogErrorKind::Retriable,
                fjord_storage::ErrorKind::NotFound
                | fjord_storage::ErrorKind::Corrupt
                | fjord_storage::ErrorKind::Unsupported
                | fjord_storage::ErrorKind::Invalid
                | fjord_storage::ErrorKind::Internal => LogErrorKind::Internal,
            },
            LogError::ForeignObject(_) => LogErrorKind::DataLoss,
        }
    }
}
