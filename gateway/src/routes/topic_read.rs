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

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::read::wants_events;
use super::{State, query};
use crate::error::ApiError;
use crate::ops::partition_read::Start;
use crate::ops::topic_read::{Cursor, TopicRead, bad_cursor, positions, read_once, watch_all};
use crate::records::{Encoding, ReadRecord, to_json};

/// How long a topic tail waits for a commit before it reads again (commits
/// wake it at once; this only bounds a wake-up that was missed).
const TAIL_WAIT: Duration = Duration::from_secs(5);

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

/// One pass, as JSON records.
async fn read_json(
    state: &State,
    read: &TopicRead,
    encoding: Encoding,
    cursor: &mut Cursor,
) -> Result<Vec<ReadRecord>, ApiError> {
    let records = read_once(&state.core, read, cursor).await?;
    Ok(records
        .iter()
        .map(|(partition, record)| to_json(*partition, record, encoding))
        .collect())
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
        .map(|text| Cursor::decode(text).ok_or_else(|| ApiError::from(bad_cursor())))
        .transpose()?;
    let resume = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(Cursor::decode)
                .ok_or_else(|| ApiError::from(bad_cursor()))
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
    };
    let encoding = params.encoding.unwrap_or_default();
    if wants_events(&headers) {
        // Unknown topics are refused before the stream starts.
        positions(&state.core, &read, &mut cursor).await?;
        let heartbeat = Duration::from_millis(params.heartbeat_ms.unwrap_or(15_000).max(100));
        return Ok(tail(state, read, encoding, cursor, heartbeat));
    }
    let wait = Duration::from_millis(params.wait_ms.unwrap_or(0)).min(settings.max_wait);
    let start_time = tokio::time::Instant::now();
    let deadline = start_time.checked_add(wait).unwrap_or(start_time);
    loop {
        let changed = watch_all(&state.core, &read.topic).await?;
        let records = read_json(&state, &read, encoding, &mut cursor).await?;
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
    encoding: Encoding,
    cursor: Cursor,
    pending: VecDeque<Event>,
    ended: bool,
}

/// The event stream of a topic tail: each record's event id is the cursor
/// just after it.
fn tail(
    state: State,
    read: TopicRead,
    encoding: Encoding,
    cursor: Cursor,
    heartbeat: Duration,
) -> Response {
    let shutdown = state.shutdown.clone();
    let tailing = Tailing {
        state,
        read,
        encoding,
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
                let changed = watch_all(&t.state.core, &t.read.topic).await?;
                let records = read_json(&t.state, &t.read, t.encoding, &mut t.cursor).await?;
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
