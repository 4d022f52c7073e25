//! Object compaction in-process, against `PartitionLogs` over an in-memory
//! bucket: small objects merge, every record reads back the same before and
//! after the swap and after the old objects are deleted, a reader holding an
//! old index entry still reads it during the grace period, and a reader that
//! finds an object gone looks at the index once more.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_agent::cluster::{ClusterView, LiveAgent};
use fjord_agent::log::{Acks, LogErrorKind, LogSettings, PartitionLogs, TimestampQuery};
use fjord_agent::maintenance::compaction::{Compaction, CompactionSettings};
use fjord_agent::maintenance::leases::JobLeases;
use fjord_agent::maintenance::retention::{Retention, RetentionSettings};
use fjord_common::{RandomIds, SystemClock};
use fjord_metadata::{MetadataStore, NewTopic, TopicPartition};
use fjord_storage::ObjectKeys;
use fjord_storage::object_store::{self as objects, FaultInjectingObjectStore};
use futures::TryStreamExt;
use kafka_protocol::records::RecordBatchDecoder;
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};
use support::wire::{self, TestRecord};

const PARTITIONS: i32 = 4;
const FLUSHES: usize = 10;
/// The flush whose object is too large to compact: it splits partition 0's
/// chunks into two ranges.
const LARGE_FLUSH: usize = 5;
const SMALL_OBJECT_BYTES: u64 = 64 * 1024;

/// One v2 batch of `count` records whose values repeat `value` (compressible).
fn batch(value: &str, count: usize) -> Bytes {
    let records: Vec<TestRecord> = (0..count)
        .map(|i| TestRecord::new("k", &format!("{value}-{i}-").repeat(20), 1_700_000_000_000))
        .collect();
    wire::batch(&records, None)
}

/// One batch of one incompressible record, `len` bytes of value.
fn noise(len: usize) -> Bytes {
    let rng = fjord_common::SeededRng::new(7);
    let value: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
    let record = TestRecord {
        key: None,
        value: Some(Bytes::from(value)),
        headers: Vec::new(),
        timestamp: 1_700_000_000_000,
    };
    wire::batch(&[record], None)
}

fn logs_over(store: &MetadataStore, objects: Arc<dyn ObjectStore>) -> Arc<PartitionLogs> {
    Arc::new(PartitionLogs::new(
        store.clone(),
        objects,
        ObjectKeys::new("test").unwrap(),
        Arc::new(RandomIds::new()),
        Arc::new(SystemClock),
        1,
        LogSettings {
            flush_interval: Duration::from_millis(5),
            ..LogSettings::default()
        },
        None,
    ))
}

/// A view in which node 1 is alone and does everything.
fn view() -> Arc<ClusterView> {
    Arc::new(ClusterView::new(LiveAgent {
        node_id: 1,
        host: "127.0.0.1".to_owned(),
        port: 9092,
    }))
}

/// Keeps everything: the records of these tests carry 2023 timestamps.
fn keep_everything(grace: Duration) -> RetentionSettings {
    RetentionSettings {
        default_retention_ms: -1,
        object_grace: grace,
        ..RetentionSettings::default()
    }
}

fn compaction(store: &MetadataStore, objects: Arc<dyn ObjectStore>) -> Compaction {
    compaction_with(
        store,
        objects,
        CompactionSettings {
            min_age: Duration::ZERO,
            small_object_bytes: SMALL_OBJECT_BYTES,
            ..CompactionSettings::default()
        },
    )
}

fn compaction_with(
    store: &MetadataStore,
    objects: Arc<dyn ObjectStore>,
    settings: CompactionSettings,
) -> Compaction {
    Compaction::new(
        store.clone(),
        objects,
        ObjectKeys::new("test").unwrap(),
        JobLeases::new(store.clone(), view()),
        Arc::new(SystemClock),
        Arc::new(RandomIds::new()),
        settings,
        keep_everything(Duration::ZERO),
    )
}

fn gc(store: &MetadataStore, bucket: Arc<InMemory>) -> Retention {
    Retention::new(
        store.clone(),
        logs_over(store, bucket.clone()),
        bucket,
        ObjectKeys::new("test").unwrap(),
        JobLeases::new(store.clone(), view()),
        Arc::new(SystemClock),
        keep_everything(Duration::ZERO),
    )
}

/// Every committed record of `tp` as (offset, value), read by an agent that
/// does not lead it (through the index and the bucket).
async fn committed(logs: &PartitionLogs, tp: TopicPartition) -> Vec<(i64, Bytes)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let read = logs.read(tp, offset, 1 << 20).await.unwrap();
        if offset >= read.high_watermark {
            return out;
        }
        let mut bytes = read.records.clone();
        for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
            for record in set.records {
                if record.offset >= offset {
                    out.push((record.offset, record.value.unwrap()));
                    offset = record.offset + 1;
                }
            }
        }
    }
}

async fn all_committed(
    store: &MetadataStore,
    objects: Arc<dyn ObjectStore>,
    partitions: &[TopicPartition],
) -> BTreeMap<TopicPartition, Vec<(i64, Bytes)>> {
    let reader = logs_over(store, objects);
    let mut out = BTreeMap::new();
    for tp in partitions {
        out.insert(*tp, committed(&reader, *tp).await);
    }
    out
}

async fn bucket_keys(bucket: &InMemory) -> BTreeSet<String> {
    bucket
        .list(None)
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap()
}

/// Ten flushes over four partitions, the sixth with a large incompressible
/// batch: nine small objects and one large one.
async fn write_flushes(
    store: &MetadataStore,
    objects: Arc<dyn ObjectStore>,
) -> Vec<TopicPartition> {
    let topic = store
        .create_topic(NewTopic::new("compacted", PARTITIONS))
        .await
        .unwrap();
    let partitions: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic.id, p))
        .collect();
    let writer = logs_over(store, objects);
    for flush in 0..FLUSHES {
        let mut pending = Vec::new();
        for tp in &partitions {
            let records = if flush == LARGE_FLUSH && tp.partition == 0 {
                noise(2 * SMALL_OBJECT_BYTES as usize)
            } else {
                batch(&format!("f{flush}p{}", tp.partition), 3)
            };
            let appended = writer.append(*tp, &records, Acks::All).await.unwrap();
            pending.push(appended.durable);
        }
        writer.flush_once().await;
        for durable in pending {
            durable.await.unwrap();
        }
    }
    partitions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_objects_merge_and_every_record_reads_back_the_same() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let bucket = Arc::new(InMemory::new());
    let partitions = write_flushes(&store, bucket.clone()).await;
    let before_keys = bucket_keys(&bucket).await;
    assert_eq!(before_keys.len(), FLUSHES, "one object per flush");
    let before = all_committed(&store, bucket.clone(), &partitions).await;
    let counts: Vec<usize> = before.values().map(Vec::len).collect();
    assert_eq!(
        counts,
        vec![FLUSHES * 3 - 2, FLUSHES * 3, FLUSHES * 3, FLUSHES * 3]
    );
    let old_entries = store.lookup(partitions[1], 0, 100).await.unwrap().entries;
    assert_eq!(old_entries.len(), FLUSHES, "one entry per flush");

    let report = compaction(&store, bucket.clone()).pass().await.unwrap();
    println!("{report:?}");
    assert_eq!(report.objects_read, FLUSHES - 1, "every small object");
    assert_eq!(report.objects_written, 1, "one shared output");
    assert_eq!(report.ranges_skipped, 0);
    // Every partition: the chunks before the large object's and those after
    // it, each range merged into one entry; the large object's own chunk
    // stays. Three entries instead of ten.
    let spans = |tp| {
        let store = store.clone();
        async move {
            store
                .lookup(tp, 0, 100)
                .await
                .unwrap()
                .entries
                .iter()
                .map(|e| (e.base_offset, e.last_offset))
                .collect::<Vec<_>>()
        }
    };
    for tp in &partitions[1..] {
        assert_eq!(spans(*tp).await, vec![(0, 14), (15, 17), (18, 29)], "{tp}");
    }
    assert_eq!(
        spans(partitions[0]).await,
        vec![(0, 14), (15, 15), (16, 27)]
    );
    assert_eq!(report.entries_removed, (FLUSHES - 1) * PARTITIONS as usize);
    assert_eq!(report.entries_written, 2 * PARTITIONS as usize);
    assert_eq!(report.objects_freed, FLUSHES - 1);

    // The same records, read through the new entries.
    let after = all_committed(&store, bucket.clone(), &partitions).await;
    assert_eq!(after, before);
    // A reader that looked at the index before the swap still reads its
    // entry: the old object stays for the grace period.
    let old = &old_entries[3];
    let bytes = bucket
        .get_range(
            &object_store::path::Path::from(old.object_key.as_str()),
            old.byte_offset..old.byte_offset + old.byte_length,
        )
        .await
        .unwrap();
    let chunk = fjord_storage::decode_chunk(bytes).unwrap();
    assert_eq!(chunk.meta.first_offset, old.base_offset);

    // The garbage collector deletes the nine old objects; reads still match.
    let collected = gc(&store, bucket.clone()).pass().await.unwrap();
    assert_eq!(collected.objects_deleted, FLUSHES - 1);
    let after_keys = bucket_keys(&bucket).await;
    assert_eq!(after_keys.len(), 2, "the large object and the output");
    assert_eq!(
        all_committed(&store, bucket.clone(), &partitions).await,
        before
    );
    // Nothing left to compact: one small object is not merged with itself.
    let again = compaction(&store, bucket.clone()).pass().await.unwrap();
    assert_eq!(again.objects_written, 0, "{again:?}");
}

/// The second stage: a partition's small entries in objects too large for
/// the first stage move into an object of the partition alone, one ranged
/// GET per object they lie in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_s_small_entries_move_into_an_object_of_its_own() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let bucket = Arc::new(InMemory::new());
    let partitions = write_flushes(&store, bucket.clone()).await;
    let before = all_committed(&store, bucket.clone(), &partitions).await;
    let settings = CompactionSettings {
        min_age: Duration::ZERO,
        // No object is small: only the second stage runs.
        small_object_bytes: 1,
        partition_merge_bytes: 1,
        partition_object_bytes: 1,
        ..CompactionSettings::default()
    };
    let report = compaction_with(&store, bucket.clone(), settings)
        .pass()
        .await
        .unwrap();
    println!("{report:?}");
    assert_eq!(report.objects_written, PARTITIONS as usize);
    assert_eq!(report.objects_freed, FLUSHES);
    assert_eq!(report.objects_read, FLUSHES * PARTITIONS as usize);
    let mut outputs = BTreeSet::new();
    for tp in &partitions {
        let entries = store.lookup(*tp, 0, 100).await.unwrap().entries;
        let objects: BTreeSet<String> = entries.iter().map(|e| e.object_key.clone()).collect();
        assert_eq!(objects.len(), 1, "{tp}: one object of its own");
        outputs.extend(objects);
        // Partition 0's incompressible batch is stored raw: a chunk apart.
        let expected = if tp.partition == 0 { 3 } else { 1 };
        assert_eq!(entries.len(), expected, "{tp}");
    }
    assert_eq!(outputs.len(), PARTITIONS as usize, "no object shared");
    assert_eq!(
        all_committed(&store, bucket.clone(), &partitions).await,
        before
    );
    let collected = gc(&store, bucket.clone()).pass().await.unwrap();
    assert_eq!(collected.objects_deleted, FLUSHES);
    assert_eq!(bucket_keys(&bucket).await.len(), PARTITIONS as usize);
    assert_eq!(
        all_committed(&store, bucket.clone(), &partitions).await,
        before
    );
    // A second pass finds nothing to merge.
    let again = compaction_with(&store, bucket.clone(), settings)
        .pass()
        .await
        .unwrap();
    assert_eq!(again.objects_written, 0, "{again:?}");
}

/// The second stage for partitions with little data each: their merged
/// chunks share one object.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_with_little_to_merge_share_an_object() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let bucket = Arc::new(InMemory::new());
    let partitions = write_flushes(&store, bucket.clone()).await;
    let before = all_committed(&store, bucket.clone(), &partitions).await;
    let settings = CompactionSettings {
        min_age: Duration::ZERO,
        small_object_bytes: 1,
        partition_merge_bytes: 1,
        ..CompactionSettings::default()
    };
    let report = compaction_with(&store, bucket.clone(), settings)
        .pass()
        .await
        .unwrap();
    assert_eq!(report.objects_written, 1, "{report:?}");
    let mut outputs = BTreeSet::new();
    for tp in &partitions {
        let entries = store.lookup(*tp, 0, 100).await.unwrap().entries;
        outputs.extend(entries.iter().map(|e| e.object_key.clone()));
    }
    assert_eq!(outputs.len(), 1, "one shared object");
    gc(&store, bucket.clone()).pass().await.unwrap();
    assert_eq!(bucket_keys(&bucket).await.len(), 1);
    assert_eq!(
        all_committed(&store, bucket.clone(), &partitions).await,
        before
    );
}

/// Chunks wholly below a partition's log start are left for retention to
/// free; the rest of the partition moves. (Entries that change between the
/// compactor's read and its swap are the metadata conformance cases'.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_below_the_log_start_are_left_to_retention() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let bucket = Arc::new(InMemory::new());
    let partitions = write_flushes(&store, bucket.clone()).await;
    store.delete_records(partitions[2], 9).await.unwrap();
    let report = compaction(&store, bucket.clone()).pass().await.unwrap();
    assert_eq!(report.ranges_skipped, 0);
    let p2: Vec<(i64, i64)> = store
        .lookup(partitions[2], 0, 100)
        .await
        .unwrap()
        .entries
        .iter()
        .map(|e| (e.base_offset, e.last_offset))
        .collect();
    // 0..2, 3..5 and 6..8 lie below 9: left for retention (and not listed:
    // lookups start at the log start). 9..14 merged, 15..17 in the large
    // object, 18..29 merged.
    assert_eq!(p2, vec![(9, 14), (15, 17), (18, 29)]);
    let record = |p: usize| {
        let store = store.clone();
        let tp = partitions[p];
        async move { store.lookup(tp, 0, 1).await.unwrap().entries[0].segment_id }
    };
    assert_eq!(
        record(2).await,
        record(1).await,
        "moved into the same output"
    );
    let state = store.partition_state(partitions[2]).await.unwrap();
    assert_eq!((state.log_start_offset, state.high_watermark), (9, 30));
}

/// A reader whose object vanished between its index lookup and its GET
/// looks at the index once more; twice gone is data loss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_finds_an_object_gone_looks_at_the_index_once_more() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let bucket = Arc::new(FaultInjectingObjectStore::new(Arc::new(InMemory::new()), 1));
    let partitions = write_flushes(&store, bucket.clone()).await;
    let expected = all_committed(&store, bucket.clone(), &partitions[..1]).await;
    bucket.inject(
        objects::Operation::Get,
        objects::Fault::NotFound,
        objects::Trigger::Next(1),
    );
    let reader = logs_over(&store, bucket.clone());
    let read = committed(&reader, partitions[0]).await;
    assert_eq!(read, expected[&partitions[0]]);
    bucket.inject(
        objects::Operation::Get,
        objects::Fault::NotFound,
        objects::Trigger::Next(2),
    );
    let reader = logs_over(&store, bucket.clone());
    let error = reader.read(partitions[0], 0, 1 << 20).await.unwrap_err();
    assert_eq!(error.kind(), LogErrorKind::DataLoss, "{error}");
    // ListOffsets by timestamp takes the same second look.
    bucket.inject(
        objects::Operation::Get,
        objects::Fault::NotFound,
        objects::Trigger::Next(1),
    );
    let reader = logs_over(&store, bucket.clone());
    let hit = reader
        .find_by_timestamp(partitions[0], TimestampQuery::AtLeast(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hit.offset, 0);
}
