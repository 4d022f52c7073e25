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
//!
//! # Tailing: Server-Sent Events
//!
//! The same URL with `Accept: text/event-stream` streams the partition from
//! the start asked on, as it grows: one `record` event per record, its data
//! the record's JSON and its `id` the offset after it. A client that
//! reconnects (to any agent) with `Last-Event-ID` resumes exactly there: no
//! gap, no duplicate. Comments (`: heartbeat`) keep an idle stream alive every
//! `heartbeat_ms` (default 15000). An error ends the stream with an `error`
//! event carrying the error object; the agent shutting down ends it too.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{State, partition_index, query};
use crate::error::ApiError;
use crate::ops::partition_read::{Start, resolve};
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
    #[serde(default)]
    heartbeat_ms: Option<u64>,
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

/// Where a tail resumes: the `Last-Event-ID` a reconnecting client sends.
fn last_event_id(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<i64>().ok())
        .filter(|o| *o >= 0)
        .map(Some)
        .ok_or_else(|| ApiError::bad_request("Last-Event-ID is not an offset"))
}

/// Whether the client asks for an event stream.
pub(super) fn wants_events(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// `GET /v1/topics/{topic}/partitions/{partition}/records`.
pub(super) async fn records(
    Extract(state): Extract<State>,
    Path((topic, partition)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let partition = partition_index(&partition)?;
    let params: ReadQuery = query(&uri)?;
    // The query and Last-Event-ID are both checked; Last-Event-ID (where a
    // tail resumes) overrides the query for a tail only.
    let asked = start_of(&params)?;
    let resume = last_event_id(&headers)?.filter(|_| wants_events(&headers));
    let start = resume.map_or(asked, Start::Offset);
    let settings = &state.settings;
    let max_records = params
        .max_records
        .unwrap_or(500)
        .clamp(1, settings.max_records);
    let max_bytes = params.max_bytes.unwrap_or(1024 * 1024).max(1);
    let wait = Duration::from_millis(params.wait_ms.unwrap_or(0)).min(settings.max_wait);
    let encoding = params.encoding.unwrap_or_default();
    let core = &state.core;
    let offset = resolve(core, &topic, partition, start).await?;
    if wants_events(&headers) {
        let heartbeat = Duration::from_millis(params.heartbeat_ms.unwrap_or(15_000).max(100));
        return Ok(tail(
            state.clone(),
            Tail {
                topic,
                partition,
                offset,
                max_records,
                max_bytes,
                encoding,
            },
            heartbeat,
        ));
    }
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

/// What a tail streams.
#[derive(Debug)]
struct Tail {
    topic: String,
    partition: i32,
    /// The next offset to send.
    offset: i64,
    max_records: usize,
    max_bytes: usize,
    encoding: Encoding,
}

/// How long one read of a tail waits for a commit before it reads again
/// (commits wake it at once; this only bounds a wake-up that was missed).
const TAIL_WAIT: Duration = Duration::from_secs(5);

/// A tail's state between events.
struct Tailing {
    state: State,
    tail: Tail,
    pending: VecDeque<Event>,
    ended: bool,
}

/// The event stream of a tail.
fn tail(state: State, tail: Tail, heartbeat: Duration) -> Response {
    let shutdown = state.shutdown.clone();
    let tailing = Tailing {
        state,
        tail,
        pending: VecDeque::new(),
        ended: false,
    };
    let events = futures::stream::unfold(tailing, |mut t| async move {
        loop {
            if let Some(event) = t.pending.pop_front() {
                return Some((Ok::<Event, Infallible>(event), t));
            }
            if t.ended {
                return None;
            }
            let read = t.state.core.read(
                &t.tail.topic,
                t.tail.partition,
                t.tail.offset,
                t.tail.max_bytes,
                TAIL_WAIT,
            );
            let read = tokio::select! {
                read = read => read,
                () = t.state.shutdown.cancelled() => return None,
            };
            let decoded = read.map_err(ApiError::from).and_then(|read| {
                decode_batches(
                    t.tail.partition,
                    read.records,
                    t.tail.offset,
                    t.tail.max_records,
                    t.tail.encoding,
                )
                .map_err(|message| {
                    ApiError::from(crate::core::KafkaError::new(
                        kafka_protocol::error::ResponseError::UnknownServerError,
                        message,
                    ))
                })
            });
            match decoded {
                Ok(decoded) => {
                    for record in decoded.records {
                        let id = (record.offset + 1).to_string();
                        match Event::default().event("record").id(id).json_data(&record) {
                            Ok(event) => t.pending.push_back(event),
                            Err(error) => {
                                t.pending
                                    .push_back(error_event(&ApiError::bad_request(format!(
                                        "cannot write a record as an event: {error}"
                                    ))));
                                t.ended = true;
                                break;
                            }
                        }
                    }
                    t.tail.offset = t.tail.offset.max(decoded.next_offset);
                }
                Err(error) => {
                    t.pending.push_back(error_event(&error));
                    t.ended = true;
                }
            }
        }
    });
    let events = futures::StreamExt::take_until(events, shutdown.cancelled_owned());
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response()
}

/// The event that ends a tail on an error: the error object, and the HTTP
/// status a plain read would have answered (the stream's own status is 200).
pub(super) fn error_event(error: &ApiError) -> Event {
    let data = serde_json::json!({ "error": error.body, "status": error.status.as_u16() });
    Event::default().event("error").data(data.to_string())
}
