//! Produce over HTTP.
//!
//! - `POST /v1/topics/{topic}/records` with a JSON body
//!   (`{"records": [{"key", "value", "headers", "partition", "timestamp"}]}`):
//!   records without a partition go where Kafka's default partitioner puts
//!   them (murmur2 of the key; one partition for all of a request's records
//!   without a key). Every partition's records become one batch; the batches
//!   are produced at once, and the answer lists each record's partition,
//!   offset and timestamp in request order.
//! - The same route with `Content-Type: application/x-ndjson` is a stream: one
//!   JSON record per line in, one acknowledgement (`{"partition", "offset",
//!   "timestamp"}`) per line out, in order, as they are written; a failure is
//!   the last line (`{"error": …}`). Read the acknowledgements while sending:
//!   past 100,000 unread ones the agent stops reading records.
//! - `POST /v1/topics/{topic}/partitions/{p}/records` takes the same JSON (a
//!   record naming another partition is refused), or a body of Kafka v2
//!   record batches (`application/vnd.kafka.record-batch`, or
//!   `application/octet-stream`) stored as given, as a Kafka client's would be.
//!
//! Query: `acks` (`all`/`-1`, `1`, `0`; default `all`) and `timeout_ms`
//! (default 30000), as Kafka's.
//!
//! Idempotence: `POST /v1/producers` gives a producer id and epoch (Kafka's
//! `InitProducerId`). A JSON produce to one partition that names them and the
//! sequence number of its first record (`producer_id`, `producer_epoch`,
//! `sequence`; the next request's sequence is this one's plus its record
//! count) is checked by the leader as a Kafka idempotent producer's batch is:
//! a retry, through any agent, is answered with the original offsets and
//! stored once; a gap is refused with `OUT_OF_ORDER_SEQUENCE_NUMBER` (409).
//!
//! Precondition: `expected_offset` on the partition route is the offset the
//! first record must get; the leader checks it where it assigns offsets, and
//! otherwise writes nothing and answers 412 `OFFSET_MISMATCH` with the
//! partition's `next_offset`.
//!
//! Nothing is written when the request is malformed or names a partition that
//! does not exist. When a partition's produce fails, the answer has the first
//! failure's status and error, and lists every record's outcome (others may
//! have been written).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State as Extract};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{State, json, media_type, partition_index, query, read_body};
use crate::core::{Acks, FORWARDED_HEADER, KafkaError};
use crate::error::{ApiError, ErrorBody};
use crate::ops::produce::{self, Options, Outcome, Unplaced};
use crate::records::{Encoding, JsonRecord, ProduceBody, ProducerSequence};

/// The media type of a body of Kafka v2 record batches.
pub(crate) const RECORD_BATCH: &str = "application/vnd.kafka.record-batch";
/// The media type of newline-delimited JSON streams.
const NDJSON: &str = "application/x-ndjson";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceQuery {
    #[serde(default)]
    acks: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    producer_id: Option<i64>,
    #[serde(default)]
    producer_epoch: Option<i16>,
    #[serde(default)]
    sequence: Option<i32>,
    #[serde(default)]
    expected_offset: Option<i64>,
}

impl ProduceQuery {
    fn acks(&self) -> Result<Acks, ApiError> {
        match self.acks.as_deref().unwrap_or("all") {
            "all" | "-1" => Ok(Acks::All),
            "1" => Ok(Acks::Leader),
            "0" => Ok(Acks::None),
            other => Err(ApiError::from(KafkaError::new(
                kafka_protocol::error::ResponseError::InvalidRequiredAcks,
                format!("acks must be all, -1, 1 or 0, not {other:?}"),
            ))),
        }
    }

    /// The idempotent producer's id, epoch and first sequence, given all
    /// three or none.
    fn producer(&self) -> Result<Option<ProducerSequence>, ApiError> {
        match (self.producer_id, self.producer_epoch, self.sequence) {
            (None, None, None) => Ok(None),
            (Some(id), Some(epoch), Some(base_sequence))
                if id >= 0 && epoch >= 0 && base_sequence >= 0 =>
            {
                Ok(Some(ProducerSequence {
                    id,
                    epoch,
                    base_sequence,
                }))
            }
            _ => Err(ApiError::bad_request(
                "an idempotent produce gives producer_id, producer_epoch and sequence, \
                 none negative",
            )),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(30_000).min(300_000))
    }

    /// How to produce to `only_partition` (or by the records' keys).
    fn options(
        &self,
        only_partition: Option<i32>,
        headers: &HeaderMap,
    ) -> Result<Options, ApiError> {
        if self.expected_offset.is_some_and(|o| o < 0) {
            return Err(ApiError::bad_request("expected_offset is negative"));
        }
        Ok(Options {
            only_partition,
            producer: self.producer()?,
            expected_offset: self.expected_offset,
            acks: self.acks()?,
            timeout: self.timeout(),
            forwarded: headers.contains_key(FORWARDED_HEADER),
        })
    }
}

/// One record's outcome in a produce answer.
#[derive(Debug, Serialize)]
struct RecordOutcome {
    partition: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timestamp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

#[derive(Debug, Serialize)]
struct ProduceAnswer {
    offsets: Vec<RecordOutcome>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorBody>,
}

/// `POST /v1/topics/{topic}/records`.
pub(super) async fn to_topic(
    Extract(state): Extract<State>,
    Path(topic): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let params: ProduceQuery = query(&uri)?;
    let options = params.options(None, &headers)?;
    if options.producer.is_some() || options.expected_offset.is_some() {
        return Err(ApiError::bad_request(
            "an idempotent produce, or one with expected_offset, names its partition: \
             POST /v1/topics/{topic}/partitions/{partition}/records",
        ));
    }
    match media_type(&headers).as_deref() {
        Some("application/json") => {}
        Some(NDJSON) => {
            // The topic must exist before the stream's answer starts.
            state.core.topic(&topic).await?;
            return Ok(produce_ndjson(state, topic, body, options));
        }
        other => {
            return Err(ApiError::unsupported_media_type(
                other.unwrap_or("none"),
                &format!("application/json or {NDJSON}"),
            ));
        }
    }
    let body = read_body(&headers, body, state.settings.max_body_bytes).await?;
    let request: ProduceBody = json(&body)?;
    produce_json(&state, &topic, request, options).await
}

/// `POST /v1/producers`: a new idempotent producer (201).
pub(super) async fn new_producer(Extract(state): Extract<State>) -> Result<Response, ApiError> {
    let (id, epoch) = state.core.new_producer().await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"producer_id": id, "producer_epoch": epoch})),
    )
        .into_response())
}

/// `POST /v1/topics/{topic}/partitions/{partition}/records`.
pub(super) async fn to_partition(
    Extract(state): Extract<State>,
    Path((topic, partition)): Path<(String, String)>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let partition = partition_index(&partition)?;
    let params: ProduceQuery = query(&uri)?;
    let options = params.options(Some(partition), &headers)?;
    let kind = media_type(&headers);
    let body = read_body(&headers, body, state.settings.max_body_bytes).await?;
    match kind.as_deref() {
        Some("application/json") => {
            let request: ProduceBody = json(&body)?;
            produce_json(&state, &topic, request, options).await
        }
        Some(RECORD_BATCH | "application/octet-stream") => {
            produce_batches(&state, &topic, partition, body, options).await
        }
        other => Err(ApiError::unsupported_media_type(
            other.unwrap_or("none"),
            &format!("application/json or {RECORD_BATCH}"),
        )),
    }
}

/// A body of record batches, stored as given.
async fn produce_batches(
    state: &State,
    topic: &str,
    partition: i32,
    body: Bytes,
    options: Options,
) -> Result<Response, ApiError> {
    let base_offset =
        produce::produce_batches(&state.core, topic, partition, body, options).await?;
    Ok(axum::Json(serde_json::json!({
        "partition": partition,
        "base_offset": base_offset,
    }))
    .into_response())
}

/// JSON records: partitioned, one batch per partition, produced at once.
async fn produce_json(
    state: &State,
    topic: &str,
    request: ProduceBody,
    options: Options,
) -> Result<Response, ApiError> {
    let outcomes =
        produce_records(state, topic, &request.records, request.encoding, options).await?;
    let (status, error) = match Outcome::first_failure(&outcomes) {
        None => (StatusCode::OK, None),
        Some(failure) => {
            let api = ApiError::from(failure.clone());
            (api.status, Some(api.body))
        }
    };
    let offsets = outcomes.into_iter().map(RecordOutcome::from).collect();
    let mut response = (status, axum::Json(ProduceAnswer { offsets, error })).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    Ok(response)
}

impl From<Outcome> for RecordOutcome {
    fn from(outcome: Outcome) -> Self {
        match outcome.written {
            Ok((offset, timestamp)) => Self {
                partition: outcome.partition,
                offset: Some(offset),
                timestamp: Some(timestamp),
                error: None,
            },
            Err(failure) => Self {
                partition: outcome.partition,
                offset: None,
                timestamp: None,
                error: Some(ApiError::from(failure).body),
            },
        }
    }
}

/// Produces JSON `records` (see [`produce::produce`]): each record's outcome
/// in order.
async fn produce_records(
    state: &State,
    topic: &str,
    records: &[JsonRecord],
    encoding: Encoding,
    options: Options,
) -> Result<Vec<Outcome>, ApiError> {
    let unplaced = records
        .iter()
        .enumerate()
        .map(|(i, record)| {
            Ok(Unplaced {
                bytes: record
                    .bytes(encoding)
                    .map_err(|e| ApiError::bad_request(format!("record {i}: {e}")))?,
                partition: record.partition,
                timestamp: record.timestamp,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(produce::produce(&state.core, &state.sticky, topic, unplaced, options).await?)
}

/// The most records produced as one step of an NDJSON stream.
const NDJSON_STEP_RECORDS: usize = 1_000;
/// Acknowledgement lines queued for a client that does not read them yet;
/// past it the stream stops reading records until the client reads.
const NDJSON_ACK_QUEUE: usize = 100_000;

/// An NDJSON stream: one JSON record per line in, one acknowledgement per
/// line out, in order. Lines are read (and parsed) all the time; the records
/// that arrived while the previous step was being written are produced as the
/// next step (at most [`NDJSON_STEP_RECORDS`]), once the previous one is
/// acknowledged, so each partition keeps the stream's order and steps grow
/// with the load. A failure (a bad line, a failed produce) is the last line,
/// and ends the stream. A line longer than the body limit is a failure.
fn produce_ndjson(state: State, topic: String, body: Body, options: Options) -> Response {
    use futures::StreamExt as _;
    use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(NDJSON_ACK_QUEUE);
    let (records_tx, mut records_rx) =
        tokio::sync::mpsc::channel::<Result<JsonRecord, ApiError>>(NDJSON_STEP_RECORDS);
    let max_line = state.settings.max_body_bytes;
    // The reader: lines to records, until the body ends or a line is bad.
    tokio::spawn(async move {
        let reader = tokio_util::io::StreamReader::new(
            body.into_data_stream()
                .map(|chunk| chunk.map_err(std::io::Error::other)),
        );
        let mut lines = FramedRead::new(reader, LinesCodec::new_with_max_length(max_line));
        let mut number = 0usize;
        while let Some(line) = lines.next().await {
            number += 1;
            let record = match line {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => crate::records::object_from_str::<JsonRecord>(&text).map_err(|error| {
                    ApiError::bad_request(format!("line {number}: bad JSON record: {error}"))
                }),
                Err(LinesCodecError::MaxLineLengthExceeded) => Err(ApiError::too_large(max_line)),
                Err(LinesCodecError::Io(error)) => Err(ApiError::bad_request(format!(
                    "cannot read the body: {error}"
                ))),
            };
            let failed = record.is_err();
            if records_tx.send(record).await.is_err() || failed {
                return;
            }
        }
    });
    // The writer: steps of what arrived, acknowledged in order.
    tokio::spawn(async move {
        let send_error = |error: ApiError| {
            let tx = tx.clone();
            async move {
                let line = serde_json::json!({ "error": error.body }).to_string() + "\n";
                let _ = tx.send(Bytes::from(line)).await;
            }
        };
        loop {
            let mut records = Vec::new();
            let mut bad = None;
            match records_rx.recv().await {
                None => return,
                Some(Ok(record)) => records.push(record),
                Some(Err(error)) => bad = Some(error),
            }
            while bad.is_none() && records.len() < NDJSON_STEP_RECORDS {
                match records_rx.try_recv() {
                    Ok(Ok(record)) => records.push(record),
                    Ok(Err(error)) => bad = Some(error),
                    Err(_) => break,
                }
            }
            if !records.is_empty() {
                let produced =
                    produce_records(&state, &topic, &records, Encoding::Utf8, options).await;
                match produced {
                    Ok(outcomes) => {
                        let first_failure = Outcome::first_failure(&outcomes).cloned();
                        for outcome in outcomes {
                            let line = serde_json::to_string(&RecordOutcome::from(outcome))
                                .unwrap_or_default()
                                + "\n";
                            if tx.send(Bytes::from(line)).await.is_err() {
                                return;
                            }
                        }
                        if let Some(failure) = first_failure {
                            send_error(ApiError::from(failure)).await;
                            return;
                        }
                    }
                    Err(error) => {
                        send_error(error).await;
                        return;
                    }
                }
            }
            if let Some(error) = bad {
                send_error(error).await;
                return;
            }
        }
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|line| (Ok::<Bytes, std::convert::Infallible>(line), rx))
    });
    (
        [(axum::http::header::CONTENT_TYPE, NDJSON)],
        Body::from_stream(stream),
    )
        .into_response()
}
