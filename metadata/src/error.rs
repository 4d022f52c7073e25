//! Metadata errors: a precise enum for messages and branching, and an [`ErrorKind`]
//! that tells a caller what to do about it.

use crate::kv::KvError;
use crate::model::{SegmentId, TopicPartition};

/// What a caller should do about a [`MetadataError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Transient: nothing was written; try again later.
    Retryable,
    /// The write may or may not have applied; re-run an idempotent operation to find
    /// out.
    MaybeCommitted,
    /// The caller's epoch is stale: it lost leadership and must stop writing.
    Fenced,
    /// The named thing does not exist.
    NotFound,
    /// The thing to create exists already.
    AlreadyExists,
    /// The request is malformed or breaks a rule; retrying will not help.
    Invalid,
    /// Stored metadata could not be decoded.
    Corrupt,
    /// A backend failure that retrying will not fix.
    Internal,
}

/// An error from the metadata layer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetadataError {
    /// `CreateTopics` for a name in use.
    #[error("topic {name:?} already exists")]
    TopicAlreadyExists {
        /// The topic name.
        name: String,
    },
    /// No topic has this name (or id).
    #[error("unknown topic {topic}")]
    UnknownTopic {
        /// The name or id asked for.
        topic: String,
    },
    /// The topic exists but not this partition.
    #[error("unknown partition {partition}")]
    UnknownPartition {
        /// The partition asked for.
        partition: TopicPartition,
    },
    /// No live registration for this agent.
    #[error("unknown agent {node_id}")]
    UnknownAgent {
        /// The agent's node id.
        node_id: i32,
    },
    /// A malformed request.
    #[error("invalid request: {reason}")]
    Invalid {
        /// What is wrong with it.
        reason: String,
    },
    /// A commit carried an epoch that is no longer the partition's. Nothing was
    /// written.
    #[error(
        "fenced: partition {partition} is at leader epoch {current_epoch}, the commit carried {attempted_epoch}"
    )]
    Fenced {
        /// The partition whose epoch moved on.
        partition: TopicPartition,
        /// Its epoch now.
        current_epoch: i32,
        /// The epoch the commit was made under.
        attempted_epoch: i32,
    },
    /// A segment commit did not start at the partition's high watermark: a gap or an
    /// overlap, which the index must never hold. Nothing was written.
    #[error(
        "offset mismatch on {partition}: the high watermark is {high_watermark}, the commit starts at {base_offset}"
    )]
    OffsetMismatch {
        /// The partition.
        partition: TopicPartition,
        /// Its committed high watermark.
        high_watermark: i64,
        /// Where the commit's chunk starts.
        base_offset: i64,
    },
    /// A segment commit of a segment older (by the time in its id) than
    /// [`MAX_COMMIT_AGE_MS`](crate::MAX_COMMIT_AGE_MS): the orphan sweep may
    /// have deleted its object already. Nothing was written; the batches go in
    /// a new segment.
    #[error("segment {segment_id} is {age_ms} ms old, more than a commit may be ({max_age_ms} ms)")]
    SegmentTooOld {
        /// The segment.
        segment_id: SegmentId,
        /// Its age when the commit was tried.
        age_ms: i64,
        /// The most a commit accepts.
        max_age_ms: i64,
    },
    /// An offset outside a partition's log: `DeleteRecords` beyond the high
    /// watermark, or a negative offset other than the ones with a meaning. Nothing
    /// was written.
    #[error("offset {offset} is outside {partition}'s log {log_start_offset}..={high_watermark}")]
    OffsetOutOfRange {
        /// The partition.
        partition: TopicPartition,
        /// The offset asked for.
        offset: i64,
        /// Its log start offset.
        log_start_offset: i64,
        /// Its high watermark.
        high_watermark: i64,
    },
    /// A stored value could not be decoded.
    #[error("corrupt metadata value ({what}): {detail}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// What failed.
        detail: String,
    },
    /// A metadata URL names no backend this build has.
    #[error("unsupported metadata url {url:?}: {reason}")]
    UnsupportedUrl {
        /// The URL given.
        url: String,
        /// Why it is refused.
        reason: String,
    },
    /// The key-value layer failed.
    #[error(transparent)]
    Kv(#[from] KvError),
    /// A group write carried a coordinator-shard epoch that is no longer the
    /// shard's: another coordinator took the shard over. Nothing was written.
    #[error(
        "fenced: coordinator shard {shard} is at epoch {current_epoch}, the write carried {attempted_epoch}"
    )]
    CoordinatorFenced {
        /// The coordinator shard.
        shard: u32,
        /// Its epoch now.
        current_epoch: i32,
        /// The epoch the write was made under.
        attempted_epoch: i32,
    },
    /// An offset commit named a generation the group is not in. Nothing was
    /// written.
    #[error("group {group:?} has stored generation {current:?}, the commit carried {attempted}")]
    IllegalGeneration {
        /// The group.
        group: String,
        /// Its stored generation (`None`: no group is stored).
        current: Option<i32>,
        /// The generation the commit was made under.
        attempted: i32,
    },
}

impl MetadataError {
    /// What the caller should do.
    pub fn kind(&self) -> ErrorKind {
        match self {
            MetadataError::TopicAlreadyExists { .. } => ErrorKind::AlreadyExists,
            MetadataError::UnknownTopic { .. }
            | MetadataError::UnknownPartition { .. }
            | MetadataError::UnknownAgent { .. } => ErrorKind::NotFound,
            MetadataError::Invalid { .. }
            | MetadataError::OffsetMismatch { .. }
            | MetadataError::SegmentTooOld { .. }
            | MetadataError::OffsetOutOfRange { .. }
            | MetadataError::UnsupportedUrl { .. } => ErrorKind::Invalid,
            MetadataError::Fenced { .. }
            | MetadataError::CoordinatorFenced { .. }
            | MetadataError::IllegalGeneration { .. } => ErrorKind::Fenced,
            MetadataError::Corrupt { .. } => ErrorKind::Corrupt,
            MetadataError::Kv(kv) => match kv {
                KvError::Conflict | KvError::Unavailable(_) => ErrorKind::Retryable,
                KvError::MaybeCommitted(_) => ErrorKind::MaybeCommitted,
                KvError::TooLarge(_) => ErrorKind::Invalid,
                KvError::Backend(_) => ErrorKind::Internal,
            },
        }
    }

    /// Whether the operation certainly wrote nothing.
    pub fn is_certainly_not_committed(&self) -> bool {
        match self {
            MetadataError::Kv(kv) => kv.is_certainly_not_committed(),
            MetadataError::TopicAlreadyExists { .. }
            | MetadataError::UnknownTopic { .. }
            | MetadataError::UnknownPartition { .. }
            | MetadataError::UnknownAgent { .. }
            | MetadataError::Invalid { .. }
            | MetadataError::Fenced { .. }
            | MetadataError::OffsetMismatch { .. }
            | MetadataError::SegmentTooOld { .. }
            | MetadataError::OffsetOutOfRange { .. }
            | MetadataError::Corrupt { .. }
            | MetadataError::UnsupportedUrl { .. }
            | MetadataError::CoordinatorFenced { .. }
            | MetadataError::IllegalGeneration { .. } => true,
        }
    }

    pub(crate) fn invalid(reason: impl Into<String>) -> Self {
        MetadataError::Invalid {
            reason: reason.into(),
        }
    }
}

impl crate::kv::AsKvError for MetadataError {
    fn as_kv_error(&self) -> Option<&KvError> {
        match self {
            MetadataError::Kv(kv) => Some(kv),
            _ => None,
        }
    }
}
