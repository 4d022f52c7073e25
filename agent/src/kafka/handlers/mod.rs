//! One handler per Kafka API: each turns a decoded request into a response using
//! the [`Broker`]. Handlers never fail a connection for a domain error: those
//! become error codes in the response.

mod alter_configs;
pub(crate) mod api_versions;
mod config_resources;
mod create_partitions;
mod create_topics;
mod delete_records;
mod delete_topics;
mod describe_cluster;
mod describe_configs;
mod fetch;
mod incremental_alter_configs;
mod init_producer_id;
mod list_offsets;
mod metadata;
mod offset_for_leader_epoch;
pub(crate) mod produce;
mod registry;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use super::listener::Close;
use crate::Broker;

pub(crate) async fn handle(
    broker: &Broker,
    api: ApiKey,
    version: i16,
    request: RequestKind,
) -> Result<ResponseKind, Close> {
    Ok(match request {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::Metadata(request) => {
            ResponseKind::Metadata(metadata::handle(broker, request, version).await)
        }
        RequestKind::CreateTopics(request) => {
            ResponseKind::CreateTopics(create_topics::handle(broker, request, version).await)
        }
        RequestKind::DeleteTopics(request) => {
            ResponseKind::DeleteTopics(delete_topics::handle(broker, request, version).await)
        }
        RequestKind::Fetch(request) => {
            ResponseKind::Fetch(fetch::handle(broker, request, version).await)
        }
        RequestKind::InitProducerId(request) => {
            ResponseKind::InitProducerId(init_producer_id::handle(broker, request).await)
        }
        RequestKind::ListOffsets(request) => {
            ResponseKind::ListOffsets(list_offsets::handle(broker, request, version).await)
        }
        RequestKind::CreatePartitions(request) => ResponseKind::CreatePartitions(
            create_partitions::handle(broker, request, version).await,
        ),
        RequestKind::DescribeConfigs(request) => {
            ResponseKind::DescribeConfigs(describe_configs::handle(broker, request, version).await)
        }
        RequestKind::AlterConfigs(request) => {
            ResponseKind::AlterConfigs(alter_configs::handle(broker, request, version).await)
        }
        RequestKind::IncrementalAlterConfigs(request) => ResponseKind::IncrementalAlterConfigs(
            incremental_alter_configs::handle(broker, request, version).await,
        ),
        RequestKind::DescribeCluster(request) => {
            ResponseKind::DescribeCluster(describe_cluster::handle(broker, request, version).await)
        }
        RequestKind::DeleteRecords(request) => {
            ResponseKind::DeleteRecords(delete_records::handle(broker, request, version).await)
        }
        RequestKind::OffsetForLeaderEpoch(request) => ResponseKind::OffsetForLeaderEpoch(
            offset_for_leader_epoch::handle(broker, request, version).await,
        ),
        // The version table admits no other API, so nothing else reaches here;
        // closing is the safe answer regardless.
        _ => return Err(Close::UnsupportedVersion { api, version }),
    })
}

// ----- consumer groups -----

mod delete_groups;
mod describe_groups;
mod find_coordinator;
mod heartbeat;
mod join_group;
mod leave_group;
mod list_groups;
mod offset_commit;
mod offset_delete;
mod offset_fetch;
mod sync_group;

/// What a handler may know about a request besides its body.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestContext {
    /// The client id of the request header.
    pub(crate) client_id: String,
    /// The peer's address, as Kafka shows it (`/127.0.0.1`).
    pub(crate) client_host: String,
}

/// Dispatches consumer-group APIs (which need the [`RequestContext`]) and hands
/// every other request to [`handle`].
pub(crate) async fn handle_with_context(
    broker: &Broker,
    context: &RequestContext,
    api: ApiKey,
    version: i16,
    request: RequestKind,
) -> Result<ResponseKind, Close> {
    Ok(match request {
        RequestKind::FindCoordinator(request) => {
            ResponseKind::FindCoordinator(find_coordinator::handle(broker, request, version).await)
        }
        RequestKind::JoinGroup(request) => {
            ResponseKind::JoinGroup(join_group::handle(broker, context, request, version).await)
        }
        RequestKind::SyncGroup(request) => {
            ResponseKind::SyncGroup(sync_group::handle(broker, request, version).await)
        }
        RequestKind::Heartbeat(request) => {
            ResponseKind::Heartbeat(heartbeat::handle(broker, request, version).await)
        }
        RequestKind::LeaveGroup(request) => {
            ResponseKind::LeaveGroup(leave_group::handle(broker, request, version).await)
        }
        RequestKind::OffsetCommit(request) => {
            ResponseKind::OffsetCommit(offset_commit::handle(broker, request, version).await)
        }
        RequestKind::OffsetFetch(request) => {
            ResponseKind::OffsetFetch(offset_fetch::handle(broker, request, version).await)
        }
        RequestKind::ListGroups(request) => {
            ResponseKind::ListGroups(list_groups::handle(broker, request, version).await)
        }
        RequestKind::DescribeGroups(request) => {
            ResponseKind::DescribeGroups(describe_groups::handle(broker, request, version).await)
        }
        RequestKind::DeleteGroups(request) => {
            ResponseKind::DeleteGroups(delete_groups::handle(broker, request).await)
        }
        RequestKind::OffsetDelete(request) => {
            ResponseKind::OffsetDelete(offset_delete::handle(broker, request).await)
        }
        other => return handle(broker, api, version, other).await,
    })
}
