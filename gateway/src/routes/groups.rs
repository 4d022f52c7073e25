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
//!
//! A poll's answer lists the partitions `assigned` and `revoked` by it; a
//! member acks a revocation by polling with the cursor it was given (which
//! no longer holds the revoked partitions), after committing what it
//! processed of them (`auto_commit` does that on the poll itself).

use axum::body::Body;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{State, json, media_type, read_body};
use crate::error::ApiError;
use crate::ops::group::{self, GroupCursor, Join, Poll, Polled, bad_cursor};
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
