//! Settings refused while loading, each naming the setting and where it came
//! from: unknown settings, wrong types, out-of-range numbers, a file of another
//! version, a missing or malformed file.

use super::*;

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
