//! Reads of a whole topic: `GET /v1/topics/{topic}/records`.
//!
//! Every partition is read, each from its own position; the answer carries an
//! opaque `cursor` holding all of them, and a read with `cursor=` goes on
//! from there (on any agent: the cursor is the whole state). Without a cursor,
//! every partition starts at `offset` (`earliest`, the default, or `latest`)
//! or at `timestamp`. Partitions added after a cursor was made start at their
//! beginning. Query: `max_records` (default 500), `max_bytes` (default 1 MiB
//! over all partitions; at least one batch), `wait_ms` (how long to wait for
//! a record when there is none yet), `encoding`.
//!
//! With `Accept: text/event-stream` the same URL tails the topic: `record`
//! events whose `id` is the cursor just after that record, so a client that
//! reconnects with `Last-Event-ID` resumes exactly there on any agent.
//!
//! Within a partition records come in offset order; partitions interleave.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use super::read::wants_events;
use super::{State, query};
use crate::core::KafkaError;
use crate::error::ApiError;
use crate::records::{Encoding, ReadRecord, decode_batches};

/// How long a topic tail waits for a commit before it reads again (commits
/// wake it at once; this only bounds a wake-up that was missed).
const TAIL_WAIT: Duration = Duration::from_secs(5);

/// Every partition's next offset, as one opaque string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cursor(BTreeMap<i32, i64>);

impl Cursor {
    const PREFIX: &'static str = "v1:";

    /// The opaque form: base64url of `v1:partition=offset,…`.
    pub(crate) fn encode(&self) -> String {
        let body: Vec<String> = self.0.iter().map(|(p, o)| format!("{p}={o}")).collect();
        URL_SAFE_NO_PAD.encode(format!("{}{}", Self::PREFIX, body.join(",")))
    }

    /// From the opaque form; `None` when it is not one.
    pub(crate) fn decode(text: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let body = text.strip_prefix(Self::PREFIX)?;
        let mut positions = BTreeMap::new();
        for part in body.split(',').filter(|p| !p.is_empty()) {
            let (p, o) = part.split_once('=')?;
            let (p, o) = (p.parse::<i32>().ok()?, o.parse::<i64>().ok()?);
            if p < 0 || o < 0 || positions.insert(p, o).is_some() {
                return None;
            }
        }
        Some(Self(positions))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicReadQuery {
    #[serde(default)]
    cursor: Option<String>,
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
struct TopicReadAnswer {
    topic: String,
    records: Vec<ReadRecord>,
    cursor: String,
}

/// Where partitions without a position in the cursor start.
#[derive(Debug, Clone, Copy)]
enum Start {
    Earliest,
    Latest,
    Timestamp(i64),
}

/// What one read of a topic needs.
#[derive(Debug)]
struct TopicRead {
    topic: String,
    start: Start,
    max_records: usize,
    max_bytes: usize,
    encoding: Encoding,
}

fn bad_cursor() -> ApiError {
    ApiError::bad_request("the cursor is not one this API gave")
}

/// The positions to read from: the cursor's, and a start for the partitions it
/// does not name.
async fn positions(state: &State, read: &TopicRead, cursor: &mut Cursor) -> Result<(), ApiError> {
    let info = state.core.topic(&read.topic).await?;
    cursor.0.retain(|p, _| *p < info.partition_count);
    for partition in 0..info.partition_count {
        if cursor.0.contains_key(&partition) {
            continue;
        }
        let offset = match read.start {
            Start::Earliest => {
                state
                    .core
                    .partition(&read.topic, partition)
                    .await?
                    .log_start_offset
            }
            Start::Latest => {
                state
                    .core
                    .partition(&read.topic, partition)
                    .await?
                    .high_watermark
            }
            Start::Timestamp(ts) => match state
                .core
                .offset_for_timestamp(&read.topic, partition, ts)
                .await?
            {
                Some(offset) => offset,
                None => {
                    state
                        .core
                        .partition(&read.topic, partition)
                        .await?
                        .high_watermark
                }
            },
        };
        cursor.0.insert(partition, offset);
    }
    Ok(())
}

/// A subscription to the commits of every partition of the topic: taken
/// before a pass, so a commit during it is not missed.
async fn watch_all(
    state: &State,
    read: &TopicRead,
) -> Result<futures::future::BoxFuture<'static, ()>, ApiError> {
    let info = state.core.topic(&read.topic).await?;
    let partitions: Vec<i32> = (0..info.partition_count).collect();
    Ok(state.core.watch(&read.topic, &partitions).await?)
}

/// One pass over every partition, without waiting: the records found (at
/// most `max_records`, about `max_bytes`), with `cursor` moved past them.
async fn read_once(
    state: &State,
    read: &TopicRead,
    cursor: &mut Cursor,
) -> Result<Vec<ReadRecord>, ApiError> {
    positions(state, read, cursor).await?;
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let partitions: Vec<(i32, i64)> = cursor.0.iter().map(|(p, o)| (*p, *o)).collect();
    for (partition, offset) in partitions {
        if records.len() >= read.max_records || (bytes > 0 && bytes >= read.max_bytes) {
            break;
        }
        let batches = state
            .core
            .read(
                &read.topic,
                partition,
                offset,
                read.max_bytes.saturating_sub(bytes).max(1),
                Duration::ZERO,
            )
            .await?;
        bytes += batches.records.len();
        let decoded = decode_batches(
            partition,
            batches.records,
            offset,
            read.max_records - records.len(),
            read.encoding,
        )
        .map_err(|message| {
            ApiError::from(KafkaError::new(
                kafka_protocol::error::ResponseError::UnknownServerError,
                message,
            ))
        })?;
        cursor.0.insert(partition, offset.max(decoded.next_offset));
        records.extend(decoded.records);
    }
    Ok(records)
}

/// `GET /v1/topics/{topic}/records`.
pub(super) async fn records(
    Extract(state): Extract<State>,
    Path(topic): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params: TopicReadQuery = query(&uri)?;
    // A tail's Last-Event-ID overrides the cursor; the cursor is checked anyway.
    let asked = params
        .cursor
        .as_deref()
        .map(|text| Cursor::decode(text).ok_or_else(bad_cursor))
        .transpose()?;
    let resume = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(Cursor::decode)
                .ok_or_else(bad_cursor)
        })
        .transpose()?
        .filter(|_| wants_events(&headers));
    let mut cursor = resume.or(asked).unwrap_or_default();
    let start = match (params.offset.as_deref(), params.timestamp) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request("give offset or timestamp, not both"));
        }
        (None, Some(ts)) => Start::Timestamp(ts),
        (None | Some("earliest"), None) => Start::Earliest,
        (Some("latest"), None) => Start::Latest,
        (Some(other), None) => {
            return Err(ApiError::bad_request(format!(
                "offset {other:?} is not earliest or latest (a topic read goes on from a cursor)"
            )));
        }
    };
    let settings = &state.settings;
    let read = TopicRead {
        topic,
        start,
        max_records: params
            .max_records
            .unwrap_or(500)
            .clamp(1, settings.max_records),
        max_bytes: params.max_bytes.unwrap_or(1024 * 1024).max(1),
        encoding: params.encoding.unwrap_or_default(),
    };
    if wants_events(&headers) {
        // Unknown topics are refused before the stream starts.
        positions(&state, &read, &mut cursor).await?;
        let heartbeat = Duration::from_millis(params.heartbeat_ms.unwrap_or(15_000).max(100));
        return Ok(tail(state, read, cursor, heartbeat));
    }
    let wait = Duration::from_millis(params.wait_ms.unwrap_or(0)).min(settings.max_wait);
    let start_time = tokio::time::Instant::now();
    let deadline = start_time.checked_add(wait).unwrap_or(start_time);
    loop {
        let changed = watch_all(&state, &read).await?;
        let records = read_once(&state, &read, &mut cursor).await?;
        let now = tokio::time::Instant::now();
        let timed_out = now >= deadline
            || (records.is_empty() && tokio::time::timeout_at(deadline, changed).await.is_err());
        if !records.is_empty() || timed_out {
            return Ok(axum::Json(TopicReadAnswer {
                topic: read.topic,
                records,
                cursor: cursor.encode(),
            })
            .into_response());
        }
    }
}

/// A topic tail's state between events.
struct Tailing {
    state: State,
    read: TopicRead,
    cursor: Cursor,
    pending: VecDeque<Event>,
    ended: bool,
}

/// The event stream of a topic tail: each record's event id is the cursor
/// just after it.
fn tail(state: State, read: TopicRead, cursor: Cursor, heartbeat: Duration) -> Response {
    let shutdown = state.shutdown.clone();
    let tailing = Tailing {
        state,
        read,
        cursor,
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
            let before = t.cursor.clone();
            let pass = async {
                let changed = watch_all(&t.state, &t.read).await?;
                let records = read_once(&t.state, &t.read, &mut t.cursor).await?;
                Ok::<_, ApiError>((changed, records))
            };
            let pass = tokio::select! {
                pass = pass => pass,
                () = t.state.shutdown.cancelled() => return None,
            };
            match pass {
                Ok((changed, records)) if records.is_empty() => {
                    tokio::select! {
                        _ = tokio::time::timeout(TAIL_WAIT, changed) => {}
                        () = t.state.shutdown.cancelled() => return None,
                    }
                }
                Ok((_, records)) => {
                    // Each event's id: the positions before this pass, moved
                    // past the records sent so far.
                    let mut at = before;
                    for record in records {
                        at.0.insert(record.partition, record.offset + 1);
                        match Event::default()
                            .event("record")
                            .id(at.encode())
                            .json_data(&record)
                        {
                            Ok(event) => t.pending.push_back(event),
                            Err(error) => {
                                t.pending.push_back(super::read::error_event(
                                    &ApiError::bad_request(format!(
                                        "cannot write a record as an event: {error}"
                                    )),
                                ));
                                t.ended = true;
                                break;
                            }
                        }
                    }
                }
                Err(error) => {
                    t.pending.push_back(super::read::error_event(&error));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_they_did_not_make() {
        let cursor = Cursor([(0, 5), (3, 0), (7, 1_000_000)].into_iter().collect());
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(
            Cursor::decode(&Cursor::default().encode()),
            Some(Cursor::default())
        );
        // Garbage, nothing, a negative offset, another prefix, a partition twice.
        for bad in ["!!!", "", "djE6MD0tMQ", "eDox", "djE6MD0xLDA9Mg"] {
            assert_eq!(Cursor::decode(bad), None, "{bad:?}");
        }
    }
}
