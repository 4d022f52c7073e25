//! Choosing a backend by URL.

use std::path::PathBuf;
use std::sync::Arc;

use fjord_common::{Clock, IdGenerator, RandomIds, SystemClock};

use crate::kv::fault::{FaultInjector, FaultSpec};
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

/// How to open a store, besides its URL. Every field has a default
/// ([`OpenOptions::default`]): the default cluster, the default retry policy, the
/// system clock, random ids and no faults.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// The cluster whose keyspace the store uses.
    pub cluster: String,
    /// How transactions are retried.
    pub retry_policy: RetryPolicy,
    /// The clock for informational timestamps, and for the age of a segment
    /// being committed ([`MAX_COMMIT_AGE_MS`](crate::MAX_COMMIT_AGE_MS)).
    pub clock: Arc<dyn Clock>,
    /// Topic and segment ids.
    pub ids: Arc<dyn IdGenerator>,
    /// Faults to inject between the store and its backend (tests, simulation,
    /// chaos runs); `None` in production.
    pub faults: Option<FaultInjector>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            cluster: DEFAULT_CLUSTER.to_owned(),
            retry_policy: RetryPolicy::default(),
            clock: Arc::new(SystemClock),
            ids: Arc::new(RandomIds::new()),
            faults: None,
        }
    }
}

/// Opens the metadata store at `url` with the system clock, random ids, the default
/// retry policy and the default cluster.
pub async fn open(url: &str) -> Result<MetadataStore, MetadataError> {
    open_with_options(url, OpenOptions::default()).await
}

/// Opens the metadata store at `url` with explicit components.
pub async fn open_with(
    url: &str,
    cluster: &str,
    policy: RetryPolicy,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
) -> Result<MetadataStore, MetadataError> {
    let options = OpenOptions {
        cluster: cluster.to_owned(),
        retry_policy: policy,
        clock,
        ids,
        faults: None,
    };
    open_with_options(url, options).await
}

/// Opens the metadata store at `url` with defaults, injecting the faults of
/// `spec` (seeded with `seed`, so a run replays). The returned injector steers
/// the faults and counts them.
pub async fn open_with_faults(
    url: &str,
    spec: &FaultSpec,
    seed: u64,
) -> Result<(MetadataStore, FaultInjector), MetadataError> {
    let injector = FaultInjector::with_spec(spec, seed);
    let options = OpenOptions {
        faults: Some(injector.clone()),
        ..OpenOptions::default()
    };
    Ok((open_with_options(url, options).await?, injector))
}

/// Opens the metadata store at `url` as `options` say.
pub async fn open_with_options(
    url: &str,
    options: OpenOptions,
) -> Result<MetadataStore, MetadataError> {
    let OpenOptions {
        cluster,
        retry_policy,
        clock,
        ids,
        faults,
    } = options;
    let parsed = BackendUrl::parse(url)?;
    // Opening a file or a cluster blocks (SQLite may wait for the write lock to
    // migrate): never on an async worker thread.
    let owned_url = url.to_owned();
    let mut backend = tokio::task::spawn_blocking(move || parsed.backend(&owned_url))
        .await
        .map_err(|e| KvError::Backend(format!("opening {url}: blocking task failed: {e}")))??;
    if let Some(injector) = faults {
        backend = injector.wrap(backend);
    }
    let jitter_seed = u64::from_le_bytes(ids.uuid().as_bytes()[..8].try_into().unwrap_or([0; 8]));
    let db = Database::new(backend, retry_policy, jitter_seed);
    Ok(MetadataStore::new(db, &cluster, clock, ids))
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

    #[tokio::test]
    async fn a_store_opened_with_faults_retries_through_them() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = format!("sqlite://{}", dir.path().join("meta.db").display());
        for url in ["memory://", sqlite.as_str()] {
            let spec: FaultSpec = "begin:unavailable:next=1,commit:maybe-committed-applied:next=1"
                .parse()
                .unwrap();
            let (store, faults) = open_with_faults(url, &spec, 5).await.unwrap();
            let topic = store
                .create_topic(crate::NewTopic::new("t", 2))
                .await
                .unwrap();
            assert_eq!(store.describe_topic("t").await.unwrap(), topic, "{url}");
            assert_eq!(faults.injected(), 2, "{url}");
            assert_eq!(faults.seed(), 5);
        }
    }
}
