//! What the gateway needs from the agent: the broker core it adapts. The agent
//! implements [`Core`] over the same write and read paths its Kafka listener
//! uses, so an HTTP produce is a Kafka produce (one path, one set of checks).
//!
//! Every failure is a Kafka error ([`KafkaError`]): the agent's one mapping
//! from its errors to Kafka codes decides it, and the gateway only turns that
//! code into an HTTP status ([`crate::error`]).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use kafka_protocol::error::ResponseError;

/// A failure with its Kafka error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error:?}: {message}")]
pub struct KafkaError {
    /// The Kafka error.
    pub error: ResponseError,
    /// What went wrong, for people.
    pub message: String,
}

impl KafkaError {
    /// `error` with `message`.
    pub fn new(error: ResponseError, message: impl Into<String>) -> Self {
        Self {
            error,
            message: message.into(),
        }
    }
}

/// Why a produce failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProduceError {
    /// The broker's answer, with its Kafka error code.
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    /// The produce's `expected_offset` was not the partition's next offset:
    /// nothing was written.
    #[error("expected offset {expected}, the partition's next offset is {actual}")]
    OffsetMismatch {
        /// What the produce expected.
        expected: i64,
        /// The partition's next offset when the produce was refused.
        actual: i64,
    },
}

/// The request header an agent marks a produce it forwards to another
/// agent's gateway with (see [`Append::forwarded`]).
pub const FORWARDED_HEADER: &str = "fjord-forwarded";

/// How a produce is appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Append {
    /// Waits as Kafka's `acks` asks.
    pub acks: Acks,
    /// Waits at most this long.
    pub timeout: Duration,
    /// Appends only if the first record gets this offset, checked by the
    /// leader where offsets are assigned, so no other produce comes between
    /// the check and the append.
    pub expected_offset: Option<i64>,
    /// The produce was forwarded here by another agent that took this one for
    /// the leader: if this one does not lead the partition either, it answers
    /// `NOT_LEADER_OR_FOLLOWER` instead of forwarding again.
    pub forwarded: bool,
}

/// How durable a produce must be before it is answered, as Kafka's `acks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: not waited for.
    None,
    /// `acks=1`: on the leader's disk.
    Leader,
    /// `acks=all`: in the bucket and committed in metadata.
    All,
}

/// A topic as the gateway reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// Its name.
    pub name: String,
    /// Its id (a UUID, as Kafka's topic ids).
    pub id: String,
    /// How many partitions it has.
    pub partition_count: i32,
    /// The configs set on it (not the defaults).
    pub configs: BTreeMap<String, String>,
}

/// A partition's offsets and leader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// Its index.
    pub partition: i32,
    /// The first offset still in the log.
    pub log_start_offset: i64,
    /// The offset the next record will get (everything below is committed).
    pub high_watermark: i64,
    /// The node id of the agent that leads it (-1 when none is live).
    pub leader: i32,
}

/// Committed record batches read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadBatches {
    /// Whole Kafka v2 record batches, from the one holding the asked offset on
    /// (it may start before that offset).
    pub records: Bytes,
    /// The partition's high watermark.
    pub high_watermark: i64,
    /// Its log start offset.
    pub log_start_offset: i64,
}

/// A request for a topic's creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopicRequest {
    /// Its name.
    pub name: String,
    /// Its partition count; `None`: the broker's `num.partitions`.
    pub partitions: Option<i32>,
    /// Topic configs (`retention.ms`, …), validated as `CreateTopics` does.
    pub configs: BTreeMap<String, String>,
}

/// A member's heartbeat to its group, in the server-side consumer protocol
/// (KIP-848): how HTTP and gRPC members join, poll and leave. `None` fields
/// are unchanged since the member's last heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupHeartbeat {
    /// The group.
    pub group: String,
    /// The member id (empty on a join: the coordinator makes one).
    pub member_id: String,
    /// 0 to join, -1 to leave, otherwise the member's epoch.
    pub member_epoch: i32,
    /// A static member's instance id.
    pub instance_id: Option<String>,
    /// Topic names subscribed to.
    pub topics: Option<Vec<String>>,
    /// A regular expression subscribed to (RE2 syntax, whole names).
    pub pattern: Option<String>,
    /// The server-side assignor (`uniform`, `range`).
    pub assignor: Option<String>,
    /// The partitions the member owns, by topic name.
    pub owned: Option<Vec<(String, Vec<i32>)>>,
    /// The member's session timeout (on a join).
    pub session_timeout_ms: Option<i32>,
    /// How long the member may take to give up partitions; -1: unchanged.
    pub rebalance_timeout_ms: i32,
}

/// The coordinator's answer to a [`GroupHeartbeat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupAssignment {
    /// The member id.
    pub member_id: String,
    /// The member's epoch now (-1 after a leave).
    pub member_epoch: i32,
    /// How often the member should heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The partitions the member owns now, by topic name, when that changed;
    /// it gives up whatever it owns that is not in it.
    pub assignment: Option<Vec<(String, Vec<i32>)>>,
}

/// The broker core the gateway serves. Any agent answers any call: a produce
/// to a partition led elsewhere is forwarded to its leader; reads of committed
/// data work on every agent.
#[async_trait]
pub trait Core: Send + Sync + std::fmt::Debug + 'static {
    /// Whether this agent takes requests now (registered, not leaving); `Err`
    /// says why not.
    fn readiness(&self) -> Result<(), String>;

    /// The wall clock in milliseconds since the Unix epoch: the timestamp of
    /// records produced without one.
    fn now_millis(&self) -> i64;

    /// The topic named `name`.
    async fn topic(&self, name: &str) -> Result<TopicInfo, KafkaError>;

    /// Every topic.
    async fn list_topics(&self) -> Result<Vec<TopicInfo>, KafkaError>;

    /// Creates a topic.
    async fn create_topic(&self, request: NewTopicRequest) -> Result<TopicInfo, KafkaError>;

    /// Deletes a topic.
    async fn delete_topic(&self, name: &str) -> Result<(), KafkaError>;

    /// A new idempotent producer: its id and epoch (as `InitProducerId`
    /// without a transactional id).
    async fn new_producer(&self) -> Result<(i64, i16), KafkaError>;

    /// The offsets and leader of one partition.
    async fn partition(&self, topic: &str, partition: i32) -> Result<PartitionInfo, KafkaError>;

    /// Appends `batch` (Kafka v2 record batches) to a partition as `append`
    /// says; the base offset of the first batch (-1 for `acks=0`).
    async fn produce(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        append: Append,
    ) -> Result<i64, ProduceError>;

    /// Committed batches from `offset` on, up to about `max_bytes` (at least one
    /// batch when there is one), waiting up to `wait` for one to be committed
    /// when there is none yet.
    async fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<ReadBatches, KafkaError>;

    /// Subscribes now to the commits of `partitions` of `topic`: the future
    /// resolves at the next commit (or leadership change) of one of them after
    /// this call. Take it before reading, so a commit in between is not missed.
    async fn watch(
        &self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<futures::future::BoxFuture<'static, ()>, KafkaError>;

    /// A heartbeat of a member of `request.group` (the server-side consumer
    /// protocol), answered by the group's coordinator wherever it runs.
    async fn group_heartbeat(&self, request: GroupHeartbeat)
    -> Result<GroupAssignment, KafkaError>;

    /// Commits `offsets` (topic, partition, next offset) for `group` as
    /// `member_id` at `member_epoch` (fenced by it: `STALE_MEMBER_EPOCH`); a
    /// member id of "" and epoch -1 commit for a group without members.
    async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: i32,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), KafkaError>;

    /// The committed offsets of `partitions` in `group` (`None` where none).
    async fn committed_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<i64>>, KafkaError>;

    /// The first offset whose record's timestamp is at or after `timestamp_ms`,
    /// as `ListOffsets` finds it; `None` when no record qualifies.
    async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp_ms: i64,
    ) -> Result<Option<i64>, KafkaError>;

    /// The cluster id Kafka clients see (`Metadata`, `DescribeCluster`).
    fn cluster_id(&self) -> String;

    /// A fresh unique id (a UUID from the agent's id source), for names the
    /// gateway makes up.
    fn unique_id(&self) -> String;

    /// Every consumer group stored, ordered by id.
    async fn list_groups(&self) -> Result<Vec<GroupSummary>, KafkaError>;

    /// The group `group`; `None` when it is not stored.
    async fn describe_group(&self, group: &str) -> Result<Option<GroupSummary>, KafkaError>;

    /// Creates a REST Proxy consumer instance at version 1; `false` (nothing
    /// written) when its group has an instance of that name already.
    async fn create_rest_consumer(&self, consumer: &RestConsumer) -> Result<bool, KafkaError>;

    /// The REST Proxy consumer instance `instance` of `group`, if it exists.
    async fn rest_consumer(
        &self,
        group: &str,
        instance: &str,
    ) -> Result<Option<RestConsumer>, KafkaError>;

    /// Stores `consumer` if it is still stored at `consumer.version`
    /// (compare-and-set): its new version, or `None` (nothing written) when
    /// another store came first or it was deleted.
    async fn store_rest_consumer(&self, consumer: &RestConsumer)
    -> Result<Option<u64>, KafkaError>;

    /// Deletes a REST Proxy consumer instance if it is stored at `version`;
    /// whether it was.
    async fn delete_rest_consumer(
        &self,
        group: &str,
        instance: &str,
        version: u64,
    ) -> Result<bool, KafkaError>;

    /// Every REST Proxy consumer instance stored.
    async fn list_rest_consumers(&self) -> Result<Vec<RestConsumer>, KafkaError>;
}

/// A consumer group, as an admin API describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    /// Its id.
    pub group_id: String,
    /// `classic` or `consumer` (the server-side protocol, KIP-848).
    pub group_type: &'static str,
    /// A group that only stores offsets (no protocol, no members).
    pub is_simple: bool,
    /// The assignor in use (the classic generation's protocol, or the
    /// server-side assignor); empty when none.
    pub assignor: String,
    /// Its state, as Kafka names it (`Stable`, `Empty`, `Reconciling`, …).
    pub state: &'static str,
    /// The node id of the agent that coordinates it.
    pub coordinator: i32,
    /// Its members.
    pub members: Vec<GroupMemberSummary>,
}

/// A member of a [`GroupSummary`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMemberSummary {
    /// Its member id.
    pub member_id: String,
    /// Its static instance id, if any.
    pub instance_id: Option<String>,
    /// The client id of its requests.
    pub client_id: String,
}

/// A consumer instance of the Confluent REST Proxy API (v2), as stored in
/// metadata so that any agent serves any instance URL. Every call loads it,
/// works, and stores it back by compare-and-set on `version`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestConsumer {
    /// The consumer group.
    pub group: String,
    /// The instance name (unique in the group).
    pub instance: String,
    /// The version it was loaded at (bumped by every store).
    pub version: u64,
    /// `binary` or `json`: the embedded format of its records.
    pub format: String,
    /// `auto.offset.reset`: `earliest`, `latest` or `none`.
    pub auto_offset_reset: String,
    /// `auto.commit.enable`.
    pub auto_commit: bool,
    /// `fetch.min.bytes` (-1: none).
    pub fetch_min_bytes: i32,
    /// `consumer.request.timeout.ms`: how long a read waits by default.
    pub request_timeout_ms: i32,
    /// The session timeout of its group membership.
    pub session_timeout_ms: i32,
    /// `consumer.instance.timeout.ms`: deleted after this long without a call.
    pub instance_timeout_ms: i64,
    /// The topics it subscribes to.
    pub topics: Vec<String>,
    /// The pattern it subscribes with, if any.
    pub pattern: Option<String>,
    /// Partitions assigned by hand, `(topic, partition)`.
    pub assigned: Vec<(String, i32)>,
    /// Its member id in the group (empty when not a member).
    pub member_id: String,
    /// Its member epoch (0 when not a member).
    pub member_epoch: i32,
    /// The next offset of each partition it owns, `(topic, partition, offset)`.
    pub positions: Vec<(String, i32, i64)>,
    /// When it was created (ms since the epoch).
    pub created_at_ms: i64,
    /// When it was last called (ms since the epoch).
    pub last_used_ms: i64,
}
