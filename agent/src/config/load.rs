//! Layering with figment: defaults → file → environment → flags, then validation.
//!
//! Each layer is a [`Layer`] provider whose figment metadata names its origin
//! and spells keys the way that origin does (`FJORD_FLUSH_INTERVAL_MS`,
//! `--flush-interval-ms`), so figment's errors, and the origins attached to
//! validation errors, say where a bad value came from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider};

use super::settings::CONFIG_VERSION;
use super::{AgentArgs, AgentSettings, ConfigError, Origin};

/// The prefix of every environment variable the settings read.
pub const ENV_PREFIX: &str = "FJORD_";

/// The environment variable naming the config file (as `--config` does).
pub const CONFIG_ENV_VAR: &str = "FJORD_CONFIG";

/// The settings' `version` key, read only from the file.
const VERSION_KEY: &str = "version";

/// The environment variable of `setting`: `flush-interval-ms` is
/// `FJORD_FLUSH_INTERVAL_MS`.
pub fn env_var_name(setting: &str) -> String {
    format!(
        "{ENV_PREFIX}{}",
        setting.to_ascii_uppercase().replace('-', "_")
    )
}

/// The setting an environment variable names, if it is one (`FJORD_CONFIG`
/// and `FJORD_VERSION` are not settings of the environment layer).
fn setting_of_env_var(var: &str, known: &Dict) -> Option<String> {
    let rest = var.strip_prefix(ENV_PREFIX)?;
    let setting = rest.to_ascii_lowercase().replace('_', "-");
    (setting != VERSION_KEY && known.contains_key(&setting)).then_some(setting)
}

/// The `FJORD_*` variables among `names` that name no setting (and are not
/// `FJORD_CONFIG`). The environment layer ignores them, since other tools share
/// the prefix (`FJORD_FDB_CLUSTER_FILE` in tests); the agent may warn about
/// them, as a misspelt variable is otherwise silently ignored.
pub fn unrecognized_env_vars<I, S>(names: I) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let known = default_dict();
    names
        .into_iter()
        .filter_map(|name| {
            let name = name.as_ref();
            let ours = name.starts_with(ENV_PREFIX) && name != CONFIG_ENV_VAR;
            (ours && setting_of_env_var(name, &known).is_none()).then(|| name.to_owned())
        })
        .collect()
}

/// The defaults as a figment dictionary: every setting's key, and its value's
/// kind (an unset optional setting is `Empty`).
fn default_dict() -> Dict {
    match Value::serialize(AgentSettings::default()) {
        Ok(Value::Dict(_, dict)) => dict,
        // AgentSettings is a struct of plain fields: it always serializes to a
        // dictionary.
        other => unreachable!("settings serialize to a dictionary, not {other:?}"),
    }
}

/// Which layer a [`Layer`] is.
#[derive(Debug, Clone)]
enum LayerKind {
    Default,
    File(PathBuf),
    Env,
    Flag,
}

const DEFAULT_LAYER: &str = "defaults";
const FILE_LAYER: &str = "config file";
const ENV_LAYER: &str = "environment variable";
const FLAG_LAYER: &str = "command-line flag";

/// One layer of settings as a figment provider.
#[derive(Debug)]
struct Layer {
    kind: LayerKind,
    dict: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        let key = |_: &Profile, path: &[&str]| path.join(".");
        match &self.kind {
            LayerKind::Default => Metadata::named(DEFAULT_LAYER).interpolater(key),
            LayerKind::File(path) => Metadata::from(FILE_LAYER, path.as_path()).interpolater(key),
            LayerKind::Env => Metadata::named(ENV_LAYER)
                .interpolater(|_: &Profile, path: &[&str]| env_var_name(&path.join("."))),
            LayerKind::Flag => Metadata::named(FLAG_LAYER)
                .interpolater(|_: &Profile, path: &[&str]| format!("--{}", path.join("."))),
        }
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

/// The origin a layer's figment metadata stands for.
fn origin_of(metadata: &Metadata) -> Option<Origin> {
    match &*metadata.name {
        DEFAULT_LAYER => Some(Origin::Default),
        FILE_LAYER => match &metadata.source {
            Some(figment::Source::File(path)) => Some(Origin::File(path.clone())),
            _ => None,
        },
        ENV_LAYER => Some(Origin::Env),
        FLAG_LAYER => Some(Origin::Flag),
        _ => None,
    }
}

impl AgentSettings {
    /// Loads `fjord agent`'s settings: defaults, then the file given by
    /// `--config` or `FJORD_CONFIG`, then `FJORD_<NAME>` variables of the
    /// process environment, then the flags in `args`; validated.
    pub fn load(args: &AgentArgs) -> Result<AgentSettings, ConfigError> {
        let known = default_dict();
        let mut env = Vec::new();
        for (name, value) in std::env::vars_os() {
            // A name that is not UTF-8 is not one of ours.
            let Ok(name) = name.into_string() else {
                continue;
            };
            let ours = name == CONFIG_ENV_VAR || setting_of_env_var(&name, &known).is_some();
            if !ours {
                continue;
            }
            let value = value
                .into_string()
                .map_err(|_| ConfigError::NotUnicode { var: name.clone() })?;
            env.push((name, value));
        }
        Self::load_from(args, env)
    }

    /// As [`AgentSettings::load`], with the environment given as `(name,
    /// value)` pairs instead of read from the process (for tests).
    pub fn load_from<I, K, V>(args: &AgentArgs, env: I) -> Result<AgentSettings, ConfigError>
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let env: BTreeMap<String, String> = env
            .into_iter()
            .map(|(name, value)| (name.into(), value.into()))
            .collect();
        let defaults = default_dict();

        let mut figment = Figment::new().merge(Layer {
            kind: LayerKind::Default,
            dict: defaults.clone(),
        });
        let file = args
            .config
            .clone()
            .or_else(|| env.get(CONFIG_ENV_VAR).map(PathBuf::from));
        if let Some(path) = file {
            let dict = read_file(&path, &defaults)?;
            figment = figment.merge(Layer {
                kind: LayerKind::File(path),
                dict,
            });
        }
        figment = figment
            .merge(Layer {
                kind: LayerKind::Env,
                dict: env_dict(&env, &defaults),
            })
            .merge(Layer {
                kind: LayerKind::Flag,
                dict: flag_dict(args)?,
            });

        let settings: AgentSettings = figment.extract().map_err(|error| bad_value(error, None))?;
        let problems = settings.problems();
        if problems.is_empty() {
            return Ok(settings);
        }
        Err(ConfigError::Invalid {
            problems: problems
                .into_iter()
                .map(|mut problem| {
                    problem.origin = figment.find_metadata(problem.setting).and_then(origin_of);
                    problem
                })
                .collect(),
        })
    }
}

/// The file's settings: TOML, of this build's version, naming only known settings.
fn read_file(path: &Path, known: &Dict) -> Result<Dict, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let dict: Dict = toml::from_str(&text).map_err(|error| ConfigError::ParseFile {
        path: path.to_owned(),
        reason: error.to_string().trim_end().to_owned(),
    })?;
    // The version first: a newer file may well name settings this build lacks.
    match dict.get(VERSION_KEY) {
        None => {}
        Some(Value::Num(_, number)) if integer(*number) == Some(i128::from(CONFIG_VERSION)) => {}
        Some(Value::Num(_, number)) => {
            let found = match (integer(*number), number.to_f64()) {
                (Some(integer), _) => integer.to_string(),
                (None, Some(float)) => format!("{float:?}"),
                (None, None) => number.to_actual().to_string(),
            };
            return Err(ConfigError::UnsupportedVersion {
                path: path.to_owned(),
                found,
                supported: CONFIG_VERSION,
            });
        }
        Some(other) => {
            return Err(ConfigError::BadValue {
                setting: Some(VERSION_KEY.to_owned()),
                origin: Some(Origin::File(path.to_owned())),
                reason: format!(
                    "expected the integer {CONFIG_VERSION}, found {}",
                    describe_value(other)
                ),
            });
        }
    }
    let unknown: Vec<String> = dict
        .keys()
        .filter(|key| !known.contains_key(*key))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(ConfigError::UnknownSettings {
            settings: unknown,
            origin: Origin::File(path.to_owned()),
        });
    }
    Ok(dict)
}

/// The environment's settings: `FJORD_<NAME>` for every known setting except
/// `version`. A value is read as TOML-like scalar (number, boolean) only where
/// the setting is a number or boolean; elsewhere it is the string as given
/// (`FJORD_DATA_DIR=2026` is the directory "2026").
fn env_dict(env: &BTreeMap<String, String>, known: &Dict) -> Dict {
    let mut dict = Dict::new();
    for (name, text) in env {
        let Some(setting) = setting_of_env_var(name, known) else {
            continue;
        };
        let value = match known.get(&setting) {
            Some(Value::Num(..) | Value::Bool(..)) => text
                .parse::<Value>()
                .unwrap_or_else(|infallible: std::convert::Infallible| match infallible {}),
            _ => Value::from(text.clone()),
        };
        dict.insert(setting, value);
    }
    dict
}

/// The flags given (those left out are not in the dictionary).
fn flag_dict(args: &AgentArgs) -> Result<Dict, ConfigError> {
    match Value::serialize(args) {
        Ok(Value::Dict(_, dict)) => Ok(dict),
        Ok(other) => Err(ConfigError::BadValue {
            setting: None,
            origin: Some(Origin::Flag),
            reason: format!("flags serialized to {}", describe_value(&other)),
        }),
        // A path flag that is not UTF-8.
        Err(error) => Err(bad_value(error, Some(Origin::Flag))),
    }
}

/// An integer of any width and sign (TOML's are signed, flags' unsigned).
fn integer(number: figment::value::Num) -> Option<i128> {
    number
        .to_i128()
        .or_else(|| number.to_u128().and_then(|n| i128::try_from(n).ok()))
}

fn describe_value(value: &Value) -> String {
    value.to_actual().to_string()
}

/// A figment error as a [`ConfigError::BadValue`] naming the setting and the
/// layer its value came from (`fallback` when figment does not know it).
fn bad_value(error: figment::Error, fallback: Option<Origin>) -> ConfigError {
    let setting = (!error.path.is_empty()).then(|| error.path.join("."));
    let origin = error.metadata.as_ref().and_then(origin_of).or(fallback);
    let reason = match &error.kind {
        // figment's own wording quotes the list twice.
        figment::error::Kind::UnknownVariant(found, expected) => format!(
            "unknown value `{found}`, expected one of {}",
            expected
                .iter()
                .map(|name| format!("`{name}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    };
    ConfigError::BadValue {
        setting,
        origin,
        reason,
    }
}
