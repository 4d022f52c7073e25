//! Consumer lag per group and partition, read from metadata: the group's
//! committed offsets against each partition's high watermark, with the member
//! that owns the partition in the group's stored assignment. `fjord groups lag`
//! prints it; Kafka tools compute the same from `DescribeGroups`, `OffsetFetch`
//! and `ListOffsets`.

use std::collections::{BTreeMap, BTreeSet};

use fjord_metadata::{MetadataError, MetadataStore};

use super::consumer_protocol;

/// One partition's lag for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset, if any.
    pub committed: Option<i64>,
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// `high_watermark - committed` (from the log start when nothing is
    /// committed).
    pub lag: i64,
    /// The member the stored assignment gives the partition to, with its client
    /// id.
    pub owner: Option<(String, String)>,
}

/// The lag of every partition of the topics `group` subscribes to or has
/// committed offsets for, ordered by topic and partition. Topics deleted since
/// are skipped.
pub async fn group_lag(
    store: &MetadataStore,
    group: &str,
) -> Result<Vec<PartitionLag>, MetadataError> {
    let committed: BTreeMap<(String, i32), i64> = store
        .fetch_offsets(group)
        .await?
        .into_iter()
        .map(|o| ((o.topic, o.partition), o.committed.offset))
        .collect();
    let mut topics: BTreeSet<String> = committed.keys().map(|(t, _)| t.clone()).collect();
    let mut owners: BTreeMap<(String, i32), (String, String)> = BTreeMap::new();
    if let Some(record) = store.load_group(group).await? {
        let protocol = record.protocol_name.clone().unwrap_or_default();
        for member in &record.members {
            if let Some(subscription) = member
                .protocols
                .iter()
                .find(|p| p.name == protocol)
                .and_then(|p| consumer_protocol::subscribed_topics(&p.metadata))
            {
                topics.extend(subscription);
            }
            for (topic, partition) in
                consumer_protocol::assigned_partitions(&member.assignment).unwrap_or_default()
            {
                owners.insert(
                    (topic, partition),
                    (member.member_id.clone(), member.client_id.clone()),
                );
            }
        }
    }
    let mut rows = Vec::new();
    for topic in topics {
        let meta = match store.describe_topic(&topic).await {
            Ok(meta) => meta,
            Err(MetadataError::UnknownTopic { .. }) => continue,
            Err(error) => return Err(error),
        };
        let states = store.partition_states(meta.id).await?;
        for (index, state) in states.iter().enumerate() {
            let partition = i32::try_from(index).unwrap_or(i32::MAX);
            let key = (topic.clone(), partition);
            let committed = committed.get(&key).copied();
            let from = committed.unwrap_or(state.log_start_offset);
            rows.push(PartitionLag {
                topic: topic.clone(),
                partition,
                committed,
                high_watermark: state.high_watermark,
                lag: (state.high_watermark - from).max(0),
                owner: owners.get(&key).cloned(),
            });
        }
    }
    Ok(rows)
}
