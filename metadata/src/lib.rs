//! Fjord's metadata layer: the single source of truth for topics, partition
//! leadership and epochs, the segment index, consumer groups (coordinator-shard
//! leadership, group state, committed offsets), producer ids and the agent
//! registry.
//!
//! Two layers:
//!
//! - [`kv`]: an FDB-shaped ordered key-value store with serializable, optimistic,
//!   retried transactions. Backends: [`kv::memory`], [`kv::sqlite`] (default) and
//!   `kv::fdb` (cargo feature `fdb`), chosen at run time by URL ([`open`];
//!   [`open_with_options`] takes the components, [`OpenOptions`]). The
//!   [`kv::fault`] decorator injects unavailability, lost commit replies, delays
//!   and timeouts into any backend, seeded and scriptable from a text spec
//!   ([`open_with_faults`]).
//! - [`MetadataStore`]: the domain, written once over [`kv::Database`]. Every
//!   operation is one transaction; its docs say what it reads and what it fences on.
//!
//! Keys are tuple-encoded ([`keys`], the only module that lays out keys); values
//! carry a format version byte ([`codec`]).
//!
//! How an agent uses the domain, and where each part lives (every module extends
//! `impl MetadataStore`):
//!
//! | the agent... | operations | module |
//! |---|---|---|
//! | creates, alters and deletes topics | [`MetadataStore::create_topic`], [`MetadataStore::delete_topic`], ... | `store` |
//! | balances partitions over agents (one snapshot per poll) | [`MetadataStore::all_partition_states`], [`MetadataStore::list_agents`] | `store` |
//! | takes a partition over: a new epoch and the producer states to serve from, in one transaction | [`MetadataStore::acquire_leadership_with_producers`] | `store`, `producers` |
//! | flushes: index entries, high watermarks and producer states, fenced by epoch, idempotent on the segment id | [`MetadataStore::commit_segment`] | `store` |
//! | fetches by offset | [`MetadataStore::lookup`] | `store` |
//! | answers `ListOffsets` by timestamp: a time index of the chunks that raised the partition's running maximum timestamp, so a search reads a few keys however long the log | [`MetadataStore::lookup_by_timestamp`], [`MetadataStore::max_timestamp`] | `time_index` |
//! | expires idle producer ids (fenced by epoch) | [`MetadataStore::expire_producer_states`] | `producers` |
//! | moves the log start, answers `OffsetForLeaderEpoch` | [`MetadataStore::delete_records`], [`MetadataStore::epoch_end_offset`] | `store` |
//! | retention: moves log starts, releases the entries below them, records unreferenced objects as garbage | [`MetadataStore::apply_retention`], [`MetadataStore::release_prefix`], [`MetadataStore::garbage_objects`] | `retention` |
//! | compacts objects: registers an output before its upload, swaps partitions' entries over to it only where they did not change | [`MetadataStore::register_compaction_output`], [`MetadataStore::swap_compacted`] | `compaction` |
//! | places a partition's leader on the agent an operator chose (`AlterPartitionReassignments`) | [`MetadataStore::set_leader_placement`], [`MetadataStore::leader_placements`] | `leader_placement` |
//! | authenticates SASL/SCRAM clients: each user's salt, iterations and keys per mechanism, altered in one transaction per request | [`MetadataStore::scram_credential`], [`MetadataStore::alter_scram_credentials`] | `scram` |
//! | compacts logs (`cleanup.policy=compact`): plans a clean from one snapshot, swaps cleaned entries in (fewer records, same offsets), moves the cleaner checkpoint | [`MetadataStore::log_compaction_view`], [`MetadataStore::swap_log_compacted`], [`MetadataStore::record_log_compaction`] | `log_compaction` |
//! | authorizes requests: ACL bindings created, described and deleted by filter (one transaction each), and a version counter agents check before re-reading them all | [`MetadataStore::create_acls`], [`MetadataStore::describe_acls`], [`MetadataStore::delete_acls`], [`MetadataStore::all_acls`] | `acls` |
//! | who runs the jobs of each shard (retention, compaction, garbage collection) | [`MetadataStore::acquire_job_shard`], [`MetadataStore::release_job_shard`], [`MetadataStore::job_shards`] | `jobs` |
//! | coordinates consumer groups | [`MetadataStore::acquire_coordinator_shard`], ... | `groups` |
//! | coordinates transactions: a transactional id's record, offsets pending in a transaction, the decision and its offsets in one commit, the aborted transactions `read_committed` fetches skip | [`MetadataStore::prepare_end_transaction`], [`MetadataStore::aborted_transactions`], ... | `transactions` |
//!
//! Blocking: no operation blocks an async worker thread; the SQLite backend runs
//! its file I/O and lock waits on Tokio's blocking pool.
//!
//! What this crate must never do: talk to object storage, or let a commit for a
//! partition succeed under an epoch other than the partition's current one.
//!
//! ```
//! # tokio_test_block_on(async {
//! use fjord_metadata::{MetadataStore, NewTopic};
//!
//! let store = fjord_metadata::open("memory://").await?;
//! let topic = store.create_topic(NewTopic::new("orders", 3)).await?;
//! assert_eq!(topic.partition_count, 3);
//! # Ok::<(), fjord_metadata::MetadataError>(())
//! # }).unwrap();
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

mod acls;
pub mod codec;
mod compaction;
mod error;
mod groups;
mod jobs;
pub mod keys;
pub mod kv;
mod leader_placement;
mod log_compaction;
mod model;
mod open;
mod producers;
pub mod rest_consumers;
mod retention;
mod scram;
mod store;
mod time_index;
mod transactions;

pub use acls::{
    AclBinding, AclBindingFilter, AclOperation, AclPermission, AclSet, CLUSTER_RESOURCE_NAME,
    PatternFilter, PatternType, ResourceType, WILDCARD, WILDCARD_PRINCIPAL,
};
pub use compaction::{
    CompactedInput, CompactionOutput, CompactionSwap, PartitionSwap, SwapOutcome,
};
pub use error::{ErrorKind, MetadataError};
pub use groups::{COORDINATOR_SHARDS, coordinator_shard_of};
pub use jobs::{JOB_SHARDS, JobLease, JobShardState};
pub use leader_placement::LeaderPlacement;
pub use log_compaction::{ActiveProducer, LogCompactionState, LogCompactionView};
pub use model::*;
pub use open::{
    BackendUrl, DEFAULT_CLUSTER, OpenOptions, open, open_with, open_with_faults, open_with_options,
};
pub use retention::{GarbageObject, Released, RetentionLimits, RetentionOutcome};
pub use scram::{ScramChange, ScramCredential};
pub use store::{
    DELETE_UP_TO_HIGH_WATERMARK, MAX_COMMIT_AGE_MS, MAX_PARTITIONS_PER_TOPIC, MetadataStore,
};
pub use transactions::{TransactionPhase, TransactionRecord};
