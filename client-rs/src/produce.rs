//! The low-level produce calls: one request, one partition, no batching
//! ([`Client::produce`]), and an idempotent producer's id
//! ([`Client::new_producer_id`]). [`crate::Producer`] is built on them.

use bytes::Bytes;
use hyper::Method;
use serde::Deserialize;

use crate::client::{Client, encode};
use crate::error::{Error, Result};
use crate::records::{Record, RecordMetadata, WireProduce, WireProduceAnswer};

/// An idempotent producer's id and epoch (`POST /v1/producers`, Kafka's
/// `InitProducerId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct ProducerId {
    /// The producer id.
    #[serde(rename = "producer_id")]
    pub id: i64,
    /// Its epoch.
    #[serde(rename = "producer_epoch")]
    pub epoch: i16,
}

/// What makes a produce idempotent: the producer, and the sequence number of
/// the request's first record in the partition (the next request's is this
/// one's plus its record count). The leader stores a retry of the same
/// request (same sequence) once and answers it with the original offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sequence {
    /// The producer.
    pub producer: ProducerId,
    /// The sequence number of the first record.
    pub first: i32,
}

impl Client {
    /// A new idempotent producer's id and epoch.
    pub async fn new_producer_id(&self) -> Result<ProducerId> {
        self.call_json::<(), _>(Method::POST, "/v1/producers", None)
            .await
    }

    /// Produces `records` to one partition in one request (one batch), with
    /// `acks=all`; idempotent when `sequence` is given. Each record's
    /// partition, offset and timestamp, in order.
    ///
    /// A transport failure or a `503` is sent again to the next agent (the
    /// same records, the same sequence), as every call is.
    pub async fn produce(
        &self,
        topic: &str,
        partition: i32,
        records: &[Record],
        sequence: Option<Sequence>,
    ) -> Result<Vec<RecordMetadata>> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let body = serde_json::to_vec(&WireProduce::of(records))
            .map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.produce_body(topic, partition, Bytes::from(body), records.len(), sequence)
            .await
    }

    /// Sends a JSON produce body of `count` records.
    pub(crate) async fn produce_body(
        &self,
        topic: &str,
        partition: i32,
        body: Bytes,
        count: usize,
        sequence: Option<Sequence>,
    ) -> Result<Vec<RecordMetadata>> {
        let mut path = format!(
            "/v1/topics/{}/partitions/{partition}/records?acks=all",
            encode(topic)
        );
        if let Some(s) = sequence {
            path.push_str(&format!(
                "&producer_id={}&producer_epoch={}&sequence={}",
                s.producer.id, s.producer.epoch, s.first
            ));
        }
        let answer = self
            .call(Method::POST, &path, Some(("application/json", body)))
            .await?;
        let parsed: WireProduceAnswer = serde_json::from_slice(&answer.body)
            .map_err(|e| Error::Decode(format!("a produce answer: {e}")))?;
        if parsed.offsets.len() != count {
            return Err(Error::Decode(format!(
                "a produce of {count} records answered {} outcomes",
                parsed.offsets.len()
            )));
        }
        Ok(parsed
            .offsets
            .into_iter()
            .map(|o| RecordMetadata {
                partition: o.partition,
                offset: o.offset.unwrap_or(-1),
                timestamp: o.timestamp.unwrap_or(-1),
            })
            .collect())
    }
}
