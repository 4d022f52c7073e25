//! Kafka clients nobody here wrote, against a real agent process: each creates
//! topics through its admin API, produces records with keys, headers and
//! timestamps over several partitions with every codec, with and without
//! idempotence, and consumes them back byte for byte (`tests/clients/compat.py`
//! does the checking). And an idempotent `acks=all` producer keeps producing while
//! the agent is killed with SIGKILL and restarted: every acknowledged record is
//! there afterwards, at its acknowledged offset, once.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use support::{AgentProcess, run_python_client_with_args};

/// Records per (codec, idempotence) configuration: 10 configurations give
/// 20,000 records per client.
const RECORDS_PER_CONFIGURATION: &str = "2000";

fn compat(client: &str) {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &["--flush-interval-ms", "20"]);
    let output = run_python_client_with_args(
        "compat.py",
        &[
            client,
            &agent.address(),
            "--records",
            RECORDS_PER_CONFIGURATION,
        ],
    );
    let summary = output.lines().last().unwrap_or_default();
    println!("{output}");
    assert!(
        summary.contains("\"consumed\": 20000") && summary.contains("\"problems\": 0"),
        "{client}: {summary}"
    );
}

#[test]
fn confluent_kafka_round_trips_every_codec_with_and_without_idempotence() {
    compat("confluent-kafka");
}

#[test]
fn kafka_python_round_trips_every_codec_with_and_without_idempotence() {
    compat("kafka-python");
}

#[test]
fn aiokafka_round_trips_every_codec_with_and_without_idempotence() {
    compat("aiokafka");
}

/// Consumes a whole topic with kcat: (partition, offset) → (key, value).
fn consume_all(agent: &AgentProcess, topic: &str) -> Vec<(i32, i64, String, String)> {
    let output = Command::new("kcat")
        .args(["-b", &agent.address(), "-C", "-t", topic])
        .args(["-o", "beginning", "-e", "-q", "-f", "%p\t%o\t%k\t%s\n"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.splitn(4, '\t').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_owned(),
                f[3].to_owned(),
            )
        })
        .collect()
}

#[test]
fn acknowledged_records_survive_kill_9_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--num-partitions", "4", "--flush-interval-ms", "50"];
    let agent = AgentProcess::start(dir.path(), &args);
    let address = agent.address();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/produce_acked.py");
    let mut producer = Command::new("python3")
        .arg(&script)
        .args([address.as_str(), "crash", "20000"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(producer.stdout.take().unwrap());
    let mut acked: Vec<(i32, i64, String)> = Vec::new();
    let mut failed = 0usize;
    let port = agent.port;
    let mut agent = Some(agent);
    let mut restarted = None;
    let mut acked_after_restart = 0usize;
    for line in stdout.lines() {
        let line = line.unwrap();
        let fields: Vec<&str> = line.split(' ').collect();
        match fields.as_slice() {
            ["ACK", p, o, key, _] => {
                acked.push((p.parse().unwrap(), o.parse().unwrap(), (*key).to_owned()))
            }
            ["FAIL", ..] => failed += 1,
            _ => panic!("unexpected producer output {line:?}"),
        }
        if restarted.is_some() && line.starts_with("ACK") {
            acked_after_restart += 1;
        }
        if acked.len() == 3_000 && agent.is_some() {
            // SIGKILL mid-stream: no flush, no goodbye. Then a new process on
            // the same port, while the producer retries what was in flight.
            drop(agent.take());
            restarted = Some(AgentProcess::start_on(dir.path(), port, &args, &[]));
        }
    }
    producer.wait().unwrap();
    let agent = restarted.expect("the producer finished before the kill");
    assert!(
        acked_after_restart > 0,
        "the producer carried on against the restarted agent"
    );
    let consumed = consume_all(&agent, "crash");
    let stored: HashMap<(i32, i64), (String, String)> = consumed
        .iter()
        .map(|(p, o, k, v)| ((*p, *o), (k.clone(), v.clone())))
        .collect();
    assert_eq!(stored.len(), consumed.len(), "an offset was returned twice");
    for (partition, offset, key) in &acked {
        let (stored_key, value) = stored
            .get(&(*partition, *offset))
            .unwrap_or_else(|| panic!("acknowledged {key} at {partition}/{offset} is missing"));
        assert_eq!(stored_key, key, "{partition}/{offset}");
        assert_eq!(value, &format!("value of {key}"));
    }
    // Production order per partition: keys (numbered in production order)
    // acknowledged in one partition have offsets in that order, across the kill.
    let mut by_partition: BTreeMap<i32, Vec<(i64, &str)>> = BTreeMap::new();
    for (partition, offset, key) in &acked {
        by_partition
            .entry(*partition)
            .or_default()
            .push((*offset, key.as_str()));
    }
    assert!(by_partition.len() > 1, "records over several partitions");
    for (partition, records) in &mut by_partition {
        records.sort_unstable();
        if let Some(pair) = records.windows(2).find(|w| w[0].1 >= w[1].1) {
            panic!("partition {partition}: acknowledged records out of production order: {pair:?}");
        }
    }
    // The stored log too: per partition, keys in production order.
    let mut stored_by_partition: BTreeMap<i32, Vec<(i64, &str)>> = BTreeMap::new();
    for (partition, offset, key, _) in &consumed {
        stored_by_partition
            .entry(*partition)
            .or_default()
            .push((*offset, key.as_str()));
    }
    for (partition, records) in &mut stored_by_partition {
        records.sort_unstable();
        if let Some(pair) = records.windows(2).find(|w| w[0].1 >= w[1].1) {
            panic!("partition {partition}: stored records out of production order: {pair:?}");
        }
    }
    // Each acknowledged key is stored once.
    let mut copies: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, _, key, _) in &consumed {
        *copies.entry(key.as_str()).or_default() += 1;
    }
    for (_, _, key) in &acked {
        assert_eq!(copies[key.as_str()], 1, "{key} is stored more than once");
    }
    println!(
        "acknowledged {} ({acked_after_restart} after the restart), failed {failed}, stored {}, lost 0, duplicated 0",
        acked.len(),
        consumed.len()
    );
}

#[test]
fn kafkajs_round_trips_every_codec_with_and_without_idempotence() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &[
            "--flush-interval-ms",
            "20",
            "--group-initial-rebalance-delay-ms",
            "100",
        ],
    );
    let node_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/node");
    let output = Command::new("node")
        .arg(node_dir.join("compat.js"))
        .args([agent.address().as_str(), RECORDS_PER_CONFIGURATION])
        .current_dir(&node_dir)
        .env("KAFKAJS_NO_PARTITIONER_WARNING", "1")
        .output()
        .expect("node is installed by scripts/install-deps.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "kafkajs compat failed: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let summary = stdout.lines().last().unwrap_or_default();
    assert!(
        summary.contains("\"consumed\":20000") && summary.contains("\"problems\":0"),
        "{summary}"
    );
}
