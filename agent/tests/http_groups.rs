//! Group consumption over the HTTP gateway: members of the server-side
//! consumer protocol (KIP-848) whose whole state between polls is the cursor
//! they carry, written with clients nobody here wrote (Python `requests`,
//! confluent-kafka), against three agent processes sharing one SQLite file
//! and one bucket. Each member sends every request to another agent than the
//! one before, so most calls are forwarded to the group's coordinator. The
//! checks are in `tests/clients/http_groups.py`; these tests assert on the
//! counts it reports, and read the committed offsets back from metadata.
//!
//! Times (how long until the members settled, until a crashed member's
//! partitions were owned again) are printed, never asserted.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod many_agents_support;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use many_agents_support::{
    Cluster, gateway_addresses, gateway_cluster, group_coordinated_by, run_gateway_scenario,
    scenario_result,
};
use serde_json::Value;

/// A generous bound that catches a broken requirement, not a slow machine.
const MUST_HAPPEN: Duration = Duration::from_secs(60);

/// Members are told to heartbeat every second (their polls are their
/// heartbeats), well within the 6 s sessions the scenarios ask for.
fn started() -> Cluster {
    gateway_cluster(3, &["--group-consumer-heartbeat-interval-ms", "1000"])
}

fn run(scenario: &str, cluster: &Cluster, extra: &[&str]) -> Value {
    let urls = gateway_addresses(cluster, "http://");
    let out = run_gateway_scenario("http_groups.py", scenario, cluster, extra, &urls);
    scenario_result(&out)
}

fn count(result: &Value, name: &str) -> i64 {
    result[name]
        .as_i64()
        .unwrap_or_else(|| panic!("no count {name:?} in {result}"))
}

/// The group's committed offsets in metadata are its topic's high
/// watermarks, partition by partition.
fn assert_committed_at_the_ends(cluster: &Cluster, result: &Value) {
    let (group, topic) = (
        result["group"]
            .as_str()
            .expect("the result names its group"),
        result["topic"]
            .as_str()
            .expect("the result names its topic"),
    );
    let meta = cluster.meta();
    let topic = meta.topic(topic).expect("the topic exists");
    let ends: BTreeMap<i32, i64> = meta
        .states(&topic)
        .iter()
        .enumerate()
        .map(|(p, state)| (i32::try_from(p).unwrap(), state.high_watermark))
        .collect();
    let committed: BTreeMap<i32, i64> = meta
        .offsets(group)
        .iter()
        .filter(|o| o.topic == topic.name)
        .map(|o| (o.partition, o.committed.offset))
        .collect();
    assert_eq!(
        committed, ends,
        "{group}: committed offsets and partition ends"
    );
}

#[test]
fn three_http_members_share_a_topic_each_record_delivered_once_and_committed_to_the_end() {
    let cluster = started();
    let result = run("share", &cluster, &[]);
    assert_eq!(count(&result, "produced"), 1200, "{result}");
    assert_eq!(count(&result, "delivered_unique"), 1200, "{result}");
    assert_eq!(count(&result, "duplicates"), 0, "{result}");
    assert_eq!(count(&result, "partitions"), 12, "{result}");
    assert_eq!(count(&result, "committed_at_end"), 12, "{result}");
    assert_eq!(count(&result, "not_found"), 0, "{result}");
    assert_eq!(count(&result, "fenced"), 0, "{result}");
    assert_committed_at_the_ends(&cluster, &result);
    println!(
        "share: settled after {} s, 1200 records consumed {} s after the produce started",
        result["settled_s"], result["consumed_s"]
    );
}

/// The agent that coordinates the group (and leads some of the topic's
/// partitions) is killed (`kill -9`) a third of the way through: the members
/// carry on through the other two, none is ever unknown to the coordinator
/// that took over, no record is lost, and no committed offset goes back.
#[test]
fn kill_9_of_the_coordinator_agent_loses_no_member_no_record_and_no_commit() {
    let mut cluster = started();
    let victim = 0;
    let victim_node = cluster.node_id(victim);
    let (group, shard) = group_coordinated_by(&cluster, &[0, 1, 2], victim, "hg-kill", MUST_HAPPEN);
    let pid = cluster.pid(victim).to_string();
    let node = victim_node.to_string();
    let result = run("agent_kill", &cluster, &[&group, &pid, &node]);
    // The script killed it; reap it.
    cluster.kill(victim);
    assert_eq!(count(&result, "produced"), 1200, "{result}");
    assert_eq!(count(&result, "delivered_unique"), 1200, "{result}");
    assert_eq!(count(&result, "partitions"), 12, "{result}");
    assert_eq!(count(&result, "not_found"), 0, "{result}");
    assert_eq!(count(&result, "commits_went_back"), 0, "{result}");
    assert_eq!(count(&result, "committed_at_end"), 12, "{result}");
    assert!(count(&result, "commit_reads") > 0, "{result}");
    assert_committed_at_the_ends(&cluster, &result);
    let coordinator = cluster.meta().shard(shard).leader;
    assert!(
        coordinator.is_some_and(|node| node != victim_node),
        "shard {shard} of {group} is still with the killed node {victim_node}: {coordinator:?}"
    );
    println!(
        "agent_kill: the killed agent led {} of the 12 partitions; all records delivered {} s after \
         the kill ({} duplicates, {} connection retries, {} retried 503s, {} fenced)",
        result["victim_led_partitions"],
        result["recovered_s"],
        result["duplicates"],
        result["connection_retries"],
        result["unavailable_retries"],
        result["fenced"]
    );
}

/// One member stops polling (a crashed client): its partitions go to the
/// other two once its session expires, and only the records of its last poll
/// (never committed) are delivered again.
#[test]
fn a_member_that_stops_polling_loses_its_partitions_to_the_others_and_no_record() {
    let cluster = started();
    let result = run("member_kill", &cluster, &[]);
    assert_eq!(count(&result, "produced"), 1200, "{result}");
    assert_eq!(count(&result, "delivered_unique"), 1200, "{result}");
    // Its last poll answered at most 10 records (max_records) after its last
    // commit.
    assert!(count(&result, "duplicates") <= 10, "{result}");
    assert_eq!(count(&result, "not_found"), 0, "{result}");
    assert_eq!(count(&result, "committed_at_end"), 12, "{result}");
    assert_committed_at_the_ends(&cluster, &result);
    println!(
        "member_kill: every partition owned again {} s after the crashed member's last poll \
         (session timeout {} ms); {} records delivered twice",
        result["reassigned_s"], result["session_timeout_ms"], result["duplicates"]
    );
}

#[test]
fn malformed_group_requests_get_clear_errors_and_the_group_still_works() {
    let mut cluster = started();
    let result = run("bad_input", &cluster, &[]);
    assert_eq!(count(&result, "refusals"), 26, "{result}");
    assert_eq!(count(&result, "read_after"), 20, "{result}");
    assert_eq!(count(&result, "http_500"), 0, "{result}");
    assert_eq!(count(&result, "committed_at_end"), 2, "{result}");
    for i in 0..3 {
        assert!(cluster.exited(i).is_none(), "agent {i} exited");
    }
}

#[test]
fn a_regex_member_is_given_a_topic_created_after_it_joined() {
    let cluster = started();
    let result = run("pattern", &cluster, &[]);
    assert_eq!(count(&result, "partitions"), 5, "{result}");
    assert_eq!(count(&result, "read"), 10, "{result}");
    assert_eq!(count(&result, "read_other"), 0, "{result}");
    assert_eq!(count(&result, "not_found"), 0, "{result}");
    println!(
        "pattern: the new topic's partitions assigned {} s ({} polls) after it was created",
        result["assigned_s"], result["polls_until_assigned"]
    );
}

/// A member reading as an event stream gives up half of its partitions to a
/// polling member that joins later, committing their positions first: every
/// record is delivered exactly once.
#[test]
fn an_event_stream_member_hands_partitions_over_without_a_duplicate() {
    let cluster = started();
    let result = run("stream", &cluster, &[]);
    assert_eq!(count(&result, "not_found"), 0, "{result}");
    assert!(count(&result, "revoked") >= 1, "{result}");
    assert_eq!(
        count(&result, "streamed") + count(&result, "polled"),
        600,
        "{result}"
    );
}
