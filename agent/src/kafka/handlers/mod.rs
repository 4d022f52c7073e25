//! One handler per Kafka API: each turns a decoded request into a response using
//! the [`Broker`](crate::Broker). Handlers never fail a connection for a domain
//! error: those become error codes in the response. They know nothing of
//! frames, connections or dispatch (`kafka::dispatch` calls them); `Produce`
//! alone answers later, through the future [`produce::append`] returns.

pub(crate) mod acls;
pub(crate) mod alter_configs;
pub(crate) mod api_versions;
mod config_resources;
pub(crate) mod create_partitions;
pub(crate) mod create_topics;
pub(crate) mod delete_records;
pub(crate) mod delete_topics;
pub(crate) mod describe_cluster;
pub(crate) mod describe_configs;
pub(crate) mod describe_log_dirs;
pub(crate) mod describe_quorum;
pub(crate) mod describe_topic_partitions;
pub(crate) mod elect_leaders;
pub(crate) mod fetch;
pub(crate) mod incremental_alter_configs;
pub(crate) mod init_producer_id;
pub(crate) mod list_offsets;
pub(crate) mod metadata;
pub(crate) mod offset_for_leader_epoch;
pub(crate) mod produce;
pub(crate) mod reassignments;
mod registry;
pub(crate) mod scram_credentials;
pub(crate) mod transactions;

// ----- consumer groups -----

pub(crate) mod consumer_group_describe;
pub(crate) mod consumer_group_heartbeat;
pub(crate) mod delete_groups;
pub(crate) mod describe_groups;
pub(crate) mod find_coordinator;
pub(crate) mod heartbeat;
pub(crate) mod join_group;
pub(crate) mod leave_group;
pub(crate) mod list_groups;
pub(crate) mod offset_commit;
pub(crate) mod offset_delete;
pub(crate) mod offset_fetch;
pub(crate) mod sync_group;

/// What a handler may know about a request besides its body.
#[derive(Debug, Clone, Default)]
pub(crate) struct RequestContext {
    /// The client id of the request header.
    pub(crate) client_id: String,
    /// The peer's address, as Kafka shows it (`/127.0.0.1`).
    pub(crate) client_host: String,
    /// The connection's in-flight window, which its waiting produce requests
    /// count in (none: requests not from a Kafka connection).
    pub(crate) window: Option<std::sync::Arc<crate::log::produce::windows::ClientWindow>>,
    /// Who the client is (`User:ANONYMOUS` until it authenticates): the
    /// principal the authorizer checks ACLs for.
    pub(crate) principal: crate::security::Principal,
}
