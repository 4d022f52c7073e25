//! Topics in the REST Proxy API v2: metadata, and produce with the `binary`
//! (`application/vnd.kafka.binary.v2+json`: base64 keys and values) and
//! `json` (`application/vnd.kafka.json.v2+json`: keys and values embedded as
//! JSON, stored as their compact text) embedded formats.
//!
//! | route | what |
//! |---|---|
//! | `GET /topics`, `GET /topics/{t}` | topic names; a topic's configs and partitions |
//! | `GET /topics/{t}/partitions[/{p}]` | partitions and their leaders |
//! | `POST /topics/{t}` | produce: `{"records": [{"key", "value", "partition"}]}` → `{"offsets": [...]}` |
//! | `POST /topics/{t}/partitions/{p}` | produce to one partition |
//!
//! Schema formats (`avro`, `jsonschema`, `protobuf`) are checked as Confluent
//! checks them (keys without a key schema: 42201, values without a value
//! schema: 42202) and then refused (415): they need a Schema Registry.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use serde_json::{Value, json};

use super::json::Json;
use super::{Api, Confluent, JSON, RestError, V2_BINARY, V2_EMBEDDED_JSON, V2_JSON, answer};
use crate::core::{Acks, PartitionInfo, TopicInfo};
use crate::ops::produce::{self, Options, Unplaced};
use crate::records::RecordBytes;

/// What the v2 API answers with, and takes for metadata.
const V2_OFFERED: [&str; 3] = [V2_JSON, "application/vnd.kafka+json", JSON];

pub(super) fn routes() -> Router<Confluent> {
    Router::new()
        .route("/topics", get(list_topics))
        .route("/topics/{topic}", get(get_topic).post(produce_to_topic))
        .route("/topics/{topic}/partitions", get(list_partitions))
        .route(
            "/topics/{topic}/partitions/{partition}",
            get(get_partition).post(produce_to_partition),
        )
}

fn kafka(error: crate::core::KafkaError) -> RestError {
    RestError::kafka(Api::V2, &error)
}

fn ok(body: &Value) -> Response {
    answer(StatusCode::OK, V2_JSON, body)
}

async fn list_topics(
    State(state): State<Confluent>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    super::check_accept(Api::V2, &headers, &V2_OFFERED)?;
    let mut names: Vec<String> = state
        .inner
        .core
        .list_topics()
        .await
        .map_err(kafka)?
        .into_iter()
        .map(|t| t.name)
        .collect();
    names.sort();
    Ok(ok(&json!(names)))
}

fn partition_json(partition: &PartitionInfo) -> Value {
    let replicas: Vec<Value> = if partition.leader >= 0 {
        vec![json!({"broker": partition.leader, "leader": true, "in_sync": true})]
    } else {
        Vec::new()
    };
    json!({"partition": partition.partition, "leader": partition.leader, "replicas": replicas})
}

async fn topic_and_partitions(
    state: &Confluent,
    topic: &str,
) -> Result<(TopicInfo, Vec<PartitionInfo>), RestError> {
    let info = state
        .inner
        .core
        .topic(topic)
        .await
        .map_err(|_| RestError::topic_not_found(Api::V2))?;
    let partitions = crate::ops::partitions_of(&state.inner.core, &info)
        .await
        .map_err(kafka)?;
    Ok((info, partitions))
}

async fn get_topic(
    State(state): State<Confluent>,
    Path(topic): Path<String>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    super::check_accept(Api::V2, &headers, &V2_OFFERED)?;
    let (info, partitions) = topic_and_partitions(&state, &topic).await?;
    Ok(ok(&json!({
        "name": info.name,
        "configs": info.configs,
        "partitions": partitions.iter().map(partition_json).collect::<Vec<_>>(),
    })))
}

async fn list_partitions(
    State(state): State<Confluent>,
    Path(topic): Path<String>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    super::check_accept(Api::V2, &headers, &V2_OFFERED)?;
    let (_, partitions) = topic_and_partitions(&state, &topic).await?;
    Ok(ok(&json!(
        partitions.iter().map(partition_json).collect::<Vec<_>>()
    )))
}

/// A partition index from the path, of a topic that exists.
async fn partition_of(state: &Confluent, topic: &str, text: &str) -> Result<i32, RestError> {
    let info = state
        .inner
        .core
        .topic(topic)
        .await
        .map_err(|_| RestError::topic_not_found(Api::V2))?;
    match text.parse::<i32>() {
        Ok(p) if p >= 0 && p < info.partition_count => Ok(p),
        _ => Err(RestError::partition_not_found(Api::V2)),
    }
}

async fn get_partition(
    State(state): State<Confluent>,
    Path((topic, partition)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    super::check_accept(Api::V2, &headers, &V2_OFFERED)?;
    let index = partition_of(&state, &topic, &partition).await?;
    let info = state
        .inner
        .core
        .partition(&topic, index)
        .await
        .map_err(kafka)?;
    Ok(ok(&partition_json(&info)))
}

/// The embedded format of a v2 produce body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Embedded {
    Binary,
    Json,
    /// `avro`, `jsonschema`, `protobuf`: needs a Schema Registry.
    Schema,
}

fn embedded_of(headers: &HeaderMap) -> Result<Embedded, RestError> {
    let media = super::content_type(headers);
    match media.as_deref() {
        Some(
            V2_BINARY | V2_JSON | "application/vnd.kafka+json" | JSON | "application/octet-stream",
        ) => Ok(Embedded::Binary),
        Some(V2_EMBEDDED_JSON) => Ok(Embedded::Json),
        Some(
            "application/vnd.kafka.avro.v2+json"
            | "application/vnd.kafka.jsonschema.v2+json"
            | "application/vnd.kafka.protobuf.v2+json",
        ) => Ok(Embedded::Schema),
        other => Err(RestError::unsupported_media_type(Api::V2, other)),
    }
}

fn unprocessable(message: impl Into<String>) -> RestError {
    RestError::unprocessable(Api::V2, 422, message)
}

/// The records of a v2 produce body, as bytes.
fn records_of(
    body: &Json,
    embedded: Embedded,
) -> Result<Vec<(Option<i32>, RecordBytes)>, RestError> {
    if !body.is_object() {
        return Err(unprocessable("the body is {\"records\": [...]}"));
    }
    let Some(Json::Array(records)) = body.field("records") else {
        return Err(unprocessable("records may not be empty"));
    };
    if records.is_empty() {
        return Err(unprocessable("records may not be empty"));
    }
    if embedded == Embedded::Schema {
        let has = |name: &str| body.field(name).is_some();
        if records.iter().any(|r| r.field("key").is_some())
            && !has("key_schema")
            && !has("key_schema_id")
        {
            return Err(RestError::unprocessable(
                Api::V2,
                42201,
                "Request includes keys but does not include key schema",
            ));
        }
        if records.iter().any(|r| r.field("value").is_some())
            && !has("value_schema")
            && !has("value_schema_id")
        {
            return Err(RestError::unprocessable(
                Api::V2,
                42202,
                "Request includes values but does not include value schema",
            ));
        }
        return Err(RestError::plain(
            Api::V2,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "schema-based embedded formats need a Schema Registry, which this broker does not have",
        ));
    }
    let field = |record: &Json, name: &str| -> Result<Option<Bytes>, RestError> {
        match (embedded, record.get(name)) {
            (_, None | Some(Json::Null)) => Ok(None),
            (Embedded::Binary, Some(Json::String(text))) => BASE64
                .decode(text)
                .map(|b| Some(Bytes::from(b)))
                .map_err(|e| unprocessable(format!("{name} is not valid base64: {e}"))),
            (Embedded::Binary | Embedded::Schema, Some(other)) => Err(unprocessable(format!(
                "{name} is base64 text, not {}",
                other.kind()
            ))),
            (Embedded::Json, Some(json)) => Ok(Some(Bytes::from(json.to_bytes()))),
        }
    };
    records
        .iter()
        .map(|record| {
            if !record.is_object() {
                return Err(unprocessable("every record is an object"));
            }
            let partition = match record.field("partition") {
                None => None,
                Some(p) => Some(
                    p.as_i64()
                        .and_then(|p| i32::try_from(p).ok())
                        .ok_or_else(|| unprocessable("partition is an integer"))?,
                ),
            };
            Ok((
                partition,
                RecordBytes {
                    key: field(record, "key")?,
                    value: field(record, "value")?,
                    headers: Vec::new(),
                },
            ))
        })
        .collect()
}

async fn produce_to_topic(
    State(state): State<Confluent>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RestError> {
    produce_v2(state, topic, None, headers, body).await
}

async fn produce_to_partition(
    State(state): State<Confluent>,
    Path((topic, partition)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RestError> {
    let index = partition_of(&state, &topic, &partition).await?;
    produce_v2(state, topic, Some(index), headers, body).await
}

async fn produce_v2(
    state: Confluent,
    topic: String,
    only_partition: Option<i32>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RestError> {
    super::check_accept(Api::V2, &headers, &V2_OFFERED)?;
    let embedded = embedded_of(&headers)?;
    let bytes = super::body_bytes(Api::V2, &state, &headers, body).await?;
    let request: Json = serde_json::from_slice(&bytes)
        .map_err(|error| RestError::bad_request(Api::V2, format!("bad JSON body: {error}")))?;
    let records = records_of(&request, embedded)?;
    let info = state
        .inner
        .core
        .topic(&topic)
        .await
        .map_err(|_| RestError::topic_not_found(Api::V2))?;
    let mut unplaced = Vec::with_capacity(records.len());
    for (partition, bytes) in records {
        let partition = match (partition, only_partition) {
            (Some(p), Some(only)) if p != only => {
                return Err(unprocessable(format!(
                    "a record names partition {p} in a produce to partition {only}"
                )));
            }
            (p, only) => p.or(only),
        };
        if partition.is_some_and(|p| p < 0 || p >= info.partition_count) {
            return Err(RestError::partition_not_found(Api::V2));
        }
        unplaced.push(Unplaced {
            bytes,
            partition,
            timestamp: None,
        });
    }
    let options = Options {
        only_partition: None,
        producer: None,
        expected_offset: None,
        acks: Acks::All,
        timeout: Duration::from_secs(30),
        forwarded: false,
    };
    let outcomes = produce::produce(
        &state.inner.core,
        &state.inner.sticky,
        &topic,
        unplaced,
        options,
    )
    .await
    .map_err(|f| RestError::failure(Api::V2, f))?;
    let offsets: Vec<Value> = outcomes
        .into_iter()
        .map(|outcome| match outcome.written {
            Ok((offset, _)) => json!({
                "partition": outcome.partition,
                "offset": offset,
                "error_code": null,
                "error": null,
            }),
            Err(failure) => {
                let error = RestError::failure(Api::V2, failure);
                // Confluent's per-record codes: 2 retriable, 1 not.
                let code = if error.error_code == 50003 { 2 } else { 1 };
                json!({
                    "partition": outcome.partition,
                    "offset": null,
                    "error_code": code,
                    "error": error.message,
                })
            }
        })
        .collect();
    Ok(ok(&json!({
        "key_schema_id": null,
        "value_schema_id": null,
        "offsets": offsets,
    })))
}
