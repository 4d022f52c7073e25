//! Background upkeep that keeps state bounded: jobs that run under the
//! agent's supervisor on an interval.
//!
//! | module | job |
//! |---|---|
//! | [`producer_expiry`] | forget idempotent producers idle for `producer.id.expiration.ms`, in memory and in metadata |
//! | [`compaction`] | object compaction: small segment objects merged into large ones, index entries swapped over where unchanged |
//! | [`log_compaction`] | log compaction (`cleanup.policy=compact`): the latest record of each key kept, tombstones and aborted transactions dropped, offsets unchanged, by the same swap |
//! | [`leases`] | which job shards this agent runs, held in metadata and moved as the cluster view places them |
//! | [`orphans`] | the orphan sweep: objects written but never committed, old enough that no commit can take them |
//! | [`report`] | not a job: what the bucket holds and what the jobs owe (`fjord storage-report`) |
//! | [`retention`] | `retention.ms` / `retention.bytes`, releasing index entries below the log start (retention, `DeleteRecords`, deleted topics), deleting unreferenced objects after a grace period |
//!
//! Empty consumer groups and their offsets expire in the group coordinator
//! ([`crate::groups`], `offsets.retention.minutes`).

pub mod compaction;
pub mod leases;
pub mod log_compaction;
pub mod orphans;
pub mod producer_expiry;
pub mod report;
pub mod retention;
