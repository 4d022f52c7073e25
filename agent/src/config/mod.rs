//! `fjord agent`'s settings: one typed, versioned [`AgentSettings`], the flags
//! that override it ([`AgentArgs`]), and each component's settings built from it.
//!
//! (Not to be confused with [`crate::configs`], Kafka's per-topic configs.)

mod args;
mod settings;

#[cfg(test)]
mod tests;

pub use args::AgentArgs;
pub use settings::{AgentSettings, CONFIG_VERSION, LatencyModel};
