//! Object compaction and garbage collection under `kill -9` at each step,
//! with real agent processes, a real Kafka client (confluent-kafka) and the
//! agent's own SQLite metadata read by this process.
//!
//! Each test writes records into many small objects with compaction off
//! (into a local-directory bucket, or a bucket on the moto S3 server),
//! then restarts the agent with compaction on and `FJORD_CRASH_AT` naming one
//! step, so the process aborts right there (what `kill -9` at that moment
//! leaves), then restarts it once more without. Afterwards every
//! acknowledged record reads back (kcat) at its offset, exactly once; the
//! bucket holds only objects the index references and outputs still
//! registered; and once those registrations expire (after
//! `MAX_COMMIT_AGE_MS`; asked here at once) the bucket holds exactly the
//! referenced objects.
//!
//! | step | what the crash leaves |
//! |---|---|
//! | `compaction-registered` | a registration without an object |
//! | `compaction-uploaded` | an uploaded, registered, unreferenced object |
//! | `compaction-swapped` | old objects made garbage, not yet deleted |
//! | `gc-deleted` | an object deleted whose garbage record remains |

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod many_agents_support;
mod support;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use fjord_common::Clock;
use fjord_metadata::{MetadataStore, TopicPartition};
use many_agents_support::{Producer, create_topic, read_log, verify_log, wait_for};
use support::{AgentProcess, bucket_objects, free_port};

const TOPIC: &str = "crashing";
const RECORDS: &str = "1500";

/// What metadata accounts for: (objects an index entry references, outputs
/// registered and not swapped in, garbage records).
async fn accounted(store: &MetadataStore) -> (BTreeSet<String>, BTreeSet<String>, usize) {
    let mut referenced = BTreeSet::new();
    for topic in store.list_topics().await.unwrap() {
        for partition in 0..topic.partition_count {
            let tp = TopicPartition::new(topic.id, partition);
            for entry in store.lookup(tp, 0, 100_000).await.unwrap().entries {
                referenced.insert(entry.object_key);
            }
        }
    }
    let registered = store
        .compaction_outputs()
        .await
        .unwrap()
        .into_iter()
        .map(|(_, output)| output.object_key)
        .collect();
    let garbage = store.garbage_objects(1_000).await.unwrap().len();
    (referenced, registered, garbage)
}

fn flags(compaction_interval_ms: &str) -> Vec<String> {
    [
        "--flush-interval-ms",
        "20",
        "--log-retention-check-interval-ms",
        "300",
        "--object-grace-ms",
        "0",
        "--object-compaction-min-age-ms",
        "0",
        "--object-compaction-interval-ms",
        compaction_interval_ms,
    ]
    .map(str::to_owned)
    .to_vec()
}

fn start_agent(
    dir: &Path,
    port: u16,
    compaction_interval_ms: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> AgentProcess {
    let flags = flags(compaction_interval_ms);
    let mut flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    flags.extend(extra);
    AgentProcess::start_on_logging(
        dir,
        port,
        &flags,
        &[
            &[("RUST_LOG", "warn,fjord_agent::maintenance=info")][..],
            env,
        ]
        .concat(),
        Some(&dir.join("agent.log")),
    )
}

/// Where the agent's bucket is.
enum Bucket {
    /// `./bucket` in its data directory.
    Directory,
    /// A bucket on the moto S3 server.
    S3(fjord_storage::testing::MotoServer),
}

impl Bucket {
    fn s3() -> Self {
        let moto = fjord_storage::testing::MotoServer::start().unwrap();
        moto.create_bucket("fjord-test").unwrap();
        Bucket::S3(moto)
    }

    /// Flags and environment that point the agent at it.
    fn agent_config(&self) -> (Vec<String>, Vec<(String, String)>) {
        match self {
            Bucket::Directory => (Vec::new(), Vec::new()),
            Bucket::S3(moto) => (
                vec!["--storage-url".to_owned(), S3_URL.to_owned()],
                [
                    ("AWS_ENDPOINT_URL", moto.endpoint().as_str()),
                    ("AWS_ALLOW_HTTP", "true"),
                    ("AWS_REGION", "us-east-1"),
                    ("AWS_ACCESS_KEY_ID", "testing"),
                    ("AWS_SECRET_ACCESS_KEY", "testing"),
                    ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .to_vec(),
            ),
        }
    }

    /// Segment object keys in it.
    fn objects(&self, dir: &Path, runtime: &tokio::runtime::Runtime) -> BTreeSet<String> {
        match self {
            Bucket::Directory => bucket_objects(&dir.join("bucket")),
            Bucket::S3(moto) => {
                use futures::TryStreamExt;
                let store =
                    fjord_storage::object_store::open_backend(S3_URL, &moto.store_options())
                        .unwrap();
                runtime
                    .block_on(
                        store
                            .list(None)
                            .map_ok(|meta| meta.location.to_string())
                            .try_collect::<Vec<_>>(),
                    )
                    .unwrap()
                    .into_iter()
                    .filter(|key| key.ends_with(".seg"))
                    .collect()
            }
        }
    }
}

const S3_URL: &str = "s3://fjord-test/crashing";

fn crash_at(point: &str) {
    crash_at_over(point, Bucket::Directory);
}

fn crash_at_over(point: &str, bucket: Bucket) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (bucket_flags, bucket_env) = bucket.agent_config();
    let bucket_env: Vec<(&str, &str)> = bucket_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let bucket_args: Vec<&str> = bucket_flags.iter().map(String::as_str).collect();
    let start = |dir: &Path, port: u16, interval: &str, env: &[(&str, &str)]| {
        start_agent(
            dir,
            port,
            interval,
            &bucket_args,
            &[&bucket_env[..], env].concat(),
        )
    };

    // Many small objects, written with compaction off.
    let agent = start(dir.path(), port, "0", &[]);
    create_topic(&agent.address(), TOPIC, 4);
    let producer = Producer::spawn(
        "producer",
        "produce_acked.py",
        &[&agent.address(), TOPIC, RECORDS, "0.1"],
    );
    let log = producer.wait(Duration::from_secs(120));
    assert!(log.failed.is_empty(), "failed deliveries: {:?}", log.failed);
    drop(agent);
    let written = bucket.objects(dir.path(), &runtime).len();
    assert!(written >= 10, "only {written} objects written");

    // Compaction on, aborting at `point`.
    let mut agent = start(dir.path(), port, "300", &[("FJORD_CRASH_AT", point)]);
    let status = wait_for(
        &format!("the agent aborting at {point}"),
        Duration::from_secs(60),
        || agent.child.try_wait().unwrap(),
    );
    assert_eq!(status.signal(), Some(6), "{point}: exited with {status}");
    drop(agent);

    // Restarted: everything acknowledged reads back, and the bucket settles.
    let agent = start(dir.path(), port, "300", &[]);
    let store = runtime
        .block_on(fjord_metadata::open(&format!(
            "sqlite://{}",
            dir.path().join("metadata.db").display()
        )))
        .unwrap();
    let settled = |expect_registered: bool| {
        wait_for(
            "the bucket to hold what metadata accounts for",
            Duration::from_secs(60),
            || {
                let (referenced, registered, garbage) = runtime.block_on(accounted(&store));
                let objects = bucket.objects(dir.path(), &runtime);
                let missing: Vec<&String> = referenced.difference(&objects).collect();
                assert!(
                    missing.is_empty(),
                    "{point}: referenced objects gone: {missing:?}"
                );
                // Every object is referenced, or a registered output (which
                // may never have been uploaded).
                let unreferenced: BTreeSet<String> =
                    objects.difference(&referenced).cloned().collect();
                let compacted = referenced.len() < written / 2;
                (garbage == 0
                    && compacted
                    && unreferenced.is_subset(&registered)
                    && (expect_registered || registered.is_empty()))
                .then_some((referenced, registered))
            },
        )
    };
    let (referenced, registered) = settled(true);
    println!(
        "{point}: {written} objects written, {} referenced after compaction, {} outputs left registered",
        referenced.len(),
        registered.len()
    );
    let check_records = || {
        let stored = read_log(&agent.address(), TOPIC);
        let verified = verify_log(&stored, &[("producer", &log)]);
        assert_eq!(verified.acknowledged, RECORDS.parse::<usize>().unwrap());
        assert_eq!((verified.lost, verified.duplicated), (0, 0), "{point}");
        assert_eq!(verified.stored, verified.acknowledged, "{point}");
    };
    check_records();
    // What a crash left registered expires (after MAX_COMMIT_AGE_MS; asked
    // here at once) and goes.
    let now = fjord_common::SystemClock.now_millis();
    let expired = runtime
        .block_on(store.expire_compaction_outputs(now, 0, 100))
        .unwrap();
    assert_eq!(expired, registered.len());
    let (referenced, _) = settled(false);
    check_records();
    // `fjord storage-report` tells the same story.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["storage-report", "--json", "--orphans", "--data-dir"])
        .arg(dir.path())
        .args(&bucket_args)
        .envs(bucket_env.iter().copied())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["objects"], referenced.len(), "{report}");
    assert_eq!(report["garbage_objects"], 0, "{report}");
    assert_eq!(report["compaction_outputs_registered"], 0, "{report}");
    // The output itself is small here (a few MB): due, but never merged
    // alone.
    assert!(
        report["compaction_backlog_objects"].as_u64().unwrap() <= 1,
        "{report}"
    );
    assert_eq!(report["orphans"][0], 0, "{report}");
    let entries: u64 = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["index_entries"].as_u64().unwrap())
        .sum();
    assert_eq!(report["index_entries"], entries, "{report}");
    drop(agent);
}

#[test]
fn a_crash_after_registering_an_output_leaks_nothing() {
    crash_at("compaction-registered");
}

#[test]
fn a_crash_after_uploading_an_output_leaks_nothing() {
    crash_at("compaction-uploaded");
}

#[test]
fn a_crash_after_the_swap_loses_no_record() {
    crash_at("compaction-swapped");
}

#[test]
fn a_crash_in_the_middle_of_garbage_collection_loses_no_record() {
    crash_at("gc-deleted");
}

#[test]
fn a_crash_after_uploading_an_output_to_s3_leaks_nothing() {
    crash_at_over("compaction-uploaded", Bucket::s3());
}
