//! Object stores chosen by URL, wrapped in the standard decorator stack.
//!
//! | URL | backend |
//! |---|---|
//! | `file:///abs/dir`, `file://rel/dir` | a local directory (created if missing) |
//! | `memory://` | in memory (tests) |
//! | `s3://bucket[/prefix]` | S3 or an S3-compatible server (feature `s3`, on by default) |
//!
//! S3 settings, weakest first (each source overrides the ones before it):
//!
//! 1. the AWS shared configuration files, for the profile `AWS_PROFILE` names
//!    (default `default`): static keys (`aws_access_key_id`,
//!    `aws_secret_access_key`, `aws_session_token`) from `~/.aws/credentials`
//!    (or `AWS_SHARED_CREDENTIALS_FILE`) and `~/.aws/config` (or
//!    `AWS_CONFIG_FILE`), `region` and `endpoint_url` from either. Each is used
//!    only when the environment does not set it: profile keys only without
//!    `AWS_ACCESS_KEY_ID`, the region only without `AWS_REGION`/
//!    `AWS_DEFAULT_REGION`, the endpoint only without `AWS_ENDPOINT_URL`/
//!    `AWS_ENDPOINT`/`AWS_ENDPOINT_URL_S3` (a profile's `http://` endpoint also
//!    allows plain HTTP, unless `AWS_ALLOW_HTTP` says otherwise). Roles,
//!    `credential_process` and SSO profiles are not supported; an explicit
//!    `AWS_PROFILE` that needs them, or that does not exist, is an error. The
//!    details are in `aws_profile.rs`.
//! 2. the standard environment variables (`AWS_ENDPOINT_URL`/`AWS_ENDPOINT`,
//!    `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ALLOW_HTTP`,
//!    `AWS_VIRTUAL_HOSTED_STYLE_REQUEST`, `AWS_ACCESS_KEY_ID`,
//!    `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), read by `object_store`;
//! 3. the explicit [`S3Options`].
//!
//! With no static keys from any of them, `object_store` falls back to the
//! web-identity, container and instance-metadata credential providers.
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
            // A write returns once the file and its directory entry are on
            // disk, as a PUT to S3 is durable when it returns: an `acks=all`
            // answer follows the metadata commit, which must never name an
            // object a power loss could take back. Writing each object out as
            // it is made also keeps the kernel from holding many seconds of
            // them dirty and writing them back in bursts that stall every
            // other fsync (the metadata commits) behind them.
            let local = LocalFileSystem::new_with_prefix(rest)
                .map_err(|e| invalid(url, format!("cannot open directory {rest}: {e}")))?
                .with_fsync(true);
            Ok(Arc::new(local))
        }
        "memory" => {
            if !rest.is_empty() {
                return Err(invalid(url, "memory:// takes no path").into());
            }
            Ok(Arc::new(InMemory::new()))
        }
        "s3" => open_s3(url, rest, &options.s3, &|name| std::env::var(name).ok()),
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

/// The S3 backend; `env` looks up the variables that decide whether profile
/// settings apply (the process environment, except in tests; `object_store`
/// itself always reads the process environment).
#[cfg(feature = "s3")]
fn open_s3(
    url: &str,
    rest: &str,
    s3: &S3Options,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn ObjectStore>> {
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
    let profile = super::aws_profile::resolve(env)
        .map_err(|reason| invalid(url, format!("AWS profile: {reason}")))?;
    // Explicit options replace profile values wholesale: explicit keys are never
    // mixed with a profile's session token, nor an explicit endpoint with the
    // plain-HTTP allowance of a profile's one.
    let profile_endpoint = profile.endpoint.filter(|_| endpoint.is_none());
    if let Some(endpoint) = &profile_endpoint {
        builder = builder.with_endpoint(endpoint);
        let allow_http_set = env("AWS_ALLOW_HTTP").is_some_and(|v| !v.is_empty());
        if endpoint.starts_with("http://") && !allow_http_set {
            builder = builder.with_allow_http(true);
        }
    }
    if let Some(region) = &profile.region {
        builder = builder.with_region(region);
    }
    if access_key_id.is_none() {
        if let Some(access_key_id) = &profile.access_key_id {
            builder = builder.with_access_key_id(access_key_id);
        }
        if let Some(secret_access_key) = &profile.secret_access_key {
            builder = builder.with_secret_access_key(secret_access_key);
        }
        if let Some(session_token) = &profile.session_token {
            builder = builder.with_token(session_token);
        }
    }
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
fn open_s3(
    url: &str,
    _rest: &str,
    _s3: &S3Options,
    _env: &dyn Fn(&str) -> Option<String>,
) -> Result<Arc<dyn ObjectStore>> {
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

    /// A lookup of `vars`, as the process environment would answer.
    #[cfg(feature = "s3")]
    fn fake_env(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> {
        let map: std::collections::HashMap<String, String> = vars
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.clone()))
            .collect();
        move |name| map.get(name).cloned()
    }

    /// AWS files in a temporary directory naming `endpoint`, and the variables
    /// selecting them.
    #[cfg(feature = "s3")]
    fn profile_files(endpoint: &str) -> (tempfile::TempDir, Vec<(&'static str, String)>) {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("aws-config");
        let credentials = dir.path().join("aws-credentials");
        std::fs::write(
            &config,
            format!("[profile fjord-test]\nregion = eu-test-1\nendpoint_url = {endpoint}\n"),
        )
        .unwrap();
        std::fs::write(
            &credentials,
            "[fjord-test]\naws_access_key_id = PROFILEKEY\n\
             aws_secret_access_key = profilesecret\naws_session_token = profiletoken\n",
        )
        .unwrap();
        let vars = vec![
            ("AWS_PROFILE", "fjord-test".to_owned()),
            ("AWS_CONFIG_FILE", config.display().to_string()),
            (
                "AWS_SHARED_CREDENTIALS_FILE",
                credentials.display().to_string(),
            ),
        ];
        (dir, vars)
    }

    /// An HTTP server on loopback that answers one request with 200 and returns
    /// the request's head (request line and headers, lower-cased).
    #[cfg(feature = "s3")]
    fn capture_one_request() -> (String, std::thread::JoinHandle<String>) {
        use std::io::{BufRead, BufReader, Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let handle = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            let mut content_length = 0usize;
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                let lower = line.to_ascii_lowercase();
                if let Some(value) = lower.strip_prefix("content-length:") {
                    content_length = value.trim().parse().unwrap();
                }
                if line == "\r\n" || line.is_empty() {
                    break;
                }
                head.push_str(&lower);
            }
            let mut body = vec![0u8; content_length];
            reader.read_exact(&mut body).unwrap();
            let mut stream = stream;
            stream
                .write_all(
                    b"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .unwrap();
            head
        });
        (endpoint, handle)
    }

    #[cfg(feature = "s3")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn profile_keys_region_and_endpoint_sign_the_request() {
        let (endpoint, server) = capture_one_request();
        let (_dir, vars) = profile_files(&endpoint);
        let store = open_s3(
            "s3://bucket",
            "bucket",
            &S3Options::default(),
            &fake_env(&vars),
        )
        .unwrap();
        store
            .put(&Path::from("k"), PutPayload::from_static(b"v"))
            .await
            .unwrap();
        let head = server.join().unwrap();
        // Path-style at the profile's endpoint, over plain HTTP, signed with the
        // profile's key for the profile's region, with its session token.
        assert!(head.starts_with("put /bucket/k http/1.1"), "{head}");
        assert!(
            head.contains("credential=profilekey/") && head.contains("/eu-test-1/s3/aws4_request"),
            "{head}"
        );
        assert!(
            head.contains("x-amz-security-token: profiletoken"),
            "{head}"
        );
    }

    #[cfg(feature = "s3")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn environment_keys_win_over_the_profile() {
        let (endpoint, server) = capture_one_request();
        let (_dir, mut vars) = profile_files(&endpoint);
        // Stands for `AWS_ACCESS_KEY_ID` in the environment; `object_store` reads
        // the real environment, so the key itself comes through the options here.
        vars.push(("AWS_ACCESS_KEY_ID", "ENVKEY".to_owned()));
        let options = S3Options {
            access_key_id: Some("ENVKEY".into()),
            secret_access_key: Some("envsecret".into()),
            ..S3Options::default()
        };
        let store = open_s3("s3://bucket", "bucket", &options, &fake_env(&vars)).unwrap();
        store
            .put(&Path::from("k"), PutPayload::from_static(b"v"))
            .await
            .unwrap();
        let head = server.join().unwrap();
        assert!(head.contains("credential=envkey/"), "{head}");
        // No profile token mixed with other keys.
        assert!(!head.contains("x-amz-security-token"), "{head}");
    }

    #[cfg(feature = "s3")]
    #[test]
    fn a_missing_explicit_profile_is_invalid() {
        let vars = [
            ("AWS_PROFILE", "nope".to_owned()),
            ("AWS_CONFIG_FILE", "/nonexistent/config".to_owned()),
        ];
        let error = open_s3(
            "s3://bucket",
            "bucket",
            &S3Options::default(),
            &fake_env(&vars),
        )
        .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid);
        assert!(error.to_string().contains("AWS_PROFILE=nope"), "{error}");
    }

    /// The same profile against a real S3 server: a bucket round trip with no
    /// explicit settings at all.
    #[cfg(feature = "s3")]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn profile_settings_reach_the_moto_server() {
        let server = crate::testing::MotoServer::start().unwrap();
        server.create_bucket("profile-bucket").unwrap();
        let (_dir, vars) = profile_files(&server.endpoint());
        let store = open_s3(
            "s3://profile-bucket/p",
            "profile-bucket/p",
            &S3Options::default(),
            &fake_env(&vars),
        )
        .unwrap();
        let path = Path::from("a/b");
        store
            .put(&path, PutPayload::from_static(b"profile"))
            .await
            .unwrap();
        let got = store.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(&got[..], b"profile");
    }
}
