//! Several `fjord agent` processes over one SQLite metadata file and one bucket,
//! the real clients that load them, what they reported, and the checks that
//! every acknowledged record survived: shared by `failover.rs` and
//! `many_agents.rs`.
//!
//! Timings are measured and printed, never asserted; waits are bounded only by
//! generous limits that catch a broken requirement ("the takeover never
//! happened within 60 s").

#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use fjord_metadata::{
    AgentRecord, CoordinatorShardState, GroupOffset, IndexEntry, MetadataStore, PartitionState,
    TopicMeta, TopicPartition,
};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::support::{AgentProcess, free_port};

#[allow(clippy::disallowed_methods)] // compared with the clients' wall clocks
pub fn wall_clock() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[allow(clippy::disallowed_methods)] // the tests pace themselves in real time
pub fn monotonic() -> std::time::Instant {
    std::time::Instant::now()
}

/// Polls `probe` every 50 ms until it returns something; fails the test if
/// `limit` passes first (a generous bound: it catches a requirement that is
/// broken, not a slow machine).
pub fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let until = monotonic() + limit;
    loop {
        if let Some(found) = probe() {
            return found;
        }
        assert!(monotonic() < until, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `p`-quantile of `sorted` (nearest rank); NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/clients")
        .join(name)
}

/// Where the agents' bucket lives.
pub enum Bucket {
    /// A directory every agent reaches (`file://`).
    Directory,
    /// The moto S3 server.
    Moto,
}

/// Agent processes sharing one SQLite file and one bucket.
pub struct Cluster {
    pub root: tempfile::TempDir,
    pub metadata_url: String,
    pub dirs: Vec<PathBuf>,
    pub ports: Vec<u16>,
    /// Flags given to every agent.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub agents: Vec<Option<AgentProcess>>,
    moto: Option<fjord_storage::testing::MotoServer>,
}

impl Cluster {
    /// `count` agent slots (none started) with `args` on top of the shared
    /// metadata and bucket flags.
    pub fn new(count: usize, bucket: Bucket, args: &[&str]) -> Self {
        let root = tempfile::tempdir().unwrap();
        let metadata_url = format!("sqlite://{}", root.path().join("metadata.db").display());
        let mut all = vec!["--metadata-url".to_owned(), metadata_url.clone()];
        let mut env = Vec::new();
        let moto = match bucket {
            Bucket::Directory => {
                all.push("--storage-url".into());
                all.push(format!("file://{}", root.path().join("bucket").display()));
                None
            }
            Bucket::Moto => {
                let moto = fjord_storage::testing::MotoServer::start().unwrap();
                moto.create_bucket("fjord").unwrap();
                all.push("--storage-url".into());
                all.push("s3://fjord/cluster".into());
                for (k, v) in [
                    ("AWS_ENDPOINT_URL", moto.endpoint().as_str()),
                    ("AWS_ALLOW_HTTP", "true"),
                    ("AWS_REGION", "us-east-1"),
                    ("AWS_ACCESS_KEY_ID", "testing"),
                    ("AWS_SECRET_ACCESS_KEY", "testing"),
                    ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false"),
                ] {
                    env.push((k.to_owned(), v.to_owned()));
                }
                Some(moto)
            }
        };
        all.extend(args.iter().map(|a| (*a).to_owned()));
        Cluster {
            dirs: (0..count)
                .map(|i| root.path().join(format!("agent-{i}")))
                .collect(),
            ports: (0..count).map(|_| free_port()).collect(),
            root,
            metadata_url,
            args: all,
            env,
            agents: (0..count).map(|_| None).collect(),
            moto,
        }
    }

    /// Starts agent `i` (again, on its port and data directory) with `extra`
    /// flags after the shared ones.
    pub fn start_with(&mut self, i: usize, extra: &[&str]) {
        self.start_logging(i, extra, None);
    }

    /// As [`Cluster::start_with`], appending the agent's stderr (its log) to
    /// `stderr_file` when given.
    pub fn start_logging(&mut self, i: usize, extra: &[&str], stderr_file: Option<&Path>) {
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend_from_slice(extra);
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.agents[i] = Some(AgentProcess::start_on_logging(
            &self.dirs[i],
            self.ports[i],
            &args,
            &env,
            stderr_file,
        ));
    }

    /// How agent `i` ended, if it is started and has exited by itself.
    pub fn exited(&mut self, i: usize) -> Option<ExitStatus> {
        self.agents[i].as_mut()?.child.try_wait().unwrap()
    }

    pub fn start(&mut self, i: usize) {
        self.start_with(i, &[]);
    }

    /// `kill -9`.
    pub fn kill(&mut self, i: usize) {
        drop(self.agents[i].take());
    }

    pub fn signal(&self, i: usize, signal: &str) {
        let pid = self.agents[i].as_ref().unwrap().child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// SIGTERM, then waits (at most `limit`) for the agent to exit; returns its
    /// exit status and how long it took.
    pub fn terminate(&mut self, i: usize, limit: Duration) -> (ExitStatus, Duration) {
        let started = monotonic();
        self.signal(i, "-TERM");
        let mut agent = self.agents[i].take().unwrap();
        let status = wait_for("the agent exiting after SIGTERM", limit, || {
            agent.child.try_wait().unwrap()
        });
        (status, started.elapsed())
    }

    pub fn address(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.ports[i])
    }

    /// Every agent's address, running or not (clients take the live ones).
    pub fn bootstrap(&self) -> String {
        (0..self.ports.len())
            .map(|i| self.address(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node id agent `i` registered under (its data directory remembers it).
    pub fn node_id(&self, i: usize) -> i32 {
        wait_for("the agent's node-id file", Duration::from_secs(30), || {
            std::fs::read_to_string(self.dirs[i].join("node-id"))
                .ok()
                .and_then(|text| text.trim().parse().ok())
        })
    }

    /// The index of the agent registered as `node_id`.
    pub fn index_of(&self, node_id: i32) -> usize {
        (0..self.dirs.len())
            .find(|i| {
                std::fs::read_to_string(self.dirs[*i].join("node-id"))
                    .ok()
                    .and_then(|text| text.trim().parse::<i32>().ok())
                    == Some(node_id)
            })
            .unwrap_or_else(|| panic!("no agent has node id {node_id}"))
    }

    pub fn running(&self) -> Vec<usize> {
        (0..self.agents.len())
            .filter(|i| self.agents[*i].is_some())
            .collect()
    }

    /// The metadata file, opened as an agent opens it.
    pub fn meta(&self) -> Meta {
        Meta::open(&self.metadata_url)
    }
}

/// The shared SQLite metadata file, read directly (the `fjord_metadata` crate
/// on the same file the agents write).
pub struct Meta {
    runtime: tokio::runtime::Runtime,
    pub store: MetadataStore,
}

impl Meta {
    pub fn open(url: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let store = runtime.block_on(fjord_metadata::open(url)).unwrap();
        Meta { runtime, store }
    }

    pub fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    pub fn topic(&self, name: &str) -> Option<TopicMeta> {
        self.block_on(self.store.describe_topic(name)).ok()
    }

    pub fn states(&self, topic: &TopicMeta) -> Vec<PartitionState> {
        self.block_on(self.store.partition_states(topic.id))
            .unwrap()
    }

    /// Every index entry of a partition, in offset order.
    pub fn index(&self, topic: &TopicMeta, partition: i32) -> Vec<IndexEntry> {
        let tp = TopicPartition::new(topic.id, partition);
        self.block_on(self.store.lookup(tp, 0, 10_000_000))
            .unwrap()
            .entries
    }

    pub fn agents(&self) -> Vec<AgentRecord> {
        self.block_on(self.store.list_agents()).unwrap()
    }

    pub fn shard(&self, shard: u32) -> CoordinatorShardState {
        self.block_on(self.store.coordinator_shard(shard)).unwrap()
    }

    pub fn offsets(&self, group: &str) -> Vec<GroupOffset> {
        self.block_on(self.store.fetch_offsets(group)).unwrap()
    }

    /// Partition → (leader, epoch) of `topic`.
    pub fn leaders(&self, topic: &TopicMeta) -> BTreeMap<i32, (Option<i32>, i32)> {
        self.states(topic)
            .iter()
            .enumerate()
            .map(|(p, s)| (i32::try_from(p).unwrap(), (s.leader, s.leader_epoch)))
            .collect()
    }

    /// Waits until `topic` exists with every partition led by one of `nodes`
    /// and each of them leading at least `at_least` partitions.
    pub fn wait_spread(
        &self,
        name: &str,
        nodes: &BTreeSet<i32>,
        at_least: usize,
        limit: Duration,
    ) -> (TopicMeta, BTreeMap<i32, (Option<i32>, i32)>) {
        wait_for(
            &format!("{name} spread over agents {nodes:?}"),
            limit,
            || {
                let topic = self.topic(name)?;
                let leaders = self.leaders(&topic);
                let mut load: BTreeMap<i32, usize> = BTreeMap::new();
                for (leader, _) in leaders.values() {
                    *load.entry((*leader)?).or_default() += 1;
                }
                let spread = load.keys().all(|n| nodes.contains(n))
                    && nodes
                        .iter()
                        .all(|n| load.get(n).copied().unwrap_or(0) >= at_least);
                spread.then_some((topic, leaders))
            },
        )
    }
}

/// The offset a partition's next leader took it over from after `old_epoch`:
/// the first offset committed under a later epoch.
pub fn takeover_offset(index: &[IndexEntry], old_epoch: i32) -> Option<i64> {
    index
        .iter()
        .find(|e| e.leader_epoch > old_epoch)
        .map(|e| e.base_offset)
}

/// Asserts the index of a partition is one contiguous run from `start` with
/// epochs that never go back.
pub fn assert_index_contiguous(what: &str, index: &[IndexEntry]) {
    for pair in index.windows(2) {
        assert_eq!(
            pair[1].base_offset,
            pair[0].last_offset + 1,
            "{what}: index entries not contiguous: {:?} then {:?}",
            pair[0],
            pair[1]
        );
        assert!(
            pair[1].leader_epoch >= pair[0].leader_epoch,
            "{what}: an entry of epoch {} follows one of epoch {}",
            pair[1].leader_epoch,
            pair[0].leader_epoch
        );
    }
}

// ----- producers -----

#[derive(Debug, Clone)]
pub struct Ack {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    /// The producer's wall clock when the acknowledgement arrived.
    pub at: f64,
}

#[derive(Debug, Clone)]
pub struct ClientError {
    pub name: String,
    pub fatal: bool,
    pub retriable: bool,
    pub text: String,
}

#[derive(Debug, Default, Clone)]
pub struct ProducerLog {
    pub acks: Vec<Ack>,
    /// `FAIL` lines: deliveries the client gave up on.
    pub failed: Vec<String>,
    /// Client-level errors (confluent-kafka's error_cb, with `--errors`).
    pub errors: Vec<ClientError>,
}

/// A producer script running against the cluster, its output collected as it
/// comes.
pub struct Producer {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    log: Arc<Mutex<ProducerLog>>,
    /// Set once its output ends (it exited).
    ended: Arc<std::sync::atomic::AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl Producer {
    /// `script` (produce_acked.py or produce_acked_kafka_python.py) with its
    /// arguments; it stops early when [`Producer::stop`] closes its input if
    /// given `--until-stdin-closes`.
    pub fn spawn(name: &str, script_name: &str, args: &[&str]) -> Self {
        let mut child = Command::new("python3")
            .arg(script(script_name))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(ProducerLog::default()));
        let ended = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = std::thread::spawn({
            let log = log.clone();
            let name = name.to_owned();
            let ended = ended.clone();
            move || {
                let _ended = SetOnDrop(ended);
                for line in stdout.lines() {
                    let line = line.unwrap();
                    let fields: Vec<&str> = line.splitn(5, ' ').collect();
                    let mut log = log.lock().unwrap();
                    match fields.as_slice() {
                        ["ACK", p, o, key, t] => log.acks.push(Ack {
                            partition: p.parse().unwrap(),
                            offset: o.parse().unwrap(),
                            key: (*key).to_owned(),
                            at: t.parse().unwrap(),
                        }),
                        ["FAIL", ..] => log.failed.push(line.clone()),
                        ["ERROR", name, fatal, retriable, rest @ ..] => {
                            log.errors.push(ClientError {
                                name: (*name).to_owned(),
                                fatal: *fatal == "1",
                                retriable: *retriable == "1",
                                text: rest.join(" "),
                            });
                        }
                        _ => panic!("{name}: unexpected producer output {line:?}"),
                    }
                }
            }
        });
        // Its stderr (tracebacks, client logs) goes to the test's output.
        std::thread::spawn({
            let name = name.to_owned();
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[{name}] {line}");
                }
            }
        });
        Producer {
            name: name.to_owned(),
            child,
            stdin,
            log,
            ended,
            reader: Some(reader),
        }
    }

    /// Records acknowledged so far; fails the test if the producer has exited
    /// before it was told to stop.
    pub fn acked_while_running(&self) -> usize {
        assert!(
            self.stdin.is_none() || !self.ended.load(std::sync::atomic::Ordering::SeqCst),
            "{} exited early (its stderr is above)",
            self.name
        );
        self.acked()
    }

    /// What it reported so far.
    pub fn log(&self) -> ProducerLog {
        self.log.lock().unwrap().clone()
    }

    pub fn acked(&self) -> usize {
        self.log.lock().unwrap().acks.len()
    }

    /// Closes its input: a producer given `--until-stdin-closes` stops
    /// producing and waits for what it has in flight.
    pub fn stop(&mut self) {
        drop(self.stdin.take());
    }

    /// Waits (at most `limit`) for it to exit successfully; returns its report.
    pub fn wait(mut self, limit: Duration) -> ProducerLog {
        let name = self.name.clone();
        let child = &mut self.child;
        let status = wait_for(&format!("{name} finishing"), limit, || {
            child.try_wait().unwrap()
        });
        assert!(status.success(), "{name} exited with {status}");
        self.reader.take().unwrap().join().unwrap();
        self.log()
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sets its flag when dropped (a reader thread's end, even by a panic).
struct SetOnDrop(Arc<std::sync::atomic::AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

// ----- consumer-group members -----

/// One record a group member read, in its order.
#[derive(Debug, Clone)]
pub struct Consumed {
    pub partition: i32,
    pub offset: i64,
    pub key: String,
    /// Which assignment of this partition to this member it came in.
    pub session: u32,
}

#[derive(Debug, Default, Clone)]
pub struct MemberLog {
    pub records: Vec<Consumed>,
    /// Per partition, how many times it was assigned to this member.
    pub sessions: BTreeMap<i32, u32>,
    pub assigned: BTreeSet<i32>,
    pub rebalances: usize,
    pub errors: Vec<String>,
    pub done: bool,
}

/// A `group_consume.py` member.
pub struct Member {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    log: Arc<Mutex<MemberLog>>,
    reader: Option<JoinHandle<()>>,
}

fn partition_list(text: &str) -> Vec<i32> {
    text.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap())
        .collect()
}

impl Member {
    pub fn spawn(name: &str, bootstrap: &str, topic: &str, group: &str) -> Self {
        Self::spawn_for(name, bootstrap, topic, group, Duration::from_secs(240))
    }

    /// As [`Member::spawn`]; the member leaves by itself after `limit`.
    pub fn spawn_for(
        name: &str,
        bootstrap: &str,
        topic: &str,
        group: &str,
        limit: Duration,
    ) -> Self {
        let mut child = Command::new("python3")
            .arg(script("group_consume.py"))
            .args([bootstrap, topic, group, &limit.as_secs().to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(MemberLog::default()));
        let reader = std::thread::spawn({
            let log = log.clone();
            let name = name.to_owned();
            move || {
                for line in stdout.lines() {
                    let line = line.unwrap();
                    let (kind, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
                    let mut log = log.lock().unwrap();
                    match kind {
                        "REC" => {
                            let f: Vec<&str> = rest.splitn(3, ' ').collect();
                            let partition: i32 = f[0].parse().unwrap();
                            let session = log.sessions.get(&partition).copied().unwrap_or(0);
                            log.records.push(Consumed {
                                partition,
                                offset: f[1].parse().unwrap(),
                                key: f[2].to_owned(),
                                session,
                            });
                        }
                        "ASSIGN" => {
                            log.rebalances += 1;
                            for p in partition_list(rest) {
                                *log.sessions.entry(p).or_default() += 1;
                                log.assigned.insert(p);
                            }
                        }
                        "REVOKE" => {
                            for p in partition_list(rest) {
                                log.assigned.remove(&p);
                            }
                        }
                        "CONSUMER_ERROR" => log.errors.push(rest.to_owned()),
                        "DONE" => log.done = true,
                        _ => panic!("{name}: unexpected member output {line:?}"),
                    }
                }
            }
        });
        std::thread::spawn({
            let name = name.to_owned();
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    eprintln!("[{name}] {line}");
                }
            }
        });
        Member {
            name: name.to_owned(),
            child,
            stdin,
            log,
            reader: Some(reader),
        }
    }

    pub fn log(&self) -> MemberLog {
        self.log.lock().unwrap().clone()
    }

    /// Closes its input (it leaves the group and exits), waits for it.
    pub fn finish(mut self, limit: Duration) -> MemberLog {
        drop(self.stdin.take());
        let name = self.name.clone();
        let child = &mut self.child;
        let status = wait_for(&format!("{name} finishing"), limit, || {
            child.try_wait().unwrap()
        });
        assert!(status.success(), "{name} exited with {status}");
        self.reader.take().unwrap().join().unwrap();
        self.log()
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every (partition, offset) the members read, with the key read there.
pub fn consumed_by(members: &[&Member]) -> HashMap<(i32, i64), String> {
    let mut seen = HashMap::new();
    for member in members {
        for record in member.log().records {
            seen.insert((record.partition, record.offset), record.key);
        }
    }
    seen
}

// ----- verification -----

/// Every record of `topic` from the beginning, read with kcat:
/// (partition, offset, key) in each partition's order.
pub fn read_log(bootstrap: &str, topic: &str) -> Vec<(i32, i64, String)> {
    let output = Command::new("kcat")
        .args([
            "-b",
            bootstrap,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-e",
            "-q",
        ])
        .args(["-f", "%p\t%o\t%k\n"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "kcat failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
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
        .collect()
}

/// What [`verify_log`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub acknowledged: usize,
    pub stored: usize,
    pub lost: usize,
    pub duplicated: usize,
}

/// Checks the stored log against what `producers` were acknowledged:
/// every acknowledged record is stored at its acknowledged offset, once, and
/// (for producers listed as ordered: idempotent or one request in flight) the
/// records of one producer in one partition are stored in production order.
/// Also checks each partition's stored offsets are dense from its first.
/// Returns the counts; the caller asserts on them.
pub fn verify_log(stored: &[(i32, i64, String)], producers: &[(&str, &ProducerLog)]) -> Verified {
    verify_log_where(stored, producers, |_, _| true)
}

/// [`verify_log`], with production order asserted only where
/// `ordered(producer, partition)` says so. librdkafka bounds requests in
/// flight per connection, not per partition: a producer without idempotence
/// whose partition moves to another agent has a second connection, and a
/// retried request from the first may land after later records sent over the
/// second (librdkafka issue 1092 names leader changes as such a case). Apache
/// Kafka leaves that order to the client the same way.
pub fn verify_log_where(
    stored: &[(i32, i64, String)],
    producers: &[(&str, &ProducerLog)],
    ordered: impl Fn(&str, i32) -> bool,
) -> Verified {
    let at: HashMap<(i32, i64), &str> = stored
        .iter()
        .map(|(p, o, k)| ((*p, *o), k.as_str()))
        .collect();
    assert_eq!(at.len(), stored.len(), "an offset was returned twice");
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for (p, o, _) in stored {
        by_partition.entry(*p).or_default().push(*o);
    }
    for (p, offsets) in &by_partition {
        assert!(
            offsets.windows(2).all(|w| w[1] == w[0] + 1),
            "partition {p}: stored offsets are not dense and in order"
        );
    }
    let mut copies: HashMap<&str, usize> = HashMap::new();
    for (_, _, key) in stored {
        *copies.entry(key.as_str()).or_default() += 1;
    }
    let mut total = Exactly::default();
    for (name, log) in producers {
        let counts = exactly_once(name, log, &at, &copies);
        let reordered = counts
            .reordered_in
            .iter()
            .filter(|p| ordered(name, **p))
            .count();
        assert_eq!(
            reordered, 0,
            "{name}: records stored out of production order (printed above)"
        );
        total.acknowledged += counts.acknowledged;
        total.lost += counts.lost;
        total.duplicated += counts.duplicated;
    }
    let Exactly {
        acknowledged,
        lost,
        duplicated,
        ..
    } = total;
    Verified {
        acknowledged,
        stored: stored.len(),
        lost,
        duplicated,
    }
}

/// What [`exactly_once`] counted for one producer.
#[derive(Debug, Default, Clone)]
pub struct Exactly {
    pub acknowledged: usize,
    pub lost: usize,
    pub duplicated: usize,
    pub reordered: usize,
    /// The partitions where a pair was out of order.
    pub reordered_in: BTreeSet<i32>,
}

/// Every acknowledged key of `log` stored at its acknowledged offset (else
/// lost), once (else duplicated), and in production order within a partition
/// (pairs out of order counted as reordered; keys grow with production order).
/// `at` is the stored log by (partition, offset), `copies` how often each key
/// is stored. The first few of each kind are printed.
pub fn exactly_once(
    name: &str,
    log: &ProducerLog,
    at: &HashMap<(i32, i64), &str>,
    copies: &HashMap<&str, usize>,
) -> Exactly {
    let mut counts = Exactly::default();
    let mut order: BTreeMap<i32, Vec<(i64, &str)>> = BTreeMap::new();
    for ack in &log.acks {
        counts.acknowledged += 1;
        if at.get(&(ack.partition, ack.offset)).copied() != Some(ack.key.as_str()) {
            counts.lost += 1;
            if counts.lost <= 5 {
                eprintln!(
                    "{name}: acknowledged {} at {}/{} (at {:.3}) but the log holds {:?} there",
                    ack.key,
                    ack.partition,
                    ack.offset,
                    ack.at,
                    at.get(&(ack.partition, ack.offset))
                );
            }
        }
        if copies.get(ack.key.as_str()).copied().unwrap_or(0) > 1 {
            counts.duplicated += 1;
            if counts.duplicated <= 5 {
                eprintln!("{name}: {} is stored more than once", ack.key);
            }
        }
        order
            .entry(ack.partition)
            .or_default()
            .push((ack.offset, ack.key.as_str()));
    }
    for (p, records) in &mut order {
        records.sort_unstable();
        for pair in records.windows(2).filter(|w| w[0].1 >= w[1].1) {
            counts.reordered += 1;
            counts.reordered_in.insert(*p);
            if counts.reordered <= 5 {
                eprintln!(
                    "{name}, partition {p}: {} at {} before {} at {}: out of production order",
                    pair[0].1, pair[0].0, pair[1].1, pair[1].0
                );
            }
        }
    }
    counts
}

/// What [`verify_group`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupVerified {
    /// Records read, counting re-reads.
    pub read: usize,
    /// Distinct (partition, offset) read.
    pub distinct: usize,
    /// Read again after a rebalance (at-least-once delivery of a group).
    pub reread: usize,
    /// Acknowledged records no member read.
    pub missed: usize,
}

/// Checks what group members read: each record read is the one stored at that
/// offset; within one assignment of a partition to a member, offsets follow
/// each other one by one (in order, nothing skipped); and every acknowledged
/// record was read by some member.
pub fn verify_group(
    members: &[MemberLog],
    stored: &[(i32, i64, String)],
    producers: &[&ProducerLog],
) -> GroupVerified {
    let at: HashMap<(i32, i64), &str> = stored
        .iter()
        .map(|(p, o, k)| ((*p, *o), k.as_str()))
        .collect();
    let mut seen: HashMap<(i32, i64), usize> = HashMap::new();
    let mut read = 0;
    for (m, member) in members.iter().enumerate() {
        let mut last: HashMap<(i32, u32), i64> = HashMap::new();
        for record in &member.records {
            read += 1;
            *seen.entry((record.partition, record.offset)).or_default() += 1;
            assert_eq!(
                at.get(&(record.partition, record.offset)).copied(),
                Some(record.key.as_str()),
                "member {m} read {} at {}/{}, which the log does not hold there",
                record.key,
                record.partition,
                record.offset
            );
            if let Some(previous) = last.insert((record.partition, record.session), record.offset) {
                assert_eq!(
                    record.offset,
                    previous + 1,
                    "member {m}, partition {}, assignment {}: offset {} read after {previous}",
                    record.partition,
                    record.session,
                    record.offset
                );
            }
        }
    }
    let missed = producers
        .iter()
        .flat_map(|log| log.acks.iter())
        .filter(|ack| !seen.contains_key(&(ack.partition, ack.offset)))
        .count();
    GroupVerified {
        read,
        distinct: seen.len(),
        reread: seen.values().map(|n| n - 1).sum(),
        missed,
    }
}

// ----- the Kafka wire, spoken directly -----

/// A raw Kafka connection: requests sent and responses read separately, so a
/// test can leave requests pending.
pub struct Wire {
    pub stream: TcpStream,
    correlation_id: i32,
}

impl Wire {
    pub fn connect(address: &str) -> Self {
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .unwrap();
        Wire {
            stream,
            correlation_id: 0,
        }
    }

    /// Sends a request; returns its correlation id.
    pub fn send<Q: Encodable>(&mut self, api: ApiKey, version: i16, request: &Q) -> i32 {
        self.correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str("fjord-many-agents"));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api.request_header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).unwrap();
        self.correlation_id
    }

    /// Reads one response: (correlation id, body); `None` if the agent closed
    /// the connection.
    pub fn receive<R: Decodable>(&mut self, api: ApiKey, version: i16) -> Option<(i32, R)> {
        let mut len = [0u8; 4];
        if self.stream.read_exact(&mut len).is_err() {
            return None;
        }
        let mut response = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut response).ok()?;
        let mut bytes = Bytes::from(response);
        let header =
            ResponseHeader::decode(&mut bytes, api.response_header_version(version)).unwrap();
        Some((
            header.correlation_id,
            R::decode(&mut bytes, version).unwrap(),
        ))
    }

    pub fn call<Q: Encodable, R: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Q,
    ) -> R {
        let id = self.send(api, version, request);
        let (answered, response) = self
            .receive(api, version)
            .expect("the agent closed the connection");
        assert_eq!(answered, id);
        response
    }
}

/// One v2 record batch of plain (non-idempotent) records with these keys
/// (values `value of <key>`), built by the shared wire helper.
pub fn record_batch(keys: &[String]) -> Bytes {
    let records: Vec<crate::support::wire::TestRecord> = keys
        .iter()
        .map(|key| {
            crate::support::wire::TestRecord::new(
                key,
                &format!("value of {key}"),
                1_700_000_000_000,
            )
        })
        .collect();
    crate::support::wire::batch(&records, None)
}

/// A Produce request (v9) of one batch to one partition.
pub fn produce_request(
    topic: &str,
    partition: i32,
    batch: Bytes,
    acks: i16,
) -> kafka_protocol::messages::ProduceRequest {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, TopicName};
    let mut data = PartitionProduceData::default();
    data.index = partition;
    data.records = Some(batch);
    let mut topic_data = TopicProduceData::default();
    topic_data.name = TopicName(StrBytes::from_string(topic.to_owned()));
    topic_data.partition_data = vec![data];
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 60_000;
    request.topic_data = vec![topic_data];
    request
}

pub const PRODUCE_VERSION: i16 = 9;

/// Produces one batch to `partition` through `address`; returns the partition's
/// error code and base offset.
pub fn produce_once(address: &str, topic: &str, partition: i32, keys: &[String]) -> (i16, i64) {
    let mut wire = Wire::connect(address);
    let response: kafka_protocol::messages::ProduceResponse = wire.call(
        ApiKey::Produce,
        PRODUCE_VERSION,
        &produce_request(topic, partition, record_batch(keys), -1),
    );
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset)
}

/// `Metadata` (v12) for `topic` through `address`: the broker node ids, and
/// partition → leader.
pub fn metadata(address: &str, topic: Option<&str>) -> (BTreeSet<i32>, BTreeMap<i32, i32>) {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
    let mut request = MetadataRequest::default();
    request.topics = Some(
        topic
            .map(|t| {
                let mut wanted = MetadataRequestTopic::default();
                wanted.name = Some(TopicName(StrBytes::from_string(t.to_owned())));
                vec![wanted]
            })
            .unwrap_or_default(),
    );
    request.allow_auto_topic_creation = false;
    let response: MetadataResponse = Wire::connect(address).call(ApiKey::Metadata, 12, &request);
    let brokers = response.brokers.iter().map(|b| b.node_id.0).collect();
    let leaders = response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect();
    (brokers, leaders)
}

/// `FindCoordinator` (v3) for a group through `address`: (error, node id).
pub fn find_coordinator(address: &str, group: &str) -> (i16, i32) {
    use kafka_protocol::messages::{FindCoordinatorRequest, FindCoordinatorResponse};
    let mut request = FindCoordinatorRequest::default();
    request.key = StrBytes::from_string(group.to_owned());
    request.key_type = 0;
    let response: FindCoordinatorResponse =
        Wire::connect(address).call(ApiKey::FindCoordinator, 3, &request);
    (response.error_code, response.node_id.0)
}

/// A group id that hashes onto coordinator shard `shard`.
pub fn group_on_shard(prefix: &str, shard: u32) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|g| fjord_metadata::coordinator_shard_of(g) == shard)
        .unwrap()
}

pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const NONE: i16 = 0;

/// Creates `topic` with `partitions` partitions through `address`.
pub fn create_topic(address: &str, topic: &str, partitions: i32) {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse, TopicName};
    let mut wanted = CreatableTopic::default();
    wanted.name = TopicName(StrBytes::from_string(topic.to_owned()));
    wanted.num_partitions = partitions;
    wanted.replication_factor = 1;
    let mut request = CreateTopicsRequest::default();
    request.topics = vec![wanted];
    request.timeout_ms = 30_000;
    let response: CreateTopicsResponse =
        Wire::connect(address).call(ApiKey::CreateTopics, 7, &request);
    assert_eq!(response.topics[0].error_code, NONE, "{response:?}");
}

/// Whether process `pid` holds the write lock of the SQLite database at
/// `metadata_url` (byte 120 of its `-shm` file, where SQLite's WAL mode takes
/// it): a commit in progress. An agent paused (SIGSTOP) while it holds it
/// stalls every agent's metadata writes until it resumes — the SQLite
/// backend's limit, documented in docs/operations.md.
pub fn holds_sqlite_write_lock(pid: u32, metadata_url: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let path = format!("{}-shm", metadata_url.trim_start_matches("sqlite://"));
    let Ok(inode) = std::fs::metadata(&path).map(|m| m.ino()) else {
        return false;
    };
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().any(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        // "1: POSIX  ADVISORY  WRITE 1240 fe:00:10248227 120 120"
        f.len() >= 8
            && f[3] == "WRITE"
            && f[4] == pid.to_string()
            && f[5].rsplit(':').next() == Some(inode.to_string().as_str())
            && f[6].parse::<u64>().is_ok_and(|start| start <= 120)
            && (f[7] == "EOF" || f[7].parse::<u64>().is_ok_and(|end| end >= 120))
    })
}

impl Cluster {
    pub fn pid(&self, i: usize) -> u32 {
        self.agents[i].as_ref().unwrap().child.id()
    }

    /// SIGSTOP agent `i` at a moment it holds no SQLite write lock (resuming
    /// and trying again when it did); returns how many tries that took.
    pub fn pause_outside_commits(&self, i: usize) -> usize {
        for attempt in 1..=50 {
            self.signal(i, "-STOP");
            if !holds_sqlite_write_lock(self.pid(i), &self.metadata_url) {
                return attempt;
            }
            println!("agent {i} was paused holding the SQLite write lock; resuming, pausing again");
            self.signal(i, "-CONT");
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!("agent {i} held the SQLite write lock at 50 pauses");
    }
}

// ----- gateway scenarios (`http_gateway.rs`, `grpc_gateway.rs`) -----

/// The largest request body (and gRPC request message) the gateway scenarios'
/// agents take, so the checks of the limit send little.
pub const GATEWAY_MAX_BODY: &str = "1048576";

/// `count` agents started with `args`, their gateways taking bodies up to
/// [`GATEWAY_MAX_BODY`].
pub fn gateway_cluster(count: usize, args: &[&str]) -> Cluster {
    let mut all = vec!["--http-max-body-bytes", GATEWAY_MAX_BODY];
    all.extend_from_slice(args);
    let mut cluster = Cluster::new(count, Bucket::Directory, &all);
    for i in 0..count {
        cluster.start(i);
    }
    cluster
}

/// `<prefix>127.0.0.1:<gateway port>` of each running agent, in agent order.
pub fn gateway_addresses(cluster: &Cluster, prefix: &str) -> Vec<String> {
    cluster
        .agents
        .iter()
        .flatten()
        .map(|agent| format!("{prefix}127.0.0.1:{}", agent.http_port))
        .collect()
}

/// Runs `script scenario <bootstrap> <extra…> <addresses…>` and prints what it
/// printed.
pub fn run_gateway_scenario(
    script: &str,
    scenario: &str,
    cluster: &Cluster,
    extra: &[&str],
    addresses: &[String],
) -> String {
    let bootstrap = cluster.bootstrap();
    let mut args = vec![scenario, bootstrap.as_str()];
    args.extend_from_slice(extra);
    args.extend(addresses.iter().map(String::as_str));
    let out = crate::support::run_python_client_with_args(script, &args);
    print!("{out}");
    out
}

// ----- gateway group scenarios (`http_groups.rs`) -----

/// The `RESULT {json}` line a scenario printed last, parsed.
pub fn scenario_result(out: &str) -> serde_json::Value {
    let line = out
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("no RESULT line in:\n{out}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("RESULT is not JSON ({e}): {line}"))
}

/// Waits until `agents` all name the same live coordinator for every
/// coordinator shard, and each of them coordinates some; shard → node id.
pub fn coordinators_spread(
    cluster: &Cluster,
    agents: &[usize],
    limit: Duration,
) -> BTreeMap<u32, i32> {
    let nodes: BTreeSet<i32> = agents.iter().map(|i| cluster.node_id(*i)).collect();
    wait_for("coordinator shards spread over the agents", limit, || {
        let mut placed = BTreeMap::new();
        for shard in 0..fjord_metadata::COORDINATOR_SHARDS {
            let group = group_on_shard("spread", shard);
            let answers: BTreeSet<(i16, i32)> = agents
                .iter()
                .map(|i| find_coordinator(&cluster.address(*i), &group))
                .collect();
            match answers.into_iter().collect::<Vec<_>>().as_slice() {
                [(NONE, node)] if nodes.contains(node) => {
                    placed.insert(shard, *node);
                }
                _ => return None,
            }
        }
        let coordinating: BTreeSet<i32> = placed.values().copied().collect();
        (coordinating == nodes).then_some(placed)
    })
}

/// A group id starting with `prefix` whose coordinator is agent `agent` once
/// the shards spread over `agents`; with its shard.
pub fn group_coordinated_by(
    cluster: &Cluster,
    agents: &[usize],
    agent: usize,
    prefix: &str,
    limit: Duration,
) -> (String, u32) {
    let node = cluster.node_id(agent);
    let placed = coordinators_spread(cluster, agents, limit);
    let shard = placed
        .iter()
        .find(|(_, n)| **n == node)
        .map(|(shard, _)| *shard)
        .unwrap_or_else(|| panic!("agent {agent} (node {node}) coordinates no shard: {placed:?}"));
    (group_on_shard(prefix, shard), shard)
}

// ----- coordinator failover (`group_failover.rs`) -----

/// The node `FindCoordinator` names for `group` through every one of
/// `agents`, if they all name the same one without an error.
pub fn agreed_coordinator_now(cluster: &Cluster, agents: &[usize], group: &str) -> Option<i32> {
    let answers: BTreeSet<(i16, i32)> = agents
        .iter()
        .map(|i| find_coordinator(&cluster.address(*i), group))
        .collect();
    match answers.into_iter().collect::<Vec<_>>().as_slice() {
        [(NONE, node)] => Some(*node),
        _ => None,
    }
}

/// Waits (at most `limit`) until every one of `agents` names the same
/// coordinator for `group`; returns its node id.
pub fn agreed_coordinator(
    cluster: &Cluster,
    agents: &[usize],
    group: &str,
    limit: Duration,
) -> i32 {
    wait_for(
        &format!("{agents:?} agreeing on the coordinator of {group}"),
        limit,
        || agreed_coordinator_now(cluster, agents, group),
    )
}
