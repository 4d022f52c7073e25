//! Topic configs: the one table of every topic config this agent knows (Apache
//! Kafka's names, types, defaults and valid values), the validation every
//! stored value passes, and the three ways a request changes a topic's set:
//!
//! - [`from_request`]: `CreateTopics`, and `AlterConfigs`, which replaces the
//!   whole set with the one in the request;
//! - [`apply_incremental`]: `IncrementalAlterConfigs` (`SET`, `DELETE`, and
//!   `APPEND`/`SUBTRACT` for list configs, which start from the default when the
//!   topic has no override, as Kafka's do);
//! - [`describe`]: every known config with its value and where it comes from.
//!
//! Parsing follows Kafka's `ConfigDef`: values are trimmed; booleans are `true`
//! or `false` in any case; enumerated strings match case-sensitively; lists are
//! comma-separated with blanks around commas ignored.
//!
//! Configs are stored and reported; which of them the agent acts on is the
//! business of the subsystems that read them (retention reads `retention.ms` and
//! `retention.bytes`, `DeleteRecords` reads `cleanup.policy`). A topic's stored
//! name this build does not know (written before configs were validated) is kept
//! as is and not described.

use std::collections::BTreeMap;

use super::{ConfigSource, ConfigType, DescribedConfig, Synonym};

/// What values a config accepts beyond its type.
#[derive(Debug, Clone, Copy)]
enum Rule {
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
    rule: Rule,
    /// The broker config that supplies the default (Kafka's synonym), if any.
    pub broker_synonym: Option<&'static str>,
    /// What it means.
    pub documentation: &'static str,
}

const LONG_MAX: &str = "9223372036854775807";
const CLEANUP_POLICY: &str = "cleanup.policy";
const CLEANUP_DELETE: &str = "delete";
const MIN_COMPACTION_LAG: &str = "min.compaction.lag.ms";
const MAX_COMPACTION_LAG: &str = "max.compaction.lag.ms";

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
static DEFINITIONS: &[TopicConfigDef] = &[
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

/// Why a topic config request is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No topic config has this name.
    #[error("unknown topic config name: {name}")]
    UnknownName {
        /// The name.
        name: String,
    },
    /// A config given without a value where one is required.
    #[error("null value not supported for topic configs: {name}")]
    NullValue {
        /// The name.
        name: String,
    },
    /// A value its config does not accept.
    #[error("invalid value {value:?} for configuration {name}: {reason}")]
    InvalidValue {
        /// The config.
        name: String,
        /// The value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `APPEND` or `SUBTRACT` on a config that is not a list.
    #[error("can't {operation} to key {name} because its type is not LIST")]
    NotAList {
        /// The config.
        name: String,
        /// `APPEND` or `SUBTRACT`.
        operation: &'static str,
    },
    /// Values that are each valid but not together.
    #[error("conflicting topic configs: {reason}")]
    Conflict {
        /// Which and why.
        reason: String,
    },
    /// An incremental operation code Kafka does not define.
    #[error("unknown alter config operation {code} for {name}")]
    UnknownOperation {
        /// The config.
        name: String,
        /// The code sent.
        code: i8,
    },
    /// `SET`, `APPEND` or `SUBTRACT` without a value.
    #[error("null value not supported for {operation} of {name}")]
    MissingOperand {
        /// The config.
        name: String,
        /// The operation.
        operation: &'static str,
    },
    /// One config named twice in one incremental request.
    #[error("duplicate config key {name}")]
    DuplicateName {
        /// The config.
        name: String,
    },
}

/// Every known topic config, ordered by name.
pub fn definitions() -> &'static [TopicConfigDef] {
    DEFINITIONS
}

/// The known topic config named `name`.
pub fn definition(name: &str) -> Option<&'static TopicConfigDef> {
    DEFINITIONS.iter().find(|def| def.name == name)
}

/// A list value's items (Kafka's `ConfigDef` list parsing: trimmed, split on
/// commas with blanks around them ignored; empty text is an empty list).
fn list_items(value: &str) -> Vec<&str> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Vec::new();
    }
    trimmed.split(',').map(str::trim).collect()
}

fn parse_integer(def: &TopicConfigDef, value: &str) -> Result<i64, String> {
    let trimmed = value.trim();
    match def.config_type {
        ConfigType::Int => trimmed
            .parse::<i32>()
            .map(i64::from)
            .map_err(|_| "not a 32-bit integer".to_owned()),
        _ => trimmed
            .parse::<i64>()
            .map_err(|_| "not a 64-bit integer".to_owned()),
    }
}

fn check_value(def: &TopicConfigDef, value: &str) -> Result<(), String> {
    let trimmed = value.trim();
    match def.config_type {
        ConfigType::Boolean => {
            if !(trimmed.eq_ignore_ascii_case("true") || trimmed.eq_ignore_ascii_case("false")) {
                return Err("expected true or false".into());
            }
        }
        ConfigType::Int | ConfigType::Long => {
            let number = parse_integer(def, value)?;
            match def.rule {
                Rule::AtLeast(min) if number < min => {
                    return Err(format!("must be at least {min}"));
                }
                Rule::Ranges(ranges)
                    if !ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&number)) =>
                {
                    let allowed: Vec<String> = ranges
                        .iter()
                        .map(|(lo, hi)| {
                            if lo == hi {
                                lo.to_string()
                            } else {
                                format!("{lo}..={hi}")
                            }
                        })
                        .collect();
                    return Err(format!("must be in {}", allowed.join(" or ")));
                }
                _ => {}
            }
        }
        ConfigType::Double => {
            let number = trimmed
                .parse::<f64>()
                .ok()
                .filter(|n| !n.is_nan())
                .ok_or_else(|| "not a number".to_owned())?;
            if let Rule::Between(min, max) = def.rule
                && !(min..=max).contains(&number)
            {
                return Err(format!("must be between {min} and {max}"));
            }
        }
        ConfigType::String => {
            if let Rule::OneOf(allowed) = def.rule
                && !allowed.contains(&trimmed)
            {
                return Err(format!("must be one of {}", allowed.join(", ")));
            }
        }
        ConfigType::List => {
            let items = list_items(value);
            match def.rule {
                Rule::ListOf(allowed) => {
                    for (index, item) in items.iter().enumerate() {
                        if !allowed.contains(item) {
                            return Err(format!("items must be among {}", allowed.join(", ")));
                        }
                        if items[..index].contains(item) {
                            return Err(format!("{item:?} is listed twice"));
                        }
                    }
                }
                Rule::ThrottledReplicas => {
                    let wildcard = items == ["*"];
                    let pairs = items.iter().all(|item| {
                        item.split_once(':').is_some_and(|(partition, broker)| {
                            partition.parse::<u32>().is_ok() && broker.parse::<u32>().is_ok()
                        })
                    });
                    if !(wildcard || pairs) {
                        return Err("must be empty, * or partition:broker pairs".into());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// Checks that `name` is a known topic config and `value` a valid value of it.
pub fn validate_value(name: &str, value: &str) -> Result<(), ConfigError> {
    let def = definition(name).ok_or_else(|| ConfigError::UnknownName { name: name.into() })?;
    check_value(def, value).map_err(|reason| ConfigError::InvalidValue {
        name: name.into(),
        value: value.into(),
        reason,
    })
}

/// The value `name` has under `overrides`: the override, else the default
/// (`None` for a name this build does not know).
pub fn effective<'a>(overrides: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    overrides
        .get(name)
        .map(String::as_str)
        .or_else(|| definition(name).map(|def| def.default))
}

/// Whether the topic's `cleanup.policy` includes `delete` (what Kafka requires
/// before records may be deleted by offset).
pub fn cleanup_policy_deletes(overrides: &BTreeMap<String, String>) -> bool {
    effective(overrides, CLEANUP_POLICY)
        .is_some_and(|value| list_items(value).contains(&CLEANUP_DELETE))
}

/// Checks the values of the known configs in `configs` and the rules between
/// them; names this build does not know are left alone.
fn validate_known(configs: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    for (name, value) in configs {
        if definition(name).is_some() {
            validate_value(name, value)?;
        }
    }
    let lag = |name: &str| {
        effective(configs, name)
            .and_then(|value| value.trim().parse::<i64>().ok())
            .unwrap_or(0)
    };
    let (min_lag, max_lag) = (lag(MIN_COMPACTION_LAG), lag(MAX_COMPACTION_LAG));
    if min_lag > max_lag {
        return Err(ConfigError::Conflict {
            reason: format!("{MIN_COMPACTION_LAG} ({min_lag}) > {MAX_COMPACTION_LAG} ({max_lag})"),
        });
    }
    Ok(())
}

/// Checks a whole set of topic overrides: every name known, every value valid,
/// and the values consistent with each other.
pub fn validate_set(configs: &BTreeMap<String, String>) -> Result<(), ConfigError> {
    if let Some(unknown) = configs.keys().find(|name| definition(name).is_none()) {
        return Err(ConfigError::UnknownName {
            name: unknown.clone(),
        });
    }
    validate_known(configs)
}

/// The override set a `CreateTopics` or `AlterConfigs` request asks for (the
/// latter replaces the topic's whole set with it). A config named twice takes
/// its last value; one without a value is refused, as Kafka refuses it.
pub fn from_request<'a>(
    entries: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut configs = BTreeMap::new();
    for (name, value) in entries {
        let value = value.ok_or_else(|| ConfigError::NullValue { name: name.into() })?;
        configs.insert(name.to_owned(), value.to_owned());
    }
    validate_set(&configs)?;
    Ok(configs)
}

/// One `IncrementalAlterConfigs` operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterOp {
    /// Override the value.
    Set(String),
    /// Remove the override (back to the default).
    Delete,
    /// Add the comma-separated items missing from a list config.
    Append(String),
    /// Remove the comma-separated items from a list config.
    Subtract(String),
}

impl AlterOp {
    /// The operation with wire code `code` (Kafka's `AlterConfigOp.OpType`:
    /// 0 set, 1 delete, 2 append, 3 subtract) on config `name`.
    pub fn from_wire(name: &str, code: i8, value: Option<&str>) -> Result<Self, ConfigError> {
        let operand = |operation: &'static str| {
            value
                .map(str::to_owned)
                .ok_or_else(|| ConfigError::MissingOperand {
                    name: name.into(),
                    operation,
                })
        };
        match code {
            0 => Ok(AlterOp::Set(operand("SET")?)),
            1 => Ok(AlterOp::Delete),
            2 => Ok(AlterOp::Append(operand("APPEND")?)),
            3 => Ok(AlterOp::Subtract(operand("SUBTRACT")?)),
            _ => Err(ConfigError::UnknownOperation {
                name: name.into(),
                code,
            }),
        }
    }
}

/// The override set after applying `ops` to `current`. `DELETE` of a name
/// without an override changes nothing (whatever the name); every other
/// operation needs a known name; `APPEND`/`SUBTRACT` start from the default
/// when there is no override. The result is validated as a whole.
pub fn apply_incremental(
    current: &BTreeMap<String, String>,
    ops: Vec<(String, AlterOp)>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    for (index, (name, _)) in ops.iter().enumerate() {
        if ops[..index].iter().any(|(earlier, _)| earlier == name) {
            return Err(ConfigError::DuplicateName { name: name.clone() });
        }
    }
    let mut next = current.clone();
    for (name, op) in ops {
        let (operation, items) = match op {
            AlterOp::Delete => {
                next.remove(&name);
                continue;
            }
            AlterOp::Set(value) => {
                validate_value(&name, &value)?;
                next.insert(name, value);
                continue;
            }
            AlterOp::Append(items) => ("APPEND", items),
            AlterOp::Subtract(items) => ("SUBTRACT", items),
        };
        let def =
            definition(&name).ok_or_else(|| ConfigError::UnknownName { name: name.clone() })?;
        if def.config_type != ConfigType::List {
            return Err(ConfigError::NotAList { name, operation });
        }
        let base = next.get(&name).map_or(def.default, String::as_str);
        let mut list: Vec<String> = list_items(base).into_iter().map(str::to_owned).collect();
        for item in items.split(',').map(str::trim) {
            if operation == "APPEND" {
                if !list.iter().any(|existing| existing == item) {
                    list.push(item.to_owned());
                }
            } else if let Some(position) = list.iter().position(|existing| existing == item) {
                list.remove(position);
            }
        }
        next.insert(name, list.join(","));
    }
    validate_known(&next)?;
    Ok(next)
}

/// Every known topic config under `overrides`, ordered by name: its value, its
/// source, and its synonyms (the override, then the broker config behind the
/// default, valued at that default).
pub fn describe(overrides: &BTreeMap<String, String>) -> Vec<DescribedConfig> {
    DEFINITIONS
        .iter()
        .map(|def| {
            let override_opt = overrides.get(def.name);
            let mut synonyms = Vec::new();
            if let Some(value) = override_opt {
                synonyms.push(Synonym {
                    name: def.name,
                    value: value.clone(),
                    source: ConfigSource::TopicConfig,
                });
            }
            if let Some(broker_name) = def.broker_synonym {
                synonyms.push(Synonym {
                    name: broker_name,
                    value: def.default.to_owned(),
                    source: ConfigSource::DefaultConfig,
                });
            }
            DescribedConfig {
                name: def.name,
                value: override_opt.map_or_else(|| def.default.to_owned(), String::clone),
                source: if override_opt.is_some() {
                    ConfigSource::TopicConfig
                } else {
                    ConfigSource::DefaultConfig
                },
                read_only: false,
                config_type: def.config_type,
                documentation: def.documentation,
                synonyms,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    #[test]
    fn the_table_is_sorted_unique_and_its_defaults_are_valid() {
        let names: Vec<&str> = definitions().iter().map(|def| def.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
        for def in definitions() {
            assert_eq!(
                validate_value(def.name, def.default),
                Ok(()),
                "{}",
                def.name
            );
        }
        assert_eq!(validate_set(&BTreeMap::new()), Ok(()));
    }

    #[test]
    fn values_are_checked_by_type_and_rule() {
        let valid = [
            ("retention.ms", "-1"),
            ("retention.ms", " 60000 "),
            ("retention.bytes", "-5"),
            ("segment.bytes", "1048576"),
            ("cleanup.policy", "compact,delete"),
            ("cleanup.policy", "compact , delete"),
            ("cleanup.policy", ""),
            ("compression.type", "zstd"),
            ("message.timestamp.type", "LogAppendTime"),
            ("min.insync.replicas", "2"),
            ("preallocate", "TRUE"),
            ("min.cleanable.dirty.ratio", "0.25"),
            ("compression.gzip.level", "-1"),
            ("compression.gzip.level", "9"),
            ("leader.replication.throttled.replicas", "*"),
            ("leader.replication.throttled.replicas", "0:1,1:2"),
            ("follower.replication.throttled.replicas", ""),
        ];
        for (name, value) in valid {
            assert_eq!(validate_value(name, value), Ok(()), "{name}={value:?}");
        }
        let invalid = [
            ("retention.ms", "-2"),
            ("retention.ms", "1h"),
            ("retention.ms", ""),
            ("segment.bytes", "1024"),
            ("segment.bytes", "4294967296"),
            ("cleanup.policy", "compact,archive"),
            ("cleanup.policy", "delete,delete"),
            ("cleanup.policy", "Delete"),
            ("compression.type", "ZSTD"),
            ("compression.type", "brotli"),
            ("message.timestamp.type", "createtime"),
            ("min.insync.replicas", "0"),
            ("preallocate", "yes"),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.cleanable.dirty.ratio", "NaN"),
            ("compression.gzip.level", "0"),
            ("compression.lz4.level", "18"),
            ("max.message.bytes", "-1"),
            ("leader.replication.throttled.replicas", "*,0:1"),
            ("leader.replication.throttled.replicas", "0-1"),
        ];
        for (name, value) in invalid {
            assert!(
                matches!(
                    validate_value(name, value),
                    Err(ConfigError::InvalidValue { .. })
                ),
                "{name}={value:?} accepted"
            );
        }
        assert_eq!(
            validate_value("retention.hours", "1"),
            Err(ConfigError::UnknownName {
                name: "retention.hours".into()
            })
        );
    }

    #[test]
    fn request_sets_need_known_names_values_and_consistency() {
        let set = from_request([
            ("retention.ms", Some("1000")),
            ("retention.ms", Some("2000")),
        ])
        .unwrap();
        assert_eq!(
            set,
            configs(&[("retention.ms", "2000")]),
            "the last value wins"
        );
        assert!(matches!(
            from_request([("retention.ms", None)]),
            Err(ConfigError::NullValue { .. })
        ));
        assert!(matches!(
            from_request([("no.such.config", Some("1"))]),
            Err(ConfigError::UnknownName { .. })
        ));
        assert!(matches!(
            from_request([
                ("min.compaction.lag.ms", Some("10")),
                ("max.compaction.lag.ms", Some("5"))
            ]),
            Err(ConfigError::Conflict { .. })
        ));
        assert!(matches!(
            validate_set(&configs(&[("retention.ms", "x")])),
            Err(ConfigError::InvalidValue { .. })
        ));
    }

    #[test]
    fn incremental_operations_follow_kafka() {
        let current = configs(&[("retention.ms", "1000"), ("legacy.unknown", "kept")]);
        let next = apply_incremental(
            &current,
            vec![
                ("retention.ms".into(), AlterOp::Delete),
                ("segment.ms".into(), AlterOp::Set("60000".into())),
                ("cleanup.policy".into(), AlterOp::Append("compact".into())),
            ],
        )
        .unwrap();
        assert_eq!(
            next,
            configs(&[
                ("cleanup.policy", "delete,compact"),
                ("legacy.unknown", "kept"),
                ("segment.ms", "60000"),
            ]),
            "APPEND starts from the default; unknown stored names stay"
        );
        let appended_again = apply_incremental(
            &next,
            vec![(
                "cleanup.policy".into(),
                AlterOp::Append("compact,delete".into()),
            )],
        )
        .unwrap();
        assert_eq!(
            appended_again["cleanup.policy"], "delete,compact",
            "no repeats"
        );
        let subtracted = apply_incremental(
            &next,
            vec![("cleanup.policy".into(), AlterOp::Subtract("delete".into()))],
        )
        .unwrap();
        assert_eq!(subtracted["cleanup.policy"], "compact");
        assert!(!cleanup_policy_deletes(&subtracted));
        assert!(cleanup_policy_deletes(&next));
        assert!(
            cleanup_policy_deletes(&BTreeMap::new()),
            "the default deletes"
        );
        let emptied = apply_incremental(
            &subtracted,
            vec![("cleanup.policy".into(), AlterOp::Subtract("compact".into()))],
        )
        .unwrap();
        assert_eq!(emptied["cleanup.policy"], "");
        // Deleting what is not there changes nothing, whatever the name.
        assert_eq!(
            apply_incremental(&current, vec![("no.such.config".into(), AlterOp::Delete)]).unwrap(),
            current
        );
        assert_eq!(
            apply_incremental(&current, vec![("legacy.unknown".into(), AlterOp::Delete)])
                .unwrap()
                .get("legacy.unknown"),
            None
        );

        let refused = [
            (
                vec![("retention.ms".into(), AlterOp::Append("5".into()))],
                "not a list",
            ),
            (
                vec![("no.such.config".into(), AlterOp::Set("1".into()))],
                "unknown",
            ),
            (
                vec![("retention.ms".into(), AlterOp::Set("later".into()))],
                "invalid",
            ),
            (
                vec![("cleanup.policy".into(), AlterOp::Append("archive".into()))],
                "invalid item",
            ),
            (
                vec![
                    ("retention.ms".into(), AlterOp::Set("5".into())),
                    ("retention.ms".into(), AlterOp::Delete),
                ],
                "duplicate",
            ),
            (
                vec![
                    ("min.compaction.lag.ms".into(), AlterOp::Set("10".into())),
                    ("max.compaction.lag.ms".into(), AlterOp::Set("5".into())),
                ],
                "conflict",
            ),
        ];
        for (ops, what) in refused {
            let error = apply_incremental(&current, ops).unwrap_err();
            let expected = match what {
                "not a list" => matches!(error, ConfigError::NotAList { .. }),
                "unknown" => matches!(error, ConfigError::UnknownName { .. }),
                "duplicate" => matches!(error, ConfigError::DuplicateName { .. }),
                "conflict" => matches!(error, ConfigError::Conflict { .. }),
                _ => matches!(error, ConfigError::InvalidValue { .. }),
            };
            assert!(expected, "{what}: {error}");
        }
    }

    #[test]
    fn wire_operations_decode_or_are_refused() {
        assert_eq!(
            AlterOp::from_wire("a", 0, Some("1")),
            Ok(AlterOp::Set("1".into()))
        );
        assert_eq!(AlterOp::from_wire("a", 1, None), Ok(AlterOp::Delete));
        assert_eq!(
            AlterOp::from_wire("a", 2, Some("x")),
            Ok(AlterOp::Append("x".into()))
        );
        assert_eq!(
            AlterOp::from_wire("a", 3, Some("x")),
            Ok(AlterOp::Subtract("x".into()))
        );
        assert!(matches!(
            AlterOp::from_wire("a", 0, None),
            Err(ConfigError::MissingOperand { .. })
        ));
        assert!(matches!(
            AlterOp::from_wire("a", 4, Some("x")),
            Err(ConfigError::UnknownOperation { .. })
        ));
        assert!(matches!(
            AlterOp::from_wire("a", -1, None),
            Err(ConfigError::UnknownOperation { .. })
        ));
    }

    #[test]
    fn descriptions_cover_every_config_with_sources_and_synonyms() {
        let described = describe(&configs(&[
            ("retention.ms", "1000"),
            ("legacy.unknown", "x"),
        ]));
        assert_eq!(described.len(), definitions().len());
        let retention = described.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!(retention.value, "1000");
        assert_eq!(retention.source, ConfigSource::TopicConfig);
        assert_eq!(
            retention.synonyms,
            vec![
                Synonym {
                    name: "retention.ms",
                    value: "1000".into(),
                    source: ConfigSource::TopicConfig
                },
                Synonym {
                    name: "log.retention.ms",
                    value: "604800000".into(),
                    source: ConfigSource::DefaultConfig
                },
            ]
        );
        let cleanup = described
            .iter()
            .find(|c| c.name == "cleanup.policy")
            .unwrap();
        assert_eq!(
            (cleanup.value.as_str(), cleanup.source),
            ("delete", ConfigSource::DefaultConfig)
        );
        assert_eq!(cleanup.config_type, ConfigType::List);
        assert!(
            described
                .iter()
                .all(|c| !c.read_only && !c.documentation.is_empty())
        );
    }
}
