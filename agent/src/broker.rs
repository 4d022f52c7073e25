//! What every request handler shares.

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
    /// `socket.request.max.bytes`: the largest request frame accepted.
    pub max_request_bytes: usize,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self {
            auto_create_topics: true,
            default_partitions: 1,
            max_request_bytes: 100 * 1024 * 1024,
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
