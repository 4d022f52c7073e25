//! The accept loop: connection permits, the request budget every connection
//! shares (`queued.max.request.bytes`), the TLS handshake of listeners whose
//! security protocol is `SSL` or `SASL_SSL` ([`serve_tls`]), and the staged
//! shutdown of every connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::connection::{self, RequestBudget};
use crate::Broker;
use crate::security::Principal;
use crate::security::tls::{Purpose, TlsServer};

/// Connections served at once; further ones wait in the accept queue.
const MAX_CONNECTIONS: usize = 10_000;

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
    accept_loop(listener, broker, None, stop_accepting, close).await;
}

/// As [`serve`], over TLS with `tls`'s current certificate: each connection
/// first completes a TLS handshake (within
/// [`HANDSHAKE_TIMEOUT`](crate::security::tls::HANDSHAKE_TIMEOUT), holding its
/// connection permit), and acts as the principal its client certificate
/// names, or `User:ANONYMOUS`. A failed handshake (bytes that are not TLS, a
/// certificate refused, a client too slow) closes the connection and is
/// logged at `info` (at `debug` when the client just hung up).
pub async fn serve_tls(
    listener: TcpListener,
    broker: Arc<Broker>,
    tls: Arc<TlsServer>,
    stop_accepting: CancellationToken,
    close: CancellationToken,
) {
    accept_loop(listener, broker, Some(tls), stop_accepting, close).await;
}

async fn accept_loop(
    listener: TcpListener,
    broker: Arc<Broker>,
    tls: Option<Arc<TlsServer>>,
    stop_accepting: CancellationToken,
    close: CancellationToken,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let budget = RequestBudget::new(broker.settings.queued_max_request_bytes);
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
        let budget = budget.clone();
        let stop_reading = stop_accepting.clone();
        let close = close.clone();
        let tls = tls.clone();
        let span = tracing::info_span!(
            "kafka_connection",
            %peer,
            principal = tracing::field::Empty
        );
        tokio::spawn(
            async move {
                let client_host = format!("/{}", peer.ip());
                let served = match tls {
                    None => {
                        connection::run(
                            stream,
                            broker,
                            budget,
                            client_host,
                            Principal::anonymous(),
                            stop_reading,
                            close,
                        )
                        .await
                    }
                    Some(tls) => {
                        let handshake = tokio::select! {
                            _ = close.cancelled() => return,
                            handshake = tls.accept(stream, Purpose::Kafka) => handshake,
                        };
                        match handshake {
                            Ok(accepted) => {
                                tracing::Span::current().record(
                                    "principal",
                                    tracing::field::display(&accepted.principal),
                                );
                                tracing::debug!(
                                    principal = %accepted.principal,
                                    "tls handshake done"
                                );
                                // SASL_SSL: the SASL half (authenticating
                                // before any other request) is the
                                // connection's, as on SASL_PLAINTEXT.
                                connection::run(
                                    accepted.stream,
                                    broker,
                                    budget,
                                    client_host,
                                    accepted.principal,
                                    stop_reading,
                                    close,
                                )
                                .await
                            }
                            Err(error) if error.is_hang_up() => {
                                tracing::debug!(
                                    %error,
                                    "kafka connection closed during its tls handshake"
                                );
                                Ok(())
                            }
                            Err(error) => {
                                tracing::info!(%error, "kafka connection refused");
                                Ok(())
                            }
                        }
                    }
                };
                if let Err(error) = served {
                    tracing::debug!(%error, "connection closed");
                }
                drop(permit);
            }
            .instrument(span),
        );
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
