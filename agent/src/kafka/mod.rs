//! The Kafka wire protocol server.
//!
//! A connection reads length-prefixed frames (at most
//! [`BrokerSettings::max_request_bytes`](crate::BrokerSettings)), decodes the
//! request header and body with the `kafka-protocol` crate, dispatches by API key
//! and writes the response with the same correlation id. Requests on one
//! connection are handled one at a time, so responses leave in request order.
//!
//! What a malformed request gets (Apache Kafka's behaviour):
//!
//! | input | answer |
//! |---|---|
//! | frame length negative, too small for a header, or above the limit | connection closed |
//! | unknown API key | connection closed |
//! | `ApiVersions` of a version this broker does not know | a v0 `ApiVersions` response with `UNSUPPORTED_VERSION` and the supported ranges, so the client can retry with one it shares |
//! | any other API at an unsupported version | connection closed |
//! | a header or body that does not decode | connection closed |

pub mod errors;
mod handlers;
mod listener;
mod versions;

pub use listener::{serve, serve_connection, serve_connection_until};
pub use versions::supported_versions;
