//! Which APIs, at which versions, this broker serves: the one table behind
//! `ApiVersions` and request validation.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::ApiVersion;

/// `(api, min, max)` for every API this broker serves. Each range lies inside the
/// codec's own range for that API (checked by a test).
const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    // v10 adds the new leader's endpoint to NOT_LEADER answers (KIP-951,
    // optional), v11 admits TRANSACTION_ABORTABLE (KIP-890); v12 is the
    // transaction protocol v2's (implicit partition adds), not served.
    (ApiKey::Produce, 3, 11),
    // v13 onwards names topics by id.
    (ApiKey::Fetch, 4, 17),
    // v8: earliest local (-4), v9: latest tiered (-5), v10: a timeout.
    (ApiKey::ListOffsets, 1, 10),
    // v13 adds a top-level error code (KIP-1102).
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 4),
    // SASL (answered by the connection, `kafka::connection::sasl`). After
    // SaslHandshake v0 the tokens travel as bare length-prefixed frames
    // instead of SaslAuthenticate requests (aiokafka still does this).
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    // v6 adds two-phase commit (KIP-939), not served.
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::DeleteRecords, 0, 2),
    // v0 and v1 have no `current_leader_epoch` to fence a stale client with.
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    // The codec knows DescribeConfigs from v1 (Kafka 4 dropped v0).
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    // v2 can ask for fenced brokers: none is ever fenced here.
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    // The codec knows DescribeLogDirs from v1 (Kafka 4 dropped v0).
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 0),
    (ApiKey::ListPartitionReassignments, 0, 0),
    // Refused with a clear error: there is no KRaft quorum.
    (ApiKey::DescribeQuorum, 0, 2),
    // Consumer groups (the classic protocol).
    // v5 admits TRANSACTION_ABORTABLE; v6 adds share groups' key type (2),
    // answered INVALID_REQUEST as any unknown key type.
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    // v9 commits under a consumer-protocol member's epoch.
    (ApiKey::OffsetCommit, 2, 9),
    // v10 names topics by id only.
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    // v6 adds an error message per group.
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    // The server-side consumer protocol (KIP-848).
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    // Transactions. AddPartitionsToTxn v4+ (batched, for brokers verifying
    // partitions) and v5 of EndTxn and TxnOffsetCommit (the transaction
    // protocol v2: an epoch bump per transaction) are KIP-890's, not served:
    // clients use the first protocol, as against a Kafka 4 cluster whose
    // `transaction.version` is 1. v4 of the others admits
    // TRANSACTION_ABORTABLE.
    (ApiKey::AddPartitionsToTxn, 0, 3),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 4),
    (ApiKey::TxnOffsetCommit, 0, 4),
    // The codec knows WriteTxnMarkers from v1 (Kafka 4 dropped v0).
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::ListTransactions, 0, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::DescribeProducers, 0, 0),
    // ACLs (Kafka 4.0 dropped v0 of each).
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
];

/// Every served API with its version range.
pub fn supported_versions() -> &'static [(ApiKey, i16, i16)] {
    SUPPORTED
}

/// The served ranges in wire form (`ApiVersions` and its fallback answer).
pub(crate) fn served() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|(api, min, max)| {
            let mut version = ApiVersion::default();
            version.api_key = *api as i16;
            version.min_version = *min;
            version.max_version = *max;
            version
        })
        .collect()
}

/// The served version range of `api`, if it is served.
pub(crate) fn range_of(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED
        .iter()
        .find(|(key, _, _)| *key == api)
        .map(|(_, min, max)| (*min, *max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_ranges_lie_inside_the_codec_ranges() {
        for (api, min, max) in SUPPORTED {
            let codec = api.valid_versions();
            assert!(min <= max, "{api:?}");
            assert!(codec.min <= *min && *max <= codec.max, "{api:?}: {codec:?}");
        }
    }
}
