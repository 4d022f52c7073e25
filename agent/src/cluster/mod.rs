//! Many agents: who is alive ([`membership`]) and who should lead which
//! partition or coordinator shard ([`placement`]). Both are leaves: they read
//! nothing but their inputs, and the write path sees them only through the
//! [`Placement`] trait. The loop that moves leadership to match them is the
//! [`balancer`](crate::balancer), above the logs and the group coordinator.
//!
//! Correctness never rests on these views agreeing: every commit is fenced by
//! the partition's epoch, so two agents that both believe they lead can never
//! both write.

use std::time::Duration;

use fjord_metadata::TopicPartition;

pub mod membership;
pub mod placement;

pub use membership::{ClusterView, LiveAgent, Liveness, OWN_BEATS_TO_JUDGE};
pub use placement::{COORDINATOR_SHARD_NAMESPACE, placement};

/// Timings of membership and balancing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterSettings {
    /// An agent whose heartbeat has not moved for this long is dead.
    pub lease_timeout: Duration,
    /// How often placement is checked.
    pub balance_interval: Duration,
    /// How long a graceful shutdown waits for the partitions it leads to
    /// commit what they accepted before it gives them up.
    pub hand_off_timeout: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            lease_timeout: Duration::from_millis(2_000),
            balance_interval: Duration::from_millis(250),
            hand_off_timeout: Duration::from_secs(20),
        }
    }
}

/// What the write path needs to know about placement and liveness.
pub trait Placement: Send + Sync + std::fmt::Debug {
    /// Whether this agent should lead `partition` of a topic with
    /// `partition_count` partitions.
    fn owns(&self, partition: TopicPartition, partition_count: i32) -> bool;
    /// Whether agent `node_id` is judged live.
    fn is_live(&self, node_id: i32) -> bool;
    /// This agent's node id.
    fn node_id(&self) -> i32;
}

/// One agent alone: it owns every partition, and no other agent is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoleAgent(pub i32);

impl Placement for SoleAgent {
    fn owns(&self, _: TopicPartition, _: i32) -> bool {
        true
    }

    fn is_live(&self, node_id: i32) -> bool {
        node_id == self.0
    }

    fn node_id(&self) -> i32 {
        self.0
    }
}
