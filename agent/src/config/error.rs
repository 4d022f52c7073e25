//! Why settings were refused, naming the setting and where its value came from.

use std::fmt;
use std::path::PathBuf;

/// Where a setting's value came from: the layer that won.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The TOML file given by `--config` or `FJORD_CONFIG`.
    File(PathBuf),
    /// An environment variable (`FJORD_<NAME>`).
    Env,
    /// A command-line flag (`--<name>`).
    Flag,
}

impl Origin {
    /// Names `setting` as this layer spells it, with the layer: "environment
    /// variable FJORD_FLUSH_INTERVAL_MS", "`flush-interval-ms` in config file
    /// fjord.toml".
    pub fn describe(&self, setting: &str) -> String {
        match self {
            Origin::Default => format!("the default of `{setting}`"),
            Origin::File(path) => format!("`{setting}` in config file {}", path.display()),
            Origin::Env => format!("environment variable {}", super::env_var_name(setting)),
            Origin::Flag => format!("flag --{setting}"),
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("the defaults"),
            Origin::File(path) => write!(f, "config file {}", path.display()),
            Origin::Env => f.write_str("the environment"),
            Origin::Flag => f.write_str("the command line"),
        }
    }
}

/// One broken validation rule (see [`AgentSettings::validate`](super::AgentSettings::validate)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSetting {
    /// The setting the rule is about (kebab-case, as in the file).
    pub setting: &'static str,
    /// What is wrong, naming the other settings a cross-field rule involves.
    pub reason: String,
    /// Where the setting's value came from, when it was loaded in layers
    /// (`None` for settings built in code and validated directly).
    pub origin: Option<Origin>,
}

impl fmt::Display for InvalidSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Some(origin) => write!(f, "{}: {}", origin.describe(self.setting), self.reason),
            None => write!(f, "`{}`: {}", self.setting, self.reason),
        }
    }
}

/// Why `fjord agent`'s settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The config file is not valid TOML.
    #[error("config file {} is not valid TOML: {reason}", path.display())]
    ParseFile {
        /// The file.
        path: PathBuf,
        /// The parser's message (with line and column).
        reason: String,
    },
    /// The config file is of a format version this build does not read.
    #[error(
        "config file {} has version {found}; this build reads version {supported} \
         (a file without `version` is version {supported})",
        path.display()
    )]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version it declares, as written.
        found: String,
        /// The version this build reads.
        supported: u32,
    },
    /// The config file names settings that do not exist.
    #[error(
        "unknown setting{} {} in {origin}",
        if settings.len() == 1 { "" } else { "s" },
        settings.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ")
    )]
    UnknownSettings {
        /// The unknown names, as written.
        settings: Vec<String>,
        /// Where they were found.
        origin: Origin,
    },
    /// An environment variable named like a setting holds bytes that are not UTF-8.
    #[error("environment variable {var} is not valid UTF-8")]
    NotUnicode {
        /// The variable.
        var: String,
    },
    /// A value has the wrong type or is out of its type's range.
    #[error("{}: {reason}", describe_bad_value(setting.as_deref(), origin.as_ref()))]
    BadValue {
        /// The setting (kebab-case), when known.
        setting: Option<String>,
        /// Where the value came from, when known.
        origin: Option<Origin>,
        /// What is wrong with it.
        reason: String,
    },
    /// Values that break validation rules (every broken rule, not just the first).
    #[error(
        "invalid settings:{}",
        problems.iter().map(|problem| format!("\n  - {problem}")).collect::<String>()
    )]
    Invalid {
        /// The broken rules.
        problems: Vec<InvalidSetting>,
    },
}

fn describe_bad_value(setting: Option<&str>, origin: Option<&Origin>) -> String {
    match (setting, origin) {
        (Some(setting), Some(origin)) => origin.describe(setting),
        (Some(setting), None) => format!("`{setting}`"),
        (None, Some(origin)) => format!("a setting in {origin}"),
        (None, None) => "a setting".to_owned(),
    }
}

impl ConfigError {
    /// The broken rules, if this is a validation error.
    pub fn invalid_settings(&self) -> &[InvalidSetting] {
        match self {
            ConfigError::Invalid { problems } => problems,
            ConfigError::ReadFile { .. }
            | ConfigError::ParseFile { .. }
            | ConfigError::UnsupportedVersion { .. }
            | ConfigError::UnknownSettings { .. }
            | ConfigError::NotUnicode { .. }
            | ConfigError::BadValue { .. } => &[],
        }
    }
}
