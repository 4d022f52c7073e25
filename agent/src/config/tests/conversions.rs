//! What the settings give: paths under the data directory, and the settings
//! each component is built with.

use super::*;

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
        flush_idle_us: 8,
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
        group_consumer_session_timeout_ms: 40,
        group_consumer_heartbeat_interval_ms: 4,
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
    settings.validate().unwrap();
    let log = settings.log_settings();
    assert_eq!(log.flush_interval, Duration::from_millis(7));
    assert_eq!(log.flush_idle, Duration::from_micros(8));
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
            connections_max_idle: Duration::from_secs(1),
            ..crate::BrokerSettings::default()
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

#[test]
fn authorizer_flags_reach_the_broker_settings() {
    use crate::security::authorizer::{AuthorizerKind, AuthorizerSettings};
    let given = flags(&[
        "--authorizer",
        "acl",
        "--super-users",
        "User:admin; User:ops",
        "--allow-everyone-if-no-acl-found",
    ]);
    let settings = AgentSettings::load_from(&given, NO_ENV).unwrap();
    assert_eq!(
        settings.broker_settings().authorizer,
        AuthorizerSettings {
            kind: AuthorizerKind::Acl,
            super_users: ["User:admin".to_owned(), "User:ops".to_owned()].into(),
            allow_everyone_if_no_acl_found: true,
        }
    );
    // The default: no authorizer.
    let defaults = AgentSettings::load_from(&AgentArgs::default(), NO_ENV).unwrap();
    assert_eq!(
        defaults.broker_settings().authorizer.kind,
        AuthorizerKind::None
    );
    let refused = AgentSettings::load_from(&flags(&["--super-users", "admin"]), NO_ENV);
    assert!(refused.unwrap_err().to_string().contains("super-users"));
}
