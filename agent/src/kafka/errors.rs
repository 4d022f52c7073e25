//! The one mapping from Fjord's errors to Kafka error codes.

use fjord_metadata::{ErrorKind, MetadataError};

use crate::configs::topic::ConfigError;
use crate::idempotence::SequenceError;
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
        MetadataError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        MetadataError::CoordinatorFenced { .. } => ResponseError::NotCoordinator,
        MetadataError::IllegalGeneration { .. } => ResponseError::IllegalGeneration,
        MetadataError::OffsetMismatch { .. }
        | MetadataError::SegmentTooOld { .. }
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
        LogError::Batch(BatchError::Invalid(_)) => ResponseError::InvalidRecord,
        LogError::BatchTooLarge { .. } => ResponseError::MessageTooLarge,
        LogError::Sequence(SequenceError::StaleEpoch { .. }) => ResponseError::InvalidProducerEpoch,
        LogError::Sequence(SequenceError::OutOfOrder { .. }) => {
            ResponseError::OutOfOrderSequenceNumber
        }
        LogError::NotLeader(_) => ResponseError::NotLeaderOrFollower,
        LogError::UnknownPartition(_) => ResponseError::UnknownTopicOrPartition,
        LogError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        // Kafka has no such precondition; only the gateway asks for one, and
        // answers it as its own error before this mapping is reached.
        LogError::OffsetMismatch { .. } => ResponseError::InvalidRequest,
        // Leadership moves when an agent stops: the client retries at the next leader.
        LogError::Stopped => ResponseError::NotLeaderOrFollower,
        LogError::Metadata(error) => match error.kind() {
            ErrorKind::Retryable | ErrorKind::MaybeCommitted => ResponseError::KafkaStorageError,
            ErrorKind::Fenced => ResponseError::NotLeaderOrFollower,
            ErrorKind::NotFound => ResponseError::UnknownTopicOrPartition,
            ErrorKind::AlreadyExists
            | ErrorKind::Invalid
            | ErrorKind::Corrupt
            | ErrorKind::Internal => ResponseError::UnknownServerError,
        },
        // A transient bucket failure is retriable (`KAFKA_STORAGE_ERROR`); an
        // object the index names that is missing or damaged is data loss, which
        // retrying cannot fix: `UNKNOWN_SERVER_ERROR`, which clients do not retry.
        LogError::Storage(error) => match error.kind() {
            fjord_storage::ErrorKind::Transient => ResponseError::KafkaStorageError,
            fjord_storage::ErrorKind::NotFound
            | fjord_storage::ErrorKind::Corrupt
            | fjord_storage::ErrorKind::Unsupported
            | fjord_storage::ErrorKind::Invalid
            | fjord_storage::ErrorKind::Internal => ResponseError::UnknownServerError,
        },
        LogError::Wal(_) => ResponseError::KafkaStorageError,
        LogError::ForeignObject(_) => ResponseError::UnknownServerError,
    }
}

/// The Kafka error a refused topic config request becomes: `INVALID_CONFIG` for
/// names and values, `INVALID_REQUEST` for a malformed request.
pub fn config_error(error: &ConfigError) -> ResponseError {
    match error {
        ConfigError::UnknownName { .. }
        | ConfigError::NullValue { .. }
        | ConfigError::InvalidValue { .. }
        | ConfigError::NotAList { .. }
        | ConfigError::Conflict { .. } => ResponseError::InvalidConfig,
        ConfigError::UnknownOperation { .. }
        | ConfigError::MissingOperand { .. }
        | ConfigError::DuplicateName { .. } => ResponseError::InvalidRequest,
    }
}

// ----- consumer groups -----

/// The Kafka error a group-coordination failure becomes. Exhaustive on purpose.
pub fn group_error(error: &crate::groups::GroupError) -> ResponseError {
    use crate::groups::GroupError;
    match error {
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::InvalidSessionTimeout => ResponseError::InvalidSessionTimeout,
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::MemberIdRequired => ResponseError::MemberIdRequired,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        GroupError::UnknownTopicOrPartition => ResponseError::UnknownTopicOrPartition,
        GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
        GroupError::FencedMemberEpoch => ResponseError::FencedMemberEpoch,
        GroupError::StaleMemberEpoch => ResponseError::StaleMemberEpoch,
        GroupError::UnreleasedInstanceId => ResponseError::UnreleasedInstanceId,
        GroupError::UnsupportedAssignor(_) => ResponseError::UnsupportedAssignor,
        GroupError::InvalidRegularExpression(_) => ResponseError::InvalidRegularExpression,
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        GroupError::InvalidRequest(_) => ResponseError::InvalidRequest,
        GroupError::Internal(_) => ResponseError::UnknownServerError,
    }
}

/// The wire code of an optional group error (0 for none).
pub(crate) fn group_error_code(error: Option<&crate::groups::GroupError>) -> i16 {
    error.map_or(0, |e| group_error(e).code())
}

// ----- transactions -----

/// The Kafka error a transaction-coordination failure becomes. Exhaustive on
/// purpose. `PRODUCER_FENCED` is what current clients expect; requests from
/// before KIP-588 (`legacy_fencing`) get `INVALID_PRODUCER_EPOCH`, as Kafka
/// answers them.
pub fn txn_error(error: &crate::transactions::TxnError, legacy_fencing: bool) -> ResponseError {
    use crate::transactions::TxnError;
    match error {
        TxnError::NotCoordinator => ResponseError::NotCoordinator,
        TxnError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        TxnError::ConcurrentTransactions => ResponseError::ConcurrentTransactions,
        TxnError::ProducerFenced { .. } if legacy_fencing => ResponseError::InvalidProducerEpoch,
        TxnError::ProducerFenced { .. } => ResponseError::ProducerFenced,
        TxnError::InvalidProducerIdMapping => ResponseError::InvalidProducerIdMapping,
        TxnError::InvalidTxnState(_) => ResponseError::InvalidTxnState,
        TxnError::InvalidTransactionTimeout(_) => ResponseError::InvalidTransactionTimeout,
        TxnError::InvalidTransactionalId => ResponseError::InvalidRequest,
        TxnError::Internal(_) => ResponseError::UnknownServerError,
    }
}

// ----- authorization -----

/// The Kafka error a refused authorization becomes: the
/// `*_AUTHORIZATION_FAILED` of the resource's type. Exhaustive on purpose.
pub fn authorization_error(denied: &crate::security::authorizer::Denied) -> ResponseError {
    use fjord_metadata::ResourceType;
    match denied.resource_type {
        ResourceType::Topic => ResponseError::TopicAuthorizationFailed,
        ResourceType::Group => ResponseError::GroupAuthorizationFailed,
        ResourceType::Cluster => ResponseError::ClusterAuthorizationFailed,
        ResourceType::TransactionalId => ResponseError::TransactionalIdAuthorizationFailed,
        // Tokens created for other users are checked on the user resource,
        // and refused as delegation tokens are.
        ResourceType::DelegationToken | ResourceType::User => {
            ResponseError::DelegationTokenAuthorizationFailed
        }
    }
}

impl From<crate::security::authorizer::Denied> for ResponseError {
    fn from(denied: crate::security::authorizer::Denied) -> Self {
        authorization_error(&denied)
    }
}

/// The wire code of an authorization outcome (0: allowed).
pub(crate) fn authorization_code(outcome: &Result<(), crate::security::authorizer::Denied>) -> i16 {
    outcome
        .as_ref()
        .err()
        .map_or(0, |d| authorization_error(d).code())
}
