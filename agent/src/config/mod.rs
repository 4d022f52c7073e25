//! `fjord agent`'s settings: one typed, versioned [`AgentSettings`], loaded in
//! layers, validated, and turned into each component's settings.
//!
//! (Not to be confused with [`crate::configs`], Kafka's per-topic configs.)
//!
//! # Layers
//!
//! [`AgentSettings::load`] merges, each layer overriding the ones before it:
//!
//! 1. the defaults ([`AgentSettings::default`]);
//! 2. a TOML file, named by `--config <file>` or `FJORD_CONFIG`;
//! 3. environment variables `FJORD_<NAME>`: the setting's name upper-cased with
//!    `_` for `-` (`flush-interval-ms` is `FJORD_FLUSH_INTERVAL_MS`);
//! 4. command-line flags `--<name>` ([`AgentArgs`]: only flags actually given).
//!
//! Then [`AgentSettings::validate`] checks every rule (ranges and cross-field
//! rules such as `lease-timeout-ms` > 2 × `heartbeat-interval-ms`).
//!
//! # Invariants
//!
//! - Settings returned by `load` are valid; nothing is clamped silently: a value
//!   out of range is refused with the setting, the rule and the layer it came
//!   from.
//! - A file naming an unknown setting is refused, as is a file of another
//!   `version` than [`CONFIG_VERSION`] (absent means 1). The struct itself is
//!   `deny_unknown_fields`.
//! - A value of the wrong type is refused naming the setting as its layer
//!   spells it (`FJORD_FLUSH_INTERVAL_MS`, `--flush-interval-ms`, or the key
//!   and the file).
//! - `FJORD_*` variables that name no setting are ignored, since other tools
//!   share the prefix; [`unrecognized_env_vars`] lists them for a warning.
//! - `validate` destructures every field: a new setting does not compile until
//!   it has a rule (or is marked as having none).
//!
//! Durations are integers with the unit in the name (`*-ms`, `*-minutes`), like
//! Kafka's `.ms` configs, so flags, variables and files written for earlier
//! builds keep working; Kafka's settings keep Kafka's names
//! (`connections.max.idle.ms` is `connections-max-idle-ms`).
//!
//! # A file
//!
//! ```toml
//! version = 1
//! data-dir = "/var/lib/fjord"
//! metadata-url = "fdb:///etc/foundationdb/fdb.cluster"
//! storage-url = "s3://my-bucket/fjord"
//! advertised-address = "broker-1.example.com:9092"
//! flush-interval-ms = 50
//! lease-timeout-ms = 3000
//! ```
//!
//! Every setting, with its default, is in `agent/src/config/example.toml`.
//!
//! # Example
//!
//! ```
//! use fjord_agent::config::{AgentArgs, AgentSettings};
//!
//! let flags = AgentArgs {
//!     num_partitions: Some(6),
//!     ..AgentArgs::default()
//! };
//! let env = [("FJORD_NUM_PARTITIONS", "3"), ("FJORD_FLUSH_INTERVAL_MS", "50")];
//! let settings = AgentSettings::load_from(&flags, env)?;
//! assert_eq!(settings.num_partitions, 6); // the flag beats the environment
//! assert_eq!(settings.log_settings().flush_interval.as_millis(), 50);
//! assert_eq!(settings.storage_url(), "file://fjord-data/bucket");
//!
//! let refused = AgentSettings::load_from(&flags, [("FJORD_LEASE_TIMEOUT_MS", "900")]);
//! assert!(refused.unwrap_err().to_string().contains("FJORD_LEASE_TIMEOUT_MS"));
//! # Ok::<(), fjord_agent::config::ConfigError>(())
//! ```

mod args;
mod error;
mod load;
mod settings;
mod validate;

#[cfg(test)]
mod tests;

pub use args::AgentArgs;
pub use error::{ConfigError, InvalidSetting, Origin};
pub use load::{CONFIG_ENV_VAR, ENV_PREFIX, env_var_name, unrecognized_env_vars};
pub use settings::{AgentSettings, CONFIG_VERSION, LatencyModel};
