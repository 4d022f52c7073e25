//! Log compaction (`cleanup.policy=compact`).
//!
//! In process, against `PartitionLogs` over an in-memory bucket, with the
//! job's clock in the test's hands: the latest record of each key stays at
//! its offset and old objects stay readable until the garbage collector's
//! grace period ends; tombstones go once `delete.retention.ms` passed after
//! the clean that first kept them; a key map too small for the dirty part
//! cleans a prefix per pass; a producer's last batch stays (empty) and the
//! producer carries on; aborted transactions go, their markers after their
//! horizon, and an open transaction's data is not touched. One test prints
//! the job's CPU time per GiB cleaned.
//!
//! Against a real agent process and a real Kafka client (confluent-kafka,
//! `tests/clients/log_compaction.py`): 10,000 keys × 20 versions read back as
//! one record per key at its offset, an idempotent producer carries on across
//! compactions, tombstones go after `delete.retention.ms`, and
//! `compact,delete` still honours `retention.ms`; once more with object
//! compaction merging the same entries at the same time.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fjord_agent::cluster::{ClusterView, LiveAgent};
use fjord_agent::log::{Acks, LogSettings, PartitionLogs};
use fjord_agent::maintenance::leases::JobLeases;
use fjord_agent::maintenance::log_compaction::{
    LogCompaction, LogCompactionReport, LogCompactionSettings,
};
use fjord_agent::maintenance::retention::{Retention, RetentionSettings};
use fjord_common::{Clock, ManualClock, RandomIds, SystemClock};
use fjord_metadata::{MetadataStore, NewTopic, TopicPartition};
use fjord_storage::ObjectKeys;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use object_store::memory::InMemory;
use object_store::{ObjectStore, ObjectStoreExt};

/// Record timestamps: long before any `segment.ms`, so every chunk is
/// cleanable.
const OLD: i64 = 1_700_000_000_000;
const DELETE_RETENTION_MS: i64 = 1_000;

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

fn view() -> Arc<ClusterView> {
    Arc::new(ClusterView::new(LiveAgent {
        node_id: 1,
        host: "127.0.0.1".to_owned(),
        port: 9092,
    }))
}

/// A partition of a compacted topic, its writer (the leader) and the job.
struct Fixture {
    store: MetadataStore,
    bucket: Arc<InMemory>,
    tp: TopicPartition,
    writer: Arc<PartitionLogs>,
    clock: Arc<ManualClock>,
}

impl Fixture {
    async fn new(policy: &str) -> Self {
        let store = fjord_metadata::open("memory://").await.unwrap();
        let bucket = Arc::new(InMemory::new());
        let configs: BTreeMap<String, String> = [
            ("cleanup.policy", policy),
            ("segment.ms", "100"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "1000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let topic = store
            .create_topic(NewTopic {
                name: "compacted".into(),
                partition_count: 1,
                configs,
            })
            .await
            .unwrap();
        let writer = logs_over(&store, bucket.clone());
        Self {
            tp: TopicPartition::new(topic.id, 0),
            writer,
            clock: Arc::new(ManualClock::new(SystemClock.now_millis())),
            store,
            bucket,
        }
    }

    fn job(&self, settings: LogCompactionSettings) -> LogCompaction {
        LogCompaction::new(
            self.store.clone(),
            self.bucket.clone(),
            ObjectKeys::new("test").unwrap(),
            JobLeases::new(self.store.clone(), view()),
            self.clock.clone(),
            Arc::new(RandomIds::new()),
            settings,
        )
    }

    async fn pass(&self) -> LogCompactionReport {
        let report = self
            .job(LogCompactionSettings::default())
            .pass()
            .await
            .unwrap();
        println!("{report:?}");
        report
    }

    /// Appends `batch` and flushes it: one chunk, one index entry. Returns
    /// its base offset.
    async fn write(&self, batch: Bytes) -> i64 {
        let appended = self
            .writer
            .append(self.tp, &batch, Acks::All)
            .await
            .unwrap();
        self.writer.flush_once().await;
        appended.durable.await.unwrap();
        appended.base_offset
    }

    /// Every batch of the partition, read by an agent that does not lead it
    /// (through the index and the bucket).
    async fn batches(&self) -> Vec<Batch> {
        let reader = logs_over(&self.store, self.bucket.clone());
        let mut out = Vec::new();
        let mut offset = 0;
        loop {
            let read = reader.read(self.tp, offset, 1 << 20).await.unwrap();
            if offset >= read.high_watermark {
                return out;
            }
            let batches = split(&read.records);
            assert!(!batches.is_empty(), "no batch at {offset}");
            for batch in batches {
                if batch.last_offset >= offset {
                    offset = batch.last_offset + 1;
                    out.push(batch);
                }
            }
        }
    }

    /// Every data record: (offset, key, value).
    async fn records(&self) -> Vec<(i64, String, Option<String>)> {
        self.batches()
            .await
            .into_iter()
            .filter(|b| !b.control)
            .flat_map(|b| b.records)
            .collect()
    }

    async fn entries(&self) -> Vec<fjord_metadata::IndexEntry> {
        self.store.lookup(self.tp, 0, 10_000).await.unwrap().entries
    }
}

/// A batch as a reader decodes it.
#[derive(Debug, Clone)]
struct Batch {
    base_offset: i64,
    last_offset: i64,
    producer_id: i64,
    base_sequence: i32,
    control: bool,
    records: Vec<(i64, String, Option<String>)>,
}

fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    bytes[at..at + N].try_into().unwrap()
}

/// Splits fetched bytes into batches (a compacted batch's records do not
/// fill its offsets, and an emptied one has none: the header says where it
/// ends).
fn split(records: &Bytes) -> Vec<Batch> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let length = i32::from_be_bytes(field(records, at + 8)) as usize + 12;
        let mut one = records.slice(at..at + length);
        let base_offset = i64::from_be_bytes(field(&one, 0));
        let attributes = i16::from_be_bytes(field(&one, 21));
        let last_offset = base_offset + i64::from(i32::from_be_bytes(field(&one, 23)));
        let producer_id = i64::from_be_bytes(field(&one, 43));
        let base_sequence = i32::from_be_bytes(field(&one, 53));
        let set = RecordBatchDecoder::decode(&mut one).unwrap();
        out.push(Batch {
            base_offset,
            last_offset,
            producer_id,
            base_sequence,
            control: attributes & 0x20 != 0,
            records: set
                .records
                .into_iter()
                .map(|r| {
                    (
                        r.offset,
                        r.key
                            .map(|k| String::from_utf8(k.to_vec()).unwrap())
                            .unwrap_or_default(),
                        r.value.map(|v| String::from_utf8(v.to_vec()).unwrap()),
                    )
                })
                .collect(),
        });
        at += length;
    }
    out
}

/// A v2 batch of `(key, value)` records ("" key: none; `None` value: a
/// tombstone), from `producer` `(id, epoch, first sequence)` if given,
/// transactional or not.
fn batch(
    records: &[(&str, Option<&str>)],
    producer: Option<(i64, i16, i32)>,
    transactional: bool,
    compression: Compression,
) -> Bytes {
    let (producer_id, producer_epoch, sequence) = producer.unwrap_or((-1, -1, -1));
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: sequence + i as i32,
            timestamp: OLD + i as i64,
            key: (!key.is_empty()).then(|| Bytes::copy_from_slice(key.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: [(
                StrBytes::from_static_str("h"),
                Some(Bytes::from_static(b"x")),
            )]
            .into_iter()
            .collect(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    out.freeze()
}

fn plain(records: &[(&str, Option<&str>)]) -> Bytes {
    batch(records, None, false, Compression::Zstd)
}

/// The keys `key-{from}..key-{to}` at `version`.
fn versions(from: usize, to: usize, version: usize) -> Vec<(String, String)> {
    (from..to)
        .map(|k| (format!("key-{k}"), format!("v{version}-{k}")))
        .collect()
}

fn as_records(pairs: &[(String, String)]) -> Vec<(&str, Option<&str>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.as_str(), Some(v.as_str())))
        .collect()
}

/// The entries tile the partition's offsets, from the log start to the
/// high watermark.
async fn assert_tiled(fx: &Fixture) {
    let lookup = fx.store.lookup(fx.tp, 0, 10_000).await.unwrap();
    let mut next = lookup.entries[0].base_offset;
    assert!(next <= lookup.state.log_start_offset);
    for entry in &lookup.entries {
        assert_eq!(entry.base_offset, next, "{:?}", lookup.entries);
        next = entry.last_offset + 1;
    }
    assert_eq!(next, lookup.state.high_watermark);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_latest_record_of_each_key_stays_at_its_offset() {
    let fx = Fixture::new("compact").await;
    // 200 keys x 5 versions, a flush per version; a keyless record in the
    // first (refused by Kafka at produce time; kept if it got in).
    let mut latest: BTreeMap<String, (i64, String)> = BTreeMap::new();
    for version in 0..5 {
        let pairs = versions(0, 200, version);
        let mut records = as_records(&pairs);
        if version == 0 {
            records.push(("", Some("keyless")));
        }
        let base = fx.write(plain(&records)).await;
        for (i, (key, value)) in pairs.iter().enumerate() {
            latest.insert(key.clone(), (base + i as i64, value.clone()));
        }
    }
    let before = fx.entries().await;
    assert_eq!(before.len(), 5);

    let report = fx.pass().await;
    assert_eq!(report.partitions_cleaned, 1);
    assert_eq!(report.records_read, 1_001);
    assert_eq!(report.records_kept, 201);
    assert_eq!(report.objects_written, 1);
    assert_eq!(report.units_skipped, 0);
    let records = fx.records().await;
    let mut expected: Vec<(i64, String, Option<String>)> = latest
        .iter()
        .map(|(k, (offset, v))| (*offset, k.clone(), Some(v.clone())))
        .collect();
    expected.push((200, String::new(), Some("keyless".into())));
    expected.sort();
    assert_eq!(records, expected);
    assert_tiled(&fx).await;
    let state = fx.store.log_compaction_state(fx.tp).await.unwrap().unwrap();
    assert_eq!(state.first_dirty_offset, 1_001);
    assert_eq!(state.delete_horizon_ms, None);

    // A reader that looked at the index before the swap still reads its
    // entry: the old objects stay until the grace period ends.
    for old in &before {
        let bytes = fx
            .bucket
            .get_range(
                &object_store::path::Path::from(old.object_key.as_str()),
                old.byte_offset..old.byte_offset + old.byte_length,
            )
            .await
            .unwrap();
        assert_eq!(
            fjord_storage::decode_chunk(bytes)
                .unwrap()
                .meta
                .first_offset,
            old.base_offset
        );
    }
    let gc = Retention::new(
        fx.store.clone(),
        logs_over(&fx.store, fx.bucket.clone()),
        fx.bucket.clone(),
        ObjectKeys::new("test").unwrap(),
        JobLeases::new(fx.store.clone(), view()),
        Arc::new(SystemClock),
        RetentionSettings {
            default_retention_ms: -1,
            object_grace: Duration::ZERO,
            ..RetentionSettings::default()
        },
    );
    assert_eq!(gc.pass().await.unwrap().objects_deleted, 5);
    assert_eq!(fx.records().await, records, "read from the new object");

    // Clean: nothing to do.
    assert_eq!(fx.pass().await, LogCompactionReport::default());
    // Ten keys again: their previous records go, the rest stays.
    let pairs = versions(0, 10, 5);
    let base = fx.write(plain(&as_records(&pairs))).await;
    let report = fx.pass().await;
    assert_eq!(report.records_kept, 201);
    let records = fx.records().await;
    assert_eq!(records.len(), 201);
    assert!(
        records
            .iter()
            .all(|(offset, _, _)| !(801..=810).contains(offset)),
        "the ten keys' v4 went"
    );
    assert!(records.iter().any(|(offset, _, _)| *offset == 811));
    assert_eq!(records.last().unwrap().0, base + 9);
    assert_tiled(&fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_go_once_delete_retention_ms_passed_after_a_clean() {
    let fx = Fixture::new("compact").await;
    fx.write(plain(&[
        ("a", Some("1")),
        ("b", Some("1")),
        ("c", Some("1")),
    ]))
    .await;
    fx.write(batch(
        &[("a", None), ("b", Some("2"))],
        None,
        false,
        Compression::Gzip,
    ))
    .await;
    fx.pass().await;
    // The tombstone stays (the latest of its key); its batch got a horizon.
    let records = fx.records().await;
    assert_eq!(
        records,
        vec![
            (2, "c".into(), Some("1".into())),
            (3, "a".into(), None),
            (4, "b".into(), Some("2".into())),
        ]
    );
    let state = fx.store.log_compaction_state(fx.tp).await.unwrap().unwrap();
    let horizon = state.delete_horizon_ms.unwrap();
    assert_eq!(horizon, fx.clock.now_millis() + DELETE_RETENTION_MS);
    // Before the horizon nothing is due.
    fx.clock.advance(Duration::from_millis(500));
    assert_eq!(fx.pass().await.partitions_cleaned, 0);
    fx.clock.advance(Duration::from_millis(500));
    let report = fx.pass().await;
    assert_eq!(report.partitions_cleaned, 1, "the horizon made it due");
    assert_eq!(
        fx.records().await,
        vec![
            (2, "c".into(), Some("1".into())),
            (4, "b".into(), Some("2".into()))
        ]
    );
    let state = fx.store.log_compaction_state(fx.tp).await.unwrap().unwrap();
    assert_eq!(state.delete_horizon_ms, None);
    assert_tiled(&fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_map_too_small_cleans_a_prefix_and_later_passes_the_rest() {
    let fx = Fixture::new("compact").await;
    // 300 keys x 3 versions in batches of 20 keys (a flush each).
    let mut latest = BTreeMap::new();
    for version in 0..3 {
        for from in (0..300).step_by(20) {
            let pairs = versions(from, from + 20, version);
            let base = fx.write(plain(&as_records(&pairs))).await;
            for (i, (k, v)) in pairs.iter().enumerate() {
                latest.insert(k.clone(), (base + i as i64, v.clone()));
            }
        }
    }
    // Room for 100 keys: a third of the dirty part's per pass, at best.
    let settings = LogCompactionSettings {
        buffer_bytes: 112 * 24,
        ..LogCompactionSettings::default()
    };
    let first = fx.job(settings).pass().await.unwrap();
    println!("{first:?}");
    assert_eq!(first.maps_filled, 1);
    let checkpoint = fx.store.log_compaction_state(fx.tp).await.unwrap().unwrap();
    assert!(checkpoint.first_dirty_offset > 0 && checkpoint.first_dirty_offset < 900);
    let mut passes = 1;
    loop {
        let report = fx.job(settings).pass().await.unwrap();
        passes += 1;
        if report.partitions_cleaned == 0 {
            break;
        }
        assert!(passes < 50, "no end to the cleans");
    }
    println!("{passes} passes");
    let expected: Vec<(i64, String, Option<String>)> = {
        let mut v: Vec<_> = latest
            .iter()
            .map(|(k, (o, val))| (*o, k.clone(), Some(val.clone())))
            .collect();
        v.sort();
        v
    };
    assert_eq!(fx.records().await, expected);
    assert_tiled(&fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producers_last_batch_stays_and_the_producer_carries_on() {
    let fx = Fixture::new("compact").await;
    let producer = 4_000;
    fx.write(batch(
        &[("a", Some("p-1")), ("b", Some("p-1"))],
        Some((producer, 0, 0)),
        false,
        Compression::Lz4,
    ))
    .await;
    fx.write(plain(&[("a", Some("2")), ("b", Some("2"))])).await;
    fx.pass().await;
    let batches = fx.batches().await;
    // The producer's batch lost both records but stays, with its sequence.
    let kept = batches
        .iter()
        .find(|b| b.producer_id == producer)
        .expect("the producer's last batch");
    assert_eq!((kept.base_offset, kept.last_offset), (0, 1));
    assert!(kept.records.is_empty());
    assert_eq!(kept.base_sequence, 0);
    // The producer carries on from sequence 2.
    let next = fx
        .write(batch(
            &[("c", Some("p-2"))],
            Some((producer, 0, 2)),
            false,
            Compression::Lz4,
        ))
        .await;
    assert_eq!(next, 4);
    fx.write(plain(&[("d", Some("1"))])).await;
    fx.pass().await;
    // Now its earlier batch is not its last: it goes.
    let batches = fx.batches().await;
    assert!(batches.iter().all(|b| b.base_offset != 0), "{batches:?}");
    assert_eq!(fx.records().await.len(), 4);
    assert_tiled(&fx).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_transactions_go_and_open_ones_are_not_touched() {
    let fx = Fixture::new("compact").await;
    let (aborting, committing, open) = (5_000, 6_000, 7_000);
    let txn = |records: &[(&str, Option<&str>)], producer: i64, sequence: i32| {
        batch(
            records,
            Some((producer, 0, sequence)),
            true,
            Compression::None,
        )
    };
    fx.write(txn(&[("x", Some("aborted"))], aborting, 0)).await;
    fx.write(txn(&[("w", Some("committed"))], committing, 0))
        .await;
    let marker = |producer: i64, commit: bool| {
        let writer = fx.writer.clone();
        let tp = fx.tp;
        async move {
            let done = writer
                .append_marker(tp, producer, 0, commit, 0)
                .await
                .unwrap();
            writer.flush_once().await;
            done.await.unwrap()
        }
    };
    let abort_at = marker(aborting, false).await;
    let commit_at = marker(committing, true).await;
    fx.write(plain(&[("x", Some("plain")), ("y", Some("old"))]))
        .await;
    fx.write(plain(&[("y", Some("newest"))])).await;
    // A transaction left open, and data after it.
    let open_at = fx.write(txn(&[("z", Some("open"))], open, 0)).await;
    fx.write(plain(&[("z", Some("after"))])).await;
    let state = fx.store.partition_state(fx.tp).await.unwrap();
    assert_eq!(state.last_stable_offset(), open_at);
    let untouched: Vec<_> = fx
        .entries()
        .await
        .into_iter()
        .filter(|e| e.last_offset >= open_at)
        .collect();

    // The markers carry the writer's time: past segment.ms, they are
    // cleanable too.
    fx.clock.advance(Duration::from_secs(1));
    fx.pass().await;
    let batches = fx.batches().await;
    let by_offset: HashMap<i64, &Batch> = batches.iter().map(|b| (b.base_offset, b)).collect();
    // The aborted batch lost its record but is its producer's last: kept
    // empty.
    assert!(by_offset[&0].records.is_empty());
    assert_eq!(by_offset[&0].producer_id, aborting);
    // Both markers stay for now: the commit's transaction kept a record, the
    // abort's waits for its delete horizon.
    assert!(by_offset[&commit_at].control);
    assert!(by_offset[&abort_at].control);
    let records = fx.records().await;
    assert_eq!(
        records
            .iter()
            .filter(|(o, _, _)| *o < open_at)
            .cloned()
            .collect::<Vec<_>>(),
        vec![
            (1, "w".into(), Some("committed".into())),
            (4, "x".into(), Some("plain".into())),
            (6, "y".into(), Some("newest".into())),
        ]
    );
    // From the open transaction on nothing changed, z's two records
    // included.
    let now: Vec<_> = fx
        .entries()
        .await
        .into_iter()
        .filter(|e| e.last_offset >= open_at)
        .collect();
    assert_eq!(now, untouched);
    assert_eq!(records.iter().filter(|(_, k, _)| k == "z").count(), 2);
    let horizon = fx
        .store
        .log_compaction_state(fx.tp)
        .await
        .unwrap()
        .unwrap()
        .delete_horizon_ms;
    assert_eq!(horizon, Some(fx.clock.now_millis() + DELETE_RETENTION_MS));

    // After the horizon the abort marker goes; the commit marker stays with
    // its transaction's record.
    fx.clock
        .advance(Duration::from_millis(DELETE_RETENTION_MS as u64));
    assert_eq!(fx.pass().await.partitions_cleaned, 1);
    let batches = fx.batches().await;
    assert!(
        batches.iter().all(|b| b.base_offset != abort_at),
        "{batches:?}"
    );
    assert!(
        batches
            .iter()
            .any(|b| b.base_offset == commit_at && b.control)
    );
    assert_eq!(fx.records().await, records);
    assert_tiled(&fx).await;
}

/// Process CPU time (user + system), from /proc/self/stat.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    // utime and stime are fields 14 and 15 (1-based), 12 and 13 here;
    // clock ticks are 100 a second on Linux.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_time_per_gib_cleaned() {
    let fx = Fixture::new("compact").await;
    // 16384 keys x 16 versions of 200-byte values of little redundancy (as
    // compressed by the producer, lz4), about 52 MiB of records.
    const KEYS: usize = 16_384;
    let rng = fjord_common::SeededRng::new(11);
    let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    for version in 0..16 {
        for from in (0..KEYS).step_by(2048) {
            let pairs: Vec<(String, String)> = (from..from + 2048)
                .map(|k| {
                    let noise: String = (0..184)
                        .map(|_| char::from(alphabet[rng.below(alphabet.len() as u64) as usize]))
                        .collect();
                    (format!("key-{k:05}"), format!("{version:02}-{noise}"))
                })
                .collect();
            let records = as_records(&pairs);
            let mut all = BytesMut::new();
            for chunk in records.chunks(256) {
                all.extend_from_slice(&batch(chunk, None, false, Compression::Lz4));
            }
            fx.write(all.freeze()).await;
        }
    }
    let uncompressed = (KEYS * 16 * 200) as u64;
    let before = cpu_seconds();
    let report = fx.pass().await;
    let after = cpu_seconds();
    assert_eq!(report.records_kept, KEYS as u64);
    if let (Some(before), Some(after)) = (before, after) {
        let gib = report.bytes_cleaned as f64 / f64::from(1 << 30);
        let records_gib = uncompressed as f64 / f64::from(1 << 30);
        println!(
            "log compaction CPU: {:.2} s for {:.1} MiB stored ({:.1} MiB of records, {} records): \
             {:.1} s per GiB stored, {:.1} s per GiB of records",
            after - before,
            report.bytes_cleaned as f64 / f64::from(1 << 20),
            uncompressed as f64 / f64::from(1 << 20),
            report.records_read,
            (after - before) / gib,
            (after - before) / records_gib,
        );
    }
    assert_eq!(fx.records().await.len(), KEYS);
}

/// The log filter that shows log compaction passes.
const LOG: (&str, &str) = ("RUST_LOG", "warn,fjord_agent::maintenance=info");

/// Runs `log_compaction.py` against an agent started with `extra` flags
/// besides fast log compaction and retention, and checks what it saw.
fn client_scenario(extra: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("agent.log");
    let mut args = vec![
        "--flush-interval-ms",
        "20",
        "--log-compaction-interval-ms",
        "500",
        "--log-retention-check-interval-ms",
        "300",
        "--object-grace-ms",
        "2000",
    ];
    args.extend_from_slice(extra);
    let agent = support::AgentProcess::start_on_logging(
        dir.path(),
        support::free_port(),
        &args,
        &[LOG],
        Some(&log),
    );
    let output = support::run_python_client_with_args("log_compaction.py", &[&agent.address()]);
    println!("{output}");
    let summary: HashMap<&str, &str> = output
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    let field = |name: &str| summary.get(name).copied().unwrap_or("(missing)");
    assert_eq!(field("produced"), "200000");
    assert_eq!(field("produce_errors"), "0");
    assert_eq!(field("compacted_read"), "10000");
    assert_eq!(field("compacted_exact"), "True");
    assert_eq!(field("timestamp_search_exact"), "True");
    assert_eq!(field("keyless_refused"), "True");
    assert_eq!(
        field("carried_on_errors"),
        "0",
        "{}",
        field("carried_on_error_names")
    );
    assert_eq!(field("carried_on_read"), "10000");
    assert_eq!(field("carried_on_exact"), "True");
    assert_eq!(field("tombstones_seen"), "1000");
    assert_eq!(field("tombstones_exact"), "True");
    assert_eq!(field("tombstones_left"), "0");
    assert_eq!(field("after_tombstones_read"), "9000");
    assert_eq!(field("after_tombstones_exact"), "True");
    assert_eq!(field("producer_errors_total"), "0");
    assert_eq!(field("both_exact"), "True");
    assert_eq!(field("both_read"), "50");
    assert_eq!(field("both_earliest"), "300");
    assert_eq!(field("both_first"), "300");
    let log = std::fs::read_to_string(&log).unwrap();
    let passes: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("log compaction pass"))
        .collect();
    let total = |name: &str| -> u64 {
        passes
            .iter()
            .filter_map(|line| line.split(&format!("{name}: ")).nth(1))
            .filter_map(|rest| {
                rest.split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    println!(
        "{} log compaction passes: {} cleans, {} objects written, {} units skipped (their \
         entries changed meanwhile), {} MiB cleaned",
        passes.len(),
        total("partitions_cleaned"),
        total("objects_written"),
        total("units_skipped"),
        total("bytes_cleaned") >> 20,
    );
    println!(
        "{} object compaction passes did something",
        log.lines()
            .filter(|line| line.contains("object compaction pass"))
            .count()
    );
    assert!(!passes.is_empty(), "no pass logged:\n{log}");
    assert!(
        !log.contains("log compaction of a partition failed"),
        "{log}"
    );
    drop(agent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_client_sees_one_record_per_key_and_tombstones_go() {
    client_scenario(&[]);
}

/// The same with object compaction merging every object at once: both jobs
/// swap the same entries; a swap refused because the other moved first is
/// retried at the next pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_compaction_beside_object_compaction() {
    client_scenario(&[
        "--object-compaction-interval-ms",
        "700",
        "--object-compaction-min-age-ms",
        "0",
    ]);
}
