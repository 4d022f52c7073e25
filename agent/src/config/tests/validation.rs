//! Validation across fields: each broken rule refused naming its setting,
//! the bounds of each rule allowed, and the layer of each offending value.

use super::*;

#[test]
fn validation_refuses_each_broken_rule_naming_its_setting() {
    let cases: Vec<(&str, Change)> = vec![
        ("version", Box::new(|s| s.version = 2)),
        ("data-dir", Box::new(|s| s.data_dir = PathBuf::new())),
        ("wal-dir", Box::new(|s| s.wal_dir = Some(PathBuf::new()))),
        (
            "cache-dir",
            Box::new(|s| s.cache_dir = Some(PathBuf::new())),
        ),
        ("flush-interval-ms", Box::new(|s| s.flush_interval_ms = 0)),
        (
            "super-users",
            Box::new(|s| s.super_users = "User:admin;admin".into()),
        ),
        // Longer than the (default, 100 ms) interval it must stay under.
        ("flush-idle-us", Box::new(|s| s.flush_idle_us = 100_001)),
        (
            "heartbeat-interval-ms",
            Box::new(|s| s.heartbeat_interval_ms = 0),
        ),
        ("stats-interval-ms", Box::new(|s| s.stats_interval_ms = 0)),
        (
            "connections-max-idle-ms",
            Box::new(|s| s.connections_max_idle_ms = 0),
        ),
        (
            "offsets-retention-minutes",
            Box::new(|s| s.offsets_retention_minutes = 0),
        ),
        (
            "offsets-retention-check-interval-ms",
            Box::new(|s| s.offsets_retention_check_interval_ms = 0),
        ),
        (
            "producer-id-expiration-ms",
            Box::new(|s| s.producer_id_expiration_ms = 0),
        ),
        (
            "producer-id-expiration-check-interval-ms",
            Box::new(|s| s.producer_id_expiration_check_interval_ms = 0),
        ),
        (
            "max-inflight-uploads",
            Box::new(|s| s.max_inflight_uploads = 0),
        ),
        (
            "group-min-session-timeout-ms",
            Box::new(|s| s.group_min_session_timeout_ms = 0),
        ),
        // lease-timeout-ms > 2 × heartbeat-interval-ms
        (
            "lease-timeout-ms",
            Box::new(|s| s.heartbeat_interval_ms = 1000),
        ),
        ("lease-timeout-ms", Box::new(|s| s.lease_timeout_ms = 999)),
        // balance-interval-ms < lease-timeout-ms
        (
            "balance-interval-ms",
            Box::new(|s| s.balance_interval_ms = 2000),
        ),
        // queued-max-request-bytes ≥ socket-request-max-bytes
        (
            "queued-max-request-bytes",
            Box::new(|s| s.queued_max_request_bytes = s.socket_request_max_bytes - 1),
        ),
        // flush-bytes ≤ max-unflushed-bytes
        (
            "flush-bytes",
            Box::new(|s| s.flush_bytes = s.max_unflushed_bytes + 1),
        ),
        // wal-max-bytes ≥ socket-request-max-bytes
        (
            "wal-max-bytes",
            Box::new(|s| s.wal_max_bytes = s.socket_request_max_bytes as u64 - 1),
        ),
        // group-min-session-timeout-ms ≤ group-max-session-timeout-ms
        (
            "group-min-session-timeout-ms",
            Box::new(|s| s.group_max_session_timeout_ms = 5999),
        ),
        // 0 < group-consumer-heartbeat-interval-ms < group-consumer-session-timeout-ms
        (
            "group-consumer-heartbeat-interval-ms",
            Box::new(|s| s.group_consumer_heartbeat_interval_ms = 0),
        ),
        (
            "group-consumer-heartbeat-interval-ms",
            Box::new(|s| {
                s.group_consumer_heartbeat_interval_ms = s.group_consumer_session_timeout_ms
            }),
        ),
        ("num-partitions", Box::new(|s| s.num_partitions = 0)),
        ("num-partitions", Box::new(|s| s.num_partitions = -1)),
        ("num-partitions", Box::new(|s| s.num_partitions = 10_001)),
        (
            "segment-zstd-level",
            Box::new(|s| s.segment_zstd_level = *zstd::compression_level_range().end() + 1),
        ),
        (
            "segment-zstd-level",
            Box::new(|s| s.segment_zstd_level = *zstd::compression_level_range().start() - 1),
        ),
        (
            "metadata-url",
            Box::new(|s| s.metadata_url = Some("postgres://db".into())),
        ),
        (
            "metadata-url",
            Box::new(|s| s.metadata_url = Some("/var/meta.db".into())),
        ),
        (
            "metadata-url",
            Box::new(|s| s.metadata_url = Some("sqlite://".into())),
        ),
        (
            "storage-url",
            Box::new(|s| s.storage_url = Some("gs://bucket".into())),
        ),
        (
            "storage-url",
            Box::new(|s| s.storage_url = Some("/tmp/bucket".into())),
        ),
        (
            "storage-url",
            Box::new(|s| s.storage_url = Some("s3://".into())),
        ),
        (
            "storage-url",
            Box::new(|s| s.storage_url = Some("s3:///prefix".into())),
        ),
        (
            "storage-url",
            Box::new(|s| s.storage_url = Some("file://".into())),
        ),
        (
            "storage-url",
            Box::new(|s| s.storage_url = Some("memory://x".into())),
        ),
        (
            "kafka-listen",
            Box::new(|s| s.kafka_listen = "localhost".into()),
        ),
        (
            "kafka-listen",
            Box::new(|s| s.kafka_listen = ":9092".into()),
        ),
        (
            "kafka-listen",
            Box::new(|s| s.kafka_listen = "host:65536".into()),
        ),
        (
            "kafka-listen",
            Box::new(|s| s.kafka_listen = "::1:9092".into()),
        ),
        (
            "http-listen",
            Box::new(|s| s.http_listen = "localhost".into()),
        ),
        (
            "http-max-body-bytes",
            Box::new(|s| s.http_max_body_bytes = 0),
        ),
        (
            "advertised-address",
            Box::new(|s| s.advertised_address = Some("broker".into())),
        ),
        (
            "advertised-address",
            Box::new(|s| s.advertised_address = Some("broker:0".into())),
        ),
        (
            "advertised-address",
            Box::new(|s| s.advertised_address = Some("broker:http".into())),
        ),
    ];
    for (setting, change) in cases {
        assert_eq!(broken_by(change), [setting], "the rule on {setting}");
    }
}

#[test]
fn zero_sizes_are_refused() {
    assert_eq!(
        broken_by(|s| s.socket_request_max_bytes = 0),
        ["socket-request-max-bytes"]
    );
    assert_eq!(
        broken_by(|s| {
            s.flush_bytes = 0;
        }),
        ["flush-bytes"]
    );
    // max-unflushed-bytes = 0 also puts flush-bytes above it.
    assert_eq!(
        broken_by(|s| s.max_unflushed_bytes = 0),
        ["max-unflushed-bytes", "flush-bytes"]
    );
    // balance-interval-ms = 0 is below the lease, but still not an interval.
    assert_eq!(
        broken_by(|s| s.balance_interval_ms = 0),
        ["balance-interval-ms"]
    );
    // lease-timeout-ms = 0 breaks both lease rules.
    assert_eq!(
        broken_by(|s| s.lease_timeout_ms = 0),
        ["lease-timeout-ms", "balance-interval-ms"]
    );
}

#[test]
fn the_bounds_of_each_cross_field_rule_are_allowed() {
    let edges: Vec<Change> = vec![
        Box::new(|s| s.lease_timeout_ms = 2 * s.heartbeat_interval_ms + 1),
        Box::new(|s| s.balance_interval_ms = s.lease_timeout_ms - 1),
        Box::new(|s| s.queued_max_request_bytes = s.socket_request_max_bytes),
        Box::new(|s| s.flush_bytes = s.max_unflushed_bytes),
        Box::new(|s| s.flush_idle_us = s.flush_interval_ms * 1_000),
        Box::new(|s| s.wal_max_bytes = s.socket_request_max_bytes as u64),
        Box::new(|s| s.group_max_session_timeout_ms = s.group_min_session_timeout_ms),
        Box::new(|s| {
            s.group_consumer_heartbeat_interval_ms = s.group_consumer_session_timeout_ms - 1
        }),
        Box::new(|s| s.num_partitions = fjord_metadata::MAX_PARTITIONS_PER_TOPIC),
        Box::new(|s| s.segment_zstd_level = *zstd::compression_level_range().end()),
        Box::new(|s| s.segment_zstd_level = *zstd::compression_level_range().start()),
        // Zero where zero means "off" or "at once".
        Box::new(|s| {
            s.fetch_max_bytes = 0;
            s.flush_idle_us = 0;
            s.whole_object_read_bytes = 0;
            s.disk_cache_bytes = Some(0);
            s.shutdown_timeout_ms = 0;
            s.group_initial_rebalance_delay_ms = 0;
            s.hedge_put_after_ms = 0;
            s.hedge_put_per_mib_ms = 0;
            s.hedge_get_after_ms = 0;
        }),
        Box::new(|s| s.metadata_url = Some("memory://".into())),
        Box::new(|s| s.metadata_url = Some("fdb://".into())),
        Box::new(|s| s.metadata_url = Some("sqlite:///var/lib/fjord/meta.db".into())),
        Box::new(|s| s.storage_url = Some("memory://".into())),
        Box::new(|s| s.storage_url = Some("s3://bucket".into())),
        Box::new(|s| s.storage_url = Some("s3://bucket/some/prefix".into())),
        Box::new(|s| s.storage_url = Some("file:///var/lib/fjord/bucket".into())),
        Box::new(|s| s.kafka_listen = "0.0.0.0:0".into()),
        Box::new(|s| s.kafka_listen = "[::]:9092".into()),
        Box::new(|s| s.http_listen = "off".into()),
        Box::new(|s| s.http_listen = "0.0.0.0:0".into()),
        Box::new(|s| s.advertised_address = Some("broker-1.example.com:9092".into())),
        Box::new(|s| s.advertised_address = Some("[2001:db8::1]:9092".into())),
    ];
    for (index, change) in edges.into_iter().enumerate() {
        assert_eq!(broken_by(change), Vec::<&str>::new(), "edge case #{index}");
    }
}

#[test]
fn every_broken_rule_is_reported_with_the_layer_of_its_value() {
    let (_dir, path) = file("num-partitions = 0\n");
    let mut args = with_file(&path);
    args.flush_interval_ms = Some(0);
    let env = [("FJORD_LEASE_TIMEOUT_MS", "900")];
    let error = AgentSettings::load_from(&args, env).unwrap_err();
    let origins: Vec<_> = error
        .invalid_settings()
        .iter()
        .map(|problem| (problem.setting, problem.origin.clone()))
        .collect();
    assert_eq!(
        origins,
        [
            ("num-partitions", Some(Origin::File(path.clone()))),
            ("flush-interval-ms", Some(Origin::Flag)),
            ("lease-timeout-ms", Some(Origin::Env)),
        ]
    );
    let message = error.to_string();
    for expected in [
        "`num-partitions` in config file",
        "flag --flush-interval-ms: must be more than 0",
        "environment variable FJORD_LEASE_TIMEOUT_MS: 900 must be more than twice \
         heartbeat-interval-ms (500)",
    ] {
        assert!(message.contains(expected), "{expected:?} in {message}");
    }
}

#[test]
fn a_default_that_breaks_a_rule_with_a_given_value_is_named_as_the_default() {
    let env = [("FJORD_HEARTBEAT_INTERVAL_MS", "1500")];
    let error = AgentSettings::load_from(&AgentArgs::default(), env).unwrap_err();
    assert_eq!(error.invalid_settings().len(), 1, "{error}");
    assert_eq!(error.invalid_settings()[0].origin, Some(Origin::Default));
    assert!(
        error
            .to_string()
            .contains("the default of `lease-timeout-ms`: 2000 must be more than twice"),
        "{error}"
    );
}
