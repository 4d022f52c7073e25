//! The admin APIs through clients nobody here wrote: confluent-kafka's
//! AdminClient (librdkafka) and kafka-python's KafkaAdminClient create topics
//! with configs, describe and alter them, grow partitions, describe the cluster
//! and delete records; kcat produces to a new partition and consumes from the
//! new low watermark; and everything they changed survives `kill -9` of the
//! agent.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::Write;
use std::process::{Command, Stdio};

use support::{AgentProcess, run_python_client_with_args};

const AGENT_ARGS: &[&str] = &["--flush-interval-ms", "10"];

/// Produces `values` with kcat to one partition; panics unless all were delivered.
fn kcat_produce(agent: &AgentProcess, topic: &str, partition: i32, values: &[&str]) {
    let mut child = Command::new("kcat")
        .args(["-b", &agent.address(), "-P", "-t", topic])
        .args(["-p", &partition.to_string(), "-X", "acks=all"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed by scripts/install-deps.sh");
    {
        let mut stdin = child.stdin.take().unwrap();
        for value in values {
            writeln!(stdin, "{value}").unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kcat produce to {topic}/{partition} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Consumes one partition with kcat from the beginning to its end:
/// `(offset, value)` pairs.
fn kcat_consume(agent: &AgentProcess, topic: &str, partition: i32) -> Vec<(i64, String)> {
    let output = Command::new("kcat")
        .args(["-b", &agent.address(), "-C", "-t", topic])
        .args(["-p", &partition.to_string(), "-o", "beginning", "-e", "-q"])
        .args(["-f", "%o\t%s\n"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kcat consume of {topic}/{partition} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (offset, value) = line
                .split_once('\t')
                .unwrap_or_else(|| panic!("unexpected kcat line {line:?}"));
            (offset.parse().unwrap(), value.to_owned())
        })
        .collect()
}

/// The partition count kcat's metadata listing reports for `topic`.
fn kcat_partition_count(agent: &AgentProcess, topic: &str) -> usize {
    let output = Command::new("kcat")
        .args(["-b", &agent.address(), "-L", "-t", topic])
        .output()
        .unwrap();
    assert!(output.status.success());
    let listing = String::from_utf8(output.stdout).unwrap();
    listing
        .lines()
        .filter(|line| line.trim_start().starts_with("partition "))
        .count()
}

#[test]
fn confluent_admin_client_manages_configs_partitions_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), AGENT_ARGS);
    let out = run_python_client_with_args("confluent_admin.py", &[&agent.address(), "setup"]);
    assert!(out.contains("confluent admin setup: ok"), "{out}");

    // Partitions 2 and 3 of admin-orders were created by CreatePartitions.
    assert_eq!(kcat_partition_count(&agent, "admin-orders"), 4);
    kcat_produce(
        &agent,
        "admin-orders",
        3,
        &["into-a-new-partition", "again"],
    );
    assert_eq!(
        kcat_consume(&agent, "admin-orders", 3),
        vec![(0, "into-a-new-partition".into()), (1, "again".into())]
    );
    // Partition 0 was trimmed to offset 4 by DeleteRecords.
    let trimmed = kcat_consume(&agent, "admin-orders", 0);
    assert_eq!(
        trimmed.first(),
        Some(&(4, "record-4".to_string())),
        "{trimmed:?}"
    );
    assert_eq!(trimmed.len(), 6, "{trimmed:?}");

    // Everything survives the agent's death.
    drop(agent);
    let agent = AgentProcess::start(dir.path(), AGENT_ARGS);
    let out = run_python_client_with_args("confluent_admin.py", &[&agent.address(), "verify"]);
    assert!(out.contains("confluent admin verify: ok"), "{out}");
    assert_eq!(
        kcat_consume(&agent, "admin-orders", 0).first().map(|r| r.0),
        Some(4)
    );
    assert_eq!(kcat_consume(&agent, "admin-orders", 3).len(), 2);
}

/// `--log-retention-ms` and `--log-retention-bytes` stand behind topics that
/// set no retention of their own: `DescribeConfigs` reports them as static
/// broker configs, on the topic and on the broker.
#[test]
fn confluent_admin_client_sees_the_agents_retention_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = AGENT_ARGS.to_vec();
    args.extend([
        "--log-retention-ms",
        "60000",
        "--log-retention-bytes",
        "1048576",
    ]);
    let agent = AgentProcess::start(dir.path(), &args);
    let out =
        run_python_client_with_args("confluent_admin.py", &[&agent.address(), "broker-defaults"]);
    assert!(out.contains("confluent admin broker-defaults: ok"), "{out}");
}

#[test]
fn kafka_python_admin_client_manages_configs_partitions_and_records() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), AGENT_ARGS);
    let out = run_python_client_with_args(
        "kafka_python_admin_configs.py",
        &[&agent.address(), "setup"],
    );
    assert!(
        out.contains("kafka-python admin configs setup: ok"),
        "{out}"
    );

    assert_eq!(kcat_partition_count(&agent, "kp-configs"), 3);
    kcat_produce(&agent, "kp-configs", 2, &["grown"]);
    assert_eq!(
        kcat_consume(&agent, "kp-configs", 2),
        vec![(0, "grown".into())]
    );
    let trimmed = kcat_consume(&agent, "kp-configs", 0);
    assert_eq!(
        trimmed.iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![3, 4, 5],
        "{trimmed:?}"
    );

    drop(agent);
    let agent = AgentProcess::start(dir.path(), AGENT_ARGS);
    let out = run_python_client_with_args(
        "kafka_python_admin_configs.py",
        &[&agent.address(), "verify"],
    );
    assert!(
        out.contains("kafka-python admin configs verify: ok"),
        "{out}"
    );
}
