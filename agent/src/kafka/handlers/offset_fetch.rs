//! `OffsetFetch`: one group (v1–7) or many (v8); named partitions or, with a
//! null topic list (v2+), every partition the group committed. Partitions
//! without a commit answer offset -1.
//!
//! With an authorizer, as Kafka's: `DESCRIBE` on the group (else
//! `GROUP_AUTHORIZATION_FAILED`, the group's error) and on each topic: a
//! named topic without it answers `TOPIC_AUTHORIZATION_FAILED` for its
//! partitions; "every partition" leaves such topics out.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::groups::GroupError;
use crate::kafka::errors::{authorization_code, group_error_code};
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, CommittedOffset, ResourceType};

/// One partition's answer: the committed offset, if any, and its error:
/// `UNSTABLE_OFFSET_COMMIT` when an open transaction holds an offset for it
/// and the request requires stable offsets, `TOPIC_AUTHORIZATION_FAILED`
/// when the topic may not be described.
type Fetched = BTreeMap<String, Vec<(i32, Option<CommittedOffset>, Option<ResponseError>)>>;

/// The group's offsets for `wanted` (`None`: every committed partition).
/// With `require_stable` (v7+, `read_committed` consumers), partitions with
/// an offset pending in an open transaction are flagged.
async fn fetch(
    broker: &Broker,
    group_id: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
    access: &Session<'_>,
) -> Result<Fetched, GroupError> {
    let stored = broker.groups.fetch_offsets(group_id).await?;
    let unstable = if require_stable {
        broker
            .store
            .pending_txn_partitions(group_id)
            .await
            .map_err(|e| GroupError::from_metadata(&e))?
    } else {
        Default::default()
    };
    let is_unstable = |topic: &str, partition: i32| {
        unstable
            .contains(&(topic.to_owned(), partition))
            .then_some(ResponseError::UnstableOffsetCommit)
    };
    let describable =
        |topic: &str| access.authorize(AclOperation::Describe, ResourceType::Topic, topic);
    let mut by_partition: BTreeMap<(String, i32), CommittedOffset> = stored
        .into_iter()
        .map(|o| ((o.topic, o.partition), o.committed))
        .collect();
    let mut fetched = Fetched::new();
    match wanted {
        None => {
            for ((topic, partition), committed) in by_partition {
                if !describable(&topic) {
                    continue;
                }
                let unstable = is_unstable(&topic, partition);
                fetched
                    .entry(topic)
                    .or_default()
                    .push((partition, Some(committed), unstable));
            }
        }
        Some(wanted) => {
            for (topic, partitions) in wanted {
                let allowed = describable(&topic);
                let entry = fetched.entry(topic.clone()).or_default();
                for partition in partitions {
                    if !allowed {
                        entry.push((
                            partition,
                            None,
                            Some(ResponseError::TopicAuthorizationFailed),
                        ));
                        continue;
                    }
                    let committed = by_partition.remove(&(topic.clone(), partition));
                    entry.push((partition, committed, is_unstable(&topic, partition)));
                }
            }
        }
    }
    Ok(fetched)
}

fn partition_v1(
    partition: i32,
    committed: Option<CommittedOffset>,
    error: Option<ResponseError>,
    version: i16,
) -> OffsetFetchResponsePartition {
    let mut answer = OffsetFetchResponsePartition::default();
    answer.partition_index = partition;
    if let Some(error) = error {
        answer.error_code = error.code();
    }
    answer.committed_offset = committed.as_ref().map_or(-1, |c| c.offset);
    if version >= 5 {
        answer.committed_leader_epoch = committed
            .as_ref()
            .and_then(|c| c.leader_epoch)
            .unwrap_or(-1);
    }
    answer.metadata = Some(StrBytes::from_string(
        committed.and_then(|c| c.metadata).unwrap_or_default(),
    ));
    answer
}

fn partition_v8(
    partition: i32,
    committed: Option<CommittedOffset>,
    error: Option<ResponseError>,
) -> OffsetFetchResponsePartitions {
    let mut answer = OffsetFetchResponsePartitions::default();
    answer.partition_index = partition;
    if let Some(error) = error {
        answer.error_code = error.code();
    }
    answer.committed_offset = committed.as_ref().map_or(-1, |c| c.offset);
    answer.committed_leader_epoch = committed
        .as_ref()
        .and_then(|c| c.leader_epoch)
        .unwrap_or(-1);
    answer.metadata = Some(StrBytes::from_string(
        committed.and_then(|c| c.metadata).unwrap_or_default(),
    ));
    answer
}

pub(crate) async fn handle(
    broker: &Broker,
    request: OffsetFetchRequest,
    version: i16,
    access: &Session<'_>,
) -> OffsetFetchResponse {
    let mut response = OffsetFetchResponse::default();
    if version >= 8 {
        for group in request.groups {
            let wanted = group.topics.map(|topics| {
                topics
                    .into_iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes))
                    .collect()
            });
            let mut answer = OffsetFetchResponseGroup::default();
            answer.group_id = GroupId(group.group_id.0.clone());
            let allowed = access.group(AclOperation::Describe, group.group_id.0.as_str());
            if allowed.is_err() {
                answer.error_code = authorization_code(&allowed);
                response.groups.push(answer);
                continue;
            }
            // v9: a consumer-protocol member fetches under its epoch (KIP-848).
            let member_id = group.member_id.as_ref().map(|m| m.to_string());
            if version >= 9 && (group.member_epoch >= 0 || member_id.is_some()) {
                let checked = broker
                    .groups
                    .validate_member_epoch(
                        group.group_id.0.as_str(),
                        member_id.as_deref().unwrap_or_default(),
                        group.member_epoch,
                    )
                    .await;
                if let Err(error) = checked {
                    answer.error_code = group_error_code(Some(&error));
                    response.groups.push(answer);
                    continue;
                }
            }
            match fetch(
                broker,
                group.group_id.0.as_str(),
                wanted,
                request.require_stable,
                access,
            )
            .await
            {
                Ok(fetched) => {
                    answer.topics = fetched
                        .into_iter()
                        .map(|(topic, partitions)| {
                            let mut topic_answer = OffsetFetchResponseTopics::default();
                            topic_answer.name = TopicName(StrBytes::from_string(topic));
                            topic_answer.partitions = partitions
                                .into_iter()
                                .map(|(p, c, u)| partition_v8(p, c, u))
                                .collect();
                            topic_answer
                        })
                        .collect();
                }
                Err(error) => answer.error_code = group_error_code(Some(&error)),
            }
            response.groups.push(answer);
        }
        return response;
    }
    let wanted: Option<Vec<(String, Vec<i32>)>> = request.topics.map(|topics| {
        topics
            .into_iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes))
            .collect()
    });
    let require_stable = version >= 7 && request.require_stable;
    let allowed = access.group(AclOperation::Describe, request.group_id.0.as_str());
    let fetched = match allowed {
        Err(_) => Err(authorization_code(&allowed)),
        Ok(()) => fetch(
            broker,
            request.group_id.0.as_str(),
            wanted.clone(),
            require_stable,
            access,
        )
        .await
        .map_err(|error| group_error_code(Some(&error))),
    };
    match fetched {
        Ok(fetched) => {
            response.topics = fetched
                .into_iter()
                .map(|(topic, partitions)| {
                    let mut topic_answer = OffsetFetchResponseTopic::default();
                    topic_answer.name = TopicName(StrBytes::from_string(topic));
                    topic_answer.partitions = partitions
                        .into_iter()
                        .map(|(p, c, u)| partition_v1(p, c, u, version))
                        .collect();
                    topic_answer
                })
                .collect();
        }
        Err(code) => {
            if version >= 2 {
                response.error_code = code;
            } else {
                // v1 has no group-level error: every partition carries it.
                response.topics = wanted
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(topic, partitions)| {
                        let mut topic_answer = OffsetFetchResponseTopic::default();
                        topic_answer.name = TopicName(StrBytes::from_string(topic));
                        topic_answer.partitions = partitions
                            .into_iter()
                            .map(|p| {
                                let mut answer = partition_v1(p, None, None, version);
                                answer.error_code = code;
                                answer
                            })
                            .collect();
                        topic_answer
                    })
                    .collect();
            }
        }
    }
    response
}
