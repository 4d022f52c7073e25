//! One Kafka connection: frames read off the stream, each request decoded
//! ([`codec`]) and dispatched ([`dispatch`]),
//! responses written in request order.
//!
//! # The in-flight window
//!
//! Up to [`MAX_IN_FLIGHT`] requests of a connection are in flight at once: a
//! `Produce` is appended as soon as it is read and then awaits its commit in
//! flight while later requests are read ([`dispatch::is_pipelined`]); any
//! other request first waits until nothing is in flight and is handled alone.
//! Responses leave in request order either way (a produce's answer waits for
//! the answers before it); an `acks=0` produce holds its place but is never
//! answered.
//!
//! # Memory
//!
//! Every frame takes its share of the request budget (`queued.max.request.bytes`,
//! [`RequestBudget`]) after its length prefix is read and before its body is,
//! and holds it until its response is written. What a connection holds beyond
//! that is its read-ahead buffer (8 KiB) and the response it is writing.
//!
//! # Spans
//!
//! Each request runs in a `kafka_request` span (inside the server's
//! `kafka_connection` span, which names the peer) with `api`, `version`,
//! `correlation_id` and `client_id`; `Produce` and `Fetch` handlers add
//! `topic` and `partition` when the request names only one. A deferred
//! answer is awaited in its request's span.
//!
//! # Closing
//!
//! The connection closes when the peer closes it, on an I/O error, on anything
//! [`ProtocolError`] names (without an answer to the request that caused it:
//! Kafka's behaviour), and when it is idle for `connections.max.idle.ms`
//! ([`BrokerSettings::connections_max_idle`](crate::BrokerSettings)): nothing
//! in flight, no request being handled, and no complete request read since
//! the last response was written. Bytes of an incomplete frame do not count
//! as activity (Kafka counts any byte), so a client trickling a frame cannot
//! keep the connection open. Staged shutdown is [`serve_connection_until`]'s.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::codec::{self, Decoded, LENGTH_PREFIX_BYTES, ProtocolError};
use super::dispatch::{self, Reply};
use super::handlers::RequestContext;
use crate::Broker;

/// Requests of one connection in flight at once; further requests wait to be
/// read.
const MAX_IN_FLIGHT: usize = 32;

/// Serves one connection until the peer closes it or sends something that
/// closes it (see the module docs).
pub async fn serve_connection<S>(stream: S, broker: Arc<Broker>) -> Result<(), io::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let never = CancellationToken::new();
    serve_connection_until(stream, broker, never.clone(), never).await
}

/// As [`serve_connection`], until `stop_reading` is cancelled: then no further
/// request is read, the one being handled is finished and the responses of
/// those read are sent; the connection closes once `closing` is cancelled.
pub async fn serve_connection_until<S>(
    stream: S,
    broker: Arc<Broker>,
    stop_reading: CancellationToken,
    closing: CancellationToken,
) -> Result<(), io::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let budget = RequestBudget::new(broker.settings.queued_max_request_bytes);
    run(stream, broker, budget, String::new(), stop_reading, closing).await
}

/// [`serve_connection_until`] for a peer Kafka shows as `client_host`
/// (`/127.0.0.1`), whose frames take their bytes from `budget`.
pub(super) async fn run<S>(
    stream: S,
    broker: Arc<Broker>,
    budget: RequestBudget,
    client_host: String,
    stop_reading: CancellationToken,
    closing: CancellationToken,
) -> Result<(), io::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (reader, writer) = tokio::io::split(stream);
    let idle = broker.settings.connections_max_idle;
    let mut connection = Connection {
        frames: FrameReader::new(
            BufReader::new(reader),
            broker.settings.max_request_bytes,
            budget,
        ),
        idle,
        idle_timer: Box::pin(tokio::time::sleep_until(idle_deadline(idle))),
        broker,
        client_host,
        writer,
        in_flight: FuturesOrdered::new(),
    };
    connection.serve(&stop_reading, &closing).await
}

/// `queued.max.request.bytes`: request bytes read and not yet answered, shared
/// by every connection of a [`serve`](super::serve) (a connection served alone
/// has a budget of its own).
///
/// A frame takes its share once its length prefix is read and before any of
/// its body is ([`FrameReader`]), and holds it until its response is written
/// or it is dropped, whatever it does meanwhile (a produce awaiting its
/// commit, a fetch long-polling). A frame larger than the
/// whole budget waits for all of it. Shares are granted first come, first
/// served, so a large frame is not overtaken by smaller ones forever.
#[derive(Debug, Clone)]
pub(super) struct RequestBudget {
    bytes: Arc<Semaphore>,
    capacity: usize,
}

impl RequestBudget {
    /// A budget of `capacity` bytes (at least one; at most what a semaphore
    /// counts).
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = capacity.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            bytes: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Waits for the share of a frame of `length` bytes. Cancel-safe as a
    /// future kept across polls (dropping it gives up its place in line).
    fn acquire(&self, length: usize) -> Acquire {
        let share = u32::try_from(length.min(self.capacity)).unwrap_or(u32::MAX);
        Box::pin(self.bytes.clone().acquire_many_owned(share))
    }
}

type Acquire = BoxFuture<'static, Result<OwnedSemaphorePermit, AcquireError>>;

/// A request in flight: resolves once its response frame is ready, holding
/// the frame's share of the request budget until that frame is written.
type InFlight = BoxFuture<'static, Done>;

/// A request that left the in-flight window.
struct Done {
    /// Its response frame (`None`: it gets none), or why the connection
    /// closes.
    outcome: Result<Option<Bytes>, ProtocolError>,
    /// Its share of the request budget, given back once the response is
    /// written.
    share: OwnedSemaphorePermit,
}

/// Whether the connection goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Continue,
    Close,
}

struct Connection<R, W> {
    broker: Arc<Broker>,
    client_host: String,
    frames: FrameReader<R>,
    /// `connections.max.idle.ms`.
    idle: Duration,
    /// Fires once the connection has been idle for `idle`; reset by every
    /// request read, every response written and every budget share granted.
    idle_timer: Pin<Box<Sleep>>,
    writer: W,
    in_flight: FuturesOrdered<InFlight>,
}

impl<R, W> Connection<R, W>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    async fn serve(
        &mut self,
        stop_reading: &CancellationToken,
        closing: &CancellationToken,
    ) -> Result<(), io::Error> {
        loop {
            tokio::select! {
                biased;
                Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    if self.answer(done).await? == Next::Close {
                        return Ok(());
                    }
                }
                _ = stop_reading.cancelled() => {
                    if self.drain().await? == Next::Close {
                        return Ok(());
                    }
                    closing.cancelled().await;
                    break;
                }
                frame = self.frames.next(), if self.in_flight.len() < MAX_IN_FLIGHT => {
                    let frame = match frame {
                        Ok(Some(frame)) => {
                            self.touch();
                            frame
                        }
                        Ok(None) => break,
                        Err(ReadError::Io(error)) => return Err(error),
                        Err(ReadError::Protocol(error)) => {
                            tracing::info!(reason = %error, "closing kafka connection");
                            return Ok(());
                        }
                    };
                    if self.handle(frame).await? == Next::Close {
                        return Ok(());
                    }
                }
                // Last: a request that completes as the limit passes is served.
                _ = self.idle_timer.as_mut(), if self.in_flight.is_empty() => {
                    if self.idle_timer_fired() == Next::Close {
                        return Ok(());
                    }
                }
            }
        }
        if self.drain().await? == Next::Close {
            return Ok(());
        }
        self.writer.shutdown().await
    }

    /// Decodes and dispatches one frame; a request that is not pipelined is
    /// answered before the next frame is read.
    async fn handle(&mut self, frame: Frame) -> Result<Next, io::Error> {
        let Frame { body, share } = frame;
        let request = match codec::decode_request(body) {
            Ok(Decoded::Request(request)) => *request,
            Ok(Decoded::Answer(answer)) => {
                self.in_flight.push_back(Box::pin(async move {
                    Done {
                        outcome: Ok(Some(answer)),
                        share,
                    }
                }));
                return self.drain().await;
            }
            Err(error) => {
                tracing::info!(reason = %error, "closing kafka connection");
                return Ok(Next::Close);
            }
        };
        let codec::Request {
            api,
            version,
            correlation_id,
            client_id,
            body,
        } = request;
        let span = tracing::info_span!(
            "kafka_request",
            api = ?api,
            version,
            correlation_id,
            client_id = %client_id,
            topic = tracing::field::Empty,
            partition = tracing::field::Empty,
        );
        let pipelined = dispatch::is_pipelined(&body);
        if !pipelined && self.drain().await? == Next::Close {
            return Ok(Next::Close);
        }
        let context = RequestContext {
            client_id,
            client_host: self.client_host.clone(),
        };
        let reply = dispatch::dispatch(&self.broker, &context, api, version, body)
            .instrument(span.clone())
            .await;
        let in_flight: InFlight = match reply {
            Err(error) => {
                span.in_scope(|| tracing::info!(reason = %error, "closing kafka connection"));
                return Ok(Next::Close);
            }
            Ok(Reply::Now(response)) => {
                let outcome =
                    codec::encode_response(api, version, correlation_id, &response).map(Some);
                Box::pin(async move { Done { outcome, share } })
            }
            Ok(Reply::Deferred(response)) => Box::pin(
                async move {
                    let response = response.await;
                    let outcome =
                        codec::encode_response(api, version, correlation_id, &response).map(Some);
                    Done { outcome, share }
                }
                .instrument(span),
            ),
            Ok(Reply::Silent(done)) => Box::pin(
                async move {
                    done.await;
                    Done {
                        outcome: Ok(None),
                        share,
                    }
                }
                .instrument(span),
            ),
        };
        self.in_flight.push_back(in_flight);
        if pipelined {
            return Ok(Next::Continue);
        }
        self.drain().await
    }

    /// Writes the response of a request that left the window, if it has one,
    /// and gives its budget share back.
    async fn answer(&mut self, done: Done) -> Result<Next, io::Error> {
        let Done { outcome, share } = done;
        let next = match outcome {
            Ok(Some(frame)) => {
                self.write(&frame).await?;
                Next::Continue
            }
            Ok(None) => Next::Continue,
            Err(error) => {
                tracing::info!(reason = %error, "closing kafka connection");
                Next::Close
            }
        };
        drop(share);
        Ok(next)
    }

    /// Writes the responses of every request in flight, in order.
    async fn drain(&mut self) -> Result<Next, io::Error> {
        while let Some(done) = self.in_flight.next().await {
            if self.answer(done).await? == Next::Close {
                return Ok(Next::Close);
            }
        }
        Ok(Next::Continue)
    }

    async fn write(&mut self, frame: &[u8]) -> Result<(), io::Error> {
        self.writer.write_all(frame).await?;
        self.writer.flush().await?;
        self.touch();
        Ok(())
    }

    /// Closes the connection if it is idle: not when the wait was the
    /// broker's (for a share of the request budget), nor within `idle` of a
    /// share granted.
    fn idle_timer_fired(&mut self) -> Next {
        if self.frames.waiting_for_budget() {
            self.touch();
            return Next::Continue;
        }
        if let Some(granted) = self.frames.share_granted_at() {
            let deadline = idle_deadline_from(granted, self.idle);
            if deadline > Instant::now() {
                self.idle_timer.as_mut().reset(deadline);
                return Next::Continue;
            }
        }
        tracing::info!(
            idle_ms = u64::try_from(self.idle.as_millis()).unwrap_or(u64::MAX),
            "closing idle kafka connection"
        );
        Next::Close
    }

    /// Starts the idle clock over.
    fn touch(&mut self) {
        let deadline = idle_deadline(self.idle);
        self.idle_timer.as_mut().reset(deadline);
    }
}

/// Why no frame was read.
#[derive(Debug)]
enum ReadError {
    Io(io::Error),
    Protocol(ProtocolError),
}

impl From<io::Error> for ReadError {
    fn from(error: io::Error) -> Self {
        ReadError::Io(error)
    }
}

impl From<ProtocolError> for ReadError {
    fn from(error: ProtocolError) -> Self {
        ReadError::Protocol(error)
    }
}

/// A frame's body and its share of the request budget.
#[derive(Debug)]
struct Frame {
    body: Bytes,
    share: OwnedSemaphorePermit,
}

/// Where a [`FrameReader`] is in the frame it reads.
enum ReadState {
    /// Reading the length prefix.
    Length {
        prefix: [u8; LENGTH_PREFIX_BYTES],
        filled: usize,
    },
    /// Waiting for the share of the request budget a body of `length` bytes
    /// needs.
    Budget { length: usize, acquire: Acquire },
    /// Reading a body of `length` bytes, its share held since `granted_at`.
    Body {
        body: BytesMut,
        length: usize,
        share: OwnedSemaphorePermit,
        granted_at: Instant,
    },
}

impl ReadState {
    fn start() -> Self {
        ReadState::Length {
            prefix: [0; LENGTH_PREFIX_BYTES],
            filled: 0,
        }
    }
}

/// Reads frames: the length prefix, checked ([`codec::frame_length`]); then
/// the frame's share of the request budget; then, and only then, the body.
///
/// [`FrameReader::next`] is cancel-safe: what it has read, and its place in
/// line for the budget, are kept in its state, so a `select!` may drop the
/// call and the next one goes on.
struct FrameReader<R> {
    reader: R,
    max_request_bytes: usize,
    budget: RequestBudget,
    state: ReadState,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn new(reader: R, max_request_bytes: usize, budget: RequestBudget) -> Self {
        Self {
            reader,
            max_request_bytes,
            budget,
            state: ReadState::start(),
        }
    }

    /// Whether the next frame waits for its share of the request budget.
    fn waiting_for_budget(&self) -> bool {
        matches!(self.state, ReadState::Budget { .. })
    }

    /// When the frame being read got its share of the budget.
    fn share_granted_at(&self) -> Option<Instant> {
        match &self.state {
            ReadState::Body { granted_at, .. } => Some(*granted_at),
            ReadState::Length { .. } | ReadState::Budget { .. } => None,
        }
    }

    /// The next frame; `None` if the peer closed the stream between frames.
    /// Cancel-safe.
    async fn next(&mut self) -> Result<Option<Frame>, ReadError> {
        loop {
            match &mut self.state {
                ReadState::Length { prefix, filled } => {
                    let read = self.reader.read(&mut prefix[*filled..]).await?;
                    if read == 0 {
                        if *filled == 0 {
                            return Ok(None);
                        }
                        return Err(truncated().into());
                    }
                    *filled += read;
                    if *filled == LENGTH_PREFIX_BYTES {
                        let length = codec::frame_length(*prefix, self.max_request_bytes)?;
                        self.state = ReadState::Budget {
                            length,
                            acquire: self.budget.acquire(length),
                        };
                    }
                }
                ReadState::Budget { length, acquire } => {
                    let share = acquire
                        .await
                        .map_err(|_| io::Error::other("the request budget was closed"))?;
                    self.state = ReadState::Body {
                        body: BytesMut::with_capacity(*length),
                        length: *length,
                        share,
                        granted_at: Instant::now(),
                    };
                }
                ReadState::Body { body, length, .. } => {
                    let missing = *length - body.len();
                    if missing > 0 {
                        let mut room = (&mut *body).limit(missing);
                        if self.reader.read_buf(&mut room).await? == 0 {
                            return Err(truncated().into());
                        }
                    }
                    if body.len() == *length
                        && let ReadState::Body { body, share, .. } =
                            std::mem::replace(&mut self.state, ReadState::start())
                    {
                        return Ok(Some(Frame {
                            body: body.freeze(),
                            share,
                        }));
                    }
                }
            }
        }
    }
}

/// When a connection idle from now for `idle` is closed (far in the future
/// for a limit too large to add).
fn idle_deadline(idle: Duration) -> Instant {
    idle_deadline_from(Instant::now(), idle)
}

/// When a connection idle from `start` for `idle` is closed.
fn idle_deadline_from(start: Instant, idle: Duration) -> Instant {
    start
        .checked_add(idle)
        .or_else(|| start.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(start)
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the peer closed the connection in the middle of a frame",
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fjord_common::{RandomIds, SystemClock};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{
        ApiKey, ApiVersionsRequest, FetchRequest, RequestHeader, TopicName,
    };
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    use super::*;
    use crate::BrokerSettings;
    use crate::cluster::{ClusterView, LiveAgent};
    use crate::groups::{GroupCoordinator, GroupSettings};
    use crate::log::{LogSettings, PartitionLogs};

    async fn broker(settings: BrokerSettings) -> Arc<Broker> {
        let store = fjord_metadata::open("memory://")
            .await
            .expect("a memory store");
        let logs = PartitionLogs::new(
            store.clone(),
            Arc::new(object_store::memory::InMemory::new()),
            fjord_storage::ObjectKeys::new("test").expect("a key prefix"),
            Arc::new(RandomIds::new()),
            Arc::new(SystemClock),
            1,
            LogSettings::default(),
            None,
        );
        Arc::new(Broker {
            groups: Arc::new(GroupCoordinator::new(
                store.clone(),
                1,
                Arc::new(RandomIds::new()),
                GroupSettings::default(),
            )),
            store,
            node_id: 1,
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            cluster_id: "test".into(),
            settings,
            logs: Arc::new(logs),
            cluster: Arc::new(ClusterView::new(LiveAgent {
                node_id: 1,
                host: "127.0.0.1".into(),
                port: 9092,
            })),
        })
    }

    /// A connection over an in-memory stream, taking its frames' bytes from
    /// `budget`.
    fn connect(broker: &Arc<Broker>, budget: &RequestBudget) -> DuplexStream {
        let (client, server) = tokio::io::duplex(1 << 20);
        let never = CancellationToken::new();
        tokio::spawn(run(
            server,
            broker.clone(),
            budget.clone(),
            String::new(),
            never.clone(),
            never,
        ));
        client
    }

    /// A frame of `request` (`api` at `version`).
    fn request_frame(
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        request: &impl Encodable,
    ) -> Vec<u8> {
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = correlation_id;
        let mut body = BytesMut::new();
        body.put_u32(0);
        header
            .encode(&mut body, api.request_header_version(version))
            .expect("a header");
        request.encode(&mut body, version).expect("a request");
        let length = u32::try_from(body.len() - LENGTH_PREFIX_BYTES).expect("a small frame");
        body[..LENGTH_PREFIX_BYTES].copy_from_slice(&length.to_be_bytes());
        body.to_vec()
    }

    /// An `ApiVersions` v3 frame of about `bytes` bytes (a long client name).
    fn api_versions_frame(correlation_id: i32, bytes: usize) -> Vec<u8> {
        let mut request = ApiVersionsRequest::default();
        request.client_software_name = StrBytes::from_string("x".repeat(bytes));
        request.client_software_version = StrBytes::from_static_str("1");
        request_frame(ApiKey::ApiVersions, 3, correlation_id, &request)
    }

    /// The correlation id of the next response, or `None` once closed.
    async fn next_answer(client: &mut DuplexStream) -> Option<i32> {
        let length = client.read_u32().await.ok()?;
        let mut body = vec![0; usize::try_from(length).ok()?];
        client.read_exact(&mut body).await.ok()?;
        Some(i32::from_be_bytes(body[..4].try_into().ok()?))
    }

    /// A frame that never completes is closed as idle, and gives its share
    /// of the budget back.
    #[tokio::test(start_paused = true)]
    async fn a_stuck_frame_is_closed_as_idle_and_gives_its_share_back() {
        let broker = broker(BrokerSettings::default()).await;
        let idle = broker.settings.connections_max_idle;
        let budget = RequestBudget::new(1 << 20);
        let mut stuck = connect(&broker, &budget);
        let frame = api_versions_frame(1, 600 << 10);
        stuck
            .write_all(&frame[..frame.len() / 2])
            .await
            .expect("written");
        let closed = tokio::time::timeout(idle * 2, next_answer(&mut stuck)).await;
        assert_eq!(closed, Ok(None), "the stuck connection closed");
        assert_eq!(budget.bytes.available_permits(), 1 << 20, "its share back");
    }

    /// A frame waiting for its share of the budget, however long, is the
    /// broker's wait, not an idle client: it is read and answered once the
    /// request holding the budget (a long-polling fetch) is answered.
    #[tokio::test(start_paused = true)]
    async fn waiting_for_the_budget_is_not_idle() {
        let broker = broker(BrokerSettings::default()).await;
        broker
            .store
            .create_topic(fjord_metadata::NewTopic::new("quiet", 1))
            .await
            .expect("a topic");
        let idle = broker.settings.connections_max_idle;
        let budget = RequestBudget::new(1 << 20);

        // A fetch of 600 KiB (a long rack id) long-polls an empty partition
        // for three idle periods, holding its share.
        let mut holder = connect(&broker, &budget);
        let mut fetch = FetchRequest::default();
        fetch.max_wait_ms = i32::try_from((idle * 3).as_millis()).expect("fits");
        fetch.min_bytes = 1;
        fetch.rack_id = StrBytes::from_string("r".repeat(600 << 10));
        let mut partition = FetchPartition::default();
        partition.partition = 0;
        let mut topic = FetchTopic::default();
        topic.topic = TopicName(StrBytes::from_static_str("quiet"));
        topic.partitions = vec![partition];
        fetch.topics = vec![topic];
        holder
            .write_all(&request_frame(ApiKey::Fetch, 12, 1, &fetch))
            .await
            .expect("written");
        tokio::time::sleep(Duration::from_secs(1)).await;

        // Another 600 KiB frame waits for the budget all that time.
        let mut waiting = connect(&broker, &budget);
        waiting
            .write_all(&api_versions_frame(2, 600 << 10))
            .await
            .expect("written");

        let answered = tokio::time::timeout(idle * 4, next_answer(&mut holder)).await;
        assert_eq!(answered, Ok(Some(1)), "the fetch answered");
        let answered = tokio::time::timeout(idle * 4, next_answer(&mut waiting)).await;
        assert_eq!(
            answered,
            Ok(Some(2)),
            "the waiting frame answered, not closed"
        );
    }

    /// Shares of frames answered, and of frames of closed connections, all
    /// come back.
    #[tokio::test]
    async fn every_share_comes_back() {
        let broker = broker(BrokerSettings::default()).await;
        let budget = RequestBudget::new(100_000);
        let mut client = connect(&broker, &budget);
        for correlation_id in 0..5 {
            client
                .write_all(&api_versions_frame(correlation_id, 30_000))
                .await
                .expect("written");
        }
        for correlation_id in 0..5 {
            assert_eq!(next_answer(&mut client).await, Some(correlation_id));
        }
        // A request whose answer is never read, then the client goes away.
        client
            .write_all(&api_versions_frame(9, 30_000))
            .await
            .expect("written");
        drop(client);
        tokio::time::timeout(Duration::from_secs(60), async {
            while budget.bytes.available_permits() < 100_000 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("every share back within a minute");
    }
}
