//! A consumer group loses its coordinator: three agent processes over one
//! SQLite metadata file and one bucket, a 12-partition topic, a producer that
//! keeps writing, and three confluent-kafka (librdkafka 2.12.1) members that
//! commit synchronously every [`COMMIT_EVERY`] records and on revocation,
//! reporting every commit with the time it was acknowledged. Once the group is
//! steady, the agent `FindCoordinator` names for the group is killed with
//! SIGKILL (it also leads about a third of the partitions). Then:
//!
//! - the others agree on a new coordinator, and the group carries on there
//!   (the coordinator describes it with its three members and every partition
//!   assigned once);
//! - no acknowledged commit is lost: `OffsetFetch` (the AdminClient's
//!   `list_consumer_group_offsets`), asked as soon as the new coordinator is
//!   named, returns for every partition at least the highest offset whose
//!   commit was acknowledged before the request was sent — so in particular
//!   before the kill — and each partition's acknowledged commits never go back;
//! - every record produced (every offset below each partition's high
//!   watermark) is consumed at least once, the record stored there, and a
//!   record is delivered again only at or past the offset its partition had
//!   committed when it was delivered again;
//! - in the end the members commit what they read, and the committed offsets
//!   are the partitions' ends, in `OffsetFetch` and in metadata.
//!
//! Run with the server-side protocol (KIP-848, `group.protocol=consumer`, the
//! broker's `uniform` assignor) and with the classic protocol and the
//! `cooperative-sticky` assignor. Both use 1 s heartbeats and 6 s session
//! timeouts (the consumer protocol's are the agent's:
//! `--group-consumer-heartbeat-interval-ms`, `--group-consumer-session-timeout-ms`);
//! agents renew their registration every 500 ms and are dead after a 2 s lease.
//!
//! Timings are measured and printed in the `RESULT` line, never asserted:
//! `reowned_s`, from the kill until every partition is owned again — owned by
//! one live member, after the last change of its owner since the kill, and
//! confirmed by a commit of it the new coordinator acknowledged (commits
//! follow consumption, so a partition led by the killed agent also waits for
//! its new leader) — and `coordinator_moved_s`, until `FindCoordinator` names
//! the new coordinator.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod many_agents_support;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use many_agents_support::*;
use serde::Deserialize;

const TOPIC: &str = "failover";
const PARTITIONS: i32 = 12;
/// Each member commits after this many records (of all its partitions).
const COMMIT_EVERY: usize = 10;
/// A bound for anything that must happen: far past any failover at these
/// timings, far short of the test's own time limit.
const MUST_HAPPEN: Duration = Duration::from_secs(60);
/// How long the group runs after the kill before the test stops producing: past
/// a session timeout (6 s), so a rebalance the failover causes late is seen.
const RUN_AFTER_KILL: Duration = Duration::from_secs(12);

/// Every agent's flags: the consumer protocol's session timeout and heartbeat
/// interval, and the agent lease that makes a killed agent's shards and
/// partitions move within about 2 s.
const AGENT_ARGS: [&str; 10] = [
    "--group-initial-rebalance-delay-ms",
    "300",
    "--group-consumer-session-timeout-ms",
    "6000",
    "--group-consumer-heartbeat-interval-ms",
    "1000",
    "--heartbeat-interval-ms",
    "500",
    "--lease-timeout-ms",
    "2000",
];

#[derive(Debug, Clone, Copy)]
enum Protocol {
    /// KIP-848, the broker's `uniform` assignor.
    Consumer,
    /// JoinGroup/SyncGroup with the client's `cooperative-sticky` assignor.
    ClassicCooperative,
}

impl Protocol {
    fn member_args(self) -> [&'static str; 3] {
        match self {
            Protocol::Consumer => ["consumer", "--assignor", "uniform"],
            Protocol::ClassicCooperative => ["classic", "--assignor", "cooperative-sticky"],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Protocol::Consumer => "consumer",
            Protocol::ClassicCooperative => "classic cooperative-sticky",
        }
    }
}

#[test]
fn a_consumer_protocol_group_carries_on_when_its_coordinator_is_killed_and_loses_no_commit() {
    coordinator_killed(Protocol::Consumer);
}

#[test]
fn a_classic_cooperative_group_carries_on_when_its_coordinator_is_killed_and_loses_no_commit() {
    coordinator_killed(Protocol::ClassicCooperative);
}

// ----- the members -----

/// What a `group_failover.py member` reported, one JSON object a line.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "ev", rename_all = "kebab-case")]
enum Event {
    Assigned {
        added: Vec<i32>,
        owned: Vec<i32>,
        t: f64,
    },
    Revoked {
        removed: Vec<i32>,
        owned: Vec<i32>,
        t: f64,
    },
    Lost {
        removed: Vec<i32>,
        owned: Vec<i32>,
        t: f64,
    },
    Rec {
        p: i32,
        o: i64,
        k: String,
        t: f64,
    },
    /// Acknowledged by the coordinator: sent at `sent`, answered by `t`.
    Commit {
        #[serde(deserialize_with = "partition_keys")]
        offsets: BTreeMap<i32, i64>,
        why: String,
        sent: f64,
        t: f64,
    },
    CommitFailed {
        why: String,
        error: String,
        t: f64,
    },
    ClientError {
        error: String,
        t: f64,
    },
    Closed {},
}

/// A JSON object of partition → offset (its keys are strings).
fn partition_keys<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<i32, i64>, D::Error> {
    let by_name = BTreeMap::<String, i64>::deserialize(deserializer)?;
    by_name
        .into_iter()
        .map(|(p, o)| Ok((p.parse().map_err(serde::de::Error::custom)?, o)))
        .collect()
}

/// Sets its flag when dropped: the end of a reader thread, even by a panic.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// A member process and its events so far.
struct GroupMember {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    events: Arc<Mutex<Vec<Event>>>,
    ended: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

impl GroupMember {
    fn spawn(protocol: Protocol, bootstrap: &str, group: &str, name: &str) -> Self {
        let [protocol_arg, assignor_flag, assignor] = protocol.member_args();
        let every = COMMIT_EVERY.to_string();
        let mut child = Command::new("python3")
            .arg(script("group_failover.py"))
            .args(["member", protocol_arg, bootstrap, group, TOPIC, name])
            .args([assignor_flag, assignor, "--commit-every", &every])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stderr = child.stderr.take().unwrap();
        let events = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(AtomicBool::new(false));
        let reader = std::thread::spawn({
            let events = events.clone();
            let ended = ended.clone();
            let name = name.to_owned();
            move || {
                let _ended = SetOnDrop(ended);
                for line in stdout.lines() {
                    let line = line.unwrap();
                    let event: Event = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("{name}: unexpected output {line:?}: {e}"));
                    events.lock().unwrap().push(event);
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
        GroupMember {
            name: name.to_owned(),
            child,
            stdin,
            events,
            ended,
            reader: Some(reader),
        }
    }

    /// Fails the test if it exited before it was told to stop.
    fn assert_running(&self) {
        assert!(
            !self.ended.load(Ordering::SeqCst),
            "{} exited before it was stopped (its stderr is above)",
            self.name
        );
    }

    /// What it reported so far; fails the test if it exited early.
    fn events(&self) -> Vec<Event> {
        self.assert_running();
        self.events.lock().unwrap().clone()
    }

    /// The partitions it owns now, by its last assignment event.
    fn owned(&self) -> BTreeSet<i32> {
        owned_after(&self.events())
    }

    fn send(&mut self, command: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{command}").unwrap();
        stdin.flush().unwrap();
    }

    /// Tells it to stop (it commits what it read and leaves), waits for it;
    /// returns everything it reported.
    fn stop(mut self) -> Vec<Event> {
        self.send("stop");
        let name = self.name.clone();
        let child = &mut self.child;
        let status = wait_for(&format!("{name} stopping"), MUST_HAPPEN, || {
            child.try_wait().unwrap()
        });
        assert!(status.success(), "{name} exited with {status}");
        self.reader.take().unwrap().join().unwrap();
        let events = self.events.lock().unwrap().clone();
        assert!(
            matches!(events.last(), Some(Event::Closed { .. })),
            "{name} did not close cleanly"
        );
        events
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn owned_after(events: &[Event]) -> BTreeSet<i32> {
    events
        .iter()
        .rev()
        .find_map(|event| match event {
            Event::Assigned { owned, .. }
            | Event::Revoked { owned, .. }
            | Event::Lost { owned, .. } => Some(owned.iter().copied().collect()),
            _ => None,
        })
        .unwrap_or_default()
}

/// Whether `members` own every partition exactly once.
fn every_partition_owned_once(members: &[GroupMember]) -> bool {
    let mut owned: Vec<i32> = members.iter().flat_map(|m| m.owned()).collect();
    owned.sort_unstable();
    owned == (0..PARTITIONS).collect::<Vec<_>>()
}

/// Acknowledged commits of all members: (acknowledged at, sent at, member,
/// offsets), by acknowledgement time.
fn acknowledged_commits(
    logs: &[(String, Vec<Event>)],
) -> Vec<(f64, f64, String, &BTreeMap<i32, i64>)> {
    let mut commits: Vec<_> = logs
        .iter()
        .flat_map(|(name, events)| {
            events.iter().filter_map(move |event| match event {
                Event::Commit {
                    offsets, sent, t, ..
                } => Some((*t, *sent, name.clone(), offsets)),
                _ => None,
            })
        })
        .collect();
    commits.sort_by(|a, b| a.0.total_cmp(&b.0));
    commits
}

/// Per partition, the highest offset whose commit was acknowledged before `t`.
fn committed_before(
    commits: &[(f64, f64, String, &BTreeMap<i32, i64>)],
    t: f64,
) -> BTreeMap<i32, i64> {
    let mut highest = BTreeMap::new();
    for (_, _, _, offsets) in commits.iter().filter(|c| c.0 < t) {
        for (p, o) in offsets.iter() {
            let entry = highest.entry(*p).or_insert(*o);
            *entry = (*entry).max(*o);
        }
    }
    highest
}

// ----- group queries through the AdminClient -----

fn query(args: &[&str]) -> serde_json::Value {
    let out = support::run_python_client_with_args("group_failover.py", args);
    let line = out
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no output: {out:?}"));
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

/// OffsetFetch through the AdminClient: partition → committed offset (-1:
/// none), and when the answering request was sent.
fn fetch_committed(bootstrap: &str, group: &str) -> (BTreeMap<i32, i64>, f64) {
    let partitions = PARTITIONS.to_string();
    let answer = query(&["committed", bootstrap, group, TOPIC, &partitions]);
    let offsets = answer["offsets"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(p, o)| (p.parse().unwrap(), o.as_i64().unwrap()))
        .collect();
    (offsets, answer["sent"].as_f64().unwrap())
}

// ----- the scenario -----

fn coordinator_killed(protocol: Protocol) {
    let mut cluster = Cluster::new(3, Bucket::Directory, &AGENT_ARGS);
    for i in 0..3 {
        cluster.start(i);
    }
    let meta = cluster.meta();
    let all: BTreeSet<i32> = (0..3).map(|i| cluster.node_id(i)).collect();
    create_topic(&cluster.address(0), TOPIC, PARTITIONS);
    let (topic, _) = meta.wait_spread(TOPIC, &all, 1, MUST_HAPPEN);
    // Coordinator shards settle on their agents before the group forms, so
    // the only move the group sees is the one the kill causes.
    coordinators_spread(&cluster, &[0, 1, 2], MUST_HAPPEN);
    let group = format!("failover-{}", protocol.member_args()[0]);
    let bootstrap = cluster.bootstrap();

    let mut producer = Producer::spawn(
        "producer",
        "produce_acked.py",
        &[
            &bootstrap,
            TOPIC,
            "100000000",
            "0.25",
            "--until-stdin-closes",
            "--timeout-ms",
            "60000",
            "--errors",
        ],
    );
    let mut members: Vec<GroupMember> = ["a", "b", "c"]
        .iter()
        .map(|n| GroupMember::spawn(protocol, &bootstrap, &group, &format!("member-{n}")))
        .collect();
    let formed = monotonic();
    wait_for(
        "the members to own every partition once",
        MUST_HAPPEN,
        || every_partition_owned_once(&members).then_some(()),
    );
    println!(
        "{}: the group formed in {:.2} s",
        protocol.name(),
        formed.elapsed().as_secs_f64()
    );
    // Steady: every member committed a few times and every partition has a
    // commit, then a little more time.
    wait_for(
        "every member committing and every partition committed",
        MUST_HAPPEN,
        || {
            let logs: Vec<(String, Vec<Event>)> = members
                .iter()
                .map(|m| (m.name.clone(), m.events()))
                .collect();
            let per_member_ok = logs.iter().all(|(_, events)| {
                events
                    .iter()
                    .filter(|e| matches!(e, Event::Commit { .. }))
                    .count()
                    >= 5
            });
            let commits = acknowledged_commits(&logs);
            let partitions = committed_before(&commits, f64::INFINITY);
            (per_member_ok && partitions.len() == usize::try_from(PARTITIONS).unwrap())
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(producer.acked_while_running() > 0);

    // The group's coordinator, as every agent names it.
    let old_coordinator = agreed_coordinator(&cluster, &[0, 1, 2], &group, MUST_HAPPEN);
    let victim = cluster.index_of(old_coordinator);
    let survivors: Vec<usize> = (0..3).filter(|i| *i != victim).collect();
    let led_by_victim: Vec<i32> = meta
        .leaders(&topic)
        .into_iter()
        .filter(|(_, (leader, _))| *leader == Some(old_coordinator))
        .map(|(p, _)| p)
        .collect();
    let killed_at = wall_clock();
    let killed = monotonic();
    cluster.kill(victim);
    println!(
        "{}: killed agent {victim} (node {old_coordinator}), the coordinator of {group} and leader of partitions {led_by_victim:?}",
        protocol.name()
    );

    let new_coordinator = wait_for(
        "the survivors naming a new coordinator",
        MUST_HAPPEN,
        || {
            let node = agreed_coordinator_now(&cluster, &survivors, &group)?;
            (node != old_coordinator).then_some(node)
        },
    );
    let coordinator_moved_s = killed.elapsed().as_secs_f64();
    let survivor_bootstrap = survivors
        .iter()
        .map(|i| cluster.address(*i))
        .collect::<Vec<_>>()
        .join(",");
    // What the new coordinator returns at once.
    let (fetched_after_kill, fetch_sent) = fetch_committed(&survivor_bootstrap, &group);
    let fetched_after_kill_s = fetch_sent - killed_at;

    // The group carries on past a session timeout, with the producer writing.
    let run_until = killed + RUN_AFTER_KILL;
    while monotonic() < run_until {
        std::thread::sleep(Duration::from_millis(200));
        assert!(producer.acked_while_running() > 0);
        for member in &members {
            member.assert_running();
        }
    }
    wait_for(
        "every partition owned again and committed at the new coordinator",
        MUST_HAPPEN,
        || {
            let logs: Vec<(String, Vec<Event>)> = members
                .iter()
                .map(|m| (m.name.clone(), m.events()))
                .collect();
            (every_partition_owned_once(&members)
                && reowned(&logs, killed_at, f64::INFINITY).is_some())
            .then_some(())
        },
    );
    let steady_until = wall_clock();
    let described = query(&["describe", &survivor_bootstrap, &group]);

    // Stop producing; the members read everything and commit it.
    producer.stop();
    let produced = producer.wait(MUST_HAPPEN);
    let ends: Vec<i64> = meta
        .states(&topic)
        .iter()
        .map(|s| s.high_watermark)
        .collect();
    wait_for("the members reading every record", MUST_HAPPEN, || {
        let read: BTreeSet<(i32, i64)> = members
            .iter()
            .flat_map(|m| m.events())
            .filter_map(|e| match e {
                Event::Rec { p, o, .. } => Some((p, o)),
                _ => None,
            })
            .collect();
        ends.iter()
            .enumerate()
            .all(|(p, end)| {
                let p = i32::try_from(p).unwrap();
                (0..*end).all(|o| read.contains(&(p, o)))
            })
            .then_some(())
    });
    let asked_at = wall_clock();
    for m in &mut members {
        m.send("commit");
    }
    let ends_by_partition: BTreeMap<i32, i64> = ends
        .iter()
        .enumerate()
        .map(|(p, end)| (i32::try_from(p).unwrap(), *end))
        .collect();
    let answered = |member: &GroupMember| {
        member.events().iter().any(|event| match event {
            Event::Commit { why, t, .. } => why == "asked" && *t >= asked_at,
            _ => false,
        })
    };
    wait_for(
        "every member answering the commit asked for",
        MUST_HAPPEN,
        || members.iter().all(answered).then_some(()),
    );
    let (fetched_at_end, _) = fetch_committed(&survivor_bootstrap, &group);
    let stored_at_end: BTreeMap<i32, i64> = meta
        .offsets(&group)
        .iter()
        .map(|o| (o.partition, o.committed.offset))
        .collect();
    let logs: Vec<(String, Vec<Event>)> = members
        .into_iter()
        .map(|m| (m.name.clone(), m.stop()))
        .collect();

    // ----- checks -----

    // The group carries on at the new coordinator.
    assert!(
        survivors
            .iter()
            .any(|i| cluster.node_id(*i) == new_coordinator),
        "the new coordinator {new_coordinator} is a survivor"
    );
    assert_eq!(
        described["coordinator"].as_i64(),
        Some(i64::from(new_coordinator)),
        "{described}"
    );
    let mut described_partitions: Vec<i64> = described["members"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|ps| ps.as_array().unwrap().iter().map(|p| p.as_i64().unwrap()))
        .collect();
    described_partitions.sort_unstable();
    assert_eq!(
        (
            described["members"].as_object().unwrap().len(),
            described_partitions
        ),
        (3, (0..i64::from(PARTITIONS)).collect::<Vec<_>>()),
        "the new coordinator describes three members owning every partition once: {described}"
    );

    // No acknowledged commit is lost.
    let commits = acknowledged_commits(&logs);
    let before_kill = committed_before(&commits, killed_at);
    let before_fetch = committed_before(&commits, fetch_sent);
    for p in 0..PARTITIONS {
        let fetched = fetched_after_kill.get(&p).copied().unwrap_or(-1);
        let acknowledged = before_fetch.get(&p).copied().unwrap_or(-1);
        assert!(
            fetched >= acknowledged,
            "partition {p}: OffsetFetch after the kill returned {fetched}, but a commit of \
             {acknowledged} was acknowledged before it was sent (before the kill: {:?})",
            before_kill.get(&p)
        );
    }
    let mut last: BTreeMap<i32, (i64, f64, String)> = BTreeMap::new();
    for (t, _, name, offsets) in &commits {
        for (p, o) in offsets.iter() {
            if let Some((previous, at, by)) = last.get(p) {
                assert!(
                    o >= previous,
                    "partition {p}: {name} committed {o} at {t:.3}, after {by} committed {previous} at {at:.3}"
                );
            }
            last.insert(*p, (*o, *t, name.clone()));
        }
    }
    assert_eq!(
        fetched_at_end, ends_by_partition,
        "in the end the group has committed every partition's end"
    );
    assert_eq!(stored_at_end, ends_by_partition, "and so has metadata");

    // Every record produced was consumed, redeliveries only past commits.
    let stored: HashMap<(i32, i64), String> = produced
        .acks
        .iter()
        .map(|ack| ((ack.partition, ack.offset), ack.key.clone()))
        .collect();
    let acknowledged_records = stored.len();
    let mut deliveries: Vec<(f64, String, i32, i64)> = Vec::new();
    for (name, events) in &logs {
        for event in events {
            if let Event::Rec { p, o, k, t } = event {
                if let Some(key) = stored.get(&(*p, *o)) {
                    assert_eq!(
                        key, k,
                        "{name} read {k} at {p}/{o}, the producer stored {key} there"
                    );
                }
                deliveries.push((*t, name.clone(), *p, *o));
            }
        }
    }
    deliveries.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut seen: BTreeSet<(i32, i64)> = BTreeSet::new();
    let mut redelivered = 0;
    let mut redelivered_per_partition: BTreeMap<i32, usize> = BTreeMap::new();
    for (t, name, p, o) in &deliveries {
        if seen.insert((*p, *o)) {
            continue;
        }
        redelivered += 1;
        *redelivered_per_partition.entry(*p).or_default() += 1;
        let committed = committed_before(&commits, *t).get(p).copied().unwrap_or(0);
        assert!(
            *o >= committed,
            "{name} read {p}/{o} again at {t:.3}, when offset {committed} was committed"
        );
    }
    for (p, end) in &ends_by_partition {
        let missing: Vec<i64> = (0..*end).filter(|o| !seen.contains(&(*p, *o))).collect();
        assert!(
            missing.is_empty(),
            "partition {p}: never consumed {missing:?}"
        );
    }
    assert!(
        produced
            .acks
            .iter()
            .all(|a| seen.contains(&(a.partition, a.offset))),
        "every acknowledged record was consumed"
    );

    // ----- what it took -----

    let reowned_s = reowned(&logs, killed_at, steady_until).unwrap();
    let changes_after_kill: usize = logs
        .iter()
        .flat_map(|(_, events)| events)
        .filter(|e| match e {
            Event::Assigned { t, .. } | Event::Revoked { t, .. } | Event::Lost { t, .. } => {
                *t > killed_at && *t < steady_until
            }
            _ => false,
        })
        .count();
    let failures: Vec<(f64, String, String)> = logs
        .iter()
        .flat_map(|(name, events)| {
            events.iter().filter_map(move |e| match e {
                Event::CommitFailed { t, error, why, .. } => {
                    Some((*t - killed_at, name.clone(), format!("{why}: {error}")))
                }
                _ => None,
            })
        })
        .collect();
    let commit_errors: BTreeSet<&str> = failures.iter().map(|f| f.2.as_str()).collect();
    let lost_events = logs
        .iter()
        .flat_map(|(_, events)| events)
        .filter(|e| matches!(e, Event::Lost { .. }))
        .count();
    let client_errors: BTreeSet<String> = logs
        .iter()
        .flat_map(|(_, events)| events)
        .filter_map(|e| match e {
            Event::ClientError { error, t } if *t > killed_at && *t < steady_until => {
                Some(error.split(':').take(3).collect::<Vec<_>>().join(":"))
            }
            _ => None,
        })
        .collect();
    let mut commits_by_reason: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, events) in &logs {
        for event in events {
            if let Event::Commit { why, .. } = event {
                *commits_by_reason.entry(why.as_str()).or_default() += 1;
            }
        }
    }
    let first_commit_after_kill_s = commits
        .iter()
        .find(|c| c.0 > killed_at)
        .map(|c| c.0 - killed_at);
    let result = serde_json::json!({
        "protocol": protocol.name(),
        "coordinator_before": old_coordinator,
        "coordinator_after": new_coordinator,
        "partitions_led_by_the_killed_agent": led_by_victim,
        "coordinator_moved_s": round3(coordinator_moved_s),
        "reowned_s": round3(reowned_s),
        "first_commit_after_kill_s": first_commit_after_kill_s.map(round3),
        "offset_fetch_after_kill_sent_s": round3(fetched_after_kill_s),
        "assignment_changes_after_kill": changes_after_kill,
        "lost_events": lost_events,
        "commit_failures": failures.len(),
        "commit_errors": commit_errors,
        "commit_failures_first": failures.iter().take(5).collect::<Vec<_>>(),
        "client_errors_after_kill": client_errors,
        "commits_acknowledged": commits.len(),
        "commits_by_reason": commits_by_reason,
        "committed_before_kill": before_kill,
        "fetched_after_kill": fetched_after_kill,
        "produced": acknowledged_records,
        "producer_failed": produced.failed.len(),
        "consumed_distinct": seen.len(),
        "deliveries": deliveries.len(),
        "redelivered": redelivered,
        "redelivered_per_partition": redelivered_per_partition,
    });
    println!(
        "TIMING coordinator killed, partitions owned again ({}): {:.3}",
        protocol.name(),
        reowned_s
    );
    println!("RESULT {result}");
}

fn round3(seconds: f64) -> f64 {
    (seconds * 1000.0).round() / 1000.0
}

/// Seconds from the kill (at `killed_at`) until every partition is owned
/// again: for each partition, the first commit of it acknowledged after the
/// kill and sent after the last change of its owner (until `until`); the
/// latest of those. `None` while a partition has no such commit.
fn reowned(logs: &[(String, Vec<Event>)], killed_at: f64, until: f64) -> Option<f64> {
    let mut changed: BTreeMap<i32, f64> = (0..PARTITIONS).map(|p| (p, killed_at)).collect();
    for (_, events) in logs {
        for event in events {
            let (partitions, t) = match event {
                Event::Assigned { added, t, .. } => (added, *t),
                Event::Revoked { removed, t, .. } | Event::Lost { removed, t, .. } => (removed, *t),
                _ => continue,
            };
            if t > killed_at && t < until {
                for p in partitions {
                    let entry = changed.entry(*p).or_insert(t);
                    *entry = entry.max(t);
                }
            }
        }
    }
    let commits = acknowledged_commits(logs);
    let mut latest: f64 = 0.0;
    for (p, since) in &changed {
        let confirmed = commits
            .iter()
            .find(|(t, sent, _, offsets)| {
                *t > killed_at && *sent >= *since - 0.001 && offsets.contains_key(p)
            })
            .map(|c| c.0)?;
        latest = latest.max(confirmed - killed_at);
    }
    Some(latest)
}
