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

mod definitions;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

pub use definitions::TopicConfigDef;
use definitions::{
    CLEANUP_DELETE, CLEANUP_POLICY, DEFINITIONS, MAX_COMPACTION_LAG, MIN_COMPACTION_LAG, Rule,
};

use super::{ConfigSource, ConfigType, DescribedConfig, Synonym};

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

/// Whether the topic's `cleanup.policy` includes `compact` (log compaction).
pub fn cleanup_policy_compacts(overrides: &BTreeMap<String, String>) -> bool {
    effective(overrides, CLEANUP_POLICY).is_some_and(|value| list_items(value).contains(&"compact"))
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
/// default: as this agent sets it in `static_broker`, if it does, then at
/// Kafka's default), as Kafka orders them.
pub fn describe(
    overrides: &BTreeMap<String, String>,
    static_broker: &BTreeMap<&'static str, String>,
) -> Vec<DescribedConfig> {
    DEFINITIONS
        .iter()
        .map(|def| {
            let override_opt = overrides.get(def.name);
            let broker_value = def
                .broker_synonym
                .and_then(|name| static_broker.get(name).map(|value| (name, value)));
            let mut synonyms = Vec::new();
            if let Some(value) = override_opt {
                synonyms.push(Synonym {
                    name: def.name,
                    value: value.clone(),
                    source: ConfigSource::TopicConfig,
                });
            }
            if let Some((name, value)) = broker_value {
                synonyms.push(Synonym {
                    name,
                    value: value.clone(),
                    source: ConfigSource::StaticBrokerConfig,
                });
            }
            if let Some(broker_name) = def.broker_synonym {
                synonyms.push(Synonym {
                    name: broker_name,
                    value: def.default.to_owned(),
                    source: ConfigSource::DefaultConfig,
                });
            }
            let (value, source) = match (override_opt, broker_value) {
                (Some(value), _) => (value.clone(), ConfigSource::TopicConfig),
                (None, Some((_, value))) => (value.clone(), ConfigSource::StaticBrokerConfig),
                (None, None) => (def.default.to_owned(), ConfigSource::DefaultConfig),
            };
            DescribedConfig {
                name: def.name,
                value,
                source,
                read_only: false,
                config_type: def.config_type,
                documentation: def.documentation,
                synonyms,
            }
        })
        .collect()
}
