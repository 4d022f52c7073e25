//! `fjord.v1.Records`: produce (unary and streaming), read and tail.

use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use kafka_protocol::records::{Record, TimestampType};
use tonic::{Request, Response, Status, Streaming};

use super::proto::records_server::{Records, RecordsServer};
use super::proto::{
    self, ConsumedRecord, Heartbeat, InitProducerRequest, InitProducerResponse, ProduceRequest,
    ProduceResponse, ReadRequest, ReadResponse, RecordMetadata, TailRecord, TailRequest,
    TailResponse, read_request, tail_response,
};
use super::status::{bad_request, status};
use crate::core::Acks;
use crate::ops::Failure;
use crate::ops::partition_read::{self, Start};
use crate::ops::produce::{self, Options, Outcome, Unplaced};
use crate::ops::topic_read::{Cursor, TopicRead, bad_cursor, positions, read_once, watch_all};
use crate::records::{ProducerSequence, RecordBytes};
use crate::routes::State;

/// The service's full name.
pub(super) const NAME: &str = "fjord.v1.Records";

/// How long a tail waits for a commit before it reads again (commits wake it
/// at once; this only bounds a wake-up that was missed).
const TAIL_WAIT: Duration = Duration::from_secs(5);

/// The service over `state`. A request message larger than the HTTP API's
/// body limit is refused before it is decoded: tonic's decoder answers it
/// `OUT_OF_RANGE` ("decoded message length too large"), without details.
pub(super) fn service(state: State) -> RecordsServer<RecordsService> {
    let limit = state.settings.max_body_bytes;
    RecordsServer::new(RecordsService { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX)
}

#[derive(Debug, Clone)]
pub(super) struct RecordsService {
    state: State,
}

/// A stream of answers.
type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn acks_of(acks: i32) -> Result<Acks, Failure> {
    match proto::Acks::try_from(acks) {
        Ok(proto::Acks::All) => Ok(Acks::All),
        Ok(proto::Acks::Leader) => Ok(Acks::Leader),
        Ok(proto::Acks::None) => Ok(Acks::None),
        Err(_) => Err(Failure::BadRequest(format!(
            "acks {acks} is not one of Acks"
        ))),
    }
}

fn producer_of(producer: proto::ProducerSequence) -> Result<ProducerSequence, Failure> {
    match i16::try_from(producer.producer_epoch) {
        Ok(epoch) if producer.producer_id >= 0 && epoch >= 0 && producer.sequence >= 0 => {
            Ok(ProducerSequence {
                id: producer.producer_id,
                epoch,
                base_sequence: producer.sequence,
            })
        }
        _ => Err(Failure::BadRequest(
            "producer_id, producer_epoch and sequence are not negative, and the epoch fits 16 bits"
                .into(),
        )),
    }
}

/// One produce request.
async fn produce_one(state: &State, request: ProduceRequest) -> Result<ProduceResponse, Failure> {
    if request.partition.is_some_and(|p| p < 0) {
        return Err(Failure::BadRequest("partition is negative".into()));
    }
    if request.expected_offset.is_some_and(|o| o < 0) {
        return Err(Failure::BadRequest("expected_offset is negative".into()));
    }
    let options = Options {
        only_partition: request.partition,
        producer: request.producer.map(producer_of).transpose()?,
        expected_offset: request.expected_offset,
        acks: acks_of(request.acks)?,
        timeout: Duration::from_millis(
            u64::from(request.timeout_ms.unwrap_or(30_000)).min(300_000),
        ),
        forwarded: false,
    };
    if !request.record_batches.is_empty() {
        if !request.records.is_empty() {
            return Err(Failure::BadRequest(
                "give records or record_batches, not both".into(),
            ));
        }
        let Some(partition) = request.partition else {
            return Err(Failure::BadRequest(
                "record_batches need a partition".into(),
            ));
        };
        let base = produce::produce_batches(
            &state.core,
            &request.topic,
            partition,
            request.record_batches,
            options,
        )
        .await?;
        return Ok(ProduceResponse {
            records: vec![RecordMetadata {
                partition,
                offset: base,
                timestamp_ms: -1,
            }],
        });
    }
    let records = request
        .records
        .into_iter()
        .map(|record| Unplaced {
            bytes: RecordBytes {
                key: record.key,
                value: record.value,
                headers: record
                    .headers
                    .into_iter()
                    .map(|h| (h.key, h.value))
                    .collect(),
            },
            partition: record.partition,
            timestamp: record.timestamp_ms,
        })
        .collect();
    let outcomes =
        produce::produce(&state.core, &state.sticky, &request.topic, records, options).await?;
    if let Some(failure) = Outcome::first_failure(&outcomes) {
        return Err(failure.clone());
    }
    Ok(ProduceResponse {
        records: outcomes
            .into_iter()
            .filter_map(|outcome| {
                let (offset, timestamp_ms) = outcome.written.ok()?;
                Some(RecordMetadata {
                    partition: outcome.partition,
                    offset,
                    timestamp_ms,
                })
            })
            .collect(),
    })
}

/// A record read, as the API gives it.
pub(super) fn consumed(partition: i32, record: Record) -> ConsumedRecord {
    ConsumedRecord {
        partition,
        offset: record.offset,
        timestamp_ms: record.timestamp,
        timestamp_type: match record.timestamp_type {
            TimestampType::Creation => proto::TimestampType::CreateTime,
            TimestampType::LogAppend => proto::TimestampType::LogAppendTime,
        } as i32,
        key: record.key,
        value: record.value,
        headers: record
            .headers
            .into_iter()
            .map(|(key, value)| proto::Header {
                key: key.to_string(),
                value,
            })
            .collect(),
    }
}

/// Where partitions without a position start: a position (earliest by
/// default) or a time.
pub(super) fn start_of(position: i32, timestamp: Option<i64>) -> Result<Start, Failure> {
    if let Some(timestamp) = timestamp {
        return Ok(Start::Timestamp(timestamp));
    }
    match proto::Position::try_from(position) {
        Ok(proto::Position::Unspecified | proto::Position::Earliest) => Ok(Start::Earliest),
        Ok(proto::Position::Latest) => Ok(Start::Latest),
        Err(_) => Err(Failure::BadRequest(format!(
            "position {position} is not one of Position"
        ))),
    }
}

#[tonic::async_trait]
impl Records for RecordsService {
    async fn produce(
        &self,
        request: Request<ProduceRequest>,
    ) -> Result<Response<ProduceResponse>, Status> {
        produce_one(&self.state, request.into_inner())
            .await
            .map(Response::new)
            .map_err(status)
    }

    type ProduceStreamStream = Answers<ProduceResponse>;

    async fn produce_stream(
        &self,
        request: Request<Streaming<ProduceRequest>>,
    ) -> Result<Response<Self::ProduceStreamStream>, Status> {
        let inbound = request.into_inner();
        let state = self.state.clone();
        // In order, one at a time: a request is produced once the one before
        // it is answered, and the first failure ends the stream.
        let answers = futures::stream::unfold(
            (inbound, state, false),
            |(mut inbound, state, ended)| async move {
                if ended {
                    return None;
                }
                let next = tokio::select! {
                    next = inbound.message() => next,
                    () = state.shutdown.cancelled() => {
                        return Some((Err(shutting_down()), (inbound, state, true)));
                    }
                };
                match next {
                    Ok(None) => None,
                    Ok(Some(request)) => match produce_one(&state, request).await {
                        Ok(answer) => Some((Ok(answer), (inbound, state, false))),
                        Err(failure) => Some((Err(status(failure)), (inbound, state, true))),
                    },
                    Err(error) => Some((Err(error), (inbound, state, true))),
                }
            },
        );
        Ok(Response::new(Box::pin(answers)))
    }

    async fn init_producer(
        &self,
        _request: Request<InitProducerRequest>,
    ) -> Result<Response<InitProducerResponse>, Status> {
        let (producer_id, epoch) = self
            .state
            .core
            .new_producer()
            .await
            .map_err(|e| status(e.into()))?;
        Ok(Response::new(InitProducerResponse {
            producer_id,
            producer_epoch: i32::from(epoch),
        }))
    }

    async fn read(&self, request: Request<ReadRequest>) -> Result<Response<ReadResponse>, Status> {
        let request = request.into_inner();
        if request.partition < 0 {
            return Err(bad_request("partition is negative"));
        }
        let start = match request.start {
            Some(read_request::Start::Offset(offset)) => Start::Offset(offset),
            Some(read_request::Start::TimestampMs(timestamp)) => Start::Timestamp(timestamp),
            Some(read_request::Start::Position(position)) => {
                start_of(position, None).map_err(status)?
            }
            None => Start::Earliest,
        };
        let settings = &self.state.settings;
        let core = &self.state.core;
        let offset = partition_read::resolve(core, &request.topic, request.partition, start)
            .await
            .map_err(status)?;
        let max_records = request
            .max_records
            .map_or(500, |n| n as usize)
            .clamp(1, settings.max_records);
        let max_bytes = request.max_bytes.map_or(1024 * 1024, |n| n as usize).max(1);
        let wait =
            Duration::from_millis(u64::from(request.wait_ms.unwrap_or(0))).min(settings.max_wait);
        let read = partition_read::read(
            core,
            &request.topic,
            request.partition,
            offset,
            max_records,
            max_bytes,
            wait,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(ReadResponse {
            records: read
                .records
                .into_iter()
                .map(|r| consumed(request.partition, r))
                .collect(),
            next_offset: read.next_offset,
            high_watermark: read.high_watermark,
            log_start_offset: read.log_start_offset,
        }))
    }

    type TailStream = Answers<TailResponse>;

    async fn tail(
        &self,
        request: Request<TailRequest>,
    ) -> Result<Response<Self::TailStream>, Status> {
        let request = request.into_inner();
        let mut cursor = if request.cursor.is_empty() {
            Cursor::default()
        } else {
            Cursor::decode(&request.cursor).ok_or_else(|| status(bad_cursor()))?
        };
        let read = TopicRead {
            topic: request.topic,
            start: start_of(request.start, request.start_timestamp_ms).map_err(status)?,
            max_records: self.state.settings.max_records.min(500),
            max_bytes: 1024 * 1024,
        };
        // Unknown topics are refused before the stream starts.
        positions(&self.state.core, &read, &mut cursor)
            .await
            .map_err(status)?;
        let heartbeat =
            Duration::from_millis(u64::from(request.heartbeat_ms.unwrap_or(15_000)).max(100));
        Ok(Response::new(tail(
            self.state.clone(),
            read,
            cursor,
            heartbeat,
        )))
    }
}

/// The status a stream ends with when the agent shuts down: retriable, so the
/// client goes on through another agent.
pub(super) fn shutting_down() -> Status {
    Status::unavailable("the agent is shutting down; go on through another")
}

/// A tail's state between messages.
struct Tailing {
    state: State,
    read: TopicRead,
    cursor: Cursor,
    heartbeat: Duration,
    /// Messages ready to send.
    pending: std::collections::VecDeque<Result<TailResponse, Status>>,
    /// When a heartbeat is due if nothing else is sent.
    next_heartbeat: tokio::time::Instant,
    ended: bool,
}

fn heartbeat_message(cursor: &Cursor) -> TailResponse {
    TailResponse {
        event: Some(tail_response::Event::Heartbeat(Heartbeat {
            cursor: cursor.encode(),
        })),
    }
}

/// The stream of a tail: a heartbeat with the cursor first, then each record
/// with the cursor just after it, and a heartbeat whenever `heartbeat` passes
/// without one.
fn tail(
    state: State,
    read: TopicRead,
    cursor: Cursor,
    heartbeat: Duration,
) -> Answers<TailResponse> {
    let first = heartbeat_message(&cursor);
    let tailing = Tailing {
        state,
        read,
        cursor,
        heartbeat,
        pending: std::iter::once(Ok(first)).collect(),
        next_heartbeat: tokio::time::Instant::now() + heartbeat,
        ended: false,
    };
    Box::pin(futures::stream::unfold(tailing, |mut t| async move {
        loop {
            if let Some(message) = t.pending.pop_front() {
                t.next_heartbeat = tokio::time::Instant::now() + t.heartbeat;
                return Some((message, t));
            }
            if t.ended {
                return None;
            }
            let before = t.cursor.clone();
            let core = t.state.core.clone();
            let pass = async {
                let changed = watch_all(&core, &t.read.topic).await?;
                let records = read_once(&core, &t.read, &mut t.cursor).await?;
                Ok::<_, Failure>((changed, records))
            };
            let pass = tokio::select! {
                pass = pass => pass,
                () = t.state.shutdown.cancelled() => {
                    t.ended = true;
                    t.pending.push_back(Err(shutting_down()));
                    continue;
                }
            };
            match pass {
                Ok((changed, records)) if records.is_empty() => {
                    let wake = t
                        .next_heartbeat
                        .min(tokio::time::Instant::now() + TAIL_WAIT);
                    tokio::select! {
                        _ = tokio::time::timeout_at(wake, changed) => {}
                        () = t.state.shutdown.cancelled() => {
                            t.ended = true;
                            t.pending.push_back(Err(shutting_down()));
                            continue;
                        }
                    }
                    if tokio::time::Instant::now() >= t.next_heartbeat {
                        t.pending.push_back(Ok(heartbeat_message(&t.cursor)));
                    }
                }
                Ok((_, records)) => {
                    // Each record's cursor: the positions before this pass,
                    // moved past the records sent so far.
                    let mut at = before;
                    for (partition, record) in records {
                        at.advance(partition, &record);
                        t.pending.push_back(Ok(TailResponse {
                            event: Some(tail_response::Event::Record(TailRecord {
                                record: Some(consumed(partition, record)),
                                cursor: at.encode(),
                            })),
                        }));
                    }
                }
                Err(failure) => {
                    t.pending.push_back(Err(status(failure)));
                    t.ended = true;
                }
            }
        }
    }))
}
