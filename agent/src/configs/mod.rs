//! Kafka configs as this agent knows them, under Apache Kafka's names:
//!
//! | module | owns |
//! |---|---|
//! | [`topic`] | every topic config: type, default, validation, and how `CreateTopics`, `AlterConfigs` and `IncrementalAlterConfigs` turn a request into the stored set |
//! | [`broker`] | the broker configs `DescribeConfigs` reports for this agent (all read-only: an agent's settings are fixed at start) |
//!
//! Topics store only their overrides (`TopicMeta::configs`); every other value
//! is the default from [`topic`]. Nothing outside this module spells a config
//! name, and every value that reaches metadata has passed [`topic::validate_set`].
//!
//! ```
//! use std::collections::BTreeMap;
//! use fjord_agent::configs::topic::{self, AlterOp};
//!
//! let stored = BTreeMap::from([("retention.ms".to_string(), "60000".to_string())]);
//! let altered = topic::apply_incremental(
//!     &stored,
//!     vec![("cleanup.policy".into(), AlterOp::Append("compact".into()))],
//! )
//! .unwrap();
//! assert_eq!(altered["cleanup.policy"], "delete,compact");
//! assert!(topic::validate_set(&BTreeMap::from([("retention.ms".into(), "soon".into())])).is_err());
//! ```

pub mod broker;
pub mod topic;

/// Kafka's config value types, as `DescribeConfigs` (v3+) reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    /// `true` or `false` (any case).
    Boolean,
    /// Free text, or one of a fixed set.
    String,
    /// A 32-bit integer.
    Int,
    /// A 64-bit integer.
    Long,
    /// A floating-point number.
    Double,
    /// A comma-separated list.
    List,
}

impl ConfigType {
    /// The wire code (Kafka's `ConfigType`).
    pub fn code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
        }
    }
}

/// Where a config's value comes from, as `DescribeConfigs` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    TopicConfig,
    /// Set in the agent's own settings (its command line or environment).
    StaticBrokerConfig,
    /// Nobody set it: the default.
    DefaultConfig,
}

impl ConfigSource {
    /// The wire code (Kafka's `DescribeConfigsSource`).
    pub fn code(self) -> i8 {
        match self {
            ConfigSource::TopicConfig => 1,
            ConfigSource::StaticBrokerConfig => 4,
            ConfigSource::DefaultConfig => 5,
        }
    }
}

/// One config as `DescribeConfigs` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConfig {
    /// Its name.
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it can be altered.
    pub read_only: bool,
    /// Its type.
    pub config_type: ConfigType,
    /// What it means.
    pub documentation: &'static str,
    /// The values that stand behind it, most specific first (Kafka's synonyms:
    /// the topic override, then the broker setting it falls back to).
    pub synonyms: Vec<Synonym>,
}

/// A synonym of a described config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Synonym {
    /// Its name (a topic config's own name, or the broker config behind it).
    pub name: &'static str,
    /// Its value.
    pub value: String,
    /// Where the value comes from.
    pub source: ConfigSource,
}
