//! Retries with exponential backoff and full jitter, and a per-request timeout,
//! for any [`ObjectStore`].
//!
//! # Why a retry layer of our own when `object_store` retries HTTP requests
//!
//! The HTTP stores of `object_store` (S3 here) retry a single HTTP request on
//! connection errors, 5xx and throttling answers, with their own backoff. That
//! layer stays on, with small bounds (see [`crate::object_store::StoreOptions`]):
//! it is the only one that can retry the parts of a multipart upload, and it knows
//! the HTTP status codes. This layer sits above every backend and also covers
//! what that one does not:
//!
//! - backends without HTTP retries (the local filesystem) and the fault injector;
//! - a GET whose body breaks off or ends early after the headers arrived: the
//!   rest is fetched with a ranged GET of the missing bytes, pinned to the same
//!   object version by ETag;
//! - a request that hangs: each attempt has a timeout.
//!
//! The worst case multiplies (ours × theirs attempts); both bounds are small.
//!
//! Only errors whose [`ErrorKind`](crate::ErrorKind) is retryable are retried
//! (the crate's one mapping from `object_store::Error`); not-found, precondition,
//! permission and the like return at once.
//!
//! # Caveats
//!
//! A PUT whose response was lost may have applied. Retrying a plain PUT of an
//! immutable object is harmless; retrying a `PutMode::Create` PUT may then answer
//! `AlreadyExists` for an object this very call wrote, so callers of create-only
//! PUTs must treat `AlreadyExists` after a retry as "maybe mine" (compare
//! contents or the ETag). Multipart parts and completion are not retried here.
//! Listing streams are passed through (nothing in Fjord lists to find state).

use std::fmt;
use std::future::Future;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fjord_common::SeededRng;
use futures::FutureExt;
use futures::stream::{self, BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetRange, GetResult, GetResultPayload, ListResult, MultipartUpload,
    ObjectMeta, ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

const STORE_NAME: &str = "retry";

/// How a [`RetryingObjectStore`] retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOptions {
    /// Attempts per operation, including the first (at least 1).
    pub max_attempts: u32,
    /// The backoff cap before the first retry; it doubles per retry.
    pub initial_backoff: Duration,
    /// The largest backoff cap.
    pub max_backoff: Duration,
    /// Time allowed for one attempt to answer (to the response headers), and for
    /// each piece of a GET body to arrive.
    pub request_timeout: Duration,
}

impl Default for RetryOptions {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
        }
    }
}

impl RetryOptions {
    /// The backoff before retry number `retry` (1-based): a uniformly random
    /// duration in `0..=min(max_backoff, initial_backoff * 2^(retry-1))` ("full
    /// jitter", which spreads out retries of clients that failed together).
    pub fn backoff(&self, retry: u32, rng: &SeededRng) -> Duration {
        let cap = self
            .initial_backoff
            .saturating_mul(1u32 << retry.saturating_sub(1).min(20))
            .min(self.max_backoff);
        let cap_micros = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rng.below(cap_micros.saturating_add(1)))
    }
}

/// Whether an `object_store` error may go away on a retry.
pub(crate) fn is_retryable(error: &object_store::Error) -> bool {
    crate::error::object_store_error_kind(error).is_retryable()
}

#[derive(Debug)]
struct Policy {
    options: RetryOptions,
    rng: SeededRng,
}

impl Policy {
    fn timeout_error(&self, what: &str) -> object_store::Error {
        object_store::Error::Generic {
            store: STORE_NAME,
            source: format!(
                "{what} did not answer within {:?}",
                self.options.request_timeout
            )
            .into(),
        }
    }

    /// One attempt, bounded by the request timeout.
    async fn attempt<T, F>(&self, what: &str, call: F) -> object_store::Result<T>
    where
        F: Future<Output = object_store::Result<T>>,
    {
        match tokio::time::timeout(self.options.request_timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(self.timeout_error(what)),
        }
    }

    /// Runs `call` until it succeeds, fails permanently, or runs out of attempts.
    async fn run<T, F, Fut>(&self, what: &str, mut call: F) -> object_store::Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = object_store::Result<T>>,
    {
        let max_attempts = self.options.max_attempts.max(1);
        let mut attempt = 1;
        loop {
            match self.attempt(what, call()).await {
                Ok(value) => return Ok(value),
                Err(error) if attempt < max_attempts && is_retryable(&error) => {
                    tokio::time::sleep(self.options.backoff(attempt, &self.rng)).await;
                    attempt += 1;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

/// Wraps an [`ObjectStore`] and retries transient failures (see the module docs).
#[derive(Debug)]
pub struct RetryingObjectStore {
    inner: Arc<dyn ObjectStore>,
    policy: Arc<Policy>,
}

impl RetryingObjectStore {
    /// Wraps `inner`; `seed` drives the jitter (log it to replay a run).
    pub fn new(inner: Arc<dyn ObjectStore>, options: RetryOptions, seed: u64) -> Self {
        Self {
            inner,
            policy: Arc::new(Policy {
                options,
                rng: SeededRng::new(seed),
            }),
        }
    }
}

impl fmt::Display for RetryingObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Retrying({})", self.inner)
    }
}

/// Whether `payload` is a local file (the `LocalFileSystem` backend's).
fn is_local_file(payload: &GetResultPayload) -> bool {
    #[cfg(not(target_arch = "wasm32"))]
    if let GetResultPayload::File(..) = payload {
        return true;
    }
    let _ = payload;
    false
}

/// The state of a GET body that resumes after breaks.
struct Resume {
    inner: Arc<dyn ObjectStore>,
    policy: Arc<Policy>,
    location: Path,
    options: GetOptions,
    /// The bytes of the object this body must deliver, and how far it got.
    range: Range<u64>,
    next: u64,
    body: BoxStream<'static, object_store::Result<Bytes>>,
    /// Failed attempts so far (the first request counts as one attempt).
    attempts: u32,
}

impl Resume {
    /// The next piece of the body, resuming with ranged GETs after a break.
    async fn next_piece(mut self) -> Option<(object_store::Result<Bytes>, Option<Self>)> {
        loop {
            if self.next >= self.range.end {
                return None;
            }
            let what = format!("GET body of {}", self.location);
            let error = match self.policy.attempt(&what, self.body.next().map(Ok)).await {
                Ok(Some(Ok(mut bytes))) => {
                    let left = usize::try_from(self.range.end - self.next).unwrap_or(usize::MAX);
                    if bytes.len() > left {
                        bytes.truncate(left);
                    }
                    self.next += bytes.len() as u64;
                    return Some((Ok(bytes), Some(self)));
                }
                Ok(Some(Err(error))) | Err(error) => error,
                Ok(None) => object_store::Error::Generic {
                    store: STORE_NAME,
                    source: format!(
                        "GET body of {} ended at byte {} of {:?}",
                        self.location, self.next, self.range
                    )
                    .into(),
                },
            };
            if !is_retryable(&error) || self.attempts >= self.policy.options.max_attempts.max(1) {
                return Some((Err(error), None));
            }
            tokio::time::sleep(self.policy.options.backoff(self.attempts, &self.policy.rng)).await;
            self.attempts += 1;
            let options = GetOptions {
                range: Some(GetRange::Bounded(self.next..self.range.end)),
                ..self.options.clone()
            };
            let result = self
                .policy
                .attempt(&what, self.inner.get_opts(&self.location, options))
                .await;
            match result {
                Ok(result) => self.body = result.into_stream(),
                Err(error) => {
                    // The body stays broken; the loop counts the next failure.
                    self.body = stream::once(async move { Err(error) }).boxed();
                }
            }
        }
    }
}

#[async_trait]
impl ObjectStore for RetryingObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let what = format!("PUT {location}");
        self.policy
            .run(&what, || {
                self.inner.put_opts(location, payload.clone(), opts.clone())
            })
            .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let what = format!("multipart create {location}");
        self.policy
            .run(&what, || {
                self.inner.put_multipart_opts(location, opts.clone())
            })
            .await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let what = format!("GET {location}");
        let result = self
            .policy
            .run(&what, || self.inner.get_opts(location, options.clone()))
            .await?;
        // A local file's body is read in one piece by the caller: there is no
        // connection to break, so nothing to resume. (As a stream it would be
        // read 8 KiB per blocking-pool task, several hundred thread hand-offs
        // per segment object.)
        if options.head || is_local_file(&result.payload) {
            return Ok(result);
        }
        let GetResult {
            payload,
            meta,
            range,
            attributes,
            extensions,
        } = result;
        let body = GetResult {
            payload,
            meta: meta.clone(),
            range: range.clone(),
            attributes: attributes.clone(),
            extensions: Default::default(),
        }
        .into_stream();
        // Resumed reads must see the same object: pin them to its ETag.
        let mut resume_options = options;
        if resume_options.if_match.is_none() && resume_options.version.is_none() {
            resume_options.if_match = meta.e_tag.clone();
        }
        let resume = Resume {
            inner: Arc::clone(&self.inner),
            policy: Arc::clone(&self.policy),
            location: location.clone(),
            options: resume_options,
            range: range.clone(),
            next: range.start,
            body,
            attempts: 1,
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(
                stream::unfold(
                    Some(resume),
                    |state| async move { state?.next_piece().await },
                )
                .boxed(),
            ),
            meta,
            range,
            attributes,
            extensions,
        })
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let inner = Arc::clone(&self.inner);
        let policy = Arc::clone(&self.policy);
        locations
            .map(move |location| {
                let inner = Arc::clone(&inner);
                let policy = Arc::clone(&policy);
                async move {
                    let location = location?;
                    let what = format!("DELETE {location}");
                    policy
                        .run(&what, || {
                            let location = location.clone();
                            let inner = Arc::clone(&inner);
                            async move {
                                let path = location.to_string();
                                inner
                                    .delete_stream(
                                        stream::once(async move { Ok(location) }).boxed(),
                                    )
                                    .next()
                                    .await
                                    .unwrap_or_else(|| {
                                        Err(object_store::Error::Generic {
                                            store: STORE_NAME,
                                            source: format!("no answer to DELETE {path}").into(),
                                        })
                                    })
                            }
                        })
                        .await
                }
            })
            .buffered(8)
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.policy
            .run("LIST", || self.inner.list_with_delimiter(prefix))
            .await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let what = format!("COPY {from} to {to}");
        self.policy
            .run(&what, || self.inner.copy_opts(from, to, options.clone()))
            .await
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;
    use crate::object_store::{Fault, FaultInjectingObjectStore, Operation, Trigger};

    fn options() -> RetryOptions {
        RetryOptions {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            request_timeout: Duration::from_millis(200),
        }
    }

    fn stores() -> (Arc<FaultInjectingObjectStore>, RetryingObjectStore) {
        let faulty = Arc::new(FaultInjectingObjectStore::new(Arc::new(InMemory::new()), 5));
        let retrying = RetryingObjectStore::new(Arc::clone(&faulty) as _, options(), 9);
        (faulty, retrying)
    }

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_cap() {
        let options = RetryOptions {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            ..RetryOptions::default()
        };
        let rng = SeededRng::new(1);
        for (retry, cap) in [(1, 10), (2, 20), (3, 40), (4, 40), (30, 40)] {
            let draws: Vec<_> = (0..200).map(|_| options.backoff(retry, &rng)).collect();
            assert!(draws.iter().all(|d| *d <= Duration::from_millis(cap)));
            assert!(draws.iter().any(|d| *d > Duration::from_millis(cap) / 2));
            assert!(draws.iter().any(|d| *d < Duration::from_millis(cap) / 2));
        }
    }

    #[tokio::test]
    async fn transient_failures_are_retried_up_to_the_bound() {
        let (faulty, store) = stores();
        let path = Path::from("k");
        faulty.inject(Operation::Put, Fault::Transient, Trigger::Next(2));
        store
            .put(&path, PutPayload::from_static(b"v"))
            .await
            .unwrap();
        assert_eq!(faulty.injected(), 2);

        faulty.inject(Operation::Get, Fault::Transient, Trigger::Next(3));
        assert!(store.get(&path).await.is_err(), "3 attempts, 3 failures");
        assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), "v");
    }

    #[tokio::test]
    async fn permanent_failures_are_not_retried() {
        let (faulty, store) = stores();
        faulty.inject(Operation::Get, Fault::NotFound, Trigger::Next(1));
        faulty.inject(Operation::Get, Fault::Transient, Trigger::Always);
        let error = store.get(&Path::from("k")).await.unwrap_err();
        assert!(
            matches!(error, object_store::Error::NotFound { .. }),
            "{error}"
        );
        assert_eq!(faulty.injected(), 1);
    }

    #[tokio::test]
    async fn broken_and_short_bodies_resume_with_ranged_gets() {
        let (faulty, store) = stores();
        let path = Path::from("k");
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        store
            .put(&path, PutPayload::from(data.clone()))
            .await
            .unwrap();
        for fault in [
            Fault::BodyError { keep: 1_000 },
            Fault::ShortBody { keep: 3 },
        ] {
            faulty.inject(Operation::Get, fault, Trigger::Next(2));
            let whole = store.get(&path).await.unwrap().bytes().await.unwrap();
            assert_eq!(whole, data, "{fault:?}");
            faulty.inject(Operation::Get, fault, Trigger::Next(1));
            let part = store.get_range(&path, 500..9_000).await.unwrap();
            assert_eq!(part, data[500..9_000], "{fault:?}");
        }
        faulty.inject(
            Operation::Get,
            Fault::BodyError { keep: 10 },
            Trigger::Always,
        );
        assert!(store.get(&path).await.unwrap().bytes().await.is_err());
    }

    #[tokio::test]
    async fn a_local_file_is_handed_over_whole() {
        let dir = tempfile::tempdir().unwrap();
        let local = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let store = RetryingObjectStore::new(Arc::new(local), options(), 5);
        let path = Path::from("k");
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        store
            .put(&path, PutPayload::from(data.clone()))
            .await
            .unwrap();
        let options = GetOptions {
            range: Some(GetRange::Bounded(1_000..90_000)),
            ..GetOptions::default()
        };
        let result = store.get_opts(&path, options).await.unwrap();
        assert!(
            matches!(result.payload, GetResultPayload::File(..)),
            "a local file became a stream"
        );
        assert_eq!(result.bytes().await.unwrap(), data[1_000..90_000]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hanging_request_times_out_and_is_retried() {
        let (faulty, store) = stores();
        let path = Path::from("k");
        store
            .put(&path, PutPayload::from_static(b"v"))
            .await
            .unwrap();
        faulty.inject(Operation::Get, Fault::Timeout, Trigger::Next(2));
        assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), "v");
        faulty.inject(Operation::Head, Fault::Timeout, Trigger::Always);
        let error = store.head(&path).await.unwrap_err();
        assert!(error.to_string().contains("did not answer"), "{error}");
    }
}
