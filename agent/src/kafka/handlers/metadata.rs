//! `Metadata`: the live agents as brokers, topics and partitions with their
//! leaders: the agent recorded in metadata while it is live, else the agent the
//! partition is placed on (which takes it over).
//!
//! With an authorizer, as Kafka's: every topic needs `DESCRIBE`. Listing all
//! topics leaves out the others; a topic asked for by name or id without it
//! is `TOPIC_AUTHORIZATION_FAILED` (whether it exists is not told).
//! Auto-creating a topic needs `CREATE` on the cluster or on the topic, else
//! it is `TOPIC_AUTHORIZATION_FAILED`. Authorized operations (v8+) are
//! reported when asked for.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::kafka::errors::metadata_error;
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, MetadataError, PartitionState, ResourceType, TopicMeta};

/// The leader clients are told about for partition `index` of `topic`: the
/// agent metadata names while it is live, else the one the partition is placed
/// on (which takes it over).
pub(super) fn advertised_leader(
    broker: &Broker,
    topic: &TopicMeta,
    index: i32,
    state: &PartitionState,
) -> i32 {
    state
        .leader
        .filter(|leader| broker.cluster.is_live(*leader))
        .unwrap_or_else(|| {
            broker.cluster.owner(
                fjord_metadata::TopicPartition::new(topic.id, index),
                topic.partition_count,
            )
        })
}

fn topic_error(
    name: Option<TopicName>,
    topic_id: uuid::Uuid,
    error: ResponseError,
) -> MetadataResponseTopic {
    let mut topic = MetadataResponseTopic::default();
    topic.name = name;
    topic.topic_id = topic_id;
    topic.error_code = error.code();
    topic
}

async fn describe(broker: &Broker, topic: &TopicMeta, version: i16) -> MetadataResponseTopic {
    let mut response = MetadataResponseTopic::default();
    response.name = Some(TopicName(StrBytes::from_string(topic.name.clone())));
    if version >= 10 {
        response.topic_id = topic.id.0;
    }
    let states = match broker.store.partition_states(topic.id).await {
        Ok(states) => states,
        Err(error) => {
            response.error_code = metadata_error(&error).code();
            return response;
        }
    };
    response.partitions = states
        .iter()
        .enumerate()
        .map(|(index, state)| {
            let index = i32::try_from(index).unwrap_or(i32::MAX);
            let leader = BrokerId(advertised_leader(broker, topic, index, state));
            let mut partition = MetadataResponsePartition::default();
            partition.partition_index = index;
            partition.leader_id = leader;
            if version >= 7 {
                partition.leader_epoch = state.leader_epoch;
            }
            partition.replica_nodes = vec![leader];
            partition.isr_nodes = vec![leader];
            partition
        })
        .collect();
    response
}

pub(crate) async fn handle(
    broker: &Broker,
    request: MetadataRequest,
    version: i16,
    access: &Session<'_>,
) -> MetadataResponse {
    let mut response = MetadataResponse::default();
    response.brokers = broker
        .cluster
        .live()
        .into_iter()
        .map(|agent| {
            let mut advertised = MetadataResponseBroker::default();
            advertised.node_id = BrokerId(agent.node_id);
            advertised.host = StrBytes::from_string(agent.host);
            advertised.port = i32::from(agent.port);
            advertised
        })
        .collect();
    if version >= 2 {
        response.cluster_id = Some(StrBytes::from_string(broker.cluster_id.clone()));
    }
    if version >= 1 {
        response.controller_id = BrokerId(broker.node_id);
    }
    // Kafka's `ClusterAuthorizedOperations` (v8–10): what the client may do
    // to the cluster, if it may describe it.
    if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
        response.cluster_authorized_operations = if access.authorize_cluster(AclOperation::Describe)
        {
            access
                .authorized_operations(ResourceType::Cluster, fjord_metadata::CLUSTER_RESOURCE_NAME)
        } else {
            0
        };
    }
    let with_operations = version >= 8 && request.include_topic_authorized_operations;
    let described = |mut topic: MetadataResponseTopic, name: &str| {
        if with_operations {
            topic.topic_authorized_operations =
                access.authorized_operations(ResourceType::Topic, name);
        }
        topic
    };

    // v0 has no null list: an empty one means every topic.
    let all_topics = request
        .topics
        .as_ref()
        .is_none_or(|t| t.is_empty() && version == 0);
    if all_topics {
        match broker.store.list_topics().await {
            Ok(topics) => {
                for topic in &topics {
                    if !access.authorize(AclOperation::Describe, ResourceType::Topic, &topic.name) {
                        continue;
                    }
                    let answer = describe(broker, topic, version).await;
                    response.topics.push(described(answer, &topic.name));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "listing topics for metadata failed");
                response.error_code = metadata_error(&error).code();
            }
        }
        return response;
    }
    // Auto-creation exists from v4 on as a request flag; before that it was implied.
    let may_create =
        broker.settings.auto_create_topics && (version < 4 || request.allow_auto_topic_creation);
    let may_create_any = access.authorize_cluster(AclOperation::Create);
    for requested in request.topics.unwrap_or_default() {
        if let Some(name) = &requested.name
            && access
                .topic(AclOperation::Describe, name.0.as_str())
                .is_err()
        {
            response.topics.push(topic_error(
                requested.name,
                uuid::Uuid::nil(),
                ResponseError::TopicAuthorizationFailed,
            ));
            continue;
        }
        let found = match &requested.name {
            Some(name) => {
                let result = broker.store.describe_topic(name.0.as_str()).await;
                match result {
                    Err(MetadataError::UnknownTopic { .. })
                        if may_create
                            && !may_create_any
                            && access.topic(AclOperation::Create, name.0.as_str()).is_err() =>
                    {
                        response.topics.push(topic_error(
                            requested.name.clone(),
                            uuid::Uuid::nil(),
                            ResponseError::TopicAuthorizationFailed,
                        ));
                        continue;
                    }
                    Err(MetadataError::UnknownTopic { .. }) if may_create => {
                        broker.auto_create_topic(name.0.as_str()).await
                    }
                    other => other,
                }
            }
            None => {
                broker
                    .store
                    .topic_by_id(fjord_metadata::TopicId(requested.topic_id))
                    .await
            }
        };
        let topic = match found {
            // By id: the name is known only now; without `DESCRIBE` it is
            // not told.
            Ok(topic)
                if requested.name.is_none()
                    && access.topic(AclOperation::Describe, &topic.name).is_err() =>
            {
                topic_error(
                    None,
                    requested.topic_id,
                    ResponseError::TopicAuthorizationFailed,
                )
            }
            Ok(topic) => described(describe(broker, &topic, version).await, &topic.name),
            Err(MetadataError::UnknownTopic { .. }) if requested.name.is_none() => {
                topic_error(None, requested.topic_id, ResponseError::UnknownTopicId)
            }
            Err(MetadataError::Invalid { .. }) => topic_error(
                requested.name,
                requested.topic_id,
                ResponseError::InvalidTopicException,
            ),
            Err(error) => topic_error(requested.name, requested.topic_id, metadata_error(&error)),
        };
        response.topics.push(topic);
    }
    response
}
