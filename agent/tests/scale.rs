//! Review findings about scale, in-process: a takeover of many partitions is
//! not serial (M3), ListOffsets by timestamp is exact past 100k index entries
//! (M5), and idle idempotent producers expire instead of piling up (M1).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fjord_agent::log::{Acks, LogSettings, PartitionLogs, TimestampQuery};
use fjord_common::{Clock, IdGenerator, ManualClock, RandomIds, SystemClock};
use fjord_metadata::kv::fault::{Fault, FaultInjector, Operation, Trigger};
use fjord_metadata::{
    ChunkCommit, MetadataStore, NewTopic, OpenOptions, SegmentCommit, SegmentId, TopicPartition,
};
use fjord_storage::ObjectKeys;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use object_store::memory::InMemory;

/// One record at `timestamp`, from `producer` (`-1`: not idempotent).
fn batch(timestamp: i64, producer: i64) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: producer,
        producer_epoch: if producer < 0 { -1 } else { 0 },
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: if producer < 0 { -1 } else { 0 },
        timestamp,
        key: None,
        value: Some(Bytes::from_static(b"v")),
        headers: Default::default(),
    };
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &[record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    out.freeze()
}

fn logs(store: &MetadataStore, settings: LogSettings) -> Arc<PartitionLogs> {
    Arc::new(PartitionLogs::new(
        store.clone(),
        Arc::new(InMemory::new()),
        ObjectKeys::new("test").unwrap(),
        Arc::new(RandomIds::new()),
        Arc::new(SystemClock),
        1,
        settings,
        None,
    ))
}

/// M5: a timestamp past the first 100,000 index entries of a partition is
/// found exactly (the search used to read at most 100k entries from the log
/// start and answer "none" past them).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_offsets_by_timestamp_is_exact_past_100k_index_entries() {
    const ENTRIES: i64 = 120_000;
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store.create_topic(NewTopic::new("long", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    // A long history of one-record chunks, committed straight into the index
    // (their objects are never read: the search must not need them).
    let epoch = store.acquire_leadership(tp, 7).await.unwrap().leader_epoch;
    let keys = ObjectKeys::new("test").unwrap();
    let ids = RandomIds::new();
    for offset in 0..ENTRIES {
        let segment = ids.ulid(SystemClock.now_millis());
        store
            .commit_segment(&SegmentCommit {
                segment_id: SegmentId(segment),
                object_key: keys.segment(segment).into_string(),
                object_size: 100,
                chunks: vec![ChunkCommit {
                    partition: tp,
                    leader_epoch: epoch,
                    base_offset: offset,
                    last_offset: offset,
                    record_count: 1,
                    max_timestamp: 1_000_000 + offset,
                    byte_offset: 0,
                    byte_length: 100,
                }],
                producers: Vec::new(),
                aborted: Vec::new(),
            })
            .await
            .unwrap();
    }
    // Then real records, through the write path.
    let logs = logs(&store, LogSettings::default());
    for (i, timestamp) in [5_000_000, 4_000_000, 5_000_010].into_iter().enumerate() {
        let appended = logs
            .append(tp, &batch(timestamp, -1), Acks::All)
            .await
            .unwrap();
        logs.flush_once().await;
        assert_eq!(appended.durable.await.unwrap(), ENTRIES + i as i64);
    }
    let at_least = |t| logs.find_by_timestamp(tp, TimestampQuery::AtLeast(t));
    let hit = at_least(4_500_000)
        .await
        .unwrap()
        .expect("a record at or after");
    assert_eq!((hit.offset, hit.timestamp), (ENTRIES, 5_000_000));
    let hit = at_least(5_000_001)
        .await
        .unwrap()
        .expect("a record at or after");
    assert_eq!((hit.offset, hit.timestamp), (ENTRIES + 2, 5_000_010));
    assert_eq!(at_least(5_000_011).await.unwrap(), None);
    let max = logs
        .find_by_timestamp(tp, TimestampQuery::Max)
        .await
        .unwrap()
        .expect("the largest timestamp");
    assert_eq!((max.offset, max.timestamp), (ENTRIES + 2, 5_000_010));
}

/// M3: taking over many partitions runs their acquisitions at once (one lock
/// used to be held across each partition's metadata transactions, so a
/// takeover of N partitions took N times as long).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taking_over_many_partitions_runs_concurrently() {
    const PARTITIONS: i32 = 32;
    // Every commit takes 50 ms: a serial takeover has one transaction open
    // at a time.
    let slow = FaultInjector::new(1);
    let store = fjord_metadata::open_with_options(
        "memory://",
        OpenOptions {
            faults: Some(slow.clone()),
            ..OpenOptions::default()
        },
    )
    .await
    .unwrap();
    let topic = store
        .create_topic(NewTopic::new("wide", PARTITIONS))
        .await
        .unwrap();
    slow.inject(
        Operation::Commit,
        Fault::Delay(Duration::from_millis(50)),
        Trigger::Always,
    )
    .unwrap();
    let logs = logs(&store, LogSettings::default());
    let takeovers: Vec<_> = (0..PARTITIONS)
        .map(|p| {
            let logs = logs.clone();
            tokio::spawn(async move { logs.take_over(TopicPartition::new(topic.id, p)).await })
        })
        .collect();
    for takeover in takeovers {
        takeover.await.unwrap().unwrap();
    }
    assert_eq!(logs.led_partitions().len(), PARTITIONS as usize);
    let peak = slow.stats().peak_open_transactions;
    assert!(
        peak > 1,
        "acquisitions of different partitions ran one at a time (peak {peak})"
    );
    println!("peak metadata transactions open while taking over {PARTITIONS} partitions: {peak}");
}

/// M1: any client may send any producer id; idle ones expire
/// (`producer.id.expiration.ms`) in memory and in metadata, so neither the
/// leader's table nor the next takeover's read grows without bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_producer_ids_expire_in_memory_and_in_metadata() {
    const PRODUCERS: i64 = 1_000;
    let clock = Arc::new(ManualClock::new(1_700_000_000_000));
    // The agent's clock for metadata too: a commit checks its segment's age.
    let options = fjord_metadata::OpenOptions {
        clock: clock.clone(),
        ..fjord_metadata::OpenOptions::default()
    };
    let store = fjord_metadata::open_with_options("memory://", options)
        .await
        .unwrap();
    let topic = store.create_topic(NewTopic::new("p", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let logs = Arc::new(PartitionLogs::new(
        store.clone(),
        Arc::new(InMemory::new()),
        ObjectKeys::new("test").unwrap(),
        Arc::new(RandomIds::new()),
        clock.clone(),
        1,
        LogSettings {
            producer_id_expiration: Duration::from_secs(3_600),
            ..LogSettings::default()
        },
        None,
    ));
    // A hostile client: a thousand producer ids, one batch each.
    let now = 1_700_000_000_000;
    for producer in 0..PRODUCERS {
        logs.append(tp, &batch(now, producer), Acks::All)
            .await
            .unwrap();
    }
    logs.flush_once().await;
    assert_eq!(
        store.producer_states(tp).await.unwrap().len(),
        PRODUCERS as usize
    );
    // One of them keeps producing; the rest go quiet for over an hour.
    clock.advance(Duration::from_secs(3_000));
    logs.append(tp, &batch(now + 3_000_000, PRODUCERS), Acks::All)
        .await
        .unwrap();
    logs.flush_once().await;
    assert_eq!(
        logs.expire_producers().await,
        0,
        "nothing is idle an hour yet"
    );
    clock.advance(Duration::from_secs(1_000));
    assert_eq!(logs.expire_producers().await, PRODUCERS as usize);
    let left = store.producer_states(tp).await.unwrap();
    assert_eq!(
        left.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        vec![PRODUCERS],
        "only the active producer is remembered"
    );
    // An expired producer that comes back is a new producer, as in Kafka: its
    // batch is appended anew, not answered as a duplicate of offset 3.
    let back = logs
        .append(tp, &batch(now + 4_000_000, 3), Acks::All)
        .await
        .unwrap();
    logs.flush_once().await;
    assert_eq!(back.durable.await.unwrap(), PRODUCERS + 1);
}

/// When the log start has passed the chunk that first reached a timestamp
/// (`DeleteRecords`, retention), the search answers from the records kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timestamp_search_answers_from_the_records_kept_after_the_log_start_moved() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store.create_topic(NewTopic::new("cut", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let logs = logs(&store, LogSettings::default());
    // One chunk per record; the largest timestamp is at offset 1.
    for timestamp in [100, 900, 200, 300] {
        let appended = logs
            .append(tp, &batch(timestamp, -1), Acks::All)
            .await
            .unwrap();
        logs.flush_once().await;
        appended.durable.await.unwrap();
    }
    let search = |query| logs.find_by_timestamp(tp, query);
    let hit = search(TimestampQuery::Max).await.unwrap().unwrap();
    assert_eq!((hit.offset, hit.timestamp), (1, 900));
    let hit = search(TimestampQuery::AtLeast(150)).await.unwrap().unwrap();
    assert_eq!((hit.offset, hit.timestamp), (1, 900));
    store.delete_records(tp, 2).await.unwrap();
    let hit = search(TimestampQuery::Max).await.unwrap().unwrap();
    assert_eq!((hit.offset, hit.timestamp), (3, 300), "the largest kept");
    let hit = search(TimestampQuery::AtLeast(150)).await.unwrap().unwrap();
    assert_eq!((hit.offset, hit.timestamp), (2, 200), "the first kept");
    assert_eq!(search(TimestampQuery::AtLeast(301)).await.unwrap(), None);
}
