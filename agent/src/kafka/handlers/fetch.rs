//! `Fetch`: committed batches from each requested offset, waiting up to
//! `max_wait_ms` for new commits until `min_bytes` are available. As in Kafka,
//! a fetch that needs no bytes (`min_bytes` ≤ 0), waits for nothing
//! (`max_wait_ms` ≤ 0) or names no partition is answered at once, and so is
//! one that hits an error.
//!
//! Limits as in Kafka: each partition returns at most `partition_max_bytes` and
//! the response about `max_bytes`, capped by the broker's `fetch.max.bytes`
//! ([`BrokerSettings::fetch_max_bytes`](crate::BrokerSettings)), except that
//! the first batch found is returned whole even when it is larger (so a
//! consumer always makes progress).
//!
//! From v13 on, topics are named by id (and answered by id); an id no topic
//! has is `UNKNOWN_TOPIC_ID`.
//!
//! Fetch sessions (KIP-227) are not implemented: this broker never creates one,
//! which Kafka allows (a broker whose session cache is full does the same).
//! Following Kafka's `FetchManager`:
//! - a full request (`session_epoch` 0, "open a session", or -1, "no session")
//!   is answered in full with `session_id` 0, which tells the client that no
//!   session was created; librdkafka, the Java client, kafka-python, aiokafka
//!   and kafkajs then keep sending full requests. A full request naming a
//!   session id (closing it) is answered the same way: there is nothing to close;
//! - an incremental request (any other epoch) names a session this broker cannot
//!   have, and is answered `FETCH_SESSION_ID_NOT_FOUND` with no partitions; the
//!   client then starts over with a full request.
//!
//! The cost is the one sessions save: every fetch lists all its partitions and
//! every answer carries all of them, even those with nothing new.
//!
//! Authorization (with an authorizer, as Kafka's): `READ` on each topic, else
//! its partitions are `TOPIC_AUTHORIZATION_FAILED` (a topic id no topic has is
//! `UNKNOWN_TOPIC_ID` first: there is no name to check).

use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::FetchTopic;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ProducerId};

use crate::Broker;
use crate::kafka::errors::{authorization_error, log_error};
use crate::log::LogError;
use crate::records;
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, MetadataError, TopicId, TopicMeta, TopicPartition};

/// The refusal of `READ` on the topic a fetch names, if refused: by the
/// topic's name, known from the request (before v13) or from its id.
fn read_denied(
    access: &Session<'_>,
    topic: &FetchTopic,
    meta: &Result<TopicMeta, MetadataError>,
    version: i16,
) -> Option<ResponseError> {
    let name = match meta {
        Ok(meta) => meta.name.as_str(),
        Err(_) if version < 13 => topic.topic.0.as_str(),
        // An id no topic has (or one that could not be looked up): no name.
        Err(_) => return None,
    };
    access
        .topic(AclOperation::Read, name)
        .err()
        .map(|denied| authorization_error(&denied))
}

async fn read_all(
    broker: &Broker,
    request: &FetchRequest,
    version: i16,
    access: &Session<'_>,
) -> (FetchResponse, usize) {
    let mut response = FetchResponse::default();
    let mut total = 0usize;
    // `read_committed` (v4+): only what is below the last stable offset,
    // with the aborted transactions in it for the client to skip.
    let read_committed = request.isolation_level == 1;
    let max_bytes = usize::try_from(request.max_bytes)
        .unwrap_or(0)
        .min(broker.settings.fetch_max_bytes)
        .max(1);
    for topic in &request.topics {
        let meta = named_topic(broker, topic, version).await;
        let denied = read_denied(access, topic, &meta, version);
        let mut topic_response = FetchableTopicResponse::default();
        topic_response.topic = topic.topic.clone();
        topic_response.topic_id = topic.topic_id;
        for partition in &topic.partitions {
            let mut data = PartitionData::default();
            data.partition_index = partition.partition;
            data.high_watermark = -1;
            data.last_stable_offset = -1;
            match &meta {
                _ if let Some(error) = denied => data.error_code = error.code(),
                Err(MetadataError::UnknownTopic { .. }) if version >= 13 => {
                    data.error_code = ResponseError::UnknownTopicId.code()
                }
                Err(MetadataError::UnknownTopic { .. }) => {
                    data.error_code = ResponseError::UnknownTopicOrPartition.code()
                }
                Err(_) => data.error_code = ResponseError::KafkaStorageError.code(),
                Ok(meta)
                    if partition.partition < 0 || partition.partition >= meta.partition_count =>
                {
                    data.error_code = ResponseError::UnknownTopicOrPartition.code();
                }
                Ok(meta) if total >= max_bytes => {
                    // The response is full (`max_bytes`): later partitions report
                    // their offsets and no records, as Kafka does.
                    let tp = TopicPartition::new(meta.id, partition.partition);
                    match broker.logs.stable_offsets(tp).await {
                        Ok((log_start, high_watermark, last_stable)) => {
                            data.high_watermark = high_watermark;
                            data.last_stable_offset = last_stable;
                            if version >= 5 {
                                data.log_start_offset = log_start;
                            }
                            data.records = Some(bytes::Bytes::new());
                        }
                        Err(error) => data.error_code = log_error(&error).code(),
                    }
                }
                Ok(meta) => {
                    let tp = TopicPartition::new(meta.id, partition.partition);
                    let budget = usize::try_from(partition.partition_max_bytes)
                        .unwrap_or(0)
                        .min(max_bytes.saturating_sub(total))
                        .max(1);
                    match broker.logs.read(tp, partition.fetch_offset, budget).await {
                        Ok(read) => {
                            data.high_watermark = read.high_watermark;
                            data.last_stable_offset = read.last_stable_offset;
                            if version >= 5 {
                                data.log_start_offset = read.log_start_offset;
                            }
                            let mut records = read.records;
                            if read_committed {
                                records = records::take_before(records, read.last_stable_offset);
                                let aborted = committed_view(
                                    broker,
                                    tp,
                                    partition.fetch_offset,
                                    read.last_stable_offset,
                                    &records,
                                )
                                .await;
                                match aborted {
                                    Ok(aborted) => data.aborted_transactions = Some(aborted),
                                    Err(error) => {
                                        data.error_code = log_error(&error).code();
                                        records = bytes::Bytes::new();
                                    }
                                }
                            }
                            total += records.len();
                            data.records = Some(records);
                        }
                        Err(error) => {
                            if let LogError::OffsetOutOfRange {
                                log_start,
                                high_watermark,
                                ..
                            } = &error
                            {
                                data.high_watermark = *high_watermark;
                                data.last_stable_offset = *high_watermark;
                                if version >= 5 {
                                    data.log_start_offset = *log_start;
                                }
                            }
                            data.error_code = log_error(&error).code();
                        }
                    }
                }
            }
            topic_response.partitions.push(data);
        }
        response.responses.push(topic_response);
    }
    (response, total)
}

pub(crate) async fn handle(
    broker: &Broker,
    request: FetchRequest,
    version: i16,
    access: &Session<'_>,
) -> FetchResponse {
    record_target(&request);
    if version >= 7 && !matches!(request.session_epoch, 0 | -1) {
        // An incremental fetch: no session is ever created here, so whichever
        // session it names is unknown.
        let mut response = FetchResponse::default();
        response.error_code = ResponseError::FetchSessionIdNotFound.code();
        return response;
    }
    let wait = Duration::from_millis(u64::try_from(request.max_wait_ms).unwrap_or(0));
    let start = tokio::time::Instant::now();
    let deadline = start.checked_add(wait).unwrap_or(start);
    let min_bytes = usize::try_from(request.min_bytes).unwrap_or(0);
    let no_partitions = request.topics.iter().all(|t| t.partitions.is_empty());
    loop {
        // Subscribed before the read, so a commit in between is not missed;
        // only the request's own partitions wake it.
        let mut watch = broker
            .logs
            .watch(&partitions_of(broker, &request, version).await);
        let (response, bytes) = read_all(broker, &request, version, access).await;
        let has_error = response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .any(|p| p.error_code != 0);
        if bytes >= min_bytes
            || no_partitions
            || has_error
            || tokio::time::Instant::now() >= deadline
        {
            return response;
        }
        // Nothing yet: wait for the next commit of one of its partitions, or
        // the deadline.
        if tokio::time::timeout_at(deadline, watch.changed())
            .await
            .is_err()
        {
            return read_all(broker, &request, version, access).await.0;
        }
    }
}

/// The aborted transactions a `read_committed` reader of `records` (read
/// from `fetch_offset`, ending before `end`) must skip: looked up only when
/// a batch in them is transactional.
async fn committed_view(
    broker: &Broker,
    tp: TopicPartition,
    fetch_offset: i64,
    end: i64,
    records: &bytes::Bytes,
) -> Result<Vec<AbortedTransaction>, LogError> {
    if !records::has_transactional(records) {
        return Ok(Vec::new());
    }
    let aborted = broker
        .logs
        .aborted_transactions(tp, fetch_offset, end)
        .await?;
    Ok(aborted
        .into_iter()
        .map(|a| {
            let mut entry = AbortedTransaction::default();
            entry.producer_id = ProducerId(a.producer_id);
            entry.first_offset = a.first_offset;
            entry
        })
        .collect())
}

/// The topic a fetch names: by name before v13, by id from v13 on.
async fn named_topic(
    broker: &Broker,
    topic: &FetchTopic,
    version: i16,
) -> Result<TopicMeta, MetadataError> {
    if version >= 13 {
        broker.logs.topics().by_id(TopicId(topic.topic_id)).await
    } else {
        broker.logs.topics().describe(topic.topic.0.as_str()).await
    }
}

/// The partitions a fetch names that exist (as far as the topic cache knows).
async fn partitions_of(
    broker: &Broker,
    request: &FetchRequest,
    version: i16,
) -> Vec<TopicPartition> {
    let mut partitions = Vec::new();
    for topic in &request.topics {
        if let Ok(meta) = named_topic(broker, topic, version).await {
            partitions.extend(
                topic
                    .partitions
                    .iter()
                    .filter(|p| p.partition >= 0 && p.partition < meta.partition_count)
                    .map(|p| TopicPartition::new(meta.id, p.partition)),
            );
        }
    }
    partitions
}

/// Names the topic and partition on the request's span when it has only one.
fn record_target(request: &FetchRequest) {
    let [topic] = request.topics.as_slice() else {
        return;
    };
    let span = tracing::Span::current();
    span.record("topic", topic.topic.0.as_str());
    if let [partition] = topic.partitions.as_slice() {
        span.record("partition", partition.partition);
    }
}
