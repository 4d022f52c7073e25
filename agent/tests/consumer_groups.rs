//! Consumer groups with real clients (confluent-kafka, kafka-python, aiokafka,
//! kafkajs, kcat) against a real `fjord agent` process. Each scenario runs in
//! `tests/clients/group_harness.py`, whose member processes report every
//! assignment, record and commit; the harness checks the exact outcome and the
//! test re-checks its counts. Rebalance times are printed (run with
//! `--no-capture` to see them); they are measured, never asserted.
//!
//! Members use a 6 s session timeout and 1 s heartbeats; the agent's initial
//! rebalance delay is 300 ms.
//!
//! The consumer group protocol of KIP-848 (ConsumerGroupHeartbeat; the broker
//! assigns, with `uniform` or `range`) runs the same scenarios with the client
//! `confluent-consumer`: confluent-kafka with `group.protocol=consumer`. There
//! the session timeout (6 s) and heartbeat interval (1 s) are the agent's
//! (`--group-consumer-session-timeout-ms`, `--group-consumer-heartbeat-interval-ms`).
//! The scenarios' timing labels are the same under both protocols, so their
//! rebalance times compare directly. kcat takes part through the librdkafka
//! that confluent-kafka's wheel bundles (2.12.1): Debian's kcat links
//! librdkafka 2.0.2, which predates KIP-848.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use support::{AgentProcess, GroupScenario, run_group_scenario};

/// The harness's client speaking the consumer group protocol (KIP-848).
const CONSUMER_PROTOCOL_CLIENT: &str = "confluent-consumer";

/// Agent options of every scenario.
const AGENT_ARGS: [&str; 2] = ["--group-initial-rebalance-delay-ms", "300"];

/// The consumer group protocol's session timeout and heartbeat interval,
/// which belong to the broker: 6 s and 1 s as the classic members ask for.
const CONSUMER_PROTOCOL_AGENT_ARGS: [&str; 4] = [
    "--group-consumer-session-timeout-ms",
    "6000",
    "--group-consumer-heartbeat-interval-ms",
    "1000",
];

fn agent(dir: &Path) -> AgentProcess {
    AgentProcess::start(dir, &AGENT_ARGS)
}

/// An agent for consumer-protocol members (it also serves classic ones).
fn consumer_protocol_agent(dir: &Path, extra: &[&str]) -> AgentProcess {
    let args: Vec<&str> = AGENT_ARGS
        .iter()
        .chain(CONSUMER_PROTOCOL_AGENT_ARGS.iter())
        .chain(extra.iter())
        .copied()
        .collect();
    AgentProcess::start(dir, &args)
}

/// Runs a harness scenario against a new agent; the agent is configured for
/// the consumer protocol when a member speaks it.
fn scenario(args: &[&str]) -> GroupScenario {
    let dir = tempfile::tempdir().unwrap();
    let agent = if args.contains(&CONSUMER_PROTOCOL_CLIENT) {
        consumer_protocol_agent(dir.path(), &[])
    } else {
        agent(dir.path())
    };
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

// ----- the consumer group protocol (KIP-848) -----

#[test]
fn three_consumer_protocol_members_share_twelve_partitions_exactly_once() {
    assert_exactly_once(
        &scenario(&["three_members", "--client", CONSUMER_PROTOCOL_CLIENT]),
        360,
    );
}

#[test]
fn three_consumer_protocol_members_with_the_range_assignor_share_twelve_partitions_exactly_once() {
    assert_exactly_once(
        &scenario(&[
            "three_members",
            "--client",
            CONSUMER_PROTOCOL_CLIENT,
            "--assignor",
            "range",
        ]),
        360,
    );
}

#[test]
fn a_consumer_protocol_member_leaves_and_another_joins_without_losing_records() {
    leave_and_join(CONSUMER_PROTOCOL_CLIENT);
}

/// The session timeout is the agent's (6 s): the member is removed when it has
/// not heartbeated for that long.
#[test]
fn a_killed_consumer_protocol_member_loses_its_partitions_after_the_session_timeout() {
    killed_member(CONSUMER_PROTOCOL_CLIENT);
}

#[test]
fn a_restarted_consumer_protocol_consumer_resumes_from_its_committed_offsets() {
    restart_resumes(CONSUMER_PROTOCOL_CLIENT);
}

/// A static member closes with member epoch -2 (it stays in the group with its
/// partitions until the session timeout); its restarted instance takes them
/// back and the other members see no change.
#[test]
fn a_static_consumer_protocol_member_restarts_without_a_rebalance() {
    static_members(CONSUMER_PROTOCOL_CLIENT);
}

/// A regex subscription (resolved by the agent): a topic created while the
/// members run is assigned and read, exactly once; a topic the regex does not
/// match stays unassigned.
#[test]
fn a_consumer_protocol_pattern_subscription_picks_up_a_new_matching_topic() {
    let result = scenario(&["pattern", "--client", CONSUMER_PROTOCOL_CLIENT]);
    assert_no_loss(&result, 120);
    assert_eq!(
        (
            result.count("second_topic_produced"),
            result.count("second_topic_delivered")
        ),
        (120, 120),
        "{}",
        result.output
    );
}

/// A classic group commits and empties; consumer-protocol members join the same
/// group id and start each partition exactly at its committed offset.
#[test]
fn a_classic_group_upgrades_to_the_consumer_protocol_and_resumes_from_its_committed_offsets() {
    let result = scenario(&[
        "upgrade",
        "--client",
        CONSUMER_PROTOCOL_CLIENT,
        "--client-b",
        "confluent",
    ]);
    assert_no_loss(&result, 420);
}

/// A classic group and a consumer-protocol group read one topic: each reads
/// every record once and commits its own offsets.
#[test]
fn mixed_classic_and_consumer_protocol_groups_each_read_every_record_once() {
    let result = scenario(&[
        "mixed_protocols",
        "--client",
        CONSUMER_PROTOCOL_CLIENT,
        "--client-b",
        "confluent",
    ]);
    assert_eq!(result.count("produced"), 240, "{}", result.output);
    assert_eq!(result.count("distinct_delivered"), 240, "{}", result.output);
    assert_eq!(
        (
            result.count("classic_deliveries"),
            result.count("consumer_deliveries"),
            result.count("deliveries")
        ),
        (240, 240, 480),
        "{}",
        result.output
    );
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

/// How kcat runs: as Debian installs it, or over another librdkafka.
struct Kcat {
    /// A directory holding a `librdkafka.so.1` that replaces the system's
    /// (first on `LD_LIBRARY_PATH`); `None` for Debian's own.
    library_dir: Option<tempfile::TempDir>,
}

/// Prints the librdkafka that confluent-kafka's wheel bundles (auditwheel puts
/// it, renamed `librdkafka-<hash>.so.1`, in `confluent_kafka.libs/` beside the
/// package), then its version.
const FIND_WHEEL_LIBRDKAFKA: &str = r#"
import glob, os, confluent_kafka
package = os.path.dirname(confluent_kafka.__file__)
found = sorted(glob.glob(os.path.join(os.path.dirname(package), "confluent_kafka.libs", "librdkafka*.so*"))
               + glob.glob(os.path.join(package, ".libs", "librdkafka*.so*")))
print(found[0] if found else "")
print(confluent_kafka.libversion()[0])
"#;

impl Kcat {
    /// Debian's kcat with Debian's librdkafka (2.0.2: the classic group
    /// protocol only).
    fn debian() -> Self {
        Kcat { library_dir: None }
    }

    /// Debian's kcat over the librdkafka of confluent-kafka's wheel (2.12.1,
    /// which speaks KIP-848's consumer group protocol). The wheel's library
    /// exports the same `rd_kafka_*` ABI under another file name and soname, so
    /// a `librdkafka.so.1` symlink to it, first on `LD_LIBRARY_PATH`, is what
    /// the dynamic loader binds kcat to. Checks that `kcat -V` then reports the
    /// wheel's version.
    fn over_the_wheels_librdkafka() -> Self {
        let output = Command::new("python3")
            .args(["-c", FIND_WHEEL_LIBRDKAFKA])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "cannot locate confluent-kafka's librdkafka: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut lines = stdout.lines();
        let library = lines.next().unwrap_or_default().to_owned();
        let version = lines.next().unwrap_or_default().to_owned();
        assert!(
            !library.is_empty(),
            "no librdkafka*.so* in confluent-kafka's wheel (installed by scripts/install-deps.sh)"
        );
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&library, dir.path().join("librdkafka.so.1")).unwrap();
        let kcat = Kcat {
            library_dir: Some(dir),
        };
        let reported = kcat.command().arg("-V").output().unwrap();
        let reported = String::from_utf8_lossy(&reported.stdout).into_owned();
        assert!(
            reported.contains(&format!("librdkafka {version} ")),
            "kcat over {library} should report librdkafka {version}: {reported}"
        );
        kcat
    }

    /// `kcat`, with this librdkafka.
    fn command(&self) -> Command {
        let mut command = Command::new("kcat");
        if let Some(dir) = &self.library_dir {
            command.env("LD_LIBRARY_PATH", dir.path());
        }
        command
    }

    /// `timeout 60 kcat`, with this librdkafka.
    fn command_with_timeout(&self) -> Command {
        let mut command = Command::new("timeout");
        command.args(["60", "kcat"]);
        if let Some(dir) = &self.library_dir {
            command.env("LD_LIBRARY_PATH", dir.path());
        }
        command
    }
}

/// Consumes `count` records as a member of `group` (kcat's balanced consumer,
/// with `group_options` such as the protocol), committing on close; returns
/// (partition, offset, value).
fn kcat_group_consume(
    kcat: &Kcat,
    agent: &AgentProcess,
    group: &str,
    topic: &str,
    count: usize,
    group_options: &[&str],
) -> Vec<(i32, i64, String)> {
    let output = kcat
        .command_with_timeout()
        .args(["-b", &agent.address(), "-G", group, topic])
        .args(["-X", "auto.offset.reset=earliest"])
        .args(group_options)
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

/// A kcat group member reads 200 records and commits on close; a second run
/// reads exactly the 50 produced since; `fjord groups` then reports no lag,
/// and new records as lag.
fn kcat_group_member_resumes_and_lag_is_reported(
    agent: &AgentProcess,
    dir: &Path,
    kcat: &Kcat,
    group_options: &[&str],
) {
    kcat_produce(agent, "kcat-group", 0, 200);
    let first = kcat_group_consume(
        kcat,
        agent,
        "kcat-readers",
        "kcat-group",
        200,
        group_options,
    );
    let first_values: BTreeSet<String> = first.iter().map(|r| r.2.clone()).collect();
    assert_eq!(first_values.len(), 200, "200 distinct records");

    kcat_produce(agent, "kcat-group", 200, 50);
    // The second run starts from the offsets the first committed on close: it
    // sees exactly the 50 new records.
    let second = kcat_group_consume(kcat, agent, "kcat-readers", "kcat-group", 50, group_options);
    let second_values: BTreeSet<String> = second.iter().map(|r| r.2.clone()).collect();
    let expected: BTreeSet<String> = (200..250).map(|i| format!("value-{i}")).collect();
    assert_eq!(second_values, expected);
    let positions: BTreeSet<(i32, i64)> = first.iter().map(|r| (r.0, r.1)).collect();
    assert!(
        second.iter().all(|r| !positions.contains(&(r.0, r.1))),
        "no record read twice"
    );

    // The lag report: everything consumed and committed.
    let lag = fjord_groups(dir, &["lag", "kcat-readers"]);
    println!("{lag}");
    assert!(lag.contains("TOTAL LAG\t0"), "{lag}");
    assert_eq!(
        lag.lines()
            .filter(|l| l.starts_with("kcat-group\t"))
            .count(),
        4,
        "{lag}"
    );
    let listed = fjord_groups(dir, &["list"]);
    assert!(listed.contains("kcat-readers\tEmpty"), "{listed}");

    // New records are lag until the group reads them.
    kcat_produce(agent, "kcat-group", 250, 30);
    let lag = fjord_groups(dir, &["lag", "kcat-readers"]);
    assert!(lag.contains("TOTAL LAG\t30"), "{lag}");
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
    kcat_group_member_resumes_and_lag_is_reported(
        &agent,
        dir.path(),
        &Kcat::debian(),
        &["-X", "session.timeout.ms=6000"],
    );
}

/// As above with `group.protocol=consumer` (KIP-848), kcat running over the
/// librdkafka of confluent-kafka's wheel. librdkafka refuses
/// `session.timeout.ms` with this protocol: the agent's applies.
#[test]
fn a_kcat_consumer_protocol_group_member_resumes_from_committed_offsets_and_lag_is_reported() {
    let kcat = Kcat::over_the_wheels_librdkafka();
    let dir = tempfile::tempdir().unwrap();
    let agent = consumer_protocol_agent(dir.path(), &["--num-partitions", "4"]);
    kcat_group_member_resumes_and_lag_is_reported(
        &agent,
        dir.path(),
        &kcat,
        &["-X", "group.protocol=consumer"],
    );
}
