//! Write-ahead-log append throughput, acknowledgement latency and fsync latency.
//!
//! Run: `cargo bench --profile dev -p fjord-storage --bench wal`
//! (`FJORD_BENCH_SECONDS` per case, default 3; `FJORD_BENCH_DIR` for the log,
//! default the system temp dir — point it at the disk the agent will use).
//!
//! Hand-rolled rather than criterion: each case is a fixed-time run of concurrent
//! appenders, reported as throughput plus latency percentiles in one table. "ack"
//! is what an appender waits for (queueing behind the group in progress, the
//! write and the fsync); "fsync" is the `fdatasync` alone, as the WAL's writer
//! timed it (`WalStats::sync_latency`, an upper bound within 6.25 %).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_storage::wal::{Wal, WalOptions};
use tokio::time::Instant;

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index].as_secs_f64() * 1e3
}

async fn case(dir: &std::path::Path, payload_len: usize, appenders: usize, budget: Duration) {
    let case_dir = dir.join(format!("wal-{payload_len}-{appenders}"));
    let (wal, _) = Wal::open(&case_dir, WalOptions::default()).unwrap();
    let wal = Arc::new(wal);
    let payload = Bytes::from(vec![0x5a; payload_len]);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..appenders {
        let (wal, payload) = (wal.clone(), payload.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while started.elapsed() < budget {
                let t = Instant::now();
                let sequence = wal.append(payload.clone()).await.unwrap();
                latencies.push(t.elapsed());
                if sequence % 1024 == 0 {
                    // Keep the log bounded, as committed flushes would.
                    wal.truncate(sequence - 512).await.unwrap();
                }
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let stats = wal.stats().await.unwrap();
    latencies.sort_unstable();
    let fsync_ms = |q: f64| {
        stats
            .sync_latency
            .quantile(q)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "| {payload_len} | {appenders} | {:.0} | {:.1} | {:.1} | {:.3} | {:.3} | {:.3} | {:.3} |",
        latencies.len() as f64 / elapsed,
        (latencies.len() * payload_len) as f64 / elapsed / 1e6,
        stats.records as f64 / stats.syncs.max(1) as f64,
        percentile(&latencies, 0.50),
        percentile(&latencies, 0.99),
        fsync_ms(0.50),
        fsync_ms(0.99),
    );
}

fn main() {
    let seconds = std::env::var("FJORD_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let budget = Duration::from_secs(seconds);
    let dir = match std::env::var("FJORD_BENCH_DIR") {
        Ok(dir) => tempfile::tempdir_in(dir),
        Err(_) => tempfile::tempdir(),
    }
    .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| payload bytes | appenders | appends/s | MB/s | records per fsync | ack p50 ms | ack p99 ms | fsync p50 ms | fsync p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    runtime.block_on(async {
        for (payload_len, appenders) in [(1024, 1), (1024, 64), (65_536, 1), (65_536, 16)] {
            case(dir.path(), payload_len, appenders, budget).await;
        }
    });
}
