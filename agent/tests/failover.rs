//! Three agent processes share one SQLite metadata file and one bucket on a real
//! S3 server (moto). An idempotent `acks=all` producer (confluent-kafka) and a
//! consumer group keep running while agents are killed with SIGKILL and
//! restarted, and one is paused with SIGSTOP past its lease and resumed. Then:
//! every acknowledged record is stored exactly once, at its acknowledged offset,
//! in production order per partition; the group saw every acknowledged record;
//! and the takeover time of each kill is printed.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::AgentProcess;

const RECORDS: usize = 22_000;
const PARTITIONS: &str = "6";

struct Cluster {
    dirs: Vec<PathBuf>,
    ports: Vec<u16>,
    args: Vec<String>,
    env: Vec<(String, String)>,
    agents: Vec<Option<AgentProcess>>,
}

impl Cluster {
    fn start(&mut self, i: usize) {
        let args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.agents[i] = Some(AgentProcess::start_on(
            &self.dirs[i],
            self.ports[i],
            &args,
            &env,
        ));
    }

    fn bootstrap(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node id agent `i` registered under (its data directory remembers it).
    fn node_id(&self, i: usize) -> i32 {
        std::fs::read_to_string(self.dirs[i].join("node-id"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

/// Partition → leader node id, as agent `via` reports them.
fn leaders(address: &str, topic: &str) -> BTreeMap<i32, i32> {
    let output = Command::new("kcat")
        .args(["-b", address, "-L", "-t", topic])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line.strip_prefix("partition ")?;
            let (partition, rest) = rest.split_once(',')?;
            let leader = rest.trim().strip_prefix("leader ")?.split(',').next()?;
            Some((partition.parse().ok()?, leader.parse().ok()?))
        })
        .collect()
}

#[allow(clippy::disallowed_methods)] // compared with the producer's wall clock
fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[allow(clippy::disallowed_methods)] // the test paces itself in real time
fn monotonic() -> std::time::Instant {
    std::time::Instant::now()
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/clients")
        .join(name)
}

fn signal(agent: &AgentProcess, signal: &str) {
    let pid = agent.child.id().to_string();
    assert!(
        Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success()
    );
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[test]
fn acknowledged_records_survive_agents_killed_and_paused_under_load() {
    let moto = fjord_storage::testing::MotoServer::start().unwrap();
    moto.create_bucket("failover").unwrap();
    let root = tempfile::tempdir().unwrap();
    let metadata = format!("sqlite://{}", root.path().join("metadata.db").display());
    let ports: Vec<u16> = (0..3)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let args = [
        "--metadata-url",
        metadata.as_str(),
        "--storage-url",
        "s3://failover/cluster",
        "--num-partitions",
        PARTITIONS,
        "--flush-interval-ms",
        "50",
        "--heartbeat-interval-ms",
        "200",
        "--lease-timeout-ms",
        "1500",
        "--balance-interval-ms",
        "200",
        "--group-initial-rebalance-delay-ms",
        "200",
    ];
    let endpoint = moto.endpoint();
    let mut cluster = Cluster {
        dirs: (0..3)
            .map(|i| root.path().join(format!("agent-{i}")))
            .collect(),
        ports,
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        env: [
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_REGION", "us-east-1"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect(),
        agents: vec![None, None, None],
    };
    for i in 0..3 {
        cluster.start(i);
    }
    let first = format!("127.0.0.1:{}", cluster.ports[0]);
    // Create the topic, then wait until its partitions are spread over all three.
    let mut spread = BTreeMap::new();
    for _ in 0..100 {
        spread = leaders(&first, "chaos");
        let distinct: BTreeSet<i32> = spread.values().copied().collect();
        if spread.len() == 6 && distinct.len() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        spread.values().copied().collect::<BTreeSet<_>>().len(),
        3,
        "partitions spread over the three agents: {spread:?}"
    );

    let bootstrap = cluster.bootstrap();
    let consumer = Command::new("python3")
        .arg(script("group_consume.py"))
        .args([bootstrap.as_str(), "chaos", "chaos-readers"])
        .args([&RECORDS.to_string(), "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut producer = Command::new("python3")
        .arg(script("produce_acked.py"))
        .args([bootstrap.as_str(), "chaos", &RECORDS.to_string(), "0.08"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = mpsc::channel::<String>();
    let stdout = BufReader::new(producer.stdout.take().unwrap());
    let reader = std::thread::spawn(move || {
        for line in stdout.lines() {
            if lines_tx.send(line.unwrap()).is_err() {
                return;
            }
        }
    });

    let mut acked: Vec<(i32, i64, String, f64)> = Vec::new();
    let mut failed = 0usize;
    let drain = |acked: &mut Vec<(i32, i64, String, f64)>, failed: &mut usize, wait: Duration| {
        let until = monotonic() + wait;
        loop {
            let left = until.saturating_duration_since(monotonic());
            match lines.recv_timeout(left) {
                Ok(line) => {
                    let f: Vec<&str> = line.split(' ').collect();
                    match f.as_slice() {
                        ["ACK", p, o, key, t] => acked.push((
                            p.parse().unwrap(),
                            o.parse().unwrap(),
                            (*key).to_owned(),
                            t.parse().unwrap(),
                        )),
                        ["FAIL", ..] => *failed += 1,
                        _ => panic!("unexpected producer output {line:?}"),
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => return true,
                Err(mpsc::RecvTimeoutError::Disconnected) => return false,
            }
        }
    };

    // Rounds: kill -9 each agent in turn (restarting it three seconds later, after the others took over), then
    // pause one past its lease and resume it.
    let mut kills: Vec<(f64, BTreeSet<i32>)> = Vec::new();
    for round in 0..4 {
        assert!(
            drain(&mut acked, &mut failed, Duration::from_secs(3)),
            "the producer ended early"
        );
        let victim = round % 3;
        let node = cluster.node_id(victim);
        let moved: BTreeSet<i32> = leaders(&first_live(&cluster, victim), "chaos")
            .into_iter()
            .filter(|(_, leader)| *leader == node)
            .map(|(p, _)| p)
            .collect();
        let killed_at = wall_clock();
        drop(cluster.agents[victim].take()); // SIGKILL
        kills.push((killed_at, moved));
        // Restarted after the lease lapsed: the others take over first.
        drain(&mut acked, &mut failed, Duration::from_secs(3));
        cluster.start(victim);
    }
    drain(&mut acked, &mut failed, Duration::from_secs(2));
    let paused = 1;
    signal(cluster.agents[paused].as_ref().unwrap(), "-STOP");
    drain(&mut acked, &mut failed, Duration::from_secs(4));
    signal(cluster.agents[paused].as_ref().unwrap(), "-CONT");
    while drain(&mut acked, &mut failed, Duration::from_secs(5)) {}
    producer.wait().unwrap();
    reader.join().unwrap();
    let consumed_by_group = consumer.wait_with_output().unwrap();

    // Everything acknowledged is stored once, where it was acknowledged.
    let output = Command::new("kcat")
        .args([
            "-b",
            &bootstrap,
            "-C",
            "-t",
            "chaos",
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .args(["-f", "%p\t%o\t%k\n"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let stored: Vec<(i32, i64, String)> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.splitn(3, '\t').collect();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                f[2].to_owned(),
            )
        })
        .collect();
    let at: HashMap<(i32, i64), &str> = stored
        .iter()
        .map(|(p, o, k)| ((*p, *o), k.as_str()))
        .collect();
    assert_eq!(at.len(), stored.len(), "an offset was returned twice");
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for (_, _, key) in &stored {
        *copies.entry(key.as_str()).or_default() += 1;
    }
    let mut lost = 0;
    let mut duplicated = 0;
    for (p, o, key, _) in &acked {
        match at.get(&(*p, *o)) {
            Some(found) if found == key => {}
            _ => lost += 1,
        }
        if copies.get(key.as_str()).copied().unwrap_or(0) > 1 {
            duplicated += 1;
        }
    }
    // Production order per partition: keys acknowledged in one partition have
    // offsets in the order they were produced.
    let mut by_partition: BTreeMap<i32, Vec<(i64, &str)>> = BTreeMap::new();
    for (p, o, key, _) in &acked {
        by_partition.entry(*p).or_default().push((*o, key.as_str()));
    }
    for (p, records) in &mut by_partition {
        records.sort_unstable();
        assert!(
            records.windows(2).all(|w| w[0].1 < w[1].1),
            "partition {p}: acknowledged records out of production order"
        );
    }
    // The group kept consuming: it saw every acknowledged record.
    let group_keys: BTreeSet<String> = String::from_utf8_lossy(&consumed_by_group.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("KEY ").map(str::to_owned))
        .collect();
    let missed_by_group = acked
        .iter()
        .filter(|(_, _, k, _)| !group_keys.contains(k))
        .count();

    // Takeover: from each kill to the first acknowledgement on a partition the
    // killed agent led. Acknowledgements the killed agent sent just before it
    // died still arrive in the first milliseconds after the kill; those within
    // 150 ms (three flush intervals) are not counted as the new leader's.
    let mut takeovers: Vec<f64> = kills
        .iter()
        .filter_map(|(killed_at, moved)| {
            acked
                .iter()
                .filter(|(p, _, _, t)| moved.contains(p) && *t > killed_at + 0.15)
                .map(|(_, _, _, t)| t - killed_at)
                .reduce(f64::min)
        })
        .collect();
    takeovers.sort_by(f64::total_cmp);
    println!(
        "acknowledged {}, failed {failed}, stored {}, lost {lost}, duplicated {duplicated}, \
         group saw {} distinct (missed {missed_by_group}); takeover after kill -9 over {} rounds: \
         p50 {:.2}s p99 {:.2}s max {:.2}s ({takeovers:.2?})",
        acked.len(),
        stored.len(),
        group_keys.len(),
        takeovers.len(),
        percentile(&takeovers, 0.5),
        percentile(&takeovers, 0.99),
        takeovers.last().copied().unwrap_or(f64::NAN),
    );
    assert_eq!(lost, 0, "acknowledged records lost");
    assert_eq!(duplicated, 0, "acknowledged records stored twice");
    assert_eq!(missed_by_group, 0, "the group missed acknowledged records");
    assert_eq!(
        takeovers.len(),
        kills.len(),
        "every kill's partitions were taken over"
    );
    assert!(acked.len() > RECORDS / 2, "most records were acknowledged");
}

/// The address of an agent other than `victim`.
fn first_live(cluster: &Cluster, victim: usize) -> String {
    let other = (victim + 1) % 3;
    format!("127.0.0.1:{}", cluster.ports[other])
}
