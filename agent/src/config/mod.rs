//! `fjord agent`'s settings: one typed, versioned [`AgentSettings`], loaded in
//! layers (defaults → file → `FJORD_*` environment → flags), validated, and
//! turned into each component's settings.
//!
//! (Not to be confused with [`crate::configs`], Kafka's per-topic configs.)

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
