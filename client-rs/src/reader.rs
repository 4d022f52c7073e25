//! [`Reader`]: read a partition from a [`Position`], or tail it as a stream
//! of records over Server-Sent Events that moves to another agent by itself.
//!
//! A tail (`GET /v1/topics/{t}/partitions/{p}/records` with `Accept:
//! text/event-stream`) gets one `record` event per record, whose `id` is the
//! offset after it. When the connection ends or fails (the agent stopped, the
//! network broke, nothing arrived for a while), the tail reconnects to the
//! next agent with `Last-Event-ID` set to the last id received, so it resumes
//! exactly there: no gap, no duplicate.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use http_body_util::BodyExt as _;
use hyper::Method;
use hyper::header::{self, HeaderName, HeaderValue};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::client::{Client, encode};
use crate::error::{Error, ErrorEnvelope, Result};
use crate::records::{ConsumedRecord, WireReadRecord};
use crate::sse;

/// Where a read or a tail starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// At this offset.
    Offset(i64),
    /// At the first record whose timestamp is at or after this one (ms since
    /// the epoch).
    Timestamp(i64),
    /// At the first record still stored.
    Earliest,
    /// After the last committed record: only records produced from now on.
    Latest,
}

impl Position {
    fn query(self) -> String {
        match self {
            Position::Offset(offset) => format!("offset={offset}"),
            Position::Timestamp(timestamp) => format!("timestamp={timestamp}"),
            Position::Earliest => "offset=earliest".to_owned(),
            Position::Latest => "offset=latest".to_owned(),
        }
    }
}

/// What a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// The records, in offset order.
    pub records: Vec<ConsumedRecord>,
    /// Where the next read starts (reading from it again and again sees
    /// every record once).
    pub next_offset: i64,
    /// The offset after the last committed record.
    pub high_watermark: i64,
    /// The first offset still stored.
    pub log_start_offset: i64,
}

#[derive(Debug, Deserialize)]
struct WireReadAnswer {
    records: Vec<WireReadRecord>,
    next_offset: i64,
    high_watermark: i64,
    log_start_offset: i64,
}

/// How often an idle tail asks for a heartbeat comment.
const TAIL_HEARTBEAT: Duration = Duration::from_secs(5);
/// A tail that receives nothing (not even a heartbeat) for this long
/// reconnects.
const TAIL_IDLE: Duration = Duration::from_secs(20);
/// Records a tail buffers ahead of its consumer.
const TAIL_BUFFER: usize = 256;

/// Reads and tails ([`Client::reader`]).
#[derive(Debug, Clone)]
pub struct Reader {
    client: Client,
}

impl Reader {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    /// At most `max_records` committed records of `topic`'s `partition` from
    /// `from`, and where the next read starts. Answers at once, with no
    /// record when there is none yet (see [`Reader::read_wait`]).
    pub async fn read(
        &self,
        topic: &str,
        partition: i32,
        from: Position,
        max_records: usize,
    ) -> Result<ReadResult> {
        self.read_wait(topic, partition, from, max_records, Duration::ZERO)
            .await
    }

    /// As [`Reader::read`], waiting up to `wait` (at most 30 s) for a record
    /// when there is none yet.
    pub async fn read_wait(
        &self,
        topic: &str,
        partition: i32,
        from: Position,
        max_records: usize,
        wait: Duration,
    ) -> Result<ReadResult> {
        let path = format!(
            "/v1/topics/{}/partitions/{partition}/records?{}&max_records={}&wait_ms={}&encoding=base64",
            encode(topic),
            from.query(),
            max_records.max(1),
            wait.as_millis()
        );
        let answer: WireReadAnswer = self
            .client
            .call_json::<(), _>(Method::GET, &path, None)
            .await?;
        Ok(ReadResult {
            records: answer
                .records
                .into_iter()
                .map(WireReadRecord::decode)
                .collect::<Result<_>>()?,
            next_offset: answer.next_offset,
            high_watermark: answer.high_watermark,
            log_start_offset: answer.log_start_offset,
        })
    }

    /// A stream of `topic`'s `partition` from `from`, as records are
    /// committed, that reconnects by itself (to the next agent, resuming
    /// after the last record received) when its connection ends or fails.
    ///
    /// [`Position::Latest`] is resolved to an offset before this returns, so
    /// every record produced after the call is seen. The stream ends with an
    /// error when the gateway refuses the tail (an unknown topic, an offset
    /// out of range) or when no agent answers after the client's
    /// [`crate::ClientOptions::max_attempts`] tries in a row.
    pub async fn tail(&self, topic: &str, partition: i32, from: Position) -> Result<Tail> {
        let from = match from {
            Position::Latest => Position::Offset(
                self.client
                    .admin()
                    .describe_partition(topic, partition)
                    .await?
                    .high_watermark,
            ),
            other => other,
        };
        let (records, receiver) = mpsc::channel(TAIL_BUFFER);
        let task = tokio::spawn(run_tail(
            self.client.clone(),
            topic.to_owned(),
            partition,
            from,
            records,
        ));
        Ok(Tail {
            records: receiver,
            task: task.abort_handle(),
            position: Arc::new(AtomicI64::new(match from {
                Position::Offset(offset) => offset,
                _ => -1,
            })),
        })
    }
}

/// A partition's records as they are committed ([`Reader::tail`]): a
/// [`Stream`] of records in offset order. Dropping it closes the connection.
#[derive(Debug)]
pub struct Tail {
    records: mpsc::Receiver<Result<ConsumedRecord>>,
    task: tokio::task::AbortHandle,
    position: Arc<AtomicI64>,
}

impl Tail {
    /// The offset after the last record this stream yielded (where it would
    /// resume); `None` before the first record when the start was not an
    /// offset.
    pub fn position(&self) -> Option<i64> {
        let position = self.position.load(Ordering::Relaxed);
        (position >= 0).then_some(position)
    }
}

impl Stream for Tail {
    type Item = Result<ConsumedRecord>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.records.poll_recv(cx);
        if let Poll::Ready(Some(Ok(record))) = &polled {
            self.position.store(record.offset + 1, Ordering::Relaxed);
        }
        polled
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How one connection of a tail ended.
enum Ended {
    /// Reconnect (the stream ended, failed, idled, or sent a retriable error).
    Reconnect(Option<Error>),
    /// Stop: the consumer is gone, or an error was passed on.
    Stop,
}

/// The tail's task: connect, pass records on, reconnect with
/// `Last-Event-ID` when the connection ends.
async fn run_tail(
    client: Client,
    topic: String,
    partition: i32,
    from: Position,
    records: mpsc::Sender<Result<ConsumedRecord>>,
) {
    let path = format!(
        "/v1/topics/{}/partitions/{partition}/records?{}&encoding=base64&heartbeat_ms={}",
        encode(&topic),
        from.query(),
        TAIL_HEARTBEAT.as_millis()
    );
    // The offset after the last record passed on: where a reconnect resumes.
    let mut resume: Option<i64> = match from {
        Position::Offset(offset) => Some(offset),
        _ => None,
    };
    let max_failures = client.options().max_attempts.max(2 * client.agent_count());
    let mut failures = 0u32;
    loop {
        let started = tokio::time::Instant::now();
        let ended = tail_once(
            &client,
            &path,
            &mut resume,
            &mut failures,
            &records,
            client.next_agent(),
        )
        .await;
        let error = match ended {
            Ended::Stop => return,
            Ended::Reconnect(error) => error,
        };
        if started.elapsed() >= TAIL_HEARTBEAT {
            // A connection that served for a while is not a failure in a row.
            failures = 0;
        }
        failures += 1;
        if failures as usize >= max_failures {
            let error = error.unwrap_or_else(|| {
                Error::Transport(format!("the tail ended {failures} times in a row"))
            });
            let _ = records.send(Err(error)).await;
            return;
        }
        let retry_after = match &error {
            Some(Error::Api { retry_after, .. }) => *retry_after,
            _ => None,
        };
        tokio::time::sleep(client.backoff(failures, retry_after)).await;
    }
}

/// One connection of a tail, to `agent`.
async fn tail_once(
    client: &Client,
    path: &str,
    resume: &mut Option<i64>,
    failures: &mut u32,
    records: &mpsc::Sender<Result<ConsumedRecord>>,
    agent: usize,
) -> Ended {
    let mut headers = vec![(
        header::ACCEPT,
        HeaderValue::from_static("text/event-stream"),
    )];
    if let Some(offset) = *resume {
        headers.push((
            HeaderName::from_static("last-event-id"),
            HeaderValue::from(offset),
        ));
    }
    let opened = tokio::time::timeout(
        client.options().request_timeout,
        client.open(agent, Method::GET, path, &headers, None),
    )
    .await
    .unwrap_or_else(|_| Err(Error::Transport("connecting the tail timed out".into())));
    let response = match opened {
        Ok(response) => response,
        Err(error) if error.moves_on() => return Ended::Reconnect(Some(error)),
        Err(error) => {
            let _ = records.send(Err(error)).await;
            return Ended::Stop;
        }
    };
    let mut body = response.into_body();
    let mut parser = sse::Parser::default();
    loop {
        let frame = match tokio::time::timeout(TAIL_IDLE, body.frame()).await {
            Err(_) => return Ended::Reconnect(Some(Error::Transport("the tail went idle".into()))),
            Ok(None) => return Ended::Reconnect(None),
            Ok(Some(Err(error))) => {
                return Ended::Reconnect(Some(Error::Transport(format!(
                    "the tail's connection failed: {error}"
                ))));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for event in parser.feed(&data) {
            match event.kind.as_str() {
                "record" => {
                    let record = serde_json::from_str::<WireReadRecord>(&event.data)
                        .map_err(|e| Error::Decode(format!("a tail's record event: {e}")))
                        .and_then(WireReadRecord::decode);
                    let record = match record {
                        Ok(record) => record,
                        Err(error) => {
                            let _ = records.send(Err(error)).await;
                            return Ended::Stop;
                        }
                    };
                    let next = event
                        .id
                        .as_deref()
                        .and_then(|id| id.trim().parse::<i64>().ok())
                        .unwrap_or(record.offset + 1);
                    if resume.is_some_and(|resume| record.offset < resume) {
                        // Already passed on (never expected: the gateway
                        // resumes exactly at Last-Event-ID).
                        continue;
                    }
                    *resume = Some(next);
                    *failures = 0;
                    if records.send(Ok(record)).await.is_err() {
                        return Ended::Stop;
                    }
                }
                "error" => {
                    let error = match serde_json::from_str::<ErrorEnvelope>(&event.data) {
                        Ok(envelope) => Error::Api {
                            status: envelope.status.unwrap_or(200),
                            body: envelope.error,
                            retry_after: None,
                        },
                        Err(e) => Error::Decode(format!("a tail's error event: {e}")),
                    };
                    if error.is_retriable() {
                        return Ended::Reconnect(Some(error));
                    }
                    let _ = records.send(Err(error)).await;
                    return Ended::Stop;
                }
                _ => {}
            }
        }
    }
}
