//! S3 settings from the AWS shared configuration files (`~/.aws/credentials`,
//! `~/.aws/config`), the part of the standard credential chain `object_store`'s
//! `AmazonS3Builder::from_env` does not read.
//!
//! Which profile: `AWS_PROFILE`, else `default`. Which files:
//! `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`) and
//! `AWS_CONFIG_FILE` (default `~/.aws/config`); a missing file is an empty one.
//! In the credentials file a profile is `[name]`; in the config file it is
//! `[profile name]`, or `[default]` (`[profile default]` wins over `[default]`).
//! A property set in both files is taken from the credentials file.
//!
//! What is read from the profile, and when (the environment always wins, and
//! explicit [`S3Options`](super::S3Options) win over both):
//!
//! | profile property | used unless |
//! |---|---|
//! | `aws_access_key_id`, `aws_secret_access_key`, `aws_session_token` | `AWS_ACCESS_KEY_ID` is set (env credentials are never mixed with profile ones) |
//! | `region` | `AWS_REGION` or `AWS_DEFAULT_REGION` is set |
//! | `endpoint_url` (an `http://` one also allows plain HTTP) | `AWS_ENDPOINT_URL`, `AWS_ENDPOINT` or `AWS_ENDPOINT_URL_S3` is set |
//!
//! Not supported: `role_arn`/`source_profile`, `credential_process`, SSO
//! (`sso_*`) and service-specific sub-sections. A profile named by `AWS_PROFILE`
//! that does not exist, or that has none of the static keys but one of those
//! properties, is an error rather than a silent fall-through to the rest of the
//! chain (web identity, container, instance metadata), which would otherwise pick
//! other credentials than the operator meant. The implicit `default` profile
//! falls through silently, so machines with an instance role keep working.
//!
//! The files are parsed here rather than with a general INI crate because the
//! AWS format is not plain INI: an indented line continues the previous property
//! (or, after `key =` with no value, holds a sub-property that must not be
//! mistaken for a profile-level one), config-file sections carry a `profile `
//! prefix, and a comment inside a property line needs whitespace before `#`/`;`
//! (a secret may contain those characters otherwise). The subset here is small
//! enough to be exact about.

use std::collections::HashMap;
use std::path::PathBuf;

/// Settings a profile contributes, after the environment had its say: each
/// `Some` is to be applied to the S3 builder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProfileSettings {
    pub(crate) access_key_id: Option<String>,
    pub(crate) secret_access_key: Option<String>,
    pub(crate) session_token: Option<String>,
    pub(crate) region: Option<String>,
    pub(crate) endpoint: Option<String>,
}

/// One profile's properties (lower-cased keys).
type Properties = HashMap<String, String>;

/// Which file a text came from: section names differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Config,
    Credentials,
}

const CREDENTIAL_KEYS: [&str; 3] = [
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
];
const UNSUPPORTED_CREDENTIAL_SOURCES: [&str; 6] = [
    "role_arn",
    "credential_process",
    "credential_source",
    "sso_session",
    "sso_start_url",
    "web_identity_token_file",
];

/// The profile settings to apply, reading variables through `env` (the process
/// environment in production; a map in tests). Empty variables count as unset.
pub(crate) fn resolve(env: &dyn Fn(&str) -> Option<String>) -> Result<ProfileSettings, String> {
    let var = |name: &str| env(name).filter(|value| !value.is_empty());
    let explicit_profile = var("AWS_PROFILE");
    let profile_name = explicit_profile.clone().unwrap_or_else(|| "default".into());
    let home = var("HOME");
    let credentials_path = file_path(
        var("AWS_SHARED_CREDENTIALS_FILE"),
        home.as_deref(),
        "credentials",
    );
    let config_path = file_path(var("AWS_CONFIG_FILE"), home.as_deref(), "config");

    let mut found = false;
    let mut properties = Properties::new();
    // Config first, so that the credentials file overwrites what both set.
    for (path, kind) in [
        (config_path, FileKind::Config),
        (credentials_path, FileKind::Credentials),
    ] {
        let Some(path) = path else { continue };
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => continue,
            Err(error) => return Err(format!("cannot read {}: {error}", path.display())),
        };
        if let Some(profile) = parse(&text, kind).remove(&profile_name) {
            found = true;
            properties.extend(profile);
        }
    }

    if let Some(name) = &explicit_profile {
        if !found {
            return Err(format!(
                "AWS_PROFILE={name} names no profile in the AWS config or credentials file"
            ));
        }
        let has_static_keys = CREDENTIAL_KEYS[..2]
            .iter()
            .any(|key| properties.contains_key(*key));
        if !has_static_keys
            && let Some(key) = UNSUPPORTED_CREDENTIAL_SOURCES
                .iter()
                .find(|key| properties.contains_key(**key))
        {
            return Err(format!(
                "AWS profile {name} gets credentials through {key}, which Fjord does not \
                 support; export static keys (e.g. `aws configure export-credentials \
                 --format env`) or use the environment variables"
            ));
        }
    }

    let mut settings = ProfileSettings::default();
    if var("AWS_ACCESS_KEY_ID").is_none() {
        settings.access_key_id = properties.remove("aws_access_key_id");
        settings.secret_access_key = properties.remove("aws_secret_access_key");
        settings.session_token = properties.remove("aws_session_token");
    }
    if var("AWS_REGION").is_none() && var("AWS_DEFAULT_REGION").is_none() {
        settings.region = properties.remove("region");
    }
    if ["AWS_ENDPOINT_URL", "AWS_ENDPOINT", "AWS_ENDPOINT_URL_S3"]
        .iter()
        .all(|name| var(name).is_none())
    {
        settings.endpoint = properties.remove("endpoint_url");
    }
    Ok(settings)
}

/// `explicit` (with a leading `~/` expanded), else `~/.aws/<name>`; `None` when
/// neither can be formed (no home directory).
fn file_path(explicit: Option<String>, home: Option<&str>, name: &str) -> Option<PathBuf> {
    match explicit {
        Some(path) => match (path.strip_prefix("~/"), home) {
            (Some(rest), Some(home)) => Some(PathBuf::from(home).join(rest)),
            _ => Some(PathBuf::from(path)),
        },
        None => home.map(|home| PathBuf::from(home).join(".aws").join(name)),
    }
}

/// The profiles of one file, by profile name. Lines that are not understood are
/// skipped, as the AWS SDKs do.
fn parse(text: &str, kind: FileKind) -> HashMap<String, Properties> {
    let mut profiles: HashMap<String, Properties> = HashMap::new();
    // `[profile default]` beats `[default]` in the config file, in any order.
    let mut prefixed_default_seen = false;
    // The section being read: `None` before the first or inside an ignored one.
    let mut current: Option<String> = None;
    // The property an indented line would continue (`None` after a `key =` with
    // no value, whose indented lines are sub-properties, which are ignored).
    let mut continues: Option<String> = None;
    for raw_line in text.lines() {
        let trimmed = raw_line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if raw_line.starts_with([' ', '\t']) {
            // A continuation (or sub-property) line of the previous property.
            if let (Some(profile), Some(key)) = (&current, &continues)
                && let Some(value) = profiles
                    .get_mut(profile)
                    .and_then(|properties| properties.get_mut(key))
            {
                value.push('\n');
                value.push_str(trimmed);
            }
            continue;
        }
        continues = None;
        if let Some(header) = trimmed.strip_prefix('[') {
            current = None;
            let Some((name, _comment)) = header.split_once(']') else {
                continue;
            };
            let name = name.trim();
            let profile = match kind {
                FileKind::Credentials => Some(name.to_owned()),
                FileKind::Config => match name.strip_prefix("profile") {
                    Some(rest) if rest.starts_with([' ', '\t']) => Some(rest.trim().to_owned()),
                    _ if name == "default" => Some(name.to_owned()),
                    _ => None,
                },
            };
            let Some(profile) = profile.filter(|p| !p.is_empty()) else {
                continue;
            };
            let prefixed = kind == FileKind::Config && name != "default";
            if kind == FileKind::Config && profile == "default" {
                if prefixed && !prefixed_default_seen {
                    prefixed_default_seen = true;
                    profiles.remove("default");
                } else if !prefixed && prefixed_default_seen {
                    continue;
                }
            }
            profiles.entry(profile.clone()).or_default();
            current = Some(profile);
            continue;
        }
        let Some(profile) = &current else { continue };
        let Some((key, value)) = trimmed.split_once('=') else {
            continue;
        };
        let key = key.trim().to_ascii_lowercase();
        if key.is_empty() {
            continue;
        }
        let value = strip_comment(value.trim()).to_owned();
        if !value.is_empty() {
            continues = Some(key.clone());
        }
        if let Some(properties) = profiles.get_mut(profile) {
            properties.insert(key, value);
        }
    }
    profiles
}

/// `value` without a trailing ` #…` or ` ;…` comment.
fn strip_comment(value: &str) -> &str {
    let bytes = value.as_bytes();
    for (at, byte) in bytes.iter().enumerate() {
        if (*byte == b'#' || *byte == b';')
            && at > 0
            && bytes.get(at - 1).is_some_and(u8::is_ascii_whitespace)
        {
            return value[..at].trim_end();
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new(config: &str, credentials: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("config"), config).unwrap();
            std::fs::write(dir.path().join("credentials"), credentials).unwrap();
            Self { dir }
        }

        /// A lookup of `vars` plus the two file variables pointing here.
        fn resolve(&self, vars: &[(&str, &str)]) -> Result<ProfileSettings, String> {
            let mut map: HashMap<String, String> = vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            let path = |name: &str| self.dir.path().join(name).display().to_string();
            map.entry("AWS_CONFIG_FILE".into())
                .or_insert_with(|| path("config"));
            map.entry("AWS_SHARED_CREDENTIALS_FILE".into())
                .or_insert_with(|| path("credentials"));
            resolve(&|name| map.get(name).cloned())
        }
    }

    const CONFIG: &str = "\
# a comment
[default]
region = eu-west-1

[profile dev]
region = us-west-2 ; the dev region
endpoint_url = http://127.0.0.1:9000
s3 =
  endpoint_url = http://nested.invalid
  addressing_style = path

[profile sso]
sso_session = corp
region = eu-central-1

[profile only-config]
aws_access_key_id = CONFIGKEY
aws_secret_access_key = config/secret#notacomment
";

    const CREDENTIALS: &str = "\
[default]
aws_access_key_id = DEFAULTKEY
aws_secret_access_key = defaultsecret

[dev]
aws_access_key_id=DEVKEY
aws_secret_access_key=dev+secret/x
aws_session_token = token-part-1
  token-part-2
";

    #[test]
    fn default_profile_from_both_files() {
        let files = Files::new(CONFIG, CREDENTIALS);
        let settings = files.resolve(&[("HOME", "/nonexistent")]).unwrap();
        assert_eq!(
            settings,
            ProfileSettings {
                access_key_id: Some("DEFAULTKEY".into()),
                secret_access_key: Some("defaultsecret".into()),
                session_token: None,
                region: Some("eu-west-1".into()),
                endpoint: None,
            }
        );
    }

    #[test]
    fn named_profile_with_comments_continuations_and_sub_properties() {
        let files = Files::new(CONFIG, CREDENTIALS);
        let settings = files.resolve(&[("AWS_PROFILE", "dev")]).unwrap();
        assert_eq!(
            settings,
            ProfileSettings {
                access_key_id: Some("DEVKEY".into()),
                secret_access_key: Some("dev+secret/x".into()),
                session_token: Some("token-part-1\ntoken-part-2".into()),
                region: Some("us-west-2".into()),
                // The profile-level endpoint, not the nested `s3 =` one.
                endpoint: Some("http://127.0.0.1:9000".into()),
            }
        );
        let settings = files.resolve(&[("AWS_PROFILE", "only-config")]).unwrap();
        assert_eq!(settings.access_key_id.as_deref(), Some("CONFIGKEY"));
        assert_eq!(
            settings.secret_access_key.as_deref(),
            Some("config/secret#notacomment")
        );
        assert_eq!(settings.region, None);
    }

    #[test]
    fn the_environment_wins() {
        let files = Files::new(CONFIG, CREDENTIALS);
        let settings = files
            .resolve(&[
                ("AWS_PROFILE", "dev"),
                ("AWS_ACCESS_KEY_ID", "ENVKEY"),
                ("AWS_DEFAULT_REGION", "ap-south-1"),
                ("AWS_ENDPOINT_URL_S3", "http://env.invalid"),
            ])
            .unwrap();
        assert_eq!(settings, ProfileSettings::default());
        // An empty variable is unset.
        let settings = files
            .resolve(&[("AWS_PROFILE", "dev"), ("AWS_ACCESS_KEY_ID", "")])
            .unwrap();
        assert_eq!(settings.access_key_id.as_deref(), Some("DEVKEY"));
    }

    #[test]
    fn credentials_file_wins_over_config_and_profile_default_over_default() {
        let config = "\
[profile default]
region = from-prefixed
aws_access_key_id = CONFIGKEY
[default]
region = from-plain
[profile x]
region = x-region
";
        let credentials = "[default]\naws_access_key_id = CREDKEY\n";
        let files = Files::new(config, credentials);
        let settings = files.resolve(&[]).unwrap();
        assert_eq!(settings.region.as_deref(), Some("from-prefixed"));
        assert_eq!(settings.access_key_id.as_deref(), Some("CREDKEY"));
        // `[x]` in the config file is not a profile; `[profile x]` is.
        let settings = Files::new("[x]\nregion = no\n", "")
            .resolve(&[("AWS_PROFILE", "x")])
            .unwrap_err();
        assert!(settings.contains("names no profile"), "{settings}");
        let settings = files.resolve(&[("AWS_PROFILE", "x")]).unwrap();
        assert_eq!(settings.region.as_deref(), Some("x-region"));
        assert_eq!(settings.access_key_id, None);
    }

    #[test]
    fn unusable_explicit_profiles_are_errors_and_missing_files_are_empty() {
        let files = Files::new(CONFIG, CREDENTIALS);
        let error = files.resolve(&[("AWS_PROFILE", "missing")]).unwrap_err();
        assert!(error.contains("AWS_PROFILE=missing"), "{error}");
        let error = files.resolve(&[("AWS_PROFILE", "sso")]).unwrap_err();
        assert!(error.contains("sso_session"), "{error}");

        let empty = tempfile::tempdir().unwrap();
        let nowhere = |name: &str| empty.path().join(name).display().to_string();
        let (config, credentials) = (nowhere("config"), nowhere("credentials"));
        let lookup = |name: &str| match name {
            "AWS_CONFIG_FILE" => Some(config.clone()),
            "AWS_SHARED_CREDENTIALS_FILE" => Some(credentials.clone()),
            _ => None,
        };
        assert_eq!(resolve(&lookup).unwrap(), ProfileSettings::default());
        // No home and no file variables: nothing to read.
        assert_eq!(resolve(&|_| None).unwrap(), ProfileSettings::default());
    }

    #[test]
    fn home_relative_paths() {
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir(home.path().join(".aws")).unwrap();
        std::fs::write(
            home.path().join(".aws/credentials"),
            "[default]\naws_access_key_id = HOMEKEY\n",
        )
        .unwrap();
        std::fs::write(home.path().join("cfg"), "[default]\nregion = r1\n").unwrap();
        let home_str = home.path().display().to_string();
        let lookup = |name: &str| match name {
            "HOME" => Some(home_str.clone()),
            "AWS_CONFIG_FILE" => Some("~/cfg".into()),
            _ => None,
        };
        let settings = resolve(&lookup).unwrap();
        assert_eq!(settings.access_key_id.as_deref(), Some("HOMEKEY"));
        assert_eq!(settings.region.as_deref(), Some("r1"));
    }
}
