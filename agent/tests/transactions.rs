//! Transactions with real clients (`tests/clients/transactions.py`:
//! confluent-kafka over librdkafka 2.12.1, and kafka-python 2.2.15).
//!
//! - One agent: committed transactions are seen exactly once by
//!   `read_committed` consumers and aborted ones never; an open transaction
//!   holds them at its first offset; a second producer with the same
//!   transactional id fences the first; consume-transform-produce with the
//!   offsets sent to the transaction moves the group's offsets only with
//!   committed transactions; kafka-python's transactional producer and
//!   consumer agree with librdkafka.
//! - Three agents over one SQLite file and one bucket, with `kill -9`, once
//!   with each library's transactional producer (two tests, each on its own
//!   cluster):
//!   - of the producer, in an open transaction: the coordinator aborts it
//!     after its `transaction.timeout.ms`, and the same library's
//!     `read_committed` reader gets past it to what was produced after
//!     (each record once, none of the aborted transaction);
//!   - of the transaction coordinator's agent, and of a partition leader's,
//!     while the producer commits 40 transactions one after another: both
//!     libraries' `read_committed` readers see every committed record exactly
//!     once, and no record of an aborted attempt. A transaction that fails
//!     is sent again with the same records only once its abort is known
//!     (acknowledged, or found by a new producer's `init_transactions` and a
//!     read), so an aborted attempt that became visible would show as a
//!     duplicate. kafka-python 2.2.15 can hang in `commit_transaction` when
//!     the coordinator's connection fails (it drops the request; see
//!     `kp_bounded` in the script): its loop bounds the call and replaces the
//!     producer, as an application must.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod many_agents_support;
mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use many_agents_support::*;
use support::AgentProcess;

/// A bound for anything that must happen.
const MUST_HAPPEN: Duration = Duration::from_secs(120);

/// Agents renew their lease every 500 ms and are dead after 2 s.
const AGENT_ARGS: [&str; 6] = [
    "--heartbeat-interval-ms",
    "500",
    "--lease-timeout-ms",
    "2000",
    "--group-initial-rebalance-delay-ms",
    "300",
];

fn scenario(bootstrap: &str, name: &str) -> String {
    let output = support::run_python_client_with_args("transactions.py", &[bootstrap, name]);
    assert!(output.contains(&format!("OK {name}")), "{output}");
    output
}

#[test]
fn clients_commit_abort_fence_and_process_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &["--group-initial-rebalance-delay-ms", "300"]);
    let bootstrap = agent.address();
    for name in ["basic", "zombie", "eos", "kafka_python"] {
        let output = scenario(&bootstrap, name);
        println!("{name}:\n{output}");
    }
}

/// A client script running in the background, its output lines sent over a
/// channel.
struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Background {
    fn start(args: &[&str]) -> Self {
        let mut child = Command::new("python3")
            .arg(script("transactions.py"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                println!("client: {line}");
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        Background {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line equal to `line`.
    fn wait_line(&mut self, line: &str) {
        if self.seen.iter().any(|l| l == line) {
            return;
        }
        let deadline = monotonic() + MUST_HAPPEN;
        loop {
            let left = deadline.saturating_duration_since(monotonic());
            match self.lines.recv_timeout(left) {
                Ok(got) => {
                    let matched = got == line;
                    self.seen.push(got);
                    if matched {
                        return;
                    }
                }
                Err(_) => panic!(
                    "no {line:?} from the client in time; it said {:?}",
                    self.seen
                ),
            }
        }
    }

    /// Waits for the script to exit successfully.
    fn finish(mut self) -> Vec<String> {
        let deadline = monotonic() + Duration::from_secs(600);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(monotonic() < deadline, "the client did not finish");
            std::thread::sleep(Duration::from_millis(100));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        assert!(status.success(), "the client failed: {:?}", self.seen);
        std::mem::take(&mut self.seen)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One client library's scenarios in `transactions.py` for the `kill -9`
/// test.
struct Client {
    /// What the test prints it as.
    name: &'static str,
    produce_open: &'static str,
    produce_plain: &'static str,
    produce_committed: &'static str,
    read_committed: &'static str,
}

/// confluent-kafka over librdkafka.
const LIBRDKAFKA: Client = Client {
    name: "librdkafka",
    produce_open: "produce_open",
    produce_plain: "produce_plain",
    produce_committed: "produce_committed",
    read_committed: "read_committed",
};

/// kafka-python.
const KAFKA_PYTHON: Client = Client {
    name: "kafka-python",
    produce_open: "kp_produce_open",
    produce_plain: "kp_produce_plain",
    produce_committed: "kp_produce_committed",
    read_committed: "kp_read_committed",
};

impl Client {
    /// The values the client's `read_committed` reader finds in `topic`,
    /// sorted.
    fn read_committed(&self, bootstrap: &str, topic: &str) -> Vec<String> {
        let output = support::run_python_client_with_args(
            "transactions.py",
            &[bootstrap, self.read_committed, topic],
        );
        output
            .lines()
            .filter_map(|l| l.strip_prefix("VALUE "))
            .map(str::to_owned)
            .collect()
    }
}

#[test]
fn transactions_survive_kill_9_of_producer_coordinator_and_leader() {
    survive_kill_9(&LIBRDKAFKA);
}

#[test]
fn kafka_python_transactions_survive_kill_9_of_producer_coordinator_and_leader() {
    survive_kill_9(&KAFKA_PYTHON);
}

/// On three agents: `client`'s transactional producer is killed inside a
/// transaction, then commits transaction after transaction while the
/// coordinator's agent and a partition leader's agent are killed and
/// restarted; `client`'s `read_committed` reader sees every committed record
/// once and nothing of an aborted transaction.
fn survive_kill_9(client: &Client) {
    let name = client.name;
    let mut cluster = Cluster::new(3, Bucket::Directory, &AGENT_ARGS);
    for i in 0..3 {
        cluster.start(i);
    }
    let bootstrap = cluster.bootstrap();

    // 1. The producer dies inside a transaction: after its timeout (4 s) the
    //    coordinator aborts it, and read_committed readers get past it.
    let mut open = Background::start(&[
        &bootstrap,
        client.produce_open,
        "open",
        "dead-producer",
        "50",
        "4000",
    ]);
    open.wait_line("READY");
    drop(open); // SIGKILL
    let plain = support::run_python_client_with_args(
        "transactions.py",
        &[&bootstrap, client.produce_plain, "open", "after", "30"],
    );
    assert!(plain.contains("PRODUCED"), "{plain}");
    let values = wait_for(
        "the dead producer's transaction to be aborted",
        MUST_HAPPEN,
        || {
            let values = client.read_committed(&bootstrap, "open");
            (values.iter().filter(|v| v.starts_with("after-")).count() == 30).then_some(values)
        },
    );
    assert!(
        !values.iter().any(|v| v.starts_with("open-")),
        "{name}: records of the aborted transaction were visible: {values:?}"
    );
    assert_eq!(
        values.len(),
        30,
        "{name}: a record behind the aborted transaction was seen twice: {values:?}"
    );

    // 2. Transactions keep committing while the coordinator's agent and a
    //    partition leader's agent are killed (and come back).
    const TXNS: usize = 40;
    const PER_TXN: usize = 25;
    let txns = TXNS.to_string();
    let per_txn = PER_TXN.to_string();
    let mut steady = Background::start(&[
        &bootstrap,
        client.produce_committed,
        "steady",
        "steady-producer",
        "v",
        &txns,
        &per_txn,
    ]);
    steady.wait_line("COMMITTED 5");
    let meta = cluster.meta();
    let shard = fjord_metadata::coordinator_shard_of("steady-producer");
    let coordinator = meta
        .shard(shard)
        .leader
        .expect("the shard has a coordinator");
    let coordinator = cluster.index_of(coordinator);
    println!("{name}: killing the transaction coordinator: agent {coordinator}");
    cluster.kill(coordinator);
    steady.wait_line("COMMITTED 15");
    cluster.start(coordinator);
    steady.wait_line("COMMITTED 20");
    let topic = meta.topic("steady").unwrap();
    let leaders = meta.leaders(&topic);
    let leader = leaders
        .values()
        .filter_map(|(leader, _)| *leader)
        .map(|node| cluster.index_of(node))
        .find(|i| *i != coordinator)
        .unwrap_or(coordinator);
    println!("{name}: killing a partition leader: agent {leader}");
    cluster.kill(leader);
    steady.wait_line("COMMITTED 30");
    cluster.start(leader);
    let said = steady.finish();
    assert!(said.iter().any(|l| l == &format!("COMMITTED {TXNS}")));

    let mut expected: Vec<String> = (0..TXNS)
        .flat_map(|t| (0..PER_TXN).map(move |i| format!("v-{t}-{i}")))
        .collect();
    expected.sort();
    // Both libraries' readers, whichever wrote.
    for reader in [&LIBRDKAFKA, &KAFKA_PYTHON] {
        let values = reader.read_committed(&bootstrap, "steady");
        let mut distinct = values.clone();
        distinct.dedup();
        println!(
            "RESULT {name} producer, {} reader: read_committed={} expected={} distinct={}",
            reader.name,
            values.len(),
            expected.len(),
            distinct.len()
        );
        assert_eq!(
            values, expected,
            "{name} producer: {}'s read_committed reader saw a different set of records",
            reader.name
        );
    }
}
