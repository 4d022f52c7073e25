//! The agent's settings: defaults, the layers they are loaded from, what is
//! refused while loading, validation across fields, and the settings each
//! component is given.
//!
//! This module holds the helpers every theme uses (flags as the binary parses
//! them, a config file, the rules a change breaks); one file per theme:
//!
//! | module | covers |
//! |---|---|
//! | `defaults` | the default settings, the example file, a round trip through TOML |
//! | `layers` | defaults → file → environment → flags, and how each layer is read |
//! | `refusals` | settings refused while loading: unknown, mistyped, out of range, another version, a missing file |
//! | `validation` | the rules across fields, and the layer each broken rule's value came from |
//! | `conversions` | the paths and the component settings derived from the settings |
//! | `tls` | the TLS settings: every layer, the rules (files that load, client auth with its CA), the agent's TLS files |

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{CommandFactory, Parser};

use super::*;

mod conversions;
mod defaults;
mod layers;
mod refusals;
mod tls;
mod validation;

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
