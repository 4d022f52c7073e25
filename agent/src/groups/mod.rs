//! The consumer-group coordinator: Kafka's classic group protocol (join, sync,
//! heartbeat, leave, static membership, the eager and cooperative rebalances
//! clients drive), the server-side consumer protocol (KIP-848: assignments
//! computed here, member epochs, incremental revocation), and committed
//! offsets, over metadata. One engine serves both: a group is of one protocol
//! at a time, and an empty group changes protocol when a member of the other
//! one arrives.
//!
//! # Parts
//!
//! | module | owns |
//! |---|---|
//! | [`coordinator`] | [`GroupCoordinator`]: which coordinator shards this agent holds (taken in metadata with an epoch, never from a live holder), routing requests to group actors, supervising them, expiring idle groups |
//! | `shard` | one held shard: its lease (fence, lost flag), its registry of actors and the supervised set they run in (a leaf: it knows nothing of groups) |
//! | `actor` | one task per group: the protocol flows, timers (session, rebalance, initial delay, sync), fenced persistence before every answer, offset expiry; it ends with an `ActorExit` |
//! | `state` | one group's in-memory state and the queries the flows are built from |
//! | [`consumer`] | the server-side consumer protocol's state and rules: heartbeats, assignors, reconciliation |
//! | [`types`] | requests and answers in domain terms (the Kafka handlers translate) |
//! | `consumer_protocol` | reading consumer subscriptions and assignments |
//! | [`lag`] | consumer lag per partition, from metadata |
//! | [`report`] | the text reports of `fjord groups` |
//!
//! # Data flow
//!
//! A Kafka handler calls the [`GroupCoordinator`], which makes sure this agent
//! holds the group's coordinator shard (taking it and loading its groups from
//! metadata if not) and sends the request to the group's actor over a bounded
//! queue. The actor answers at once, or — for `JoinGroup` and `SyncGroup` —
//! keeps the answer channel until the rebalance reaches the point Kafka answers
//! at. A waiting request holds only its own connection (requests of one
//! connection are handled in order, as Kafka does); no lock is held while
//! waiting, so other connections and groups are never blocked by it.
//!
//! # Invariants
//!
//! - Members learn only what is durable: a new generation, an assignment and a
//!   replaced static member are written to metadata before any member is told.
//! - Every group write is fenced by the coordinator shard's epoch; a coordinator
//!   whose write is fenced stops serving the shard (`NOT_COORDINATOR`).
//! - Offset commits are fenced by generation: in memory against the group's
//!   current generation, and in metadata against the stored one.
//! - Client input never panics the coordinator: unknown members, generations and
//!   malformed subscriptions become Kafka error codes.
//! - A group actor that dies anyway (a bug) is reloaded from metadata, never
//!   restarted empty; no actor task is detached.
//! - Offsets expire `offsets.retention.minutes` after their commit (or after the
//!   group became empty, if later); an empty group without offsets is deleted,
//!   so groups invented by clients do not accumulate in memory or metadata.
//!
//! Module dependencies point one way: `coordinator` → `actor` → `shard`
//! (and `state`, `types`); `shard` depends on no other part of `groups`.

mod actor;
pub mod consumer;
mod consumer_protocol;
pub mod coordinator;
mod error;
pub mod lag;
pub mod report;
mod shard;
mod state;
pub mod types;

use std::time::Duration;

pub use consumer::ConsumerGroupSettings;
pub use coordinator::{ExpiryReport, GroupCoordinator};
pub use error::GroupError;

/// Group settings, named after their Apache Kafka equivalents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupSettings {
    /// `group.initial.rebalance.delay.ms`: how long the first generation of a
    /// group waits for more members (extended while they keep arriving, up to
    /// the rebalance timeout).
    pub initial_rebalance_delay: Duration,
    /// `group.min.session.timeout.ms`.
    pub min_session_timeout: Duration,
    /// `group.max.session.timeout.ms`.
    pub max_session_timeout: Duration,
    /// `offset.metadata.max.bytes`: the longest metadata string of a commit.
    pub max_offset_metadata_bytes: usize,
    /// `offsets.retention.minutes` (default 10080: 7 days): how long committed
    /// offsets outlive their commit, or — for a group that had members — the
    /// time the group became empty, whichever is later (KIP-211). An empty
    /// group left without offsets is deleted.
    pub offsets_retention: Duration,
    /// `offsets.retention.check.interval.ms` (default 600000: 10 minutes): how
    /// often [`GroupCoordinator::run_expiry`] expires offsets and groups.
    pub offsets_retention_check_interval: Duration,
    /// Groups of the server-side consumer protocol (`group.consumer.*`).
    pub consumer: ConsumerGroupSettings,
}

impl Default for GroupSettings {
    fn default() -> Self {
        Self {
            initial_rebalance_delay: Duration::from_millis(3_000),
            min_session_timeout: Duration::from_millis(6_000),
            max_session_timeout: Duration::from_millis(1_800_000),
            max_offset_metadata_bytes: 4_096,
            offsets_retention: Duration::from_secs(10_080 * 60),
            offsets_retention_check_interval: Duration::from_millis(600_000),
            consumer: ConsumerGroupSettings::default(),
        }
    }
}

#[cfg(test)]
mod tests;
