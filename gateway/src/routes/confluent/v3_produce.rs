//! Produce in the REST Proxy API v3.
//!
//! - `POST /v3/clusters/{c}/topics/{t}/records` takes JSON records
//!   (`{"partition_id", "headers": [{"name", "value"}], "key": {"type",
//!   "data"}, "value": {...}, "timestamp"}`), one after the other in the body
//!   (Confluent's concatenated JSON): a body with one record is a unary
//!   produce, a chunked body that keeps coming is a stream. Each record gets
//!   one result object (`error_code` 200, `partition_id`, `offset`,
//!   `timestamp`, `key`/`value` `{type, size}`), in order, written as soon as
//!   it is durable; a record that fails gets `{"error_code", "message"}` and
//!   the others go on. A body that is not JSON ends the stream with an error
//!   object. Records that arrived while the previous ones were being written
//!   are produced together (one batch per partition), so a stream's
//!   throughput grows with its rate while each partition keeps its order.
//! - `POST …/records:batch` takes `{"entries": [{"id", …record}]}` and answers
//!   207 with `{"successes": [...], "failures": [...]}`.
//!
//! Data types: `BINARY` (base64), `JSON` (any JSON, stored as its compact
//! text, members in the order sent), `STRING` (UTF-8). A key or value without
//! a `type` is JSON. Schema types (`AVRO`, `PROTOBUF`, `JSONSCHEMA`) need a
//! Schema Registry, which Fjord does not have: such a record fails with 400.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::{Buf as _, Bytes, BytesMut};
use serde_json::{Value, json};

use super::json::{Json, parse_rfc3339, rfc3339};
use super::{Api, Confluent, JSON, RestError, answer, check_accept};
use crate::core::Acks;
use crate::ops::produce::{self, Options, Unplaced};
use crate::records::RecordBytes;

/// The most records produced as one step of a stream.
const STEP_RECORDS: usize = 1_000;
/// Results queued for a client that does not read them yet; past it the
/// stream stops reading records until the client reads.
const RESULT_QUEUE: usize = 10_000;
/// The most entries of one `records:batch` request.
const MAX_BATCH_ENTRIES: usize = 1_000;
/// The longest an entry id of `records:batch` may be (Confluent's limit).
const MAX_BATCH_ID_CHARS: usize = 80;
/// How long a produce may take to become durable.
const PRODUCE_TIMEOUT: Duration = Duration::from_secs(30);

pub(super) fn routes() -> Router<Confluent> {
    let mut router = Router::new();
    for prefix in ["/v3", "/kafka/v3"] {
        router = router
            .route(
                &format!("{prefix}/clusters/{{cluster_id}}/topics/{{topic}}/records"),
                post(produce_records),
            )
            .route(
                &format!("{prefix}/clusters/{{cluster_id}}/topics/{{topic}}/records:batch"),
                post(produce_batch),
            );
    }
    router
}

/// How a key or value is written in the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DataType {
    Binary,
    Json,
    String,
}

impl DataType {
    fn name(self) -> &'static str {
        match self {
            DataType::Binary => "BINARY",
            DataType::Json => "JSON",
            DataType::String => "STRING",
        }
    }
}

/// A key or value: its type and bytes (`None`: null).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Data {
    kind: DataType,
    bytes: Option<Bytes>,
}

impl Data {
    fn size(&self) -> usize {
        self.bytes.as_ref().map_or(0, Bytes::len)
    }
}

/// A record of a v3 produce, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
struct V3Record {
    partition: Option<i32>,
    headers: Vec<(String, Option<Bytes>)>,
    key: Option<Data>,
    value: Option<Data>,
    timestamp: Option<i64>,
}

fn invalid(message: impl Into<String>) -> RestError {
    RestError::bad_request(Api::V3, message)
}

fn data(value: Option<&Json>, what: &str) -> Result<Option<Data>, RestError> {
    let Some(value) = value.filter(|v| !matches!(v, Json::Null)) else {
        return Ok(None);
    };
    if !value.is_object() {
        return Err(invalid(format!(
            "{what} is an object, not {}",
            value.kind()
        )));
    }
    for schema_field in [
        "subject",
        "subject_name_strategy",
        "schema_id",
        "schema_version",
        "schema",
    ] {
        if value.field(schema_field).is_some() {
            return Err(invalid(format!(
                "{what}: {schema_field} needs a Schema Registry, which this broker does not have"
            )));
        }
    }
    let kind = match value.field("type") {
        None => DataType::Json,
        Some(Json::String(name)) => match name.to_ascii_uppercase().as_str() {
            "BINARY" => DataType::Binary,
            "JSON" => DataType::Json,
            "STRING" => DataType::String,
            "AVRO" | "PROTOBUF" | "JSONSCHEMA" => {
                return Err(invalid(format!(
                    "{what}: type {name} needs a Schema Registry, which this broker does not have"
                )));
            }
            _ => return Err(invalid(format!("{what}: unknown type {name:?}"))),
        },
        Some(other) => {
            return Err(invalid(format!(
                "{what}: type is a string, not {}",
                other.kind()
            )));
        }
    };
    let bytes = match (kind, value.get("data")) {
        (_, None | Some(Json::Null)) => None,
        (DataType::Binary, Some(Json::String(text))) => {
            Some(Bytes::from(BASE64.decode(text).map_err(|e| {
                invalid(format!("{what}: data is not valid base64: {e}"))
            })?))
        }
        (DataType::String, Some(Json::String(text))) => {
            Some(Bytes::copy_from_slice(text.as_bytes()))
        }
        (DataType::Binary | DataType::String, Some(other)) => {
            return Err(invalid(format!(
                "{what}: {} data is a string, not {}",
                kind.name(),
                other.kind()
            )));
        }
        (DataType::Json, Some(json)) => Some(Bytes::from(json.to_bytes())),
    };
    Ok(Some(Data { kind, bytes }))
}

/// A JSON value as a record to produce; a 400 naming what is wrong.
fn interpret(value: &Json) -> Result<V3Record, RestError> {
    if !value.is_object() {
        return Err(invalid(format!(
            "a record is a JSON object, not {}",
            value.kind()
        )));
    }
    let partition = match value.field("partition_id") {
        None => None,
        Some(p) => Some(
            p.as_i64()
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| invalid("partition_id is an integer"))?,
        ),
    };
    let mut headers = Vec::new();
    match value.field("headers") {
        None => {}
        Some(Json::Array(items)) => {
            for item in items {
                let name = item
                    .field("name")
                    .and_then(Json::as_str)
                    .ok_or_else(|| invalid("every header has a name"))?;
                let header_value = match item.field("value") {
                    None => None,
                    Some(Json::String(text)) => {
                        Some(Bytes::from(BASE64.decode(text).map_err(|e| {
                            invalid(format!("header {name}: the value is not valid base64: {e}"))
                        })?))
                    }
                    Some(other) => {
                        return Err(invalid(format!(
                            "header {name}: the value is base64 text, not {}",
                            other.kind()
                        )));
                    }
                };
                headers.push((name.to_owned(), header_value));
            }
        }
        Some(other) => {
            return Err(invalid(format!(
                "headers is an array, not {}",
                other.kind()
            )));
        }
    }
    let timestamp = match value.field("timestamp") {
        None => None,
        Some(Json::String(text)) => {
            Some(parse_rfc3339(text).ok_or_else(|| {
                invalid(format!("timestamp {text:?} is not an RFC 3339 date-time"))
            })?)
        }
        Some(Json::Number(n)) => Some(
            n.as_i64()
                .ok_or_else(|| invalid("a numeric timestamp is milliseconds since the epoch"))?,
        ),
        Some(other) => {
            return Err(invalid(format!(
                "timestamp is a date-time, not {}",
                other.kind()
            )));
        }
    };
    Ok(V3Record {
        partition,
        headers,
        key: data(value.get("key"), "key")?,
        value: data(value.get("value"), "value")?,
        timestamp,
    })
}

/// Where a produced record went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Produced {
    partition: i32,
    offset: i64,
    timestamp: i64,
}

fn data_json(data: &Option<Data>) -> Option<Value> {
    data.as_ref()
        .map(|d| json!({"type": d.kind.name(), "size": d.size()}))
}

/// A record's result object (without the batch entry id).
fn result_json(cluster: &str, topic: &str, record: &V3Record, produced: Produced) -> Value {
    let mut result = json!({
        "error_code": 200,
        "cluster_id": cluster,
        "topic_name": topic,
        "partition_id": produced.partition,
        "offset": produced.offset,
        "timestamp": rfc3339(produced.timestamp),
    });
    if let Some(object) = result.as_object_mut() {
        if let Some(key) = data_json(&record.key) {
            object.insert("key".to_owned(), key);
        }
        if let Some(value) = data_json(&record.value) {
            object.insert("value".to_owned(), value);
        }
    }
    result
}

/// Produces `records` (each checked already, or its error) to `topic` as one
/// step; each one's outcome, in order.
async fn produce_step(
    state: &Confluent,
    topic: &str,
    records: &[Result<V3Record, RestError>],
) -> Vec<Result<Produced, RestError>> {
    let core = &state.inner.core;
    let count = match core.topic(topic).await {
        Ok(info) => info.partition_count,
        Err(error) => {
            let error = RestError::kafka(Api::V3, &error);
            return records.iter().map(|_| Err(error.clone())).collect();
        }
    };
    let mut outcomes: Vec<Option<Result<Produced, RestError>>> = Vec::with_capacity(records.len());
    let mut unplaced = Vec::new();
    let mut slots = Vec::new();
    for (i, record) in records.iter().enumerate() {
        let record = match record {
            Err(error) => {
                outcomes.push(Some(Err(error.clone())));
                continue;
            }
            Ok(record) => record,
        };
        if record.partition.is_some_and(|p| p < 0 || p >= count) {
            outcomes.push(Some(Err(RestError::partition_not_found(Api::V3))));
            continue;
        }
        if record.timestamp.is_some_and(|t| t < 0) {
            outcomes.push(Some(Err(invalid("the timestamp is before 1970"))));
            continue;
        }
        outcomes.push(None);
        slots.push(i);
        unplaced.push(Unplaced {
            bytes: RecordBytes {
                key: record.key.as_ref().and_then(|k| k.bytes.clone()),
                value: record.value.as_ref().and_then(|v| v.bytes.clone()),
                headers: record.headers.clone(),
            },
            partition: record.partition,
            timestamp: record.timestamp,
        });
    }
    if !unplaced.is_empty() {
        let options = Options {
            only_partition: None,
            producer: None,
            expected_offset: None,
            acks: Acks::All,
            timeout: PRODUCE_TIMEOUT,
            forwarded: false,
        };
        match produce::produce(core, &state.inner.sticky, topic, unplaced, options).await {
            Ok(produced) => {
                for (slot, outcome) in slots.iter().zip(produced) {
                    outcomes[*slot] = Some(match outcome.written {
                        Ok((offset, timestamp)) => Ok(Produced {
                            partition: outcome.partition,
                            offset,
                            timestamp,
                        }),
                        Err(failure) => Err(RestError::failure(Api::V3, failure)),
                    });
                }
            }
            Err(failure) => {
                let error = RestError::failure(Api::V3, failure);
                for slot in &slots {
                    outcomes[*slot] = Some(Err(error.clone()));
                }
            }
        }
    }
    outcomes
        .into_iter()
        .map(|o| {
            o.unwrap_or_else(|| {
                Err(RestError::plain(
                    Api::V3,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "not produced",
                ))
            })
        })
        .collect()
}

/// Checks what every v3 produce checks: the cluster, the media types, the
/// topic. Returns the cluster id.
async fn check(
    state: &Confluent,
    cluster_id: &str,
    topic: &str,
    headers: &HeaderMap,
) -> Result<String, RestError> {
    check_accept(Api::V3, headers, &[JSON])?;
    let cluster = state.inner.core.cluster_id();
    if cluster_id != cluster {
        return Err(RestError::plain(
            Api::V3,
            StatusCode::NOT_FOUND,
            format!("Cluster {cluster_id} cannot be found."),
        ));
    }
    let media = super::content_type(headers);
    if media.as_deref() != Some(JSON) {
        return Err(RestError::unsupported_media_type(Api::V3, media.as_deref()));
    }
    state
        .inner
        .core
        .topic(topic)
        .await
        .map_err(|e| RestError::kafka(Api::V3, &e))?;
    Ok(cluster)
}

/// JSON values written one after another (Confluent's "concatenated JSON"),
/// taken out of a body as its bytes arrive.
#[derive(Debug)]
struct Concatenated {
    buffer: BytesMut,
    limit: usize,
}

impl Concatenated {
    fn new(limit: usize) -> Self {
        Self {
            buffer: BytesMut::new(),
            limit,
        }
    }

    /// More of the body; refused when one value outgrows the limit.
    fn push(&mut self, chunk: &[u8]) -> Result<(), RestError> {
        if self.buffer.len().saturating_add(chunk.len()) > self.limit {
            return Err(RestError::plain(
                Api::V3,
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a record is larger than {} bytes", self.limit),
            ));
        }
        self.buffer.extend_from_slice(chunk);
        Ok(())
    }

    /// The next complete value; `None` until more of the body arrives.
    fn next(&mut self) -> Option<Result<Json, RestError>> {
        let mut values = serde_json::Deserializer::from_slice(&self.buffer).into_iter::<Json>();
        match values.next() {
            None => {
                self.buffer.clear(); // only whitespace
                None
            }
            Some(Ok(value)) => {
                let used = values.byte_offset();
                self.buffer.advance(used);
                Some(Ok(value))
            }
            Some(Err(error)) if error.is_eof() => None,
            Some(Err(error)) => Some(Err(invalid(format!("bad JSON: {error}")))),
        }
    }

    /// At the end of the body: an error when a value was cut off.
    fn finish(&self) -> Result<(), RestError> {
        if self.buffer.iter().all(u8::is_ascii_whitespace) {
            Ok(())
        } else {
            Err(invalid("the body ends inside a JSON value"))
        }
    }
}

/// `POST /v3/clusters/{c}/topics/{t}/records`.
async fn produce_records(
    State(state): State<Confluent>,
    Path((cluster_id, topic)): Path<(String, String)>,
    headers: HeaderMap,
    _uri: Uri,
    body: Body,
) -> Result<Response, RestError> {
    let cluster = check(&state, &cluster_id, &topic, &headers).await?;
    Ok(produce_stream(state, cluster, topic, body))
}

/// A stream of records in, one result object per record out, in order.
fn produce_stream(state: Confluent, cluster: String, topic: String, body: Body) -> Response {
    use futures::StreamExt as _;
    let (records_tx, mut records_rx) =
        tokio::sync::mpsc::channel::<Result<Json, RestError>>(STEP_RECORDS);
    let (results_tx, results_rx) = tokio::sync::mpsc::channel::<Bytes>(RESULT_QUEUE);
    let limit = state.inner.settings.max_body_bytes;
    // The reader: the body's bytes to JSON values, until it ends or is not JSON.
    tokio::spawn(async move {
        let mut data = body.into_data_stream();
        let mut values = Concatenated::new(limit);
        while let Some(chunk) = data.next().await {
            let pushed = match chunk {
                Ok(chunk) => values.push(&chunk),
                Err(error) => Err(invalid(format!("cannot read the body: {error}"))),
            };
            if let Err(error) = pushed {
                let _ = records_tx.send(Err(error)).await;
                return;
            }
            while let Some(value) = values.next() {
                let failed = value.is_err();
                if records_tx.send(value).await.is_err() || failed {
                    return;
                }
            }
        }
        if let Err(error) = values.finish() {
            let _ = records_tx.send(Err(error)).await;
        }
    });
    // The writer: the values that arrived, produced as one step, answered in order.
    tokio::spawn(async move {
        loop {
            let mut values = Vec::new();
            let mut broken = None;
            match records_rx.recv().await {
                None => return,
                Some(Ok(value)) => values.push(value),
                Some(Err(error)) => broken = Some(error),
            }
            while broken.is_none() && values.len() < STEP_RECORDS {
                match records_rx.try_recv() {
                    Ok(Ok(value)) => values.push(value),
                    Ok(Err(error)) => broken = Some(error),
                    Err(_) => break,
                }
            }
            let records: Vec<Result<V3Record, RestError>> = values.iter().map(interpret).collect();
            if !records.is_empty() {
                let outcomes = produce_step(&state, &topic, &records).await;
                for (record, outcome) in records.iter().zip(outcomes) {
                    let line = match (record, outcome) {
                        (Ok(record), Ok(produced)) => {
                            result_json(&cluster, &topic, record, produced)
                        }
                        (_, Err(error)) => error.json(),
                        (Err(error), Ok(_)) => error.json(),
                    };
                    if results_tx
                        .send(Bytes::from(format!("{line}\n")))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            if let Some(error) = broken {
                let _ = results_tx
                    .send(Bytes::from(format!("{}\n", error.json())))
                    .await;
                return;
            }
        }
    });
    let stream = futures::stream::unfold(results_rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<Bytes, std::convert::Infallible>(line), rx))
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, JSON)],
        Body::from_stream(stream),
    )
        .into_response()
}

fn failure_json(id: &str, error: &RestError) -> Value {
    json!({"id": id, "error_code": error.error_code, "message": error.message})
}

/// `POST /v3/clusters/{c}/topics/{t}/records:batch`: 207.
async fn produce_batch(
    State(state): State<Confluent>,
    Path((cluster_id, topic)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, RestError> {
    let cluster = check(&state, &cluster_id, &topic, &headers).await?;
    let bytes = super::body_bytes(Api::V3, &state, &headers, body).await?;
    let request: Json = serde_json::from_slice(&bytes)
        .map_err(|error| invalid(format!("bad JSON body: {error}")))?;
    let Some(Json::Array(entries)) = request.field("entries") else {
        return Err(invalid("the body is {\"entries\": [...]}"));
    };
    if entries.is_empty() {
        return Err(invalid("the batch has no entries"));
    }
    if entries.len() > MAX_BATCH_ENTRIES {
        return Err(invalid(format!(
            "the batch has {} entries, more than {MAX_BATCH_ENTRIES}",
            entries.len()
        )));
    }
    let mut ids = Vec::with_capacity(entries.len());
    for entry in entries {
        let id = match entry.field("id") {
            Some(Json::String(id)) => id.clone(),
            Some(Json::Number(n)) => n.to_string(),
            _ => return Err(invalid("every entry has an id")),
        };
        if id.is_empty() || id.chars().count() > MAX_BATCH_ID_CHARS {
            return Err(invalid(format!(
                "entry id {id:?} is not 1 to {MAX_BATCH_ID_CHARS} characters long"
            )));
        }
        if ids.contains(&id) {
            return Err(invalid(format!(
                "entry ids are not distinct: {id:?} repeats"
            )));
        }
        ids.push(id);
    }
    let records: Vec<Result<V3Record, RestError>> = entries.iter().map(interpret).collect();
    let outcomes = produce_step(&state, &topic, &records).await;
    let mut successes = Vec::new();
    let mut failures = Vec::new();
    for ((id, record), outcome) in ids.iter().zip(&records).zip(outcomes) {
        match (record, outcome) {
            (Ok(record), Ok(produced)) => {
                let mut result = result_json(&cluster, &topic, record, produced);
                if let Some(object) = result.as_object_mut() {
                    object.remove("error_code");
                    object.insert("id".to_owned(), Value::String(id.clone()));
                }
                successes.push(result);
            }
            (_, Err(error)) => failures.push(failure_json(id, &error)),
            (Err(error), Ok(_)) => failures.push(failure_json(id, error)),
        }
    }
    Ok(answer(
        StatusCode::MULTI_STATUS,
        JSON,
        &json!({"successes": successes, "failures": failures}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Json {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn concatenated_values_split_wherever_the_chunks_end() {
        let body = br#" {"value":{"data":"a b"}}{"value":{"data":[1,2]}}
{"key":{"type":"STRING","data":"}{"}} "#;
        for chunk_size in 1..body.len() {
            let mut values = Concatenated::new(1 << 20);
            let mut found = Vec::new();
            for chunk in body.chunks(chunk_size) {
                values.push(chunk).unwrap();
                while let Some(value) = values.next() {
                    found.push(value.unwrap());
                }
            }
            values.finish().unwrap();
            assert_eq!(found.len(), 3, "chunks of {chunk_size}");
            assert_eq!(
                found[2].get("key").unwrap().get("data").unwrap().as_str(),
                Some("}{")
            );
        }
        let mut cut = Concatenated::new(1 << 20);
        cut.push(br#"{"value": "#).unwrap();
        assert!(cut.next().is_none());
        assert!(cut.finish().is_err());
        let mut bad = Concatenated::new(1 << 20);
        bad.push(b"{]").unwrap();
        assert!(matches!(bad.next(), Some(Err(_))));
        let mut small = Concatenated::new(4);
        assert!(small.push(b"{\"a\":1}").is_err());
    }

    #[test]
    fn records_are_read_with_each_data_type() {
        let record = interpret(&parse(
            r#"{"partition_id": 2, "headers": [{"name": "h", "value": "eA=="}, {"name": "n"}],
                "key": {"type": "BINARY", "data": "AAE="},
                "value": {"type": "JSON", "data": {"b": 1, "a": "x"}},
                "timestamp": "2021-02-05T19:14:42.123Z"}"#,
        ))
        .unwrap();
        assert_eq!(record.partition, Some(2));
        assert_eq!(
            record.headers,
            vec![
                ("h".to_owned(), Some(Bytes::from_static(b"x"))),
                ("n".to_owned(), None)
            ]
        );
        assert_eq!(
            record.key.as_ref().unwrap().bytes.as_deref(),
            Some(&[0u8, 1][..])
        );
        assert_eq!(
            record.value.as_ref().unwrap().bytes.as_deref(),
            Some(&br#"{"b":1,"a":"x"}"#[..])
        );
        assert_eq!(record.timestamp, Some(1_612_552_482_123));
        let string =
            interpret(&parse(r#"{"value": {"type": "string", "data": "héllo"}}"#)).unwrap();
        assert_eq!(
            string.value.unwrap().bytes.as_deref(),
            Some("héllo".as_bytes())
        );
        let untyped = interpret(&parse(r#"{"value": {"data": "text"}}"#)).unwrap();
        assert_eq!(
            untyped.value.unwrap().bytes.as_deref(),
            Some(&b"\"text\""[..])
        );
        let tombstone = interpret(&parse(
            r#"{"key": {"type": "BINARY", "data": "AA=="}, "value": null}"#,
        ))
        .unwrap();
        assert_eq!(tombstone.value, None);
        for bad in [
            r#"[]"#,
            r#"{"partition_id": "x"}"#,
            r#"{"value": {"type": "BINARY", "data": "!!"}}"#,
            r#"{"value": {"type": "BINARY", "data": 5}}"#,
            r#"{"value": {"type": "AVRO", "data": {}}}"#,
            r#"{"value": {"schema_id": 3, "data": {}}}"#,
            r#"{"value": {"type": "XML", "data": "x"}}"#,
            r#"{"headers": [{"value": "eA=="}]}"#,
            r#"{"timestamp": "yesterday"}"#,
        ] {
            let error = interpret(&parse(bad)).unwrap_err();
            assert_eq!(
                (error.status, error.error_code),
                (StatusCode::BAD_REQUEST, 400),
                "{bad}"
            );
        }
    }
}
