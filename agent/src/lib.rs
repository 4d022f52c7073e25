//! The Fjord agent: a stateless broker that speaks the Kafka wire protocol over
//! Fjord's metadata and storage layers.
//!
//! # Parts
//!
//! | module | owns |
//! |---|---|
//! | [`broker`] | [`Broker`]: what every request handler shares (metadata store, this agent's identity, settings) |
//! | [`groups`] | the consumer-group coordinator: group state machines, coordinator-shard ownership, committed offsets, lag |
//! | [`kafka`] | the Kafka listener: framing, version negotiation, dispatch, one handler per API, error-code mapping |
//! | [`log`] | the write path (offsets, segment flushes, commits, acknowledgements) and the read path |
//! | [`records`] | Kafka v2 record-batch headers: validation and the two fields the leader rewrites |
//!
//! # Invariants
//!
//! - Bad input never panics and never reaches stored data: a frame that is too
//!   large, malformed, of an unknown API or of an unsupported version closes the
//!   connection (as Apache Kafka does), except `ApiVersions`, which always answers
//!   so a client can negotiate.
//! - Responses on one connection go out in request order.
//! - Every metadata error maps to a Kafka error code in one exhaustive function
//!   ([`kafka::errors`]).
//!
//! Not built yet (the agent's next milestones): the local write-ahead log and
//! read cache in the data path, idempotent producers, many agents with balanced
//! leadership (of partitions and of consumer-group coordinator shards).

pub mod broker;
pub mod groups;
pub mod kafka;
pub mod log;
pub mod records;

pub use broker::{Broker, BrokerSettings};
