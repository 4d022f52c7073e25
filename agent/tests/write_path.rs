//! The write path in-process, under object-store faults: many producers append
//! to several partitions while a share of the segment uploads fail (some after
//! the object was stored). Whatever happens, each partition's committed log has no
//! gap, every acknowledged batch is in it at its acknowledged offset byte for
//! byte, and a batch answered with an error is never half there. A failed upload
//! fails no produce: its batches flush again, so every batch is acknowledged.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fjord_agent::log::{Acks, LogSettings, PartitionLogs};
use fjord_common::{RandomIds, SystemClock};
use fjord_metadata::{NewTopic, TopicPartition};
use fjord_storage::ObjectKeys;
use fjord_storage::object_store::{Fault, FaultInjectingObjectStore, Operation, Trigger};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use object_store::memory::InMemory;
use tokio_util::sync::CancellationToken;

const PARTITIONS: i32 = 4;
const PRODUCERS: usize = 8;
const BATCHES_PER_PRODUCER: usize = 60;

fn batch(label: &str, count: i32) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            // One batch (the encoder starts a new one where offset - sequence
            // changes) whose base sequence is -1: no idempotent producer.
            sequence: i - 1,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(format!("{label}/{i}"))),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    out.freeze()
}

/// Every record of a partition's committed log: offset → value.
async fn committed_log(logs: &PartitionLogs, tp: TopicPartition) -> (i64, BTreeMap<i64, String>) {
    let mut out = BTreeMap::new();
    let mut offset = 0;
    loop {
        let read = logs.read(tp, offset, 1 << 20).await.unwrap();
        if offset >= read.high_watermark {
            return (read.high_watermark, out);
        }
        let mut bytes = read.records.clone();
        let records: Vec<Record> = RecordBatchDecoder::decode_all(&mut bytes)
            .unwrap()
            .into_iter()
            .flat_map(|set| set.records)
            .collect();
        assert!(!records.is_empty(), "a read below the HWM returned nothing");
        for record in records {
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            assert!(
                out.insert(record.offset, value).is_none(),
                "offset {} read twice",
                record.offset
            );
            offset = record.offset + 1;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn faults_never_leave_a_gap_or_lose_an_acknowledged_batch() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store
        .create_topic(NewTopic::new("faulty", PARTITIONS))
        .await
        .unwrap();
    let faults = Arc::new(FaultInjectingObjectStore::new(Arc::new(InMemory::new()), 7));
    faults.inject(
        Operation::Put,
        Fault::Transient,
        Trigger::PerMillion(150_000),
    );
    faults.inject(
        Operation::Put,
        Fault::TransientAfterApply,
        Trigger::PerMillion(100_000),
    );
    let logs = Arc::new(PartitionLogs::new(
        store.clone(),
        faults.clone(),
        ObjectKeys::new("test").unwrap(),
        Arc::new(RandomIds::new()),
        Arc::new(SystemClock),
        1,
        LogSettings {
            flush_interval: Duration::from_millis(3),
            ..LogSettings::default()
        },
        None,
    ));
    let shutdown = CancellationToken::new();
    let flusher = tokio::spawn(logs.clone().run_flusher(shutdown.clone()));

    let mut producers = Vec::new();
    for producer in 0..PRODUCERS {
        let logs = logs.clone();
        producers.push(tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for i in 0..BATCHES_PER_PRODUCER {
                let partition = i32::try_from((producer + i) % PARTITIONS as usize).unwrap();
                let tp = TopicPartition::new(topic.id, partition);
                let label = format!("p{producer}-b{i}");
                // Every tenth batch is large enough to be compressed ahead of
                // its flush (over 64 KiB).
                let count = if i % 10 == 3 {
                    6_000
                } else {
                    1 + i32::try_from(i % 4).unwrap()
                };
                let outcome = match logs.append(tp, &batch(&label, count), Acks::All).await {
                    Ok(appended) => appended.durable.await,
                    Err(error) => Err(error),
                };
                outcomes.push((tp, label, count, outcome.map_err(|e| e.to_string())));
            }
            outcomes
        }));
    }
    let mut outcomes = Vec::new();
    for producer in producers {
        outcomes.extend(producer.await.unwrap());
    }
    shutdown.cancel();
    flusher.await.unwrap().unwrap();
    faults.clear();
    assert!(faults.injected() > 0, "faults fired");

    let mut logs_by_partition = BTreeMap::new();
    for partition in 0..PARTITIONS {
        let tp = TopicPartition::new(topic.id, partition);
        let (high_watermark, log) = committed_log(&logs, tp).await;
        // No gap: offsets 0..HWM all hold a record.
        assert_eq!(log.len() as i64, high_watermark, "{tp}: a gap");
        assert_eq!(
            log.keys().copied().collect::<Vec<_>>(),
            (0..high_watermark).collect::<Vec<_>>()
        );
        logs_by_partition.insert(tp, log);
    }
    // The same logs read from the bucket (index, segment chunks) by an agent
    // that leads nothing, rather than from the leader's memory.
    let reader = PartitionLogs::new(
        store.clone(),
        faults.clone(),
        ObjectKeys::new("test").unwrap(),
        Arc::new(RandomIds::new()),
        Arc::new(SystemClock),
        2,
        LogSettings::default(),
        None,
    );
    for (tp, log) in &logs_by_partition {
        assert_eq!(
            &committed_log(&reader, *tp).await.1,
            log,
            "{tp} from the bucket"
        );
    }
    let (mut acknowledged, mut failed) = (0, 0);
    for (tp, label, count, outcome) in &outcomes {
        let log = &logs_by_partition[tp];
        let present: Vec<i64> = log
            .iter()
            .filter(|(_, v)| v.starts_with(&format!("{label}/")))
            .map(|(o, _)| *o)
            .collect();
        match outcome {
            Ok(base) => {
                acknowledged += 1;
                let expected: Vec<i64> = (*base..*base + i64::from(*count)).collect();
                assert_eq!(present, expected, "{label} acknowledged at {base}");
                for (i, offset) in expected.iter().enumerate() {
                    assert_eq!(log[offset], format!("{label}/{i}"));
                }
            }
            Err(_) => {
                failed += 1;
                assert!(
                    present.is_empty() || present.len() == *count as usize,
                    "{label}: half a batch"
                );
            }
        }
    }
    assert_eq!(
        (acknowledged, failed),
        (PRODUCERS * BATCHES_PER_PRODUCER, 0),
        "failed uploads are retried, never answered as failures"
    );
    println!(
        "{acknowledged} batches acknowledged, {failed} failed, {} faults injected; committed: {:?}",
        faults.injected(),
        logs_by_partition
            .values()
            .map(BTreeMap::len)
            .collect::<Vec<_>>()
    );
}

/// Logs flushing on an interval of an hour (so only the other triggers
/// flush), with `wal_dir` as the WAL when given.
fn hourly_logs(
    store: &fjord_metadata::MetadataStore,
    wal_dir: Option<&std::path::Path>,
) -> Arc<PartitionLogs> {
    let wal = wal_dir.map(|dir| {
        let (wal, recovery) =
            fjord_storage::wal::Wal::open(dir, fjord_storage::wal::WalOptions::default()).unwrap();
        (wal, recovery.next_sequence)
    });
    Arc::new(PartitionLogs::new(
        store.clone(),
        Arc::new(InMemory::new()),
        ObjectKeys::new("test").unwrap(),
        Arc::new(RandomIds::new()),
        Arc::new(SystemClock),
        1,
        LogSettings {
            flush_interval: Duration::from_secs(3600),
            flush_idle: Duration::from_millis(1),
            ..LogSettings::default()
        },
        wal,
    ))
}

/// A producer waiting for `acks=all` is not made to wait for the flush
/// interval: once nothing more arrives, waiting could not add to the segment,
/// so the flush starts. Each of these produces waits for the one before, as a
/// client with one request in flight does; with an hour's interval none would
/// be answered without the idle trigger.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_all_produces_are_answered_without_waiting_for_the_interval() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let logs = hourly_logs(&store, None);
    let shutdown = CancellationToken::new();
    let flusher = tokio::spawn(logs.clone().run_flusher(shutdown.clone()));
    for i in 0..20 {
        let appended = logs
            .append(tp, &batch(&format!("r{i}"), 1), Acks::All)
            .await;
        let durable = tokio::time::timeout(Duration::from_secs(60), appended.unwrap().durable);
        let offset = durable
            .await
            .expect("answered only by the interval")
            .unwrap();
        assert_eq!(offset, i64::from(i));
    }
    let (high_watermark, log) = committed_log(&logs, tp).await;
    assert_eq!((high_watermark, log.len()), (20, 20));
    shutdown.cancel();
    flusher.await.unwrap().unwrap();
}

/// The idle trigger flushes only for requests that wait on a commit:
/// `acks=1` batches (answered once in the WAL) wait for the interval or for
/// `flush-bytes`, so a light `acks=1` load does not cost a PUT per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks1_batches_alone_do_not_start_an_early_flush() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let dir = tempfile::tempdir().unwrap();
    let logs = hourly_logs(&store, Some(dir.path()));
    let shutdown = CancellationToken::new();
    let flusher = tokio::spawn(logs.clone().run_flusher(shutdown.clone()));
    let first = logs.append(tp, &batch("a", 1), Acks::Leader).await.unwrap();
    assert_eq!(first.durable.await.unwrap(), 0);
    // Far longer than the idle time: had it flushed, the batch would show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(committed_log(&logs, tp).await.0, 0, "flushed for nobody");
    // A request that waits on the commit flushes both.
    let second = logs.append(tp, &batch("b", 1), Acks::All).await.unwrap();
    let durable = tokio::time::timeout(Duration::from_secs(60), second.durable);
    assert_eq!(durable.await.expect("never flushed").unwrap(), 1);
    let (high_watermark, _) = committed_log(&logs, tp).await;
    assert_eq!(high_watermark, 2);
    shutdown.cancel();
    flusher.await.unwrap().unwrap();
}
