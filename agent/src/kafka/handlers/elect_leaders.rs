//! `ElectLeaders` (v0–2): preferred and unclean elections, mapped onto the
//! balancer that already moves leadership to where partitions are placed.
//!
//! A partition's preferred leader is the agent it is placed on (an
//! operator's leader placement while that agent is live, else the hashed
//! placement). Every agent's balancer moves leadership there within a tick or
//! two, so an election is a wait for that move:
//!
//! - preferred (`0`, and every v0 request): `ELECTION_NOT_NEEDED` when the
//!   preferred agent leads; `PREFERRED_LEADER_NOT_AVAILABLE` when it is not
//!   live; otherwise success once it leads, `REQUEST_TIMED_OUT` if it does not
//!   within the request's timeout;
//! - unclean (`1`): `ELECTION_NOT_NEEDED` while a live agent leads; otherwise
//!   success once one does (the lease of a dead leader lapses and its
//!   partitions are taken over), `ELIGIBLE_LEADERS_NOT_AVAILABLE` if none does
//!   within the timeout. Nothing is ever lost by it: every copy is the
//!   bucket's.
//!
//! `topic_partitions: null` elects every partition of every topic.

use std::time::Duration;

use fjord_metadata::{MetadataError, TopicMeta, TopicPartition};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::kafka::errors::{authorization_code, metadata_error};
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;

const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

/// How often a waiting election looks at the partitions again.
const POLL: Duration = Duration::from_millis(100);
/// The longest an election waits, whatever the request asks.
const MAX_WAIT: Duration = Duration::from_secs(60);

pub(crate) async fn handle(
    broker: &Broker,
    request: ElectLeadersRequest,
    version: i16,
    access: &Session<'_>,
) -> ElectLeadersResponse {
    let mut response = ElectLeadersResponse::default();
    // As Kafka: `ALTER` on the cluster, else every partition named (and, from
    // v1, the request) is `CLUSTER_AUTHORIZATION_FAILED`.
    let allowed = access.cluster(AclOperation::Alter);
    if allowed.is_err() {
        let code = authorization_code(&allowed);
        if version >= 1 {
            response.error_code = code;
        }
        for topic in request.topic_partitions.into_iter().flatten() {
            let mut result = ReplicaElectionResult::default();
            result.topic = topic.topic;
            for index in topic.partitions {
                let mut partition = PartitionResult::default();
                partition.partition_id = index;
                partition.error_code = code;
                result.partition_result.push(partition);
            }
            response.replica_election_results.push(result);
        }
        return response;
    }
    let election = if version == 0 {
        PREFERRED
    } else {
        request.election_type
    };
    if election != PREFERRED && election != UNCLEAN {
        response.error_code = ResponseError::InvalidRequest.code();
        return response;
    }
    let wanted = match wanted_partitions(broker, request.topic_partitions).await {
        Ok(wanted) => wanted,
        Err(error) => {
            response.error_code = metadata_error(&error).code();
            return response;
        }
    };
    let timeout = Duration::from_millis(u64::try_from(request.timeout_ms).unwrap_or(0));
    let deadline = tokio::time::Instant::now() + timeout.min(MAX_WAIT);
    for (name, topic, partitions) in wanted {
        let mut result = ReplicaElectionResult::default();
        result.topic = TopicName(StrBytes::from_string(name));
        for index in partitions {
            let (error, message) = match &topic {
                Err(error) => (Some(metadata_error(error)), Some(error.to_string())),
                Ok(topic) => elect(broker, topic, index, election, deadline).await,
            };
            let mut partition = PartitionResult::default();
            partition.partition_id = index;
            partition.error_code = error.map_or(0, |e| e.code());
            partition.error_message = message.map(StrBytes::from_string);
            result.partition_result.push(partition);
        }
        response.replica_election_results.push(result);
    }
    response
}

/// The partitions to elect, by topic name: the request's, or every partition
/// of every topic.
async fn wanted_partitions(
    broker: &Broker,
    requested: Option<Vec<kafka_protocol::messages::elect_leaders_request::TopicPartitions>>,
) -> Result<Vec<(String, Result<TopicMeta, MetadataError>, Vec<i32>)>, MetadataError> {
    let Some(requested) = requested else {
        let mut topics = broker.store.list_topics().await?;
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        return Ok(topics
            .into_iter()
            .map(|topic| {
                let partitions = (0..topic.partition_count).collect();
                (topic.name.clone(), Ok(topic), partitions)
            })
            .collect());
    };
    let mut wanted = Vec::with_capacity(requested.len());
    for topic in requested {
        let name = topic.topic.0.to_string();
        let meta = broker.store.describe_topic(&name).await;
        wanted.push((name, meta, topic.partitions));
    }
    Ok(wanted)
}

/// Waits for one partition's election: the error to answer and its message.
async fn elect(
    broker: &Broker,
    topic: &TopicMeta,
    index: i32,
    election: i8,
    deadline: tokio::time::Instant,
) -> (Option<ResponseError>, Option<String>) {
    let partition = TopicPartition::new(topic.id, index);
    let mut first = true;
    loop {
        let state = match broker.store.partition_state(partition).await {
            Ok(state) => state,
            Err(error) => return (Some(metadata_error(&error)), Some(error.to_string())),
        };
        let leader = state.leader.filter(|l| broker.cluster.is_live(*l));
        let preferred = broker.cluster.owner(partition, topic.partition_count);
        let done = match election {
            PREFERRED => leader == Some(preferred),
            _ => leader.is_some(),
        };
        if done {
            return if first {
                (Some(ResponseError::ElectionNotNeeded), None)
            } else {
                (None, None)
            };
        }
        if election == PREFERRED && !broker.cluster.is_live(preferred) {
            return (
                Some(ResponseError::PreferredLeaderNotAvailable),
                Some(format!("agent {preferred} is not live")),
            );
        }
        first = false;
        if tokio::time::Instant::now() + POLL > deadline {
            return if election == PREFERRED {
                (
                    Some(ResponseError::RequestTimedOut),
                    Some(format!(
                        "agent {preferred} did not take partition {partition} over in time"
                    )),
                )
            } else {
                (
                    Some(ResponseError::EligibleLeadersNotAvailable),
                    Some(format!(
                        "no live agent took partition {partition} over in time"
                    )),
                )
            };
        }
        tokio::time::sleep(POLL).await;
    }
}
