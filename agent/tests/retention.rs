//! Retention against a real agent process and a real Kafka client
//! (confluent-kafka): `retention.ms` moves the log start within a check
//! interval, a consumer resumes at the new start and an explicit fetch below it
//! is out of range; `DeleteRecords` moves it and is refused on a compacted
//! topic; what retention frees and a deleted topic's objects leave the
//! bucket, and nothing an index entry still references ever does (checked
//! against the agent's own SQLite metadata, read by this process while the
//! agent runs).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use fjord_metadata::{MetadataStore, TopicPartition};
use support::{AgentProcess, run_python_client_with_args};

/// Segment object keys in the bucket directory, as object keys.
fn bucket_objects(bucket: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut dirs = vec![bucket.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else if let Ok(key) = path.strip_prefix(bucket)
                && let Some(key) = key.to_str()
                && key.ends_with(".seg")
            {
                out.insert(key.to_owned());
            }
        }
    }
    out
}

/// Every object key an index entry of a live topic references, from each
/// partition's log start on.
async fn referenced(store: &MetadataStore) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for topic in store.list_topics().await.unwrap() {
        for partition in 0..topic.partition_count {
            let tp = TopicPartition::new(topic.id, partition);
            for entry in store.lookup(tp, 0, 100_000).await.unwrap().entries {
                out.insert(entry.object_key);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_delete_records_move_the_log_start_and_free_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("agent.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let agent = AgentProcess::start_on_logging(
        dir.path(),
        port,
        &[
            "--flush-interval-ms",
            "20",
            "--log-retention-check-interval-ms",
            "300",
            "--object-grace-ms",
            "0",
        ],
        &[("RUST_LOG", "warn,fjord_agent::maintenance=info")],
        Some(&log),
    );
    let output = run_python_client_with_args("retention.py", &[&agent.address()]);
    let summary: HashMap<&str, &str> = output
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    println!("{output}");
    let field = |name: &str| summary.get(name).copied().unwrap_or("(missing)");
    assert_eq!(field("expiring_latest"), "250");
    assert_eq!(field("expiring_earliest"), "200", "retention never ran");
    assert_eq!(field("expiring_read"), "50");
    assert_eq!(field("expiring_first"), "200");
    assert_eq!(field("expiring_all_new"), "True");
    assert_eq!(field("expiring_from_zero"), "_AUTO_OFFSET_RESET");
    assert_eq!(field("trimmed_low_watermark"), "60");
    assert_eq!(field("trimmed_earliest"), "60");
    assert_eq!(
        (field("trimmed_first"), field("trimmed_read")),
        ("60", "40")
    );
    assert_eq!(field("compacted_delete"), "POLICY_VIOLATION");
    assert_eq!(field("doomed_deleted"), "True");

    // The bucket: what retention and DeleteRecords freed goes; what an entry
    // references never does.
    let store = fjord_metadata::open(&format!(
        "sqlite://{}",
        dir.path().join("metadata.db").display()
    ))
    .await
    .unwrap();
    let bucket = dir.path().join("bucket");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let live = referenced(&store).await;
        let objects = bucket_objects(&bucket);
        let missing: Vec<&String> = live.difference(&objects).collect();
        assert!(
            missing.is_empty(),
            "referenced objects deleted: {missing:?}"
        );
        let garbage = store.garbage_objects(100).await.unwrap();
        let deleted_topics = store.deleted_topics().await.unwrap();
        if objects == live && garbage.is_empty() && deleted_topics.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "unreferenced objects stay: {:?} (garbage {garbage:?}, deleted topics {})",
            objects.difference(&live).collect::<Vec<_>>(),
            deleted_topics.len(),
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let log = std::fs::read_to_string(&log).unwrap();
    let deleted: usize = log
        .lines()
        .filter_map(|line| line.split("objects_deleted: ").nth(1))
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<usize>()
                .ok()
        })
        .sum();
    assert!(deleted > 0, "no object was deleted:\n{log}");
    drop(agent);
}
