//! The default settings: those of the flags they replace, valid, named in
//! the example file, and loaded back from TOML.

use super::*;

#[test]
fn defaults_are_those_of_the_flags_they_replace() {
    // The defaults `fjord agent` had as clap flags (main.rs before settings).
    let settings = AgentSettings::default();
    assert_eq!(settings.version, 1);
    assert_eq!(settings.data_dir, PathBuf::from("fjord-data"));
    assert_eq!(settings.metadata_url, None);
    assert_eq!(settings.storage_url, None);
    assert_eq!(settings.kafka_listen, "127.0.0.1:9092");
    assert_eq!(settings.advertised_address, None);
    assert_eq!(settings.http_listen, "127.0.0.1:8080");
    assert_eq!(settings.http_max_body_bytes, 33_554_432);
    assert!(settings.auto_create_topics);
    assert_eq!(settings.flush_interval_ms, 100);
    assert_eq!(settings.flush_bytes, 8 * 1024 * 1024);
    assert_eq!(settings.segment_zstd_level, 1);
    assert_eq!(settings.whole_object_read_bytes, 32 * 1024 * 1024);
    assert_eq!(settings.num_partitions, 1);
    assert_eq!(settings.wal_dir, None);
    assert_eq!(settings.wal_max_bytes, 512 * 1024 * 1024);
    assert_eq!(settings.max_unflushed_bytes, 64 * 1024 * 1024);
    assert_eq!(settings.socket_request_max_bytes, 104_857_600);
    assert_eq!(settings.cache_dir, None);
    assert_eq!(settings.disk_cache_bytes, None);
    assert_eq!(
        settings.disk_cache_bytes(),
        0,
        "the default bucket is a local directory"
    );
    let remote = AgentSettings {
        storage_url: Some("s3://bucket/prefix".into()),
        ..settings.clone()
    };
    assert_eq!(remote.disk_cache_bytes(), 1024 * 1024 * 1024);
    assert_eq!(settings.heartbeat_interval_ms, 500);
    assert_eq!(settings.lease_timeout_ms, 2000);
    assert_eq!(settings.balance_interval_ms, 250);
    assert_eq!(settings.shutdown_timeout_ms, 20_000);
    assert_eq!(settings.group_initial_rebalance_delay_ms, 3000);
    assert_eq!(settings.group_min_session_timeout_ms, 6000);
    assert_eq!(settings.group_max_session_timeout_ms, 1_800_000);
    assert_eq!(settings.storage_latency_profile, LatencyModel::None);
    assert_eq!(settings.hedge_put_after_ms, 0);
    assert_eq!(settings.hedge_put_per_mib_ms, 12);
    assert_eq!(settings.hedge_get_after_ms, 0);
    assert_eq!(settings.storage_latency_seed, 0);
    assert_eq!(settings.stats_file, None);
    assert_eq!(settings.stats_interval_ms, 1000);
    // New, with Apache Kafka's defaults (queued.max.request.bytes is -1,
    // unbounded, in Kafka; Fjord bounds it).
    assert_eq!(settings.connections_max_idle_ms, 600_000);
    assert_eq!(settings.queued_max_request_bytes, 524_288_000);
    assert_eq!(settings.fetch_max_bytes, 57_671_680);
    assert_eq!(settings.offsets_retention_minutes, 10_080);
    assert_eq!(settings.offsets_retention_check_interval_ms, 600_000);
    assert_eq!(settings.producer_id_expiration_ms, 86_400_000);
    assert_eq!(settings.producer_id_expiration_check_interval_ms, 600_000);
    assert_eq!(settings.max_inflight_uploads, 4);
    assert_eq!(settings.fault_object_store, "");
    assert_eq!(settings.fault_metadata, "");
    assert_eq!(settings.fault_seed, 0);
}

#[test]
fn the_defaults_are_valid_and_give_each_components_defaults() {
    let settings = AgentSettings::default();
    settings.validate().unwrap();
    assert_eq!(settings.log_settings(), crate::log::LogSettings::default());
    assert_eq!(
        settings.cluster_settings(),
        crate::cluster::ClusterSettings::default()
    );
    assert_eq!(
        settings.group_settings(),
        crate::groups::GroupSettings::default()
    );
    assert_eq!(settings.broker_settings(), crate::BrokerSettings::default());
    assert_eq!(
        settings.wal_options().max_bytes,
        fjord_storage::wal::WalOptions::default().max_bytes
    );
    assert_eq!(settings.hedge_options(), None);
    assert!(settings.latency_profile().is_none());
}

#[test]
fn nothing_given_loads_the_defaults() {
    let settings = AgentSettings::load_from(&AgentArgs::default(), NO_ENV).unwrap();
    assert_eq!(settings, AgentSettings::default());
}

#[test]
fn the_example_file_names_every_setting_at_its_default() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/example.toml");
    let settings = AgentSettings::load_from(&with_file(&example), NO_ENV).unwrap();
    assert_eq!(settings, AgentSettings::default());
    // Every setting that has a value by default is written out (the optional
    // ones are commented examples).
    let written: toml::Table = std::fs::read_to_string(&example).unwrap().parse().unwrap();
    let default: toml::Table = toml::from_str(&toml::to_string(&settings).unwrap()).unwrap();
    let written: BTreeSet<_> = written.keys().collect();
    let default: BTreeSet<_> = default.keys().collect();
    assert_eq!(written, default);
}

#[test]
fn settings_written_as_toml_load_back() {
    let settings = AgentSettings {
        metadata_url: Some("memory://".into()),
        storage_url: Some("s3://bucket/prefix".into()),
        advertised_address: Some("broker-1:9092".into()),
        stats_file: Some("/tmp/stats.json".into()),
        storage_latency_profile: LatencyModel::S3Express,
        segment_zstd_level: -5,
        num_partitions: 12,
        ..AgentSettings::default()
    };
    let (_dir, path) = file(&toml::to_string(&settings).unwrap());
    let loaded = AgentSettings::load_from(&with_file(&path), NO_ENV).unwrap();
    assert_eq!(loaded, settings);
}
