//! Several OS processes share one SQLite metadata file (as several agents on one
//! host do) and contend on one counter: no increment may be lost or doubled. The
//! children start incrementing together (after all are ready) and report how many
//! of their transactions needed more than one attempt, so the test shows they
//! really conflicted rather than ran one after another.

#![allow(clippy::unwrap_used)] // tests fail loudly by design
#![cfg(feature = "sqlite")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fjord_metadata::kv::sqlite::SqliteBackend;
use fjord_metadata::kv::{Database, KvError, RangeOptions, RetryPolicy, decode_counter};

const CHILD_DB_ENV: &str = "FJORD_TEST_CHILD_DB";
const CHILD_NAME_ENV: &str = "FJORD_TEST_CHILD_NAME";
/// A file the parent creates once every child is ready: the start signal.
const CHILD_GO_ENV: &str = "FJORD_TEST_CHILD_GO";
/// Marks the children's report lines (libtest may print its own text before them
/// on the same line).
const REPORT: &str = "fjord-child-report:";

/// The report in `line`, if it holds one.
fn report(line: &str) -> Option<&str> {
    line.split_once(REPORT).map(|(_, report)| report.trim())
}
const PROCESSES: usize = 4;
const INCREMENTS_PER_PROCESS: i64 = 1_000;

fn counter_key() -> Vec<u8> {
    foundationdb_tuple::pack(&("multi-process", "counter"))
}

fn receipts_prefix() -> Vec<u8> {
    foundationdb_tuple::pack(&("multi-process", "receipt"))
}

/// The body of each child process: 1,000 read-modify-write increments of one
/// counter, each leaving a receipt key in the same transaction.
#[test]
#[ignore = "entry point of the child processes of four_processes_share_one_sqlite_file"]
fn child_process_increments() {
    let path = std::env::var(CHILD_DB_ENV).expect("run by the parent test");
    let name = std::env::var(CHILD_NAME_ENV).expect("run by the parent test");
    let go = std::env::var(CHILD_GO_ENV).expect("run by the parent test");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Every process opens (and migrates) the file concurrently.
        let backend = Arc::new(SqliteBackend::open(&path).unwrap());
        let seed = std::process::id().into();
        let db = Database::new(backend, RetryPolicy::default(), seed);
        println!("{REPORT} ready");
        // Bounded, so a child whose parent died does not linger.
        let mut polls = 0u32;
        while !std::path::Path::new(&go).exists() {
            polls += 1;
            assert!(polls < 120_000, "no start signal from the parent");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Transactions that needed more than one attempt.
        let retried = AtomicU64::new(0);
        for i in 0..INCREMENTS_PER_PROCESS {
            let receipt = foundationdb_tuple::pack(&("multi-process", "receipt", name.as_str(), i));
            db.run(|txn, attempt| {
                let receipt = receipt.clone();
                if attempt.number == 2 {
                    retried.fetch_add(1, Ordering::Relaxed);
                }
                async move {
                    let key = counter_key();
                    let value = decode_counter(txn.get(&key).await?.as_deref());
                    txn.set(&key, &(value + 1).to_le_bytes());
                    txn.set(&receipt, &value.to_le_bytes());
                    Ok::<_, KvError>(())
                }
            })
            .await
            .unwrap();
        }
        println!("{REPORT} retried {}", retried.load(Ordering::Relaxed));
    });
}

#[test]
fn four_processes_share_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let go = dir.path().join("go");
    let exe = std::env::current_exe().unwrap();
    let mut children: Vec<_> = (0..PROCESSES)
        .map(|n| {
            let mut child = Command::new(&exe)
                .args([
                    "--exact",
                    "child_process_increments",
                    "--ignored",
                    "--test-threads=1",
                    "--nocapture",
                ])
                .env(CHILD_DB_ENV, &path)
                .env(CHILD_NAME_ENV, format!("p{n}"))
                .env(CHILD_GO_ENV, &go)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let lines = BufReader::new(child.stdout.take().unwrap()).lines();
            (child, lines)
        })
        .collect();
    // Start every child's increments at once.
    for (_, lines) in &mut children {
        let ready = lines
            .map_while(Result::ok)
            .find(|line| report(line) == Some("ready"));
        assert!(ready.is_some(), "a child exited before it was ready");
    }
    std::fs::write(&go, b"").unwrap();
    let mut retried_total = 0u64;
    for (mut child, lines) in children {
        let retried: Vec<u64> = lines
            .map_while(Result::ok)
            .filter_map(|line| report(&line)?.strip_prefix("retried ")?.parse().ok())
            .collect();
        let status = child.wait().unwrap();
        assert!(status.success(), "a child process failed: {status}");
        assert_eq!(retried.len(), 1, "a child did not report its retries");
        retried_total += retried[0];
    }
    eprintln!(
        "{PROCESSES} processes, {} increments, {retried_total} retried after a conflict",
        PROCESSES as i64 * INCREMENTS_PER_PROCESS
    );
    assert!(
        retried_total > 0,
        "no transaction was retried: the processes never contended"
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let db = Database::new(
            Arc::new(SqliteBackend::open(&path).unwrap()),
            RetryPolicy::default(),
            1,
        );
        let (count, receipts) = db
            .run(|txn, _| async move {
                let count = decode_counter(txn.get(&counter_key()).await?.as_deref());
                let receipts = txn
                    .get_prefix(&receipts_prefix(), RangeOptions::default())
                    .await?;
                Ok::<_, KvError>((count, receipts))
            })
            .await
            .unwrap();
        let expected = PROCESSES as i64 * INCREMENTS_PER_PROCESS;
        assert_eq!(count, expected, "increments lost or doubled");
        assert_eq!(receipts.len() as i64, expected);
        // Each increment saw a distinct previous value: the history is serial.
        let mut seen: Vec<i64> = receipts
            .iter()
            .map(|kv| decode_counter(Some(&kv.value)))
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..expected).collect::<Vec<_>>());
    });
}
