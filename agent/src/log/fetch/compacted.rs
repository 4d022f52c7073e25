//! Keeping this leader's memory tail in line with log compaction.
//!
//! Log compaction runs on whichever agent holds the partition's job shard and
//! swaps index entries in metadata; the leader's tail cache still holds the
//! batches as they were committed. Serving those is what Kafka allows (a
//! reader of a segment not yet cleaned sees every version), but it would keep
//! compaction out of sight of the readers of a leader for as long as the
//! batches stay in memory. So on every balancer tick the leader looks at the
//! compaction states of the compacted topics it leads (one range read per
//! topic) and drops a partition's tail whenever a clean of it finished since:
//! its reads then go through the index, to the cleaned chunks, and the tail
//! fills again with new commits.

use fjord_metadata::{TopicMeta, TopicPartition};

use crate::configs::topic::cleanup_policy_compacts;
use crate::log::{PartitionLogs, tail_key};

impl PartitionLogs {
    /// Drops the memory tail of each partition of `topics` this agent leads
    /// that log compaction cleaned since the last look.
    pub async fn follow_log_compaction(&self, topics: &[TopicMeta]) {
        let led = self.writers.partitions();
        for topic in topics
            .iter()
            .filter(|t| cleanup_policy_compacts(&t.configs))
        {
            if !led.iter().any(|p| p.topic_id == topic.id) {
                continue;
            }
            let states = match self.store.log_compaction_states_of_topic(topic.id).await {
                Ok(states) => states,
                Err(error) => {
                    tracing::debug!(topic = %topic.name, %error, "reading log compaction states failed");
                    continue;
                }
            };
            let mut seen = self.cleaned.lock().unwrap_or_else(|e| e.into_inner());
            for (index, state) in states {
                let partition = TopicPartition::new(topic.id, index);
                if !led.contains(&partition) {
                    continue;
                }
                if seen.insert(partition, state.cleaned_at_ms) != Some(state.cleaned_at_ms) {
                    self.tail.invalidate_partition(tail_key(partition));
                }
            }
        }
    }
}
