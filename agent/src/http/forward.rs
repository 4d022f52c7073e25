//! Forwarding a produce to the agent that leads its partition, as a Kafka
//! client of that agent's listener: the leader runs the one write path (and
//! its checks) exactly as for any Kafka producer.
//!
//! Connections are pooled per leader address; each carries one request at a
//! time, and concurrent forwards open more (at most [`MAX_IDLE`] are kept).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use fjord_gateway::KafkaError;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
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
/// The largest answer read from a leader (a produce answer is small).
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

/// Pooled connections to other agents' Kafka listeners.
#[derive(Debug, Default)]
pub(crate) struct Forwarder {
    idle: Mutex<HashMap<String, Vec<TcpStream>>>,
    correlation: AtomicI32,
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
        let correlation_id = self.correlation.fetch_add(1, Ordering::Relaxed);
        let frame = request_frame(topic, partition, batch, acks, timeout, correlation_id)?;
        let mut stream = match self.take(address) {
            Some(stream) => stream,
            None => tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
                .await
                .map_err(|_| unreachable(address, "connect timed out"))?
                .map_err(|e| unreachable(address, e))?,
        };
        // The leader answers within the request's timeout; a few seconds more
        // cover the network.
        let answer = tokio::time::timeout(timeout + Duration::from_secs(5), async {
            stream.write_all(&frame).await?;
            let len = stream.read_u32().await? as usize;
            if len > MAX_RESPONSE_BYTES {
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
        let response = decode_response(answer, correlation_id)
            .map_err(|e| unreachable(address, format!("a bad answer: {e}")))?;
        self.give_back(address, stream);
        let part = response
            .responses
            .first()
            .and_then(|t| t.partition_responses.first())
            .ok_or_else(|| unreachable(address, "an answer without the partition"))?;
        if part.error_code != 0 {
            let error = ResponseError::try_from_code(part.error_code)
                .unwrap_or(ResponseError::UnknownServerError);
            let message = part
                .error_message
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_else(|| format!("the leader answered {error:?}"));
            return Err(KafkaError::new(error, message));
        }
        Ok(part.base_offset)
    }
}

fn request_frame(
    topic: &str,
    partition: i32,
    batch: Bytes,
    acks: i16,
    timeout: Duration,
    correlation_id: i32,
) -> Result<Bytes, KafkaError> {
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
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::Produce as i16;
    header.request_api_version = PRODUCE_VERSION;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("fjord-gateway"));
    let mut body = BytesMut::with_capacity(64);
    body.extend_from_slice(&[0; 4]);
    let encoded = header
        .encode(
            &mut body,
            ApiKey::Produce.request_header_version(PRODUCE_VERSION),
        )
        .and_then(|()| request.encode(&mut body, PRODUCE_VERSION));
    encoded.map_err(|e| {
        KafkaError::new(
            ResponseError::UnknownServerError,
            format!("cannot encode a produce request: {e}"),
        )
    })?;
    let len = u32::try_from(body.len() - 4)
        .map_err(|_| KafkaError::new(ResponseError::MessageTooLarge, "the request is too large"))?;
    body[..4].copy_from_slice(&len.to_be_bytes());
    Ok(body.freeze())
}

fn decode_response(mut frame: Bytes, correlation_id: i32) -> anyhow::Result<ProduceResponse> {
    let header = ResponseHeader::decode(
        &mut frame,
        ApiKey::Produce.response_header_version(PRODUCE_VERSION),
    )?;
    anyhow::ensure!(
        header.correlation_id == correlation_id,
        "correlation id {} answers {correlation_id}",
        header.correlation_id
    );
    let response = ProduceResponse::decode(&mut frame, PRODUCE_VERSION)?;
    anyhow::ensure!(!frame.has_remaining(), "bytes after the answer");
    Ok(response)
}
