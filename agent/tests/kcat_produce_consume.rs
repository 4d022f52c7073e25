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
    kcat_produce_with(agent, topic, codec, acks, &[], lines);
}

/// As [`kcat_produce_acks`], with more `-X` properties (`name=value`).
fn kcat_produce_with(
    agent: &AgentProcess,
    topic: &str,
    codec: &str,
    acks: &str,
    properties: &[&str],
    lines: &[String],
) {
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
        .args(properties.iter().flat_map(|p| ["-X", p]))
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

#[allow(clippy::disallowed_methods)] // compared with the timestamps librdkafka sets
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Every codec, with and without idempotence (`enable.idempotence=true`):
/// 10 configurations of 1,000 records, 10,000 in all. The timestamps
/// librdkafka gives the records (its clock at produce time) come back.
#[test]
fn kcat_round_trips_records_with_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &["--num-partitions", "3", "--flush-interval-ms", "20"],
    );
    let mut total = 0;
    for idempotent in [false, true] {
        for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
            let topic = format!(
                "codec-{codec}-{}",
                if idempotent { "idem" } else { "plain" }
            );
            let produced = lines(&topic, 1_000);
            let before = now_ms();
            kcat_produce_with(
                &agent,
                &topic,
                codec,
                "all",
                &[&format!("enable.idempotence={idempotent}")],
                &produced,
            );
            let after = now_ms();
            let consumed = kcat_consume(&agent, &topic);
            verify(&produced, &consumed, codec);
            total += consumed.len();
            let partitions: std::collections::BTreeSet<i32> =
                consumed.iter().map(|c| c.0).collect();
            assert_eq!(
                partitions.len(),
                3,
                "{codec}: keys spread over the 3 partitions"
            );
            for (partition, offset, timestamp) in kcat_timestamps(&agent, &topic) {
                assert!(
                    (before - 1_000..=after + 1_000).contains(&timestamp),
                    "{topic} {partition}/{offset}: timestamp {timestamp} outside the produce ({before}..{after})"
                );
            }
        }
    }
    assert_eq!(total, 10_000);
    assert!(
        segment_objects(dir.path()) > 0,
        "data must land in segment objects"
    );
}

/// (partition, offset, timestamp) of every record of `topic`, as kcat prints them.
fn kcat_timestamps(agent: &AgentProcess, topic: &str) -> Vec<(i32, i64, i64)> {
    let output = Command::new("kcat")
        .args(["-b", &agent.address(), "-C", "-t", topic])
        .args(["-o", "beginning", "-e", "-q", "-f", "%p\t%o\t%T\n"])
        .output()
        .unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].parse().unwrap(),
            )
        })
        .collect()
}

/// Records whose headers differ from record to record and whose timestamps the
/// producer set (kcat cannot set either per record, so librdkafka produces them
/// through confluent-kafka), idempotent and not, compressed and not, read back
/// by kcat: per partition in production order, keys, values, headers and
/// timestamps byte for byte.
#[test]
fn kcat_reads_per_record_headers_and_producer_timestamps() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &["--flush-interval-ms", "20"]);
    for (codec, idempotent) in [
        ("none", false),
        ("zstd", true),
        ("lz4", false),
        ("gzip", true),
    ] {
        let topic = format!("fixture-{codec}-{idempotent}");
        let count = 2_500;
        let mut args = vec![
            "produce-fixture".to_owned(),
            agent.address(),
            topic.clone(),
            count.to_string(),
            "--codec".to_owned(),
            codec.to_owned(),
        ];
        if idempotent {
            args.push("--idempotent".to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = support::run_python_client_with_args("compat.py", &args);
        assert!(out.contains(&format!("acknowledged {count}")), "{out}");
        let output = Command::new("kcat")
            .args(["-b", &agent.address(), "-C", "-t", &topic])
            .args([
                "-o",
                "beginning",
                "-e",
                "-q",
                "-f",
                "%p\t%o\t%T\t%k\t%s\t%h\n",
            ])
            .output()
            .unwrap();
        assert!(output.status.success());
        let text = String::from_utf8(output.stdout).unwrap();
        // partition → (offset, timestamp, key, value, headers)
        type Consumed = Vec<(i64, i64, String, String, String)>;
        let mut by_partition: BTreeMap<i32, Consumed> = BTreeMap::new();
        for line in text.lines() {
            let f: Vec<&str> = line.splitn(6, '\t').collect();
            assert_eq!(f.len(), 6, "{line:?}");
            by_partition
                .entry(f[0].parse().unwrap())
                .or_default()
                .push((
                    f[1].parse().unwrap(),
                    f[2].parse().unwrap(),
                    f[3].to_owned(),
                    f[4].to_owned(),
                    f[5].to_owned(),
                ));
        }
        assert_eq!(by_partition.len(), 3, "{topic}: three partitions");
        let mut seen = 0;
        for (partition, records) in &by_partition {
            // Production order: record i went to partition i % 3.
            let expected: Vec<usize> = (0..count)
                .filter(|i| i % 3 == *partition as usize)
                .collect();
            assert_eq!(records.len(), expected.len(), "{topic}/{partition}: count");
            for (position, ((offset, timestamp, key, value, headers), i)) in
                records.iter().zip(&expected).enumerate()
            {
                assert_eq!(*offset, position as i64, "{topic}/{partition}: offsets");
                assert_eq!(
                    *timestamp,
                    1_600_000_000_000 + *i as i64 * 1_000,
                    "{topic} record {i}"
                );
                assert_eq!(key, &format!("key-{i:06}"), "{topic} record {i}");
                assert_eq!(
                    value,
                    &format!("value {i} of {topic}"),
                    "{topic} record {i}"
                );
                let parity = if i % 2 == 0 { "even" } else { "odd" };
                assert_eq!(
                    headers,
                    &format!("index={i},parity={parity},tag=t{}", i % 7),
                    "{topic} record {i}"
                );
                seen += 1;
            }
        }
        assert_eq!(seen, count);
    }
}

/// Backpressure: with a small limit of unflushed bytes and a flush interval far
/// longer than the test, appends past the limit wait for a flush, which they
/// start: segments are written although no interval has passed. Nothing is lost:
/// after a graceful stop every record reads back.
#[test]
fn appends_wait_for_a_flush_when_unflushed_bytes_exceed_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let produced = lines("pressure", 3_000); // about 500 KB
    let args = [
        "--num-partitions",
        "2",
        "--flush-interval-ms",
        "3600000",
        "--max-unflushed-bytes",
        "32768",
        "--flush-bytes",
        "32768",
    ];
    let mut agent = AgentProcess::start(dir.path(), &args);
    // acks=1 is answered from the write-ahead log: only backpressure flushes.
    kcat_produce_with(
        &agent,
        "pressure",
        "none",
        "1",
        &["batch.num.messages=50"],
        &produced,
    );
    let flushed = segment_objects(dir.path());
    println!("segments written under backpressure: {flushed}");
    assert!(
        flushed >= 5,
        "about 500 KB over a 32 KiB limit must have forced flushes, found {flushed} segments"
    );
    stop_with(&mut agent, "-TERM");
    drop(agent);
    let agent = AgentProcess::start(dir.path(), &["--num-partitions", "2"]);
    verify(&produced, &kcat_consume(&agent, "pressure"), "none");
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

/// Produce through kcat (acks=all) to an agent over `server`'s S3, kill -9
/// it, restart it on the same data directory and bucket, produce more, and
/// read back every record acknowledged.
fn kcat_round_trip_and_kill_9_over(server: &fjord_storage::testing::S3Server) {
    server.create_bucket("fjord-test").unwrap();
    let endpoint = server.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--num-partitions",
        "2",
        "--storage-url",
        "s3://fjord-test/cluster-a",
    ];
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
    ];
    let agent = AgentProcess::start_with_env(dir.path(), &args, &env);
    let mut produced = lines("s3", 3_000);
    kcat_produce(&agent, "over-s3", "zstd", &produced);
    let consumed = kcat_consume(&agent, "over-s3");
    verify(&produced, &consumed, "zstd");
    // kill -9 (the drop), then the same agent again: what was acknowledged is
    // in the bucket and the index, and it takes more.
    drop(agent);
    let agent = AgentProcess::start_with_env(dir.path(), &args, &env);
    let more = lines("s3-after-kill", 1_000);
    kcat_produce(&agent, "over-s3", "zstd", &more);
    produced.extend(more);
    let consumed = kcat_consume(&agent, "over-s3");
    verify(&produced, &consumed, "zstd");
    assert_eq!(
        segment_objects(dir.path()),
        0,
        "nothing may land in the local bucket directory"
    );
}

#[test]
fn kcat_round_trips_over_moto_s3_across_kill_9() {
    let moto = fjord_storage::testing::S3Server::start().unwrap();
    kcat_round_trip_and_kill_9_over(&moto);
}

#[test]
fn kcat_round_trips_over_localstack_s3_across_kill_9() {
    let localstack = fjord_storage::testing::S3Server::start_localstack().unwrap();
    kcat_round_trip_and_kill_9_over(&localstack);
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
    // The disk cache is off by default over a local-directory bucket.
    let args = [
        "--num-partitions",
        "2",
        "--flush-interval-ms",
        "20",
        "--disk-cache-bytes",
        "1073741824",
    ];
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

/// Sends `signal` to the agent and waits for a clean exit.
fn stop_with(agent: &mut AgentProcess, signal: &str) {
    let pid = agent.child.id().to_string();
    assert!(
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = agent.child.wait().unwrap();
    assert!(status.success(), "a clean exit after {signal}: {status}");
}

/// `signal` flushes what was accepted into the bucket before the agent exits.
fn signal_flushes_accepted_records_into_the_bucket(signal: &str) {
    let dir = tempfile::tempdir().unwrap();
    let produced = lines("graceful", 1_000);
    let slow_flush = ["--num-partitions", "2", "--flush-interval-ms", "3600000"];
    let mut agent = AgentProcess::start(dir.path(), &slow_flush);
    kcat_produce_acks(&agent, "graceful", "lz4", "1", &produced);
    assert_eq!(segment_objects(dir.path()), 0, "nothing flushed yet");
    stop_with(&mut agent, signal);
    assert!(
        segment_objects(dir.path()) > 0,
        "the accepted records were flushed at shutdown"
    );
    // The write-ahead log was truncated after that flush: a restart commits
    // nothing twice.
    drop(agent);
    let agent = AgentProcess::start(dir.path(), &["--num-partitions", "2"]);
    verify(&produced, &kcat_consume(&agent, "graceful"), "lz4");
}

#[test]
fn sigterm_flushes_accepted_records_into_the_bucket() {
    signal_flushes_accepted_records_into_the_bucket("-TERM");
}

#[test]
fn sigint_flushes_accepted_records_into_the_bucket() {
    signal_flushes_accepted_records_into_the_bucket("-INT");
}

/// `fjord agent` with no flags, in an empty working directory: SQLite metadata
/// and a local bucket under ./fjord-data, a Kafka listener on 127.0.0.1:9092,
/// the HTTP gateway on 127.0.0.1:8080, and the README's quick start (kcat, then
/// curl) works against it. Skipped (with a message) when something else holds
/// port 9092 or 8080.
#[test]
fn fjord_agent_with_no_flags_serves_127_0_0_1_9092_from_fjord_data() {
    const DEFAULT: &str = "127.0.0.1:9092";
    const HTTP: &str = "127.0.0.1:8080";
    if std::net::TcpListener::bind(DEFAULT).is_err() || std::net::TcpListener::bind(HTTP).is_err() {
        println!("SKIPPED: {DEFAULT} or {HTTP} is taken by another process");
        return;
    }
    let cwd = tempfile::tempdir().unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_fjord"));
    command
        .arg("agent")
        .current_dir(cwd.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("FJORD_") {
            command.env_remove(name);
        }
    }
    let mut agent = AgentProcess {
        child: command.spawn().unwrap(),
        port: 9092,
        http_port: 8080,
    };
    let mut listening = false;
    for _ in 0..300 {
        if let Some(status) = agent.child.try_wait().unwrap() {
            println!("SKIPPED: the agent exited ({status}); {DEFAULT} was taken meanwhile?");
            return;
        }
        if std::net::TcpStream::connect(DEFAULT).is_ok() {
            listening = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(listening, "the agent never listened on {DEFAULT}");
    let data = cwd.path().join("fjord-data");
    assert!(
        data.join("metadata.db").is_file(),
        "SQLite metadata in ./fjord-data"
    );
    assert!(data.join("node-id").is_file());
    // The README's quick start.
    let produced: Vec<String> = (1..=1000).map(|i| format!("key-{i}\t{i}")).collect();
    let mut child = Command::new("kcat")
        .args([
            "-b", DEFAULT, "-P", "-t", "demo", "-K", "\t", "-X", "acks=all",
        ])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = child.stdin.take().unwrap();
        for line in &produced {
            writeln!(stdin, "{line}").unwrap();
        }
    }
    assert!(child.wait().unwrap().success());
    let consumed = Command::new("kcat")
        .args(["-b", DEFAULT, "-C", "-t", "demo", "-o", "beginning", "-e"])
        .args(["-q", "-f", "%k=%s @ offset %o\n"])
        .output()
        .unwrap();
    let text = String::from_utf8(consumed.stdout).unwrap();
    let expected: String = (1..=1000)
        .map(|i| format!("key-{i}={i} @ offset {}\n", i - 1))
        .collect();
    assert_eq!(text, expected);
    // The README's HTTP quick start, against the same topic.
    let curl = |args: &[&str]| -> String {
        let output = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--max-time", "30"])
            .args(args)
            .output()
            .unwrap();
        assert!(output.status.success(), "curl {args:?}: {output:?}");
        String::from_utf8(output.stdout).unwrap()
    };
    let produced = curl(&[
        "localhost:8080/v1/topics/demo/records",
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"records": [{"key": "key-1001", "value": "1001"}]}"#,
    ]);
    assert!(produced.contains(r#""offset":1000"#), "{produced}");
    let read = curl(&["localhost:8080/v1/topics/demo/records?max_records=5"]);
    assert!(read.contains(r#""key":"key-1","value":"1""#), "{read}");
    stop_with(&mut agent, "-TERM");
    assert!(
        segment_objects(&data) > 0,
        "segments in ./fjord-data/bucket"
    );
}
