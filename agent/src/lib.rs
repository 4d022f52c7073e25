//! The Fjord agent: a stateless broker that speaks the Kafka wire protocol over
//! Fjord's metadata and storage layers.
//!
//! # Parts, and how a produce flows through them
//!
//! ```text
//! kafka (server → connection → codec → dispatch → handlers)
//!   │ Produce/Fetch/ListOffsets            │ group APIs
//!   ▼                                      ▼
//! log (leadership, produce, fetch)       groups (coordinator shards, actors)
//!   │ WAL, segments, commits               │ group records, offsets
//!   ▼                                      ▼
//! fjord-storage (bucket, WAL, caches)    fjord-metadata (epochs, index, groups)
//!
//! balancer ── moves leadership (log) and coordinator shards (groups) to match
//!             cluster (membership, placement: leaves)
//! heartbeat ── keeps this agent's lease
//! agent ── builds all of it and runs every task under one supervisor
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`agent`] | [`AgentBuilder`] / [`Agent`]: wiring, the supervised tasks, graceful and failure shutdown |
//! | [`broker`] | [`Broker`]: what every request handler shares |
//! | [`balancer`] | the loop that moves partition leadership and coordinator shards to match placement |
//! | [`cluster`] | liveness of agents (membership) and placement (rendezvous hashing); leaves |
//! | [`config`] | `fjord agent`'s settings: typed, versioned, layered (defaults → file → env → flags), validated |
//! | [`configs`] | Kafka's topic configs and the broker configs this agent reports |
//! | [`faults`] | fault injection in whole agent processes, for tests |
//! | [`groups`] | the consumer-group coordinator |
//! | [`heartbeat`] | this agent's lease in metadata |
//! | [`http`] | the HTTP and gRPC gateway's view of this agent: produce and read (forwarded to the leader), topics |
//! | [`idempotence`] | the idempotent producer's epoch and sequence checks on one partition |
//! | [`kafka`] | the Kafka listener: framing, dispatch, one handler per API, error-code mapping |
//! | [`launch`] | from settings to a running agent: components opened by URL |
//! | [`log`] | the write path and the read path of the partitions this agent leads |
//! | [`maintenance`] | jobs that keep state bounded (idle producer ids) |
//! | [`records`] | Kafka v2 record-batch headers: validation and the two fields the leader rewrites |
//! | [`security`] | who a client is (its principal) and what it may do: the ACL authorizer ([`security::authorizer`]) every Kafka request is checked by |
//! | [`stats`] | the object-store counters file benchmarks read |
//! | [`topic_spec`] | a topic to create, checked as `CreateTopics` checks it, for the Kafka handler and the gateway |
//! | [`topics`] | topic lookups for the request path, cached |
//! | [`transactions`] | the transaction coordinator: transactional ids, epochs, each transaction's decision and markers |
//! | `trace` | timelines of produce requests and flushes (debug events), to find where a produce waits |
//!
//! # Invariants
//!
//! - Nothing acknowledged is lost silently: `acks=all` is answered only once
//!   committed in metadata; `acks=1` batches survive failed uploads and commits
//!   and a restart on the same disk ([`log`] states exactly what they survive).
//! - No zombie: when a critical task dies the agent stops heartbeating and
//!   leaves ([`agent`]).
//! - Bad input never panics and never reaches stored data.
//! - Responses on one connection go out in request order.
//! - Every error maps to a Kafka error code in one exhaustive function
//!   ([`kafka::errors`]).

pub mod agent;
pub mod balancer;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod configs;
pub mod faults;
pub mod groups;
pub mod heartbeat;
pub mod http;
pub mod idempotence;
pub mod kafka;
pub mod launch;
pub mod log;
pub mod maintenance;
pub mod records;
pub mod security;
pub mod stats;
pub mod topic_spec;
pub mod topics;
pub(crate) mod trace;
pub mod transactions;

pub use agent::{Agent, AgentBuilder, AgentOptions};
pub use broker::{Broker, BrokerSettings};
