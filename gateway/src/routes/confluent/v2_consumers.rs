//! Consumer instances of the REST Proxy API v2 over HTTP. The instances
//! themselves, and why any agent serves any of them: [`super::instances`].
//!
//! | route (under `/consumers/{group}`) | what |
//! |---|---|
//! | `POST /consumers/{group}` | create: `name`, `format` (`binary`, `json`), `auto.offset.reset`, `auto.commit.enable`, `fetch.min.bytes`, `consumer.request.timeout.ms` → `{instance_id, base_uri}` |
//! | `DELETE /instances/{i}` | delete (leaving the group) |
//! | `POST/GET/DELETE /instances/{i}/subscription` | subscribe (`topics` or `topic_pattern`: joins the group), the subscription, unsubscribe |
//! | `POST/GET /instances/{i}/assignments` | assign partitions by hand; the partitions owned |
//! | `POST /instances/{i}/positions[/beginning\|/end]` | seek |
//! | `GET /instances/{i}/records?timeout&max_bytes` | read (the group heartbeat, and records) |
//! | `POST/GET /instances/{i}/offsets` | commit (the positions, or the offsets given); the committed offsets |
//!
//! Fjord's additions to the creation body: `session.timeout.ms` (the
//! instance's group session, default 45000) and `consumer.instance.timeout.ms`
//! (how long an unused instance is kept, default 300000).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use axum::routing::{delete, get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Value, json};

use super::instances::{self, DEFAULT_INSTANCE_TIMEOUT_MS, Fetched, ReadLimits, Seek};
use super::json::{Json, parse_rfc3339};
use super::{
    Api, Confluent, JSON, RestError, V2_BINARY, V2_EMBEDDED_JSON, V2_JSON, accepted, allows,
    answer, no_content,
};
use crate::core::RestConsumer;

/// Confluent's default `consumer.request.timeout.ms`.
const DEFAULT_REQUEST_TIMEOUT_MS: i32 = 1_000;
/// Kafka's default `session.timeout.ms`.
const DEFAULT_SESSION_TIMEOUT_MS: i32 = 45_000;
/// The shortest `consumer.instance.timeout.ms` taken.
const MIN_INSTANCE_TIMEOUT_MS: i64 = 1_000;
/// The longest instance name.
const MAX_NAME_CHARS: usize = 255;
/// Bytes a read answers by default (Confluent's `consumer.request.max.bytes`).
const DEFAULT_MAX_BYTES: usize = 64 * 1024 * 1024;

/// The schema formats of Confluent's API, which need a Schema Registry.
const SCHEMA_MEDIA: [&str; 3] = [
    "application/vnd.kafka.avro.v2+json",
    "application/vnd.kafka.jsonschema.v2+json",
    "application/vnd.kafka.protobuf.v2+json",
];

/// What the consumer routes answer with (besides records).
const OFFERED: [&str; 5] = [
    V2_JSON,
    "application/vnd.kafka+json",
    JSON,
    V2_BINARY,
    V2_EMBEDDED_JSON,
];

pub(super) fn routes() -> Router<Confluent> {
    let instance = "/consumers/{group}/instances/{instance}";
    Router::new()
        .route("/consumers/{group}", post(create))
        .route(instance, delete(delete_instance))
        .route(
            &format!("{instance}/subscription"),
            post(subscribe).get(subscription).delete(unsubscribe),
        )
        .route(
            &format!("{instance}/assignments"),
            post(assign).get(assignments),
        )
        .route(&format!("{instance}/positions"), post(seek))
        .route(
            &format!("{instance}/positions/beginning"),
            post(seek_beginning),
        )
        .route(&format!("{instance}/positions/end"), post(seek_end))
        .route(&format!("{instance}/records"), get(records))
        .route(&format!("{instance}/offsets"), post(commit).get(committed))
}

fn ok(body: &Value) -> Response {
    answer(StatusCode::OK, V2_JSON, body)
}

fn unprocessable(message: impl Into<String>) -> RestError {
    RestError::unprocessable(Api::V2, 422, message)
}

fn invalid_config(message: impl std::fmt::Display) -> RestError {
    RestError::unprocessable(
        Api::V2,
        42204,
        format!("Invalid consumer configuration: {message}"),
    )
}

/// The body as JSON; `None` for an empty body (which `required` refuses).
async fn json_body(
    state: &Confluent,
    headers: &HeaderMap,
    body: Body,
    required: bool,
) -> Result<Option<Json>, RestError> {
    super::check_accept(Api::V2, headers, &OFFERED)?;
    let bytes = super::body_bytes(Api::V2, state, headers, body).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        if required {
            return Err(unprocessable("the request body may not be empty"));
        }
        return Ok(None);
    }
    let media = super::content_type(headers);
    let taken = [
        V2_JSON,
        "application/vnd.kafka+json",
        JSON,
        V2_BINARY,
        V2_EMBEDDED_JSON,
    ];
    match media.as_deref() {
        Some(m) if taken.contains(&m) || SCHEMA_MEDIA.contains(&m) => {}
        other => return Err(RestError::unsupported_media_type(Api::V2, other)),
    }
    let value: Json = serde_json::from_slice(&bytes)
        .map_err(|error| RestError::bad_request(Api::V2, format!("bad JSON body: {error}")))?;
    if !value.is_object() {
        return Err(unprocessable("the body is a JSON object"));
    }
    Ok(Some(value))
}

/// A consumer setting given as a JSON string or number.
fn setting_text(body: &Json, name: &str) -> Option<String> {
    match body.field(name)? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => Some(String::new()),
    }
}

fn setting_int(body: &Json, name: &str) -> Result<Option<i64>, RestError> {
    match setting_text(body, name) {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse::<i64>()
            .map(Some)
            .map_err(|_| invalid_config(format!("{name} is an integer, not {text:?}"))),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= MAX_NAME_CHARS
        && !name.chars().any(|c| c == '/' || c.is_control())
}

/// `POST /consumers/{group}`: 200 with `{instance_id, base_uri}`.
async fn create(
    State(state): State<Confluent>,
    Path(group): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    body: Body,
) -> Result<Response, RestError> {
    let body = json_body(&state, &headers, body, false)
        .await?
        .unwrap_or(Json::Object(Vec::new()));
    let core = &state.inner.core;
    let name = match setting_text(&body, "id").or_else(|| setting_text(&body, "name")) {
        Some(name) if valid_name(&name) => name,
        Some(name) => {
            return Err(unprocessable(format!(
                "the instance name {name:?} is empty, too long, or has '/' or control characters"
            )));
        }
        None => format!("rest-consumer-{}", core.unique_id()),
    };
    let format = match setting_text(&body, "format").map(|f| f.to_ascii_lowercase()) {
        None => "binary".to_owned(),
        Some(f) if f == "binary" || f == "json" => f,
        Some(f) if ["avro", "jsonschema", "protobuf"].contains(&f.as_str()) => {
            return Err(invalid_config(format!(
                "format {f} needs a Schema Registry, which this broker does not have"
            )));
        }
        Some(_) => return Err(unprocessable("Invalid format type.")),
    };
    let auto_offset_reset = match setting_text(&body, "auto.offset.reset").as_deref() {
        None => "latest".to_owned(),
        Some("earliest" | "smallest") => "earliest".to_owned(),
        Some("latest" | "largest") => "latest".to_owned(),
        Some("none") => "none".to_owned(),
        Some(other) => {
            return Err(invalid_config(format!(
                "auto.offset.reset is earliest, latest or none, not {other:?}"
            )));
        }
    };
    let auto_commit = match setting_text(&body, "auto.commit.enable").as_deref() {
        None => true,
        Some(text) if text.eq_ignore_ascii_case("true") => true,
        Some(text) if text.eq_ignore_ascii_case("false") => false,
        Some(other) => {
            return Err(invalid_config(format!(
                "auto.commit.enable is true or false, not {other:?}"
            )));
        }
    };
    let fetch_min_bytes = match setting_int(&body, "fetch.min.bytes")? {
        None => -1,
        Some(n) if n >= -1 => i32::try_from(n).unwrap_or(i32::MAX),
        Some(n) => return Err(invalid_config(format!("fetch.min.bytes {n} is below -1"))),
    };
    let request_timeout_ms = match setting_int(&body, "consumer.request.timeout.ms")? {
        None => DEFAULT_REQUEST_TIMEOUT_MS,
        Some(n) if n >= 0 => i32::try_from(n).unwrap_or(i32::MAX),
        Some(n) => {
            return Err(invalid_config(format!(
                "consumer.request.timeout.ms {n} is negative"
            )));
        }
    };
    let session_timeout_ms = match setting_int(&body, "session.timeout.ms")? {
        None => DEFAULT_SESSION_TIMEOUT_MS,
        Some(n) if n > 0 => i32::try_from(n).unwrap_or(i32::MAX),
        Some(n) => {
            return Err(invalid_config(format!(
                "session.timeout.ms {n} is not positive"
            )));
        }
    };
    let instance_timeout_ms = match setting_int(&body, "consumer.instance.timeout.ms")? {
        None => DEFAULT_INSTANCE_TIMEOUT_MS,
        Some(n) if n >= MIN_INSTANCE_TIMEOUT_MS => n,
        Some(n) => {
            return Err(invalid_config(format!(
                "consumer.instance.timeout.ms {n} is below {MIN_INSTANCE_TIMEOUT_MS}"
            )));
        }
    };
    let now = core.now_millis();
    let consumer = RestConsumer {
        group: group.clone(),
        instance: name.clone(),
        version: 0,
        format,
        auto_offset_reset,
        auto_commit,
        fetch_min_bytes,
        request_timeout_ms,
        session_timeout_ms,
        instance_timeout_ms,
        topics: Vec::new(),
        pattern: None,
        assigned: Vec::new(),
        member_id: core.unique_id(),
        member_epoch: 0,
        positions: Vec::new(),
        created_at_ms: now,
        last_used_ms: now,
    };
    if !instances::create(core, &consumer).await? {
        return Err(RestError::new(
            Api::V2,
            StatusCode::CONFLICT,
            40902,
            "Consumer with specified consumer ID already exists in the specified consumer group.",
        ));
    }
    state.maybe_sweep();
    let base_uri = format!(
        "{}/consumers/{}/instances/{}",
        super::base_url(&headers, &uri),
        super::path_segment(&group),
        super::path_segment(&name)
    );
    Ok(ok(&json!({"instance_id": name, "base_uri": base_uri})))
}

/// `DELETE /consumers/{group}/instances/{instance}`: 204.
async fn delete_instance(
    State(state): State<Confluent>,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    super::check_accept(Api::V2, &headers, &OFFERED)?;
    state.maybe_sweep();
    instances::delete(&state.inner.core, &group, &instance).await?;
    Ok(no_content())
}

fn string_list(body: &Json, name: &str) -> Result<Option<Vec<String>>, RestError> {
    match body.field(name) {
        None => Ok(None),
        Some(Json::Array(items)) => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| unprocessable(format!("{name} is a list of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(unprocessable(format!("{name} is a list of strings"))),
    }
}

/// `{"topic", "partition"}` objects of the list `name`.
fn partition_list<'a>(
    body: &'a Json,
    name: &str,
) -> Result<Vec<(String, i32, &'a Json)>, RestError> {
    let Some(Json::Array(items)) = body.field(name) else {
        return Err(unprocessable(format!("{name} is a list")));
    };
    items
        .iter()
        .map(|item| {
            let topic = item
                .field("topic")
                .and_then(Json::as_str)
                .ok_or_else(|| unprocessable(format!("every entry of {name} names a topic")))?;
            let partition = item
                .field("partition")
                .and_then(Json::as_i64)
                .and_then(|p| i32::try_from(p).ok())
                .filter(|p| *p >= 0)
                .ok_or_else(|| unprocessable(format!("every entry of {name} names a partition")))?;
            Ok((topic.to_owned(), partition, item))
        })
        .collect()
}

/// `POST …/subscription`: 204.
async fn subscribe(
    State(state): State<Confluent>,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RestError> {
    let body = json_body(&state, &headers, body, true)
        .await?
        .unwrap_or(Json::Null);
    let topics = string_list(&body, "topics")?.unwrap_or_default();
    let pattern = match body.field("topic_pattern") {
        None => None,
        Some(Json::String(p)) if !p.is_empty() => Some(p.clone()),
        Some(_) => return Err(unprocessable("topic_pattern is a regular expression")),
    };
    match (topics.is_empty(), &pattern) {
        (true, None) => return Err(unprocessable("give topics or a topic_pattern")),
        (false, Some(_)) => {
            return Err(RestError::illegal_state(
                "Subscription to topics and to a pattern are mutually exclusive",
            ));
        }
        _ => {}
    }
    instances::subscribe(&state.inner.core, &group, &instance, topics, pattern).await?;
    Ok(no_content())
}

/// `GET …/subscription`: `{"topics": [...]}`.
async fn subscription(
    State(state): State<Confluent>,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    super::check_accept(Api::V2, &headers, &OFFERED)?;
    let consumer = instances::view(&state.inner.core, &group, &instance).await?;
    let mut topics = if consumer.pattern.is_some() {
        // A pattern's subscription is the topics it matched.
        let mut matched: Vec<String> = consumer
            .positions
            .iter()
            .map(|(t, _, _)| t.clone())
            .collect();
        matched.dedup();
        matched
    } else {
        consumer.topics
    };
    topics.sort();
    topics.dedup();
    Ok(ok(&json!({ "topics": topics })))
}

/// `DELETE …/subscription`: 204.
async fn unsubscribe(
    State(state): State<Confluent>,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    super::check_accept(Api::V2, &headers, &OFFERED)?;
    instances::unsubscribe(&state.inner.core, &group, &instance).await?;
    Ok(no_content())
}

/// `POST …/assignments`: 204.
async fn assign(
    State(state): State<Confluent>,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RestError> {
    let body = json_body(&state, &headers, body, true)
        .await?
        .unwrap_or(Json::Null);
    let partitions = partition_list(&body, "partitions")?
        .into_iter()
        .map(|(t, p, _)| (t, p))
        .collect();
    instances::assign(&state.inner.core, &group, &instance, partitions).await?;
    Ok(no_content())
}

fn partitions_json(list: impl Iterator<Item = (String, i32)>) -> Value {
    let partitions: Vec<Value> = list
        .map(|(topic, partition)| json!({"topic": topic, "partition": partition}))
        .collect();
    json!({ "partitions": partitions })
}

/// `GET …/assignments`: `{"partitions": [...]}`.
async fn assignments(
    State(state): State<Confluent>,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, RestError> {
    super::check_accept(Api::V2, &headers, &OFFERED)?;
    let consumer = instances::view(&state.inner.core, &group, &instance).await?;
    Ok(ok(&partitions_json(
        consumer.positions.into_iter().map(|(t, p, _)| (t, p)),
    )))
}

/// `POST …/positions`: 204. Takes `offsets` (`{"topic", "partition",
/// "offset"}`) and, as newer Confluent versions do, `timestamps`
/// (`{"topic", "partition", "timestamp"}`, RFC 3339).
async fn seek(
    State(state): State<Confluent>,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RestError> {
    let body = json_body(&state, &headers, body, true)
        .await?
        .unwrap_or(Json::Null);
    let mut seeks = Vec::new();
    if body.field("offsets").is_some() {
        for (topic, partition, item) in partition_list(&body, "offsets")? {
            let offset = item
                .field("offset")
                .and_then(Json::as_i64)
                .ok_or_else(|| unprocessable("every offset has an offset"))?;
            seeks.push((topic, partition, Seek::Offset(offset)));
        }
    }
    if body.field("timestamps").is_some() {
        for (topic, partition, item) in partition_list(&body, "timestamps")? {
            let at = match item.field("timestamp") {
                Some(Json::String(text)) => parse_rfc3339(text.as_str()),
                Some(other) => other.as_i64(),
                None => None,
            }
            .ok_or_else(|| unprocessable("every timestamp is an RFC 3339 date-time"))?;
            seeks.push((topic, partition, Seek::Timestamp(at)));
        }
    }
    if seeks.is_empty() {
        return Err(unprocessable("give offsets or timestamps to seek to"));
    }
    instances::seek(&state.inner.core, &group, &instance, seeks).await?;
    Ok(no_content())
}

async fn seek_to(
    state: Confluent,
    group: String,
    instance: String,
    headers: HeaderMap,
    body: Body,
    to: Seek,
) -> Result<Response, RestError> {
    let body = json_body(&state, &headers, body, true)
        .await?
        .unwrap_or(Json::Null);
    let seeks = partition_list(&body, "partitions")?
        .into_iter()
        .map(|(t, p, _)| (t, p, to))
        .collect();
    instances::seek(&state.inner.core, &group, &instance, seeks).await?;
    Ok(no_content())
}

/// `POST …/positions/beginning`: 204.
async fn seek_beginning(
    State(state): State<Confluent>,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RestError> {
    seek_to(state, group, instance, headers, body, Seek::Beginning).await
}

/// `POST …/positions/end`: 204.
async fn seek_end(
    State(state): State<Confluent>,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RestError> {
    seek_to(state, group, instance, headers, body, Seek::End).await
}

#[derive(Debug, serde::Deserialize)]
struct RecordsQuery {
    #[serde(default)]
    timeout: Option<i64>,
    #[serde(default)]
    max_bytes: Option<i64>,
}

/// Whether the `Accept` header takes records of `format`; `Err` says why not.
fn check_record_format(accepted: &[String], format: &str) -> Result<(), RestError> {
    if accepted.is_empty() {
        return Ok(());
    }
    let takes = match format {
        "json" => [V2_EMBEDDED_JSON, JSON].as_slice(),
        _ => [V2_BINARY, V2_JSON, "application/vnd.kafka+json", JSON].as_slice(),
    };
    if takes.iter().any(|media| allows(accepted, media)) {
        return Ok(());
    }
    let names_a_format = accepted
        .iter()
        .any(|a| a.starts_with("application/vnd.kafka"));
    if names_a_format {
        return Err(RestError::new(
            Api::V2,
            StatusCode::NOT_ACCEPTABLE,
            40601,
            "The requested embedded data format does not match the deserializer for this consumer instance",
        ));
    }
    Err(RestError::not_acceptable(Api::V2))
}

/// A record's key or value as answered: base64 text (`binary`) or the JSON
/// it holds (`json`, members in their stored order).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
enum EmbeddedData {
    Text(String),
    Json(Json),
}

/// A record as the v2 API answers it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
struct V2Record {
    topic: String,
    key: Option<EmbeddedData>,
    value: Option<EmbeddedData>,
    partition: i32,
    offset: i64,
}

/// A record's key or value in the instance's format.
fn embedded(
    bytes: &Option<bytes::Bytes>,
    format: &str,
    what: &str,
) -> Result<Option<EmbeddedData>, RestError> {
    let Some(bytes) = bytes else {
        return Ok(None);
    };
    match format {
        "json" => serde_json::from_slice::<Json>(bytes)
            .map(|json| Some(EmbeddedData::Json(json)))
            .map_err(|error| {
                RestError::new(
                    Api::V2,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    50002,
                    format!("Kafka error: the {what} of a record is not JSON: {error}"),
                )
            }),
        _ => Ok(Some(EmbeddedData::Text(BASE64.encode(bytes)))),
    }
}

fn render(consumer: &RestConsumer, records: Fetched) -> Result<Vec<V2Record>, RestError> {
    records
        .into_iter()
        .map(|(topic, partition, record)| {
            Ok(V2Record {
                key: embedded(&record.key, &consumer.format, "key")?,
                value: embedded(&record.value, &consumer.format, "value")?,
                topic,
                partition,
                offset: record.offset,
            })
        })
        .collect()
}

/// `GET …/records?timeout=&max_bytes=`: the records, in the instance's format.
async fn records(
    State(state): State<Confluent>,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, RestError> {
    let query: RecordsQuery =
        super::super::query(&uri).map_err(|e| RestError::of_api(Api::V2, e))?;
    let accepted = accepted(&headers);
    state.maybe_sweep();
    let settings = &state.inner.settings;
    let core = &state.inner.core;
    let max_bytes = match query.max_bytes {
        Some(n) if n > 0 => usize::try_from(n).unwrap_or(usize::MAX),
        _ => DEFAULT_MAX_BYTES,
    };
    let limits = |consumer: &RestConsumer| {
        let wait_ms = match query.timeout {
            Some(ms) if ms >= 0 => u64::try_from(ms).unwrap_or(0),
            _ => u64::try_from(consumer.request_timeout_ms).unwrap_or(0),
        };
        Duration::from_millis(wait_ms).min(settings.max_wait)
    };
    // The wait depends on the instance: looked up first (this also refuses a
    // format the client does not take before anything is read).
    let consumer = instances::load(core, &group, &instance).await?;
    check_record_format(&accepted, &consumer.format)?;
    let read_limits = ReadLimits {
        wait: limits(&consumer),
        max_bytes,
        max_records: settings.max_records,
    };
    let (format, records) = instances::read(
        core,
        &group,
        &instance,
        read_limits,
        |consumer| check_record_format(&accepted, &consumer.format),
        |consumer, records| Ok((consumer.format.clone(), render(consumer, records)?)),
    )
    .await?;
    let media = if format == "json" {
        V2_EMBEDDED_JSON
    } else {
        V2_BINARY
    };
    Ok(answer(StatusCode::OK, media, &records))
}

/// `POST …/offsets`: commits the offsets given (each the last record
/// processed: the next one is committed, as Confluent does), or, with no
/// body, every position.
async fn commit(
    State(state): State<Confluent>,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RestError> {
    let body = json_body(&state, &headers, body, false).await?;
    let offsets = match body.as_ref().filter(|b| b.field("offsets").is_some()) {
        None => None,
        Some(body) => {
            let mut offsets = Vec::new();
            for (topic, partition, item) in partition_list(body, "offsets")? {
                let offset = item
                    .field("offset")
                    .and_then(Json::as_i64)
                    .filter(|o| *o >= 0)
                    .ok_or_else(|| unprocessable("every offset has an offset, not negative"))?;
                offsets.push((topic, partition, offset.saturating_add(1)));
            }
            Some(offsets)
        }
    };
    instances::commit(&state.inner.core, &group, &instance, offsets).await?;
    Ok(ok(&json!([])))
}

/// `GET …/offsets` with `{"partitions": [...]}`: the committed offsets.
async fn committed(
    State(state): State<Confluent>,
    Path((group, instance)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RestError> {
    let body = json_body(&state, &headers, body, false).await?;
    let core = &state.inner.core;
    instances::view(core, &group, &instance).await?;
    let Some(body) = body else {
        return Err(RestError::partition_not_found(Api::V2));
    };
    let partitions: Vec<(String, i32)> = partition_list(&body, "partitions")?
        .into_iter()
        .map(|(t, p, _)| (t, p))
        .collect();
    let committed = core
        .committed_offsets(&group, &partitions)
        .await
        .map_err(|e| RestError::kafka(Api::V2, &e))?;
    let offsets: Vec<Value> = partitions
        .iter()
        .zip(committed)
        .filter_map(|((topic, partition), offset)| {
            offset.map(|offset| {
                json!({"topic": topic, "partition": partition, "offset": offset, "metadata": ""})
            })
        })
        .collect();
    Ok(ok(&json!({ "offsets": offsets })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn record_formats_follow_the_accept_header() {
        assert!(check_record_format(&[], "json").is_ok());
        assert!(check_record_format(&list(&[V2_BINARY]), "binary").is_ok());
        assert!(check_record_format(&list(&[V2_JSON]), "binary").is_ok());
        assert!(check_record_format(&list(&["*/*"]), "json").is_ok());
        assert!(check_record_format(&list(&[V2_EMBEDDED_JSON]), "json").is_ok());
        let mismatch = check_record_format(&list(&[V2_EMBEDDED_JSON]), "binary").unwrap_err();
        assert_eq!(
            (mismatch.status, mismatch.error_code),
            (StatusCode::NOT_ACCEPTABLE, 40601)
        );
        let mismatch = check_record_format(&list(&[V2_BINARY]), "json").unwrap_err();
        assert_eq!(mismatch.error_code, 40601);
        let other = check_record_format(&list(&["text/html"]), "json").unwrap_err();
        assert_eq!(
            (other.status, other.error_code),
            (StatusCode::NOT_ACCEPTABLE, 406)
        );
    }

    #[test]
    fn instance_names_are_path_safe() {
        assert!(valid_name("consumer-1.a_b"));
        assert!(!valid_name(""));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("a\nb"));
        assert!(!valid_name(&"x".repeat(256)));
    }

    #[test]
    fn records_are_rendered_in_the_instance_format() {
        let json = RestConsumer {
            format: "json".into(),
            ..RestConsumer::default()
        };
        let record = kafka_protocol::records::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset: 7,
            sequence: -1,
            timestamp: 0,
            key: None,
            value: Some(bytes::Bytes::from_static(br#"{"b":1,"a":[2]}"#)),
            headers: Default::default(),
        };
        let rendered = render(&json, vec![("t".into(), 3, record.clone())]).unwrap();
        assert_eq!(
            serde_json::to_string(&rendered).unwrap(),
            r#"[{"topic":"t","key":null,"value":{"b":1,"a":[2]},"partition":3,"offset":7}]"#
        );
        let binary = RestConsumer {
            format: "binary".into(),
            ..RestConsumer::default()
        };
        let rendered = render(&binary, vec![("t".into(), 3, record.clone())]).unwrap();
        assert_eq!(
            rendered[0].value,
            Some(EmbeddedData::Text(BASE64.encode(br#"{"b":1,"a":[2]}"#)))
        );
        let not_json = kafka_protocol::records::Record {
            value: Some(bytes::Bytes::from_static(b"not json")),
            ..record
        };
        let error = render(&json, vec![("t".into(), 0, not_json)]).unwrap_err();
        assert_eq!(error.error_code, 50002);
    }
}
