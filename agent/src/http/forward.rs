//! Forwarding to the agent that leads a partition, as a Kafka client of that
//! agent's listener: a produce, so the leader runs the one write path (and its
//! checks) exactly as for any Kafka producer; a read, so the leader serves it
//! from its memory and wakes it at its commit, as it does a Kafka consumer's
//! fetch.
//!
//! Connections are pooled per leader address; each carries one request at a
//! time, and concurrent forwards open more (at most [`MAX_IDLE`] are kept).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use fjord_gateway::KafkaError;
use fjord_gateway::ReadBatches;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ProduceRequest, ProduceResponse, RequestHeader,
    ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The Produce version forwarded (flexible; every Fjord agent answers it).
const PRODUCE_VERSION: i16 = 9;
/// Idle connections kept per leader.
const MAX_IDLE: usize = 16;
/// How long connecting to a leader may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The Fetch version forwarded (flexible, topics by name).
const FETCH_VERSION: i16 = 12;
/// The largest produce answer read from a leader (a produce answer is small);
/// a fetch answer may hold this much more than the bytes asked.
const MAX_PRODUCE_ANSWER_BYTES: usize = 1024 * 1024;
/// Forwarded fetches in flight at once (each holds a connection); past it,
/// reads are served locally from the index and the bucket.
const MAX_FETCHES: usize = 64;

/// Pooled connections to other agents' Kafka listeners.
#[derive(Debug)]
pub(crate) struct Forwarder {
    idle: Mutex<HashMap<String, Vec<TcpStream>>>,
    correlation: AtomicI32,
    fetch_slots: tokio::sync::Semaphore,
}

impl Default for Forwarder {
    fn default() -> Self {
        Self {
            idle: Mutex::default(),
            correlation: AtomicI32::default(),
            fetch_slots: tokio::sync::Semaphore::new(MAX_FETCHES),
        }
    }
}

/// A leader that cannot be reached: retriable, as Kafka's network errors are.
fn unreachable(address: &str, error: impl std::fmt::Display) -> KafkaError {
    KafkaError::new(
        ResponseError::NetworkException,
        format!("cannot reach the partition's leader at {address}: {error}"),
    )
}

impl Forwarder {
    fn take(&self, address: &str) -> Option<TcpStream> {
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get_mut(address)?
            .pop()
    }

    fn give_back(&self, address: &str, stream: TcpStream) {
        let mut idle = self
            .idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let pool = idle.entry(address.to_owned()).or_default();
        if pool.len() < MAX_IDLE {
            pool.push(stream);
        }
    }

    /// Sends `request` (API `key`, `version`) to the agent at `address` and
    /// reads its answer, within `timeout` (and a few seconds for the network).
    async fn call<Req, Resp>(
        &self,
        address: &str,
        key: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
        max_answer: usize,
    ) -> Result<Resp, KafkaError>
    where
        Req: Encodable,
        Resp: Decodable,
    {
        let correlation_id = self.correlation.fetch_add(1, Ordering::Relaxed);
        let frame = request_frame(key, version, request, correlation_id)?;
        let mut stream = match self.take(address) {
            Some(stream) => stream,
            None => tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
                .await
                .map_err(|_| unreachable(address, "connect timed out"))?
                .map_err(|e| unreachable(address, e))?,
        };
        let answer = tokio::time::timeout(timeout + Duration::from_secs(5), async {
            stream.write_all(&frame).await?;
            let len = stream.read_u32().await? as usize;
            if len > max_answer {
                return Err(std::io::Error::other(format!(
                    "an answer of {len} bytes is too large"
                )));
            }
            let mut body = vec![0u8; len];
            stream.read_exact(&mut body).await?;
            Ok(Bytes::from(body))
        })
        .await
        .map_err(|_| unreachable(address, "no answer in time"))?
        .map_err(|e| unreachable(address, e))?;
        let response = decode_response(answer, key, version, correlation_id)
            .map_err(|e| unreachable(address, format!("a bad answer: {e}")))?;
        self.give_back(address, stream);
        Ok(response)
    }

    /// Sends any request (a group member's, to its coordinator) and reads the
    /// answer (at most 1 MiB).
    pub(crate) async fn request<Req, Resp>(
        &self,
        address: &str,
        key: ApiKey,
        version: i16,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, KafkaError>
    where
        Req: Encodable,
        Resp: Decodable,
    {
        self.call(
            address,
            key,
            version,
            request,
            timeout,
            MAX_PRODUCE_ANSWER_BYTES,
        )
        .await
    }

    /// Produces `batch` to `topic`/`partition` on the agent at `address` and
    /// returns the base offset it answers (`acks` is -1 or 1).
    pub(crate) async fn produce(
        &self,
        address: &str,
        topic: &str,
        partition: i32,
        batch: Bytes,
        acks: i16,
        timeout: Duration,
    ) -> Result<i64, KafkaError> {
        let mut data = PartitionProduceData::default();
        data.index = partition;
        data.records = Some(batch);
        let mut topic_data = TopicProduceData::default();
        topic_data.name = TopicName(StrBytes::from_string(topic.to_owned()));
        topic_data.partition_data.push(data);
        let mut request = ProduceRequest::default();
        request.acks = acks;
        request.timeout_ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        request.topic_data.push(topic_data);
        let response: ProduceResponse = self
            .call(
                address,
                ApiKey::Produce,
                PRODUCE_VERSION,
                &request,
                timeout,
                MAX_PRODUCE_ANSWER_BYTES,
            )
            .await?;
        let part = response
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or_else(|| unreachable(address, "an answer without the partition"))?;
        check(part.error_code, part.error_message.as_ref())?;
        Ok(part.base_offset)
    }

    /// Fetches committed batches of `topic`/`partition` from `offset` on the
    /// agent at `address` (the leader, which serves them from its memory when
    /// it still holds them), waiting up to `wait` for one, as a Kafka
    /// consumer's fetch does. `None` when too many forwarded fetches are in
    /// flight already: the caller reads locally instead.
    pub(crate) async fn fetch(
        &self,
        address: &str,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        wait: Duration,
    ) -> Option<Result<ReadBatches, KafkaError>> {
        let _slot = self.fetch_slots.try_acquire().ok()?;
        let max_bytes = i32::try_from(max_bytes).unwrap_or(i32::MAX).max(1);
        let mut fetch_partition = FetchPartition::default();
        fetch_partition.partition = partition;
        fetch_partition.fetch_offset = offset;
        fetch_partition.partition_max_bytes = max_bytes;
        fetch_partition.current_leader_epoch = -1;
        fetch_partition.last_fetched_epoch = -1;
        fetch_partition.log_start_offset = -1;
        let mut fetch_topic = FetchTopic::default();
        fetch_topic.topic = TopicName(StrBytes::from_string(topic.to_owned()));
        fetch_topic.partitions.push(fetch_partition);
        let mut request = FetchRequest::default();
        request.replica_id = BrokerId(-1);
        request.max_wait_ms = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
        request.min_bytes = 1;
        request.max_bytes = max_bytes;
        request.isolation_level = 0;
        request.session_id = 0;
        request.session_epoch = -1;
        request.topics.push(fetch_topic);
        let answer: Result<FetchResponse, KafkaError> = self
            .call(
                address,
                ApiKey::Fetch,
                FETCH_VERSION,
                &request,
                wait,
                usize::try_from(max_bytes).unwrap_or(usize::MAX) + MAX_PRODUCE_ANSWER_BYTES,
            )
            .await;
        Some(answer.and_then(|response| {
            if response.error_code != 0 {
                check(response.error_code, None)?;
            }
            let part = response
                .responses
                .first()
                .and_then(|t| t.partitions.first())
                .ok_or_else(|| unreachable(address, "an answer without the partition"))?;
            check(part.error_code, None)?;
            Ok(ReadBatches {
                records: part.records.clone().unwrap_or_default(),
                high_watermark: part.high_watermark,
                log_start_offset: part.log_start_offset,
            })
        }))
    }
}

/// The leader's error, if it answered one.
fn check(code: i16, message: Option<&StrBytes>) -> Result<(), KafkaError> {
    if code == 0 {
        return Ok(());
    }
    let error = ResponseError::try_from_code(code).unwrap_or(ResponseError::UnknownServerError);
    let message = message
        .map(|m| m.to_string())
        .unwrap_or_else(|| format!("the leader answered {error:?}"));
    Err(KafkaError::new(error, message))
}

fn request_frame<Req: Encodable>(
    key: ApiKey,
    version: i16,
    request: &Req,
    correlation_id: i32,
) -> Result<Bytes, KafkaError> {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("fjord-gateway"));
    let mut body = BytesMut::with_capacity(64);
    body.extend_from_slice(&[0; 4]);
    let encoded = header
        .encode(&mut body, key.request_header_version(version))
        .and_then(|()| request.encode(&mut body, version));
    encoded.map_err(|e| {
        KafkaError::new(
            ResponseError::UnknownServerError,
            format!("cannot encode a {key:?} request: {e}"),
        )
    })?;
    let len = u32::try_from(body.len() - 4)
        .map_err(|_| KafkaError::new(ResponseError::MessageTooLarge, "the request is too large"))?;
    body[..4].copy_from_slice(&len.to_be_bytes());
    Ok(body.freeze())
}

fn decode_response<Resp: Decodable>(
    mut frame: Bytes,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
) -> anyhow::Result<Resp> {
    let header = ResponseHeader::decode(&mut frame, key.response_header_version(version))?;
    anyhow::ensure!(
        header.correlation_id == correlation_id,
        "correlation id {} answers {correlation_id}",
        header.correlation_id
    );
    let response = Resp::decode(&mut frame, version)?;
    anyhow::ensure!(!frame.has_remaining(), "bytes after the answer");
    Ok(response)
}
