//! Unit tests of topic config validation and alteration.

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
    let described = describe(
        &configs(&[("retention.ms", "1000"), ("legacy.unknown", "x")]),
        &BTreeMap::new(),
    );
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

/// A broker config this agent sets (`--log-retention-ms`) is what a topic
/// without an override reports, as a static broker config, with Kafka's
/// default behind it; an override still wins.
#[test]
fn broker_settings_stand_behind_topics_without_an_override() {
    let retention = crate::maintenance::retention::RetentionSettings {
        default_retention_ms: 60_000,
        default_retention_bytes: 1_048_576,
        ..Default::default()
    };
    let static_broker = crate::configs::broker::static_log_configs(&retention);
    let described = describe(&configs(&[("retention.bytes", "5")]), &static_broker);
    let retention_ms = described.iter().find(|c| c.name == "retention.ms").unwrap();
    assert_eq!(
        (retention_ms.value.as_str(), retention_ms.source),
        ("60000", ConfigSource::StaticBrokerConfig)
    );
    assert_eq!(
        retention_ms.synonyms,
        vec![
            Synonym {
                name: "log.retention.ms",
                value: "60000".into(),
                source: ConfigSource::StaticBrokerConfig
            },
            Synonym {
                name: "log.retention.ms",
                value: "604800000".into(),
                source: ConfigSource::DefaultConfig
            },
        ]
    );
    let retention_bytes = described
        .iter()
        .find(|c| c.name == "retention.bytes")
        .unwrap();
    assert_eq!(
        (retention_bytes.value.as_str(), retention_bytes.source),
        ("5", ConfigSource::TopicConfig)
    );
    assert_eq!(retention_bytes.synonyms.len(), 3);
    // At Kafka's defaults nothing is static.
    let defaults = crate::configs::broker::static_log_configs(&Default::default());
    assert!(defaults.is_empty(), "{defaults:?}");
}
