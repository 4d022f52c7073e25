//! Segment-commit throughput and index-lookup latency on the metadata backends.
//!
//! Run: `cargo bench -p fjord-metadata --bench segment_commit`
//! (`FJORD_BENCH_SECONDS` sets the time per case, default 3; `FJORD_BENCH_DIR` the
//! directory for the SQLite file, default the system temp dir).
//!
//! A hand-rolled harness rather than criterion: what matters here is whole
//! transactions per second and their latency percentiles under a time budget,
//! reported as one table, which criterion's per-iteration model does not give.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

use std::sync::Arc;
use std::time::Duration;

use fjord_common::{IdGenerator, RandomIds, SystemClock};
use fjord_metadata::kv::memory::MemoryBackend;
use fjord_metadata::kv::sqlite::SqliteBackend;
use fjord_metadata::kv::{Database, KvBackend, RetryPolicy};
use fjord_metadata::{
    ChunkCommit, MetadataStore, NewTopic, SegmentCommit, SegmentId, TopicPartition,
};
use tokio::time::Instant;

struct Percentiles {
    count: usize,
    per_second: f64,
    p50: Duration,
    p99: Duration,
    max: Duration,
}

fn summarize(mut samples: Vec<Duration>, elapsed: Duration) -> Percentiles {
    samples.sort_unstable();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q).round() as usize];
    Percentiles {
        count: samples.len(),
        per_second: samples.len() as f64 / elapsed.as_secs_f64(),
        p50: at(0.50),
        p99: at(0.99),
        max: at(1.0),
    }
}

fn store(backend: Arc<dyn KvBackend>) -> MetadataStore {
    MetadataStore::new(
        Database::new(backend, RetryPolicy::default(), 7),
        "bench",
        Arc::new(SystemClock),
        Arc::new(RandomIds::new()),
    )
}

async fn bench_backend(name: &str, backend: Arc<dyn KvBackend>, budget: Duration) {
    let store = store(backend);
    let ids = RandomIds::new();
    let topic = store
        .create_topic(NewTopic::new("bench", 256))
        .await
        .expect("create topic");
    let mut epochs = Vec::new();
    let mut next_offset = vec![0i64; 256];
    for p in 0..256 {
        let tp = TopicPartition::new(topic.id, p);
        epochs.push(
            store
                .acquire_leadership(tp, 0)
                .await
                .expect("lead")
                .leader_epoch,
        );
    }
    for partitions in [1usize, 16, 256] {
        let mut samples = Vec::new();
        let started = Instant::now();
        while started.elapsed() < budget {
            let segment_id = SegmentId(ids.ulid(0));
            let chunks = (0..partitions)
                .map(|p| {
                    let tp = TopicPartition::new(topic.id, p as i32);
                    let base = next_offset[p];
                    next_offset[p] += 100;
                    ChunkCommit {
                        partition: tp,
                        leader_epoch: epochs[p],
                        base_offset: base,
                        last_offset: base + 99,
                        record_count: 100,
                        max_timestamp: 0,
                        byte_offset: (p as u64) * 16_384,
                        byte_length: 16_384,
                    }
                })
                .collect();
            let commit = SegmentCommit {
                segment_id,
                object_key: format!("bench/segments/{segment_id}.seg"),
                object_size: partitions as u64 * 16_384,
                chunks,
                producers: Vec::new(),
                aborted: Vec::new(),
            };
            let t = Instant::now();
            store.commit_segment(&commit).await.expect("commit");
            samples.push(t.elapsed());
        }
        let s = summarize(samples, started.elapsed());
        println!(
            "| {name} | commit_segment | {partitions} | {} | {:.0} | {:.3} | {:.3} | {:.3} |",
            s.count,
            s.per_second,
            s.p50.as_secs_f64() * 1e3,
            s.p99.as_secs_f64() * 1e3,
            s.max.as_secs_f64() * 1e3
        );
    }
    // Index lookups at random offsets of partition 0, whose index now holds many
    // entries (one per commit above).
    let tp = TopicPartition::new(topic.id, 0);
    let hwm = next_offset[0];
    let entries = hwm / 100;
    let mut samples = Vec::new();
    let started = Instant::now();
    let rng = fjord_common::SeededRng::new(11);
    while started.elapsed() < budget {
        let offset = rng.below(hwm as u64) as i64;
        let t = Instant::now();
        let lookup = store.lookup(tp, offset, 1).await.expect("lookup");
        samples.push(t.elapsed());
        let entry = &lookup.entries[0];
        assert!(entry.base_offset <= offset && offset <= entry.last_offset);
    }
    let s = summarize(samples, started.elapsed());
    println!(
        "| {name} | lookup ({entries} entries) | 1 | {} | {:.0} | {:.3} | {:.3} | {:.3} |",
        s.count,
        s.per_second,
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3,
        s.max.as_secs_f64() * 1e3
    );
}

fn main() {
    let seconds: u64 = std::env::var("FJORD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let budget = Duration::from_secs(seconds);
    let dir = match std::env::var("FJORD_BENCH_DIR") {
        Ok(dir) => tempfile::tempdir_in(dir),
        Err(_) => tempfile::tempdir(),
    }
    .expect("temp dir");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "| backend | operation | partitions per segment | transactions | per second | p50 ms | p99 ms | max ms |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    runtime.block_on(async {
        let sqlite = SqliteBackend::open(dir.path().join("bench.db")).expect("open sqlite");
        bench_backend("sqlite", Arc::new(sqlite), budget).await;
        bench_backend("memory", Arc::new(MemoryBackend::new()), budget).await;
    });
}
