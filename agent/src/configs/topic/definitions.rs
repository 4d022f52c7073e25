//! The table of every topic config this agent knows: Apache Kafka's name, type,
//! default, valid values and the broker config behind the default.

use crate::configs::ConfigType;

/// What values a config accepts beyond its type.
#[derive(Debug, Clone, Copy)]
pub(super) enum Rule {
    /// Any value of the type.
    Any,
    /// An integer no smaller than this.
    AtLeast(i64),
    /// An integer inside one of these inclusive ranges.
    Ranges(&'static [(i64, i64)]),
    /// A number inside this inclusive range.
    Between(f64, f64),
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// A list (possibly empty) of distinct items, each one of these strings.
    ListOf(&'static [&'static str]),
    /// Kafka's throttled-replica list: empty, `*`, or `partition:broker` pairs.
    ThrottledReplicas,
}

/// A topic config this agent knows.
#[derive(Debug)]
pub struct TopicConfigDef {
    /// Its name.
    pub name: &'static str,
    /// Its type.
    pub config_type: ConfigType,
    /// The value a topic without an override has.
    pub default: &'static str,
    pub(super) rule: Rule,
    /// The broker config that supplies the default (Kafka's synonym), if any.
    pub broker_synonym: Option<&'static str>,
    /// What it means.
    pub documentation: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";
pub(super) const CLEANUP_POLICY: &str = "cleanup.policy";
pub(super) const CLEANUP_DELETE: &str = "delete";
pub(super) const MIN_COMPACTION_LAG: &str = "min.compaction.lag.ms";
pub(super) const MAX_COMPACTION_LAG: &str = "max.compaction.lag.ms";

const fn def(
    name: &'static str,
    config_type: ConfigType,
    default: &'static str,
    rule: Rule,
    broker_synonym: Option<&'static str>,
    documentation: &'static str,
) -> TopicConfigDef {
    TopicConfigDef {
        name,
        config_type,
        default,
        rule,
        broker_synonym,
        documentation,
    }
}

/// Every known topic config, by name.
pub(super) static DEFINITIONS: &[TopicConfigDef] = &[
    def(
        CLEANUP_POLICY,
        ConfigType::List,
        CLEANUP_DELETE,
        Rule::ListOf(&["compact", CLEANUP_DELETE]),
        Some("log.cleanup.policy"),
        "How old records go: `delete` drops them by retention time or size, `compact` keeps the latest record per key.",
    ),
    def(
        "compression.gzip.level",
        ConfigType::Int,
        "-1",
        Rule::Ranges(&[(-1, -1), (1, 9)]),
        Some("compression.gzip.level"),
        "The gzip level used when compression.type is gzip.",
    ),
    def(
        "compression.lz4.level",
        ConfigType::Int,
        "9",
        Rule::Ranges(&[(1, 17)]),
        Some("compression.lz4.level"),
        "The lz4 level used when compression.type is lz4.",
    ),
    def(
        "compression.type",
        ConfigType::String,
        "producer",
        Rule::OneOf(&["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"]),
        Some("compression.type"),
        "The codec of stored batches; `producer` keeps the producer's.",
    ),
    def(
        "compression.zstd.level",
        ConfigType::Int,
        "3",
        Rule::Ranges(&[(-131_072, 22)]),
        Some("compression.zstd.level"),
        "The zstd level used when compression.type is zstd.",
    ),
    def(
        "delete.retention.ms",
        ConfigType::Long,
        "86400000",
        Rule::AtLeast(0),
        Some("log.cleaner.delete.retention.ms"),
        "How long delete markers stay in a compacted topic.",
    ),
    def(
        "file.delete.delay.ms",
        ConfigType::Long,
        "60000",
        Rule::AtLeast(0),
        Some("log.segment.delete.delay.ms"),
        "How long a released segment waits before it is deleted.",
    ),
    def(
        "flush.messages",
        ConfigType::Long,
        LONG_MAX,
        Rule::AtLeast(1),
        Some("log.flush.interval.messages"),
        "Records accepted between forced flushes.",
    ),
    def(
        "flush.ms",
        ConfigType::Long,
        LONG_MAX,
        Rule::AtLeast(0),
        Some("log.flush.interval.ms"),
        "Time between forced flushes.",
    ),
    def(
        "follower.replication.throttled.replicas",
        ConfigType::List,
        "",
        Rule::ThrottledReplicas,
        None,
        "Replicas whose follower replication is throttled: `*` or partition:broker pairs.",
    ),
    def(
        "index.interval.bytes",
        ConfigType::Int,
        "4096",
        Rule::AtLeast(0),
        Some("log.index.interval.bytes"),
        "Bytes between offset index entries.",
    ),
    def(
        "leader.replication.throttled.replicas",
        ConfigType::List,
        "",
        Rule::ThrottledReplicas,
        None,
        "Replicas whose leader replication is throttled: `*` or partition:broker pairs.",
    ),
    def(
        MAX_COMPACTION_LAG,
        ConfigType::Long,
        LONG_MAX,
        Rule::AtLeast(1),
        Some("log.cleaner.max.compaction.lag.ms"),
        "The longest a record stays uncompacted.",
    ),
    def(
        "max.message.bytes",
        ConfigType::Int,
        "1048588",
        Rule::AtLeast(0),
        Some("message.max.bytes"),
        "The largest record batch the topic accepts.",
    ),
    def(
        "message.timestamp.after.max.ms",
        ConfigType::Long,
        "3600000",
        Rule::AtLeast(0),
        Some("log.message.timestamp.after.max.ms"),
        "How far in the future a CreateTime timestamp may lie.",
    ),
    def(
        "message.timestamp.before.max.ms",
        ConfigType::Long,
        LONG_MAX,
        Rule::AtLeast(0),
        Some("log.message.timestamp.before.max.ms"),
        "How far in the past a CreateTime timestamp may lie.",
    ),
    def(
        "message.timestamp.type",
        ConfigType::String,
        "CreateTime",
        Rule::OneOf(&["CreateTime", "LogAppendTime"]),
        Some("log.message.timestamp.type"),
        "Whether record timestamps are the producer's (CreateTime) or the broker's (LogAppendTime).",
    ),
    def(
        "min.cleanable.dirty.ratio",
        ConfigType::Double,
        "0.5",
        Rule::Between(0.0, 1.0),
        Some("log.cleaner.min.cleanable.ratio"),
        "The share of uncompacted log that triggers compaction.",
    ),
    def(
        MIN_COMPACTION_LAG,
        ConfigType::Long,
        "0",
        Rule::AtLeast(0),
        Some("log.cleaner.min.compaction.lag.ms"),
        "The shortest a record stays uncompacted.",
    ),
    def(
        "min.insync.replicas",
        ConfigType::Int,
        "1",
        Rule::AtLeast(1),
        Some("min.insync.replicas"),
        "Replicas that must acknowledge an acks=all write.",
    ),
    def(
        "preallocate",
        ConfigType::Boolean,
        "false",
        Rule::Any,
        Some("log.preallocate"),
        "Whether segment files are preallocated.",
    ),
    def(
        "retention.bytes",
        ConfigType::Long,
        "-1",
        Rule::Any,
        Some("log.retention.bytes"),
        "The most bytes a partition keeps before old records are deleted; -1 is unlimited.",
    ),
    def(
        "retention.ms",
        ConfigType::Long,
        "604800000",
        Rule::AtLeast(-1),
        Some("log.retention.ms"),
        "How long records are kept before they are deleted; -1 is unlimited.",
    ),
    def(
        "segment.bytes",
        ConfigType::Int,
        "1073741824",
        Rule::AtLeast(1_048_576),
        Some("log.segment.bytes"),
        "The size at which a segment is rolled.",
    ),
    def(
        "segment.index.bytes",
        ConfigType::Int,
        "10485760",
        Rule::AtLeast(4),
        Some("log.index.size.max.bytes"),
        "The size of a segment's offset index.",
    ),
    def(
        "segment.jitter.ms",
        ConfigType::Long,
        "0",
        Rule::AtLeast(0),
        Some("log.roll.jitter.ms"),
        "Random jitter subtracted from segment.ms.",
    ),
    def(
        "segment.ms",
        ConfigType::Long,
        "604800000",
        Rule::AtLeast(1),
        Some("log.roll.ms"),
        "The age at which a segment is rolled.",
    ),
    def(
        "unclean.leader.election.enable",
        ConfigType::Boolean,
        "false",
        Rule::Any,
        Some("unclean.leader.election.enable"),
        "Whether an out-of-sync replica may become leader.",
    ),
];
