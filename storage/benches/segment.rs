//! Segment build and read throughput (one core), and ranged-read throughput from
//! a local S3-compatible server (moto, started as a child process like the
//! conformance tests do).
//!
//! Run: `cargo bench --profile dev -p fjord-storage --bench segment`
//! (`FJORD_BENCH_SECONDS` per case, default 2; `FJORD_BENCH_SKIP_S3=1` skips the
//! S3 part).
//!
//! Hand-rolled rather than criterion: each case is a fixed-time loop, reported in
//! one Markdown table. Build and read run on one thread, so their MB/s is per
//! core. MB/s counts uncompressed batch bytes (what producers send and consumers
//! receive); the ratio column is uncompressed / stored. The producer-compressed
//! payload is JSON-like data zstd-compressed in 16 KiB blocks, as batches from a
//! producer with `compression.type=zstd` are: it is built once with
//! [`ChunkHint::Unknown`] (the writer tries zstd again) and once with
//! [`ChunkHint::ProducerCompressed`] (stored as given, as the agent does).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_storage::object_store::{open_store, read_chunk, read_footer};
use fjord_storage::testing::MotoServer;
use fjord_storage::{
    ChunkHint, ChunkMeta, EncodedSegment, ObjectKeys, SegmentWriter, WriterOptions,
    decode_chunk_with_entry,
};
use object_store::path::Path;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::time::Instant;
use ulid::Ulid;
use uuid::Uuid;

const TOPIC: Uuid = Uuid::from_u128(0xbe9c);
const PARTITIONS: i32 = 8;
const CHUNK_BYTES: usize = 1 << 20;

/// A small deterministic generator (xorshift64*), enough for payloads.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// JSON events like those typical Kafka topics carry.
fn json_like(len: usize, seed: u64) -> Bytes {
    let mut g = Gen(seed | 1);
    let events = ["page_view", "click", "add_to_cart", "checkout", "search"];
    let mut out = String::with_capacity(len + 256);
    while out.len() < len {
        let r = g.next();
        out.push_str(&format!(
            r#"{{"ts":{},"user_id":{},"session":"{:016x}","event":"{}","page":"/products/{}","price_cents":{},"ua":"Mozilla/5.0 (X11; Linux x86_64)"}}"#,
            1_700_000_000_000u64 + (r % 10_000_000),
            r % 1_000_000,
            g.next(),
            events[(r % 5) as usize],
            r % 5_000,
            r % 100_000,
        ));
        out.push('\n');
    }
    out.truncate(len);
    Bytes::from(out)
}

fn random(len: usize, seed: u64) -> Bytes {
    let mut g = Gen(seed | 1);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&g.next().to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

/// JSON-like data as a compressing producer sends it: 16 KiB blocks, each one
/// zstd frame (level 3, the Kafka client default for zstd).
fn producer_compressed(len: usize, seed: u64) -> Bytes {
    const BLOCK: usize = 16 << 10;
    let mut out = Vec::with_capacity(len);
    let mut block_seed = seed;
    while out.len() < len {
        let block = json_like(BLOCK, block_seed);
        out.extend_from_slice(&zstd::bulk::compress(&block, 3).unwrap());
        block_seed += 1_000;
    }
    out.truncate(len);
    Bytes::from(out)
}

fn build(chunks: &[Bytes], level: i32, hint: ChunkHint) -> EncodedSegment {
    let mut writer = SegmentWriter::new(
        Ulid::from_parts(1_700_000_000_000, 1),
        WriterOptions::zstd(level),
    )
    .unwrap();
    for (partition, batches) in chunks.iter().enumerate() {
        let meta = ChunkMeta {
            topic_id: TOPIC,
            partition: partition as i32,
            first_offset: 0,
            last_offset: 999,
            record_count: 1_000,
            max_timestamp: 0,
        };
        writer
            .add_chunk_with_hint(meta, batches.clone(), hint)
            .unwrap();
    }
    writer.finish().unwrap()
}

fn read_all(segment: &EncodedSegment) -> usize {
    let mut total = 0;
    for entry in segment.footer.entries() {
        let range = entry.byte_range();
        let chunk = segment
            .bytes
            .slice(range.start as usize..range.end as usize);
        total += decode_chunk_with_entry(entry, chunk).unwrap().len();
    }
    total
}

fn segment_cases(budget: Duration) {
    println!("| payload | zstd level | build MB/s/core | read MB/s/core | ratio |");
    println!("|---|---|---|---|---|");
    for (name, generate, hint) in [
        (
            "JSON-like",
            json_like as fn(usize, u64) -> Bytes,
            ChunkHint::Unknown,
        ),
        ("random", random, ChunkHint::Unknown),
        (
            "producer-compressed, recompressed",
            producer_compressed,
            ChunkHint::Unknown,
        ),
        (
            "producer-compressed, stored as given (hint)",
            producer_compressed,
            ChunkHint::ProducerCompressed,
        ),
    ] {
        let chunks: Vec<Bytes> = (0..PARTITIONS)
            .map(|p| generate(CHUNK_BYTES, p as u64 + 1))
            .collect();
        let input = (CHUNK_BYTES * PARTITIONS as usize) as f64;
        for level in [1, 3] {
            let started = Instant::now();
            let mut builds = 0u64;
            let mut segment = build(&chunks, level, hint);
            while started.elapsed() < budget {
                segment = build(&chunks, level, hint);
                builds += 1;
            }
            let build_mbps = input * builds.max(1) as f64 / started.elapsed().as_secs_f64() / 1e6;

            let started = Instant::now();
            let mut reads = 0u64;
            while started.elapsed() < budget {
                assert_eq!(read_all(&segment), input as usize);
                reads += 1;
            }
            let read_mbps = input * reads as f64 / started.elapsed().as_secs_f64() / 1e6;
            println!(
                "| {name} | {level} | {build_mbps:.0} | {read_mbps:.0} | {:.2} |",
                input / segment.bytes.len() as f64
            );
        }
    }
}

async fn s3_cases(budget: Duration) {
    let server = MotoServer::start().expect("moto S3 server (see scripts/install-deps.sh)");
    server.create_bucket("fjord-bench").unwrap();
    let opened = open_store("s3://fjord-bench", &server.store_options()).unwrap();
    let store = opened.store;

    // One segment of 8 random 1 MiB chunks (incompressible, so 8 MiB stored).
    let chunks: Vec<Bytes> = (0..PARTITIONS)
        .map(|p| random(CHUNK_BYTES, p as u64 + 100))
        .collect();
    let segment = build(&chunks, 1, ChunkHint::Unknown);
    let key = ObjectKeys::new("bench")
        .unwrap()
        .segment(segment.footer.segment_id());
    store
        .put(&Path::from(&key), PutPayload::from(segment.bytes.clone()))
        .await
        .unwrap();
    let footer = read_footer(store.as_ref(), &key).await.unwrap();

    println!();
    println!(
        "| ranged GET from moto (loopback) | range bytes | concurrency | GETs/s | MB/s | p50 ms | p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    let object_len = segment.bytes.len() as u64;
    for (range_len, concurrency) in [
        (64 << 10, 1),
        (64 << 10, 8),
        (1 << 20, 1),
        (1 << 20, 8),
        (4 << 20, 4),
    ] {
        let started = Instant::now();
        let mut tasks = Vec::new();
        for task in 0..concurrency {
            let store = Arc::clone(&store);
            let path = Path::from(&key);
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut offset = (task as u64 * 1_234_567) % (object_len - range_len);
                while started.elapsed() < budget {
                    let t = Instant::now();
                    let bytes = store
                        .get_range(&path, offset..offset + range_len)
                        .await
                        .unwrap();
                    assert_eq!(bytes.len() as u64, range_len);
                    latencies.push(t.elapsed());
                    offset = (offset + 7_654_321) % (object_len - range_len);
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.unwrap());
        }
        let elapsed = started.elapsed().as_secs_f64();
        latencies.sort_unstable();
        let pct = |q: f64| {
            latencies[((latencies.len() as f64 - 1.0) * q).round() as usize].as_secs_f64() * 1e3
        };
        println!(
            "| | {range_len} | {concurrency} | {:.0} | {:.1} | {:.1} | {:.1} |",
            latencies.len() as f64 / elapsed,
            (latencies.len() as u64 * range_len) as f64 / elapsed / 1e6,
            pct(0.50),
            pct(0.99),
        );
    }

    // The read path as the agent uses it: one chunk per GET through the footer.
    let started = Instant::now();
    let mut bytes = 0usize;
    let mut gets = 0u64;
    while started.elapsed() < budget {
        for entry in footer.entries() {
            bytes += read_chunk(store.as_ref(), &key, entry).await.unwrap().len();
            gets += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "| read_chunk (verify + decode) | {} | 1 | {:.0} | {:.1} | | |",
        CHUNK_BYTES,
        gets as f64 / elapsed,
        bytes as f64 / elapsed / 1e6
    );
    let metrics = opened.metrics.snapshot();
    println!();
    println!(
        "requests: {} GET, {} PUT, {} errors; {:.0} GETs per GiB read",
        metrics.get_requests,
        metrics.put_requests,
        metrics.errors,
        metrics.get_requests as f64 / (metrics.get_bytes as f64 / f64::from(1u32 << 30)),
    );
}

fn main() {
    let seconds = std::env::var("FJORD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let budget = Duration::from_secs(seconds);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        segment_cases(budget);
        if std::env::var_os("FJORD_BENCH_SKIP_S3").is_none() {
            s3_cases(budget).await;
        }
    });
}
