//! One Kafka connection: frames read off the stream, each request decoded
//! ([`codec`]) and dispatched ([`dispatch`]),
//! responses written in request order.
//!
//! This module holds the connection's loop (the in-flight window, responses,
//! the idle limit); `frames` reads frames under the request budget
//! ([`RequestBudget`], [`FrameReader`]).
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

mod frames;
mod sasl;
#[cfg(test)]
mod tests;

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesOrdered;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::codec::{self, Decoded, ProtocolError};
use super::dispatch::{self, Reply};
use super::handlers::RequestContext;
use crate::Broker;
use crate::log::produce::windows::ClientWindow;
use crate::security::Principal;
use crate::trace;

pub(super) use frames::RequestBudget;
use frames::{Frame, FrameReader, ReadError};

/// Requests of one connection in flight at once; further requests wait to be
/// read. Large enough that a client keeping a request in flight for each of
/// many partitions (librdkafka without idempotence sends one partition per
/// request, up to `max.in.flight` of them) is not held to a smaller window:
/// at 1,024 partitions a window of 32 made each partition wait for 32 round
/// trips. The memory requests hold is bounded by the request budget
/// (`queued.max.request.bytes`), not by this count.
const MAX_IN_FLIGHT: usize = 1024;

/// Serves one connection until the peer closes it or sends something that
/// closes it (see the module docs).
pub async fn serve_connection<S>(stream: S, broker: Arc<Broker>) -> Result<(), io::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let never = CancellationToken::new();
    serve_connection_until(stream, broker, never.clone(), never).await
}

/// As [`serve_connection`], for a client already known to be `principal`
/// (as a TLS client certificate or an authentication makes it known).
pub async fn serve_connection_as<S>(
    stream: S,
    broker: Arc<Broker>,
    principal: Principal,
) -> Result<(), io::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let never = CancellationToken::new();
    let budget = RequestBudget::new(broker.settings.queued_max_request_bytes);
    run(
        stream,
        broker,
        budget,
        String::new(),
        principal,
        never.clone(),
        never,
    )
    .await
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
    run(
        stream,
        broker,
        budget,
        String::new(),
        Principal::anonymous(),
        stop_reading,
        closing,
    )
    .await
}

/// [`serve_connection_until`] for a peer Kafka shows as `client_host`
/// (`/127.0.0.1`), whose frames take their bytes from `budget`, acting as
/// `principal` (its TLS client certificate's, or `User:ANONYMOUS`).
pub(super) async fn run<S>(
    stream: S,
    broker: Arc<Broker>,
    budget: RequestBudget,
    client_host: String,
    principal: Principal,
    stop_reading: CancellationToken,
    closing: CancellationToken,
) -> Result<(), io::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (reader, writer) = tokio::io::split(stream);
    let idle = broker.settings.connections_max_idle;
    let window = broker.logs.client_window();
    let mut connection = Connection {
        id: trace::next_connection_id(),
        frames: FrameReader::new(
            BufReader::new(reader),
            broker.settings.max_request_bytes,
            budget,
        ),
        idle,
        idle_timer: Box::pin(tokio::time::sleep_until(idle_deadline(idle))),
        auth: sasl::Auth::start(&broker),
        broker,
        client_host,
        principal,
        window,
        writer,
        in_flight: FuturesOrdered::new(),
    };
    connection.serve(&stop_reading, &closing).await
}

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
    /// A produce's timeline, for the produce trace.
    timeline: Option<trace::ProduceTimeline>,
}

/// Whether the connection goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Continue,
    Close,
}

struct Connection<R, W> {
    /// A number telling this connection apart in traces.
    id: u64,
    broker: Arc<Broker>,
    client_host: String,
    /// Who the client is.
    principal: Principal,
    /// Where its SASL authentication is, on a listener with SASL.
    auth: sasl::Auth,
    frames: FrameReader<R>,
    /// `connections.max.idle.ms`.
    idle: Duration,
    /// Fires once the connection has been idle for `idle`; reset by every
    /// request read, every response written and every budget share granted.
    idle_timer: Pin<Box<Sleep>>,
    writer: W,
    in_flight: FuturesOrdered<InFlight>,
    /// Its produce requests waiting for a commit, as the flusher sees them.
    window: Arc<ClientWindow>,
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
        if sasl::expects_raw_token(&self.auth) {
            let Some(reply) =
                sasl::raw_token(&mut self.auth, &mut self.principal, &self.broker, &body).await
            else {
                return Ok(Next::Close);
            };
            self.in_flight.push_back(Box::pin(async move {
                Done {
                    outcome: Ok(Some(reply)),
                    share,
                    timeline: None,
                }
            }));
            return self.drain().await;
        }
        let request = match codec::decode_request(body) {
            Ok(Decoded::Request(request)) => *request,
            Ok(Decoded::Answer(answer)) => {
                self.in_flight.push_back(Box::pin(async move {
                    Done {
                        outcome: Ok(Some(answer)),
                        share,
                        timeline: None,
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
        let mut timeline = (pipelined && trace::produce_enabled()).then(|| {
            trace::ProduceTimeline::new(
                self.id,
                correlation_id,
                share.num_permits(),
                self.in_flight.len(),
            )
        });
        let body = match sasl::gate(
            &mut self.auth,
            &mut self.principal,
            &self.broker,
            api,
            version,
            body,
        )
        .instrument(span.clone())
        .await
        {
            sasl::Gate::Pass(body) => body,
            sasl::Gate::Answer { response, close } => {
                let outcome =
                    codec::encode_response(api, version, correlation_id, &response).map(Some);
                self.in_flight.push_back(Box::pin(async move {
                    Done {
                        outcome,
                        share,
                        timeline: None,
                    }
                }));
                let next = self.drain().await?;
                return Ok(if close { Next::Close } else { next });
            }
            sasl::Gate::Refuse(reason) => {
                span.in_scope(|| tracing::info!(%reason, "closing kafka connection"));
                return Ok(Next::Close);
            }
        };
        let context = RequestContext {
            client_id,
            client_host: self.client_host.clone(),
            window: Some(self.window.clone()),
            principal: self.principal.clone(),
        };
        let reply = dispatch::dispatch(&self.broker, &context, api, version, body)
            .instrument(span.clone())
            .await;
        if let Some(timeline) = &mut timeline {
            timeline.appended = Instant::now();
        }
        let in_flight: InFlight = match reply {
            Err(error) => {
                span.in_scope(|| tracing::info!(reason = %error, "closing kafka connection"));
                return Ok(Next::Close);
            }
            Ok(Reply::Now(response)) => {
                let outcome =
                    codec::encode_response(api, version, correlation_id, &response).map(Some);
                Box::pin(async move {
                    Done {
                        outcome,
                        share,
                        timeline: None,
                    }
                })
            }
            Ok(Reply::Deferred(response)) => Box::pin(
                async move {
                    let response = response.await;
                    if let Some(timeline) = &mut timeline {
                        timeline.answered = Instant::now();
                    }
                    let outcome =
                        codec::encode_response(api, version, correlation_id, &response).map(Some);
                    Done {
                        outcome,
                        share,
                        timeline,
                    }
                }
                .instrument(span),
            ),
            Ok(Reply::Silent(done)) => Box::pin(
                async move {
                    done.await;
                    Done {
                        outcome: Ok(None),
                        share,
                        timeline: None,
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
        let Done {
            outcome,
            share,
            timeline,
        } = done;
        let next = match outcome {
            Ok(Some(frame)) => {
                self.write(&frame).await?;
                if let Some(timeline) = timeline {
                    timeline.emit(&self.client_host);
                }
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
