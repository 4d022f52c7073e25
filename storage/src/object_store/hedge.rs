//! Hedged requests: when a PUT or GET has not answered after a delay, send the
//! same request again and take whichever answers first ("The Tail at Scale",
//! Dean and Barroso, 2013; AWS's S3 performance guidelines recommend retrying
//! latency-sensitive requests that are slow rather than waiting on them).
//!
//! Object-store latency has a long right tail that does not follow the request:
//! a second attempt draws a fresh latency. Hedging after about the 90th
//! percentile costs at most ~10 % more requests and cuts the tail to roughly
//! the delay plus a typical latency.
//!
//! # Which requests
//!
//! Only requests that give the same result however often they are sent:
//!
//! - a PUT in [`PutMode::Overwrite`] mode, the mode every segment upload uses:
//!   objects are immutable, a key is written once with its final bytes, so two
//!   identical PUTs leave the object exactly as one would. Conditional PUTs
//!   (create-only, update-if-match) are never hedged: the second would fail or
//!   race the first.
//! - a GET (ranged or whole; not HEAD).
//!
//! Everything else passes through. The loser of a race is dropped, which cancels
//! its request; a PUT that the bucket completed anyway wrote the same bytes.
//! When the first request fails before the delay its error is returned (retries
//! belong to [`RetryingObjectStore`](super::RetryingObjectStore), which sits
//! above); when one of two racing requests fails, the other is awaited.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::future::{BoxFuture, Either, select};
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

/// When hedged requests are sent. A zero delay turns hedging off for that
/// operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HedgeOptions {
    /// A PUT still waiting after this long, plus `put_after_per_mib` for each
    /// MiB of its payload, is sent again.
    pub put_after: Duration,
    /// Transfer allowance per MiB of a PUT's payload.
    pub put_after_per_mib: Duration,
    /// A GET with no answer (headers) after this long is sent again.
    pub get_after: Duration,
}

impl HedgeOptions {
    /// Delays near the 90th percentile of the S3 Standard latency model
    /// (docs/latency-profiles.md): PUT first byte p90 ≈ 120 ms plus transfer at
    /// about 90 MB/s, GET first byte p90 ≈ 75 ms.
    pub const S3_STANDARD: HedgeOptions = HedgeOptions {
        put_after: Duration::from_millis(120),
        put_after_per_mib: Duration::from_millis(12),
        get_after: Duration::from_millis(75),
    };

    fn put_delay(&self, bytes: usize) -> Duration {
        let mib = bytes as f64 / (1024.0 * 1024.0);
        self.put_after + self.put_after_per_mib.mul_f64(mib)
    }
}

/// Counters of a [`HedgingObjectStore`].
#[derive(Debug, Default)]
pub struct HedgeStats {
    hedged_puts: AtomicU64,
    hedged_gets: AtomicU64,
    hedges_won: AtomicU64,
}

impl HedgeStats {
    /// PUTs sent a second time.
    pub fn hedged_puts(&self) -> u64 {
        self.hedged_puts.load(Ordering::Relaxed)
    }

    /// GETs sent a second time.
    pub fn hedged_gets(&self) -> u64 {
        self.hedged_gets.load(Ordering::Relaxed)
    }

    /// Races the second request won.
    pub fn hedges_won(&self) -> u64 {
        self.hedges_won.load(Ordering::Relaxed)
    }
}

/// An [`ObjectStore`] that hedges slow idempotent requests (see the module docs).
#[derive(Debug)]
pub struct HedgingObjectStore {
    inner: Arc<dyn ObjectStore>,
    options: HedgeOptions,
    stats: Arc<HedgeStats>,
}

impl HedgingObjectStore {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn ObjectStore>, options: HedgeOptions) -> Self {
        Self {
            inner,
            options,
            stats: Arc::default(),
        }
    }

    /// Its counters.
    pub fn stats(&self) -> Arc<HedgeStats> {
        Arc::clone(&self.stats)
    }
}

impl fmt::Display for HedgingObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hedging({})", self.inner)
    }
}

/// Runs `first`; if it has not finished after `delay`, also runs what `second`
/// makes, and returns the first success (or, when both fail, the later error).
async fn race<T: Send>(
    first: BoxFuture<'_, object_store::Result<T>>,
    delay: Duration,
    second: impl FnOnce() -> BoxFuture<'static, object_store::Result<T>>,
    hedged: &AtomicU64,
    won: &AtomicU64,
) -> object_store::Result<T> {
    let timer = Box::pin(tokio::time::sleep(delay));
    let first = match select(first, timer).await {
        Either::Left((result, _)) => return result,
        Either::Right(((), first)) => first,
    };
    hedged.fetch_add(1, Ordering::Relaxed);
    match select(first, second()).await {
        Either::Left((Ok(value), _)) => Ok(value),
        Either::Right((Ok(value), _)) => {
            won.fetch_add(1, Ordering::Relaxed);
            Ok(value)
        }
        Either::Left((Err(_), other)) | Either::Right((Err(_), other)) => other.await,
    }
}

#[async_trait]
impl ObjectStore for HedgingObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if !matches!(opts.mode, PutMode::Overwrite) || self.options.put_after.is_zero() {
            return self.inner.put_opts(location, payload, opts).await;
        }
        let delay = self.options.put_delay(payload.content_length());
        let inner = Arc::clone(&self.inner);
        let (again_location, again_payload, again_opts) =
            (location.clone(), payload.clone(), opts.clone());
        race(
            self.inner.put_opts(location, payload, opts),
            delay,
            move || {
                Box::pin(async move {
                    inner
                        .put_opts(&again_location, again_payload, again_opts)
                        .await
                })
            },
            &self.stats.hedged_puts,
            &self.stats.hedges_won,
        )
        .await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        if options.head || self.options.get_after.is_zero() {
            return self.inner.get_opts(location, options).await;
        }
        let inner = Arc::clone(&self.inner);
        let (again_location, again_options) = (location.clone(), options.clone());
        race(
            self.inner.get_opts(location, options),
            self.options.get_after,
            move || Box::pin(async move { inner.get_opts(&again_location, again_options).await }),
            &self.stats.hedged_gets,
            &self.stats.hedges_won,
        )
        .await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutMode, UpdateVersion};
    use tokio::time::Instant;

    use super::*;
    use crate::object_store::{
        Fault, FaultInjectingObjectStore, InstrumentedObjectStore, ObjectStoreMetrics, Operation,
        Trigger,
    };

    const OPTIONS: HedgeOptions = HedgeOptions {
        put_after: Duration::from_millis(100),
        put_after_per_mib: Duration::from_millis(10),
        get_after: Duration::from_millis(50),
    };

    struct Fixture {
        faults: Arc<FaultInjectingObjectStore>,
        metrics: Arc<ObjectStoreMetrics>,
        memory: Arc<InMemory>,
        store: HedgingObjectStore,
    }

    /// hedging ─▶ counting ─▶ faults ─▶ memory
    fn fixture() -> Fixture {
        let memory = Arc::new(InMemory::new());
        let faults = Arc::new(FaultInjectingObjectStore::new(memory.clone(), 7));
        let metrics = Arc::new(ObjectStoreMetrics::default());
        let counted = Arc::new(InstrumentedObjectStore::new(
            faults.clone(),
            metrics.clone(),
        ));
        Fixture {
            faults,
            metrics,
            memory,
            store: HedgingObjectStore::new(counted, OPTIONS),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_put_is_sent_again_after_its_delay_and_the_second_answers() {
        let f = fixture();
        f.faults
            .inject(Operation::Put, Fault::Timeout, Trigger::Next(1));
        let path = Path::from("segments/a");
        let payload = vec![7u8; 1 << 20];
        let started = Instant::now();
        f.store
            .put(&path, PutPayload::from(payload.clone()))
            .await
            .unwrap();
        let waited = started.elapsed();
        // 100 ms + 10 ms for its MiB, then the second attempt answers at once.
        assert_eq!(waited, Duration::from_millis(110), "{waited:?}");
        assert_eq!(f.metrics.snapshot().put_requests, 2);
        let stats = f.store.stats();
        assert_eq!((stats.hedged_puts(), stats.hedges_won()), (1, 1));
        let stored = f.memory.get(&path).await.unwrap().bytes().await.unwrap();
        assert_eq!(stored.as_ref(), payload.as_slice());
    }

    #[tokio::test(start_paused = true)]
    async fn a_prompt_request_is_sent_once() {
        let f = fixture();
        let path = Path::from("segments/b");
        f.store.put(&path, PutPayload::from("x")).await.unwrap();
        assert_eq!(
            f.store.get(&path).await.unwrap().bytes().await.unwrap(),
            "x"
        );
        let snapshot = f.metrics.snapshot();
        assert_eq!((snapshot.put_requests, snapshot.get_requests), (1, 1));
        assert_eq!(
            f.store.stats().hedged_puts() + f.store.stats().hedged_gets(),
            0
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_get_is_hedged_and_a_failed_racer_waits_for_the_other() {
        let f = fixture();
        let path = Path::from("segments/c");
        f.memory.put(&path, PutPayload::from("abc")).await.unwrap();
        f.faults
            .inject(Operation::Get, Fault::Timeout, Trigger::Next(1));
        let started = Instant::now();
        assert_eq!(f.store.get_range(&path, 1..3).await.unwrap(), "bc");
        assert_eq!(started.elapsed(), Duration::from_millis(50));
        assert_eq!(f.store.stats().hedged_gets(), 1);

        // The first request stalls, the hedge fails at once: the answer is the
        // first request's, however late (here: never, so the caller's timeout).
        f.faults.clear();
        f.faults
            .inject(Operation::Get, Fault::Timeout, Trigger::Next(1));
        f.faults
            .inject(Operation::Get, Fault::Transient, Trigger::Next(1));
        let outcome =
            tokio::time::timeout(Duration::from_secs(5), f.store.get_range(&path, 0..1)).await;
        assert!(outcome.is_err(), "waited for the stalled request");
    }

    #[tokio::test(start_paused = true)]
    async fn an_early_failure_is_returned_and_conditional_puts_are_never_hedged() {
        let f = fixture();
        f.faults
            .inject(Operation::Put, Fault::Transient, Trigger::Next(1));
        let path = Path::from("segments/d");
        assert!(f.store.put(&path, PutPayload::from("x")).await.is_err());
        assert_eq!(
            f.metrics.snapshot().put_requests,
            1,
            "not hedged: it failed"
        );

        // A create-only PUT that stalls is left alone (a second would race it).
        f.faults
            .inject(Operation::Put, Fault::Timeout, Trigger::Next(1));
        let create = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            f.store.put_opts(&path, PutPayload::from("y"), create),
        )
        .await;
        assert!(outcome.is_err());
        let update = PutOptions {
            mode: PutMode::Update(UpdateVersion {
                e_tag: None,
                version: None,
            }),
            ..PutOptions::default()
        };
        f.faults
            .inject(Operation::Put, Fault::Timeout, Trigger::Next(1));
        let outcome = tokio::time::timeout(
            Duration::from_secs(5),
            f.store.put_opts(&path, PutPayload::from("z"), update),
        )
        .await;
        assert!(outcome.is_err());
        assert_eq!(f.store.stats().hedged_puts(), 0);
    }
}
