//! Read over HTTP: `GET /v1/topics/{topic}/partitions/{p}/records`.
//!
//! Query: `offset` (a number, `earliest` or `latest`; default `earliest`) or
//! `timestamp` (ms: from the first record at or after it), `max_records`
//! (default 500), `max_bytes` (default 1 MiB; at least one batch is read, as
//! Kafka returns one), `wait_ms` (default 0: how long to wait for a record
//! when there is none yet), `encoding` (`utf8` or `base64`).
//!
//! The answer's `next_offset` is where the next read starts: reading from it
//! again and again sees every record once, in order.

use std::time::Duration;

use axum::extract::{Path, State as Extract};
use axum::http::Uri;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{State, partition_index, query};
use crate::error::ApiError;
use crate::records::{Encoding, ReadRecord, decode_batches};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadQuery {
    #[serde(default)]
    offset: Option<String>,
    #[serde(default)]
    timestamp: Option<i64>,
    #[serde(default)]
    max_records: Option<usize>,
    #[serde(default)]
    max_bytes: Option<usize>,
    #[serde(default)]
    wait_ms: Option<u64>,
    #[serde(default)]
    encoding: Option<Encoding>,
}

#[derive(Debug, Serialize)]
struct ReadAnswer {
    topic: String,
    partition: i32,
    records: Vec<ReadRecord>,
    next_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
}

/// Where a read starts.
enum Start {
    Offset(i64),
    Earliest,
    Latest,
    Timestamp(i64),
}

fn start_of(params: &ReadQuery) -> Result<Start, ApiError> {
    match (params.offset.as_deref(), params.timestamp) {
        (Some(_), Some(_)) => Err(ApiError::bad_request("give offset or timestamp, not both")),
        (None, Some(timestamp)) => Ok(Start::Timestamp(timestamp)),
        (None | Some("earliest"), None) => Ok(Start::Earliest),
        (Some("latest"), None) => Ok(Start::Latest),
        (Some(text), None) => text
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .map(Start::Offset)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "offset {text:?} is not an offset, earliest or latest"
                ))
            }),
    }
}

/// `GET /v1/topics/{topic}/partitions/{partition}/records`.
pub(super) async fn records(
    Extract(state): Extract<State>,
    Path((topic, partition)): Path<(String, String)>,
    uri: Uri,
) -> Result<Response, ApiError> {
    let partition = partition_index(&partition)?;
    let params: ReadQuery = query(&uri)?;
    let start = start_of(&params)?;
    let settings = &state.settings;
    let max_records = params
        .max_records
        .unwrap_or(500)
        .clamp(1, settings.max_records);
    let max_bytes = params.max_bytes.unwrap_or(1024 * 1024).max(1);
    let wait = Duration::from_millis(params.wait_ms.unwrap_or(0)).min(settings.max_wait);
    let encoding = params.encoding.unwrap_or_default();
    let core = &state.core;
    let offset = match start {
        Start::Offset(offset) => offset,
        Start::Earliest => core.partition(&topic, partition).await?.log_start_offset,
        Start::Latest => core.partition(&topic, partition).await?.high_watermark,
        Start::Timestamp(timestamp) => {
            match core
                .offset_for_timestamp(&topic, partition, timestamp)
                .await?
            {
                Some(offset) => offset,
                None => core.partition(&topic, partition).await?.high_watermark,
            }
        }
    };
    let read = core
        .read(&topic, partition, offset, max_bytes, wait)
        .await?;
    let decoded = decode_batches(partition, read.records, offset, max_records, encoding).map_err(
        |message| {
            ApiError::from(crate::core::KafkaError::new(
                kafka_protocol::error::ResponseError::UnknownServerError,
                message,
            ))
        },
    )?;
    Ok(axum::Json(ReadAnswer {
        topic,
        partition,
        records: decoded.records,
        next_offset: decoded.next_offset,
        high_watermark: read.high_watermark,
        log_start_offset: read.log_start_offset,
    })
    .into_response())
}
