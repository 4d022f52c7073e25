//! The read path's `CachedReader`: single-flight GETs (one GET for many
//! concurrent readers, cancel safety, errors not cached) and the disk range cache
//! in front of the bucket (restart, damaged files).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fjord_storage::cache::{CachedReader, DiskRangeCache};
use fjord_storage::object_store::{
    Fault, FaultInjectingObjectStore, InstrumentedObjectStore, ObjectStoreMetrics, Operation,
    Trigger,
};
use fjord_storage::{
    ChunkEntry, ChunkMeta, Compression, EncodedSegment, ErrorKind, ObjectKey, ObjectKeys,
    SegmentWriter, WriterOptions,
};
use futures::stream::BoxStream;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use tokio::sync::Semaphore;
use ulid::Ulid;
use uuid::Uuid;

const TOPIC: Uuid = Uuid::from_u128(0xcafe);

/// Holds every GET until the test releases it, so that readers pile up.
#[derive(Debug)]
struct GatedStore {
    inner: Arc<dyn ObjectStore>,
    gate: Arc<Semaphore>,
}

impl fmt::Display for GatedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Gated({})", self.inner)
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
        self.inner.put_opts(location, payload, opts).await
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
        let permit = self.gate.acquire().await.expect("gate open");
        permit.forget();
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

struct Fixture {
    metrics: Arc<ObjectStoreMetrics>,
    faults: Arc<FaultInjectingObjectStore>,
    gate: Arc<Semaphore>,
    store: Arc<dyn ObjectStore>,
    key: ObjectKey,
    segment: EncodedSegment,
}

impl Fixture {
    /// Instrumented ─▶ gated (closed) ─▶ fault injecting ─▶ in-memory, holding one
    /// segment of three partitions.
    async fn new() -> Self {
        let faults = Arc::new(FaultInjectingObjectStore::new(Arc::new(InMemory::new()), 1));
        let gate = Arc::new(Semaphore::new(0));
        let gated = Arc::new(GatedStore {
            inner: faults.clone(),
            gate: gate.clone(),
        });
        let metrics = Arc::new(ObjectStoreMetrics::default());
        let store: Arc<dyn ObjectStore> =
            Arc::new(InstrumentedObjectStore::new(gated, metrics.clone()));

        let mut writer = SegmentWriter::new(
            Ulid::from_parts(1_700_000_000_000, 9),
            WriterOptions {
                compression: Compression::Zstd { level: 1 },
            },
        )
        .expect("valid options");
        for partition in 0..3 {
            let meta = ChunkMeta {
                topic_id: TOPIC,
                partition,
                first_offset: 0,
                last_offset: 9,
                record_count: 10,
                max_timestamp: 0,
            };
            let batches = format!("partition {partition} ").repeat(500);
            writer
                .add_chunk(meta, Bytes::from(batches))
                .expect("valid chunk");
        }
        let segment = writer.finish().expect("valid segment");
        let key = ObjectKeys::new("cache-test")
            .expect("valid prefix")
            .segment(segment.footer.segment_id());
        faults
            .put(&Path::from(&key), PutPayload::from(segment.bytes.clone()))
            .await
            .expect("put");
        Self {
            metrics,
            faults,
            gate,
            store,
            key,
            segment,
        }
    }

    fn entry(&self, partition: i32) -> ChunkEntry {
        *self
            .segment
            .footer
            .find(TOPIC, partition, 0)
            .expect("chunk exists")
    }

    fn gets(&self) -> u64 {
        self.metrics.snapshot().get_requests
    }

    /// Waits until `n` GETs reached the store, then a little longer so readers
    /// started at the same time have joined the flight.
    async fn wait_for_gets(&self, n: u64) {
        while self.gets() < n {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn expected_batches(partition: i32) -> Bytes {
    Bytes::from(format!("partition {partition} ").repeat(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_identical_reads_share_one_get() {
    let fixture = Fixture::new().await;
    let reader = Arc::new(CachedReader::new(fixture.store.clone(), None));
    let entry = fixture.entry(1);
    let mut readers = Vec::new();
    for _ in 0..32 {
        let (reader, key) = (reader.clone(), fixture.key.clone());
        readers.push(tokio::spawn(async move {
            reader.read_chunk(&key, &entry).await
        }));
    }
    fixture.wait_for_gets(1).await;
    fixture.gate.add_permits(1000);
    for reader in readers {
        assert_eq!(reader.await.unwrap().unwrap(), expected_batches(1));
    }
    assert_eq!(fixture.gets(), 1);

    // Nothing is kept once the flight is over: without a disk cache, a later
    // read GETs again.
    reader.read_chunk(&fixture.key, &entry).await.unwrap();
    assert_eq!(fixture.gets(), 2);
    // Different ranges are different flights.
    reader
        .read_chunk(&fixture.key, &fixture.entry(2))
        .await
        .unwrap();
    assert_eq!(fixture.gets(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_reader_does_not_cancel_the_others() {
    let fixture = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(DiskRangeCache::open(dir.path(), 1 << 20).await.unwrap());
    let reader = Arc::new(CachedReader::new(fixture.store.clone(), Some(disk.clone())));
    let entry = fixture.entry(0);
    let spawn_reader = || {
        let (reader, key) = (reader.clone(), fixture.key.clone());
        tokio::spawn(async move { reader.read_chunk(&key, &entry).await })
    };
    // The first reader starts the fetch; then it goes away.
    let first = spawn_reader();
    fixture.wait_for_gets(1).await;
    let others: Vec<_> = (0..4).map(|_| spawn_reader()).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    first.abort();
    assert!(first.await.unwrap_err().is_cancelled());
    fixture.gate.add_permits(1000);
    for other in others {
        assert_eq!(other.await.unwrap().unwrap(), expected_batches(0));
    }
    assert_eq!(fixture.gets(), 1);

    // Even if every waiter goes away, the fetch completes and fills the disk cache.
    let entry = fixture.entry(2);
    let fetch_range = entry.byte_range();
    let (reader2, key) = (reader.clone(), fixture.key.clone());
    let lonely = tokio::spawn(async move { reader2.read_chunk(&key, &entry).await });
    fixture.wait_for_gets(2).await;
    lonely.abort();
    while disk
        .get(fixture.key.as_str(), fetch_range.clone())
        .await
        .is_none()
    {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(
        reader.read_chunk(&fixture.key, &entry).await.unwrap(),
        expected_batches(2)
    );
    assert_eq!(fixture.gets(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_reach_every_waiter_and_are_not_cached() {
    let fixture = Fixture::new().await;
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(DiskRangeCache::open(dir.path(), 1 << 20).await.unwrap());
    let reader = Arc::new(CachedReader::new(fixture.store.clone(), Some(disk.clone())));
    let entry = fixture.entry(1);
    fixture
        .faults
        .inject(Operation::Get, Fault::Transient, Trigger::Next(1));
    let readers: Vec<_> = (0..8)
        .map(|_| {
            let (reader, key) = (reader.clone(), fixture.key.clone());
            tokio::spawn(async move { reader.read_chunk(&key, &entry).await })
        })
        .collect();
    fixture.wait_for_gets(1).await;
    fixture.gate.add_permits(1000);
    for reader in readers {
        let error = reader.await.unwrap().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Transient, "{error}");
        assert!(error.is_retryable());
    }
    assert_eq!(fixture.gets(), 1);
    assert_eq!(disk.stats().entries, 0, "a failed GET caches nothing");

    // The next read fetches again and succeeds.
    assert_eq!(
        reader.read_chunk(&fixture.key, &entry).await.unwrap(),
        expected_batches(1)
    );
    assert_eq!(fixture.gets(), 2);

    // A short body is caught and not cached either.
    let entry = fixture.entry(2);
    fixture.faults.inject(
        Operation::Get,
        Fault::ShortBody { keep: 10 },
        Trigger::Next(1),
    );
    let error = reader.read_chunk(&fixture.key, &entry).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient, "{error}");
    assert_eq!(disk.stats().entries, 1);

    // A missing object is NotFound for every waiter.
    let missing = ObjectKeys::new("cache-test")
        .unwrap()
        .segment(Ulid::from_parts(1, 1));
    let error = reader.get_range(&missing, 0..10).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
}

#[tokio::test]
async fn the_disk_cache_serves_repeat_reads_across_restarts() {
    let fixture = Fixture::new().await;
    fixture.gate.add_permits(1000);
    let dir = tempfile::tempdir().unwrap();
    let entry = fixture.entry(1);
    {
        let disk = Arc::new(DiskRangeCache::open(dir.path(), 1 << 20).await.unwrap());
        let reader = CachedReader::new(fixture.store.clone(), Some(disk.clone()));
        for _ in 0..3 {
            assert_eq!(
                reader.read_chunk(&fixture.key, &entry).await.unwrap(),
                expected_batches(1)
            );
        }
        assert_eq!(fixture.gets(), 1);
        assert_eq!(disk.stats().hits, 2);
    }

    // A restarted agent finds the range on disk.
    let disk = Arc::new(DiskRangeCache::open(dir.path(), 1 << 20).await.unwrap());
    let reader = CachedReader::new(fixture.store.clone(), Some(disk.clone()));
    assert_eq!(
        reader.read_chunk(&fixture.key, &entry).await.unwrap(),
        expected_batches(1)
    );
    assert_eq!(fixture.gets(), 1);

    // A damaged cache file is a miss: the reader GETs again and gets good data.
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    let middle = bytes.len() - 20;
    bytes[middle] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    assert_eq!(
        reader.read_chunk(&fixture.key, &entry).await.unwrap(),
        expected_batches(1)
    );
    assert_eq!(fixture.gets(), 2);
    assert_eq!(disk.stats().damaged, 1);

    // And a truncated one too.
    let file = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    assert_eq!(
        reader.read_chunk(&fixture.key, &entry).await.unwrap(),
        expected_batches(1)
    );
    assert_eq!(fixture.gets(), 3);
    assert_eq!(disk.stats().damaged, 2);
}

/// Decodes the batches of `partition`'s chunk from raw chunk bytes.
fn batches_of(fixture: &Fixture, partition: i32, raw: Bytes) -> Bytes {
    fjord_storage::decode_chunk_with_entry(&fixture.entry(partition), raw)
        .expect("the chunk decodes")
}

/// Reads the chunks of `partitions` through whole-object reads and checks
/// their batches.
async fn read_whole_object_chunks(fixture: &Fixture, reader: &CachedReader, partitions: &[i32]) {
    let size = fixture.segment.bytes.len() as u64;
    for &partition in partitions {
        let entry = fixture.entry(partition);
        let raw = reader
            .get_range_in_segment(&fixture.key, entry.byte_range(), size, size)
            .await
            .expect("the chunk is read");
        assert_eq!(
            batches_of(fixture, partition, raw),
            expected_batches(partition)
        );
    }
}

#[tokio::test]
async fn a_whole_object_read_caches_every_chunk_for_the_reads_that_follow() {
    let fixture = Fixture::new().await;
    fixture.gate.add_permits(1000);
    let size = fixture.segment.bytes.len() as u64;
    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(DiskRangeCache::open(dir.path(), 1 << 20).await.unwrap());
    let reader = CachedReader::new(fixture.store.clone(), Some(disk.clone()));

    // The first read fetches the whole object, once.
    let first = fixture.entry(1);
    let raw = reader
        .get_range_in_segment(&fixture.key, first.byte_range(), size, size)
        .await
        .unwrap();
    assert_eq!(batches_of(&fixture, 1, raw), expected_batches(1));
    assert_eq!(fixture.gets(), 1);
    assert_eq!(fixture.metrics.snapshot().get_bytes, size);
    assert_eq!(disk.stats().inserts, 3, "one cache entry per chunk");

    // Every other chunk then comes from the disk cache.
    read_whole_object_chunks(&fixture, &reader, &[0, 2, 1]).await;
    assert_eq!(fixture.gets(), 1, "no request after the first");
    // ...also through the plain ranged read, which looks up the same ranges.
    assert_eq!(
        reader
            .read_chunk(&fixture.key, &fixture.entry(2))
            .await
            .unwrap(),
        expected_batches(2)
    );
    assert_eq!(fixture.gets(), 1);
}

#[tokio::test]
async fn without_a_disk_cache_a_whole_object_read_serves_the_reads_that_follow_from_memory() {
    let fixture = Fixture::new().await;
    fixture.gate.add_permits(1000);
    let size = fixture.segment.bytes.len() as u64;
    let reader = CachedReader::new(fixture.store.clone(), None);
    read_whole_object_chunks(&fixture, &reader, &[0, 2, 1, 0]).await;
    assert_eq!(fixture.gets(), 1, "one GET for the object");
    assert_eq!(fixture.metrics.snapshot().get_bytes, size);
}

#[tokio::test]
async fn whole_object_reads_fall_back_to_ranged_reads() {
    let fixture = Fixture::new().await;
    fixture.gate.add_permits(1000);
    let size = fixture.segment.bytes.len() as u64;

    let dir = tempfile::tempdir().unwrap();
    let disk = Arc::new(DiskRangeCache::open(dir.path(), 1 << 20).await.unwrap());
    let reader = CachedReader::new(fixture.store.clone(), Some(disk));
    // An object over the limit, or of unknown size (0), is read chunk by chunk.
    for (object_size, limit) in [(size, size - 1), (0, size)] {
        let before = fixture.metrics.snapshot().get_bytes;
        let partition = if object_size == 0 { 2 } else { 1 };
        let entry = fixture.entry(partition);
        let raw = reader
            .get_range_in_segment(&fixture.key, entry.byte_range(), object_size, limit)
            .await
            .unwrap();
        assert_eq!(
            batches_of(&fixture, partition, raw),
            expected_batches(partition)
        );
        assert_eq!(
            fixture.metrics.snapshot().get_bytes - before,
            entry.byte_range().end - entry.byte_range().start
        );
    }

    // A range past the object's end is never served from a whole-object read.
    let error = reader
        .get_range_in_segment(&fixture.key, size..size + 10, size, size)
        .await;
    assert!(error.is_err());
}
