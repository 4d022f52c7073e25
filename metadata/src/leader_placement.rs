//! Leader placements an operator chose: `AlterPartitionReassignments` names
//! the agent that should lead a partition, instead of the one the agents'
//! shared hashing places it on.
//!
//! Fjord keeps one copy of each partition, in the bucket; a Kafka replica set
//! has no meaning beyond its first element, the preferred leader. So a
//! reassignment to replicas `[n, …]` is recorded as "place the leader on
//! agent `n`" under `("leader_placement", topic_id, partition)` →
//! [`LeaderPlacement`], and every agent's balancer reads these records and
//! moves leadership to match (the current leader drains and releases the
//! partition, the chosen agent takes it with a new epoch). The record stays
//! after the move, as a finished Kafka reassignment leaves its new replica
//! set; cancelling one (`replicas: null`) removes it, and the partition goes
//! back to its hashed placement.
//!
//! # Invariants
//!
//! - A placement names a partition that existed when it was written; deleting
//!   the topic removes its placements.
//! - Placements only steer the balancer: leadership still changes only by
//!   epoch-fenced takeovers, so agents that disagree about placements (one has
//!   not read the latest yet) never both write a partition.

use serde::{Deserialize, Serialize};

use crate::MetadataError;
use crate::codec::{self, Versioned};
use crate::kv::RangeOptions;
use crate::model::*;
use crate::store::{MetadataStore, read, write};

/// The agent an operator placed a partition's leader on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaderPlacement {
    /// The node id of the agent that should lead the partition.
    pub node_id: i32,
    /// When it was written, by the store's clock (informational).
    pub placed_at_ms: i64,
}

impl Versioned for LeaderPlacement {
    const WHAT: &'static str = "leader placement";
    const VERSION: u8 = 1;
}

impl MetadataStore {
    /// Places the leader of `partition` on agent `node_id` (`Some`), or removes
    /// its placement (`None`). Returns the placement it replaced, if any.
    /// Fails with `UnknownTopic` / `UnknownPartition` when the partition does
    /// not exist.
    pub async fn set_leader_placement(
        &self,
        partition: TopicPartition,
        node_id: Option<i32>,
    ) -> Result<Option<LeaderPlacement>, MetadataError> {
        let keys = self.keyspace();
        let placed_at_ms = self.now_millis();
        self.database()
            .run(|txn, _| async move {
                let topic: Option<TopicMeta> = read(&txn, &keys.topic(partition.topic_id)).await?;
                let topic = topic.ok_or_else(|| MetadataError::UnknownTopic {
                    topic: partition.topic_id.to_string(),
                })?;
                if partition.partition < 0 || partition.partition >= topic.partition_count {
                    return Err(MetadataError::UnknownPartition { partition });
                }
                let key = keys.leader_placement(partition);
                let before: Option<LeaderPlacement> = read(&txn, &key).await?;
                match node_id {
                    Some(node_id) => write(
                        &txn,
                        &key,
                        &LeaderPlacement {
                            node_id,
                            placed_at_ms,
                        },
                    ),
                    None => txn.clear(&key),
                }
                Ok(before)
            })
            .await
    }

    /// Every leader placement, by partition (one range read: the balancer
    /// reads them each tick).
    pub async fn leader_placements(
        &self,
    ) -> Result<Vec<(TopicPartition, LeaderPlacement)>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let pairs = txn
                    .get_prefix(&keys.leader_placements(), RangeOptions::default())
                    .await?;
                let mut placements = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    let partition =
                        keys.partition_of_leader_placement(&pair.key)
                            .ok_or_else(|| MetadataError::Corrupt {
                                what: LeaderPlacement::WHAT,
                                detail: "malformed leader placement key".into(),
                            })?;
                    placements.push((partition, codec::decode(&pair.value)?));
                }
                Ok(placements)
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::NewTopic;

    #[tokio::test]
    async fn placements_are_set_listed_replaced_removed_and_go_with_their_topic() {
        let store = crate::open("memory://").await.unwrap();
        let orders = store
            .create_topic(NewTopic::new("orders", 3))
            .await
            .unwrap();
        let other = store.create_topic(NewTopic::new("other", 1)).await.unwrap();
        let p1 = TopicPartition::new(orders.id, 1);
        let q0 = TopicPartition::new(other.id, 0);

        assert_eq!(store.set_leader_placement(p1, Some(7)).await.unwrap(), None);
        assert_eq!(store.set_leader_placement(q0, Some(3)).await.unwrap(), None);
        let replaced = store.set_leader_placement(p1, Some(9)).await.unwrap();
        assert_eq!(replaced.map(|p| p.node_id), Some(7));
        let mut listed: Vec<(TopicPartition, i32)> = store
            .leader_placements()
            .await
            .unwrap()
            .into_iter()
            .map(|(tp, p)| (tp, p.node_id))
            .collect();
        listed.sort();
        let mut expected = vec![(p1, 9), (q0, 3)];
        expected.sort();
        assert_eq!(listed, expected);

        // Removing one that is not there says so; removing one that is does.
        let p0 = TopicPartition::new(orders.id, 0);
        assert_eq!(store.set_leader_placement(p0, None).await.unwrap(), None);
        let removed = store.set_leader_placement(q0, None).await.unwrap();
        assert_eq!(removed.map(|p| p.node_id), Some(3));

        // Partitions that do not exist are refused.
        let beyond = TopicPartition::new(orders.id, 3);
        assert!(matches!(
            store.set_leader_placement(beyond, Some(1)).await,
            Err(MetadataError::UnknownPartition { .. })
        ));
        let unknown = TopicPartition::new(TopicId(uuid::Uuid::from_u128(42)), 0);
        assert!(matches!(
            store.set_leader_placement(unknown, Some(1)).await,
            Err(MetadataError::UnknownTopic { .. })
        ));

        // Deleting the topic removes its placements.
        store.delete_topic("orders").await.unwrap();
        assert!(store.leader_placements().await.unwrap().is_empty());
    }
}
