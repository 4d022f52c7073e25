//! Several agent processes over one SQLite metadata file and one bucket, each
//! test one behaviour of leadership across agents, checked against the
//! metadata file itself (read with `fjord_metadata`) and real clients:
//!
//! - SIGTERM hands partitions off: clients see only retriable errors, every
//!   acknowledged record is stored once in order, and the partitions move at
//!   once (well inside a lease that is set long on purpose);
//! - an agent joining takes a fair share, with exactly one epoch change per
//!   moved partition and none elsewhere; coordinator shards spread evenly;
//! - a produce to the wrong agent gets `NOT_LEADER_OR_FOLLOWER`, and a client
//!   with stale metadata recovers by refreshing;
//! - `FindCoordinator` follows a coordinator that moved to another agent, and
//!   the group's committed offsets carry on there;
//! - `Metadata` lists exactly the live agents;
//! - an old leader's pending produces are answered with a retriable error
//!   when it loses the partition.
//!
//! Timings are printed, never asserted; bounds are generous and catch only a
//! broken requirement.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod many_agents_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use kafka_protocol::messages::{ApiKey, ProduceResponse};
use many_agents_support::*;

const MUST_HAPPEN: Duration = Duration::from_secs(60);

fn nodes_of(cluster: &Cluster, agents: &[usize]) -> BTreeSet<i32> {
    agents.iter().map(|i| cluster.node_id(*i)).collect()
}

fn led_by(meta: &Meta, topic: &fjord_metadata::TopicMeta, node: i32) -> BTreeMap<i32, i32> {
    meta.leaders(topic)
        .into_iter()
        .filter(|(_, (leader, _))| *leader == Some(node))
        .map(|(p, (_, epoch))| (p, epoch))
        .collect()
}

/// The owners the agents compute for `topic` over `nodes` (the placement
/// every agent with that view agrees on).
fn expected_owners(topic: &fjord_metadata::TopicMeta, nodes: &BTreeSet<i32>) -> Vec<i32> {
    let nodes: Vec<i32> = nodes.iter().copied().collect();
    fjord_agent::cluster::placement(
        topic.id.0.as_bytes(),
        u32::try_from(topic.partition_count).unwrap(),
        &nodes,
    )
}

/// Waits until every partition of `topic` is led where the placement over
/// `nodes` puts it.
fn wait_placed(
    meta: &Meta,
    topic: &fjord_metadata::TopicMeta,
    nodes: &BTreeSet<i32>,
) -> BTreeMap<i32, (Option<i32>, i32)> {
    let owners = expected_owners(topic, nodes);
    wait_for(
        &format!("{} placed over {nodes:?} as {owners:?}", topic.name),
        MUST_HAPPEN,
        || {
            let leaders = meta.leaders(topic);
            leaders
                .iter()
                .all(|(p, (leader, _))| *leader == Some(owners[usize::try_from(*p).unwrap()]))
                .then_some(leaders)
        },
    )
}

#[test]
fn sigterm_hands_partitions_off_with_only_retriable_client_errors() {
    // A lease far longer than any bound below: a takeover seen in time was a
    // hand-off, not a lapsed lease.
    let mut cluster = Cluster::new(3, Bucket::Directory, &["--lease-timeout-ms", "30000"]);
    for i in 0..3 {
        cluster.start(i);
    }
    let meta = cluster.meta();
    let nodes = nodes_of(&cluster, &[0, 1, 2]);
    create_topic(&cluster.address(0), "handoff", 6);
    let (topic, _) = meta.wait_spread("handoff", &nodes, 2, MUST_HAPPEN);
    let bootstrap = cluster.bootstrap();
    let common = ["--errors", "--until-stdin-closes", "--timeout-ms", "60000"];
    let idempotent_args = [
        &[
            bootstrap.as_str(),
            "handoff",
            "10000000",
            "0.05",
            "--prefix",
            "i",
        ][..],
        &common,
    ]
    .concat();
    let plain_args = [
        &[
            bootstrap.as_str(),
            "handoff",
            "10000000",
            "0.05",
            "--prefix",
            "n",
            "--no-idempotence",
        ][..],
        &common,
    ]
    .concat();
    let mut producers = vec![
        Producer::spawn("idempotent", "produce_acked.py", &idempotent_args),
        // One request in flight per connection and no idempotence: a record
        // stored twice is an acknowledgement the agent dropped at shutdown.
        Producer::spawn("non-idempotent", "produce_acked.py", &plain_args),
    ];
    for producer in &producers {
        wait_for(
            &format!("{} acknowledging", producer.name),
            MUST_HAPPEN,
            || (producer.acked_while_running() >= 300).then_some(()),
        );
    }
    let victim = 1;
    let node = cluster.node_id(victim);
    let before = meta.leaders(&topic);
    let led = led_by(&meta, &topic, node);
    assert!(!led.is_empty(), "agent {victim} leads nothing: {before:?}");

    let terminated_at = wall_clock();
    let (status, took) = cluster.terminate(victim, MUST_HAPPEN);
    assert!(
        status.success(),
        "the agent exited with {status} after SIGTERM"
    );
    let exited_after = took.as_secs_f64();
    assert!(
        meta.agents().iter().all(|a| a.node_id != node),
        "the agent left its registration behind"
    );
    // Taken over by the others well inside the 30 s lease, and placed as
    // the two survivors place them.
    let survivors = nodes_of(&cluster, &[0, 2]);
    let owners = expected_owners(&topic, &survivors);
    let after = wait_for(
        "the others taking the handed-off partitions",
        Duration::from_secs(20),
        || {
            let leaders = meta.leaders(&topic);
            leaders
                .iter()
                .all(|(p, (leader, _))| *leader == Some(owners[usize::try_from(*p).unwrap()]))
                .then_some(leaders)
        },
    );
    let moved_after = wall_clock() - terminated_at;
    // Each partition changed epoch at most once — exactly once if it moved.
    for (p, (leader, epoch)) in &after {
        let (old_leader, old_epoch) = before[p];
        if *leader == old_leader {
            assert_eq!(
                *epoch, old_epoch,
                "partition {p} kept its leader but not its epoch"
            );
        } else {
            assert_eq!(
                *epoch,
                old_epoch + 1,
                "partition {p} moved with more than one epoch change"
            );
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    for producer in &mut producers {
        producer.stop();
    }
    let logs: Vec<(String, ProducerLog)> = producers
        .into_iter()
        .map(|p| (p.name.clone(), p.wait(Duration::from_secs(120))))
        .collect();
    for (name, log) in &logs {
        assert!(
            log.failed.is_empty(),
            "{name}: failed deliveries {:?}",
            log.failed
        );
        let fatal: Vec<_> = log.errors.iter().filter(|e| e.fatal).collect();
        assert!(fatal.is_empty(), "{name}: fatal errors {fatal:?}");
    }
    let stored = read_log(&cluster.bootstrap(), "handoff");
    // Without idempotence, order holds only on partitions that stayed put:
    // librdkafka's one request in flight is per connection, and a partition
    // that moved was written over two (see `verify_log_where`).
    let moved: BTreeSet<i32> = after
        .iter()
        .filter(|(p, (leader, _))| before[*p].0 != *leader)
        .map(|(p, _)| *p)
        .collect();
    let verified = verify_log_where(
        &stored,
        &logs
            .iter()
            .map(|(n, l)| (n.as_str(), l))
            .collect::<Vec<_>>(),
        |name, p| name != "non-idempotent" || !moved.contains(&p),
    );
    // From SIGTERM to the first record a new leader acknowledged on each
    // moved partition.
    let mut takeovers = Vec::new();
    for (p, old_epoch) in &led {
        let index = meta.index(&topic, *p);
        assert_index_contiguous(&format!("partition {p}"), &index);
        let from = takeover_offset(&index, *old_epoch).unwrap();
        let first = logs
            .iter()
            .flat_map(|(_, l)| l.acks.iter())
            .filter(|a| a.partition == *p && a.offset >= from)
            .map(|a| a.at - terminated_at)
            .reduce(f64::min)
            .unwrap();
        takeovers.push(first);
    }
    takeovers.sort_by(f64::total_cmp);
    let errors: BTreeMap<String, usize> =
        logs.iter()
            .flat_map(|(_, l)| l.errors.iter())
            .fold(BTreeMap::new(), |mut m, e| {
                *m.entry(e.name.clone()).or_default() += 1;
                m
            });
    println!(
        "SIGTERM of agent {victim} leading {led:?}: exited after {exited_after:.2} s, metadata \
         showed every partition led by the others after {moved_after:.2} s, first record acknowledged \
         by a new leader after {:.2} s (all moved partitions {:.2} s); acknowledged {}, stored {}, \
         lost {}, duplicated {}; client errors (retriable, not deliveries) {errors:?}",
        takeovers[0],
        takeovers[takeovers.len() - 1],
        verified.acknowledged,
        verified.stored,
        verified.lost,
        verified.duplicated,
    );
    assert_eq!(verified.lost, 0, "acknowledged records lost");
    assert_eq!(
        verified.duplicated, 0,
        "records stored twice (an acknowledgement was dropped)"
    );
}

#[test]
fn a_joining_agent_takes_a_fair_share_with_one_epoch_change_per_moved_partition() {
    let mut cluster = Cluster::new(4, Bucket::Directory, &[]);
    for i in 0..3 {
        cluster.start(i);
    }
    let meta = cluster.meta();
    let three = nodes_of(&cluster, &[0, 1, 2]);
    create_topic(&cluster.address(0), "join-12", 12);
    create_topic(&cluster.address(0), "join-6", 6);
    let topics: Vec<fjord_metadata::TopicMeta> = ["join-12", "join-6"]
        .iter()
        .map(|name| meta.wait_spread(name, &three, 1, MUST_HAPPEN).0)
        .collect();
    let before: Vec<_> = topics
        .iter()
        .map(|t| wait_placed(&meta, t, &three))
        .collect();
    // Load on both topics, so hand-offs drain real produces.
    let bootstrap = cluster.bootstrap();
    let mut producers: Vec<Producer> = topics
        .iter()
        .map(|t| {
            Producer::spawn(
                &t.name,
                "produce_acked.py",
                &[
                    &bootstrap,
                    &t.name,
                    "10000000",
                    "0.05",
                    "--until-stdin-closes",
                ],
            )
        })
        .collect();
    for producer in &producers {
        wait_for("the producers acknowledging", MUST_HAPPEN, || {
            (producer.acked_while_running() >= 200).then_some(())
        });
    }
    let joined_at = wall_clock();
    cluster.start(3);
    let four = nodes_of(&cluster, &[0, 1, 2, 3]);
    let newcomer = cluster.node_id(3);
    let after: Vec<_> = topics
        .iter()
        .map(|t| wait_placed(&meta, t, &four))
        .collect();
    let settled_after = wall_clock() - joined_at;
    // Settled: nothing moves any more.
    std::thread::sleep(Duration::from_secs(2));
    for (topic, after) in topics.iter().zip(&after) {
        assert_eq!(
            &meta.leaders(topic),
            after,
            "{}: leadership kept moving",
            topic.name
        );
    }
    for (topic, (before, after)) in topics.iter().zip(before.iter().zip(&after)) {
        let count = usize::try_from(topic.partition_count).unwrap();
        let share = |node: i32| after.values().filter(|(l, _)| *l == Some(node)).count();
        assert!(
            share(newcomer) >= count / 4,
            "{}: the new agent leads {} of {count}",
            topic.name,
            share(newcomer)
        );
        for node in &four {
            assert!(
                share(*node) <= count.div_ceil(4),
                "{}: node {node} leads {}",
                topic.name,
                share(*node)
            );
        }
        let mut moved = 0;
        for (p, (leader, epoch)) in after {
            let (old_leader, old_epoch) = before[p];
            if *leader == old_leader {
                assert_eq!(
                    *epoch, old_epoch,
                    "{} partition {p} did not move but changed epoch",
                    topic.name
                );
            } else {
                moved += 1;
                assert_eq!(
                    *epoch,
                    old_epoch + 1,
                    "{} partition {p} moved {old_leader:?} → {leader:?} with epochs {old_epoch} → {epoch}",
                    topic.name
                );
            }
        }
        println!(
            "{}: the new agent (node {newcomer}) took {} of {count}; {moved} partitions moved, each with one \
             epoch change; settled {settled_after:.2} s after it started",
            topic.name,
            share(newcomer)
        );
    }
    for producer in &mut producers {
        producer.stop();
    }
    for (topic, producer) in topics.iter().zip(producers) {
        let log = producer.wait(Duration::from_secs(120));
        assert!(
            log.failed.is_empty(),
            "{}: failed deliveries {:?}",
            topic.name,
            log.failed
        );
        let stored = read_log(&bootstrap, &topic.name);
        let verified = verify_log(&stored, &[(topic.name.as_str(), &log)]);
        assert_eq!((verified.lost, verified.duplicated), (0, 0), "{verified:?}");
        println!("{}: {verified:?}", topic.name);
    }

    // Coordinator shards: every agent names the same coordinator for each of
    // the 16 shards, and they are spread evenly over the four.
    let mut load: BTreeMap<i32, usize> = BTreeMap::new();
    for shard in 0..fjord_metadata::COORDINATOR_SHARDS {
        let group = group_on_shard("spread", shard);
        let answers: BTreeSet<(i16, i32)> = (0..4)
            .map(|i| find_coordinator(&cluster.address(i), &group))
            .collect();
        assert_eq!(
            answers.len(),
            1,
            "shard {shard}: the agents disagree: {answers:?}"
        );
        let (error, coordinator) = answers.into_iter().next().unwrap();
        assert_eq!(error, NONE, "shard {shard}");
        // The coordinator took the shard when asked.
        assert_eq!(meta.shard(shard).leader, Some(coordinator), "shard {shard}");
        *load.entry(coordinator).or_default() += 1;
    }
    let (least, most) = (
        load.values().min().copied().unwrap_or(0),
        load.values().max().copied().unwrap_or(0),
    );
    println!("coordinator shards per agent: {load:?}");
    assert_eq!(load.len(), 4, "every agent coordinates shards: {load:?}");
    assert!(most - least <= 1, "shards spread unevenly: {load:?}");
}

#[test]
fn a_produce_to_the_wrong_agent_is_refused_and_a_client_with_stale_metadata_recovers() {
    let mut cluster = Cluster::new(4, Bucket::Directory, &[]);
    for i in 0..3 {
        cluster.start(i);
    }
    let meta = cluster.meta();
    let three = nodes_of(&cluster, &[0, 1, 2]);
    create_topic(&cluster.address(0), "wrong", 12);
    let (topic, _) = meta.wait_spread("wrong", &three, 4, MUST_HAPPEN);
    let leaders = wait_placed(&meta, &topic, &three);
    // The raw wire: only the leader accepts.
    for (p, (leader, _)) in &leaders {
        let leader = cluster.index_of(leader.unwrap());
        for agent in 0..3 {
            let (error, offset) = produce_once(
                &cluster.address(agent),
                "wrong",
                *p,
                &[format!("raw-{p}-{agent}")],
            );
            if agent == leader {
                assert_eq!(error, NONE, "partition {p} at its leader");
                assert!(offset >= 0);
            } else {
                assert_eq!(
                    error, NOT_LEADER_OR_FOLLOWER,
                    "partition {p} at agent {agent}"
                );
            }
        }
    }
    // A real client learns the leaders, then some move (an agent joins)
    // while it is idle; its next produces reach the old leaders first.
    let mut client = Command::new("python3")
        .arg(script("produce_then_wait.py"))
        .args([cluster.bootstrap().as_str(), "wrong", "600"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(client.stdout.take().unwrap()).lines();
    let mut output = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        if line == "PHASE1 DONE" {
            break;
        }
        output.push(line);
    }
    cluster.start(3);
    let four = nodes_of(&cluster, &[0, 1, 2, 3]);
    let moved_to: BTreeMap<i32, (Option<i32>, i32)> = wait_placed(&meta, &topic, &four);
    let moved: Vec<i32> = moved_to
        .iter()
        .filter(|(p, (leader, _))| leaders[p].0 != *leader)
        .map(|(p, _)| *p)
        .collect();
    assert!(!moved.is_empty(), "the join moved nothing");
    let mut stdin = client.stdin.take().unwrap();
    writeln!(stdin, "go").unwrap();
    drop(stdin);
    output.extend(lines.map(Result::unwrap));
    assert!(client.wait().unwrap().success());
    let mut log = ProducerLog::default();
    let mut retried: BTreeMap<String, usize> = BTreeMap::new();
    for line in &output {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["ACK", p, o, key, t] => log.acks.push(Ack {
                partition: p.parse().unwrap(),
                offset: o.parse().unwrap(),
                key: (*key).to_owned(),
                at: t.parse().unwrap(),
            }),
            ["FAIL", ..] => log.failed.push(line.clone()),
            ["RETRY", name] => *retried.entry((*name).to_owned()).or_default() += 1,
            _ => panic!("unexpected client output {line:?}"),
        }
    }
    println!("partitions {moved:?} moved; the client retried {retried:?}");
    assert!(log.failed.is_empty(), "failed deliveries {:?}", log.failed);
    assert_eq!(log.acks.len(), 1200, "every record acknowledged");
    assert!(
        retried.contains_key("NotLeaderForPartitionError"),
        "the client never met NOT_LEADER_OR_FOLLOWER at an old leader: {retried:?}"
    );
    assert!(
        retried.keys().all(|k| k == "NotLeaderForPartitionError"),
        "other errors retried: {retried:?}"
    );
    let stored: Vec<_> = read_log(&cluster.bootstrap(), "wrong")
        .into_iter()
        .filter(|(_, _, k)| !k.starts_with("raw-"))
        .collect();
    let all_stored = read_log(&cluster.bootstrap(), "wrong");
    let verified = verify_log(&all_stored, &[("kafka-python", &log)]);
    assert_eq!((verified.lost, verified.duplicated), (0, 0), "{verified:?}");
    assert_eq!(stored.len(), 1200);
}

#[test]
fn find_coordinator_follows_a_moved_coordinator_and_committed_offsets_carry_on() {
    let mut cluster = Cluster::new(
        3,
        Bucket::Directory,
        &["--group-initial-rebalance-delay-ms", "100"],
    );
    for i in 0..3 {
        cluster.start(i);
    }
    let meta = cluster.meta();
    let nodes = nodes_of(&cluster, &[0, 1, 2]);
    create_topic(&cluster.address(0), "offsets", 3);
    meta.wait_spread("offsets", &nodes, 1, MUST_HAPPEN);
    let producer = Producer::spawn(
        "producer",
        "produce_acked.py",
        &[&cluster.bootstrap(), "offsets", "600", "0.01"],
    );
    let produced = producer.wait(MUST_HAPPEN);
    assert_eq!(produced.acks.len(), 600);

    let group = "movers";
    let shard = fjord_metadata::coordinator_shard_of(group);
    let (error, first) = find_coordinator(&cluster.address(0), group);
    assert_eq!(error, NONE);
    let bootstrap = cluster.bootstrap();
    let consume = |max: usize| -> (Vec<(i32, i64)>, BTreeMap<i32, i64>) {
        let out = support::run_python_client_with_args(
            "consume_commit.py",
            &[&bootstrap, "offsets", group, &max.to_string(), "4"],
        );
        let mut records = Vec::new();
        let mut committed = BTreeMap::new();
        for line in out.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            match f.as_slice() {
                ["REC", p, o, _] => records.push((p.parse().unwrap(), o.parse().unwrap())),
                ["COMMITTED", p, o] => {
                    committed.insert(p.parse().unwrap(), o.parse().unwrap());
                }
                _ => panic!("unexpected consumer output {line:?}"),
            }
        }
        (records, committed)
    };
    let (read, committed) = consume(250);
    assert_eq!(read.len(), 250);
    let stored: BTreeMap<i32, i64> = meta
        .offsets(group)
        .iter()
        .map(|o| (o.partition, o.committed.offset))
        .collect();
    let committed: BTreeMap<i32, i64> = committed.into_iter().filter(|(_, o)| *o >= 0).collect();
    assert_eq!(
        stored, committed,
        "what the client was told is what metadata holds"
    );
    let before = meta.shard(shard);
    assert_eq!(before.leader, Some(first));

    // The coordinator goes away (graceful: it releases its shards).
    let coordinator = cluster.index_of(first);
    let (status, _) = cluster.terminate(coordinator, MUST_HAPPEN);
    assert!(status.success());
    assert_eq!(
        meta.shard(shard).leader,
        None,
        "the stopping coordinator released its shard"
    );
    let others: Vec<usize> = (0..3).filter(|i| *i != coordinator).collect();
    let moved_at = monotonic();
    let second = wait_for("FindCoordinator naming another agent", MUST_HAPPEN, || {
        let answers: BTreeSet<(i16, i32)> = others
            .iter()
            .map(|i| find_coordinator(&cluster.address(*i), group))
            .collect();
        match answers.into_iter().collect::<Vec<_>>().as_slice() {
            [(0, node)] if *node != first => Some(*node),
            _ => None,
        }
    });
    println!(
        "coordinator of {group} moved from node {first} to node {second} ({:.2} s after its agent exited)",
        moved_at.elapsed().as_secs_f64()
    );
    let after = meta.shard(shard);
    assert_eq!(after.leader, Some(second));
    assert_eq!(after.epoch, before.epoch + 1, "one epoch change");
    // The group carries on from its committed offsets at the new coordinator.
    let (rest, _) = consume(10_000);
    let mut first_read: BTreeMap<i32, i64> = BTreeMap::new();
    for (p, o) in &rest {
        first_read.entry(*p).or_insert(*o);
    }
    let ends: Vec<i64> = meta
        .states(&meta.topic("offsets").unwrap())
        .iter()
        .map(|s| s.high_watermark)
        .collect();
    for (p, o) in &committed {
        let end = ends[usize::try_from(*p).unwrap()];
        let expected = (*o < end).then_some(o);
        assert_eq!(
            first_read.get(p),
            expected,
            "partition {p} (committed {o}, end {end}) resumed elsewhere: {first_read:?}"
        );
    }
    let mut all: Vec<(i32, i64)> = read.into_iter().chain(rest).collect();
    all.sort_unstable();
    let distinct: BTreeSet<(i32, i64)> = all.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        600,
        "every record read once across the move"
    );
    assert_eq!(all.len(), 600, "no record read twice");
}

#[test]
fn metadata_lists_exactly_the_live_agents() {
    let mut cluster = Cluster::new(3, Bucket::Directory, &[]);
    for i in 0..3 {
        cluster.start(i);
    }
    let all = nodes_of(&cluster, &[0, 1, 2]);
    let brokers_everywhere = |cluster: &Cluster, agents: &[usize], expected: &BTreeSet<i32>| {
        agents
            .iter()
            .all(|i| metadata(&cluster.address(*i), None).0 == *expected)
    };
    wait_for("every agent listing all three", MUST_HAPPEN, || {
        brokers_everywhere(&cluster, &[0, 1, 2], &all).then_some(())
    });
    let killed_at = monotonic();
    cluster.kill(2);
    let two = nodes_of(&cluster, &[0, 1]);
    wait_for(
        "the killed agent dropping out of Metadata",
        MUST_HAPPEN,
        || brokers_everywhere(&cluster, &[0, 1], &two).then_some(()),
    );
    let dropped_after = killed_at.elapsed().as_secs_f64();
    cluster.start(2);
    wait_for("the restarted agent listed again", MUST_HAPPEN, || {
        brokers_everywhere(&cluster, &[0, 1, 2], &all).then_some(())
    });
    let terminated_at = monotonic();
    let (status, _) = cluster.terminate(1, MUST_HAPPEN);
    assert!(status.success());
    let left = nodes_of(&cluster, &[0, 2]);
    wait_for(
        "the stopped agent dropping out of Metadata",
        MUST_HAPPEN,
        || brokers_everywhere(&cluster, &[0, 2], &left).then_some(()),
    );
    println!(
        "Metadata dropped a killed agent after {dropped_after:.2} s (lease 2 s), a stopped one after {:.2} s",
        terminated_at.elapsed().as_secs_f64()
    );
}

#[test]
fn an_old_leaders_pending_produces_get_a_retriable_error_when_it_loses_the_partition() {
    let mut cluster = Cluster::new(3, Bucket::Directory, &[]);
    // Agent 0 flushes only every minute, and not early for waiting
    // producers: what it accepts stays pending.
    cluster.start_with(0, &["--flush-interval-ms", "60000", "--flush-idle-us", "0"]);
    cluster.start(1);
    cluster.start(2);
    let meta = cluster.meta();
    let nodes = nodes_of(&cluster, &[0, 1, 2]);
    create_topic(&cluster.address(1), "pending", 3);
    let (topic, _) = meta.wait_spread("pending", &nodes, 1, MUST_HAPPEN);
    let slow = cluster.node_id(0);
    let (partition, old_epoch) = led_by(&meta, &topic, slow).into_iter().next().unwrap();
    let hwm = meta.states(&topic)[usize::try_from(partition).unwrap()].high_watermark;
    let mut wire = Wire::connect(&cluster.address(0));
    let keys: Vec<String> = (0..5).map(|i| format!("pending-{i}")).collect();
    for key in &keys {
        wire.send(
            ApiKey::Produce,
            PRODUCE_VERSION,
            &produce_request(
                "pending",
                partition,
                record_batch(std::slice::from_ref(key)),
                -1,
            ),
        );
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        meta.states(&topic)[usize::try_from(partition).unwrap()].high_watermark,
        hwm,
        "nothing committed yet"
    );
    let tries = cluster.pause_outside_commits(0);
    let paused_at = monotonic();
    let taken = wait_for(
        "another agent taking the paused leader's partition",
        MUST_HAPPEN,
        || {
            let state = meta.states(&topic)[usize::try_from(partition).unwrap()].clone();
            (state.leader_epoch > old_epoch && state.leader != Some(slow)).then_some(state)
        },
    );
    let new_leader = cluster.index_of(taken.leader.unwrap());
    let (error, offset) = produce_once(
        &cluster.address(new_leader),
        "pending",
        partition,
        &["after".into()],
    );
    assert_eq!(
        (error, offset),
        (NONE, hwm),
        "the new leader serves from the committed high watermark"
    );
    println!(
        "paused agent 0 (at try {tries}); partition {partition} taken over after {:.2} s",
        paused_at.elapsed().as_secs_f64()
    );
    cluster.signal(0, "-CONT");
    for _ in &keys {
        let (_, response): (i32, ProduceResponse) = wire
            .receive(ApiKey::Produce, PRODUCE_VERSION)
            .expect("the old leader answers its pending produces");
        let answer = &response.responses[0].partition_responses[0];
        assert_eq!(
            answer.error_code, NOT_LEADER_OR_FOLLOWER,
            "a pending produce of the old leader: {answer:?}"
        );
    }
    // None of them is in the log; the index has nothing of the old epoch past
    // the takeover.
    let stored = read_log(&cluster.bootstrap(), "pending");
    assert!(
        stored.iter().all(|(_, _, k)| !k.starts_with("pending-")),
        "a refused produce was stored"
    );
    let index = meta.index(&topic, partition);
    assert_index_contiguous("pending", &index);
    assert!(
        index
            .iter()
            .all(|e| e.leader_epoch != old_epoch || e.last_offset < hwm)
    );
}

#[test]
fn a_stall_of_every_agent_longer_than_the_lease_moves_nothing() {
    // A host (or VM) stall: every agent stops at once for twice the lease.
    // Each comes back to counters that have not moved for longer than the
    // lease, but neither has its own: nobody may conclude the others died.
    let mut cluster = Cluster::new(3, Bucket::Directory, &[]);
    for i in 0..3 {
        cluster.start(i);
    }
    let meta = cluster.meta();
    let nodes = nodes_of(&cluster, &[0, 1, 2]);
    create_topic(&cluster.address(0), "stall", 12);
    let (topic, _) = meta.wait_spread("stall", &nodes, 4, MUST_HAPPEN);
    let before = wait_placed(&meta, &topic, &nodes);
    for round in 0..3 {
        for i in 0..3 {
            cluster.signal(i, "-STOP");
        }
        std::thread::sleep(Duration::from_secs(4));
        for i in 0..3 {
            cluster.signal(i, "-CONT");
        }
        // Time for any wrong conclusion to act: beats resume, balancers tick.
        std::thread::sleep(Duration::from_secs(3));
        assert_eq!(
            meta.leaders(&topic),
            before,
            "round {round}: leadership moved after a stall of every agent"
        );
    }
    // And they still serve.
    for (p, (leader, _)) in &before {
        let leader = cluster.index_of(leader.unwrap());
        assert_eq!(
            produce_once(
                &cluster.address(leader),
                "stall",
                *p,
                &[format!("after-{p}")]
            )
            .0,
            NONE
        );
    }
}
