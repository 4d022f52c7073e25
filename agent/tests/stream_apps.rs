//! Real stream-processing applications with state in changelog topics, run
//! against three agent processes over one SQLite file and one bucket:
//!
//! - `tests/apps/quix_wordcount.py`, Quix Streams 3.28.1 (librdkafka 2.12.1),
//!   on three partitions: `group_by` through a repartition topic, counts in
//!   its RocksDB state store backed by a `changelog__…` topic;
//! - `tests/apps/faust_wordcount.py`, faust-streaming 0.15.3 (aiokafka
//!   0.14.0), on one partition (Faust's transactions are per partition
//!   number, so a word count that moves words between partitions is not
//!   exactly once in Faust): one agent counts the words of each line in a
//!   Table backed by a `…-changelog` topic, kept in memory (the changelog is
//!   its only durable copy: every start restores it from there), with four
//!   documented patches of Faust faults that lost or repeated words in about
//!   one run in three (`faust_wordcount.py` says which and how each was
//!   seen).
//!
//! Both run with exactly-once processing (transactions, `read_committed`) and
//! produce `word -> count` for every word they count.
//! `tests/apps/wordcount_driver.py` produces a seeded text in four quarters
//! and checks, reading the output with `read_committed`, that every word's
//! counts are exactly 1, 2, …, n for the text produced so far, and at the end
//! that the changelog topics the apps created have `cleanup.policy=compact`.
//! Between the quarters:
//!
//! 1. the app is `kill -9`ed while it counts the first quarter, as soon as it
//!    has committed a transaction with words it counted, and restarted on the
//!    same state directory with the second quarter waiting (Faust, whose
//!    table is in memory, restores it from the changelog there too);
//! 2. the agent coordinating the app's consumer group and transactional id
//!    (the group is named so that one agent coordinates both) is `kill -9`ed
//!    while the app counts the third quarter, and restarted;
//! 3. the app is `kill -9`ed while it counts half of the last quarter, and
//!    started on a *fresh* state directory with the other half waiting: it
//!    must restore its counts from the changelog topic.
//!
//! Nothing depends on log compaction having run. Times are measured and
//! printed in the `RESULT` line, never asserted: for the restart after the
//! first kill (`restart`) and the one on a fresh directory
//! (`restore_fresh_state`), the seconds from starting the app process to the
//! start and end of its state recovery (as the app logs them) and to its
//! first counted word, with input waiting (a restarted member joins only once
//! the killed one's session, 10 s, has expired; Faust's recovery waits twice
//! 5 s for a record at the changelog's end offset when the changelog ends in
//! a transaction marker, as it always does under exactly-once); and
//! `exact_after_agent_kill_s`, from the agent's kill until the counts of the
//! third quarter were exact.
//!
//! The apps run on the interpreter of the virtual environment
//! `scripts/install-deps.sh` makes (`~/.cache/fjord/stream-apps`), or on
//! `FJORD_STREAM_APPS_PYTHON`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod many_agents_support;
mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use many_agents_support::*;

/// A bound for anything that must happen: far past what it takes, far short
/// of the test's own limit.
const MUST_HAPPEN: Duration = Duration::from_secs(90);

/// Agents renew their lease every 500 ms and are dead after 2 s.
const AGENT_ARGS: [&str; 6] = [
    "--heartbeat-interval-ms",
    "500",
    "--lease-timeout-ms",
    "2000",
    "--group-initial-rebalance-delay-ms",
    "300",
];

/// The text: this many lines (of 1 to 8 words) from this seed, in four
/// quarters.
const LINES: usize = 2400;
const SEED: &str = "20261208";

#[derive(Debug, Clone, Copy)]
enum Kind {
    Quix,
    Faust,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Quix => "quix",
            Kind::Faust => "faust",
        }
    }

    fn script(self) -> PathBuf {
        apps_dir().join(match self {
            Kind::Quix => "quix_wordcount.py",
            Kind::Faust => "faust_wordcount.py",
        })
    }

    /// Partitions of every topic: Faust's transactions hold only what goes
    /// to and comes from one partition number, so its word count is exactly
    /// once only on one partition (see `faust_wordcount.py`).
    fn partitions(self) -> &'static str {
        match self {
            Kind::Quix => "3",
            Kind::Faust => "1",
        }
    }

    /// The transactional id the app commits under, with `group` as its
    /// consumer group.
    fn transactional_id(self, group: &str) -> String {
        match self {
            Kind::Quix => format!("{group}-quix"),
            // Topic group 0 (every topic has one partition, and the lines,
            // the counts and the changelog are one group), partition 0.
            Kind::Faust => format!("{group}-0-0"),
        }
    }

    /// A consumer group coordinated by the agent that also coordinates the
    /// app's transactions, once the coordinator shards are spread over the
    /// `cluster`'s three agents.
    fn group(self, cluster: &Cluster) -> String {
        let placed = coordinators_spread(cluster, &[0, 1, 2], MUST_HAPPEN);
        let node_of = |id: &str| placed[&fjord_metadata::coordinator_shard_of(id)];
        (0..1000)
            .map(|i| format!("wordcount-{}-{i}", self.name()))
            .find(|group| node_of(group) == node_of(&self.transactional_id(group)))
            .expect("a group coordinated with its transactional id")
    }

    /// A part of the name of every changelog topic the app creates for its
    /// counts.
    fn changelog_marker(self, group: &str) -> String {
        match self {
            Kind::Quix => format!("changelog__{group}--"),
            Kind::Faust => format!("{group}-word_counts-changelog"),
        }
    }
}

#[test]
fn quix_streams_counts_words_exactly_across_kills_and_restores_from_its_changelog() {
    word_count_across_kills(Kind::Quix);
}

#[test]
fn faust_counts_words_exactly_across_kills_and_restores_from_its_changelog() {
    word_count_across_kills(Kind::Faust);
}

fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/apps")
}

/// The interpreter of the apps' virtual environment.
fn apps_python() -> PathBuf {
    if let Ok(python) = std::env::var("FJORD_STREAM_APPS_PYTHON") {
        return PathBuf::from(python);
    }
    let cache = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache")
        });
    let python = cache.join("fjord/stream-apps/bin/python");
    assert!(
        python.exists(),
        "no {}: scripts/install-deps.sh installs Quix Streams and Faust there \
         (FJORD_STREAM_APPS_PYTHON names another interpreter)",
        python.display()
    );
    python
}

/// A running `wordcount_driver.py`, its output read as it comes (so that it
/// never blocks on a full pipe); killed if dropped before it ends.
struct Driver {
    child: Child,
    stdout: Option<std::thread::JoinHandle<String>>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `wordcount_driver.py` with `args`.
fn spawn_driver(args: &[&str]) -> Driver {
    let mut child = Command::new("python3")
        .arg(apps_dir().join("wordcount_driver.py"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let read_all = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    Driver {
        stdout: Some(read_all(Box::new(child.stdout.take().unwrap()))),
        stderr: Some(read_all(Box::new(child.stderr.take().unwrap()))),
        child,
    }
}

/// Waits (at most `limit`) for a driver to exit successfully; returns its
/// output.
fn finish_driver(mut driver: Driver, limit: Duration) -> String {
    let status = wait_for("wordcount_driver.py finishing", limit, || {
        driver.child.try_wait().unwrap()
    });
    let stdout = driver.stdout.take().unwrap().join().unwrap();
    let stderr = driver.stderr.take().unwrap().join().unwrap();
    assert!(
        status.success(),
        "wordcount_driver.py failed ({status}):\n{stdout}\n{stderr}"
    );
    stdout
}

/// Runs `wordcount_driver.py` to its end; returns its output.
fn driver(args: &[&str]) -> String {
    // Its own deadlines are at most MUST_HAPPEN; this catches a hang.
    finish_driver(spawn_driver(args), MUST_HAPPEN + Duration::from_secs(60))
}

/// Starts `wordcount_driver.py produce` for lines `[start, end)` in the
/// background.
fn produce_in_background(bootstrap: &str, topic: &str, start: usize, end: usize) -> Driver {
    let (lines, start, end) = (LINES.to_string(), start.to_string(), end.to_string());
    spawn_driver(&[
        "produce", bootstrap, "--topic", topic, "--seed", SEED, "--lines", &lines, "--start",
        &start, "--end", &end,
    ])
}

fn produce(bootstrap: &str, topic: &str, start: usize, end: usize) {
    finish_producer(produce_in_background(bootstrap, topic, start, end));
}

fn finish_producer(producer: Driver) {
    finish_driver(producer, MUST_HAPPEN + Duration::from_secs(60));
}

/// Waits until a `read_committed` reader of `output` finds the exact counts of
/// lines `[0, upto)`; returns what the driver reported.
fn check_exact(
    bootstrap: &str,
    output: &str,
    upto: usize,
    changelog: Option<&str>,
) -> serde_json::Value {
    let upto = upto.to_string();
    let lines = LINES.to_string();
    let deadline = MUST_HAPPEN.as_secs().to_string();
    let mut args = vec![
        "check",
        bootstrap,
        "--topic",
        output,
        "--seed",
        SEED,
        "--lines",
        &lines,
        "--upto",
        &upto,
        "--deadline",
        &deadline,
    ];
    if let Some(marker) = changelog {
        args.extend(["--changelog-contains", marker]);
    }
    let said = driver(&args);
    print!("{said}");
    scenario_result(&said)
}

/// One line the app printed.
#[derive(Debug, Clone)]
struct Event {
    ev: String,
    /// Its wall clock.
    t: f64,
    /// Words counted by this process so far (`processed` events).
    n: u64,
}

/// A running word-count app; `kill -9`ed when dropped.
struct App {
    child: Child,
    events: Arc<Mutex<Vec<Event>>>,
    spawned_at: f64,
}

impl App {
    fn start(kind: Kind, bootstrap: &str, group: &str, state_dir: &Path, log: &Path) -> Self {
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let spawned_at = wall_clock();
        let mut child = Command::new(apps_python())
            .arg(kind.script())
            .args(["--bootstrap", bootstrap, "--group", group])
            .args(["--input", &format!("{group}-lines")])
            .args(["--output", &format!("{group}-counts")])
            .arg("--state-dir")
            .arg(state_dir)
            .env("PYTHONUNBUFFERED", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let events = Arc::new(Mutex::new(Vec::new()));
        std::thread::spawn({
            let events = events.clone();
            move || {
                for line in stdout.lines().map_while(Result::ok) {
                    let Ok(value) = serde_json::from_str::<serde_json::Value>(&line) else {
                        continue; // not one of its events
                    };
                    events.lock().unwrap().push(Event {
                        ev: value["ev"].as_str().unwrap_or_default().to_owned(),
                        t: value["t"].as_f64().unwrap_or_default(),
                        n: value["n"].as_u64().unwrap_or_default(),
                    });
                }
            }
        });
        App {
            child,
            events,
            spawned_at,
        }
    }

    /// Fails the test if the app exited.
    fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("the app exited by itself: {status} (its log follows)");
        }
    }

    /// Words this process has counted (as of its last report).
    fn processed(&self) -> u64 {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.n)
            .max()
            .unwrap_or(0)
    }

    /// Transactions this process has committed.
    fn committed(&self) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.ev == "committed")
            .count()
    }

    /// Waits until this process has committed at least `transactions`
    /// transactions.
    fn wait_committed(&mut self, transactions: usize) {
        wait_for(
            &format!("the app committing {transactions} transactions"),
            MUST_HAPPEN,
            || {
                self.assert_running();
                (self.committed() >= transactions).then_some(())
            },
        );
    }

    /// Waits until this process has counted at least `words` words.
    fn wait_processed(&mut self, words: u64) {
        wait_for(
            &format!("the app counting {words} words"),
            MUST_HAPPEN,
            || {
                self.assert_running();
                (self.processed() >= words).then_some(())
            },
        );
    }

    /// Seconds from starting the process to its first event named `ev`.
    fn first_s(&self, ev: &str) -> Option<f64> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.ev == ev)
            .map(|e| round3(e.t - self.spawned_at))
    }

    /// What its start took, in seconds from starting the process: to its
    /// first counted word, and to the start and end of its (first) state
    /// recovery, as the app logged them (none when it had nothing to
    /// recover).
    fn start_times(&self) -> serde_json::Value {
        serde_json::json!({
            "first_counted_s": self.first_s("processed"),
            "recovery_started_s": self.first_s("recovery-started"),
            "recovery_done_s": self.first_s("recovery-done"),
        })
    }

    /// `kill -9`.
    fn kill(mut self) {
        self.assert_running();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// On a failed test, prints the end of every log in `logs` (the apps'
/// output and the agents' warnings), and with `FJORD_STREAM_APPS_KEEP=DIR`
/// copies the cluster's whole directory `root` (metadata, bucket, logs, the
/// apps' state) to DIR.
struct LogsOnFailure {
    root: PathBuf,
    logs: PathBuf,
}

impl Drop for LogsOnFailure {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        if let Ok(keep) = std::env::var("FJORD_STREAM_APPS_KEEP") {
            let copied = Command::new("cp")
                .arg("-a")
                .arg(&self.root)
                .arg(&keep)
                .status();
            eprintln!("copied {} to {keep}: {copied:?}", self.root.display());
        }
        let Ok(entries) = std::fs::read_dir(&self.logs) else {
            return;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths
            .iter()
            .filter(|p| p.extension() == Some("log".as_ref()))
        {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text
                .lines()
                .filter(|l| !l.contains(" INFO ") && !l.contains(" DEBUG "))
                .collect();
            eprintln!("===== {} (last 80 lines but INFO) =====", path.display());
            for line in &lines[lines.len().saturating_sub(80)..] {
                eprintln!("{line}");
            }
        }
    }
}

fn round3(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

fn word_count_across_kills(kind: Kind) {
    let mut cluster = Cluster::new(3, Bucket::Directory, &AGENT_ARGS);
    let logs = cluster.root.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let _logs_on_failure = LogsOnFailure {
        root: cluster.root.path().to_path_buf(),
        logs: logs.clone(),
    };
    let agent_log = |i: usize| logs.join(format!("agent-{i}.log"));
    for i in 0..3 {
        cluster.start_logging(i, &[], Some(&agent_log(i)));
    }
    let bootstrap = cluster.bootstrap();
    let group = kind.group(&cluster);
    let transactional_id = kind.transactional_id(&group);
    let input = format!("{group}-lines");
    let output = format!("{group}-counts");
    driver(&[
        "create",
        &bootstrap,
        "--topic",
        &input,
        "--topic",
        &output,
        "--partitions",
        kind.partitions(),
    ]);
    let quarter = LINES / 4;
    let app_log = logs.join(format!("{}.log", kind.name()));
    let root = cluster.root.path().to_path_buf();
    let state_dir = |name: &str| root.join(format!("state-{name}"));

    // `kill -9` of the app while it counts what was just produced: as soon
    // as it has committed a transaction with words it counted since
    // `counted_before`.
    let kill_app = |mut app: App, counted_before: u64| -> u64 {
        app.wait_processed(counted_before + 1);
        let committed = app.committed();
        app.wait_committed(committed + 1);
        let counted = app.processed();
        app.kill();
        println!("{}: app killed after counting {counted} words", kind.name());
        counted
    };

    // 1. Killed while it counts the first quarter; restarted on its state
    //    directory with the second quarter waiting.
    produce(&bootstrap, &input, 0, quarter);
    let app = App::start(kind, &bootstrap, &group, &state_dir("first"), &app_log);
    let first_kill_after = kill_app(app, 0);
    produce(&bootstrap, &input, quarter, 2 * quarter);
    let mut app = App::start(kind, &bootstrap, &group, &state_dir("first"), &app_log);
    let after_app_kill = check_exact(&bootstrap, &output, 2 * quarter, None);
    let restart = app.start_times();

    // 2. The agent coordinating the app's group and its transactions is
    //    killed while the app counts the third quarter, and comes back.
    let meta = cluster.meta();
    let coordinator = agreed_coordinator(&cluster, &[0, 1, 2], &group, MUST_HAPPEN);
    let victim = cluster.index_of(coordinator);
    let transaction_coordinator = meta
        .shard(fjord_metadata::coordinator_shard_of(&transactional_id))
        .leader;
    let led: Vec<(String, Vec<i32>)> = [&input, &output]
        .iter()
        .map(|name| {
            let topic = meta.topic(name).unwrap();
            let partitions = meta
                .leaders(&topic)
                .into_iter()
                .filter(|(_, (leader, _))| *leader == Some(coordinator))
                .map(|(p, _)| p)
                .collect();
            ((*name).clone(), partitions)
        })
        .collect();
    let counted_before = app.processed();
    let producer = produce_in_background(&bootstrap, &input, 2 * quarter, 3 * quarter);
    app.wait_processed(counted_before + 300);
    let agent_killed = monotonic();
    cluster.kill(victim);
    println!(
        "{}: killed agent {victim} (node {coordinator}), coordinator of {group} \
         (and of {transactional_id}: node {transaction_coordinator:?}), leading {led:?}",
        kind.name()
    );
    finish_producer(producer);
    cluster.start_logging(victim, &[], Some(&agent_log(victim)));
    let after_agent_kill = check_exact(&bootstrap, &output, 3 * quarter, None);
    let exact_after_agent_kill_s = agent_killed.elapsed().as_secs_f64();
    app.assert_running();
    let commits_before_last_kill = app.committed();

    // 3. Killed again while it counts the first half of the last quarter, and
    //    started on a fresh state directory with the second half waiting: the
    //    counts come back from the changelog topic.
    let half = 3 * quarter + quarter / 2;
    let counted_before = app.processed();
    produce(&bootstrap, &input, 3 * quarter, half);
    let last_kill_after = kill_app(app, counted_before);
    produce(&bootstrap, &input, half, LINES);
    let app = App::start(kind, &bootstrap, &group, &state_dir("fresh"), &app_log);
    let marker = kind.changelog_marker(&group);
    let at_end = check_exact(&bootstrap, &output, LINES, Some(&marker));
    let restore = app.start_times();
    drop(app);

    let changelog_offsets: u64 = at_end["changelogs"]
        .as_object()
        .unwrap()
        .keys()
        .map(|name| {
            let topic = meta.topic(name).unwrap();
            meta.states(&topic)
                .iter()
                .map(|s| u64::try_from(s.high_watermark).unwrap())
                .sum::<u64>()
        })
        .sum();
    let result = serde_json::json!({
        "app": kind.name(),
        "partitions": kind.partitions(),
        "lines": LINES,
        "words": at_end["words_expected"],
        "output_records": at_end["records"],
        "changelogs": at_end["changelogs"],
        "changelog_offsets": changelog_offsets,
        "app_killed_after_words": [first_kill_after, last_kill_after],
        "restart": restart,
        "exact_after_app_kill_check_s": after_app_kill["exact_after_s"],
        "agent_killed": victim,
        "agent_killed_led": led,
        "transaction_coordinator_node": transaction_coordinator,
        "commits_before_last_app_kill": commits_before_last_kill,
        "exact_after_agent_kill_s": round3(exact_after_agent_kill_s),
        "exact_after_agent_kill_check_s": after_agent_kill["exact_after_s"],
        "restore_fresh_state": restore,
    });
    println!("RESULT {result}");
}
