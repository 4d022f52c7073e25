//! Object stores chosen by URL, wrapped in the standard decorator stack.
//!
//! | URL | backend |
//! |---|---|
//! | `file:///abs/dir`, `file://rel/dir` | a local directory (created if missing) |
//! | `memory://` | in memory (tests) |
//! | `s3://bucket[/prefix]` | S3 or an S3-compatible server (feature `s3`, on by default) |
//!
//! S3 settings come from the standard environment variables first
//! (`AWS_ENDPOINT_URL`/`AWS_ENDPOINT`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
//! `AWS_ALLOW_HTTP`, `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, and the web-identity, container
//! and instance-metadata credential chain), then from the explicit
//! [`S3Options`], which win.
//!
//! The stack, outermost first (each request passes through in this order):
//!
//! ```text
//! RetryingObjectStore ─▶ LimitStore ─▶ InstrumentedObjectStore ─▶ backend
//! ```
//!
//! Retries sit outside the limit so a request backing off holds no permit; the
//! metrics sit inside both, so they count every attempt that reached the backend
//! (what S3 bills).

use std::sync::Arc;
use std::time::Duration;

use object_store::ObjectStore;
use object_store::limit::LimitStore;
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;

use crate::error::{ErrorRepr, Result};
use crate::object_store::{
    HedgeOptions, HedgingObjectStore, InstrumentedObjectStore, ObjectStoreMetrics, RetryOptions,
    RetryingObjectStore,
};

/// How [`open_store`] builds and decorates a store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// The retry decorator's settings.
    pub retry: RetryOptions,
    /// Requests in flight at once, across all callers of this store (at least 1).
    pub max_concurrent_requests: usize,
    /// Seed for the retry jitter (log it to replay a run).
    pub seed: u64,
    /// Settings for `s3://` URLs.
    pub s3: S3Options,
    /// Hedged PUTs and GETs (off when `None`).
    pub hedge: Option<HedgeOptions>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            retry: RetryOptions::default(),
            max_concurrent_requests: 64,
            seed: 0,
            s3: S3Options::default(),
            hedge: None,
        }
    }
}

/// Explicit S3 settings; each `Some` overrides the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// The endpoint, e.g. `http://127.0.0.1:9000` for MinIO or moto.
    pub endpoint: Option<String>,
    /// The region (S3-compatible servers usually accept any).
    pub region: Option<String>,
    /// Allow plain HTTP (local endpoints).
    pub allow_http: Option<bool>,
    /// Virtual-hosted-style requests (`bucket.host`); `false` is path-style
    /// (`host/bucket`), which local servers need.
    pub virtual_hosted_style: Option<bool>,
    /// Static credentials.
    pub access_key_id: Option<String>,
    /// Static credentials.
    pub secret_access_key: Option<String>,
    /// Static credentials.
    pub session_token: Option<String>,
    /// Retries of one HTTP request inside `object_store` (connection errors, 5xx,
    /// throttling). Kept small: [`RetryingObjectStore`] retries whole operations
    /// above it; this layer is the only one that retries multipart parts.
    pub http_max_retries: usize,
    /// The time after which `object_store` stops retrying one HTTP request.
    pub http_retry_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            allow_http: None,
            virtual_hosted_style: None,
            access_key_id: None,
            secret_access_key: None,
            session_token: None,
            http_max_retries: 2,
            http_retry_timeout: Duration::from_secs(20),
        }
    }
}

/// A store from [`open_store`]: the decorated store business code uses, and
/// handles to the parts under it.
#[derive(Debug, Clone)]
pub struct OpenedStore {
    /// The fully decorated store.
    pub store: Arc<dyn ObjectStore>,
    /// The metrics of every request that reached the backend.
    pub metrics: Arc<ObjectStoreMetrics>,
    /// The undecorated backend.
    pub backend: Arc<dyn ObjectStore>,
}

/// Builds the backend `url` names and wraps it in the standard decorator stack.
///
/// Fails with an [`ErrorKind::Invalid`](crate::ErrorKind::Invalid) error for an
/// unknown scheme, a malformed URL, a directory that cannot be created or an
/// incomplete S3 configuration. Nothing is contacted over the network.
pub fn open_store(url: &str, options: &StoreOptions) -> Result<OpenedStore> {
    let backend = open_backend(url, options)?;
    Ok(decorate(backend, options))
}

/// Wraps `backend` in the standard decorator stack (see the module docs). Tests
/// use it to slip a fault injector or latency injector under the stack.
pub fn decorate(backend: Arc<dyn ObjectStore>, options: &StoreOptions) -> OpenedStore {
    let metrics = Arc::new(ObjectStoreMetrics::default());
    let instrumented: Arc<dyn ObjectStore> = Arc::new(InstrumentedObjectStore::new(
        Arc::clone(&backend),
        Arc::clone(&metrics),
    ));
    let limited: Arc<dyn ObjectStore> = Arc::new(LimitStore::new(
        instrumented,
        options.max_concurrent_requests.max(1),
    ));
    let limited = match options.hedge {
        Some(hedge) => Arc::new(HedgingObjectStore::new(limited, hedge)),
        None => limited,
    };
    let store = Arc::new(RetryingObjectStore::new(
        limited,
        options.retry,
        options.seed,
    ));
    OpenedStore {
        store,
        metrics,
        backend,
    }
}

fn invalid(url: &str, reason: impl Into<String>) -> ErrorRepr {
    ErrorRepr::InvalidStoreUrl {
        url: url.to_owned(),
        reason: reason.into(),
    }
}

/// The undecorated backend `url` names.
pub fn open_backend(url: &str, options: &StoreOptions) -> Result<Arc<dyn ObjectStore>> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid(url, "expected scheme://…, e.g. file:///var/lib/fjord").into());
    };
    match scheme {
        "file" => {
            if rest.is_empty() {
                return Err(invalid(url, "file:// needs a directory").into());
            }
            std::fs::create_dir_all(rest)
                .map_err(|e| invalid(url, format!("cannot create directory {rest}: {e}")))?;
            let local = LocalFileSystem::new_with_prefix(rest)
                .map_err(|e| invalid(url, format!("cannot open directory {rest}: {e}")))?;
            Ok(Arc::new(local))
        }
        "memory" => {
            if !rest.is_empty() {
                return Err(invalid(url, "memory:// takes no path").into());
            }
            Ok(Arc::new(InMemory::new()))
        }
        "s3" => open_s3(url, rest, &options.s3),
        other => Err(invalid(
            url,
            format!("unknown scheme {other:?}; expected file, memory or s3"),
        )
        .into()),
    }
}

/// Splits `bucket/prefix/…` into the bucket and a prefix without slashes at
/// either end (empty for none).
fn bucket_and_prefix(rest: &str) -> (&str, &str) {
    match rest.split_once('/') {
        Some((bucket, prefix)) => (bucket, prefix.trim_matches('/')),
        None => (rest, ""),
    }
}

#[cfg(feature = "s3")]
fn open_s3(url: &str, rest: &str, s3: &S3Options) -> Result<Arc<dyn ObjectStore>> {
    use object_store::RetryConfig;
    use object_store::aws::AmazonS3Builder;

    let (bucket, prefix) = bucket_and_prefix(rest);
    if bucket.is_empty() {
        return Err(invalid(url, "s3:// needs a bucket name").into());
    }
    let S3Options {
        endpoint,
        region,
        allow_http,
        virtual_hosted_style,
        access_key_id,
        secret_access_key,
        session_token,
        http_max_retries,
        http_retry_timeout,
    } = s3;
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(RetryConfig {
            max_retries: *http_max_retries,
            retry_timeout: *http_retry_timeout,
            ..RetryConfig::default()
        });
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    if let Some(region) = region {
        builder = builder.with_region(region);
    }
    if let Some(allow_http) = allow_http {
        builder = builder.with_allow_http(*allow_http);
    }
    if let Some(virtual_hosted_style) = virtual_hosted_style {
        builder = builder.with_virtual_hosted_style_request(*virtual_hosted_style);
    }
    if let Some(access_key_id) = access_key_id {
        builder = builder.with_access_key_id(access_key_id);
    }
    if let Some(secret_access_key) = secret_access_key {
        builder = builder.with_secret_access_key(secret_access_key);
    }
    if let Some(session_token) = session_token {
        builder = builder.with_token(session_token);
    }
    let s3 = builder
        .build()
        .map_err(|e| invalid(url, format!("S3 configuration: {e}")))?;
    if prefix.is_empty() {
        Ok(Arc::new(s3))
    } else {
        Ok(Arc::new(PrefixStore::new(s3, prefix)))
    }
}

#[cfg(not(feature = "s3"))]
fn open_s3(url: &str, _rest: &str, _s3: &S3Options) -> Result<Arc<dyn ObjectStore>> {
    Err(invalid(
        url,
        "this build has no S3 support (cargo feature `s3` of fjord-storage)",
    )
    .into())
}

#[cfg(test)]
mod tests {
    use object_store::path::Path;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;
    use crate::ErrorKind;

    #[tokio::test]
    async fn memory_and_file_urls() {
        let options = StoreOptions::default();
        let memory = open_store("memory://", &options).unwrap();
        memory
            .store
            .put(&Path::from("a/b"), PutPayload::from_static(b"v"))
            .await
            .unwrap();
        assert_eq!(memory.metrics.snapshot().put_requests, 1);

        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("new/dir");
        let url = format!("file://{}", root.display());
        let local = open_store(&url, &options).unwrap();
        local
            .store
            .put(&Path::from("x/y"), PutPayload::from_static(b"w"))
            .await
            .unwrap();
        assert_eq!(std::fs::read(root.join("x/y")).unwrap(), b"w");
        assert_eq!(local.store.head(&Path::from("x/y")).await.unwrap().size, 1);
        assert_eq!(local.metrics.snapshot().head_requests, 1);
    }

    #[test]
    fn bad_urls_are_invalid() {
        let options = StoreOptions::default();
        for url in ["", "/tmp/x", "gs://b", "memory://x", "file://", "s3://"] {
            let error = open_store(url, &options).unwrap_err();
            assert_eq!(error.kind(), ErrorKind::Invalid, "{url}: {error}");
        }
    }

    #[test]
    fn bucket_and_prefix_split() {
        assert_eq!(bucket_and_prefix("b"), ("b", ""));
        assert_eq!(bucket_and_prefix("b/"), ("b", ""));
        assert_eq!(bucket_and_prefix("b/p/q/"), ("b", "p/q"));
    }

    #[cfg(feature = "s3")]
    #[test]
    fn s3_urls_build_without_contacting_anything() {
        let options = StoreOptions {
            s3: S3Options {
                endpoint: Some("http://127.0.0.1:1".into()),
                region: Some("us-east-1".into()),
                allow_http: Some(true),
                virtual_hosted_style: Some(false),
                access_key_id: Some("k".into()),
                secret_access_key: Some("s".into()),
                ..S3Options::default()
            },
            ..StoreOptions::default()
        };
        let opened = open_store("s3://bucket/some/prefix", &options).unwrap();
        assert!(
            opened.backend.to_string().contains("some/prefix"),
            "{}",
            opened.backend
        );
        let no_prefix = open_backend("s3://bucket", &options).unwrap();
        assert!(no_prefix.to_string().contains("bucket"), "{no_prefix}");
    }
}
