//! Consumer groups with real clients (confluent-kafka, kafka-python, aiokafka,
//! kafkajs, kcat) against a real `fjord agent` process. Each scenario runs in
//! `tests/clients/group_harness.py`, whose member processes report every
//! assignment, record and commit; the harness checks the exact outcome and the
//! test re-checks its counts. Rebalance times are printed (run with
//! `--no-capture` to see them); they are measured, never asserted.
//!
//! Members use a 6 s session timeout and 1 s heartbeats; the agent's initial
//! rebalance delay is 300 ms.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::{AgentProcess, GroupScenario, run_group_scenario};

fn agent(dir: &Path) -> AgentProcess {
    AgentProcess::start(dir, &["--group-initial-rebalance-delay-ms", "300"])
}

fn scenario(args: &[&str]) -> GroupScenario {
    let dir = tempfile::tempdir().unwrap();
    let agent = agent(dir.path());
    run_group_scenario(&agent.address(), args)
}

/// Every record produced was delivered, each exactly once.
fn assert_exactly_once(result: &GroupScenario, produced: i64) {
    assert_eq!(result.count("produced"), produced, "{}", result.output);
    assert_eq!(
        result.count("distinct_delivered"),
        produced,
        "{}",
        result.output
    );
    assert_eq!(result.count("deliveries"), produced, "{}", result.output);
}

/// Every record produced was delivered; the extra deliveries are exactly the
/// redeliveries of uncommitted records the harness verified.
fn assert_no_loss(result: &GroupScenario, produced: i64) {
    assert_eq!(result.count("produced"), produced, "{}", result.output);
    assert_eq!(
        result.count("distinct_delivered"),
        produced,
        "{}",
        result.output
    );
    assert_eq!(
        result.count("deliveries"),
        produced + result.count("redelivered"),
        "{}",
        result.output
    );
}

// ----- three members over 12 partitions: every record to exactly one member -----

#[test]
fn three_confluent_kafka_members_share_twelve_partitions_exactly_once() {
    assert_exactly_once(&scenario(&["three_members", "--client", "confluent"]), 360);
}

#[test]
fn three_kafka_python_members_share_twelve_partitions_exactly_once() {
    assert_exactly_once(
        &scenario(&["three_members", "--client", "kafka-python"]),
        360,
    );
}

#[test]
fn three_aiokafka_members_share_twelve_partitions_exactly_once() {
    assert_exactly_once(&scenario(&["three_members", "--client", "aiokafka"]), 360);
}

#[test]
fn three_kafkajs_members_share_twelve_partitions_exactly_once() {
    assert_exactly_once(&scenario(&["three_members", "--client", "kafkajs"]), 360);
}

#[test]
fn confluent_kafka_python_and_aiokafka_members_share_one_group() {
    assert_exactly_once(&scenario(&["mixed_python_clients"]), 360);
}

// ----- membership changes, each scenario with several clients -----

/// A member leaves and another joins: partitions move, no record is lost, and
/// only uncommitted records are delivered again.
fn leave_and_join(client: &str) {
    assert_no_loss(&scenario(&["leave_and_join", "--client", client]), 600);
}

/// A member is killed (SIGKILL): its partitions move after the session timeout.
fn killed_member(client: &str) {
    assert_no_loss(&scenario(&["killed_member", "--client", client]), 600);
}

/// A consumer restarts and resumes from its committed offsets: it reads only
/// what was produced after the first one committed and left.
fn restart_resumes(client: &str) {
    let result = scenario(&["restart_resumes", "--client", client]);
    assert_exactly_once(&result, 420);
    assert_eq!(
        (result.count("first_read"), result.count("second_read")),
        (240, 180),
        "{}",
        result.output
    );
}

/// Static members (group.instance.id) restart without a rebalance.
fn static_members(client: &str) {
    assert_no_loss(&scenario(&["static_members", "--client", client]), 480);
}

#[test]
fn a_kafka_python_member_leaves_and_another_joins_without_losing_records() {
    leave_and_join("kafka-python");
}

#[test]
fn a_confluent_kafka_member_leaves_and_another_joins_without_losing_records() {
    leave_and_join("confluent");
}

#[test]
fn an_aiokafka_member_leaves_and_another_joins_without_losing_records() {
    leave_and_join("aiokafka");
}

#[test]
fn a_kafkajs_member_leaves_and_another_joins_without_losing_records() {
    leave_and_join("kafkajs");
}

#[test]
fn a_killed_aiokafka_member_loses_its_partitions_after_the_session_timeout() {
    killed_member("aiokafka");
}

#[test]
fn a_killed_confluent_kafka_member_loses_its_partitions_after_the_session_timeout() {
    killed_member("confluent");
}

#[test]
fn a_killed_kafka_python_member_loses_its_partitions_after_the_session_timeout() {
    killed_member("kafka-python");
}

#[test]
fn a_killed_kafkajs_member_loses_its_partitions_after_the_session_timeout() {
    killed_member("kafkajs");
}

#[test]
fn a_restarted_kafkajs_consumer_resumes_from_its_committed_offsets() {
    restart_resumes("kafkajs");
}

#[test]
fn a_restarted_kafka_python_consumer_resumes_from_its_committed_offsets() {
    restart_resumes("kafka-python");
}

#[test]
fn a_restarted_confluent_kafka_consumer_resumes_from_its_committed_offsets() {
    restart_resumes("confluent");
}

#[test]
fn a_restarted_aiokafka_consumer_resumes_from_its_committed_offsets() {
    restart_resumes("aiokafka");
}

#[test]
fn two_groups_read_one_topic_independently_with_their_own_offsets_and_lag() {
    let result = scenario(&[
        "two_groups",
        "--client",
        "kafkajs",
        "--client-b",
        "kafka-python",
    ]);
    assert_eq!(result.count("produced"), 240, "{}", result.output);
    assert_eq!(result.count("distinct_delivered"), 240, "{}", result.output);
    assert_eq!(
        result.count("deliveries"),
        480,
        "each group read everything once"
    );
    assert_eq!(result.count("g1_total_lag"), 0, "{}", result.output);
    // The harness checked g2's lag equals what its member left uncommitted.
    assert!(result.count("g2_total_lag") < 7, "{}", result.output);
}

#[test]
fn cooperative_sticky_keeps_unaffected_partitions_on_their_members() {
    assert_no_loss(&scenario(&["cooperative", "--client", "confluent"]), 480);
}

#[test]
fn a_static_confluent_kafka_member_restarts_without_a_rebalance() {
    static_members("confluent");
}

#[test]
fn a_static_aiokafka_member_restarts_without_a_rebalance() {
    static_members("aiokafka");
}

// ----- kcat -G and the lag report -----

fn kcat_produce(agent: &AgentProcess, topic: &str, from: usize, count: usize) {
    let mut child = Command::new("kcat")
        .args(["-b", &agent.address(), "-P", "-t", topic, "-K", "\t"])
        .args(["-X", "acks=all", "-X", "linger.ms=5"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat is installed by scripts/install-deps.sh");
    {
        let mut stdin = child.stdin.take().unwrap();
        for i in from..from + count {
            writeln!(stdin, "key-{i}\tvalue-{i}").unwrap();
        }
    }
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "kcat produce failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Consumes `count` records as a member of `group` (kcat's balanced consumer),
/// committing on close; returns (partition, offset, value).
fn kcat_group_consume(
    agent: &AgentProcess,
    group: &str,
    topic: &str,
    count: usize,
) -> Vec<(i32, i64, String)> {
    let output = Command::new("timeout")
        .args(["60", "kcat", "-b", &agent.address(), "-G", group, topic])
        .args([
            "-X",
            "auto.offset.reset=earliest",
            "-X",
            "session.timeout.ms=6000",
        ])
        .args(["-c", &count.to_string(), "-q", "-f", "%p\t%o\t%s\n"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kcat -G failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.splitn(3, '\t').collect();
            assert_eq!(fields.len(), 3, "unexpected kcat line {line:?}");
            (
                fields[0].parse().unwrap(),
                fields[1].parse().unwrap(),
                fields[2].to_owned(),
            )
        })
        .collect()
}

fn fjord_groups(dir: &Path, args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_fjord"))
        .arg("groups")
        .arg("--data-dir")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "fjord groups {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_kcat_group_member_resumes_from_committed_offsets_and_lag_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &[
            "--num-partitions",
            "4",
            "--group-initial-rebalance-delay-ms",
            "300",
        ],
    );
    kcat_produce(&agent, "kcat-group", 0, 200);
    let first = kcat_group_consume(&agent, "kcat-readers", "kcat-group", 200);
    let first_values: BTreeSet<String> = first.iter().map(|r| r.2.clone()).collect();
    assert_eq!(first_values.len(), 200, "200 distinct records");

    kcat_produce(&agent, "kcat-group", 200, 50);
    // The second run starts from the offsets the first committed on close: it
    // sees exactly the 50 new records.
    let second = kcat_group_consume(&agent, "kcat-readers", "kcat-group", 50);
    let second_values: BTreeSet<String> = second.iter().map(|r| r.2.clone()).collect();
    let expected: BTreeSet<String> = (200..250).map(|i| format!("value-{i}")).collect();
    assert_eq!(second_values, expected);
    let positions: BTreeSet<(i32, i64)> = first.iter().map(|r| (r.0, r.1)).collect();
    assert!(
        second.iter().all(|r| !positions.contains(&(r.0, r.1))),
        "no record read twice"
    );

    // The lag report: everything consumed and committed.
    let lag = fjord_groups(dir.path(), &["lag", "kcat-readers"]);
    println!("{lag}");
    assert!(lag.contains("TOTAL LAG\t0"), "{lag}");
    assert_eq!(
        lag.lines()
            .filter(|l| l.starts_with("kcat-group\t"))
            .count(),
        4,
        "{lag}"
    );
    let listed = fjord_groups(dir.path(), &["list"]);
    assert!(listed.contains("kcat-readers\tEmpty"), "{listed}");

    // New records are lag until the group reads them.
    kcat_produce(&agent, "kcat-group", 250, 30);
    let lag = fjord_groups(dir.path(), &["lag", "kcat-readers"]);
    assert!(lag.contains("TOTAL LAG\t30"), "{lag}");
}
