//! The broker configs `DescribeConfigs` reports for this agent: its identity and
//! settings under their Apache Kafka names, and the broker-level defaults behind
//! every topic config (the synonyms [`topic::describe`]
//! names). All are read-only: an agent's settings are fixed when it starts, so
//! `AlterConfigs` and `IncrementalAlterConfigs` refuse broker resources.

use std::collections::BTreeMap;

use super::{ConfigSource, ConfigType, DescribedConfig, Synonym, topic};
use crate::Broker;
use crate::maintenance::retention::RetentionSettings;

/// Kafka's `log.retention.ms` default (`log.retention.hours` 168).
const KAFKA_LOG_RETENTION_MS: i64 = 604_800_000;

/// The broker configs behind topic defaults (`log.retention.ms`,
/// `log.retention.bytes`) that `retention` sets to other than Kafka's
/// defaults, by name: what a topic without an override gets
/// ([`crate::BrokerSettings::static_log_configs`]).
pub fn static_log_configs(retention: &RetentionSettings) -> BTreeMap<&'static str, String> {
    let mut configs = BTreeMap::new();
    if retention.default_retention_ms != KAFKA_LOG_RETENTION_MS {
        configs.insert(
            "log.retention.ms",
            retention.default_retention_ms.to_string(),
        );
    }
    if retention.default_retention_bytes != -1 {
        configs.insert(
            "log.retention.bytes",
            retention.default_retention_bytes.to_string(),
        );
    }
    configs
}

/// A broker config: its value, and Kafka's default (the source is
/// `DEFAULT_CONFIG` when they agree, `STATIC_BROKER_CONFIG` otherwise).
struct Setting {
    name: &'static str,
    config_type: ConfigType,
    value: String,
    kafka_default: Option<&'static str>,
    documentation: &'static str,
}

fn settings(broker: &Broker) -> Vec<Setting> {
    let node_id = broker.node_id.to_string();
    vec![
        Setting {
            name: "advertised.listeners",
            config_type: ConfigType::List,
            value: format!(
                "PLAINTEXT://{}:{}",
                broker.advertised_host, broker.advertised_port
            ),
            kafka_default: None,
            documentation: "The address clients are told to connect to.",
        },
        Setting {
            name: "auto.create.topics.enable",
            config_type: ConfigType::Boolean,
            value: broker.settings.auto_create_topics.to_string(),
            kafka_default: Some("true"),
            documentation: "Whether Metadata requests create the unknown topics they name.",
        },
        Setting {
            name: "broker.id",
            config_type: ConfigType::Int,
            value: node_id.clone(),
            kafka_default: None,
            documentation: "This agent's node id, allocated when it registered.",
        },
        Setting {
            name: "default.replication.factor",
            config_type: ConfigType::Int,
            value: "1".into(),
            kafka_default: Some("1"),
            documentation: "The replication factor of auto-created topics (their data is replicated by object storage).",
        },
        Setting {
            name: "node.id",
            config_type: ConfigType::Int,
            value: node_id,
            kafka_default: None,
            documentation: "This agent's node id, allocated when it registered.",
        },
        Setting {
            name: "num.partitions",
            config_type: ConfigType::Int,
            value: broker.settings.default_partitions.to_string(),
            kafka_default: Some("1"),
            documentation: "Partitions of topics created without a count.",
        },
        Setting {
            name: "socket.request.max.bytes",
            config_type: ConfigType::Int,
            value: broker.settings.max_request_bytes.to_string(),
            kafka_default: Some("104857600"),
            documentation: "The largest request frame accepted.",
        },
    ]
}

/// Every broker config of this agent, ordered by name.
pub fn describe(broker: &Broker) -> Vec<DescribedConfig> {
    let own = settings(broker).into_iter().map(|setting| {
        let source = if setting.kafka_default == Some(setting.value.as_str()) {
            ConfigSource::DefaultConfig
        } else {
            ConfigSource::StaticBrokerConfig
        };
        (
            setting.name,
            setting.config_type,
            setting.value,
            source,
            setting.documentation,
        )
    });
    let topic_defaults = topic::definitions().iter().filter_map(|def| {
        def.broker_synonym.map(|name| {
            let (value, source) = match broker.settings.static_log_configs.get(name) {
                Some(value) => (value.clone(), ConfigSource::StaticBrokerConfig),
                None => (def.default.to_owned(), ConfigSource::DefaultConfig),
            };
            (name, def.config_type, value, source, def.documentation)
        })
    });
    let mut described: Vec<DescribedConfig> = own
        .chain(topic_defaults)
        .map(
            |(name, config_type, value, source, documentation)| DescribedConfig {
                name,
                synonyms: vec![Synonym {
                    name,
                    value: value.clone(),
                    source,
                }],
                value,
                source,
                read_only: true,
                config_type,
                documentation,
            },
        )
        .collect();
    described.sort_by_key(|config| config.name);
    described.dedup_by_key(|config| config.name);
    described
}
