//! The accept loop: connection permits, the request budget every connection
//! shares (`queued.max.request.bytes`), and the staged shutdown of every
//! connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::connection::{self, RequestBudget};
use crate::Broker;
use crate::security::Principal;

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
        let span = tracing::info_span!("kafka_connection", %peer);
        tokio::spawn(
            async move {
                let client_host = format!("/{}", peer.ip());
                let served = connection::run(
                    stream,
                    broker,
                    budget,
                    client_host,
                    Principal::anonymous(),
                    stop_reading,
                    close,
                )
                .await;
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
