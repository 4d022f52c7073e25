//! Topics over HTTP: list, create, describe (with each partition's offsets
//! and leader), delete.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{State, json, media_type, partition_index, read_body};
use crate::core::{NewTopicRequest, PartitionInfo, TopicInfo};
use crate::error::ApiError;
use crate::records::configs_from_json;

#[derive(Debug, Serialize)]
struct TopicSummary {
    name: String,
    id: String,
    partitions: i32,
}

#[derive(Debug, Serialize)]
struct PartitionJson {
    partition: i32,
    log_start_offset: i64,
    high_watermark: i64,
    leader: i32,
}

impl From<PartitionInfo> for PartitionJson {
    fn from(p: PartitionInfo) -> Self {
        Self {
            partition: p.partition,
            log_start_offset: p.log_start_offset,
            high_watermark: p.high_watermark,
            leader: p.leader,
        }
    }
}

#[derive(Debug, Serialize)]
struct TopicJson {
    name: String,
    id: String,
    partitions: Vec<PartitionJson>,
    configs: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    partitions: Option<i32>,
    #[serde(default)]
    configs: BTreeMap<String, serde_json::Value>,
}

/// Every partition of `topic`, with offsets and leaders.
async fn described(state: &State, topic: TopicInfo) -> Result<TopicJson, ApiError> {
    let partitions = crate::ops::partitions_of(&state.core, &topic).await?;
    Ok(TopicJson {
        name: topic.name,
        id: topic.id,
        partitions: partitions.into_iter().map(PartitionJson::from).collect(),
        configs: topic.configs,
    })
}

/// `GET /v1/topics`.
pub(super) async fn list_topics(Extract(state): Extract<State>) -> Result<Response, ApiError> {
    let topics: Vec<TopicSummary> = state
        .core
        .list_topics()
        .await?
        .into_iter()
        .map(|t| TopicSummary {
            name: t.name,
            id: t.id,
            partitions: t.partition_count,
        })
        .collect();
    Ok(axum::Json(serde_json::json!({ "topics": topics })).into_response())
}

/// `POST /v1/topics`: 201 with the topic's description.
pub(super) async fn create_topic(
    Extract(state): Extract<State>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if media_type(&headers).as_deref() != Some("application/json") {
        return Err(ApiError::unsupported_media_type(
            media_type(&headers).as_deref().unwrap_or("none"),
            "application/json",
        ));
    }
    let body = read_body(&headers, body, state.settings.max_body_bytes).await?;
    let request: CreateBody = json(&body)?;
    let configs = configs_from_json(&request.configs).map_err(ApiError::bad_request)?;
    let created = state
        .core
        .create_topic(NewTopicRequest {
            name: request.name,
            partitions: request.partitions,
            configs,
        })
        .await?;
    let location = format!("/v1/topics/{}", created.name);
    let described = described(&state, created).await?;
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(described),
    )
        .into_response())
}

/// `GET /v1/topics/{topic}`.
pub(super) async fn describe_topic(
    Extract(state): Extract<State>,
    Path(topic): Path<String>,
) -> Result<Response, ApiError> {
    let info = state.core.topic(&topic).await?;
    Ok(axum::Json(described(&state, info).await?).into_response())
}

/// `DELETE /v1/topics/{topic}`: 204.
pub(super) async fn delete_topic(
    Extract(state): Extract<State>,
    Path(topic): Path<String>,
) -> Result<Response, ApiError> {
    state.core.delete_topic(&topic).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /v1/topics/{topic}/partitions`.
pub(super) async fn list_partitions(
    Extract(state): Extract<State>,
    Path(topic): Path<String>,
) -> Result<Response, ApiError> {
    let info = state.core.topic(&topic).await?;
    let described = described(&state, info).await?;
    Ok(axum::Json(serde_json::json!({ "partitions": described.partitions })).into_response())
}

/// `GET /v1/topics/{topic}/partitions/{partition}`.
pub(super) async fn describe_partition(
    Extract(state): Extract<State>,
    Path((topic, partition)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let partition = partition_index(&partition)?;
    let info = state.core.partition(&topic, partition).await?;
    Ok(axum::Json(PartitionJson::from(info)).into_response())
}
