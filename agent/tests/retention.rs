//! Retention against a real agent process and a real Kafka client
//! (confluent-kafka): `retention.ms` moves the log start within a check
//! interval, a consumer resumes at the new start and an explicit fetch below it
//! is out of range; `DeleteRecords` moves it and is refused on a compacted
//! topic; what retention frees and a deleted topic's objects leave the
//! bucket (a local directory, or a bucket on the moto S3 server), and nothing
//! an index entry still references ever does (checked
//! against the agent's own SQLite metadata, read by this process while the
//! agent runs).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::Duration;

use tokio::time::Instant;

use fjord_metadata::{MetadataStore, TopicPartition};
use support::{AgentProcess, bucket_objects, free_port, run_python_client_with_args};

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

/// Flags of an agent whose retention runs often and deletes at once.
const FAST_RETENTION: [&str; 6] = [
    "--flush-interval-ms",
    "20",
    "--log-retention-check-interval-ms",
    "300",
    "--object-grace-ms",
    "0",
];

/// The log filter that shows retention passes.
const RETENTION_LOG: (&str, &str) = ("RUST_LOG", "warn,fjord_agent::maintenance=info");

/// Runs `retention.py` against `bootstrap`, checks what it saw (clients are
/// told of `brokers` agents), then that the bucket holds exactly what the
/// metadata at `metadata_db` references, and that the agent logging to
/// `jobs_log` deleted objects.
async fn check_retention(
    bootstrap: &str,
    brokers: usize,
    metadata_db: &Path,
    bucket: &Path,
    jobs_log: &Path,
) {
    check_retention_listing(bootstrap, brokers, metadata_db, jobs_log, || async {
        bucket_objects(bucket)
    })
    .await;
}

/// [`check_retention`] with the bucket listed by `list`.
async fn check_retention_listing<F, Fut>(
    bootstrap: &str,
    brokers: usize,
    metadata_db: &Path,
    jobs_log: &Path,
    list: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = BTreeSet<String>>,
{
    let output = run_python_client_with_args("retention.py", &[bootstrap]);
    let summary: HashMap<&str, &str> = output
        .lines()
        .filter_map(|line| line.split_once('='))
        .collect();
    println!("{output}");
    let field = |name: &str| summary.get(name).copied().unwrap_or("(missing)");
    assert_eq!(field("brokers"), brokers.to_string());
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
    assert_eq!(field("bounded_latest"), "400");
    assert_eq!(field("bounded_trimmed"), "True");
    assert_eq!(field("doomed_deleted"), "True");

    // retention.bytes keeps the partition at or above the limit always, and
    // within [limit, limit + one entry] once a pass ran after the last write.
    let store_for_bytes = fjord_metadata::open(&format!("sqlite://{}", metadata_db.display()))
        .await
        .unwrap();
    let bounded = store_for_bytes.describe_topic("bounded").await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let kept = store_for_bytes
            .lookup(TopicPartition::new(bounded.id, 0), 0, 1_000)
            .await
            .unwrap()
            .entries;
        let kept_bytes: u64 = kept.iter().map(|e| e.byte_length).sum();
        assert!(
            kept_bytes >= 100_000,
            "retention.bytes=100000 kept only {kept_bytes} bytes"
        );
        if kept_bytes - kept[0].byte_length < 100_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "retention.bytes=100000 still keeps {kept_bytes} bytes in {} entries",
            kept.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The bucket: what retention and DeleteRecords freed goes; what an entry
    // references never does.
    let store = fjord_metadata::open(&format!("sqlite://{}", metadata_db.display()))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let live = referenced(&store).await;
        let objects = list().await;
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
    let log = std::fs::read_to_string(jobs_log).unwrap();
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_and_delete_records_move_the_log_start_and_free_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("agent.log");
    let agent = AgentProcess::start_on_logging(
        dir.path(),
        free_port(),
        &FAST_RETENTION,
        &[RETENTION_LOG],
        Some(&log),
    );
    check_retention(
        &agent.address(),
        1,
        &dir.path().join("metadata.db"),
        &dir.path().join("bucket"),
        &log,
    )
    .await;
    drop(agent);
}

/// `--roles`: an agent that only serves and one that only runs jobs, over one
/// metadata file and bucket. Clients are told of the serving one only; the
/// jobs agent expires, releases and deletes for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_agent_runs_retention_for_a_serving_agent() {
    let root = tempfile::tempdir().unwrap();
    let metadata_db = root.path().join("metadata.db");
    let bucket = root.path().join("bucket");
    let metadata_url = format!("sqlite://{}", metadata_db.display());
    let storage_url = format!("file://{}", bucket.display());
    let start = |name: &str, roles: &str| {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let log = root.path().join(format!("{name}.log"));
        let mut args = vec![
            "--roles",
            roles,
            "--metadata-url",
            &metadata_url,
            "--storage-url",
            &storage_url,
        ];
        args.extend(FAST_RETENTION);
        let agent =
            AgentProcess::start_on_logging(&dir, free_port(), &args, &[RETENTION_LOG], Some(&log));
        (agent, log)
    };
    let (serving, serving_log) = start("serving", "serve");
    let (jobs, jobs_log) = start("jobs", "jobs");
    check_retention(&serving.address(), 1, &metadata_db, &bucket, &jobs_log).await;
    let serving_log = std::fs::read_to_string(&serving_log).unwrap();
    assert!(
        !serving_log.contains("retention pass"),
        "the serving agent ran retention:\n{serving_log}"
    );
    // Every job shard is leased, in metadata, to the jobs agent.
    let store = fjord_metadata::open(&metadata_url).await.unwrap();
    let agents = store.list_agents().await.unwrap();
    let jobs_node = agents
        .iter()
        .find(|a| a.roles.jobs && !a.roles.serve)
        .map(|a| a.node_id);
    let holders: std::collections::BTreeSet<Option<i32>> = store
        .job_shards()
        .await
        .unwrap()
        .iter()
        .map(|shard| shard.holder)
        .collect();
    assert_eq!(
        holders,
        std::collections::BTreeSet::from([jobs_node]),
        "{agents:?}"
    );
    drop((serving, jobs));
}

/// The same over a bucket on the moto S3 server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_frees_a_bucket_on_an_s3_server() {
    use futures::TryStreamExt;
    let moto = fjord_storage::testing::MotoServer::start().unwrap();
    moto.create_bucket("fjord-test").unwrap();
    let url = "s3://fjord-test/retained";
    let endpoint = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("agent.log");
    let mut args = vec!["--storage-url", url];
    args.extend(FAST_RETENTION);
    let agent = AgentProcess::start_on_logging(
        dir.path(),
        free_port(),
        &args,
        &[
            RETENTION_LOG,
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
        ],
        Some(&log),
    );
    let store = fjord_storage::object_store::open_backend(url, &moto.store_options()).unwrap();
    check_retention_listing(
        &agent.address(),
        1,
        &dir.path().join("metadata.db"),
        &log,
        || {
            let store = store.clone();
            async move {
                store
                    .list(None)
                    .map_ok(|meta| meta.location.to_string())
                    .try_collect::<Vec<_>>()
                    .await
                    .unwrap()
                    .into_iter()
                    .filter(|key| key.ends_with(".seg"))
                    .collect()
            }
        },
    )
    .await;
    assert!(
        bucket_objects(&dir.path().join("bucket")).is_empty(),
        "nothing in the local directory"
    );
    drop(agent);
}

/// Job leases across real processes: two jobs agents split the job shards;
/// after `kill -9` of one, the other takes its shards once it sees it dead,
/// and then holds every shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_jobs_agents_shards_are_taken_by_the_other() {
    let root = tempfile::tempdir().unwrap();
    let metadata_url = format!("sqlite://{}", root.path().join("metadata.db").display());
    let storage_url = format!("file://{}", root.path().join("bucket").display());
    let start = |name: &str| {
        let dir = root.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let mut args = vec![
            "--roles",
            "jobs",
            "--metadata-url",
            &metadata_url,
            "--storage-url",
            &storage_url,
        ];
        args.extend(FAST_RETENTION);
        AgentProcess::start_on_logging(&dir, free_port(), &args, &[RETENTION_LOG], None)
    };
    let first = start("first");
    let second = start("second");
    let store = fjord_metadata::open(&metadata_url).await.unwrap();
    let node_of = |agents: &[fjord_metadata::AgentRecord], port: u16| {
        agents
            .iter()
            .find(|a| a.advertised_address.ends_with(&format!(":{port}")))
            .map(|a| a.node_id)
    };
    // Polls until every shard is held and the holders are `want`.
    let held_by = |want: std::collections::BTreeSet<i32>| {
        let store = store.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let shards = store.job_shards().await.unwrap();
                let holders: std::collections::BTreeSet<i32> =
                    shards.iter().filter_map(|s| s.holder).collect();
                if shards.iter().all(|s| s.holder.is_some()) && holders == want {
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "job shards not held by {want:?}: {shards:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    let agents = store.list_agents().await.unwrap();
    let (first_node, second_node) = (
        node_of(&agents, first.port).unwrap(),
        node_of(&agents, second.port).unwrap(),
    );
    held_by([first_node, second_node].into()).await;
    drop(first); // SIGKILL
    held_by([second_node].into()).await;
    let shards = store.job_shards().await.unwrap();
    assert!(
        shards.iter().any(|s| s.epoch >= 2),
        "some shards were taken over under a new epoch: {shards:?}"
    );
    drop(second);
}
