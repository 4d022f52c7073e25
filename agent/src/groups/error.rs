//! What a group request can fail with, in Kafka's terms (the one mapping to wire
//! error codes is `kafka::errors::group_error`).

use fjord_metadata::{ErrorKind, MetadataError};

/// A group-coordination failure. Every variant is one Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// This agent does not coordinate the group (any more); the client looks the
    /// coordinator up again.
    #[error("not the coordinator of the group")]
    NotCoordinator,
    /// The coordinator cannot serve right now (metadata unavailable, group being
    /// deleted); the client looks the coordinator up again and retries.
    #[error("coordinator not available")]
    CoordinatorNotAvailable,
    /// The group id is empty or unusable.
    #[error("invalid group id")]
    InvalidGroupId,
    /// The session timeout lies outside the broker's bounds.
    #[error("session timeout outside the allowed range")]
    InvalidSessionTimeout,
    /// The member id is not (or no longer) a member of the group.
    #[error("unknown member id")]
    UnknownMemberId,
    /// The request carries a generation the group is not in.
    #[error("illegal generation")]
    IllegalGeneration,
    /// The group is rebalancing; the member must rejoin.
    #[error("rebalance in progress")]
    RebalanceInProgress,
    /// The member's protocol type or protocols do not match the group's.
    #[error("inconsistent group protocol")]
    InconsistentGroupProtocol,
    /// A first join: the member must join again with the member id it was given.
    #[error("member id required")]
    MemberIdRequired,
    /// Another member with the same `group.instance.id` replaced this one.
    #[error("fenced instance id")]
    FencedInstanceId,
    /// The group does not exist.
    #[error("group id not found")]
    GroupIdNotFound,
    /// The group has members, so it cannot be deleted.
    #[error("the group is not empty")]
    NonEmptyGroup,
    /// An offset cannot be deleted because the group consumes its topic.
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    /// The commit names an unknown topic or partition.
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    /// The commit's metadata string is longer than the broker accepts.
    #[error("offset metadata too large")]
    OffsetMetadataTooLarge,
    /// A consumer-protocol member sent an epoch it does not have: it must give
    /// up its partitions and rejoin.
    #[error("fenced member epoch")]
    FencedMemberEpoch,
    /// A commit carries an epoch other than the member's current one.
    #[error("stale member epoch")]
    StaleMemberEpoch,
    /// Another member still uses this `group.instance.id`.
    #[error("unreleased instance id")]
    UnreleasedInstanceId,
    /// The server-side assignor asked for does not exist.
    #[error("unsupported assignor {0:?}")]
    UnsupportedAssignor(String),
    /// The subscription's regular expression does not compile.
    #[error("invalid regular expression: {0}")]
    InvalidRegularExpression(String),
    /// The group has `group.consumer.max.size` members.
    #[error("the group has reached its maximum size")]
    GroupMaxSizeReached,
    /// A malformed request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The broker failed in a way the client cannot fix.
    #[error("internal error: {0}")]
    Internal(String),
}

impl GroupError {
    /// The group error a metadata failure becomes. Exhaustive on purpose.
    pub(crate) fn from_metadata(error: &MetadataError) -> Self {
        match error {
            MetadataError::CoordinatorFenced { .. } => GroupError::NotCoordinator,
            MetadataError::IllegalGeneration { .. } => GroupError::IllegalGeneration,
            MetadataError::UnknownTopic { .. } | MetadataError::UnknownPartition { .. } => {
                GroupError::UnknownTopicOrPartition
            }
            MetadataError::Kv(_) => match error.kind() {
                ErrorKind::Retryable | ErrorKind::MaybeCommitted => {
                    GroupError::CoordinatorNotAvailable
                }
                ErrorKind::Fenced
                | ErrorKind::NotFound
                | ErrorKind::AlreadyExists
                | ErrorKind::Invalid
                | ErrorKind::Corrupt
                | ErrorKind::Internal => GroupError::Internal(error.to_string()),
            },
            MetadataError::TopicAlreadyExists { .. }
            | MetadataError::UnknownAgent { .. }
            | MetadataError::Invalid { .. }
            | MetadataError::Fenced { .. }
            | MetadataError::OffsetMismatch { .. }
            | MetadataError::SegmentTooOld { .. }
            | MetadataError::OffsetOutOfRange { .. }
            | MetadataError::Corrupt { .. }
            | MetadataError::UnsupportedUrl { .. } => GroupError::Internal(error.to_string()),
        }
    }
}
