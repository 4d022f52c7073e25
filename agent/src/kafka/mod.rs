//! The Kafka wire protocol server.
//!
//! # Parts
//!
//! | module | owns |
//! |---|---|
//! | `server` | [`serve`] (and [`serve_tls`]): the accept loop, connection permits, the TLS handshake, the staged shutdown of every connection |
//! | `connection` | [`serve_connection`]: one connection — reading frames, the in-flight window, responses in request order |
//! | `codec` | the wire format without I/O: frame lengths, request decoding, response encoding, `ProtocolError` (why a connection closes) |
//! | `dispatch` | one match from request kind to handler, and the `Reply` (now, deferred, silent) the connection acts on |
//! | `handlers` | one handler per API: request in, response out, domain errors as error codes |
//! | `versions` | the APIs and versions served: the one table behind `ApiVersions` and request validation |
//! | [`errors`] | the one mapping from Fjord's errors to Kafka error codes |
//!
//! # Data flow
//!
//! ```text
//! server ──accept──▶ connection ──frame──▶ codec::decode_request ──▶ dispatch ──▶ handler
//!                        ▲                                               │
//!                        └──── codec::encode_response ◀── Reply ─────────┘
//! ```
//!
//! A connection reads a 4-byte length and checks it; waits for the frame's
//! share of the request budget; reads the body; decodes the request header and
//! body with the `kafka-protocol` crate; dispatches by request kind; and writes
//! the response with the same correlation id. `Produce` answers later (once
//! durable) while the connection reads on; every other request is answered
//! before the next is read.
//!
//! # Invariants
//!
//! - Responses on one connection leave in request order, whatever order the
//!   work behind them finishes in.
//! - Bad input never panics and never reaches stored data: it is refused by
//!   the codec (the connection closes) or by a handler (an error code) before
//!   anything is appended.
//! - Request memory is bounded by one budget, not by the number of
//!   connections: no frame's body is read before its share is granted.
//!
//! # Bounds (Apache Kafka's settings, in [`BrokerSettings`](crate::BrokerSettings))
//!
//! | bound | setting | default |
//! |---|---|---|
//! | one request frame | `socket.request.max.bytes` (`max_request_bytes`) | 100 MiB: a longer frame closes the connection, unread |
//! | request bytes read and not yet answered, all connections together | `queued.max.request.bytes` (`queued_max_request_bytes`) | 500 MiB (Kafka: unbounded): connections stop reading until bytes are answered |
//! | a connection with nothing to do | `connections.max.idle.ms` (`connections_max_idle`) | 10 min, then closed |
//! | records in one `Fetch` response | `fetch.max.bytes` (`fetch_max_bytes`) | 55 MiB, the first batch whole |
//! | connections | 10,000 | further ones wait in the accept queue |
//! | requests in flight on one connection | 32 | further ones wait to be read |
//!
//! # Bad input (Apache Kafka's behaviour)
//!
//! | input | answer |
//! |---|---|
//! | frame length negative, too small for a header, or above the limit | connection closed, body unread |
//! | unknown API key | connection closed |
//! | `ApiVersions` of a version this broker does not know | a v0 `ApiVersions` response with `UNSUPPORTED_VERSION` and the supported ranges, so the client can retry with one it shares |
//! | any other API at an unsupported version | connection closed |
//! | a header or body that does not decode | connection closed |
//! | `acks` other than -1, 0, 1 | `INVALID_REQUIRED_ACKS` for every partition, nothing appended |
//! | a batch that fails validation (CRC, magic, counts, size) | its partition's error code, nothing of it appended |

mod codec;
mod connection;
mod dispatch;
pub mod errors;
mod handlers;
mod server;
mod versions;

pub use connection::{serve_connection, serve_connection_as, serve_connection_until};

/// Group requests handled in this process exactly as they are from the Kafka
/// listener: the gateway's group members go through the same handlers,
/// locally when this agent coordinates the group, or over the coordinator's
/// listener ([`crate::http`]).
///
/// They are not authorized here: the gateway has no authentication yet, so
/// its requests are unrestricted (an authorizer checks the ones it forwards
/// over another agent's listener, as `User:ANONYMOUS`).
pub(crate) mod in_process {
    use kafka_protocol::messages::{
        ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, OffsetCommitRequest,
        OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    };

    use super::handlers::{self, RequestContext};
    use crate::Broker;
    use crate::security::authorizer::Session;

    pub(crate) use handlers::consumer_group_heartbeat::SESSION_TIMEOUT_TAG;

    /// The version of each request the gateway sends.
    pub(crate) const HEARTBEAT_VERSION: i16 = 1;
    pub(crate) const OFFSET_COMMIT_VERSION: i16 = 9;
    pub(crate) const OFFSET_FETCH_VERSION: i16 = 9;

    fn context(client_id: &str) -> RequestContext {
        RequestContext {
            client_id: client_id.to_owned(),
            client_host: "/gateway".to_owned(),
            window: None,
            principal: crate::security::Principal::anonymous(),
        }
    }

    pub(crate) async fn consumer_group_heartbeat(
        broker: &Broker,
        request: ConsumerGroupHeartbeatRequest,
        client_id: &str,
    ) -> ConsumerGroupHeartbeatResponse {
        handlers::consumer_group_heartbeat::handle(
            broker,
            request,
            HEARTBEAT_VERSION,
            &context(client_id),
            &Session::unrestricted(),
        )
        .await
    }

    pub(crate) async fn offset_commit(
        broker: &Broker,
        request: OffsetCommitRequest,
    ) -> OffsetCommitResponse {
        handlers::offset_commit::handle(
            broker,
            request,
            OFFSET_COMMIT_VERSION,
            &Session::unrestricted(),
        )
        .await
    }

    pub(crate) async fn offset_fetch(
        broker: &Broker,
        request: OffsetFetchRequest,
    ) -> OffsetFetchResponse {
        handlers::offset_fetch::handle(
            broker,
            request,
            OFFSET_FETCH_VERSION,
            &Session::unrestricted(),
        )
        .await
    }
}
pub use server::{serve, serve_tls};
pub use versions::supported_versions;
