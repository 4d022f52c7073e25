//! One Kafka connection: frames read off the stream, each request decoded
//! ([`codec`](super::codec)) and dispatched ([`dispatch`](super::dispatch)),
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
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

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
    run(stream, broker, String::new(), stop_reading, closing).await
}

/// [`serve_connection_until`] for a peer Kafka shows as `client_host`
/// (`/127.0.0.1`).
pub(super) async fn run<S>(
    stream: S,
    broker: Arc<Broker>,
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
        frames: FrameReader::new(BufReader::new(reader), broker.settings.max_request_bytes),
        idle,
        idle_timer: Box::pin(tokio::time::sleep_until(idle_deadline(idle))),
        broker,
        client_host,
        writer,
        in_flight: FuturesOrdered::new(),
    };
    connection.serve(&stop_reading, &closing).await
}

/// A request in flight: resolves to its response frame (`None`: it gets
/// none), or to why the connection closes.
type InFlight = BoxFuture<'static, Result<Option<Bytes>, ProtocolError>>;

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
    /// request read and every response written.
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
                _ = self.idle_timer.as_mut(), if self.in_flight.is_empty() => {
                    tracing::info!(
                        idle_ms = u64::try_from(self.idle.as_millis()).unwrap_or(u64::MAX),
                        "closing idle kafka connection"
                    );
                    return Ok(());
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
            }
        }
        if self.drain().await? == Next::Close {
            return Ok(());
        }
        self.writer.shutdown().await
    }

    /// Decodes and dispatches one frame.
    async fn handle(&mut self, frame: Bytes) -> Result<Next, io::Error> {
        let request = match codec::decode_request(frame) {
            Ok(Decoded::Request(request)) => *request,
            Ok(Decoded::Answer(answer)) => {
                if self.drain().await? == Next::Close {
                    return Ok(Next::Close);
                }
                self.write(&answer).await?;
                return Ok(Next::Continue);
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
        if !dispatch::is_pipelined(&body) && self.drain().await? == Next::Close {
            return Ok(Next::Close);
        }
        let context = RequestContext {
            client_id,
            client_host: self.client_host.clone(),
        };
        let reply = dispatch::dispatch(&self.broker, &context, api, version, body).await;
        let in_flight: InFlight = match reply {
            Err(error) => {
                tracing::info!(reason = %error, "closing kafka connection");
                return Ok(Next::Close);
            }
            Ok(Reply::Now(response)) => {
                let encoded = codec::encode_response(api, version, correlation_id, &response);
                if !self.in_flight.is_empty() {
                    Box::pin(async move { encoded.map(Some) })
                } else {
                    return match encoded {
                        Ok(frame) => {
                            self.write(&frame).await?;
                            Ok(Next::Continue)
                        }
                        Err(error) => {
                            tracing::info!(reason = %error, "closing kafka connection");
                            Ok(Next::Close)
                        }
                    };
                }
            }
            Ok(Reply::Deferred(response)) => Box::pin(async move {
                let response = response.await;
                codec::encode_response(api, version, correlation_id, &response).map(Some)
            }),
            Ok(Reply::Silent(done)) => Box::pin(async move {
                done.await;
                Ok(None)
            }),
        };
        self.in_flight.push_back(in_flight);
        Ok(Next::Continue)
    }

    /// Writes the response of a request that left the window, if it has one.
    async fn answer(
        &mut self,
        done: Result<Option<Bytes>, ProtocolError>,
    ) -> Result<Next, io::Error> {
        match done {
            Ok(Some(frame)) => {
                self.write(&frame).await?;
                Ok(Next::Continue)
            }
            Ok(None) => Ok(Next::Continue),
            Err(error) => {
                tracing::info!(reason = %error, "closing kafka connection");
                Ok(Next::Close)
            }
        }
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

/// Where a [`FrameReader`] is in the frame it reads.
#[derive(Debug)]
enum ReadState {
    /// Reading the length prefix.
    Length {
        prefix: [u8; LENGTH_PREFIX_BYTES],
        filled: usize,
    },
    /// Reading a body of `length` bytes.
    Body { body: BytesMut, length: usize },
}

impl ReadState {
    fn start() -> Self {
        ReadState::Length {
            prefix: [0; LENGTH_PREFIX_BYTES],
            filled: 0,
        }
    }
}

/// Reads frames: the length prefix, checked ([`codec::frame_length`]) before
/// any of the body is read, then the body.
///
/// [`FrameReader::next`] is cancel-safe: what it has read is kept in its
/// state, so a `select!` may drop the call and make the next one go on.
#[derive(Debug)]
struct FrameReader<R> {
    reader: R,
    max_request_bytes: usize,
    state: ReadState,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    fn new(reader: R, max_request_bytes: usize) -> Self {
        Self {
            reader,
            max_request_bytes,
            state: ReadState::start(),
        }
    }

    /// The next frame's body; `None` if the peer closed the stream between
    /// frames. Cancel-safe.
    async fn next(&mut self) -> Result<Option<Bytes>, ReadError> {
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
                        self.state = ReadState::Body {
                            body: BytesMut::with_capacity(length),
                            length,
                        };
                    }
                }
                ReadState::Body { body, length } => {
                    let missing = *length - body.len();
                    if missing > 0 {
                        let mut room = (&mut *body).limit(missing);
                        if self.reader.read_buf(&mut room).await? == 0 {
                            return Err(truncated().into());
                        }
                    }
                    if body.len() == *length {
                        let body = std::mem::take(body);
                        self.state = ReadState::start();
                        return Ok(Some(body.freeze()));
                    }
                }
            }
        }
    }
}

/// When a connection idle from now for `idle` is closed (far in the future
/// for a limit too large to add).
fn idle_deadline(idle: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(idle)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 24 * 3600)))
        .unwrap_or(now)
}

fn truncated() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "the peer closed the connection in the middle of a frame",
    )
}
