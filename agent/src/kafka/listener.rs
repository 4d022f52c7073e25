//! Accepting connections, framing, and dispatch.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::stream::FuturesOrdered;
use futures::{SinkExt, StreamExt};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind,
};
use kafka_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

use super::{handlers, versions};
use crate::Broker;

/// Connections served at once; further ones wait in the accept queue.
const MAX_CONNECTIONS: usize = 10_000;

/// Why a connection is closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Close {
    #[error("frame of {0} bytes is too short for a request header")]
    ShortFrame(usize),
    #[error("unknown api key {0}")]
    UnknownApi(i16),
    #[error("{api:?} v{version} is not supported")]
    UnsupportedVersion { api: ApiKey, version: i16 },
    #[error("cannot decode {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    #[error("cannot encode {api:?} v{version} response: {reason}")]
    Encode {
        api: ApiKey,
        version: i16,
        reason: String,
    },
}

/// How long connections may take to answer what they have in flight once they
/// are told to close; then they are dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Accepts Kafka connections until `stop_accepting` is cancelled. Then the
/// listening socket closes (new connections are refused) and every open
/// connection stops reading requests: it finishes the one it is handling and
/// sends the responses of those it read (produces resolve once committed or
/// refused), and keeps the rest unread until `close` is cancelled, when it
/// closes. A client then sees its unanswered requests fail with the connection
/// and retries them elsewhere — none of them was accepted, so a retry is never
/// a duplicate. Returns once every connection has closed, or after a grace
/// period.
pub async fn serve(
    listener: TcpListener,
    broker: Arc<Broker>,
    stop_accepting: CancellationToken,
    close: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            _ = stop_accepting.cancelled() => break,
            permit = permits.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else {
            break;
        };
        let accepted = tokio::select! {
            _ = stop_accepting.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let broker = broker.clone();
        let stop_reading = stop_accepting.clone();
        let close = close.clone();
        tokio::spawn(async move {
            let connection = CLIENT_HOST.scope(
                format!("/{}", peer.ip()),
                serve_connection_until(stream, broker, stop_reading, close),
            );
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "connection closed");
            }
            drop(permit);
        });
    }
    drop(listener);
    close.cancelled().await;
    let all = u32::try_from(MAX_CONNECTIONS).unwrap_or(u32::MAX);
    if tokio::time::timeout(CLOSE_GRACE, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            open = MAX_CONNECTIONS - permits.available_permits(),
            "connections still open after the grace period; dropping them"
        );
    }
}

tokio::task_local! {
    /// The peer address of the connection a task serves, as Kafka shows it.
    static CLIENT_HOST: String;
}

/// Produce requests whose commits a connection awaits at once; further requests
/// wait to be read.
const MAX_IN_FLIGHT_PRODUCES: usize = 32;

type Pending = Pin<Box<dyn Future<Output = Result<Option<Bytes>, Close>> + Send>>;

/// Serves one connection until the peer closes it or sends something that closes
/// it (see the module docs).
///
/// Produce requests are appended (offsets assigned) in the order they arrive and
/// then await their commits concurrently, so a client's pipelined produce requests
/// share flushes; every other request first waits for those in flight and is then
/// handled alone. Responses leave in request order either way.
pub async fn serve_connection<S>(stream: S, broker: Arc<Broker>) -> Result<(), std::io::Error>
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
) -> Result<(), std::io::Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let codec = LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(broker.settings.max_request_bytes)
        .new_codec();
    let (mut sink, mut frames) = Framed::new(stream, codec).split();
    let mut in_flight: FuturesOrdered<Pending> = FuturesOrdered::new();
    loop {
        tokio::select! {
            biased;
            Some(done) = in_flight.next(), if !in_flight.is_empty() => match done {
                Ok(Some(response)) => sink.send(response).await?,
                Ok(None) => {}
                Err(close) => {
                    tracing::info!(reason = %close, "closing kafka connection");
                    return Ok(());
                }
            },
            _ = stop_reading.cancelled() => {
                drain(&mut in_flight, &mut sink).await?;
                closing.cancelled().await;
                break;
            }
            frame = frames.next(), if in_flight.len() < MAX_IN_FLIGHT_PRODUCES => {
                let Some(frame) = frame else { break };
                let decoded = match decode(frame?.freeze()) {
                    Ok(Decoded::Request(request)) => *request,
                    Ok(Decoded::Answer(answer)) => {
                        drain(&mut in_flight, &mut sink).await?;
                        sink.send(answer).await?;
                        continue;
                    }
                    Err(close) => {
                        tracing::info!(reason = %close, "closing kafka connection");
                        return Ok(());
                    }
                };
                let DecodedRequest { api, version, correlation_id, client_id, request } = decoded;
                if let RequestKind::Produce(produce) = request {
                    let completion = handlers::produce::append(&broker, produce, version).await;
                    in_flight.push_back(Box::pin(async move {
                        match completion.await {
                            Some(response) => encode(api, version, correlation_id, ResponseKind::Produce(response)).map(Some),
                            None => Ok(None),
                        }
                    }));
                    continue;
                }
                if !drain(&mut in_flight, &mut sink).await? {
                    return Ok(());
                }
                let context = handlers::RequestContext {
                    client_id,
                    client_host: CLIENT_HOST.try_with(Clone::clone).unwrap_or_default(),
                };
                let answer = match handlers::handle_with_context(&broker, &context, api, version, request).await {
                    Ok(response) => encode(api, version, correlation_id, response),
                    Err(close) => Err(close),
                };
                match answer {
                    Ok(bytes) => sink.send(bytes).await?,
                    Err(close) => {
                        tracing::info!(reason = %close, "closing kafka connection");
                        return Ok(());
                    }
                }
            }
        }
    }
    drain(&mut in_flight, &mut sink).await?;
    sink.close().await
}

/// Sends the responses of every request in flight, in order. False when one of
/// them closes the connection.
async fn drain<W>(
    in_flight: &mut FuturesOrdered<Pending>,
    sink: &mut W,
) -> Result<bool, std::io::Error>
where
    W: futures::Sink<Bytes, Error = std::io::Error> + Unpin,
{
    while let Some(done) = in_flight.next().await {
        match done {
            Ok(Some(response)) => sink.send(response).await?,
            Ok(None) => {}
            Err(close) => {
                tracing::info!(reason = %close, "closing kafka connection");
                return Ok(false);
            }
        }
    }
    Ok(true)
}

/// The answer to an `ApiVersions` request of a version this broker does not know:
/// v0, whose layout every client can read, with the supported ranges.
fn unsupported_api_versions(correlation_id: i32) -> Result<Bytes, Close> {
    let mut response = ApiVersionsResponse::default();
    response.error_code = ResponseError::UnsupportedVersion.code();
    response.api_keys = handlers::api_versions::served();
    let mut out = BytesMut::new();
    out.put_i32(correlation_id);
    response.encode(&mut out, 0).map_err(|e| Close::Encode {
        api: ApiKey::ApiVersions,
        version: 0,
        reason: e.to_string(),
    })?;
    Ok(out.freeze())
}

struct DecodedRequest {
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    client_id: String,
    request: RequestKind,
}

enum Decoded {
    Request(Box<DecodedRequest>),
    /// Answered without a handler (the `ApiVersions` fallback).
    Answer(Bytes),
}

fn decode(frame: Bytes) -> Result<Decoded, Close> {
    let mut peek = frame.clone();
    if peek.remaining() < 8 {
        return Err(Close::ShortFrame(frame.len()));
    }
    let api_key = peek.get_i16();
    let version = peek.get_i16();
    let correlation_id = peek.get_i32();
    let api = ApiKey::try_from(api_key).map_err(|()| Close::UnknownApi(api_key))?;
    let served = versions::range_of(api).is_some_and(|(min, max)| (min..=max).contains(&version));
    if !served {
        if api == ApiKey::ApiVersions {
            return unsupported_api_versions(correlation_id).map(Decoded::Answer);
        }
        return Err(Close::UnsupportedVersion { api, version });
    }
    let malformed = |reason: String| Close::Malformed {
        api,
        version,
        reason,
    };
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, api.request_header_version(version))
        .map_err(|e| malformed(e.to_string()))?;
    let request =
        RequestKind::decode(api, &mut body, version).map_err(|e| malformed(format!("{e:#}")))?;
    Ok(Decoded::Request(Box::new(DecodedRequest {
        api,
        version,
        correlation_id: header.correlation_id,
        client_id: header
            .client_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        request,
    })))
}

fn encode(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    response: ResponseKind,
) -> Result<Bytes, Close> {
    let mut out = BytesMut::new();
    let encode_error = |e: anyhow::Error| Close::Encode {
        api,
        version,
        reason: format!("{e:#}"),
    };
    let mut response_header = ResponseHeader::default();
    response_header.correlation_id = correlation_id;
    response_header
        .encode(&mut out, api.response_header_version(version))
        .map_err(encode_error)?;
    response.encode(&mut out, version).map_err(encode_error)?;
    Ok(out.freeze())
}
