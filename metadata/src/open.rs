//! Choosing a backend by URL.

use std::path::PathBuf;
use std::sync::Arc;

use fjord_common::{Clock, IdGenerator, RandomIds, SystemClock};

use crate::kv::memory::MemoryBackend;
use crate::kv::{Database, KvBackend, KvError, RetryPolicy};
use crate::{MetadataError, MetadataStore};

/// The cluster name used when none is given.
pub const DEFAULT_CLUSTER: &str = "default";

/// A metadata backend named by URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackendUrl {
    /// `memory://`: in-process, lost on exit.
    Memory,
    /// `sqlite://<path>`: one file (`sqlite:///abs/path` or `sqlite://rel/path`).
    Sqlite(PathBuf),
    /// `fdb://` (the default cluster file) or `fdb://<cluster file path>`.
    Fdb(Option<PathBuf>),
}

impl BackendUrl {
    /// Parses a metadata URL.
    pub fn parse(url: &str) -> Result<Self, MetadataError> {
        let unsupported = |reason: &str| MetadataError::UnsupportedUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| unsupported("expected <scheme>://..."))?;
        match scheme {
            "memory" if rest.is_empty() => Ok(BackendUrl::Memory),
            "memory" => Err(unsupported("memory:// takes no path")),
            "sqlite" if rest.is_empty() => Err(unsupported("sqlite:// needs a file path")),
            "sqlite" => Ok(BackendUrl::Sqlite(PathBuf::from(rest))),
            "fdb" if rest.is_empty() => Ok(BackendUrl::Fdb(None)),
            "fdb" => Ok(BackendUrl::Fdb(Some(PathBuf::from(rest)))),
            _ => Err(unsupported("known schemes are memory, sqlite and fdb")),
        }
    }

    fn backend(&self, url: &str) -> Result<Arc<dyn KvBackend>, MetadataError> {
        // `url` is only needed to explain a backend this build lacks.
        let _ = url;
        match self {
            BackendUrl::Memory => Ok(Arc::new(MemoryBackend::new())),
            #[cfg(feature = "sqlite")]
            BackendUrl::Sqlite(path) => Ok(Arc::new(crate::kv::sqlite::SqliteBackend::open(path)?)),
            #[cfg(not(feature = "sqlite"))]
            BackendUrl::Sqlite(_) => Err(MetadataError::UnsupportedUrl {
                url: url.to_owned(),
                reason: "this build has no sqlite backend (cargo feature `sqlite`)".into(),
            }),
            #[cfg(feature = "fdb")]
            BackendUrl::Fdb(cluster_file) => Ok(Arc::new(crate::kv::fdb::FdbBackend::open(
                cluster_file.as_deref(),
            )?)),
            #[cfg(not(feature = "fdb"))]
            BackendUrl::Fdb(_) => Err(MetadataError::UnsupportedUrl {
                url: url.to_owned(),
                reason: "this build has no FoundationDB backend (cargo feature `fdb`)".into(),
            }),
        }
    }
}

/// Opens the metadata store at `url` with the system clock, random ids, the default
/// retry policy and the default cluster.
pub async fn open(url: &str) -> Result<MetadataStore, MetadataError> {
    open_with(
        url,
        DEFAULT_CLUSTER,
        RetryPolicy::default(),
        Arc::new(SystemClock),
        Arc::new(RandomIds::new()),
    )
    .await
}

/// Opens the metadata store at `url` with explicit components.
pub async fn open_with(
    url: &str,
    cluster: &str,
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
) -> Result<MetadataStore, MetadataError> {
    let parsed = BackendUrl::parse(url)?;
    // Opening a file or a cluster blocks (SQLite may wait for the write lock to
    // migrate): never on an async worker thread.
    let owned_url = url.to_owned();
    let backend = tokio::task::spawn_blocking(move || parsed.backend(&owned_url))
        .await
        .map_err(|e| KvError::Backend(format!("opening {url}: blocking task failed: {e}")))??;
    let jitter_seed = u64::from_le_bytes(ids.uuid().as_bytes()[..8].try_into().unwrap_or([0; 8]));
    let db = Database::new(backend, policy, jitter_seed);
    Ok(MetadataStore::new(db, cluster, clock, ids))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        assert_eq!(BackendUrl::parse("memory://").unwrap(), BackendUrl::Memory);
        assert_eq!(
            BackendUrl::parse("sqlite:///var/lib/fjord/meta.db").unwrap(),
            BackendUrl::Sqlite(PathBuf::from("/var/lib/fjord/meta.db"))
        );
        assert_eq!(
            BackendUrl::parse("sqlite://fjord-data/meta.db").unwrap(),
            BackendUrl::Sqlite(PathBuf::from("fjord-data/meta.db"))
        );
        assert_eq!(BackendUrl::parse("fdb://").unwrap(), BackendUrl::Fdb(None));
        assert!(BackendUrl::parse("postgres://x").is_err());
        assert!(BackendUrl::parse("sqlite://").is_err());
        assert!(BackendUrl::parse("no-scheme").is_err());
    }
}
