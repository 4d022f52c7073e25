//! Request counting and latency metrics for any [`ObjectStore`].

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::{BoxStream, StreamExt};
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart,
};
use tokio::time::Instant;

/// Counts requests and bytes, and records latencies, of every call through an
/// [`InstrumentedObjectStore`]. Share it (`Arc`) with whatever exports metrics or
/// reports requests per GiB; read it with [`snapshot`](Self::snapshot).
///
/// Requests are counted the way S3 bills them: a PUT is one request; a multipart
/// upload is one request to create it, one per part, and one to complete it; a
/// delete is one request per object deleted; a HEAD and each (coalesced) ranged GET
/// is one request.
#[derive(Debug, Default)]
pub struct ObjectStoreMetrics {
    put_requests: AtomicU64,
    put_bytes: AtomicU64,
    get_requests: AtomicU64,
    get_bytes: AtomicU64,
    head_requests: AtomicU64,
    delete_requests: AtomicU64,
    list_requests: AtomicU64,
    copy_requests: AtomicU64,
    errors: AtomicU64,
    put_latency: LatencyHistogram,
    get_latency: LatencyHistogram,
}

/// A point-in-time copy of [`ObjectStoreMetrics`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct MetricsSnapshot {
    /// PUT-class requests (PUT, multipart create, part and complete).
    pub put_requests: u64,
    /// Bytes uploaded.
    pub put_bytes: u64,
    /// Ranged or whole GETs.
    pub get_requests: u64,
    /// Bytes the GET bodies delivered to their readers (a body read only in part,
    /// or cut short, counts what arrived; a local file counts its range).
    pub get_bytes: u64,
    /// HEAD requests.
    pub head_requests: u64,
    /// Objects deleted (or attempted).
    pub delete_requests: u64,
    /// LIST calls.
    pub list_requests: u64,
    /// COPY requests.
    pub copy_requests: u64,
    /// Requests that returned an error.
    pub errors: u64,
    /// Latency of single PUTs (request to response).
    pub put_latency: LatencySnapshot,
    /// Latency of GETs to the response headers (time to first byte).
    pub get_latency: LatencySnapshot,
}

impl MetricsSnapshot {
    /// All requests of any kind.
    pub fn total_requests(&self) -> u64 {
        self.put_requests
            + self.get_requests
            + self.head_requests
            + self.delete_requests
            + self.list_requests
            + self.copy_requests
    }
}

impl ObjectStoreMetrics {
    /// Copies the current values.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        MetricsSnapshot {
            put_requests: load(&self.put_requests),
            put_bytes: load(&self.put_bytes),
            get_requests: load(&self.get_requests),
            get_bytes: load(&self.get_bytes),
            head_requests: load(&self.head_requests),
            delete_requests: load(&self.delete_requests),
            list_requests: load(&self.list_requests),
            copy_requests: load(&self.copy_requests),
            errors: load(&self.errors),
            put_latency: self.put_latency.snapshot(),
            get_latency: self.get_latency.snapshot(),
        }
    }

    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    fn count_result<T, E>(&self, result: &Result<T, E>) {
        if result.is_err() {
            Self::add(&self.errors, 1);
        }
    }
}

/// Number of buckets: bucket `i` holds latencies below `2^i` microseconds
/// (the last one everything longer, about 9 minutes and up).
const BUCKETS: usize = 30;

/// A lock-free histogram of latencies in power-of-two microsecond buckets: coarse
/// (each quantile is an upper bound within a factor of two) but cheap enough to sit
/// on every request.
#[derive(Debug)]
struct LatencyHistogram {
    buckets: [AtomicU64; BUCKETS],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

impl LatencyHistogram {
    fn record(&self, latency: Duration) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        // Bucket i holds [2^(i-1), 2^i) microseconds; bucket 0 holds 0.
        let index = (u64::BITS - micros.leading_zeros()) as usize;
        if let Some(bucket) = self.buckets.get(index.min(BUCKETS - 1)) {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot {
            buckets: self
                .buckets
                .iter()
                .map(|bucket| bucket.load(Ordering::Relaxed))
                .collect(),
        }
    }
}

/// A copy of a latency histogram.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct LatencySnapshot {
    buckets: Vec<u64>,
}

impl LatencySnapshot {
    /// How many latencies were recorded.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// An upper bound (within a factor of two) of the `quantile` (0.0–1.0) latency,
    /// or `None` if nothing was recorded.
    pub fn quantile(&self, quantile: f64) -> Option<Duration> {
        let count = self.count();
        if count == 0 {
            return None;
        }
        // Rank of the sample, 1-based; float to int saturates in Rust.
        let rank = ((quantile.clamp(0.0, 1.0) * count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (index, bucket) in self.buckets.iter().enumerate() {
            seen += bucket;
            if seen >= rank {
                return Some(Duration::from_micros(1u64 << index.min(63)));
            }
        }
        None
    }
}

impl fmt::Debug for LatencySnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencySnapshot")
            .field("count", &self.count())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .finish()
    }
}

/// Wraps an [`ObjectStore`] and records every request in an
/// [`ObjectStoreMetrics`]; behaviour is otherwise unchanged.
#[derive(Debug)]
pub struct InstrumentedObjectStore {
    inner: Arc<dyn ObjectStore>,
    metrics: Arc<ObjectStoreMetrics>,
}

impl InstrumentedObjectStore {
    /// Wraps `inner`, recording into `metrics`.
    pub fn new(inner: Arc<dyn ObjectStore>, metrics: Arc<ObjectStoreMetrics>) -> Self {
        Self { inner, metrics }
    }

    /// The metrics this store records into.
    pub fn metrics(&self) -> &Arc<ObjectStoreMetrics> {
        &self.metrics
    }
}

impl fmt::Display for InstrumentedObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Instrumented({})", self.inner)
    }
}

/// Counts the bytes of a GET's body as the caller receives them, so a body that
/// breaks or ends early counts what actually arrived. A local file (the
/// `LocalFileSystem` backend's payload) crosses no network and is read later by
/// the caller; its range is counted as it stands.
fn count_body_bytes(result: GetResult, metrics: &Arc<ObjectStoreMetrics>) -> GetResult {
    let GetResult {
        payload,
        meta,
        range,
        attributes,
        extensions,
    } = result;
    let payload = match payload {
        GetResultPayload::Stream(stream) => {
            let metrics = Arc::clone(metrics);
            GetResultPayload::Stream(
                stream
                    .inspect(move |chunk| {
                        if let Ok(bytes) = chunk {
                            ObjectStoreMetrics::add(&metrics.get_bytes, bytes.len() as u64);
                        }
                    })
                    .boxed(),
            )
        }
        #[cfg(not(target_arch = "wasm32"))]
        file @ GetResultPayload::File(..) => {
            let range: &Range<u64> = &range;
            ObjectStoreMetrics::add(&metrics.get_bytes, range.end.saturating_sub(range.start));
            file
        }
    };
    GetResult {
        payload,
        meta,
        range,
        attributes,
        extensions,
    }
}

#[async_trait]
impl ObjectStore for InstrumentedObjectStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let metrics = &self.metrics;
        ObjectStoreMetrics::add(&metrics.put_requests, 1);
        ObjectStoreMetrics::add(&metrics.put_bytes, payload.content_length() as u64);
        let start = Instant::now();
        let result = self.inner.put_opts(location, payload, opts).await;
        metrics.put_latency.record(start.elapsed());
        metrics.count_result(&result);
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        ObjectStoreMetrics::add(&self.metrics.put_requests, 1);
        let result = self.inner.put_multipart_opts(location, opts).await;
        self.metrics.count_result(&result);
        Ok(Box::new(InstrumentedUpload {
            inner: result?,
            metrics: Arc::clone(&self.metrics),
        }))
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let metrics = &self.metrics;
        let head = options.head;
        ObjectStoreMetrics::add(
            if head {
                &metrics.head_requests
            } else {
                &metrics.get_requests
            },
            1,
        );
        let start = Instant::now();
        let result = self.inner.get_opts(location, options).await;
        metrics.count_result(&result);
        if head {
            return result;
        }
        metrics.get_latency.record(start.elapsed());
        Ok(count_body_bytes(result?, metrics))
    }

    // `get_ranges` keeps the trait's default, which issues (coalesced) ranged GETs
    // through `get_opts` above, so each is counted.

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        let counted = Arc::clone(&self.metrics);
        let locations = locations
            .inspect(move |_| ObjectStoreMetrics::add(&counted.delete_requests, 1))
            .boxed();
        let metrics = Arc::clone(&self.metrics);
        self.inner
            .delete_stream(locations)
            .inspect(move |result| metrics.count_result(result))
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        ObjectStoreMetrics::add(&self.metrics.list_requests, 1);
        let metrics = Arc::clone(&self.metrics);
        self.inner
            .list(prefix)
            .inspect(move |result| metrics.count_result(result))
            .boxed()
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        ObjectStoreMetrics::add(&self.metrics.list_requests, 1);
        let metrics = Arc::clone(&self.metrics);
        self.inner
            .list_with_offset(prefix, offset)
            .inspect(move |result| metrics.count_result(result))
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        ObjectStoreMetrics::add(&self.metrics.list_requests, 1);
        let result = self.inner.list_with_delimiter(prefix).await;
        self.metrics.count_result(&result);
        result
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        ObjectStoreMetrics::add(&self.metrics.copy_requests, 1);
        let result = self.inner.copy_opts(from, to, options).await;
        self.metrics.count_result(&result);
        result
    }
}

/// Counts the parts and completion of a multipart upload.
#[derive(Debug)]
struct InstrumentedUpload {
    inner: Box<dyn MultipartUpload>,
    metrics: Arc<ObjectStoreMetrics>,
}

#[async_trait]
impl MultipartUpload for InstrumentedUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        ObjectStoreMetrics::add(&self.metrics.put_requests, 1);
        ObjectStoreMetrics::add(&self.metrics.put_bytes, data.content_length() as u64);
        let metrics = Arc::clone(&self.metrics);
        let part = self.inner.put_part(data);
        Box::pin(async move {
            let result = part.await;
            metrics.count_result(&result);
            result
        })
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        ObjectStoreMetrics::add(&self.metrics.put_requests, 1);
        let result = self.inner.complete().await;
        self.metrics.count_result(&result);
        result
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        ObjectStoreMetrics::add(&self.metrics.delete_requests, 1);
        let result = self.inner.abort().await;
        self.metrics.count_result(&result);
        result
    }
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt;
    use object_store::memory::InMemory;

    use super::*;

    fn store() -> InstrumentedObjectStore {
        InstrumentedObjectStore::new(
            Arc::new(InMemory::new()),
            Arc::new(ObjectStoreMetrics::default()),
        )
    }

    #[tokio::test]
    async fn counts_requests_and_bytes() {
        let store = store();
        let path = Path::from("a/b.seg");
        store
            .put(&path, PutPayload::from(vec![7u8; 1000]))
            .await
            .unwrap();
        assert_eq!(store.get_range(&path, 10..110).await.unwrap().len(), 100);
        assert_eq!(
            store.get(&path).await.unwrap().bytes().await.unwrap().len(),
            1000
        );
        store.head(&path).await.unwrap();
        let _ = store.get(&Path::from("missing")).await.unwrap_err();
        store.delete(&path).await.unwrap();
        let listed: Vec<_> = store.list(None).collect().await;
        assert!(listed.is_empty());

        let snapshot = store.metrics().snapshot();
        assert_eq!(snapshot.put_requests, 1);
        assert_eq!(snapshot.put_bytes, 1000);
        assert_eq!(snapshot.get_requests, 3);
        assert_eq!(snapshot.get_bytes, 1100);
        assert_eq!(snapshot.head_requests, 1);
        assert_eq!(snapshot.delete_requests, 1);
        assert_eq!(snapshot.list_requests, 1);
        assert_eq!(snapshot.errors, 1);
        assert_eq!(snapshot.total_requests(), 7);
        assert_eq!(snapshot.put_latency.count(), 1);
        assert_eq!(snapshot.get_latency.count(), 3);
        assert!(snapshot.get_latency.quantile(0.99).is_some());
    }

    #[tokio::test]
    async fn get_bytes_are_the_bytes_received() {
        use crate::object_store::{Fault, FaultInjectingObjectStore, Operation, Trigger};
        let faulty = Arc::new(FaultInjectingObjectStore::new(Arc::new(InMemory::new()), 1));
        let store = InstrumentedObjectStore::new(
            Arc::clone(&faulty) as Arc<dyn ObjectStore>,
            Arc::new(ObjectStoreMetrics::default()),
        );
        let path = Path::from("k");
        store
            .put(&path, PutPayload::from(vec![5u8; 1000]))
            .await
            .unwrap();
        // The response claims bytes 0..500; only 40 arrive.
        faulty.inject(
            Operation::Get,
            Fault::ShortBody { keep: 40 },
            Trigger::Next(1),
        );
        assert_eq!(store.get_range(&path, 0..500).await.unwrap().len(), 40);
        assert_eq!(store.metrics().snapshot().get_bytes, 40);
        // A body that breaks after 30 bytes counts those 30.
        faulty.inject(
            Operation::Get,
            Fault::BodyError { keep: 30 },
            Trigger::Next(1),
        );
        let _ = store.get(&path).await.unwrap().bytes().await.unwrap_err();
        assert_eq!(store.metrics().snapshot().get_bytes, 70);
        // A body never read counts nothing.
        drop(store.get(&path).await.unwrap());
        assert_eq!(store.metrics().snapshot().get_bytes, 70);
        assert_eq!(store.metrics().snapshot().get_requests, 3);
    }

    #[tokio::test]
    async fn local_files_count_their_range() {
        let dir = tempfile::tempdir().unwrap();
        let local = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        let store =
            InstrumentedObjectStore::new(Arc::new(local), Arc::new(ObjectStoreMetrics::default()));
        let path = Path::from("f");
        store
            .put(&path, PutPayload::from(vec![1u8; 300]))
            .await
            .unwrap();
        assert_eq!(store.get_range(&path, 100..250).await.unwrap().len(), 150);
        assert_eq!(store.metrics().snapshot().get_bytes, 150);
    }

    #[tokio::test]
    async fn counts_multipart_uploads_as_s3_bills_them() {
        let store = store();
        let path = Path::from("big.seg");
        let mut upload = store.put_multipart(&path).await.unwrap();
        upload
            .put_part(PutPayload::from(vec![1u8; 300]))
            .await
            .unwrap();
        upload
            .put_part(PutPayload::from(vec![2u8; 200]))
            .await
            .unwrap();
        upload.complete().await.unwrap();
        let snapshot = store.metrics().snapshot();
        assert_eq!(snapshot.put_requests, 4);
        assert_eq!(snapshot.put_bytes, 500);
        assert_eq!(store.head(&path).await.unwrap().size, 500);
    }

    #[test]
    fn histogram_quantiles_are_upper_bounds() {
        let histogram = LatencyHistogram::default();
        assert_eq!(histogram.snapshot().quantile(0.5), None);
        for micros in [0, 1, 3, 900, 1000, 1023] {
            histogram.record(Duration::from_micros(micros));
        }
        histogram.record(Duration::from_secs(100_000));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.count(), 7);
        assert_eq!(snapshot.quantile(0.0), Some(Duration::from_micros(1)));
        assert_eq!(snapshot.quantile(0.5), Some(Duration::from_micros(1024)));
        assert_eq!(snapshot.quantile(0.8), Some(Duration::from_micros(1024)));
        assert_eq!(snapshot.quantile(1.0), Some(Duration::from_micros(1 << 29)));
    }
}
