#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::*;

const NO_ENV: [(&str, &str); 0] = [];

/// `fjord agent`'s flags as the binary parses them.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    agent: AgentArgs,
}

fn flags(argv: &[&str]) -> AgentArgs {
    Cli::try_parse_from(std::iter::once("agent").chain(argv.iter().copied()))
        .unwrap()
        .agent
}

fn with_file(path: &Path) -> AgentArgs {
    AgentArgs {
        config: Some(path.to_owned()),
        ..AgentArgs::default()
    }
}

/// A config file with `text` in a fresh directory (kept alive by the guard).
fn file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fjord.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// A change to the default settings.
type Change = Box<dyn FnOnce(&mut AgentSettings)>;

/// The settings that `change` breaks, as `validate` reports them.
fn broken_by(change: impl FnOnce(&mut AgentSettings)) -> Vec<&'static str> {
    let mut settings = AgentSettings::default();
    change(&mut settings);
    match settings.validate() {
        Ok(()) => Vec::new(),
        Err(error) => error
            .invalid_settings()
            .iter()
            .map(|problem| problem.setting)
            .collect(),
    }
}

// -- defaults --

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

// -- layers --

#[test]
fn a_flag_beats_the_environment_which_beats_the_file_which_beats_the_default() {
    let (_dir, path) = file(
        "num-partitions = 5\nflush-interval-ms = 20\nlease-timeout-ms = 3000\n\
         storage-url = \"memory://\"\n",
    );
    let mut args = flags(&["--num-partitions", "2"]);
    args.config = Some(path);
    let env = [
        ("FJORD_NUM_PARTITIONS", "3"),
        ("FJORD_FLUSH_INTERVAL_MS", "30"),
    ];
    let settings = AgentSettings::load_from(&args, env).unwrap();
    assert_eq!(settings.num_partitions, 2, "the flag");
    assert_eq!(settings.flush_interval_ms, 30, "the environment");
    assert_eq!(settings.lease_timeout_ms, 3000, "the file");
    assert_eq!(
        settings.storage_url.as_deref(),
        Some("memory://"),
        "the file"
    );
    assert_eq!(settings.balance_interval_ms, 250, "the default");
}

#[test]
fn fjord_config_names_the_file_and_the_flag_beats_it() {
    let (_dir_a, by_env) = file("num-partitions = 7\n");
    let (_dir_b, by_flag) = file("num-partitions = 8\n");
    let env = [("FJORD_CONFIG", by_env.to_str().unwrap())];
    let settings = AgentSettings::load_from(&AgentArgs::default(), env).unwrap();
    assert_eq!(settings.num_partitions, 7);
    let settings = AgentSettings::load_from(&with_file(&by_flag), env).unwrap();
    assert_eq!(settings.num_partitions, 8);
}

#[test]
fn every_kind_of_value_is_read_from_the_environment() {
    let env = [
        ("FJORD_AUTO_CREATE_TOPICS", "false"),
        ("FJORD_STORAGE_LATENCY_PROFILE", "s3-standard"),
        ("FJORD_SEGMENT_ZSTD_LEVEL", "-7"),
        ("FJORD_KAFKA_LISTEN", "[::1]:9093"),
        ("FJORD_STATS_FILE", "/tmp/stats.json"),
        // Strings that look like numbers stay strings.
        ("FJORD_DATA_DIR", "2026"),
        ("FJORD_FAULT_OBJECT_STORE", "put:transient:1"),
        ("FJORD_FAULT_SEED", "18446744073709551615"),
    ];
    let settings = AgentSettings::load_from(&AgentArgs::default(), env).unwrap();
    assert!(!settings.auto_create_topics);
    assert_eq!(settings.storage_latency_profile, LatencyModel::S3Standard);
    assert_eq!(settings.segment_zstd_level, -7);
    assert_eq!(settings.kafka_listen, "[::1]:9093");
    assert_eq!(settings.stats_file, Some(PathBuf::from("/tmp/stats.json")));
    assert_eq!(settings.data_dir, PathBuf::from("2026"));
    assert_eq!(settings.fault_object_store, "put:transient:1");
    assert_eq!(settings.fault_seed, u64::MAX);
}

#[test]
fn every_kind_of_value_is_read_from_flags() {
    let args = flags(&[
        "--data-dir",
        "/var/lib/fjord",
        "--auto-create-topics",
        "false",
        "--storage-latency-profile",
        "s3-express",
        "--segment-zstd-level",
        "-3",
        "--flush-bytes",
        "1024",
        "--fault-seed",
        "9",
    ]);
    let settings = AgentSettings::load_from(&args, NO_ENV).unwrap();
    assert_eq!(settings.data_dir, PathBuf::from("/var/lib/fjord"));
    assert!(!settings.auto_create_topics);
    assert_eq!(settings.storage_latency_profile, LatencyModel::S3Express);
    assert_eq!(settings.segment_zstd_level, -3);
    assert_eq!(settings.flush_bytes, 1024);
    assert_eq!(settings.fault_seed, 9);
}

#[test]
fn load_reads_the_process_environment_under_the_flags() {
    // The process environment is whatever the test runner has; the flag wins
    // over any of it.
    let settings = AgentSettings::load(&flags(&["--num-partitions", "9"])).unwrap();
    assert_eq!(settings.num_partitions, 9);
}

#[cfg(unix)]
#[test]
fn a_path_flag_that_is_not_utf8_is_refused_as_a_flag() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt;

    let argv = [
        OsString::from("agent"),
        OsString::from("--data-dir"),
        OsString::from_vec(vec![b'd', 0xff]),
    ];
    let args = Cli::try_parse_from(argv).unwrap().agent;
    let error = AgentSettings::load_from(&args, NO_ENV).unwrap_err();
    assert!(
        matches!(
            &error,
            ConfigError::BadValue {
                origin: Some(Origin::Flag),
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_flag_that_is_not_a_number_is_refused_by_the_parser_naming_it() {
    let error = Cli::try_parse_from(["agent", "--flush-interval-ms", "soon"]).unwrap_err();
    assert_eq!(error.kind(), clap::error::ErrorKind::ValueValidation);
    assert!(error.to_string().contains("--flush-interval-ms"), "{error}");
}

#[test]
fn variables_that_name_no_setting_are_ignored_and_listed() {
    let env = [
        ("FJORD_FDB_CLUSTER_FILE", "/etc/fdb.cluster"),
        ("FJORD_FLUSH_INTERVL_MS", "5"),
        ("FJORD_VERSION", "2"),
        ("FJORD_CONFIG_X", "1"),
        ("PATH", "/bin"),
    ];
    let settings = AgentSettings::load_from(&AgentArgs::default(), env).unwrap();
    assert_eq!(settings, AgentSettings::default());
    let names = env.iter().map(|(name, _)| *name).chain(["FJORD_CONFIG"]);
    assert_eq!(
        unrecognized_env_vars(names),
        [
            "FJORD_FDB_CLUSTER_FILE",
            "FJORD_FLUSH_INTERVL_MS",
            "FJORD_VERSION",
            "FJORD_CONFIG_X"
        ]
    );
}

#[test]
fn every_setting_but_the_version_has_a_flag_whose_help_names_its_variable_and_default() {
    let defaults = match figment::value::Value::serialize(AgentSettings::default()).unwrap() {
        figment::value::Value::Dict(_, dict) => dict,
        other => panic!("not a dictionary: {other:?}"),
    };
    let command = Cli::command();
    let mut flagged = BTreeSet::new();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        assert!(
            help.contains(&format!("[env: {}]", env_var_name(long))),
            "--{long}: {help}"
        );
        if long == "config" {
            continue;
        }
        flagged.insert(long.to_owned());
        let default = match &defaults[long] {
            figment::value::Value::String(_, text) if text.is_empty() => "none".to_owned(),
            figment::value::Value::String(_, text) => text.clone(),
            figment::value::Value::Num(_, number) => number
                .to_i128()
                .or_else(|| number.to_u128().and_then(|n| i128::try_from(n).ok()))
                .unwrap()
                .to_string(),
            figment::value::Value::Bool(_, b) => b.to_string(),
            // Optional settings describe their default in words.
            figment::value::Value::Empty(..) => String::new(),
            other => panic!("--{long}: unexpected default {other:?}"),
        };
        assert!(
            help.contains(&format!("[default: {default}")),
            "--{long} should say its default is {default:?}: {help}"
        );
    }
    let settings: BTreeSet<String> = defaults
        .keys()
        .filter(|k| *k != "version")
        .cloned()
        .collect();
    assert_eq!(flagged, settings);
}

// -- refusals while loading --

#[test]
fn an_unknown_setting_in_the_file_is_refused_naming_it_and_the_file() {
    let (_dir, path) = file("no-such-setting = 1\nflush-interval-ms = 5\nflush_bytes = 2\n");
    let error = AgentSettings::load_from(&with_file(&path), NO_ENV).unwrap_err();
    let ConfigError::UnknownSettings { settings, origin } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(settings, &["flush_bytes", "no-such-setting"]);
    assert_eq!(origin, &Origin::File(path.clone()));
    let message = error.to_string();
    assert!(message.contains("unknown setting"), "{message}");
    assert!(message.contains("`no-such-setting`"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
}

#[test]
fn a_table_in_the_file_is_an_unknown_setting() {
    let (_dir, path) = file("[kafka]\nlisten = \"0.0.0.0:9092\"\n");
    let error = AgentSettings::load_from(&with_file(&path), NO_ENV).unwrap_err();
    assert!(
        matches!(&error, ConfigError::UnknownSettings { settings, .. } if settings == &["kafka"]),
        "{error:?}"
    );
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
fn a_wrong_type_in_the_file_is_refused_naming_the_setting_and_the_file() {
    let (_dir, path) = file("flush-interval-ms = \"fast\"\n");
    let error = AgentSettings::load_from(&with_file(&path), NO_ENV).unwrap_err();
    let ConfigError::BadValue {
        setting, origin, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(setting.as_deref(), Some("flush-interval-ms"));
    assert_eq!(origin, &Some(Origin::File(path.clone())));
    let message = error.to_string();
    assert!(
        message.contains("`flush-interval-ms` in config file"),
        "{message}"
    );
    assert!(message.contains("fast"), "{message}");
}

#[test]
fn a_wrong_type_in_the_environment_is_refused_naming_the_variable() {
    let env = [("FJORD_AUTO_CREATE_TOPICS", "sometimes")];
    let error = AgentSettings::load_from(&AgentArgs::default(), env).unwrap_err();
    let ConfigError::BadValue {
        setting, origin, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(setting.as_deref(), Some("auto-create-topics"));
    assert_eq!(origin, &Some(Origin::Env));
    assert!(
        error
            .to_string()
            .starts_with("environment variable FJORD_AUTO_CREATE_TOPICS: "),
        "{error}"
    );
}

#[test]
fn a_negative_or_too_large_number_is_refused() {
    let env = [("FJORD_HEARTBEAT_INTERVAL_MS", "-1")];
    let error = AgentSettings::load_from(&AgentArgs::default(), env).unwrap_err();
    assert!(
        matches!(&error, ConfigError::BadValue { setting: Some(s), .. } if s == "heartbeat-interval-ms"),
        "{error:?}"
    );
    let (_dir, path) = file("num-partitions = 3000000000\n");
    let error = AgentSettings::load_from(&with_file(&path), NO_ENV).unwrap_err();
    assert!(
        matches!(&error, ConfigError::BadValue { setting: Some(s), .. } if s == "num-partitions"),
        "{error:?}"
    );
}

#[test]
fn an_unknown_latency_model_is_refused() {
    let env = [("FJORD_STORAGE_LATENCY_PROFILE", "s3-glacier")];
    let error = AgentSettings::load_from(&AgentArgs::default(), env).unwrap_err();
    assert_eq!(
        error.to_string(),
        "environment variable FJORD_STORAGE_LATENCY_PROFILE: unknown value `s3-glacier`, \
         expected one of `none`, `s3-standard`, `s3-express`"
    );
}

#[test]
fn a_file_of_another_version_is_refused_before_its_settings_are_read() {
    let (_dir, path) = file("version = 2\nsome-new-setting = true\n");
    let error = AgentSettings::load_from(&with_file(&path), NO_ENV).unwrap_err();
    let ConfigError::UnsupportedVersion {
        found, supported, ..
    } = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!((found.as_str(), *supported), ("2", 1));
    assert!(
        error.to_string().contains("this build reads version 1"),
        "{error}"
    );

    let (_dir, path) = file("version = \"1\"\n");
    let error = AgentSettings::load_from(&with_file(&path), NO_ENV).unwrap_err();
    assert!(
        matches!(&error, ConfigError::BadValue { setting: Some(s), .. } if s == "version"),
        "{error:?}"
    );

    let (_dir, path) = file("version = 1\nnum-partitions = 4\n");
    let settings = AgentSettings::load_from(&with_file(&path), NO_ENV).unwrap();
    assert_eq!((settings.version, settings.num_partitions), (1, 4));
}

#[test]
fn a_missing_or_malformed_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent.toml");
    let error = AgentSettings::load_from(&with_file(&missing), NO_ENV).unwrap_err();
    assert!(
        matches!(&error, ConfigError::ReadFile { path, .. } if path == &missing),
        "{error:?}"
    );
    let (_dir, path) = file("flush-interval-ms = \n");
    let error = AgentSettings::load_from(&with_file(&path), NO_ENV).unwrap_err();
    assert!(
        matches!(&error, ConfigError::ParseFile { path: p, .. } if p == &path),
        "{error:?}"
    );
}

// -- validation --

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
        Box::new(|s| s.wal_max_bytes = s.socket_request_max_bytes as u64),
        Box::new(|s| s.group_max_session_timeout_ms = s.group_min_session_timeout_ms),
        Box::new(|s| s.num_partitions = fjord_metadata::MAX_PARTITIONS_PER_TOPIC),
        Box::new(|s| s.segment_zstd_level = *zstd::compression_level_range().end()),
        Box::new(|s| s.segment_zstd_level = *zstd::compression_level_range().start()),
        // Zero where zero means "off" or "at once".
        Box::new(|s| {
            s.fetch_max_bytes = 0;
            s.whole_object_read_bytes = 0;
            s.disk_cache_bytes = 0;
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

// -- conversions --

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
    settings.validate().unwrap();
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
