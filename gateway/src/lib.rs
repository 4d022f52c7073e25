//! Fjord's HTTP and gRPC gateway: produce, read and administer topics without
//! a Kafka client. Every agent serves it (`--http-listen`) over the same broker
//! core as its Kafka listener, through the [`Core`] trait the agent
//! implements: one write path, one read path. This crate holds adapters only
//! (records ↔ record batches, Kafka errors ↔ HTTP and gRPC statuses), never
//! write-path logic.
//!
//! | module | owns |
//! |---|---|
//! | [`core`] | [`Core`]: what the gateway asks of the agent, in Kafka's terms |
//! | `ops` | the operations both transports share: placing and producing records, partition and topic reads, cursors |
//! | [`error`] | the one error shape, and Kafka error → HTTP status |
//! | [`records`] | records as JSON, to and from Kafka v2 record batches |
//! | `routes` | the HTTP routes (listed there) and the OpenAPI document |
//! | `grpc` | the gRPC services of `proto/fjord/v1/gateway.proto`, health, reflection, gRPC-web |
//!
//! Stateless by design: nothing a request leaves behind lives in the agent
//! that served it, so any agent behind a load balancer answers any request.
//!
//! What a user sees of it: `docs/gateway.md`.

pub mod core;
pub mod error;
mod grpc;
mod ops;
pub mod records;
mod routes;

pub use crate::core::{
    Acks, Append, Core, FORWARDED_HEADER, GroupAssignment, GroupHeartbeat, KafkaError,
    NewTopicRequest, PartitionInfo, ProduceError, ReadBatches, TopicInfo,
};
pub use error::ApiError;
pub use routes::{GatewaySettings, router};

/// What [`serve_on`] accepts connections from: axum's listener trait, for
/// listeners other than a plain TCP one (the agent's TLS listener).
pub use axum::serve::Listener;

/// Serves `router` on `listener` (HTTP/1.1, and HTTP/2 with prior knowledge;
/// gRPC is HTTP/2) until `shutdown` is cancelled; requests in flight then
/// finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt as _;
    // Without TCP_NODELAY, HTTP/2's small frames (WINDOW_UPDATE for a large
    // request body, a short answer) wait for the peer's delayed ACK: ~40 ms
    // per request with a body over 64 KiB.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY on a gateway connection");
        }
    });
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// As [`serve`], on any [`Listener`] (the agent serves HTTPS through one that
/// hands over connections once their TLS handshake is done, with ALPN `h2`
/// and `http/1.1`; both protocols are served on each connection as with
/// [`serve`]). The listener sets its connections' options itself.
pub async fn serve_on<L>(
    listener: L,
    router: axum::Router,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()>
where
    L: Listener,
    L::Addr: std::fmt::Debug,
{
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
