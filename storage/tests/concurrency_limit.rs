//! The concurrency limit of the standard decorator stack (`LimitStore`, wired by
//! `decorate`): requests reaching the backend never exceed
//! `max_concurrent_requests`, and a burst does reach it.
//!
//! The backend holds every request at a gate it controls, so the test knows when
//! the stack has let as many requests through as it will: no timing is assumed.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use fjord_storage::object_store::{RetryOptions, StoreOptions, decorate};
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use tokio::sync::watch;

const LIMIT: usize = 4;
const REQUESTS: usize = 24;

/// A backend that counts the requests inside it (and the most at once), each
/// waiting for the gate to open before it proceeds.
#[derive(Debug)]
struct GatedStore {
    inner: InMemory,
    in_flight: AtomicUsize,
    peak: AtomicUsize,
    entered: AtomicUsize,
    gate: watch::Receiver<bool>,
}

/// One request inside the backend; leaving decrements the count.
struct Inside<'a>(&'a GatedStore);

impl Drop for Inside<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl GatedStore {
    async fn enter(&self) -> Inside<'_> {
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        self.entered.fetch_add(1, Ordering::SeqCst);
        let inside = Inside(self);
        let mut gate = self.gate.clone();
        // The sender lives as long as the test.
        gate.wait_for(|open| *open)
            .await
            .expect("gate sender alive");
        inside
    }
}

impl std::fmt::Display for GatedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GatedStore")
    }
}

#[async_trait]
impl ObjectStore for GatedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let _inside = self.enter().await;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let _inside = self.enter().await;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let _inside = self.enter().await;
        self.inner.get_opts(location, options).await
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

/// Waits (without assuming how long it takes) until `count` requests are inside.
async fn until_inside(backend: &GatedStore, count: usize) {
    while backend.in_flight.load(Ordering::SeqCst) < count {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Lets the runtime run every task that can run, so that a request the limit
/// failed to hold back would have entered the backend.
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_in_flight_never_exceed_the_limit_and_reach_it() {
    let (open_gate, gate) = watch::channel(false);
    let backend = Arc::new(GatedStore {
        inner: InMemory::new(),
        in_flight: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        entered: AtomicUsize::new(0),
        gate,
    });
    let options = StoreOptions {
        max_concurrent_requests: LIMIT,
        // A request held at the gate must not be cut short and retried.
        retry: RetryOptions {
            request_timeout: Duration::from_secs(600),
            ..RetryOptions::default()
        },
        ..StoreOptions::default()
    };
    let store = decorate(Arc::clone(&backend) as Arc<dyn ObjectStore>, &options).store;

    // A burst of PUTs, then of GETs, each held until the limit is full.
    for phase in ["put", "get"] {
        open_gate.send_replace(false);
        let before = backend.entered.load(Ordering::SeqCst);
        let mut tasks = Vec::new();
        for i in 0..REQUESTS {
            let store = Arc::clone(&store);
            let path = Path::from(format!("limit/{i}"));
            tasks.push(tokio::spawn(async move {
                if phase == "put" {
                    store
                        .put(&path, PutPayload::from(vec![i as u8; 64]))
                        .await
                        .map(|_| ())
                } else {
                    let bytes = store.get(&path).await?.bytes().await?;
                    assert_eq!(bytes.as_ref(), &[i as u8; 64][..]);
                    Ok(())
                }
            }));
        }
        until_inside(&backend, LIMIT).await;
        settle().await;
        assert_eq!(
            backend.in_flight.load(Ordering::SeqCst),
            LIMIT,
            "{phase}: the limit let more requests through"
        );
        assert_eq!(backend.entered.load(Ordering::SeqCst) - before, LIMIT);
        open_gate.send_replace(true);
        for task in tasks {
            task.await.expect("task").expect(phase);
        }
        assert_eq!(
            backend.entered.load(Ordering::SeqCst) - before,
            REQUESTS,
            "{phase}: one backend request per call"
        );
    }
    assert_eq!(backend.peak.load(Ordering::SeqCst), LIMIT);
    assert_eq!(backend.in_flight.load(Ordering::SeqCst), 0);
}
