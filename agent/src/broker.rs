//! What every request handler shares.

use std::time::Duration;

use fjord_metadata::{MetadataStore, NewTopic, TopicMeta};

/// Broker-wide settings, named after their Apache Kafka equivalents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerSettings {
    /// `auto.create.topics.enable`: create unknown topics named in `Metadata`
    /// requests that allow it.
    pub auto_create_topics: bool,
    /// `num.partitions`: partitions of auto-created topics and of `CreateTopics`
    /// requests that leave the count to the broker.
    pub default_partitions: i32,
    /// `socket.request.max.bytes`: the largest request frame accepted; a
    /// longer one closes the connection before its body is read.
    pub max_request_bytes: usize,
    /// `connections.max.idle.ms`: a connection that has nothing in flight and
    /// sends no complete request for this long is closed (Kafka's default,
    /// 10 minutes). Bytes of a request that never completes do not count, so
    /// a client that trickles a frame cannot hold its share of
    /// [`queued_max_request_bytes`](Self::queued_max_request_bytes) past it.
    pub connections_max_idle: Duration,
    /// `queued.max.request.bytes`: one budget, shared by every connection, of
    /// request bytes read and not yet answered. A frame takes its share once
    /// its length prefix is read and before its body is, and gives it back once
    /// its response is written (or it is dropped); while the budget is spent,
    /// connections stop reading. A frame larger than the whole budget waits
    /// for all of it.
    ///
    /// Kafka's default is unbounded; here it is 500 MiB: five requests of the
    /// largest size (`socket.request.max.bytes`) at once, so that request
    /// memory is bounded by this setting instead of by connections × frame
    /// size × requests in flight.
    pub queued_max_request_bytes: usize,
    /// `fetch.max.bytes`: the most record bytes one `Fetch` response carries,
    /// whatever the request's `max_bytes` asks (Kafka's default, 55 MiB). As
    /// in Kafka, the first batch found is returned whole even when it is
    /// larger, so a consumer always makes progress.
    pub fetch_max_bytes: usize,
    /// Broker configs behind topic configs' defaults that this agent sets to
    /// other than Kafka's default (`log.retention.ms`, `log.retention.bytes`),
    /// by name: a topic without an override of `retention.ms` has the value of
    /// `log.retention.ms` here, as `DescribeConfigs` reports
    /// (`STATIC_BROKER_CONFIG`).
    pub static_log_configs: std::collections::BTreeMap<&'static str, String>,
    /// The authorizer's settings (`authorizer.class.name`, `super.users`,
    /// `allow.everyone.if.no.acl.found`), which [`Broker::authorizer`] runs.
    pub authorizer: crate::security::authorizer::AuthorizerSettings,
    /// The Kafka listener's security protocol (`PLAINTEXT`, `SSL`,
    /// `SASL_PLAINTEXT`, `SASL_SSL`). The TLS half is done before a
    /// connection's first request is read (`kafka::serve_tls`); a `SASL_*`
    /// protocol means the connection must authenticate before anything else.
    pub security_protocol: crate::security::SecurityProtocol,
    /// `sasl.enabled.mechanisms` of a `SASL_PLAINTEXT` or `SASL_SSL` listener:
    /// connections authenticate with one of these before anything but
    /// `ApiVersions` is served. Empty: the listener has no SASL.
    pub sasl_mechanisms: Vec<crate::security::sasl::Mechanism>,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            auto_create_topics: true,
            default_partitions: 1,
            max_request_bytes: 100 * 1024 * 1024,
            connections_max_idle: Duration::from_millis(600_000),
            queued_max_request_bytes: 500 * 1024 * 1024,
            fetch_max_bytes: 57_671_680,
            static_log_configs: std::collections::BTreeMap::new(),
            authorizer: crate::security::authorizer::AuthorizerSettings::default(),
            security_protocol: crate::security::SecurityProtocol::Plaintext,
            sasl_mechanisms: Vec::new(),
        }
    }
}

/// This agent as the Kafka protocol sees it.
#[derive(Debug, Clone)]
pub struct Broker {
    /// The metadata store.
    pub store: MetadataStore,
    /// This agent's node id (from its registration).
    pub node_id: i32,
    /// The host clients are told to connect to.
    pub advertised_host: String,
    /// The port clients are told to connect to.
    pub advertised_port: u16,
    /// The cluster id reported to clients.
    pub cluster_id: String,
    /// Settings.
    pub settings: BrokerSettings,
    /// The partition logs this agent writes and reads.
    pub logs: std::sync::Arc<crate::log::PartitionLogs>,
    /// The live agents and where partitions belong, as this agent sees them.
    pub cluster: std::sync::Arc<crate::cluster::ClusterView>,
    /// The consumer-group coordinator.
    pub groups: std::sync::Arc<crate::groups::GroupCoordinator>,
    /// The transaction coordinator.
    pub transactions: std::sync::Arc<crate::transactions::TransactionCoordinator>,
    /// Authorizes requests by the ACLs in metadata (off by default:
    /// everything is allowed).
    pub authorizer: std::sync::Arc<crate::security::authorizer::Authorizer>,
}

impl Broker {
    /// Creates `name` with the default partition count, or returns it if another
    /// request created it first.
    pub async fn auto_create_topic(
        &self,
        name: &str,
    ) -> Result<TopicMeta, fjord_metadata::MetadataError> {
        match self
            .store
            .create_topic(NewTopic::new(name, self.settings.default_partitions))
            .await
        {
            Err(fjord_metadata::MetadataError::TopicAlreadyExists { .. }) => {
                self.store.describe_topic(name).await
            }
            other => other,
        }
    }
}
