//! The Fjord agent: a stateless broker that speaks the Kafka wire protocol over
//! Fjord's metadata and storage layers.
//!
//! # Parts
//!
//! | module | owns |
//! |---|---|
//! | [`broker`] | [`Broker`]: what every request handler shares (metadata store, this agent's identity, settings) |
//! | [`configs`] | Kafka's topic configs (types, defaults, validation, alteration) and the broker configs this agent reports |
//! | [`groups`] | the consumer-group coordinator: group state machines, coordinator-shard ownership, committed offsets, lag |
//! | [`kafka`] | the Kafka listener: framing, version negotiation, dispatch, one handler per API, error-code mapping |
//! | [`cluster`] | liveness of agents, placement of partitions (rendezvous hashing), the balancer that moves leadership |
//! | [`idempotence`] | the idempotent producer's epoch and sequence checks on one partition |
//! | [`log`] | the write path (offsets, WAL, segment flushes, commits, acknowledgements) and the read path |
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
//! Not built yet: transactions.

pub mod broker;
pub mod cluster;
pub mod config;
pub mod configs;
pub mod groups;
pub mod idempotence;
pub mod kafka;
pub mod log;
pub mod records;

pub use broker::{Broker, BrokerSettings};
