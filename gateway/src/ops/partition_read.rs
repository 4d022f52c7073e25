//! Reads of one partition: where they start, and the records found.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Record;

use super::Failure;
use crate::core::{Core, KafkaError};
use crate::records::decode_records;

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Start {
    /// At this offset.
    Offset(i64),
    /// At the log start offset.
    Earliest,
    /// At the high watermark.
    Latest,
    /// At the first record at or after this time (ms since the epoch), or
    /// the high watermark when there is none.
    Timestamp(i64),
}

/// The offset `start` names in a partition now.
pub(crate) async fn resolve(
    core: &Arc<dyn Core>,
    topic: &str,
    partition: i32,
    start: Start,
) -> Result<i64, Failure> {
    Ok(match start {
        Start::Offset(offset) if offset < 0 => {
            return Err(Failure::BadRequest(format!("offset {offset} is negative")));
        }
        Start::Offset(offset) => offset,
        Start::Earliest => core.partition(topic, partition).await?.log_start_offset,
        Start::Latest => core.partition(topic, partition).await?.high_watermark,
        Start::Timestamp(timestamp) => {
            match core
                .offset_for_timestamp(topic, partition, timestamp)
                .await?
            {
                Some(offset) => offset,
                None => core.partition(topic, partition).await?.high_watermark,
            }
        }
    })
}

/// Records read from a partition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PartitionRead {
    /// The records, in offset order.
    pub(crate) records: Vec<Record>,
    /// Where the next read starts.
    pub(crate) next_offset: i64,
    /// The partition's high watermark.
    pub(crate) high_watermark: i64,
    /// Its log start offset.
    pub(crate) log_start_offset: i64,
}

/// A stored batch that does not decode: the broker's fault, not the request's.
pub(crate) fn undecodable(message: String) -> Failure {
    Failure::Kafka(KafkaError::new(ResponseError::UnknownServerError, message))
}

/// At most `max_records` records from `offset` on (about `max_bytes`, at
/// least one batch), waiting up to `wait` for one when there is none yet.
pub(crate) async fn read(
    core: &Arc<dyn Core>,
    topic: &str,
    partition: i32,
    offset: i64,
    max_records: usize,
    max_bytes: usize,
    wait: Duration,
) -> Result<PartitionRead, Failure> {
    let read = core.read(topic, partition, offset, max_bytes, wait).await?;
    let decoded = decode_records(read.records, offset, max_records).map_err(undecodable)?;
    Ok(PartitionRead {
        records: decoded.records,
        next_offset: decoded.next_offset,
        high_watermark: read.high_watermark,
        log_start_offset: read.log_start_offset,
    })
}
