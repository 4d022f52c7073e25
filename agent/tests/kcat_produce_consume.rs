//! kcat (librdkafka) produces to and consumes from a real agent process, through
//! segment objects in the bucket directory and the SQLite segment index, with
//! every compression codec; and acknowledged records survive `kill -9`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::AgentProcess;

/// Produces `lines` ("key\tvalue") with kcat; panics unless every message was
/// delivered (kcat exits non-zero otherwise).
fn kcat_produce(agent: &AgentProcess, topic: &str, codec: &str, lines: &[String]) {
    kcat_produce_acks(agent, topic, codec, "all", lines);
}

/// As [`kcat_produce`], with the given `acks`.
fn kcat_produce_acks(agent: &AgentProcess, topic: &str, codec: &str, acks: &str, lines: &[String]) {
    let mut child = Command::new("kcat")
        .args([
            "-b",
            &agent.address(),
            "-P",
            "-t",
            topic,
            "-K",
            "\t",
            "-z",
            codec,
        ])
        .args(["-H", "origin=fjord-test", "-H", &format!("codec={codec}")])
        .args(["-X", &format!("acks={acks}"), "-X", "linger.ms=5"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed by scripts/install-deps.sh");
    {
        let mut stdin = child.stdin.take().unwrap();
        for line in lines {
            writeln!(stdin, "{line}").unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kcat produce ({codec}) failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Consumes a topic from the beginning to its end: (partition, offset, key, value, headers).
fn kcat_consume(agent: &AgentProcess, topic: &str) -> Vec<(i32, i64, String, String, String)> {
    let output = Command::new("kcat")
        .args([
            "-b",
            &agent.address(),
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .args(["-f", "%p\t%o\t%k\t%s\t%h\n"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kcat consume failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.splitn(5, '\t').collect();
            assert_eq!(fields.len(), 5, "unexpected kcat line {line:?}");
            (
                fields[0].parse().unwrap(),
                fields[1].parse().unwrap(),
                fields[2].to_owned(),
                fields[3].to_owned(),
                fields[4].to_owned(),
            )
        })
        .collect()
}

fn lines(topic: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| format!("key-{}\t{topic} value {i} {}", i % 97, "x".repeat(i % 300)))
        .collect()
}

/// Checks that `consumed` is exactly `produced`: every record once, offsets in
/// each partition contiguous from 0, records of one key in production order.
fn verify(produced: &[String], consumed: &[(i32, i64, String, String, String)], codec: &str) {
    assert_eq!(consumed.len(), produced.len(), "{codec}: record count");
    let mut next_offset: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, offset, _, _, headers) in consumed {
        let expected = next_offset.entry(*partition).or_insert(0);
        assert_eq!(
            *offset, *expected,
            "{codec}: partition {partition} offsets must be contiguous"
        );
        *expected += 1;
        assert_eq!(
            headers,
            &format!("origin=fjord-test,codec={codec}"),
            "{codec}: headers"
        );
    }
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for line in produced {
        let (key, value) = line.split_once('\t').unwrap();
        by_key.entry(key).or_default().push(value);
    }
    let mut consumed_by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut sorted: Vec<_> = consumed.iter().collect();
    sorted.sort_by_key(|(p, o, ..)| (*p, *o));
    for (_, _, key, value, _) in sorted {
        consumed_by_key
            .entry(key.as_str())
            .or_default()
            .push(value.as_str());
    }
    assert_eq!(
        consumed_by_key, by_key,
        "{codec}: keys and values byte for byte, in order per key"
    );
}

fn segment_objects(data_dir: &Path) -> usize {
    fn walk(dir: &Path, count: &mut usize) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, count);
            } else if path.extension().is_some_and(|e| e == "seg") {
                *count += 1;
            }
        }
    }
    let mut count = 0;
    let bucket = data_dir.join("bucket");
    if bucket.exists() {
        walk(&bucket, &mut count);
    }
    count
}

#[test]
fn kcat_round_trips_records_with_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &["--num-partitions", "3", "--flush-interval-ms", "20"],
    );
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        let topic = format!("codec-{codec}");
        let produced = lines(&topic, 2_000);
        kcat_produce(&agent, &topic, codec, &produced);
        let consumed = kcat_consume(&agent, &topic);
        verify(&produced, &consumed, codec);
        let partitions: std::collections::BTreeSet<i32> = consumed.iter().map(|c| c.0).collect();
        assert_eq!(
            partitions.len(),
            3,
            "{codec}: keys spread over the 3 partitions"
        );
    }
    assert!(
        segment_objects(dir.path()) > 0,
        "data must land in segment objects"
    );
}

#[test]
fn acknowledged_records_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let produced = lines("durable", 5_000);
    {
        let agent = AgentProcess::start(dir.path(), &["--num-partitions", "2"]);
        kcat_produce(&agent, "durable", "lz4", &produced);
        // Dropping the handle sends SIGKILL: no graceful shutdown, no final flush.
    }
    let agent = AgentProcess::start(dir.path(), &["--num-partitions", "2"]);
    let consumed = kcat_consume(&agent, "durable");
    verify(&produced, &consumed, "lz4");
}

/// `acks=1` is answered once the batch is fsynced in the agent's write-ahead log,
/// before any segment is committed; the records survive `kill -9` because the
/// restarted agent commits what its WAL holds.
#[test]
fn acks_1_records_survive_kill_9_through_the_write_ahead_log() {
    let dir = tempfile::tempdir().unwrap();
    let produced = lines("wal", 3_000);
    // The flush interval is far longer than the test: nothing reaches the bucket
    // before the kill (the ~300 KB stay below the flush size too).
    let slow_flush = ["--num-partitions", "2", "--flush-interval-ms", "3600000"];
    {
        let agent = AgentProcess::start(dir.path(), &slow_flush);
        kcat_produce_acks(&agent, "wal", "snappy", "1", &produced);
        assert_eq!(
            segment_objects(dir.path()),
            0,
            "acks=1 was answered before any segment was written"
        );
    }
    let agent = AgentProcess::start(dir.path(), &["--num-partitions", "2"]);
    let consumed = kcat_consume(&agent, "wal");
    verify(&produced, &consumed, "snappy");
    assert!(segment_objects(dir.path()) > 0);
    drop(agent);
    // A second restart finds the WAL truncated: nothing is committed twice.
    let agent = AgentProcess::start(dir.path(), &["--num-partitions", "2"]);
    let consumed = kcat_consume(&agent, "wal");
    verify(&produced, &consumed, "snappy");
}

#[test]
fn kcat_round_trips_over_a_real_s3_server() {
    let moto = fjord_storage::testing::MotoServer::start().unwrap();
    moto.create_bucket("fjord-test").unwrap();
    let endpoint = moto.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start_with_env(
        dir.path(),
        &[
            "--num-partitions",
            "2",
            "--storage-url",
            "s3://fjord-test/cluster-a",
        ],
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
        ],
    );
    let produced = lines("s3", 3_000);
    kcat_produce(&agent, "over-s3", "zstd", &produced);
    let consumed = kcat_consume(&agent, "over-s3");
    verify(&produced, &consumed, "zstd");
    assert_eq!(
        segment_objects(dir.path()),
        0,
        "nothing may land in the local bucket directory"
    );
}

/// Settings come from a TOML file, under the environment and the flags.
#[test]
fn a_config_file_sets_what_flags_and_environment_leave_unset() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fjord.toml");
    std::fs::write(
        &config,
        "num-partitions = 5\nflush-interval-ms = 20\nauto-create-topics = true\n",
    )
    .unwrap();
    let config = config.to_str().unwrap();
    let partitions = |agent: &AgentProcess, topic: &str| {
        let listing = Command::new("kcat")
            .args(["-b", &agent.address(), "-L", "-t", topic])
            .output()
            .unwrap();
        String::from_utf8(listing.stdout)
            .unwrap()
            .matches("partition ")
            .count()
    };
    {
        let agent = AgentProcess::start(dir.path().join("a").as_path(), &["--config", config]);
        assert_eq!(
            partitions(&agent, "from-file"),
            5,
            "the file's num-partitions"
        );
    }
    {
        let agent = AgentProcess::start(
            dir.path().join("b").as_path(),
            &["--config", config, "--num-partitions", "2"],
        );
        assert_eq!(
            partitions(&agent, "from-flag"),
            2,
            "a flag overrides the file"
        );
    }
    {
        let agent = AgentProcess::start_with_env(
            dir.path().join("c").as_path(),
            &["--config", config],
            &[("FJORD_NUM_PARTITIONS", "3")],
        );
        assert_eq!(
            partitions(&agent, "from-env"),
            3,
            "the environment overrides the file"
        );
    }
    std::fs::write(dir.path().join("bad.toml"), "no-such-setting = 1\n").unwrap();
    let refused = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .args(["agent", "--config"])
        .arg(dir.path().join("bad.toml"))
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("unknown setting"));
}

fn files_under(dir: &Path) -> usize {
    if !dir.exists() {
        return 0;
    }
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() { files_under(&path) } else { 1 }
        })
        .sum()
}

/// The read path's three tiers, seen from outside: the leader serves what it just
/// committed from memory (no GET, so nothing lands in the disk cache); a fresh
/// agent reads through ranged GETs, which fill the disk cache; and a later agent
/// serves the same reads from that disk cache even with the objects gone from
/// the bucket.
#[test]
fn reads_come_from_memory_then_the_disk_cache_then_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let args = ["--num-partitions", "2", "--flush-interval-ms", "20"];
    let produced = lines("tiers", 2_000);
    {
        let agent = AgentProcess::start(dir.path(), &args);
        kcat_produce(&agent, "tiers", "zstd", &produced);
        verify(&produced, &kcat_consume(&agent, "tiers"), "zstd");
        assert_eq!(
            files_under(&cache),
            0,
            "the leader's reads of fresh data came from memory, with no GET"
        );
    }
    {
        let agent = AgentProcess::start(dir.path(), &args);
        verify(&produced, &kcat_consume(&agent, "tiers"), "zstd");
        assert!(
            files_under(&cache) > 0,
            "a cold agent fetched ranges and kept them on disk"
        );
    }
    std::fs::remove_dir_all(dir.path().join("bucket")).unwrap();
    let agent = AgentProcess::start(dir.path(), &args);
    verify(&produced, &kcat_consume(&agent, "tiers"), "zstd");
}

/// SIGTERM flushes what was accepted into the bucket before the agent exits.
#[test]
fn sigterm_flushes_accepted_records_into_the_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let produced = lines("graceful", 1_000);
    let slow_flush = ["--num-partitions", "2", "--flush-interval-ms", "3600000"];
    let mut agent = AgentProcess::start(dir.path(), &slow_flush);
    kcat_produce_acks(&agent, "graceful", "lz4", "1", &produced);
    assert_eq!(segment_objects(dir.path()), 0, "nothing flushed yet");
    let pid = agent.child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "a clean exit: {status}");
    assert!(
        segment_objects(dir.path()) > 0,
        "the accepted records were flushed at shutdown"
    );
    drop(agent);
    let agent = AgentProcess::start(dir.path(), &["--num-partitions", "2"]);
    verify(&produced, &kcat_consume(&agent, "graceful"), "lz4");
}
