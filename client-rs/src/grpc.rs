//! The gRPC transport (feature `grpc`): [`GrpcClient`] calls the same
//! agents' gRPC services (`proto/fjord/v1/gateway.proto`) on the same port
//! as the HTTP API, with the same retry rule as [`crate::Client`]: a call
//! that fails with a transport error or `UNAVAILABLE` goes to the next agent.
//!
//! ```no_run
//! use fjord_client::grpc::{GrpcClient, TailStart};
//! use fjord_client::{Position, Record};
//! use futures::StreamExt as _;
//!
//! # async fn example() -> fjord_client::Result<()> {
//! let client = GrpcClient::new(vec!["http://127.0.0.1:8080".into()])?;
//! client.create_topic("demo", Some(3), Vec::<(String, String)>::new()).await?;
//! let stored = client.produce("demo", Some(0), &[Record::new("hello")], None).await?;
//! let read = client.read("demo", 0, Position::Earliest, 100).await?;
//! assert_eq!(read.records[0].offset, stored[0].offset);
//! let mut tail = client.tail("demo", TailStart::Earliest).await?;
//! while let Some(record) = tail.next().await {
//!     println!("{:?}", record?);
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

use crate::admin::{PartitionInfo, TopicDescription, TopicSummary};
use crate::client::ClientOptions;
use crate::error::{Error, ErrorBody, Result};
use crate::produce::{ProducerId, Sequence};
use crate::reader::{Position, ReadResult};
use crate::records::{ConsumedRecord, Header, Record, RecordMetadata};

/// The code `tonic-prost-build` generated from the `.proto` files (clients only).
#[allow(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    clippy::all,
    clippy::pedantic
)]
pub mod proto {
    tonic::include_proto!("fjord.v1");
}

use proto::records_client::RecordsClient;
use proto::topics_client::TopicsClient;

/// A client of the agents' gRPC services. Cheap to clone.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    channels: Vec<Channel>,
    next: AtomicUsize,
    options: ClientOptions,
}

/// Where a tail starts on the partitions its cursor does not name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TailStart {
    /// Every partition from its first record still stored.
    Earliest,
    /// Only records committed from now on.
    Latest,
    /// From the first record at or after this time (ms since the epoch).
    Timestamp(i64),
    /// Where a cursor (from [`GrpcTail::cursor`]) stands.
    Cursor(String),
}

/// The error of a failed call: the gateway's code and error object, from the
/// status and its trailers.
fn error_of(status: &Status) -> Error {
    let trailer = |key: &str| {
        status
            .metadata()
            .get(key)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let transport = matches!(status.code(), Code::Unavailable | Code::Unknown)
        && trailer("fjord-error-code").is_none();
    if transport {
        return Error::Transport(format!("{:?}: {}", status.code(), status.message()));
    }
    Error::Rpc {
        code: format!("{:?}", status.code()),
        body: ErrorBody {
            code: trailer("fjord-error-code").unwrap_or_else(|| format!("{:?}", status.code())),
            kafka_error_code: trailer("fjord-kafka-error-code").and_then(|c| c.parse().ok()),
            message: status.message().to_owned(),
            retriable: trailer("fjord-retriable").as_deref() == Some("true")
                || status.code() == Code::Unavailable,
            next_offset: trailer("next_offset").and_then(|o| o.parse().ok()),
        },
    }
}

impl GrpcClient {
    /// A client of the agents at `urls` (`http://host:port`, their HTTP
    /// port), with default [`ClientOptions`]. Connects lazily.
    pub fn new(urls: Vec<String>) -> Result<Self> {
        Self::with_options(urls, ClientOptions::default())
    }

    /// As [`GrpcClient::new`], with `options`.
    pub fn with_options(urls: Vec<String>, options: ClientOptions) -> Result<Self> {
        if urls.is_empty() {
            return Err(Error::InvalidArgument("no agent URL given".into()));
        }
        let channels = urls
            .iter()
            .map(|url| {
                if !url.trim().starts_with("http://") {
                    return Err(Error::InvalidArgument(format!(
                        "{url}: expected http://host:port (TLS is not supported yet)"
                    )));
                }
                Endpoint::from_shared(url.trim().to_owned())
                    .map(|e| {
                        e.connect_timeout(Duration::from_secs(5))
                            .tcp_nodelay(true)
                            .connect_lazy()
                    })
                    .map_err(|e| Error::InvalidArgument(format!("{url}: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            inner: Arc::new(Inner {
                channels,
                next: AtomicUsize::new(0),
                options: ClientOptions {
                    max_attempts: options.max_attempts.max(1),
                    ..options
                },
            }),
        })
    }

    fn next_agent(&self) -> usize {
        self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.channels.len()
    }

    fn channel(&self, agent: usize) -> Channel {
        self.inner.channels[agent % self.inner.channels.len()].clone()
    }

    fn backoff(&self, retry: u32) -> Duration {
        let options = &self.inner.options;
        options
            .backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(16))
            .min(options.max_backoff)
    }

    /// Runs `call` on the agents in turn until it succeeds, fails with an
    /// error that does not move on (see [`Error::is_retriable`]'s transport
    /// cases and `UNAVAILABLE`), or the attempts run out.
    async fn call<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = std::result::Result<T, Status>>,
    {
        self.call_retrying(true, call).await
    }

    /// [`call`](Self::call), sent once only unless `retry`.
    async fn call_retrying<T, F, Fut>(&self, retry: bool, mut call: F) -> Result<T>
    where
        F: FnMut(Channel) -> Fut,
        Fut: Future<Output = std::result::Result<T, Status>>,
    {
        let first = self.next_agent();
        let mut attempt = 0u32;
        loop {
            let channel = self.channel(first + attempt as usize);
            let answer = tokio::time::timeout(self.inner.options.request_timeout, call(channel))
                .await
                .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer in time")));
            let error = match answer {
                Ok(value) => return Ok(value),
                Err(status) => error_of(&status),
            };
            attempt += 1;
            let moves_on = matches!(error, Error::Transport(_))
                || matches!(&error, Error::Rpc { code, .. } if code == "Unavailable" || code == "DeadlineExceeded");
            if !retry || !moves_on || attempt as usize >= self.inner.options.max_attempts {
                return Err(error);
            }
            tokio::time::sleep(self.backoff(attempt)).await;
        }
    }

    /// Creates `name` with `partitions` (`None`: the agents' default) and
    /// `configs` (Kafka's topic configs).
    pub async fn create_topic<K, V>(
        &self,
        name: &str,
        partitions: Option<i32>,
        configs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<TopicDescription>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let request = proto::CreateTopicRequest {
            name: name.to_owned(),
            partitions,
            configs: configs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        };
        let topic = self
            .call(|channel| {
                let request = request.clone();
                async move { TopicsClient::new(channel).create_topic(request).await }
            })
            .await?;
        Ok(description(topic.into_inner()))
    }

    /// A topic, its partitions (offsets and leaders) and configs.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        let request = proto::DescribeTopicRequest {
            name: name.to_owned(),
        };
        let topic = self
            .call(|channel| {
                let request = request.clone();
                async move { TopicsClient::new(channel).describe_topic(request).await }
            })
            .await?;
        Ok(description(topic.into_inner()))
    }

    /// Every topic.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        let answer = self
            .call(|channel| async move {
                TopicsClient::new(channel)
                    .list_topics(proto::ListTopicsRequest {})
                    .await
            })
            .await?;
        Ok(answer
            .into_inner()
            .topics
            .into_iter()
            .map(|t| TopicSummary {
                name: t.name,
                id: t.id,
                partitions: t.partition_count,
            })
            .collect())
    }

    /// Deletes a topic.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        let request = proto::DeleteTopicRequest {
            name: name.to_owned(),
        };
        self.call(|channel| {
            let request = request.clone();
            async move { TopicsClient::new(channel).delete_topic(request).await }
        })
        .await?;
        Ok(())
    }

    /// A new idempotent producer's id and epoch.
    pub async fn new_producer_id(&self) -> Result<ProducerId> {
        let answer = self
            .call(|channel| async move {
                RecordsClient::new(channel)
                    .init_producer(proto::InitProducerRequest {})
                    .await
            })
            .await?
            .into_inner();
        Ok(ProducerId {
            id: answer.producer_id,
            epoch: i16::try_from(answer.producer_epoch)
                .map_err(|_| Error::Decode("a producer epoch past 16 bits".into()))?,
        })
    }

    /// Produces `records` with `acks=all`, to `partition` (or each record's,
    /// or by key); idempotent when `sequence` is given (needs `partition`).
    /// Each record's partition, offset and timestamp, in order.
    ///
    /// A produce to one partition is sent again to the next agent when it
    /// fails as every call does (it wrote nothing, or, for a lost answer, a
    /// retry without `sequence` may store the records twice, as a Kafka
    /// producer's retry without idempotence may). A produce spread over
    /// several partitions is not sent again: some of its partitions may have
    /// been written when another failed.
    ///
    /// With `sequence`, records without a timestamp are stamped here, so that
    /// a retry is the same batch and its answer the original's.
    pub async fn produce(
        &self,
        topic: &str,
        partition: Option<i32>,
        records: &[Record],
        sequence: Option<Sequence>,
    ) -> Result<Vec<RecordMetadata>> {
        let mut request = produce_request(topic, partition, records, sequence, None);
        if sequence.is_some() {
            let now = fjord_common::Clock::now_millis(&fjord_common::SystemClock);
            for record in &mut request.records {
                record.timestamp_ms.get_or_insert(now);
            }
        }
        self.produce_request(request).await
    }

    /// Produces `records` to `partition` only if the first gets offset
    /// `expected_offset`; otherwise nothing is written and the error's
    /// [`Error::next_offset`] is the partition's next offset.
    pub async fn produce_at(
        &self,
        topic: &str,
        partition: i32,
        records: &[Record],
        expected_offset: i64,
    ) -> Result<Vec<RecordMetadata>> {
        self.produce_request(produce_request(
            topic,
            Some(partition),
            records,
            None,
            Some(expected_offset),
        ))
        .await
    }

    async fn produce_request(&self, request: proto::ProduceRequest) -> Result<Vec<RecordMetadata>> {
        let one_partition = request.partition.is_some();
        let answer = self
            .call_retrying(one_partition, |channel| {
                let request = request.clone();
                async move { RecordsClient::new(channel).produce(request).await }
            })
            .await?;
        Ok(answer
            .into_inner()
            .records
            .into_iter()
            .map(|r| RecordMetadata {
                partition: r.partition,
                offset: r.offset,
                timestamp: r.timestamp_ms,
            })
            .collect())
    }

    /// A stream of produce requests to `topic` on one connection: each item
    /// of `requests` (records, and the partition they all go to, if one) is
    /// produced once the one before it is answered, and answered in order.
    /// The first failure ends the stream.
    pub async fn produce_stream<S>(
        &self,
        topic: &str,
        requests: S,
    ) -> Result<impl Stream<Item = Result<Vec<RecordMetadata>>> + use<S>>
    where
        S: Stream<Item = (Option<i32>, Vec<Record>)> + Send + 'static,
    {
        use futures::StreamExt as _;
        let topic = topic.to_owned();
        let outbound = requests.map(move |(partition, records)| {
            produce_request(&topic, partition, &records, None, None)
        });
        let mut client = RecordsClient::new(self.channel(self.next_agent()));
        let answers = client
            .produce_stream(outbound)
            .await
            .map_err(|s| error_of(&s))?
            .into_inner();
        Ok(answers.map(|answer| {
            answer
                .map(|a| {
                    a.records
                        .into_iter()
                        .map(|r| RecordMetadata {
                            partition: r.partition,
                            offset: r.offset,
                            timestamp: r.timestamp_ms,
                        })
                        .collect()
                })
                .map_err(|s| error_of(&s))
        }))
    }

    /// At most `max_records` committed records of `topic`'s `partition`
    /// from `from`, and where the next read starts.
    pub async fn read(
        &self,
        topic: &str,
        partition: i32,
        from: Position,
        max_records: u32,
    ) -> Result<ReadResult> {
        let start = match from {
            Position::Offset(o) => proto::read_request::Start::Offset(o),
            Position::Timestamp(t) => proto::read_request::Start::TimestampMs(t),
            Position::Earliest => {
                proto::read_request::Start::Position(proto::Position::Earliest as i32)
            }
            Position::Latest => {
                proto::read_request::Start::Position(proto::Position::Latest as i32)
            }
        };
        let request = proto::ReadRequest {
            topic: topic.to_owned(),
            partition,
            start: Some(start),
            max_records: Some(max_records),
            max_bytes: None,
            wait_ms: None,
        };
        let answer = self
            .call(|channel| {
                let request = request.clone();
                async move { RecordsClient::new(channel).read(request).await }
            })
            .await?
            .into_inner();
        Ok(ReadResult {
            records: answer.records.into_iter().map(consumed).collect(),
            next_offset: answer.next_offset,
            high_watermark: answer.high_watermark,
            log_start_offset: answer.log_start_offset,
        })
    }

    /// Every partition of `topic` as records are committed: a stream that
    /// goes on by itself on the next agent, from the cursor after the last
    /// record (or heartbeat) it received, when its call ends or fails. It
    /// ends with an error when a tail is refused (an unknown topic, a bad
    /// cursor) or no agent answers after the client's attempts in a row.
    pub async fn tail(&self, topic: &str, start: TailStart) -> Result<GrpcTail> {
        let (records, receiver) = mpsc::channel(TAIL_BUFFER);
        let cursor = Arc::new(Mutex::new(match &start {
            TailStart::Cursor(c) => c.clone(),
            _ => String::new(),
        }));
        let task = tokio::spawn(run_tail(
            self.clone(),
            topic.to_owned(),
            start,
            cursor.clone(),
            records,
        ));
        Ok(GrpcTail {
            records: receiver,
            task: task.abort_handle(),
            cursor,
        })
    }
}

fn produce_request(
    topic: &str,
    partition: Option<i32>,
    records: &[Record],
    sequence: Option<Sequence>,
    expected_offset: Option<i64>,
) -> proto::ProduceRequest {
    proto::ProduceRequest {
        topic: topic.to_owned(),
        partition,
        records: records
            .iter()
            .map(|r| proto::Record {
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|h| proto::Header {
                        key: h.key.clone(),
                        value: h.value.clone(),
                    })
                    .collect(),
                partition: r.partition,
                timestamp_ms: r.timestamp,
            })
            .collect(),
        record_batches: bytes::Bytes::new(),
        acks: proto::Acks::All as i32,
        timeout_ms: None,
        producer: sequence.map(|s| proto::ProducerSequence {
            producer_id: s.producer.id,
            producer_epoch: i32::from(s.producer.epoch),
            sequence: s.first,
        }),
        expected_offset,
    }
}

fn description(topic: proto::Topic) -> TopicDescription {
    TopicDescription {
        name: topic.name,
        id: topic.id,
        partitions: topic
            .partitions
            .into_iter()
            .map(|p| PartitionInfo {
                partition: p.partition,
                log_start_offset: p.log_start_offset,
                high_watermark: p.high_watermark,
                leader: p.leader,
            })
            .collect(),
        configs: topic.configs.into_iter().collect::<BTreeMap<_, _>>(),
    }
}

fn consumed(record: proto::ConsumedRecord) -> ConsumedRecord {
    ConsumedRecord {
        partition: record.partition,
        offset: record.offset,
        timestamp: record.timestamp_ms,
        timestamp_type: if record.timestamp_type == proto::TimestampType::LogAppendTime as i32 {
            "log_append_time".into()
        } else {
            "create_time".into()
        },
        key: record.key,
        value: record.value,
        headers: record
            .headers
            .into_iter()
            .map(|h| Header {
                key: h.key,
                value: h.value,
            })
            .collect(),
    }
}

/// Records a tail buffers ahead of its consumer.
const TAIL_BUFFER: usize = 256;
/// How often an idle tail asks for a heartbeat.
const TAIL_HEARTBEAT_MS: u32 = 5_000;
/// A tail that receives nothing (not even a heartbeat) for this long calls
/// again.
const TAIL_IDLE: Duration = Duration::from_secs(20);

/// A topic's records as they are committed ([`GrpcClient::tail`]). Dropping
/// it ends the call.
#[derive(Debug)]
pub struct GrpcTail {
    records: mpsc::Receiver<Result<ConsumedRecord>>,
    task: tokio::task::AbortHandle,
    cursor: Arc<Mutex<String>>,
}

impl GrpcTail {
    /// The cursor after the last record yielded, or where the tail stands
    /// (empty before the first answer): [`TailStart::Cursor`] goes on from it.
    pub fn cursor(&self) -> String {
        self.cursor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Stream for GrpcTail {
    type Item = Result<ConsumedRecord>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.records.poll_recv(cx)
    }
}

impl Drop for GrpcTail {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs a tail: one call after another, each from the last cursor.
async fn run_tail(
    client: GrpcClient,
    topic: String,
    start: TailStart,
    cursor: Arc<Mutex<String>>,
    records: mpsc::Sender<Result<ConsumedRecord>>,
) {
    use futures::StreamExt as _;
    let (position, timestamp) = match start {
        TailStart::Latest => (proto::Position::Latest, None),
        TailStart::Timestamp(t) => (proto::Position::Earliest, Some(t)),
        TailStart::Earliest | TailStart::Cursor(_) => (proto::Position::Earliest, None),
    };
    let mut agent = client.next_agent();
    let mut failures = 0u32;
    loop {
        let request = proto::TailRequest {
            topic: topic.clone(),
            cursor: cursor
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
            start: position as i32,
            start_timestamp_ms: timestamp,
            heartbeat_ms: Some(TAIL_HEARTBEAT_MS),
        };
        let mut rpc = RecordsClient::new(client.channel(agent));
        let opened = tokio::time::timeout(TAIL_IDLE, rpc.tail(request)).await;
        let ended = match opened {
            Err(_) => Error::Transport("the tail was not answered in time".into()),
            Ok(Err(status)) => error_of(&status),
            Ok(Ok(answer)) => {
                let mut stream = answer.into_inner();
                loop {
                    let message = match tokio::time::timeout(TAIL_IDLE, stream.next()).await {
                        Err(_) => break Error::Transport("the tail went quiet".into()),
                        Ok(None) => break Error::Transport("the tail's call ended".into()),
                        Ok(Some(Err(status))) => break error_of(&status),
                        Ok(Some(Ok(message))) => message,
                    };
                    failures = 0;
                    match message.event {
                        Some(proto::tail_response::Event::Record(record)) => {
                            let Some(body) = record.record else { continue };
                            // The cursor moves only once the record is handed on.
                            if records.send(Ok(consumed(body))).await.is_err() {
                                return;
                            }
                            *cursor
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner) = record.cursor;
                        }
                        Some(proto::tail_response::Event::Heartbeat(beat)) => {
                            *cursor
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner) = beat.cursor;
                        }
                        None => {}
                    }
                }
            }
        };
        let goes_on = matches!(ended, Error::Transport(_))
            || matches!(&ended, Error::Rpc { code, .. } if code == "Unavailable");
        failures += 1;
        if !goes_on || failures as usize > client.inner.options.max_attempts {
            let _ = records.send(Err(ended)).await;
            return;
        }
        agent += 1;
        tokio::time::sleep(client.backoff(failures)).await;
    }
}
