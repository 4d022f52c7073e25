#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;

use super::*;

/// `fjord agent`'s flags as the binary parses them.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    agent: AgentArgs,
}

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
    assert_eq!(settings.disk_cache_bytes, 1024 * 1024 * 1024);
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
fn the_defaults_give_each_components_defaults() {
    let settings = AgentSettings::default();
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
fn a_flag_that_is_not_a_number_is_refused_by_the_parser_naming_it() {
    let error = Cli::try_parse_from(["agent", "--flush-interval-ms", "soon"]).unwrap_err();
    assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
    assert!(error.to_string().contains("--flush-interval-ms"), "{error}");
}

#[test]
fn the_struct_itself_denies_unknown_fields() {
    let error = toml::from_str::<AgentSettings>("flush-interval-ms = 5\nbogus = 1\n").unwrap_err();
    assert!(error.to_string().contains("bogus"), "{error}");
    let partial: AgentSettings = toml::from_str("flush-interval-ms = 5\n").unwrap();
    assert_eq!(partial.flush_interval_ms, 5);
    assert_eq!(partial.lease_timeout_ms, 2000);
}

#[test]
fn paths_default_under_the_data_dir() {
    let settings = AgentSettings {
        data_dir: PathBuf::from("/var/lib/fjord"),
        ..AgentSettings::default()
    };
    assert_eq!(settings.data_dir(), Path::new("/var/lib/fjord"));
    assert_eq!(
        settings.metadata_url(),
        "sqlite:///var/lib/fjord/metadata.db"
    );
    assert_eq!(settings.storage_url(), "file:///var/lib/fjord/bucket");
    assert_eq!(settings.wal_dir(), PathBuf::from("/var/lib/fjord/wal"));
    assert_eq!(settings.cache_dir(), PathBuf::from("/var/lib/fjord/cache"));

    let settings = AgentSettings {
        metadata_url: Some("fdb://".into()),
        storage_url: Some("s3://b/p".into()),
        wal_dir: Some("/wal".into()),
        cache_dir: Some("/cache".into()),
        ..settings
    };
    assert_eq!(settings.metadata_url(), "fdb://");
    assert_eq!(settings.storage_url(), "s3://b/p");
    assert_eq!(settings.wal_dir(), PathBuf::from("/wal"));
    assert_eq!(settings.cache_dir(), PathBuf::from("/cache"));
}

#[test]
fn component_settings_carry_the_values_given() {
    let settings = AgentSettings {
        flush_interval_ms: 7,
        flush_bytes: 1000,
        max_unflushed_bytes: 2000,
        max_inflight_uploads: 2,
        segment_zstd_level: 3,
        whole_object_read_bytes: 0,
        lease_timeout_ms: 9000,
        balance_interval_ms: 300,
        shutdown_timeout_ms: 100,
        heartbeat_interval_ms: 40,
        group_initial_rebalance_delay_ms: 10,
        group_min_session_timeout_ms: 20,
        group_max_session_timeout_ms: 30,
        auto_create_topics: false,
        num_partitions: 3,
        socket_request_max_bytes: 4096,
        wal_max_bytes: 8192,
        hedge_put_after_ms: 100,
        hedge_put_per_mib_ms: 5,
        hedge_get_after_ms: 0,
        storage_latency_profile: LatencyModel::S3Standard,
        connections_max_idle_ms: 1000,
        offsets_retention_minutes: 2,
        offsets_retention_check_interval_ms: 3,
        producer_id_expiration_ms: 4,
        producer_id_expiration_check_interval_ms: 5,
        stats_interval_ms: 6,
        ..AgentSettings::default()
    };
    let log = settings.log_settings();
    assert_eq!(log.flush_interval, Duration::from_millis(7));
    assert_eq!(
        (
            log.flush_bytes,
            log.max_pending_bytes,
            log.max_inflight_uploads
        ),
        (1000, 2000, 2)
    );
    assert_eq!((log.compression_level, log.whole_object_read_bytes), (3, 0));
    assert_eq!(
        settings.cluster_settings(),
        crate::cluster::ClusterSettings {
            lease_timeout: Duration::from_millis(9000),
            balance_interval: Duration::from_millis(300),
            hand_off_timeout: Duration::from_millis(100),
        }
    );
    let groups = settings.group_settings();
    assert_eq!(
        (
            groups.initial_rebalance_delay,
            groups.min_session_timeout,
            groups.max_session_timeout
        ),
        (
            Duration::from_millis(10),
            Duration::from_millis(20),
            Duration::from_millis(30)
        )
    );
    assert_eq!(
        settings.broker_settings(),
        crate::BrokerSettings {
            auto_create_topics: false,
            default_partitions: 3,
            max_request_bytes: 4096,
        }
    );
    assert_eq!(settings.wal_options().max_bytes, 8192);
    let hedge = settings.hedge_options().unwrap();
    assert_eq!(
        (hedge.put_after, hedge.put_after_per_mib, hedge.get_after),
        (
            Duration::from_millis(100),
            Duration::from_millis(5),
            Duration::ZERO
        )
    );
    assert_eq!(settings.latency_profile().unwrap().name, "s3-standard");
    assert_eq!(settings.heartbeat_interval(), Duration::from_millis(40));
    assert_eq!(settings.shutdown_timeout(), Duration::from_millis(100));
    assert_eq!(settings.stats_interval(), Duration::from_millis(6));
    assert_eq!(settings.connections_max_idle(), Duration::from_secs(1));
    assert_eq!(settings.offsets_retention(), Duration::from_secs(120));
    assert_eq!(
        settings.offsets_retention_check_interval(),
        Duration::from_millis(3)
    );
    assert_eq!(settings.producer_id_expiration(), Duration::from_millis(4));
    assert_eq!(
        settings.producer_id_expiration_check_interval(),
        Duration::from_millis(5)
    );
    assert_eq!(settings.queued_max_request_bytes(), 524_288_000);
    assert_eq!(settings.fetch_max_bytes(), 57_671_680);
}
