//! Group consumption over HTTP: members of the server-side consumer protocol
//! whose state between calls is an opaque cursor they carry, so every call
//! may go to a different agent.
//!
//! | route | what |
//! |---|---|
//! | `POST /v1/groups/{group}/members` | join: `topics` or `pattern`, `session_timeout_ms`, `instance_id`, `assignor`, `auto_offset_reset`; answers the member id, epoch, assignment and cursor |
//! | `POST /v1/groups/{group}/members/{member}/poll` | heartbeat and read: `member_epoch`, `cursor`, `max_records`, `max_bytes`, `wait_ms`, `auto_commit` |
//! | `POST /v1/groups/{group}/members/{member}/commit` | commit the `cursor`'s positions, or `offsets`, under `member_epoch` (409 when stale) |
//! | `DELETE /v1/groups/{group}/members/{member}` | leave |
//! | `GET /v1/groups/{group}/members/{member}/records` | the member as a Server-Sent Events stream: `member_epoch`, `cursor`, `auto_commit`, `heartbeat_ms`, `encoding` |
//!
//! The stream heartbeats for the member while it is open: a `member` event
//! (member id, epoch, cursor, assignment, assigned, revoked) first and on
//! every change, then `record` events whose `id` is the cursor just after the
//! record; `POST …/commit` with that cursor and the latest epoch commits it.
//! With `auto_commit`, a revoked partition's position (past every record
//! sent) is committed before it is given up. A stream that ends (its agent
//! died) is opened again on any agent with the last event's cursor and epoch
//! (`Last-Event-ID` carries the cursor).
//!
//! A poll's answer lists the partitions `assigned` and `revoked` by it; a
//! member acks a revocation by polling with the cursor it was given (which
//! no longer holds the revoked partitions), after committing what it
//! processed of them (`auto_commit` does that on the poll itself).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::read::error_event;
use super::{State, json, media_type, query, read_body};
use crate::error::ApiError;
use crate::ops::group::{self, GroupCursor, Join, Poll, Polled, Streamed, bad_cursor};
use crate::ops::partition_read::Start;
use crate::records::{Encoding, ReadRecord, to_json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JoinBody {
    #[serde(default)]
    member_id: Option<String>,
    #[serde(default)]
    instance_id: Option<String>,
    #[serde(default)]
    topics: Option<Vec<String>>,
    #[serde(default)]
    pattern: Option<String>,
    #[serde(default)]
    assignor: Option<String>,
    #[serde(default)]
    session_timeout_ms: Option<i32>,
    #[serde(default)]
    rebalance_timeout_ms: Option<i32>,
    #[serde(default)]
    auto_offset_reset: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollBody {
    member_epoch: i32,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    max_records: Option<usize>,
    #[serde(default)]
    max_bytes: Option<usize>,
    #[serde(default)]
    wait_ms: Option<u64>,
    #[serde(default)]
    auto_commit: Option<bool>,
    #[serde(default)]
    auto_offset_reset: Option<String>,
    #[serde(default)]
    encoding: Option<Encoding>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitBody {
    member_epoch: i32,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    offsets: Option<Vec<CommitOffset>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CommitOffset {
    topic: String,
    partition: i32,
    offset: i64,
}

#[derive(Debug, Serialize)]
struct TopicPartition {
    topic: String,
    partition: i32,
}

#[derive(Debug, Serialize)]
struct GroupRecord {
    topic: String,
    #[serde(flatten)]
    record: ReadRecord,
}

#[derive(Debug, Serialize)]
struct PollAnswer {
    member_id: String,
    member_epoch: i32,
    heartbeat_interval_ms: i32,
    cursor: String,
    /// Every partition the member owns after this call.
    assignment: Vec<TopicPartition>,
    assigned: Vec<TopicPartition>,
    revoked: Vec<TopicPartition>,
    records: Vec<GroupRecord>,
}

fn pairs(list: Vec<(String, i32)>) -> Vec<TopicPartition> {
    list.into_iter()
        .map(|(topic, partition)| TopicPartition { topic, partition })
        .collect()
}

fn answer(polled: Polled, encoding: Encoding) -> PollAnswer {
    PollAnswer {
        member_id: polled.member_id,
        member_epoch: polled.member_epoch,
        heartbeat_interval_ms: polled.heartbeat_interval_ms,
        cursor: polled.cursor.encode(),
        assignment: pairs(polled.cursor.0.keys().cloned().collect()),
        assigned: pairs(polled.assigned),
        revoked: pairs(polled.revoked),
        records: polled
            .records
            .iter()
            .map(|(topic, partition, record)| GroupRecord {
                topic: topic.clone(),
                record: to_json(*partition, record, encoding),
            })
            .collect(),
    }
}

fn reset(text: Option<&str>) -> Result<Start, ApiError> {
    match text {
        None | Some("earliest") => Ok(Start::Earliest),
        Some("latest") => Ok(Start::Latest),
        Some(other) => Err(ApiError::bad_request(format!(
            "auto_offset_reset {other:?} is not earliest or latest"
        ))),
    }
}

async fn body_of<T: serde::de::DeserializeOwned>(
    state: &State,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    if media_type(headers).as_deref() != Some("application/json") {
        return Err(ApiError::unsupported_media_type(
            media_type(headers).as_deref().unwrap_or("none"),
            "application/json",
        ));
    }
    let body = read_body(headers, body, state.settings.max_body_bytes).await?;
    json(&body)
}

fn cursor_of(text: Option<&str>) -> Result<GroupCursor, ApiError> {
    match text {
        None => Ok(GroupCursor::default()),
        Some(text) => GroupCursor::decode(text).ok_or_else(|| ApiError::from(bad_cursor())),
    }
}

/// `POST /v1/groups/{group}/members`: 201 with the member.
pub(super) async fn join(
    Extract(state): Extract<State>,
    Path(group_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: JoinBody = body_of(&state, &headers, body).await?;
    if request.member_id.as_deref() == Some("") {
        return Err(ApiError::bad_request("member_id is empty"));
    }
    let joined = group::join(
        &state.core,
        Join {
            group: group_id,
            member_id: request.member_id,
            instance_id: request.instance_id,
            topics: request.topics,
            pattern: request.pattern,
            assignor: request.assignor,
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            reset: reset(request.auto_offset_reset.as_deref())?,
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(answer(joined, Encoding::default())),
    )
        .into_response())
}

/// `POST /v1/groups/{group}/members/{member}/poll`.
pub(super) async fn poll(
    Extract(state): Extract<State>,
    Path((group_id, member_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: PollBody = body_of(&state, &headers, body).await?;
    let settings = &state.settings;
    let polled = group::poll(
        &state.core,
        Poll {
            group: group_id,
            member_id,
            member_epoch: request.member_epoch,
            cursor: cursor_of(request.cursor.as_deref())?,
            max_records: request
                .max_records
                .unwrap_or(500)
                .clamp(1, settings.max_records),
            max_bytes: request.max_bytes.unwrap_or(1024 * 1024).max(1),
            wait: std::time::Duration::from_millis(request.wait_ms.unwrap_or(0))
                .min(settings.max_wait),
            auto_commit: request.auto_commit.unwrap_or(false),
            reset: reset(request.auto_offset_reset.as_deref())?,
        },
    )
    .await?;
    Ok(axum::Json(answer(polled, request.encoding.unwrap_or_default())).into_response())
}

/// `POST /v1/groups/{group}/members/{member}/commit`: 204.
pub(super) async fn commit(
    Extract(state): Extract<State>,
    Path((group_id, member_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let request: CommitBody = body_of(&state, &headers, body).await?;
    let offsets: Vec<(String, i32, i64)> = match (request.cursor, request.offsets) {
        (Some(cursor), None) => cursor_of(Some(&cursor))?
            .0
            .into_iter()
            .map(|((t, p), o)| (t, p, o))
            .collect(),
        (None, Some(offsets)) => offsets
            .into_iter()
            .map(|o| (o.topic, o.partition, o.offset))
            .collect(),
        _ => return Err(ApiError::bad_request("give a cursor or offsets, not both")),
    };
    group::commit(
        &state.core,
        &group_id,
        &member_id,
        request.member_epoch,
        offsets,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `DELETE /v1/groups/{group}/members/{member}`: 204.
pub(super) async fn leave(
    Extract(state): Extract<State>,
    Path((group_id, member_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    group::leave(&state.core, &group_id, &member_id, None).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct StreamQuery {
    member_epoch: i32,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    auto_commit: Option<bool>,
    #[serde(default)]
    heartbeat_ms: Option<u64>,
    #[serde(default)]
    encoding: Option<Encoding>,
}

#[derive(Debug, Serialize)]
struct MemberEvent {
    member_id: String,
    member_epoch: i32,
    cursor: String,
    assignment: Vec<TopicPartition>,
    assigned: Vec<TopicPartition>,
    revoked: Vec<TopicPartition>,
}

fn member_event(polled: &Polled) -> Result<Event, ApiError> {
    Event::default()
        .event("member")
        .id(polled.cursor.encode())
        .json_data(MemberEvent {
            member_id: polled.member_id.clone(),
            member_epoch: polled.member_epoch,
            cursor: polled.cursor.encode(),
            assignment: pairs(polled.cursor.0.keys().cloned().collect()),
            assigned: pairs(polled.assigned.clone()),
            revoked: pairs(polled.revoked.clone()),
        })
        .map_err(|e| ApiError::bad_request(format!("cannot write an event: {e}")))
}

/// `GET /v1/groups/{group}/members/{member}/records`: the member as an
/// event stream.
pub(super) async fn stream(
    Extract(state): Extract<State>,
    Path((group_id, member_id)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params: StreamQuery = query(&uri)?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(|text| GroupCursor::decode(text).ok_or_else(|| ApiError::from(bad_cursor())))
        .transpose()?;
    let cursor = match resume {
        Some(cursor) => cursor,
        None => cursor_of(params.cursor.as_deref())?,
    };
    // The first pass answers before the stream starts, so an unknown member
    // or a stale epoch is an error status, not an event.
    let polled = group::poll(
        &state.core,
        Poll {
            group: group_id.clone(),
            member_id,
            member_epoch: params.member_epoch,
            cursor,
            max_records: 0,
            max_bytes: 1,
            wait: Duration::ZERO,
            auto_commit: false,
            reset: Start::Earliest,
        },
    )
    .await?;
    let first = member_event(&polled)?;
    let member = Streamed::new(group_id, &polled, params.auto_commit.unwrap_or(false));
    let heartbeat = Duration::from_millis(params.heartbeat_ms.unwrap_or(15_000).max(100));
    let encoding = params.encoding.unwrap_or_default();
    let streaming = Streaming {
        state: state.clone(),
        member,
        encoding,
        pending: VecDeque::from([first]),
        ended: false,
    };
    let events = futures::stream::unfold(streaming, |mut s| async move {
        loop {
            if let Some(event) = s.pending.pop_front() {
                return Some((Ok::<Event, Infallible>(event), s));
            }
            if s.ended {
                return None;
            }
            let wait = s.member.heartbeat.min(Duration::from_secs(1));
            let pass = tokio::select! {
                pass = s.member.pass(&s.state.core, 500, wait) => pass,
                () = s.state.shutdown.cancelled() => return None,
            };
            match pass {
                Ok(pass) => {
                    if let Some(changed) = &pass.changed {
                        match member_event(changed) {
                            Ok(event) => s.pending.push_back(event),
                            Err(error) => {
                                s.pending.push_back(error_event(&error));
                                s.ended = true;
                            }
                        }
                    }
                    for (topic, partition, record, cursor) in pass.records {
                        let data = GroupRecord {
                            topic,
                            record: to_json(partition, &record, s.encoding),
                        };
                        match Event::default()
                            .event("record")
                            .id(cursor.encode())
                            .json_data(&data)
                        {
                            Ok(event) => s.pending.push_back(event),
                            Err(error) => {
                                s.pending
                                    .push_back(error_event(&ApiError::bad_request(format!(
                                        "cannot write a record as an event: {error}"
                                    ))));
                                s.ended = true;
                                break;
                            }
                        }
                    }
                }
                Err(failure) => {
                    s.pending.push_back(error_event(&ApiError::from(failure)));
                    s.ended = true;
                }
            }
        }
    });
    let shutdown = state.shutdown.clone();
    let events = futures::StreamExt::take_until(events, shutdown.cancelled_owned());
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(heartbeat).text("heartbeat"))
        .into_response())
}

/// A streamed member between events.
struct Streaming {
    state: State,
    member: Streamed,
    encoding: Encoding,
    pending: VecDeque<Event>,
    ended: bool,
}
