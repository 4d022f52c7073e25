//! Confluent REST Proxy compatibility (API v2 and v3), with clients nobody
//! here wrote (Python `requests` and `http.client`, confluent-kafka to read
//! back, kafka-python's murmur2), against three agent processes sharing one
//! SQLite file and one bucket. Every request goes to another agent than the
//! one before, including the calls of a consumer instance whose `base_uri`
//! names another agent: instances live in metadata. The checks themselves are
//! in `tests/clients/rest_proxy.py`.

mod many_agents_support;
mod support;

use many_agents_support::{Cluster, gateway_addresses, gateway_cluster, run_gateway_scenario};

fn run(scenario: &str, cluster: &Cluster, extra: &[&str]) -> String {
    let urls = gateway_addresses(cluster, "http://");
    run_gateway_scenario("rest_proxy.py", scenario, cluster, extra, &urls)
}

/// Clusters, topics, partitions, configs and consumer groups; records
/// produced unary, streamed and as a batch with each data type, read back by
/// confluent-kafka byte for byte.
#[test]
fn v3_admin_and_produce_unary_streamed_and_batched_read_back_byte_identical() {
    let cluster = gateway_cluster(3, &[]);
    let out = run("v3", &cluster, &[]);
    assert!(out.contains("OK v3"), "{out}");
}

/// v2 produce in both embedded formats; three instances of one group on a
/// 12-partition topic consume every record exactly once, commit, seek and
/// are deleted.
#[test]
fn v2_consumer_instances_share_a_group_and_consume_each_record_once_through_any_agent() {
    let cluster = gateway_cluster(3, &[]);
    let out = run("v2-flow", &cluster, &[]);
    assert!(out.contains("OK v2-flow"), "{out}");
}

/// `kill -9` of an agent while three instances consume: no call is ever
/// answered "consumer instance not found", and every record is consumed.
#[test]
fn kill_9_of_an_agent_mid_consumption_loses_no_consumer_instance() {
    let mut cluster = gateway_cluster(3, &[]);
    let victim = cluster.agents[0]
        .as_ref()
        .expect("agent 0 runs")
        .child
        .id()
        .to_string();
    let node = cluster.node_id(0).to_string();
    let out = run("kill", &cluster, &[&victim, &node]);
    assert!(out.contains("OK kill records=1200 not_found=0"), "{out}");
    // The script killed agent 0; reap it.
    cluster.kill(0);
}

/// An instance that stops reading loses its partitions within its session
/// timeout, its URL still answers, and it rejoins when it reads again.
#[test]
fn an_instance_that_stops_reading_loses_its_partitions_but_keeps_its_url() {
    let cluster = gateway_cluster(3, &[]);
    let out = run("session-lapse", &cluster, &[]);
    assert!(out.contains("OK session-lapse"), "{out}");
}

/// Confluent's error codes and content types, and instances deleted after
/// their `consumer.instance.timeout.ms`.
#[test]
fn errors_carry_confluents_codes_and_content_types() {
    let mut cluster = gateway_cluster(3, &[]);
    let out = run("errors", &cluster, &[]);
    assert!(out.contains("OK errors"), "{out}");
    for i in 0..3 {
        assert!(cluster.exited(i).is_none(), "agent {i} exited");
    }
}
