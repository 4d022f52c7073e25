//! The transaction APIs: `AddPartitionsToTxn`, `AddOffsetsToTxn`, `EndTxn`
//! and the admin calls `ListTransactions`, `DescribeTransactions` (answered
//! by the transaction coordinator, [`crate::transactions`]);
//! `TxnOffsetCommit` (the group's coordinator stores the offsets as pending);
//! `WriteTxnMarkers` (a partition leader writes a coordinator's markers) and
//! `DescribeProducers` (a leader's producer states).
//!
//! With an authorizer, as Kafka's:
//!
//! | API | needs | refused with |
//! |---|---|---|
//! | `AddPartitionsToTxn` | `WRITE` on the transactional id, and on each topic | `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` for every partition; `TOPIC_AUTHORIZATION_FAILED` for the topic's, `OPERATION_NOT_ATTEMPTED` for the others |
//! | `AddOffsetsToTxn` | `WRITE` on the transactional id, `READ` on the group | `TRANSACTIONAL_ID_AUTHORIZATION_FAILED`, `GROUP_AUTHORIZATION_FAILED` |
//! | `EndTxn` | `WRITE` on the transactional id | `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` |
//! | `TxnOffsetCommit` | `WRITE` on the transactional id, `READ` on the group and on each topic | the first two for every partition, `TOPIC_AUTHORIZATION_FAILED` for the topic's |
//! | `WriteTxnMarkers` | `CLUSTER_ACTION` on the cluster | `CLUSTER_AUTHORIZATION_FAILED` for every partition |
//! | `ListTransactions` | `DESCRIBE` on each transactional id | left out |
//! | `DescribeTransactions` | `DESCRIBE` on each transactional id (and on a topic to see its partitions) | `TRANSACTIONAL_ID_AUTHORIZATION_FAILED` (the topic left out) |
//! | `DescribeProducers` | `READ` on each topic | `TOPIC_AUTHORIZATION_FAILED` for its partitions |

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, DescribeProducersRequest, DescribeProducersResponse,
    DescribeTransactionsRequest, DescribeTransactionsResponse, EndTxnRequest, EndTxnResponse,
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest, TxnOffsetCommitResponse, WriteTxnMarkersRequest,
    WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::groups::GroupError;
use crate::kafka::errors::{authorization_error, group_error, log_error, txn_error};
use crate::log::LogError;
use crate::security::authorizer::Session;
use fjord_metadata::{
    AclOperation, MetadataError, OffsetCommit, ResourceType, TopicPartition, coordinator_shard_of,
};

/// Whether a request of `version` predates `PRODUCER_FENCED` (KIP-588: v2
/// of the transaction APIs), so fencing is answered `INVALID_PRODUCER_EPOCH`.
fn legacy(version: i16) -> bool {
    version < 2
}

/// `AddPartitionsToTxn` v0–3 (a producer adding partitions to its
/// transaction).
pub(crate) async fn add_partitions(
    broker: &Broker,
    request: AddPartitionsToTxnRequest,
    version: i16,
    access: &Session<'_>,
) -> AddPartitionsToTxnResponse {
    let mut response = AddPartitionsToTxnResponse::default();
    let id_allowed = access.transactional_id(
        AclOperation::Write,
        request.v3_and_below_transactional_id.0.as_str(),
    );
    // Partitions of unknown or unauthorized topics fail the request: the
    // others are not attempted, as Kafka answers.
    let mut unknown = Vec::new();
    let mut refused = Vec::new();
    let mut partitions = Vec::new();
    for topic in &request.v3_and_below_topics {
        let name = topic.name.0.to_string();
        if let Err(denied) = access.topic(AclOperation::Write, &name) {
            let error = authorization_error(&denied);
            refused.extend(topic.partitions.iter().map(|p| ((name.clone(), *p), error)));
            continue;
        }
        let count = match broker.logs.topics().describe(&name).await {
            Ok(meta) => Some(meta.partition_count),
            Err(_) => None,
        };
        for partition in &topic.partitions {
            if count.is_some_and(|c| (0..c).contains(partition)) {
                partitions.push((name.clone(), *partition));
            } else {
                unknown.push((name.clone(), *partition));
            }
        }
    }
    let outcome = if let Err(denied) = &id_allowed {
        Err(authorization_error(denied))
    } else if unknown.is_empty() && refused.is_empty() {
        broker
            .transactions
            .add_to_transaction(
                request.v3_and_below_transactional_id.0.as_str(),
                request.v3_and_below_producer_id.0,
                request.v3_and_below_producer_epoch,
                &partitions,
                None,
            )
            .await
            .map_err(|e| txn_error(&e, legacy(version)))
    } else {
        Err(ResponseError::OperationNotAttempted)
    };
    let code_of = |target: &(String, i32)| -> i16 {
        if let Err(denied) = &id_allowed {
            authorization_error(denied).code()
        } else if let Some((_, error)) = refused.iter().find(|(p, _)| p == target) {
            error.code()
        } else if unknown.contains(target) {
            ResponseError::UnknownTopicOrPartition.code()
        } else {
            outcome.err().map_or(0, |e| e.code())
        }
    };
    for topic in &request.v3_and_below_topics {
        let name = topic.name.0.to_string();
        let mut result = AddPartitionsToTxnTopicResult::default();
        result.name = topic.name.clone();
        for partition in &topic.partitions {
            let mut answer = AddPartitionsToTxnPartitionResult::default();
            answer.partition_index = *partition;
            answer.partition_error_code = code_of(&(name.clone(), *partition));
            result.results_by_partition.push(answer);
        }
        response.results_by_topic_v3_and_below.push(result);
    }
    response
}

/// `AddOffsetsToTxn`: the group's offsets commit with the transaction.
pub(crate) async fn add_offsets(
    broker: &Broker,
    request: AddOffsetsToTxnRequest,
    version: i16,
    access: &Session<'_>,
) -> AddOffsetsToTxnResponse {
    let mut response = AddOffsetsToTxnResponse::default();
    let allowed = access
        .transactional_id(AclOperation::Write, request.transactional_id.0.as_str())
        .and_then(|()| access.group(AclOperation::Read, request.group_id.0.as_str()));
    if let Err(denied) = allowed {
        response.error_code = authorization_error(&denied).code();
        return response;
    }
    if request.group_id.0.is_empty() {
        response.error_code = ResponseError::InvalidGroupId.code();
        return response;
    }
    if let Err(error) = broker
        .transactions
        .add_to_transaction(
            request.transactional_id.0.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            &[],
            Some(request.group_id.0.as_str()),
        )
        .await
    {
        response.error_code = txn_error(&error, legacy(version)).code();
    }
    response
}

/// `EndTxn`: commit or abort.
pub(crate) async fn end(
    broker: &Broker,
    request: EndTxnRequest,
    version: i16,
    access: &Session<'_>,
) -> EndTxnResponse {
    let mut response = EndTxnResponse::default();
    if let Err(denied) =
        access.transactional_id(AclOperation::Write, request.transactional_id.0.as_str())
    {
        response.error_code = authorization_error(&denied).code();
        return response;
    }
    if let Err(error) = broker
        .transactions
        .end_transaction(
            request.transactional_id.0.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
        )
        .await
    {
        response.error_code = txn_error(&error, legacy(version)).code();
    }
    response
}

/// `TxnOffsetCommit`: offsets committed inside a transaction, stored by the
/// group's coordinator as pending until the transaction ends.
pub(crate) async fn txn_offset_commit(
    broker: &Broker,
    request: TxnOffsetCommitRequest,
    access: &Session<'_>,
) -> TxnOffsetCommitResponse {
    let group = request.group_id.0.to_string();
    let max_metadata = broker.groups.settings().max_offset_metadata_bytes;
    let mut errors: Vec<Vec<Option<ResponseError>>> = Vec::new();
    let mut offsets = Vec::new();
    // The transactional id and the group first: either refused, every
    // partition is.
    let allowed = access
        .transactional_id(AclOperation::Write, request.transactional_id.0.as_str())
        .and_then(|()| access.group(AclOperation::Read, &group));
    for topic in &request.topics {
        let name = topic.name.0.to_string();
        let topic_allowed = allowed
            .clone()
            .and_then(|()| access.topic(AclOperation::Read, &name));
        if let Err(denied) = topic_allowed {
            let error = authorization_error(&denied);
            errors.push(topic.partitions.iter().map(|_| Some(error)).collect());
            continue;
        }
        let count = broker
            .logs
            .topics()
            .describe(&name)
            .await
            .ok()
            .map(|m| m.partition_count);
        let mut row = Vec::new();
        for partition in &topic.partitions {
            let metadata_len = partition.committed_metadata.as_ref().map_or(0, |m| m.len());
            let error = if !count.is_some_and(|c| (0..c).contains(&partition.partition_index)) {
                Some(ResponseError::UnknownTopicOrPartition)
            } else if metadata_len > max_metadata {
                Some(ResponseError::OffsetMetadataTooLarge)
            } else {
                offsets.push(OffsetCommit {
                    topic: name.clone(),
                    partition: partition.partition_index,
                    offset: partition.committed_offset,
                    leader_epoch: (partition.committed_leader_epoch >= 0)
                        .then_some(partition.committed_leader_epoch),
                    metadata: partition.committed_metadata.as_ref().map(|m| m.to_string()),
                });
                None
            };
            row.push(error);
        }
        errors.push(row);
    }
    let stored: Result<(), ResponseError> = if group.is_empty() {
        Err(ResponseError::InvalidGroupId)
    } else if offsets.is_empty() {
        Ok(())
    } else {
        match broker
            .groups
            .shard_fence(coordinator_shard_of(&group))
            .await
        {
            Err(error) => Err(group_error(&error)),
            Ok(fence) => broker
                .store
                .store_pending_txn_offsets(fence, &group, request.producer_id.0, &offsets)
                .await
                .map_err(|e| group_error(&GroupError::from_metadata(&e))),
        }
    };
    let mut response = TxnOffsetCommitResponse::default();
    for (topic, row) in request.topics.iter().zip(errors) {
        let mut answer = TxnOffsetCommitResponseTopic::default();
        answer.name = topic.name.clone();
        for (partition, error) in topic.partitions.iter().zip(row) {
            let mut p = TxnOffsetCommitResponsePartition::default();
            p.partition_index = partition.partition_index;
            p.error_code = match (error, &stored) {
                (Some(error), _) => error.code(),
                (None, Err(error)) => error.code(),
                (None, Ok(())) => 0,
            };
            answer.partitions.push(p);
        }
        response.topics.push(answer);
    }
    response
}

/// `WriteTxnMarkers`: a transaction coordinator's markers for partitions
/// this agent leads, each answered once committed.
pub(crate) async fn write_markers(
    broker: &Broker,
    request: WriteTxnMarkersRequest,
    access: &Session<'_>,
) -> WriteTxnMarkersResponse {
    let mut response = WriteTxnMarkersResponse::default();
    let denied = access
        .cluster(AclOperation::ClusterAction)
        .err()
        .map(|denied| authorization_error(&denied));
    for marker in request.markers {
        let mut result = WritableTxnMarkerResult::default();
        result.producer_id = marker.producer_id;
        for topic in marker.topics {
            let mut topic_result = WritableTxnMarkerTopicResult::default();
            topic_result.name = topic.name.clone();
            if let Some(error) = denied {
                for partition in topic.partition_indexes {
                    let mut p = WritableTxnMarkerPartitionResult::default();
                    p.partition_index = partition;
                    p.error_code = error.code();
                    topic_result.partitions.push(p);
                }
                result.topics.push(topic_result);
                continue;
            }
            let meta = broker.logs.topics().describe(topic.name.0.as_str()).await;
            let mut pending = Vec::new();
            for partition in topic.partition_indexes {
                let appended = match &meta {
                    Ok(meta) if (0..meta.partition_count).contains(&partition) => broker
                        .logs
                        .append_marker(
                            TopicPartition::new(meta.id, partition),
                            marker.producer_id.0,
                            marker.producer_epoch,
                            marker.transaction_result,
                            marker.coordinator_epoch,
                        )
                        .await
                        .map_err(|e| log_error(&e)),
                    _ => Err(ResponseError::UnknownTopicOrPartition),
                };
                pending.push((partition, appended));
            }
            for (partition, appended) in pending {
                let code = match appended {
                    Ok(durable) => durable
                        .await
                        .err()
                        .map_or(0, |e: LogError| log_error(&e).code()),
                    Err(error) => error.code(),
                };
                let mut p = WritableTxnMarkerPartitionResult::default();
                p.partition_index = partition;
                p.error_code = code;
                topic_result.partitions.push(p);
            }
            result.topics.push(topic_result);
        }
        response.markers.push(result);
    }
    response
}

/// `ListTransactions`: the transactional ids this agent coordinates, by the
/// request's state, producer id and (v1) duration filters.
pub(crate) async fn list(
    broker: &Broker,
    request: ListTransactionsRequest,
    access: &Session<'_>,
) -> ListTransactionsResponse {
    use kafka_protocol::messages::list_transactions_response::TransactionState;
    const STATES: [&str; 6] = [
        "Empty",
        "Ongoing",
        "PrepareCommit",
        "PrepareAbort",
        "CompleteCommit",
        "CompleteAbort",
    ];
    let mut response = ListTransactionsResponse::default();
    response.unknown_state_filters = request
        .state_filters
        .iter()
        .filter(|s| !STATES.contains(&s.as_str()))
        .cloned()
        .collect();
    let records = match broker.transactions.list().await {
        Ok(records) => records,
        Err(error) => {
            response.error_code = txn_error(&error, false).code();
            return response;
        }
    };
    let now = broker.transactions.now_millis();
    for record in records {
        if !access.authorize(
            AclOperation::Describe,
            ResourceType::TransactionalId,
            &record.transactional_id,
        ) {
            continue;
        }
        let state = record.phase.kafka_name();
        if !request.state_filters.is_empty()
            && !request.state_filters.iter().any(|s| s.as_str() == state)
        {
            continue;
        }
        if !request.producer_id_filters.is_empty()
            && !request
                .producer_id_filters
                .iter()
                .any(|p| p.0 == record.producer_id)
        {
            continue;
        }
        if request.duration_filter >= 0
            && (record.started_ms < 0 || now - record.started_ms < request.duration_filter)
        {
            continue;
        }
        let mut entry = TransactionState::default();
        entry.transactional_id = TransactionalId(StrBytes::from_string(record.transactional_id));
        entry.producer_id = ProducerId(record.producer_id);
        entry.transaction_state = StrBytes::from_static_str(state);
        response.transaction_states.push(entry);
    }
    response
}

/// `DescribeTransactions`: each id's state, producer and partitions.
pub(crate) async fn describe(
    broker: &Broker,
    request: DescribeTransactionsRequest,
    access: &Session<'_>,
) -> DescribeTransactionsResponse {
    use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
    let mut response = DescribeTransactionsResponse::default();
    for id in request.transactional_ids {
        let mut entry = TransactionState::default();
        entry.transactional_id = id.clone();
        entry.transaction_state = StrBytes::from_static_str("");
        entry.producer_id = ProducerId(-1);
        entry.producer_epoch = -1;
        entry.transaction_start_time_ms = -1;
        if let Err(denied) = access.transactional_id(AclOperation::Describe, id.0.as_str()) {
            entry.error_code = authorization_error(&denied).code();
            response.transaction_states.push(entry);
            continue;
        }
        match broker.transactions.describe(id.0.as_str()).await {
            Ok(record) => {
                entry.transaction_state = StrBytes::from_static_str(record.phase.kafka_name());
                entry.transaction_timeout_ms = record.timeout_ms;
                entry.transaction_start_time_ms = record.started_ms;
                entry.producer_id = ProducerId(record.producer_id);
                entry.producer_epoch = record.producer_epoch;
                let mut topics: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
                for (topic, partition) in record.partitions {
                    // Partitions of topics the client may not describe are
                    // left out, as Kafka does.
                    if access.authorize(AclOperation::Describe, ResourceType::Topic, &topic) {
                        topics.entry(topic).or_default().push(partition);
                    }
                }
                entry.topics = topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        let mut data = TopicData::default();
                        data.topic = TopicName(StrBytes::from_string(topic));
                        data.partitions = partitions;
                        data
                    })
                    .collect();
            }
            Err(crate::transactions::TxnError::InvalidTxnState(_)) => {
                entry.error_code = ResponseError::TransactionalIdNotFound.code();
            }
            Err(error) => entry.error_code = txn_error(&error, false).code(),
        }
        response.transaction_states.push(entry);
    }
    response
}

/// `DescribeProducers`: the producers a partition's leader knows, with the
/// first offset of each one's open transaction.
pub(crate) async fn describe_producers(
    broker: &Broker,
    request: DescribeProducersRequest,
    access: &Session<'_>,
) -> DescribeProducersResponse {
    use kafka_protocol::messages::describe_producers_response::{
        PartitionResponse, ProducerState, TopicResponse,
    };
    let mut response = DescribeProducersResponse::default();
    for topic in request.topics {
        let mut topic_response = TopicResponse::default();
        topic_response.name = topic.name.clone();
        let denied = access
            .topic(AclOperation::Read, topic.name.0.as_str())
            .err()
            .map(|denied| authorization_error(&denied));
        let meta = broker.logs.topics().describe(topic.name.0.as_str()).await;
        for partition in topic.partition_indexes {
            let mut answer = PartitionResponse::default();
            answer.partition_index = partition;
            let producers = match &meta {
                _ if let Some(error) = denied => Err(error),
                Ok(meta) if (0..meta.partition_count).contains(&partition) => broker
                    .logs
                    .producers(TopicPartition::new(meta.id, partition))
                    .await
                    .map_err(|e| log_error(&e)),
                Ok(_) | Err(MetadataError::UnknownTopic { .. }) => {
                    Err(ResponseError::UnknownTopicOrPartition)
                }
                Err(_) => Err(ResponseError::KafkaStorageError),
            };
            match producers {
                Ok(producers) => {
                    for (producer_id, state) in producers {
                        let mut p = ProducerState::default();
                        p.producer_id = ProducerId(producer_id);
                        p.producer_epoch = i32::from(state.producer_epoch);
                        p.last_sequence = state.batches.last().map_or(-1, |b| b.last_sequence);
                        p.last_timestamp = state.last_timestamp;
                        p.coordinator_epoch = -1;
                        p.current_txn_start_offset = state.txn_first_offset.unwrap_or(-1);
                        answer.active_producers.push(p);
                    }
                }
                Err(error) => {
                    answer.error_code = error.code();
                    answer.error_message = Some(StrBytes::from_string(format!("{error:?}")));
                }
            }
            topic_response.partitions.push(answer);
        }
        response.topics.push(topic_response);
    }
    response
}
