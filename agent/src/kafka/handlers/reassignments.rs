//! `AlterPartitionReassignments` (v0) and `ListPartitionReassignments` (v0),
//! mapped onto moving leadership between agents.
//!
//! A partition has one copy, in the bucket, so a replica set means its first
//! element: the agent the leader should move to. Altering records that choice
//! as the partition's leader placement (`fjord_metadata::LeaderPlacement`);
//! every agent's balancer reads it within a tick, the current leader drains
//! and releases the partition, and the chosen agent takes it over. Every
//! broker id named must be a registered agent (`INVALID_REPLICA_ASSIGNMENT`
//! otherwise, as Kafka answers for an unknown broker). `replicas: null`
//! cancels: the placement goes and the partition returns to its hashed
//! placement; with none to cancel, `NO_REASSIGNMENT_IN_PROGRESS`.
//!
//! A reassignment is listed while the partition's leader is not yet the chosen
//! agent (the chosen agent is adding, the current leader removing), as Kafka
//! lists one until its new replicas are in sync. One whose agent is not live
//! stays listed until it comes back.

use std::collections::{BTreeMap, HashMap, HashSet};

use fjord_metadata::{MetadataError, TopicPartition};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use kafka_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::kafka::errors::{authorization_error, metadata_error};
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;

pub(crate) async fn alter(
    broker: &Broker,
    request: AlterPartitionReassignmentsRequest,
    access: &Session<'_>,
) -> AlterPartitionReassignmentsResponse {
    let mut response = AlterPartitionReassignmentsResponse::default();
    // As Kafka: `ALTER` on the cluster, else the request and every partition
    // are `CLUSTER_AUTHORIZATION_FAILED`.
    if let Err(denied) = access.cluster(AclOperation::Alter) {
        let error = authorization_error(&denied);
        response.error_code = error.code();
        response.error_message = Some(StrBytes::from_string(denied.to_string()));
        for requested in request.topics {
            let mut answered = ReassignableTopicResponse::default();
            answered.name = requested.name;
            for partition in requested.partitions {
                let mut result = ReassignablePartitionResponse::default();
                result.partition_index = partition.partition_index;
                result.error_code = error.code();
                answered.partitions.push(result);
            }
            response.responses.push(answered);
        }
        return response;
    }
    let agents: HashSet<i32> = match broker.store.list_agents().await {
        Ok(agents) => agents.iter().map(|agent| agent.node_id).collect(),
        Err(error) => {
            response.error_code = metadata_error(&error).code();
            response.error_message = Some(StrBytes::from_string(error.to_string()));
            return response;
        }
    };
    for requested in request.topics {
        let topic = broker.store.describe_topic(requested.name.0.as_str()).await;
        let mut answered = ReassignableTopicResponse::default();
        answered.name = requested.name.clone();
        for partition in requested.partitions {
            let (error, message) = match &topic {
                Err(error) => (Some(metadata_error(error)), Some(error.to_string())),
                Ok(topic) if !(0..topic.partition_count).contains(&partition.partition_index) => (
                    Some(ResponseError::UnknownTopicOrPartition),
                    Some(format!(
                        "topic {} has no partition {}",
                        topic.name, partition.partition_index
                    )),
                ),
                Ok(topic) => {
                    let tp = TopicPartition::new(topic.id, partition.partition_index);
                    alter_one(broker, &agents, tp, partition.replicas).await
                }
            };
            let mut result = ReassignablePartitionResponse::default();
            result.partition_index = partition.partition_index;
            result.error_code = error.map_or(0, |e| e.code());
            result.error_message = message.map(StrBytes::from_string);
            answered.partitions.push(result);
        }
        response.responses.push(answered);
    }
    response
}

/// Records (or cancels) one partition's reassignment: the error to answer and
/// its message.
async fn alter_one(
    broker: &Broker,
    agents: &HashSet<i32>,
    partition: TopicPartition,
    replicas: Option<Vec<BrokerId>>,
) -> (Option<ResponseError>, Option<String>) {
    let target = match replicas {
        None => None,
        Some(replicas) => {
            let ids: Vec<i32> = replicas.iter().map(|id| id.0).collect();
            if let Err(message) = check_replicas(&ids, agents) {
                return (Some(ResponseError::InvalidReplicaAssignment), Some(message));
            }
            ids.first().copied()
        }
    };
    match broker.store.set_leader_placement(partition, target).await {
        Ok(None) if target.is_none() => (
            Some(ResponseError::NoReassignmentInProgress),
            Some(format!(
                "no reassignment of partition {partition} to cancel"
            )),
        ),
        Ok(_) => {
            tracing::info!(%partition, ?target, "leader placement changed");
            (None, None)
        }
        Err(MetadataError::UnknownPartition { .. }) => (
            Some(ResponseError::UnknownTopicOrPartition),
            Some(format!("partition {partition} does not exist")),
        ),
        Err(error) => (Some(metadata_error(&error)), Some(error.to_string())),
    }
}

/// A replica set is a non-empty list of distinct registered agents.
fn check_replicas(replicas: &[i32], agents: &HashSet<i32>) -> Result<(), String> {
    if replicas.is_empty() {
        return Err("the replica list is empty; null cancels a reassignment".to_owned());
    }
    let mut seen = HashSet::new();
    for id in replicas {
        if !seen.insert(*id) {
            return Err(format!("broker {id} is named twice"));
        }
        if !agents.contains(id) {
            return Err(format!("broker {id} is not a registered agent"));
        }
    }
    Ok(())
}

pub(crate) async fn list(
    broker: &Broker,
    request: ListPartitionReassignmentsRequest,
    access: &Session<'_>,
) -> ListPartitionReassignmentsResponse {
    let mut response = ListPartitionReassignmentsResponse::default();
    // As Kafka: `DESCRIBE` on the cluster.
    if let Err(denied) = access.cluster(AclOperation::Describe) {
        response.error_code = authorization_error(&denied).code();
        response.error_message = Some(StrBytes::from_string(denied.to_string()));
        return response;
    }
    match ongoing(broker, request).await {
        Ok(topics) => response.topics = topics,
        Err(error) => {
            response.error_code = metadata_error(&error).code();
            response.error_message = Some(StrBytes::from_string(error.to_string()));
        }
    }
    response
}

/// The reassignments not yet done, by topic name, filtered by the request's
/// topics and partitions when it names some.
async fn ongoing(
    broker: &Broker,
    request: ListPartitionReassignmentsRequest,
) -> Result<Vec<OngoingTopicReassignment>, MetadataError> {
    let placements = broker.store.leader_placements().await?;
    if placements.is_empty() {
        return Ok(Vec::new());
    }
    let wanted: Option<HashMap<String, HashSet<i32>>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| {
                (
                    t.name.0.to_string(),
                    t.partition_indexes.into_iter().collect(),
                )
            })
            .collect()
    });
    let topics: HashMap<_, _> = broker
        .store
        .list_topics()
        .await?
        .into_iter()
        .map(|topic| (topic.id, topic))
        .collect();
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for (partition, placement) in placements {
        let Some(topic) = topics.get(&partition.topic_id) else {
            continue;
        };
        if let Some(wanted) = &wanted
            && !wanted
                .get(&topic.name)
                .is_some_and(|p| p.contains(&partition.partition))
        {
            continue;
        }
        let state = broker.store.partition_state(partition).await?;
        let leader = state.leader.filter(|l| broker.cluster.is_live(*l));
        if leader == Some(placement.node_id) {
            continue;
        }
        let mut entry = OngoingPartitionReassignment::default();
        entry.partition_index = partition.partition;
        entry.replicas = std::iter::once(placement.node_id)
            .chain(leader)
            .map(BrokerId)
            .collect();
        entry.adding_replicas = vec![BrokerId(placement.node_id)];
        entry.removing_replicas = leader.into_iter().map(BrokerId).collect();
        by_topic.entry(topic.name.clone()).or_default().push(entry);
    }
    Ok(by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            let mut topic = OngoingTopicReassignment::default();
            topic.name = TopicName(StrBytes::from_string(name));
            topic.partitions = partitions;
            topic
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replica_sets_name_distinct_registered_agents() {
        let agents: HashSet<i32> = [1, 2, 3].into_iter().collect();
        assert!(check_replicas(&[2], &agents).is_ok());
        assert!(check_replicas(&[3, 1, 2], &agents).is_ok());
        assert!(check_replicas(&[], &agents).is_err());
        assert!(check_replicas(&[2, 2], &agents).is_err());
        assert!(check_replicas(&[1, 9], &agents).is_err());
    }
}
