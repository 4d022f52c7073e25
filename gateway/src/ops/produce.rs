//! Producing records: each record placed on a partition as Kafka's default
//! partitioner places it, every partition's records encoded as one batch, the
//! batches produced at once.
//!
//! Every record is checked before anything is written: a bad one refuses the
//! whole request. Once batches go out, each partition succeeds or fails on
//! its own, as in a Kafka produce to several partitions.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fjord_common::partition_for_key;
use kafka_protocol::error::ResponseError;

use super::Failure;
use crate::core::{Acks, Append, Core, KafkaError, ProduceError};
use crate::records::{ProducerSequence, RecordBytes, encode_batch};

/// A record to produce, before it is placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unplaced {
    /// Its key, value and headers.
    pub(crate) bytes: RecordBytes,
    /// The partition it names, if it names one.
    pub(crate) partition: Option<i32>,
    /// Its timestamp (ms since the epoch); `None`: when received.
    pub(crate) timestamp: Option<i64>,
}

/// One record's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// Where it was placed.
    pub(crate) partition: i32,
    /// Its offset (-1 with `acks=0`) and timestamp; or its partition's failure.
    pub(crate) written: Result<(i64, i64), Failure>,
}

impl Outcome {
    /// The first failure among `outcomes`, if any.
    pub(crate) fn first_failure(outcomes: &[Outcome]) -> Option<&Failure> {
        outcomes.iter().find_map(|o| o.written.as_ref().err())
    }
}

/// How records are produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Options {
    /// Every record goes to this partition (a record naming another is refused).
    pub(crate) only_partition: Option<i32>,
    /// Makes the produce idempotent (needs `only_partition`).
    pub(crate) producer: Option<ProducerSequence>,
    /// The offset the first record must get (needs `only_partition`).
    pub(crate) expected_offset: Option<i64>,
    /// Kafka's `acks`.
    pub(crate) acks: Acks,
    /// How long to wait for the produce.
    pub(crate) timeout: Duration,
    /// Forwarded here by another agent (see [`Append::forwarded`]).
    pub(crate) forwarded: bool,
}

impl Options {
    fn append(&self) -> Append {
        Append {
            acks: self.acks,
            timeout: self.timeout,
            expected_offset: self.expected_offset,
            forwarded: self.forwarded,
        }
    }
}

/// Produces `records` to `topic`; each record's outcome, in request order.
/// `sticky` picks the partition of a request's records without a key (one
/// partition for all of them, as Kafka's sticky partitioner does per batch).
pub(crate) async fn produce(
    core: &Arc<dyn Core>,
    sticky: &AtomicU32,
    topic: &str,
    records: Vec<Unplaced>,
    options: Options,
) -> Result<Vec<Outcome>, Failure> {
    if records.is_empty() {
        return Err(Failure::BadRequest("no records".into()));
    }
    if options.only_partition.is_none()
        && (options.producer.is_some() || options.expected_offset.is_some())
    {
        return Err(Failure::BadRequest(
            "an idempotent produce, or one with expected_offset, names its partition".into(),
        ));
    }
    let count = core.topic(topic).await?.partition_count;
    let now = core.now_millis();
    let sticky =
        i32::try_from(sticky.fetch_add(1, Ordering::Relaxed) % count.max(1) as u32).unwrap_or(0);
    // Partitions in order of first appearance; each record's place in its batch.
    let mut order: Vec<i32> = Vec::new();
    let mut groups: HashMap<i32, Vec<(i64, RecordBytes)>> = HashMap::new();
    let mut slots = Vec::with_capacity(records.len());
    for (i, record) in records.into_iter().enumerate() {
        let partition = match (record.partition, options.only_partition, &record.bytes.key) {
            (Some(p), Some(only), _) if p != only => {
                return Err(Failure::BadRequest(format!(
                    "record {i} names partition {p} in a request to partition {only}"
                )));
            }
            (Some(p), _, _) | (None, Some(p), _) => p,
            (None, None, Some(key)) => partition_for_key(key, count),
            (None, None, None) => sticky,
        };
        if partition < 0 || partition >= count {
            return Err(Failure::Kafka(KafkaError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("record {i}: topic {topic} has no partition {partition}"),
            )));
        }
        let timestamp = record.timestamp.unwrap_or(now);
        if timestamp < 0 {
            return Err(Failure::Kafka(KafkaError::new(
                ResponseError::InvalidTimestamp,
                format!("record {i}: timestamp {timestamp} is negative"),
            )));
        }
        let group = groups.entry(partition).or_insert_with(|| {
            order.push(partition);
            Vec::new()
        });
        slots.push((partition, group.len(), timestamp));
        group.push((timestamp, record.bytes));
    }
    let mut batches = Vec::with_capacity(order.len());
    for partition in &order {
        let records = groups.remove(partition).unwrap_or_default();
        let batch = encode_batch(&records, options.producer).map_err(Failure::BadRequest)?;
        batches.push((*partition, batch));
    }
    let results = futures::future::join_all(batches.into_iter().map(|(partition, batch)| {
        let core = core.clone();
        async move {
            let result = core
                .produce(topic, partition, batch, options.append())
                .await;
            (partition, result.map_err(Failure::from))
        }
    }))
    .await;
    let results: HashMap<i32, Result<i64, Failure>> = results.into_iter().collect();
    Ok(slots
        .into_iter()
        .map(|(partition, index, timestamp)| {
            let written = match results.get(&partition) {
                Some(Ok(base)) if *base < 0 => Ok((-1, timestamp)),
                Some(Ok(base)) => Ok((base + i64::try_from(index).unwrap_or(0), timestamp)),
                Some(Err(failure)) => Err(failure.clone()),
                None => Err(Failure::Kafka(KafkaError::new(
                    ResponseError::UnknownServerError,
                    "not produced",
                ))),
            };
            Outcome { partition, written }
        })
        .collect())
}

/// Kafka v2 record batches produced to one partition as given: the base
/// offset of the first (-1 with `acks=0`).
pub(crate) async fn produce_batches(
    core: &Arc<dyn Core>,
    topic: &str,
    partition: i32,
    batches: Bytes,
    options: Options,
) -> Result<i64, Failure> {
    if batches.is_empty() {
        return Err(Failure::BadRequest("no record batch".into()));
    }
    if options.producer.is_some() {
        return Err(Failure::BadRequest(
            "a record batch carries its own producer id, epoch and sequence".into(),
        ));
    }
    Ok(core
        .produce(topic, partition, batches, options.append())
        .await?)
}

impl From<ProduceError> for Failure {
    fn from(error: ProduceError) -> Self {
        match error {
            ProduceError::Kafka(error) => Self::Kafka(error),
            ProduceError::OffsetMismatch { expected, actual } => {
                Self::OffsetMismatch { expected, actual }
            }
        }
    }
}
