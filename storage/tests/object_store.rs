//! Segment reads through decorated object stores: request counts, faults, and
//! the local-filesystem backend.

use std::sync::Arc;

use bytes::Bytes;
use fjord_storage::object_store::{
    Fault, FaultInjectingObjectStore, InstrumentedObjectStore, ObjectStoreMetrics, Operation,
    Trigger, read_chunk, read_footer,
};
use fjord_storage::{
    ChunkMeta, Compression, EncodedSegment, ErrorKind, ObjectKey, ObjectKeys, SegmentWriter,
    WriterOptions,
};
use object_store::local::LocalFileSystem;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use ulid::Ulid;
use uuid::Uuid;

const TOPIC: Uuid = Uuid::from_u128(0xabc);

fn segment(partitions: i32, batch_len: usize) -> EncodedSegment {
    let mut writer = SegmentWriter::new(
        Ulid::from_parts(1_700_000_000_000, 1),
        WriterOptions {
            compression: Compression::Zstd { level: 1 },
        },
    )
    .expect("valid options");
    for partition in 0..partitions {
        let meta = ChunkMeta {
            topic_id: TOPIC,
            partition,
            first_offset: 0,
            last_offset: 9,
            record_count: 10,
            max_timestamp: 0,
        };
        let batches = format!("partition {partition} ").repeat(batch_len / 12 + 1);
        writer
            .add_chunk(meta, Bytes::from(batches))
            .expect("valid chunk");
    }
    writer.finish().expect("valid segment")
}

async fn upload(store: &dyn ObjectStore, segment: &EncodedSegment) -> ObjectKey {
    let key = ObjectKeys::new("test-cluster")
        .expect("valid prefix")
        .segment(segment.footer.segment_id());
    store
        .put(&Path::from(&key), PutPayload::from(segment.bytes.clone()))
        .await
        .expect("put");
    key
}

#[tokio::test]
async fn a_fetch_is_one_get_for_the_tail_and_one_per_chunk() {
    let metrics = Arc::new(ObjectStoreMetrics::default());
    let store = InstrumentedObjectStore::new(Arc::new(InMemory::new()), Arc::clone(&metrics));
    let small = segment(3, 5_000);
    let key = upload(&store, &small).await;

    let footer = read_footer(&store, &key).await.unwrap();
    assert_eq!(footer, small.footer);
    assert_eq!(metrics.snapshot().get_requests, 1);

    let entry = footer.find(TOPIC, 2, 5).unwrap();
    let batches = read_chunk(&store, &key, entry).await.unwrap();
    assert!(batches.starts_with(b"partition 2 "));
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.get_requests, 2);
    assert_eq!(
        snapshot.get_bytes,
        small.bytes.len() as u64 + entry.byte_length,
        "the tail read covers this small object, plus one chunk"
    );
    assert_eq!(snapshot.put_requests, 1);
    assert_eq!(snapshot.put_bytes, small.bytes.len() as u64);
}

#[tokio::test]
async fn a_large_footer_takes_a_second_tail_read() {
    let metrics = Arc::new(ObjectStoreMetrics::default());
    let store = InstrumentedObjectStore::new(Arc::new(InMemory::new()), Arc::clone(&metrics));
    let many = segment(1_000, 10); // footer of 80 000 bytes > the 64 KiB first read
    let key = upload(&store, &many).await;
    let footer = read_footer(&store, &key).await.unwrap();
    assert_eq!(footer.entries().len(), 1_000);
    assert_eq!(metrics.snapshot().get_requests, 2);
}

#[tokio::test]
async fn broken_reads_are_transient_and_a_retry_succeeds() {
    let inner = Arc::new(InMemory::new());
    let store = FaultInjectingObjectStore::new(inner, 1);
    let object = segment(2, 2_000);
    let key = upload(&store, &object).await;
    let entry = object.footer.entries()[1];

    for fault in [
        Fault::Transient,
        Fault::ShortBody { keep: 100 },
        Fault::BodyError { keep: 100 },
    ] {
        store.inject(Operation::Get, fault, Trigger::Next(1));
        let error = read_chunk(&store, &key, &entry).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Transient, "{fault:?}: {error}");
        assert!(error.is_retryable());
        // The fault fired once; the retry reads the chunk.
        let batches = read_chunk(&store, &key, &entry).await.unwrap();
        assert!(batches.starts_with(b"partition 1 "));

        store.inject(Operation::Get, fault, Trigger::Next(1));
        let error = read_footer(&store, &key).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Transient, "{fault:?}: {error}");
        assert_eq!(read_footer(&store, &key).await.unwrap(), object.footer);
    }
}

#[tokio::test]
async fn persistent_failures_surface() {
    let store = FaultInjectingObjectStore::new(Arc::new(InMemory::new()), 1);
    let object = segment(1, 100);
    let key = upload(&store, &object).await;
    store.inject(Operation::Get, Fault::Transient, Trigger::Always);
    for _ in 0..5 {
        let error = read_footer(&store, &key).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Transient);
        assert!(
            error.to_string().contains("injected transient fault"),
            "{error}"
        );
    }
    store.clear();
    store.inject(Operation::Get, Fault::NotFound, Trigger::Always);
    let error = read_footer(&store, &key).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_missing_object_is_not_found() {
    let store = InMemory::new();
    let key = ObjectKeys::new("").unwrap().segment(Ulid::from_parts(1, 1));
    let error = read_footer(&store, &key).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::NotFound, "{error}");
}

#[tokio::test]
async fn a_damaged_object_is_corrupt_not_transient() {
    let store = InMemory::new();
    let object = segment(2, 1_000);
    let key = ObjectKeys::new("p")
        .unwrap()
        .segment(object.footer.segment_id());
    let mut damaged = object.bytes.to_vec();
    let entry = object.footer.entries()[0];
    damaged[entry.byte_offset as usize + 100] ^= 0x40;
    store
        .put(&Path::from(&key), PutPayload::from(damaged))
        .await
        .unwrap();
    let footer = read_footer(&store, &key).await.unwrap();
    let error = read_chunk(&store, &key, &footer.entries()[0])
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Corrupt, "{error}");
    assert!(!error.is_retryable());
    read_chunk(&store, &key, &footer.entries()[1])
        .await
        .unwrap();
}

#[tokio::test]
async fn local_filesystem_backend_with_faults() {
    let dir = tempfile::tempdir().unwrap();
    let local = Arc::new(LocalFileSystem::new_with_prefix(dir.path()).unwrap());
    let store = FaultInjectingObjectStore::new(local, 3);
    let object = segment(4, 3_000);
    let key = upload(&store, &object).await;
    assert!(dir.path().join(key.as_str()).is_file());

    let footer = read_footer(&store, &key).await.unwrap();
    for entry in footer.entries() {
        let batches = read_chunk(&store, &key, entry).await.unwrap();
        let expected = format!("partition {} ", entry.meta.partition);
        assert!(batches.starts_with(expected.as_bytes()));
    }
    // Local files are served as files, not streams; body faults still apply.
    store.inject(
        Operation::Get,
        Fault::ShortBody { keep: 7 },
        Trigger::Next(1),
    );
    let error = read_chunk(&store, &key, &footer.entries()[0])
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Transient, "{error}");
}
