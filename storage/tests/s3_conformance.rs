//! The same object-store conformance assertions against every backend Fjord
//! supports: in memory, a local directory, and two real S3-compatible servers
//! (the S3 server of `moto[server]`, and LocalStack's S3 run without Docker),
//! started as child processes on loopback, each through the standard
//! decorator stack of `open_store`.
//!
//! Both servers must be installed (`scripts/install-deps.sh`); without them the
//! S3 tests fail rather than skip, because CI installs them.

// The shared assertions live in helper functions, which clippy's
// allow-unwrap-in-tests does not cover.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_storage::object_store::{
    Fault, FaultInjectingObjectStore, OpenedStore, Operation, RetryOptions, StoreOptions, Trigger,
    decorate, open_backend, open_store, read_chunk, read_footer,
};
use fjord_storage::testing::{MotoServer, S3Server};
use fjord_storage::{ChunkMeta, Compression, ErrorKind, ObjectKeys, SegmentWriter, WriterOptions};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, WriteMultipart};
use ulid::Ulid;
use uuid::Uuid;

const TOPIC: Uuid = Uuid::from_u128(0xfeed);

fn data(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

fn quick_retries() -> RetryOptions {
    RetryOptions {
        max_attempts: 4,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        request_timeout: Duration::from_secs(10),
    }
}

/// put, get, ranged get, head, overwrite, delete.
async fn basic_operations(store: &dyn ObjectStore) {
    let path = Path::from("conformance/basic/object");
    let bytes = data(100_000, 1);
    store
        .put(&path, PutPayload::from(bytes.clone()))
        .await
        .expect("put");
    let whole = store
        .get(&path)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
    assert_eq!(whole, bytes);
    let range = store.get_range(&path, 1_000..51_000).await.expect("range");
    assert_eq!(range, bytes[1_000..51_000]);
    let ranges = store
        .get_ranges(&path, &[0..10, 99_990..100_000])
        .await
        .expect("ranges");
    assert_eq!(ranges[0], bytes[0..10]);
    assert_eq!(ranges[1], bytes[99_990..]);
    let meta = store.head(&path).await.expect("head");
    assert_eq!(meta.size, 100_000);
    assert!(meta.e_tag.is_some(), "every backend reports an ETag");

    store.delete(&path).await.expect("delete");
    let error = store.head(&path).await.expect_err("deleted");
    assert!(
        matches!(error, object_store::Error::NotFound { .. }),
        "{error}"
    );
    let error = store.get(&path).await.expect_err("deleted");
    assert!(
        matches!(error, object_store::Error::NotFound { .. }),
        "{error}"
    );
}

/// Create-only PUT (`If-None-Match: *` on S3; moto 5 honours it): the second
/// writer of a key loses with `AlreadyExists`.
async fn create_only_put(store: &dyn ObjectStore) {
    let path = Path::from("conformance/create-only");
    let create = || PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    };
    store
        .put_opts(&path, PutPayload::from_static(b"first"), create())
        .await
        .expect("create");
    let error = store
        .put_opts(&path, PutPayload::from_static(b"second"), create())
        .await
        .expect_err("second create");
    assert!(
        matches!(error, object_store::Error::AlreadyExists { .. }),
        "{error}"
    );
    let kept = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert_eq!(kept, "first");
}

/// A multipart upload of a large object (parts of 5 MiB, S3's minimum).
async fn multipart_upload(store: &dyn ObjectStore) {
    let path = Path::from("conformance/multipart");
    let bytes = data(12 << 20, 7);
    let upload = store.put_multipart(&path).await.expect("create upload");
    let mut writer = WriteMultipart::new_with_chunk_size(upload, 5 << 20);
    for piece in bytes.chunks(1 << 20) {
        writer.write(piece);
    }
    writer.finish().await.expect("complete upload");
    assert_eq!(store.head(&path).await.unwrap().size, 12 << 20);
    let middle = store
        .get_range(&path, (5 << 20) - 10..(5 << 20) + 10)
        .await
        .unwrap();
    assert_eq!(middle, bytes[(5 << 20) - 10..(5 << 20) + 10]);
    let whole = store.get(&path).await.unwrap().bytes().await.unwrap();
    assert!(whole == bytes, "the multipart object reads back whole");
}

/// A segment written with one PUT reads back through its footer and chunks.
async fn segment_round_trip(store: &dyn ObjectStore) {
    let mut writer = SegmentWriter::new(
        Ulid::from_parts(1_700_000_000_000, 42),
        WriterOptions {
            compression: Compression::Zstd { level: 3 },
        },
    )
    .unwrap();
    for partition in 0..8 {
        let meta = ChunkMeta {
            topic_id: TOPIC,
            partition,
            first_offset: 1_000,
            last_offset: 1_099,
            record_count: 100,
            max_timestamp: 1_700_000_000_000,
        };
        let batches = Bytes::from(data(20_000 + partition as usize * 1_000, partition as u32));
        writer.add_chunk(meta, batches).unwrap();
    }
    let segment = writer.finish().unwrap();
    let key = ObjectKeys::new("conformance")
        .unwrap()
        .segment(segment.footer.segment_id());
    store
        .put(&Path::from(&key), PutPayload::from(segment.bytes.clone()))
        .await
        .expect("put segment");
    let footer = read_footer(store, &key).await.expect("footer");
    assert_eq!(footer, segment.footer);
    for partition in 0..8 {
        let entry = footer.find(TOPIC, partition, 1_050).expect("entry");
        let batches = read_chunk(store, &key, entry).await.expect("chunk");
        assert_eq!(
            batches,
            Bytes::from(data(20_000 + partition as usize * 1_000, partition as u32))
        );
    }
}

/// Faults under the standard stack: transient failures, broken bodies and
/// hanging requests are retried away; persistent failures surface.
async fn retries_over_faults(backend: Arc<dyn ObjectStore>) {
    let faulty = Arc::new(FaultInjectingObjectStore::new(backend, 11));
    let options = StoreOptions {
        retry: RetryOptions {
            request_timeout: Duration::from_millis(500),
            ..quick_retries()
        },
        ..StoreOptions::default()
    };
    let OpenedStore { store, metrics, .. } = decorate(Arc::clone(&faulty) as _, &options);
    let path = Path::from("conformance/faults");
    let bytes = data(300_000, 3);

    faulty.inject(Operation::Put, Fault::Transient, Trigger::Next(1));
    faulty.inject(Operation::Put, Fault::TransientAfterApply, Trigger::Next(1));
    faulty.inject(Operation::Put, Fault::Timeout, Trigger::Next(1));
    store
        .put(&path, PutPayload::from(bytes.clone()))
        .await
        .expect("the fourth attempt succeeds");
    assert_eq!(faulty.injected(), 3);

    for fault in [
        Fault::Transient,
        Fault::Timeout,
        Fault::BodyError { keep: 70_000 },
        Fault::ShortBody { keep: 1 },
    ] {
        faulty.inject(Operation::Get, fault, Trigger::Next(2));
        let range = store.get_range(&path, 10..250_000).await;
        let range = range.unwrap_or_else(|e| panic!("{fault:?}: {e}"));
        assert!(range == bytes[10..250_000], "{fault:?}");
    }
    assert!(metrics.snapshot().get_requests >= 4);

    faulty.inject(Operation::Get, Fault::Transient, Trigger::Always);
    let key = ObjectKeys::new("conformance")
        .unwrap()
        .segment(Ulid::from_parts(1, 1));
    let error = read_footer(store.as_ref(), &key).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient, "{error}");
    faulty.clear();
    let error = read_footer(store.as_ref(), &key).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
}

async fn conformance(url: &str, options: &StoreOptions) {
    let opened = open_store(url, options).expect("open store");
    let store = opened.store.as_ref();
    basic_operations(store).await;
    create_only_put(store).await;
    multipart_upload(store).await;
    segment_round_trip(store).await;
    let snapshot = opened.metrics.snapshot();
    assert!(snapshot.put_requests >= 6, "{snapshot:?}");
    assert_eq!(
        snapshot.errors, 3,
        "only the expected HEAD and GET not-found and the create-only conflict"
    );
    retries_over_faults(open_backend(url, options).expect("backend")).await;
}

#[tokio::test]
async fn in_memory() {
    conformance("memory://", &StoreOptions::default()).await;
}

#[tokio::test]
async fn local_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/store", dir.path().display());
    conformance(&url, &StoreOptions::default()).await;
}

fn moto() -> MotoServer {
    MotoServer::start().unwrap_or_else(|error| {
        panic!("the S3 conformance tests need a moto S3 server and could not start one: {error}")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_compatible_server() {
    s3_server_conformance(moto()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn localstack_s3() {
    let server = tokio::task::spawn_blocking(S3Server::start_localstack)
        .await
        .unwrap()
        .unwrap_or_else(|error| {
            panic!("the S3 conformance tests need LocalStack's S3 and could not start it: {error}")
        });
    s3_server_conformance(server).await;
}

async fn s3_server_conformance(server: S3Server) {
    server.create_bucket("fjord-conformance").unwrap();
    let options = StoreOptions {
        retry: quick_retries(),
        ..server.store_options()
    };
    conformance("s3://fjord-conformance", &options).await;
    // A prefix in the URL places every key under it.
    conformance("s3://fjord-conformance/some/prefix", &options).await;
    let root = open_store("s3://fjord-conformance", &options).unwrap();
    let meta = root
        .store
        .head(&Path::from("some/prefix/conformance/multipart"))
        .await
        .unwrap();
    assert_eq!(meta.size, 12 << 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_missing_bucket_is_an_error_not_a_hang() {
    let server = moto();
    let options = StoreOptions {
        retry: quick_retries(),
        ..server.store_options()
    };
    let opened = open_store("s3://no-such-bucket", &options).unwrap();
    let error = opened
        .store
        .put(&Path::from("k"), PutPayload::from_static(b"v"))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("NoSuchBucket"), "{error}");
}
