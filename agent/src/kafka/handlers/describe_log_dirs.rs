//! `DescribeLogDirs` (v1–4): the partitions this agent leads, with their bytes
//! in the bucket.
//!
//! An agent keeps no log on its disk; its one "log dir" is the bucket,
//! reported as [`LOG_DIR`]. As a Kafka broker reports the replicas it holds,
//! an agent reports the partitions it leads, so a client that asks every
//! broker and adds the answers up (as admin tools do) counts each partition
//! once. A partition's size is the bytes of its index entries' chunks in the
//! bucket from its log start on (what `fjord storage-report` counts): what it
//! costs to store, not what it decompresses to. The offset lag is 0 (there is
//! no follower copy to lag) and the bucket's total and usable bytes (v4) are
//! unknown (`-1`).
//!
//! With an authorizer, as Kafka's: `DESCRIBE` on the cluster, else no log
//! dir is reported and (v3+) the error is `CLUSTER_AUTHORIZATION_FAILED`.

use std::collections::{HashMap, HashSet};

use fjord_metadata::{MetadataError, TopicMeta, TopicPartition};
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::kafka::errors::{authorization_code, metadata_error};
use crate::maintenance::report::partition_storage;
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;

/// The name an agent's one log dir is reported under.
const LOG_DIR: &str = "bucket";

pub(crate) async fn handle(
    broker: &Broker,
    request: DescribeLogDirsRequest,
    version: i16,
    access: &Session<'_>,
) -> DescribeLogDirsResponse {
    let mut response = DescribeLogDirsResponse::default();
    let allowed = access.cluster(AclOperation::Describe);
    if allowed.is_err() {
        if version >= 3 {
            response.error_code = authorization_code(&allowed);
        }
        return response;
    }
    let mut result = DescribeLogDirsResult::default();
    result.log_dir = StrBytes::from_static_str(LOG_DIR);
    result.total_bytes = -1;
    result.usable_bytes = -1;
    match describe(broker, request).await {
        Ok(topics) => result.topics = topics,
        Err(error) => {
            tracing::warn!(%error, "describing log dirs failed");
            result.error_code = metadata_error(&error).code();
        }
    }
    response.results.push(result);
    response
}

async fn describe(
    broker: &Broker,
    request: DescribeLogDirsRequest,
) -> Result<Vec<DescribeLogDirsTopic>, MetadataError> {
    // The partitions asked about, by topic name (`None`: all of them).
    let wanted: Option<HashMap<String, HashSet<i32>>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions.into_iter().collect()))
            .collect()
    });
    let mut topics: Vec<TopicMeta> = broker.store.list_topics().await?;
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    let mut described = Vec::new();
    for topic in topics {
        let asked = match &wanted {
            None => None,
            Some(wanted) => match wanted.get(&topic.name) {
                Some(partitions) => Some(partitions),
                None => continue,
            },
        };
        let mut partitions = Vec::new();
        for index in 0..topic.partition_count {
            if asked.is_some_and(|asked| !asked.contains(&index)) {
                continue;
            }
            if broker
                .logs
                .leads(TopicPartition::new(topic.id, index))
                .is_none()
            {
                continue;
            }
            let storage = partition_storage(&broker.store, &topic, index).await?;
            let mut partition = DescribeLogDirsPartition::default();
            partition.partition_index = index;
            partition.partition_size = i64::try_from(storage.bytes).unwrap_or(i64::MAX);
            partitions.push(partition);
        }
        if !partitions.is_empty() {
            let mut entry = DescribeLogDirsTopic::default();
            entry.name = TopicName(StrBytes::from_string(topic.name));
            entry.partitions = partitions;
            described.push(entry);
        }
    }
    Ok(described)
}
