//! Several OS processes share one SQLite metadata file (as several agents on one
//! host do) and contend on one counter: no increment may be lost or doubled.

#![allow(clippy::unwrap_used)] // tests fail loudly by design
#![cfg(feature = "sqlite")]

use std::process::Command;
use std::sync::Arc;

use fjord_metadata::kv::sqlite::SqliteBackend;
use fjord_metadata::kv::{Database, KvError, RangeOptions, RetryPolicy, decode_counter};

const CHILD_DB_ENV: &str = "FJORD_TEST_CHILD_DB";
const CHILD_NAME_ENV: &str = "FJORD_TEST_CHILD_NAME";
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Every process opens (and migrates) the file concurrently.
        let backend = Arc::new(SqliteBackend::open(&path).unwrap());
        let seed = std::process::id().into();
        let db = Database::new(backend, RetryPolicy::default(), seed);
        for i in 0..INCREMENTS_PER_PROCESS {
            let receipt = foundationdb_tuple::pack(&("multi-process", "receipt", name.as_str(), i));
            db.run(|txn, _| {
                let receipt = receipt.clone();
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
    });
}

#[test]
fn four_processes_share_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..PROCESSES)
        .map(|n| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "child_process_increments",
                    "--ignored",
                    "--test-threads=1",
                ])
                .env(CHILD_DB_ENV, &path)
                .env(CHILD_NAME_ENV, format!("p{n}"))
                .stdout(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        let status = child.wait().unwrap();
        assert!(status.success(), "a child process failed: {status}");
    }

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
