//! The domain's types. Those that are persisted implement
//! [`Versioned`](crate::codec::Versioned); changing one means a new format version
//! (see [`codec`](crate::codec)).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use ulid::Ulid;
use uuid::Uuid;

use crate::codec::Versioned;

/// A topic's immutable identity (Kafka's topic id). A topic deleted and created
/// again under the same name gets a new id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicId(pub Uuid);

impl fmt::Display for TopicId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// One partition of one topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TopicPartition {
    /// The topic.
    pub topic_id: TopicId,
    /// The partition index, `0..partition_count`.
    pub partition: i32,
}

impl TopicPartition {
    /// Partition `partition` of `topic_id`.
    pub fn new(topic_id: TopicId, partition: i32) -> Self {
        Self {
            topic_id,
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.topic_id, self.partition)
    }
}

/// A segment object's id: a ULID, so ids (and object keys) sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SegmentId(pub Ulid);

impl fmt::Display for SegmentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A request to create a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Its name (Kafka's rules: 1–249 of `[a-zA-Z0-9._-]`, not `.` or `..`).
    pub name: String,
    /// Partitions, at least one.
    pub partition_count: i32,
    /// Topic configs (`retention.ms`, `cleanup.policy`, ...), as Kafka names them.
    pub configs: BTreeMap<String, String>,
}

impl NewTopic {
    /// A topic with default configs.
    pub fn new(name: impl Into<String>, partition_count: i32) -> Self {
        Self {
            name: name.into(),
            partition_count,
            configs: BTreeMap::new(),
        }
    }
}

/// A topic as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    /// Its id.
    pub id: TopicId,
    /// Its name.
    pub name: String,
    /// How many partitions it has.
    pub partition_count: i32,
    /// Its configs (only those set explicitly).
    pub configs: BTreeMap<String, String>,
    /// When it was created, by the creating agent's clock (informational).
    pub created_at_ms: i64,
}

impl Versioned for TopicMeta {
    const WHAT: &'static str = "topic";
    const VERSION: u8 = 1;
}

/// A partition's leadership, log bounds and the running maximum of its time
/// index (see [`MetadataStore::lookup_by_timestamp`](crate::MetadataStore::lookup_by_timestamp)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// The agent (node id) that leads it, if any.
    pub leader: Option<i32>,
    /// Bumped on every leadership change; commits carry it and are fenced by it.
    pub leader_epoch: i32,
    /// The first offset still readable.
    pub log_start_offset: i64,
    /// The offset after the last committed record.
    pub high_watermark: i64,
    /// The largest chunk timestamp committed at or after `time_indexed_from`
    /// (the running maximum the time index steps along); `None` before the
    /// first such chunk.
    pub max_timestamp: Option<i64>,
    /// The first offset the time index covers: 0 for partitions created by a
    /// build with the time index, the high watermark at upgrade for older ones
    /// (their earlier index entries are searched entry by entry).
    pub time_indexed_from: i64,
    /// The transactions open in the committed log: each producer with
    /// transactional batches committed and no marker after them, with the
    /// offset of its transaction's first batch. Kept by every segment commit
    /// from the producer states it writes (version 3).
    pub open_transactions: Vec<OpenTransaction>,
}

/// A transaction open in a partition's committed log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenTransaction {
    /// The transactional producer.
    pub producer_id: i64,
    /// The offset of its transaction's first batch in the partition.
    pub first_offset: i64,
}

impl PartitionState {
    /// A new partition: leaderless at epoch 0, empty, time-indexed from 0.
    pub(crate) fn empty() -> Self {
        Self {
            leader: None,
            leader_epoch: 0,
            log_start_offset: 0,
            high_watermark: 0,
            max_timestamp: None,
            time_indexed_from: 0,
            open_transactions: Vec::new(),
        }
    }

    /// The last stable offset (Kafka's LSO): the first offset of the oldest
    /// open transaction, or the high watermark when none is open.
    /// `read_committed` consumers read below it.
    pub fn last_stable_offset(&self) -> i64 {
        self.open_transactions
            .iter()
            .map(|t| t.first_offset)
            .min()
            .map_or(self.high_watermark, |first| first.min(self.high_watermark))
    }
}

/// [`PartitionState`] as version 2 wrote it (no open transactions).
#[derive(Deserialize)]
struct PartitionStateV2 {
    leader: Option<i32>,
    leader_epoch: i32,
    log_start_offset: i64,
    high_watermark: i64,
    max_timestamp: Option<i64>,
    time_indexed_from: i64,
}

/// [`PartitionState`] as version 1 wrote it (no time index).
#[derive(Deserialize)]
struct PartitionStateV1 {
    leader: Option<i32>,
    leader_epoch: i32,
    log_start_offset: i64,
    high_watermark: i64,
}

impl Versioned for PartitionState {
    const WHAT: &'static str = "partition state";
    /// Version 1 had no time index; it reads as a partition time-indexed from
    /// its high watermark on. Version 2 had no open transactions.
    const VERSION: u8 = 3;

    fn decode_older(version: u8, body: &[u8]) -> Option<Result<Self, postcard::Error>> {
        match version {
            1 => Some(
                postcard::from_bytes::<PartitionStateV1>(body).map(|v1| Self {
                    leader: v1.leader,
                    leader_epoch: v1.leader_epoch,
                    log_start_offset: v1.log_start_offset,
                    high_watermark: v1.high_watermark,
                    max_timestamp: None,
                    time_indexed_from: v1.high_watermark,
                    open_transactions: Vec::new(),
                }),
            ),
            2 => Some(
                postcard::from_bytes::<PartitionStateV2>(body).map(|v2| Self {
                    leader: v2.leader,
                    leader_epoch: v2.leader_epoch,
                    log_start_offset: v2.log_start_offset,
                    high_watermark: v2.high_watermark,
                    max_timestamp: v2.max_timestamp,
                    time_indexed_from: v2.time_indexed_from,
                    open_transactions: Vec::new(),
                }),
            ),
            _ => None,
        }
    }
}

/// The value of a time-index key: the chunk that raised its partition's running
/// maximum timestamp to the key's timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TimeIndexPoint {
    /// The chunk's first offset.
    pub(crate) base_offset: i64,
    /// The chunk's last offset (its index entry's key).
    pub(crate) last_offset: i64,
}

impl Versioned for TimeIndexPoint {
    const WHAT: &'static str = "time index point";
    const VERSION: u8 = 1;
}

/// One partition's part of a segment commit: a chunk of consecutive batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkCommit {
    /// The partition.
    pub partition: TopicPartition,
    /// The epoch the leader assigned these offsets under.
    pub leader_epoch: i32,
    /// The first offset in the chunk; must equal the partition's high watermark.
    pub base_offset: i64,
    /// The last offset in the chunk (inclusive).
    pub last_offset: i64,
    /// Records in the chunk (at most `last_offset - base_offset + 1`).
    pub record_count: u32,
    /// The largest record timestamp in the chunk.
    pub max_timestamp: i64,
    /// Where the chunk starts in the object.
    pub byte_offset: u64,
    /// The chunk's length in the object.
    pub byte_length: u64,
}

/// A segment object to add to the index: written once per agent flush, holding a
/// chunk for each partition in the flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentCommit {
    /// The segment's id; commits are idempotent on it.
    pub segment_id: SegmentId,
    /// The object's key in the bucket (built by the storage layer).
    pub object_key: String,
    /// The object's size in bytes.
    pub object_size: u64,
    /// One chunk per partition.
    pub chunks: Vec<ChunkCommit>,
    /// The idempotence state of every producer that wrote into the chunks, as it
    /// stands after them; written in the same transaction, so a new leader reads
    /// exactly the state of the committed log.
    pub producers: Vec<ProducerCommit>,
    /// Transactions aborted by a marker in the chunks: recorded for
    /// `read_committed` readers ([`MetadataStore::aborted_transactions`](crate::MetadataStore::aborted_transactions)).
    pub aborted: Vec<AbortedTransactionCommit>,
}

/// A transaction that an abort marker in a segment's chunk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransactionCommit {
    /// The partition; a chunk of the same segment must cover the marker.
    pub partition: TopicPartition,
    /// The producer.
    pub producer_id: i64,
    /// The offset of the transaction's first batch in the partition.
    pub first_offset: i64,
    /// The offset of the abort marker.
    pub last_offset: i64,
}

/// An aborted transaction of one partition, as `Fetch` reports it to
/// `read_committed` readers: its batches from the producer between the two
/// offsets are to be skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTransaction {
    /// The producer.
    pub producer_id: i64,
    /// The offset of the transaction's first batch.
    pub first_offset: i64,
    /// The offset of its abort marker.
    pub last_offset: i64,
}

impl Versioned for AbortedTransaction {
    const WHAT: &'static str = "aborted transaction";
    const VERSION: u8 = 1;
}

/// One producer's state on one partition, committed with a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerCommit {
    /// The partition; a chunk of the same segment must cover it.
    pub partition: TopicPartition,
    /// The producer id.
    pub producer_id: i64,
    /// Its state after the segment's batches.
    pub state: ProducerState,
}

/// An idempotent producer's state on one partition, as Kafka keeps it: the
/// producer epoch and its most recent batches, to answer retried duplicates with
/// their original offsets and to check that sequence numbers follow on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerState {
    /// The producer epoch of its last batch.
    pub producer_epoch: i16,
    /// Its most recent batches, oldest first (at most [`ProducerState::MAX_BATCHES`]).
    pub batches: Vec<ProducerBatch>,
    /// The largest timestamp of its last batch (for expiry).
    pub last_timestamp: i64,
    /// The offset of the first batch of its open transaction in this
    /// partition, if one is open (version 2).
    pub txn_first_offset: Option<i64>,
}

impl ProducerState {
    /// Batches remembered per producer and partition: Kafka's limit on in-flight
    /// requests of an idempotent producer.
    pub const MAX_BATCHES: usize = 5;
}

/// [`ProducerState`] as version 1 wrote it (no transactions).
#[derive(Deserialize)]
struct ProducerStateV1 {
    producer_epoch: i16,
    batches: Vec<ProducerBatch>,
    last_timestamp: i64,
}

impl Versioned for ProducerState {
    const WHAT: &'static str = "producer state";
    const VERSION: u8 = 2;

    fn decode_older(version: u8, body: &[u8]) -> Option<Result<Self, postcard::Error>> {
        (version == 1).then(|| {
            postcard::from_bytes::<ProducerStateV1>(body).map(|v1| Self {
                producer_epoch: v1.producer_epoch,
                batches: v1.batches,
                last_timestamp: v1.last_timestamp,
                txn_first_offset: None,
            })
        })
    }
}

/// One batch of an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerBatch {
    /// Its `baseSequence`.
    pub first_sequence: i32,
    /// Its last sequence (`baseSequence + lastOffsetDelta`, wrapping).
    pub last_sequence: i32,
    /// The offset its first record was assigned.
    pub base_offset: i64,
    /// The offset of its last record.
    pub last_offset: i64,
}

/// What a segment commit did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentCommitOutcome {
    /// Each partition's high watermark after the commit.
    pub high_watermarks: Vec<(TopicPartition, i64)>,
    /// The segment had been committed already (an earlier attempt whose reply was
    /// lost); nothing was written this time.
    pub replayed: bool,
}

/// A committed segment object, as recorded for idempotence and garbage collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentRecord {
    /// The object's key.
    pub object_key: String,
    /// Its size.
    pub object_size: u64,
    /// Index entries that still reference it; the object may be deleted (after a
    /// grace period) only once this reaches zero.
    pub live_chunks: u32,
    /// When it was committed, by the committing agent's clock (informational).
    pub committed_at_ms: i64,
}

impl Versioned for SegmentRecord {
    const WHAT: &'static str = "segment record";
    const VERSION: u8 = 1;
}

/// One entry of a partition's segment index: where a range of offsets lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The first offset.
    pub base_offset: i64,
    /// The last offset (inclusive).
    pub last_offset: i64,
    /// Records in the range.
    pub record_count: u32,
    /// The largest record timestamp.
    pub max_timestamp: i64,
    /// The epoch the offsets were assigned under.
    pub leader_epoch: i32,
    /// The segment holding them.
    pub segment_id: SegmentId,
    /// The segment object's key.
    pub object_key: String,
    /// Where the chunk starts in the object.
    pub byte_offset: u64,
    /// The chunk's length.
    pub byte_length: u64,
    /// The whole segment object's size (0 when unknown: entries written by
    /// version 1), so a reader may fetch the object at once rather than chunk by
    /// chunk.
    pub object_size: u64,
}

/// [`IndexEntry`] as version 1 wrote it (without `object_size`).
#[derive(Deserialize)]
struct IndexEntryV1 {
    base_offset: i64,
    last_offset: i64,
    record_count: u32,
    max_timestamp: i64,
    leader_epoch: i32,
    segment_id: SegmentId,
    object_key: String,
    byte_offset: u64,
    byte_length: u64,
}

impl Versioned for IndexEntry {
    const WHAT: &'static str = "index entry";
    const VERSION: u8 = 2;

    fn decode_older(version: u8, body: &[u8]) -> Option<Result<Self, postcard::Error>> {
        (version == 1).then(|| {
            postcard::from_bytes::<IndexEntryV1>(body).map(|v1| Self {
                base_offset: v1.base_offset,
                last_offset: v1.last_offset,
                record_count: v1.record_count,
                max_timestamp: v1.max_timestamp,
                leader_epoch: v1.leader_epoch,
                segment_id: v1.segment_id,
                object_key: v1.object_key,
                byte_offset: v1.byte_offset,
                byte_length: v1.byte_length,
                object_size: 0,
            })
        })
    }
}

/// The answer to an index lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexLookup {
    /// The partition's state when read.
    pub state: PartitionState,
    /// Entries in offset order, the first covering the offset asked for (unless
    /// it is below the log start or at/after the high watermark).
    pub entries: Vec<IndexEntry>,
}

/// The answer to [`MetadataStore::lookup_by_timestamp`](crate::MetadataStore::lookup_by_timestamp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampLookup {
    /// The partition's state, from the same snapshot.
    pub state: PartitionState,
    /// Index entries in offset order. No readable record (at or after the log
    /// start) before the first of them has a timestamp at or above the one asked
    /// for. Empty when no readable record can have one.
    pub entries: Vec<IndexEntry>,
    /// The search was clamped to the log start: the first chunk reaching the
    /// timestamp starts below it (its qualifying records may have been deleted),
    /// so `entries` start at the entry covering the log start and the first
    /// qualifying record may lie in any of them, or past them (read on with
    /// [`MetadataStore::lookup`](crate::MetadataStore::lookup)). When `false`,
    /// the first entry holds the first qualifying record.
    pub clamped: bool,
}

/// The largest timestamp of a partition's log and the chunk that first holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampMax {
    /// The largest record timestamp.
    pub timestamp: i64,
    /// The first chunk holding a record with it.
    pub entry: IndexEntry,
}

/// The answer to [`MetadataStore::max_timestamp`](crate::MetadataStore::max_timestamp).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaxTimestampLookup {
    /// The partition's state, from the same snapshot.
    pub state: PartitionState,
    /// The largest timestamp among the readable records and the first chunk
    /// holding it. `None` when the log holds no record, or when
    /// `below_log_start`.
    pub max: Option<TimestampMax>,
    /// The largest timestamp the log ever held was first reached in a chunk
    /// that starts below the log start (records deleted since, or a chunk the log
    /// start cuts): the time index cannot tell the largest readable timestamp,
    /// and the caller searches from the log start.
    pub below_log_start: bool,
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRecord {
    /// Its Kafka node id, allocated at registration.
    pub node_id: i32,
    /// The process instance that registered (new on every start).
    pub instance: Uuid,
    /// The `host:port` clients should reach its Kafka listener on.
    pub advertised_address: String,
    /// Bumped by every heartbeat. Liveness is judged by watching this counter move
    /// with a local timer, never by comparing clocks across hosts.
    pub heartbeat: u64,
    /// When it registered, by its own clock (informational).
    pub registered_at_ms: i64,
    /// What it does.
    pub roles: AgentRoles,
    /// The `host:port` of its HTTP and gRPC gateway, if it serves one (other
    /// agents forward requests only its gateway can take there).
    pub gateway_address: Option<String>,
}

impl Versioned for AgentRecord {
    const WHAT: &'static str = "agent record";
    /// Version 3 added `gateway_address`; version 2 added `roles` (version 1
    /// agents did everything).
    const VERSION: u8 = 3;

    fn decode_older(version: u8, body: &[u8]) -> Option<Result<Self, postcard::Error>> {
        match version {
            1 => Some(postcard::from_bytes::<AgentRecordV1>(body).map(|v1| Self {
                node_id: v1.node_id,
                instance: v1.instance,
                advertised_address: v1.advertised_address,
                heartbeat: v1.heartbeat,
                registered_at_ms: v1.registered_at_ms,
                roles: AgentRoles::ALL,
                gateway_address: None,
            })),
            2 => Some(postcard::from_bytes::<AgentRecordV2>(body).map(|v2| Self {
                node_id: v2.node_id,
                instance: v2.instance,
                advertised_address: v2.advertised_address,
                heartbeat: v2.heartbeat,
                registered_at_ms: v2.registered_at_ms,
                roles: v2.roles,
                gateway_address: None,
            })),
            _ => None,
        }
    }
}

/// [`AgentRecord`] as version 2 wrote it (without `gateway_address`).
#[derive(Debug, Deserialize)]
struct AgentRecordV2 {
    node_id: i32,
    instance: Uuid,
    advertised_address: String,
    heartbeat: u64,
    registered_at_ms: i64,
    roles: AgentRoles,
}

/// [`AgentRecord`] as version 1 wrote it (without `roles`).
#[derive(Debug, Deserialize)]
struct AgentRecordV1 {
    node_id: i32,
    instance: Uuid,
    advertised_address: String,
    heartbeat: u64,
    registered_at_ms: i64,
}

/// What an agent does (`--roles`): serve Kafka clients (lead partitions and
/// coordinator shards), run the background jobs (retention, garbage
/// collection), or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentRoles {
    /// Leads partitions and coordinator shards, and is advertised to clients.
    pub serve: bool,
    /// Runs retention and garbage collection for its share of partitions.
    pub jobs: bool,
}

impl AgentRoles {
    /// Both roles: what an agent does unless told otherwise.
    pub const ALL: AgentRoles = AgentRoles {
        serve: true,
        jobs: true,
    };
}

impl Default for AgentRoles {
    fn default() -> Self {
        Self::ALL
    }
}

/// A consumer group's committed position in one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    /// The next offset the group will read.
    pub offset: i64,
    /// The leader epoch of the last record consumed, if the client sent it.
    pub leader_epoch: Option<i32>,
    /// Client metadata string.
    pub metadata: Option<String>,
    /// When it was committed, by the coordinator's clock.
    pub commit_timestamp_ms: i64,
}

impl Versioned for CommittedOffset {
    const WHAT: &'static str = "committed offset";
    const VERSION: u8 = 1;
}

/// One offset to commit for a group, addressed as Kafka addresses it: by topic name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommit {
    /// The topic name.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The position.
    pub offset: i64,
    /// The leader epoch the client saw.
    pub leader_epoch: Option<i32>,
    /// Client metadata.
    pub metadata: Option<String>,
}

/// A stored group offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupOffset {
    /// The topic name.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// What was committed.
    pub committed: CommittedOffset,
}

/// A topic deleted but whose index entries still await release (their objects'
/// references are dropped by the garbage collector).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedTopic {
    /// The topic as it was.
    pub topic: TopicMeta,
    /// When it was deleted (informational).
    pub deleted_at_ms: i64,
}

impl Versioned for DeletedTopic {
    const WHAT: &'static str = "deleted topic";
    const VERSION: u8 = 1;
}

/// Where a leader epoch's records end in a partition's log (Kafka's
/// `OffsetForLeaderEpoch` answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEnd {
    /// The epoch the answer is about: the epoch asked for when it is the current
    /// one or older than every epoch the log holds, otherwise the largest epoch
    /// the log holds at or below it.
    pub leader_epoch: i32,
    /// The offset after that epoch's last record: the first offset written under
    /// a later epoch, or the high watermark for the current epoch.
    pub end_offset: i64,
}

/// The answer to [`MetadataStore::epoch_end_offset`](crate::MetadataStore::epoch_end_offset).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochEndLookup {
    /// The partition's state, from the same snapshot.
    pub state: PartitionState,
    /// `None` when the log knows no epoch to answer for (Kafka's undefined epoch
    /// and offset, `-1`/`-1`): the epoch asked for is negative or newer than the
    /// partition's current epoch.
    pub end: Option<EpochEnd>,
}

// ----- consumer groups -----

/// Who coordinates the groups hashed onto one coordinator shard, and under which
/// epoch. Every persisted group write carries the epoch it was made under and
/// fails if the shard's epoch moved on (see [`ShardFence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoordinatorShardState {
    /// The agent (node id) coordinating the shard's groups, if any.
    pub leader: Option<i32>,
    /// Bumped on every change of coordinator.
    pub epoch: i32,
}

impl Versioned for CoordinatorShardState {
    const WHAT: &'static str = "coordinator shard";
    const VERSION: u8 = 1;
}

/// A coordinator's right to write the groups of one shard: the shard and the
/// epoch its leadership was taken under. Writes made with a fence whose epoch is
/// no longer the shard's fail with
/// [`MetadataError::CoordinatorFenced`](crate::MetadataError::CoordinatorFenced)
/// and write nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShardFence {
    /// The coordinator shard.
    pub shard: u32,
    /// The epoch the writer holds.
    pub epoch: i32,
}

/// Where a persisted group stood in Kafka's classic rebalance protocol when it
/// was last written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GroupPhase {
    /// No members (a group that only stores offsets, or whose members all left).
    Empty,
    /// A generation was formed but its leader had not yet sent the assignment: a
    /// coordinator that loads the group this way must rebalance it.
    AwaitingSync,
    /// The generation's assignment was distributed.
    Stable,
}

/// One protocol (assignor) a member supports, with its subscription bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupProtocol {
    /// The protocol's name (`range`, `cooperative-sticky`, ...).
    pub name: String,
    /// The member's metadata for it (for consumers: the subscription).
    pub metadata: Vec<u8>,
}

/// A member of a group, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMemberRecord {
    /// The member id the coordinator assigned.
    pub member_id: String,
    /// The static instance id (`group.instance.id`), for static members.
    pub group_instance_id: Option<String>,
    /// The client id from the member's requests.
    pub client_id: String,
    /// The address the member connected from.
    pub client_host: String,
    /// How long the member may go without a heartbeat.
    pub session_timeout_ms: i32,
    /// How long the coordinator waits for the member to rejoin in a rebalance.
    pub rebalance_timeout_ms: i32,
    /// The protocols the member supports, in its order of preference.
    pub protocols: Vec<GroupProtocol>,
    /// The member's assignment in the group's generation (empty until synced).
    pub assignment: Vec<u8>,
}

impl Versioned for GroupMemberRecord {
    const WHAT: &'static str = "group member";
    const VERSION: u8 = 1;
}

/// The durable part of a consumer group: enough for another coordinator to
/// resume it. Committed offsets are stored apart (see
/// [`MetadataStore::commit_offsets`](crate::MetadataStore::commit_offsets)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// The group id.
    pub group_id: String,
    /// The protocol type (`consumer`, `connect`, ...); `None` for a group that
    /// only stores offsets.
    pub protocol_type: Option<String>,
    /// The protocol chosen for the generation.
    pub protocol_name: Option<String>,
    /// The generation; offset commits made under another one are refused.
    pub generation: i32,
    /// The member id of the generation's leader.
    pub leader: Option<String>,
    /// Where the rebalance stood.
    pub phase: GroupPhase,
    /// The generation's members.
    pub members: Vec<GroupMemberRecord>,
    /// For a group of the server-side consumer protocol (KIP-848): its epochs and
    /// members. `None` for a classic group (or one that only stores offsets);
    /// when set, the classic fields above are empty.
    pub consumer: Option<ConsumerGroupRecord>,
    /// When it was written, by the coordinator's clock (informational).
    pub updated_at_ms: i64,
}

impl GroupRecord {
    /// A group with no members and no generation yet (as a group that only
    /// stores offsets starts).
    pub fn empty(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            protocol_type: None,
            protocol_name: None,
            generation: 0,
            leader: None,
            phase: GroupPhase::Empty,
            members: Vec::new(),
            consumer: None,
            updated_at_ms: 0,
        }
    }
}

/// Partitions by topic: `(topic id, partitions)`, ordered by topic id, each
/// partition list sorted and without repeats.
pub type TopicPartitionSet = Vec<(TopicId, Vec<i32>)>;

/// The durable part of a consumer group of the server-side protocol (KIP-848).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupRecord {
    /// Bumped on every change of membership, subscriptions or subscribed
    /// topics' partitions: the epoch the next target assignment is computed at.
    pub group_epoch: i32,
    /// The group epoch the current target assignment was computed at.
    pub assignment_epoch: i32,
    /// The members.
    pub members: Vec<ConsumerMemberRecord>,
}

/// Where a member of a consumer-protocol group stands in reaching its target
/// assignment (Kafka's `MemberState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsumerMemberState {
    /// The member owns its target assignment (as far as other members allow).
    Stable,
    /// The member must first revoke partitions it owns that the target gave
    /// to others.
    UnrevokedPartitions,
    /// The member waits for partitions other members still have to revoke.
    UnreleasedPartitions,
}

/// A member of a consumer-protocol group, as persisted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerMemberRecord {
    /// The member id (generated by the client from heartbeat v1 on).
    pub member_id: String,
    /// The static instance id (`group.instance.id`), for static members.
    pub instance_id: Option<String>,
    /// The rack the member runs in.
    pub rack_id: Option<String>,
    /// The client id of its requests.
    pub client_id: String,
    /// The address it connected from.
    pub client_host: String,
    /// How long it may hold partitions it must revoke.
    pub rebalance_timeout_ms: i32,
    /// How long it may go without a heartbeat.
    pub session_timeout_ms: i32,
    /// The topic names it subscribes to.
    pub subscribed_topic_names: Vec<String>,
    /// The regular expression it subscribes with, if any.
    pub subscribed_topic_regex: Option<String>,
    /// The server-side assignor it asked for, if any.
    pub server_assignor: Option<String>,
    /// Its epoch; -2 for a static member that left temporarily.
    pub member_epoch: i32,
    /// Its epoch before the last bump (a member whose answer was lost may still
    /// heartbeat with it).
    pub previous_member_epoch: i32,
    /// Where it stands in reaching its target.
    pub state: ConsumerMemberState,
    /// The partitions it owns.
    pub assigned: TopicPartitionSet,
    /// Partitions it still owns but must revoke.
    pub pending_revocation: TopicPartitionSet,
    /// Its part of the group's target assignment.
    pub target: TopicPartitionSet,
}

impl Versioned for ConsumerMemberRecord {
    const WHAT: &'static str = "consumer group member";
    const VERSION: u8 = 1;
}

/// What a topic name maps to: the value at `("topic_name", name)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TopicNameRecord {
    /// The id of the topic that has the name.
    pub(crate) topic_id: TopicId,
}

impl Versioned for TopicNameRecord {
    const WHAT: &'static str = "topic name mapping";
    /// Version 0 was the raw 16-byte id, without a version byte; it is still
    /// read (see `store::decode_topic_name`).
    const VERSION: u8 = 1;
}

/// The cluster's identity: the value at `("cluster", "id")`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClusterIdRecord {
    /// The id Kafka clients see (a UUID string, created by the first agent).
    pub(crate) cluster_id: String,
}

impl Versioned for ClusterIdRecord {
    const WHAT: &'static str = "cluster id";
    /// Version 0 was the raw UTF-8 id, without a version byte; it is still read
    /// (see `store::decode_cluster_id`).
    const VERSION: u8 = 1;
}
