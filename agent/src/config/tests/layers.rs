//! The layers settings are loaded from (defaults → file → environment →
//! flags), how each kind of value is read from each (a flag that is not one
//! is refused by the parser), variables that name no setting, and the flags'
//! help.

use super::*;

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
