//! Fault injection for tests of whole agent processes: the object store and
//! the metadata store can be made to fail, slow down or lose answers, from
//! settings at start-up and from a control file while the agent runs.
//!
//! The control file holds one line per store, `object-store=<spec>` and
//! `metadata=<spec>` (specs as [`fjord_storage::object_store::parse_fault_spec`]
//! and the metadata crate's fault specs read them); it is read again whenever
//! it changes, and a store its new content does not name has no faults. A
//! test turns faults off by emptying it. Production agents are started without
//! either setting, and then nothing here is in their request path.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use std::str::FromStr;

use fjord_metadata::kv::fault::{FaultInjector, FaultSpec};
use fjord_storage::object_store::FaultInjectingObjectStore;
use tokio_util::sync::CancellationToken;

/// How often the control file is looked at.
const CONTROL_POLL: Duration = Duration::from_millis(250);

/// Parses a metadata fault spec (see `fjord_metadata::kv::fault`).
pub fn metadata_spec(spec: &str) -> Result<FaultSpec, String> {
    FaultSpec::from_str(spec.trim()).map_err(|e| e.to_string())
}

/// The fault injectors of one agent.
#[derive(Debug, Clone, Default)]
pub struct FaultControls {
    /// Sits below the retry decorator of the object store.
    pub object_store: Option<Arc<FaultInjectingObjectStore>>,
    /// Sits between the metadata store and its backend (below its retries).
    pub metadata: Option<FaultInjector>,
}

impl FaultControls {
    /// Applies a control file's text (see the module docs).
    pub fn apply(&self, text: &str) -> Result<(), String> {
        let mut object_store = "";
        let mut metadata = "";
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            match line.split_once('=') {
                Some(("object-store", spec)) => object_store = spec.trim(),
                Some(("metadata", spec)) => metadata = spec.trim(),
                _ => return Err(format!("unknown fault control line {line:?}")),
            }
        }
        let metadata = metadata_spec(metadata)?;
        if let Some(store) = &self.object_store {
            store.apply_spec(object_store)?;
        }
        if let Some(injector) = &self.metadata {
            injector.clear();
            for rule in metadata.rules {
                injector
                    .inject(rule.operation, rule.fault, rule.trigger)
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    /// Applies `path` whenever its content changes, until `stop`.
    pub async fn watch_file(self, path: PathBuf, stop: CancellationToken) -> anyhow::Result<()> {
        let mut applied: Option<String> = None;
        let mut tick = tokio::time::interval(CONTROL_POLL);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = tick.tick() => {}
            }
            let text = tokio::fs::read_to_string(&path).await.unwrap_or_default();
            if applied.as_deref() == Some(text.as_str()) {
                continue;
            }
            match self.apply(&text) {
                Ok(()) => {
                    tracing::warn!(path = %path.display(), faults = %text.trim(), "fault injection changed")
                }
                Err(error) => {
                    tracing::error!(path = %path.display(), %error, "bad fault control file")
                }
            }
            applied = Some(text);
        }
    }
}

/// Aborts the process, as `kill -9` would at that moment, when the
/// environment variable `FJORD_CRASH_AT` names `point`. For tests of what a
/// crash between two steps leaves behind; unset in production, where this is
/// one comparison.
pub fn crash_point(point: &str) {
    static CRASH_AT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let at = CRASH_AT.get_or_init(|| std::env::var("FJORD_CRASH_AT").ok());
    if at.as_deref() == Some(point) {
        eprintln!("FJORD_CRASH_AT={point}: aborting");
        std::process::abort();
    }
}
