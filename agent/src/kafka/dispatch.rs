//! Dispatch: one decoded request to its handler, in one match over the
//! request kind, and what the connection is to do with the answer ([`Reply`]).
//!
//! Which APIs reach here is decided before, by the version table
//! (`kafka::versions`), when the frame is decoded; every API of the table has
//! its arm here (the in-process test `every_served_api_is_answered` sends
//! each one).

use futures::future::BoxFuture;
use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use super::codec::ProtocolError;
use super::handlers::{self, RequestContext};
use crate::Broker;

/// What a handled request leaves the connection to do.
pub(crate) enum Reply {
    /// Send this response (after those of earlier requests).
    Now(Box<ResponseKind>),
    /// Send the response this resolves to, in request order; later requests
    /// may be read meanwhile (a produce awaiting its commit).
    Deferred(BoxFuture<'static, ResponseKind>),
    /// Send nothing (`acks=0`), but count the request in flight until this
    /// resolves, so it holds its place and its budget like any other.
    Silent(BoxFuture<'static, ()>),
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reply::Now(response) => f.debug_tuple("Now").field(response).finish(),
            Reply::Deferred(_) => f.write_str("Deferred"),
            Reply::Silent(_) => f.write_str("Silent"),
        }
    }
}

/// Whether `request` is handled while earlier requests of its connection are
/// still in flight. Only `Produce` is: its batches are appended (offsets
/// assigned) in arrival order at once, and its commit is awaited in flight, so
/// a client's pipelined produces share flushes. Every other request first
/// waits for those in flight and is then handled alone, so it sees their
/// effects (a `Fetch` after a produce reads it).
pub(crate) fn is_pipelined(request: &RequestKind) -> bool {
    matches!(request, RequestKind::Produce(_))
}

/// Hands `request` (of `api`, at `version`) to its handler.
pub(crate) async fn dispatch(
    broker: &Broker,
    context: &RequestContext,
    api: ApiKey,
    version: i16,
    request: RequestKind,
) -> Result<Reply, ProtocolError> {
    use handlers::*;
    // What the client may do: Kafka's ACLs when an authorizer is configured
    // (nothing is read per request without one).
    let access = broker
        .authorizer
        .session(&context.principal, &context.client_host)
        .await;
    let response = match request {
        RequestKind::Produce(request) => {
            let silent = request.acks == 0;
            let completion =
                produce::append(broker, request, version, context.window.as_ref(), &access).await;
            return Ok(if silent {
                Reply::Silent(Box::pin(async move {
                    completion.await;
                }))
            } else {
                Reply::Deferred(Box::pin(
                    async move { ResponseKind::Produce(completion.await) },
                ))
            });
        }
        RequestKind::Fetch(request) => {
            ResponseKind::Fetch(fetch::handle(broker, request, version, &access).await)
        }
        RequestKind::ListOffsets(request) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, request, version, &access).await)
        }
        RequestKind::Metadata(request) => {
            ResponseKind::Metadata(metadata::handle(broker, request, version, &access).await)
        }
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::CreateTopics(request) => ResponseKind::CreateTopics(
            create_topics::handle(broker, request, version, &access).await,
        ),
        RequestKind::DeleteTopics(request) => ResponseKind::DeleteTopics(
            delete_topics::handle(broker, request, version, &access).await,
        ),
        RequestKind::InitProducerId(request) => ResponseKind::InitProducerId(
            init_producer_id::handle(broker, request, version, &access).await,
        ),
        RequestKind::DeleteRecords(request) => ResponseKind::DeleteRecords(
            delete_records::handle(broker, request, version, &access).await,
        ),
        RequestKind::OffsetForLeaderEpoch(request) => ResponseKind::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(broker, request, version, &access).await,
        ),
        RequestKind::DescribeConfigs(request) => ResponseKind::DescribeConfigs(
            describe_configs::handle(broker, request, version, &access).await,
        ),
        RequestKind::AlterConfigs(request) => ResponseKind::AlterConfigs(
            alter_configs::handle(broker, request, version, &access).await,
        ),
        RequestKind::CreatePartitions(request) => ResponseKind::CreatePartitions(
            create_partitions::handle(broker, request, version, &access).await,
        ),
        RequestKind::IncrementalAlterConfigs(request) => ResponseKind::IncrementalAlterConfigs(
            incremental_alter_configs::handle(broker, request, version, &access).await,
        ),
        RequestKind::DescribeCluster(request) => ResponseKind::DescribeCluster(
            describe_cluster::handle(broker, request, version, &access).await,
        ),
        RequestKind::DescribeTopicPartitions(request) => ResponseKind::DescribeTopicPartitions(
            describe_topic_partitions::handle(broker, request, &access).await,
        ),
        RequestKind::DescribeLogDirs(request) => ResponseKind::DescribeLogDirs(
            describe_log_dirs::handle(broker, request, version, &access).await,
        ),
        RequestKind::ElectLeaders(request) => ResponseKind::ElectLeaders(
            elect_leaders::handle(broker, request, version, &access).await,
        ),
        RequestKind::AlterPartitionReassignments(request) => {
            ResponseKind::AlterPartitionReassignments(
                reassignments::alter(broker, request, &access).await,
            )
        }
        RequestKind::ListPartitionReassignments(request) => {
            ResponseKind::ListPartitionReassignments(
                reassignments::list(broker, request, &access).await,
            )
        }
        RequestKind::AlterUserScramCredentials(request) => ResponseKind::AlterUserScramCredentials(
            scram_credentials::alter(broker, request, &access).await,
        ),
        RequestKind::DescribeUserScramCredentials(request) => {
            ResponseKind::DescribeUserScramCredentials(
                scram_credentials::describe(broker, request, &access).await,
            )
        }
        RequestKind::DescribeQuorum(request) => {
            ResponseKind::DescribeQuorum(describe_quorum::handle(request, &access))
        }
        // Consumer groups.
        RequestKind::FindCoordinator(request) => ResponseKind::FindCoordinator(
            find_coordinator::handle(broker, request, version, &access).await,
        ),
        RequestKind::JoinGroup(request) => ResponseKind::JoinGroup(
            join_group::handle(broker, context, request, version, &access).await,
        ),
        RequestKind::SyncGroup(request) => {
            ResponseKind::SyncGroup(sync_group::handle(broker, request, version, &access).await)
        }
        RequestKind::Heartbeat(request) => {
            ResponseKind::Heartbeat(heartbeat::handle(broker, request, version, &access).await)
        }
        RequestKind::LeaveGroup(request) => {
            ResponseKind::LeaveGroup(leave_group::handle(broker, request, version, &access).await)
        }
        RequestKind::OffsetCommit(request) => ResponseKind::OffsetCommit(
            offset_commit::handle(broker, request, version, &access).await,
        ),
        RequestKind::OffsetFetch(request) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(broker, request, version, &access).await)
        }
        RequestKind::ListGroups(request) => {
            ResponseKind::ListGroups(list_groups::handle(broker, request, version, &access).await)
        }
        RequestKind::DescribeGroups(request) => ResponseKind::DescribeGroups(
            describe_groups::handle(broker, request, version, &access).await,
        ),
        RequestKind::DeleteGroups(request) => {
            ResponseKind::DeleteGroups(delete_groups::handle(broker, request, &access).await)
        }
        RequestKind::ConsumerGroupHeartbeat(request) => ResponseKind::ConsumerGroupHeartbeat(
            consumer_group_heartbeat::handle(broker, request, version, context, &access).await,
        ),
        RequestKind::ConsumerGroupDescribe(request) => ResponseKind::ConsumerGroupDescribe(
            consumer_group_describe::handle(broker, request, version, &access).await,
        ),
        RequestKind::AddPartitionsToTxn(request) => ResponseKind::AddPartitionsToTxn(
            transactions::add_partitions(broker, request, version, &access).await,
        ),
        RequestKind::AddOffsetsToTxn(request) => ResponseKind::AddOffsetsToTxn(
            transactions::add_offsets(broker, request, version, &access).await,
        ),
        RequestKind::EndTxn(request) => {
            ResponseKind::EndTxn(transactions::end(broker, request, version, &access).await)
        }
        RequestKind::TxnOffsetCommit(request) => ResponseKind::TxnOffsetCommit(
            transactions::txn_offset_commit(broker, request, &access).await,
        ),
        RequestKind::WriteTxnMarkers(request) => ResponseKind::WriteTxnMarkers(
            transactions::write_markers(broker, request, &access).await,
        ),
        RequestKind::ListTransactions(request) => {
            ResponseKind::ListTransactions(transactions::list(broker, request, &access).await)
        }
        RequestKind::DescribeTransactions(request) => ResponseKind::DescribeTransactions(
            transactions::describe(broker, request, &access).await,
        ),
        RequestKind::DescribeProducers(request) => ResponseKind::DescribeProducers(
            transactions::describe_producers(broker, request, &access).await,
        ),
        // ACLs.
        RequestKind::CreateAcls(request) => {
            ResponseKind::CreateAcls(acls::create(broker, &access, request).await)
        }
        RequestKind::DescribeAcls(request) => {
            ResponseKind::DescribeAcls(acls::describe(broker, &access, request).await)
        }
        RequestKind::DeleteAcls(request) => {
            ResponseKind::DeleteAcls(acls::delete(broker, &access, request).await)
        }
        RequestKind::OffsetDelete(request) => {
            ResponseKind::OffsetDelete(offset_delete::handle(broker, request, &access).await)
        }
        // `RequestKind` is `#[non_exhaustive]`, so this arm cannot go. The
        // version table admits no other API, so nothing else reaches it;
        // closing is the safe answer regardless.
        _ => return Err(ProtocolError::UnsupportedVersion { api, version }),
    };
    Ok(Reply::Now(Box::new(response)))
}
