//! Kafka's cluster admin APIs through kafka-python 3's `KafkaAdminClient`
//! (`tests/clients/admin_apis.py`), against three agent processes over one
//! SQLite file and one bucket, checked against the metadata file:
//!
//! - `DescribeTopicPartitions`, paged 4 partitions at a time, names every
//!   partition once with the leader and epoch metadata records;
//! - `DescribeLogDirs` to every agent reports each partition once, by the
//!   agent that leads it, with exactly its index entries' bytes in the bucket;
//! - `AlterPartitionReassignments` moves a partition's leadership to the agent
//!   named first, `ListPartitionReassignments` lists it until the move is done,
//!   and the refusals carry Kafka's codes (`INVALID_REPLICA_ASSIGNMENT`,
//!   `NO_REASSIGNMENT_IN_PROGRESS`, `UNKNOWN_TOPIC_OR_PARTITION`); the move
//!   survives the restart of every agent, and cancelling it is accepted;
//! - `ElectLeaders`: a preferred election where every partition is led where
//!   it is placed is `ELECTION_NOT_NEEDED`; unclean elections of the
//!   partitions of a `kill -9`ed agent are answered without error until live
//!   agents lead them;
//! - kafka-python infers Kafka 4.0 from `ApiVersions`;
//! - `DescribeQuorum` is refused with `INVALID_REQUEST` and a message saying
//!   why;
//! - four kafka-python consumers in one group with `session_timeout_ms=3000`
//!   and `request_timeout_ms=4000` become stable, and stable again when one
//!   leaves (the seconds are printed, not asserted).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod many_agents_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use many_agents_support::*;
use support::lines;

const MUST_HAPPEN: Duration = Duration::from_secs(60);

/// Agents renew their lease every 500 ms and are dead after 2 s; groups may
/// ask for session timeouts down to 1 s (Kafka's brokers in tests lower
/// `group.min.session.timeout.ms` the same way).
const AGENT_ARGS: [&str; 6] = [
    "--heartbeat-interval-ms",
    "500",
    "--lease-timeout-ms",
    "2000",
    "--group-min-session-timeout-ms",
    "1000",
];

/// The interpreter of kafka-python 3's virtual environment.
fn python() -> PathBuf {
    let cache = std::env::var("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cache")
        });
    let python = cache.join("fjord/kafka-python-3.0.12/bin/python");
    assert!(
        python.exists(),
        "no {}: scripts/install-deps.sh installs kafka-python 3 there",
        python.display()
    );
    python
}

/// Runs one scenario of `admin_apis.py`; panics unless it ends with `OK`.
fn scenario(bootstrap: &str, args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/clients/admin_apis.py");
    let output = Command::new(python())
        .arg(&script)
        .arg(bootstrap)
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success() && stdout.contains(&format!("OK {}", args[0])),
        "admin_apis.py {args:?} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{args:?}:\n{stdout}");
    stdout
}

/// The one value of the `key` line.
fn value<'a>(output: &'a str, key: &str) -> &'a str {
    let found = lines(output, key);
    assert_eq!(found.len(), 1, "one {key} line expected:\n{output}");
    found[0][0]
}

#[test]
fn admin_apis_describe_move_and_elect_leaders() {
    let mut cluster = Cluster::new(3, Bucket::Directory, &AGENT_ARGS);
    for i in 0..3 {
        cluster.start(i);
    }
    let nodes: BTreeSet<i32> = (0..3).map(|i| cluster.node_id(i)).collect();
    let bootstrap = cluster.bootstrap();
    let meta = cluster.meta();
    scenario(&bootstrap, &["setup", "admin", "6", "600"]);
    let (topic, _) = meta.wait_spread("admin", &nodes, 1, MUST_HAPPEN);

    // DescribeTopicPartitions: every partition once, as metadata has it.
    let described = scenario(&bootstrap, &["describe", "admin"]);
    let leaders = meta.leaders(&topic);
    let partitions = lines(&described, "PARTITION");
    assert_eq!(partitions.len(), 6, "{described}");
    for fields in &partitions {
        let index: i32 = fields[1].parse().unwrap();
        let (leader, epoch) = leaders[&index];
        assert_eq!(fields[2].parse::<i32>().ok(), leader, "partition {index}");
        assert_eq!(
            fields[3].parse::<i32>().unwrap(),
            epoch,
            "partition {index}"
        );
        assert_eq!(fields[4], fields[2], "replicas are the leader");
        assert_eq!(fields[5], fields[2], "the ISR is the leader");
    }
    assert_eq!(value(&described, "PAGES"), "2", "6 partitions, 4 a page");

    // DescribeLogDirs: each partition once, by its leader, with its bytes.
    let dirs = scenario(&bootstrap, &["log_dirs"]);
    let reported: BTreeMap<i32, (i32, u64)> = lines(&dirs, "LOGDIR")
        .iter()
        .filter(|fields| fields[2] == "admin")
        .map(|fields| {
            (
                fields[3].parse().unwrap(),
                (fields[0].parse().unwrap(), fields[4].parse().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        lines(&dirs, "LOGDIR")
            .iter()
            .filter(|f| f[2] == "admin")
            .count(),
        6,
        "each partition reported once:\n{dirs}"
    );
    for (index, (reporter, size)) in &reported {
        let bytes: u64 = meta
            .index(&topic, *index)
            .iter()
            .map(|entry| entry.byte_length)
            .sum();
        assert!(bytes > 0, "partition {index} has data in the bucket");
        assert_eq!(*size, bytes, "partition {index}'s size");
        assert_eq!(Some(*reporter), leaders[index].0, "reported by its leader");
    }

    // AlterPartitionReassignments moves leadership to the agent named first.
    let (before, _) = leaders[&0];
    let before = before.unwrap();
    let target = *nodes.iter().find(|n| **n != before).unwrap();
    let moved = scenario(&bootstrap, &["reassign", "admin", "0", &target.to_string()]);
    assert_eq!(value(&moved, "ALTER"), "0");
    assert_eq!(value(&moved, "LEADER"), target.to_string());
    assert_eq!(meta.leaders(&topic)[&0].0, Some(target));
    let refused = scenario(
        &bootstrap,
        &["reassign_errors", "admin", &target.to_string()],
    );
    let refusals: BTreeMap<&str, &str> = lines(&refused, "REFUSED")
        .iter()
        .map(|f| (f[0], f[1]))
        .collect();
    assert_eq!(refusals["unknown_broker"], "39"); // INVALID_REPLICA_ASSIGNMENT
    assert_eq!(refusals["twice"], "39");
    assert_eq!(refusals["cancel_none"], "85"); // NO_REASSIGNMENT_IN_PROGRESS
    assert_eq!(refusals["unknown_partition"], "3"); // UNKNOWN_TOPIC_OR_PARTITION
    assert_eq!(refusals["unknown_topic"], "3");

    // The choice is metadata's: every agent restarts, and partition 0 is
    // led by the target again.
    for i in 0..3 {
        cluster.kill(i);
    }
    for i in 0..3 {
        cluster.start(i);
    }
    wait_for("partition 0 led by the target again", MUST_HAPPEN, || {
        (meta.leaders(&topic)[&0].0 == Some(target)).then_some(())
    });

    // A preferred election where every partition is led where it is placed
    // is not needed.
    wait_for("every partition led", MUST_HAPPEN, || {
        meta.leaders(&topic)
            .values()
            .all(|(leader, _)| leader.is_some())
            .then_some(())
    });
    let all: Vec<String> = (0..6).map(|p| p.to_string()).collect();
    let mut args = vec!["elect", "0", "admin"];
    args.extend(all.iter().map(String::as_str));
    let elected = wait_for("a settled preferred election", MUST_HAPPEN, || {
        let elected = scenario(&bootstrap, &args);
        let codes: BTreeSet<&str> = lines(&elected, "ELECT").iter().map(|f| f[2]).collect();
        (codes == BTreeSet::from(["84"])).then(|| elected.clone())
    });
    assert_eq!(lines(&elected, "ELECT").len(), 6);

    // An unclean election of a killed agent's partitions: while the agents
    // still judge it live (its lease has not lapsed) the election is not
    // needed; once they judge it dead they take its partitions over, and the
    // election waits for that (0) or finds it done (not needed). Either way
    // it ends with live agents leading them.
    let victim_node = meta.leaders(&topic)[&0].0.unwrap();
    let victim = cluster.index_of(victim_node);
    let theirs: Vec<String> = meta
        .leaders(&topic)
        .iter()
        .filter(|(_, (leader, _))| *leader == Some(victim_node))
        .map(|(p, _)| p.to_string())
        .collect();
    cluster.kill(victim);
    let mut args = vec!["elect", "1", "admin"];
    args.extend(theirs.iter().map(String::as_str));
    wait_for(
        "the killed agent's partitions led by live agents",
        MUST_HAPPEN,
        || {
            let unclean = scenario(&bootstrap, &args);
            for fields in lines(&unclean, "ELECT") {
                assert!(fields[2] == "0" || fields[2] == "84", "{unclean}");
            }
            theirs
                .iter()
                .all(|p| {
                    let (leader, _) = meta.leaders(&topic)[&p.parse::<i32>().unwrap()];
                    leader.is_some_and(|l| l != victim_node)
                })
                .then_some(())
        },
    );
    cluster.start(victim);

    // Cancelling the reassignment is accepted; nothing is listed after.
    let cancelled = scenario(&bootstrap, &["cancel", "admin", "0"]);
    assert_eq!(value(&cancelled, "CANCEL"), "0");
    assert!(
        meta.block_on(meta.store.leader_placements())
            .unwrap()
            .is_empty()
    );

    // ApiVersions advertises Kafka 4.0's versions where it matters to clients:
    // kafka-python infers the release from them.
    let version = scenario(&bootstrap, &["version"]);
    assert_eq!(value(&version, "VERSION"), "4.0");

    // DescribeQuorum: refused, and said why.
    let quorum = scenario(&bootstrap, &["quorum"]);
    let refusal = &lines(&quorum, "QUORUM")[0];
    assert_eq!(refusal[0], "InvalidRequestError", "{quorum}");
    assert!(quorum.contains("no KRaft quorum"), "{quorum}");
}

#[test]
fn kafka_python_consumers_with_short_sessions_become_stable() {
    let mut cluster = Cluster::new(3, Bucket::Directory, &AGENT_ARGS);
    for i in 0..3 {
        cluster.start(i);
    }
    let nodes: BTreeSet<i32> = (0..3).map(|i| cluster.node_id(i)).collect();
    let bootstrap = cluster.bootstrap();
    scenario(&bootstrap, &["setup", "shared", "8", "80"]);
    cluster.meta().wait_spread("shared", &nodes, 1, MUST_HAPPEN);
    let output = scenario(&bootstrap, &["group", "4", "shared", "four"]);
    let stable: f64 = value(&output, "STABLE").parse().unwrap();
    let restable: f64 = value(&output, "RESTABLE").parse().unwrap();
    println!("RESULT stable_s={stable} restable_after_leave_s={restable}");
}
