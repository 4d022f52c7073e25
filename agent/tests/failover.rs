//! Three agent processes share one SQLite metadata file and one bucket on a real
//! S3 server (moto), at the default lease, heartbeat and balance timings. Two
//! idempotent `acks=all` producers of different client libraries
//! (confluent-kafka/librdkafka and kafka-python) and a consumer group of two
//! members keep running while random agents (seeded; the seed is printed) are
//! killed with SIGKILL and restarted, round after round, and then one is paused
//! with SIGSTOP past its lease and resumed. Then:
//!
//! - every delivery was acknowledged in the end (no producer gave up);
//! - every acknowledged record is stored exactly once, at its acknowledged
//!   offset, in production order per partition;
//! - the group read every acknowledged record, each one the record stored at
//!   its offset, in offset order within each assignment;
//! - each kill moved every partition the victim led to another agent (a new
//!   epoch), and the takeover time — from the kill to the first record
//!   acknowledged on a moved partition by its new leader — is printed (p50/p99);
//! - the paused agent's partitions moved while it was paused, and after it
//!   resumed, no index entry of its old epoch lies at or past the high watermark
//!   the new leader took over from.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod many_agents_support;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use fjord_common::SeededRng;
use many_agents_support::*;

const TOPIC: &str = "chaos";
const PARTITIONS: i32 = 6;
const ROUNDS: usize = 8;
const GROUP: &str = "chaos-readers";
/// A bound for anything that must happen: well past any takeover at the
/// default timings, far short of the test's own time limit.
const MUST_HAPPEN: Duration = Duration::from_secs(60);

/// One `kill -9`.
struct Kill {
    victim: usize,
    node: i32,
    /// The partitions it led, with their epochs then.
    led: BTreeMap<i32, i32>,
    killed_at: f64,
    /// When metadata first showed all of them led elsewhere.
    moved_after: f64,
}

fn led_by(meta: &Meta, topic: &fjord_metadata::TopicMeta, node: i32) -> BTreeMap<i32, i32> {
    meta.leaders(topic)
        .into_iter()
        .filter(|(_, (leader, _))| *leader == Some(node))
        .map(|(p, (_, epoch))| (p, epoch))
        .collect()
}

/// Waits until every partition of `led` has a newer epoch under another leader;
/// returns each one's (epoch, high watermark) at that moment.
fn wait_moved(
    meta: &Meta,
    topic: &fjord_metadata::TopicMeta,
    node: i32,
    led: &BTreeMap<i32, i32>,
    what: &str,
) -> BTreeMap<i32, (i32, i64)> {
    wait_for(what, MUST_HAPPEN, || {
        let states = meta.states(topic);
        let mut moved = BTreeMap::new();
        for (p, epoch) in led {
            let state = &states[usize::try_from(*p).unwrap()];
            let elsewhere = state.leader.is_some_and(|l| l != node);
            if state.leader_epoch <= *epoch || !elsewhere {
                return None;
            }
            moved.insert(*p, (state.leader_epoch, state.high_watermark));
        }
        Some(moved)
    })
}

fn seed() -> u64 {
    std::env::var("FJORD_FAILOVER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| (wall_clock() * 1000.0) as u64)
}

#[test]
fn acknowledged_records_survive_agents_killed_and_paused_at_default_timings() {
    let seed = seed();
    println!("victims drawn with seed {seed} (FJORD_FAILOVER_SEED={seed} draws the same)");
    let rng = SeededRng::new(seed);
    // Default lease, heartbeat, balance and flush timings; only the group's
    // first rebalance is not held back 3 s.
    let mut cluster = Cluster::new(
        3,
        Bucket::Moto,
        &["--group-initial-rebalance-delay-ms", "500"],
    );
    for i in 0..3 {
        cluster.start(i);
    }
    let meta = cluster.meta();
    let nodes: BTreeSet<i32> = (0..3).map(|i| cluster.node_id(i)).collect();
    create_topic(&cluster.address(0), TOPIC, PARTITIONS);
    let (topic, spread) = meta.wait_spread(TOPIC, &nodes, 2, MUST_HAPPEN);
    println!("partitions spread: {spread:?}");

    let bootstrap = cluster.bootstrap();
    let members = [
        Member::spawn("member-1", &bootstrap, TOPIC, GROUP),
        Member::spawn("member-2", &bootstrap, TOPIC, GROUP),
    ];
    let mut producers = vec![
        Producer::spawn(
            "confluent-kafka",
            "produce_acked.py",
            &[
                &bootstrap,
                TOPIC,
                "10000000",
                "0.12",
                "--prefix",
                "c",
                "--errors",
                "--until-stdin-closes",
                "--timeout-ms",
                "90000",
            ],
        ),
        Producer::spawn(
            "kafka-python",
            "produce_acked_kafka_python.py",
            &[
                &bootstrap,
                TOPIC,
                "10000000",
                "0.12",
                "--prefix",
                "p",
                "--until-stdin-closes",
                "--timeout-ms",
                "90000",
            ],
        ),
    ];
    for producer in &producers {
        wait_for(
            &format!("{} acknowledging records", producer.name),
            MUST_HAPPEN,
            || (producer.acked_while_running() >= 200).then_some(()),
        );
    }

    // Rounds: kill -9 a random agent; once metadata shows its partitions led
    // elsewhere, restart it (it takes its share back by hand-off).
    let mut kills = Vec::new();
    for round in 0..ROUNDS {
        std::thread::sleep(Duration::from_millis(1500));
        let victim = usize::try_from(rng.below(3)).unwrap();
        let node = cluster.node_id(victim);
        let led = wait_for(
            &format!("round {round}: agent {victim} leading a partition"),
            MUST_HAPPEN,
            || Some(led_by(&meta, &topic, node)).filter(|led| !led.is_empty()),
        );
        let killed_at = wall_clock();
        cluster.kill(victim);
        wait_moved(
            &meta,
            &topic,
            node,
            &led,
            &format!("round {round}: the partitions of killed agent {victim} ({led:?}) moving"),
        );
        let moved_after = wall_clock() - killed_at;
        println!(
            "round {round}: killed agent {victim} (node {node}) leading {led:?}; \
             metadata showed them moved after {moved_after:.2} s"
        );
        kills.push(Kill {
            victim,
            node,
            led,
            killed_at,
            moved_after,
        });
        std::thread::sleep(Duration::from_millis(500));
        cluster.start(victim);
    }

    // Pause one agent past its lease, then resume it.
    std::thread::sleep(Duration::from_secs(2));
    let paused = usize::try_from(rng.below(3)).unwrap();
    let paused_node = cluster.node_id(paused);
    let paused_led = wait_for(
        &format!("agent {paused} leading a partition before the pause"),
        MUST_HAPPEN,
        || Some(led_by(&meta, &topic, paused_node)).filter(|led| !led.is_empty()),
    );
    let pause_tries = cluster.pause_outside_commits(paused);
    let stopped_at = wall_clock();
    let taken = wait_moved(
        &meta,
        &topic,
        paused_node,
        &paused_led,
        &format!("the partitions of paused agent {paused} ({paused_led:?}) moving"),
    );
    let pause_takeover = wall_clock() - stopped_at;
    // The new leaders serve while the old one is still paused.
    wait_for(
        "an acknowledgement from a new leader while the old one is paused",
        MUST_HAPPEN,
        || {
            producers
                .iter()
                .flat_map(|p| p.log().acks)
                .any(|ack| {
                    taken
                        .get(&ack.partition)
                        .is_some_and(|(_, hwm)| ack.offset >= *hwm)
                })
                .then_some(())
        },
    );
    // Paused well past its lease, while its successors commit.
    let paused_for = wall_clock() - stopped_at;
    if paused_for < 5.0 {
        std::thread::sleep(Duration::from_secs_f64(5.0 - paused_for));
    }
    let resumed_at = wall_clock();
    cluster.signal(paused, "-CONT");
    println!(
        "paused agent {paused} (node {paused_node}) leading {paused_led:?}; metadata showed \
         them moved after {pause_takeover:.2} s: {taken:?} (epoch, high watermark); resumed after {:.2} s \
         (paused at try {pause_tries})",
        resumed_at - stopped_at
    );
    std::thread::sleep(Duration::from_secs(4));

    for producer in &mut producers {
        producer.stop();
    }
    let logs: Vec<(String, ProducerLog)> = producers
        .into_iter()
        .map(|p| (p.name.clone(), p.wait(Duration::from_secs(150))))
        .collect();
    let acked: usize = logs.iter().map(|(_, l)| l.acks.len()).sum();
    // The group reads everything acknowledged, then leaves.
    wait_for(
        "the group reading every acknowledged record",
        Duration::from_secs(120),
        || {
            let seen = consumed_by(&members.iter().collect::<Vec<_>>());
            logs.iter()
                .flat_map(|(_, l)| l.acks.iter())
                .all(|a| seen.contains_key(&(a.partition, a.offset)))
                .then_some(())
        },
    );
    let member_logs: Vec<MemberLog> = members
        .into_iter()
        .map(|m| m.finish(Duration::from_secs(60)))
        .collect();

    // Every delivery acknowledged in the end (idempotent retries allowed).
    for (name, log) in &logs {
        assert!(
            log.failed.is_empty(),
            "{name}: {} deliveries failed, e.g. {:?}",
            log.failed.len(),
            &log.failed[..log.failed.len().min(5)]
        );
        let fatal: Vec<&ClientError> = log.errors.iter().filter(|e| e.fatal).collect();
        assert!(fatal.is_empty(), "{name}: fatal client errors {fatal:?}");
    }
    let stored = read_log(&bootstrap, TOPIC);
    let verified = verify_log(
        &stored,
        &logs
            .iter()
            .map(|(name, log)| (name.as_str(), log))
            .collect::<Vec<_>>(),
    );
    let group = verify_group(
        &member_logs,
        &stored,
        &logs.iter().map(|(_, l)| l).collect::<Vec<_>>(),
    );

    // The paused agent never wrote into a partition it had lost: every entry
    // of its old epoch lies below the high watermark its successor took over
    // from, and the index stays one contiguous run.
    for (p, old_epoch) in &paused_led {
        let index = meta.index(&topic, *p);
        assert_index_contiguous(&format!("partition {p}"), &index);
        let (_, hwm_seen) = taken[p];
        let takeover = takeover_offset(&index, *old_epoch).unwrap_or(hwm_seen);
        assert!(
            takeover <= hwm_seen,
            "partition {p}: the successor's first commit starts at {takeover}, past the \
             high watermark {hwm_seen} seen at the takeover"
        );
        if let Some(late) = index
            .iter()
            .find(|e| e.leader_epoch == *old_epoch && e.last_offset >= takeover)
        {
            panic!(
                "partition {p}: the paused leader committed {late:?} under epoch {old_epoch} \
                 after losing it at offset {takeover}"
            );
        }
    }
    // Its producers were answered nothing wrong: every acknowledgement is
    // stored where it said (checked above for all); count those that arrived
    // for its partitions while it was paused or just after.
    let around_pause = logs
        .iter()
        .flat_map(|(_, l)| l.acks.iter())
        .filter(|a| {
            paused_led.contains_key(&a.partition) && a.at >= stopped_at && a.at <= resumed_at + 4.0
        })
        .count();

    // Takeover after each kill: from the kill to the first acknowledgement on
    // a moved partition at or past the offset its new leader took over from
    // (so committed by the new leader, not a late answer of the dead one).
    let mut first_takeovers = Vec::new();
    let mut all_takeovers = Vec::new();
    for (round, kill) in kills.iter().enumerate() {
        let mut per_partition = Vec::new();
        for (p, old_epoch) in &kill.led {
            let index = meta.index(&topic, *p);
            assert_index_contiguous(&format!("partition {p}"), &index);
            let from = takeover_offset(&index, *old_epoch).unwrap_or_else(|| {
                panic!("round {round}: partition {p} has no commit after epoch {old_epoch}")
            });
            let first = logs
                .iter()
                .flat_map(|(_, l)| l.acks.iter())
                .filter(|a| a.partition == *p && a.offset >= from)
                .map(|a| a.at - kill.killed_at)
                .reduce(f64::min);
            per_partition.push(first.unwrap_or_else(|| {
                panic!("round {round}: nothing acknowledged on moved partition {p}")
            }));
        }
        per_partition.sort_by(f64::total_cmp);
        println!(
            "round {round}: agent {} (node {}) killed; takeover of {:?}: first {:.2} s, all {:.2} s \
             (metadata moved after {:.2} s)",
            kill.victim,
            kill.node,
            kill.led.keys().collect::<Vec<_>>(),
            per_partition[0],
            per_partition[per_partition.len() - 1],
            kill.moved_after
        );
        first_takeovers.push(per_partition[0]);
        all_takeovers.push(per_partition[per_partition.len() - 1]);
    }
    first_takeovers.sort_by(f64::total_cmp);
    all_takeovers.sort_by(f64::total_cmp);
    let per_producer: Vec<String> = logs
        .iter()
        .map(|(name, log)| {
            format!(
                "{name} {} acknowledged, {} failed, {} client errors",
                log.acks.len(),
                log.failed.len(),
                log.errors.len()
            )
        })
        .collect();
    println!(
        "seed {seed}; {}; acknowledged {}, stored {}, lost {}, duplicated {}; group of {} read {} \
         ({} distinct, {} re-read after rebalances, {} acknowledged missed); \
         takeover after kill -9 over {} rounds (default timings): first moved partition p50 {:.2} s \
         p99 {:.2} s max {:.2} s, all moved partitions p50 {:.2} s p99 {:.2} s; SIGSTOP takeover \
         {pause_takeover:.2} s, {around_pause} acknowledgements on its partitions around the pause",
        per_producer.join("; "),
        verified.acknowledged,
        verified.stored,
        verified.lost,
        verified.duplicated,
        member_logs.len(),
        group.read,
        group.distinct,
        group.reread,
        group.missed,
        first_takeovers.len(),
        percentile(&first_takeovers, 0.5),
        percentile(&first_takeovers, 0.99),
        first_takeovers.last().copied().unwrap_or(f64::NAN),
        percentile(&all_takeovers, 0.5),
        percentile(&all_takeovers, 0.99),
    );
    assert_eq!(verified.acknowledged, acked);
    assert_eq!(verified.lost, 0, "acknowledged records lost");
    assert_eq!(verified.duplicated, 0, "acknowledged records stored twice");
    assert_eq!(group.missed, 0, "the group missed acknowledged records");
    assert!(
        member_logs.iter().all(|m| !m.records.is_empty()),
        "both members read records"
    );
    assert!(acked > 5_000, "only {acked} records acknowledged");
}
