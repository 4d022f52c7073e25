//! The HTTP gateway, with clients nobody here wrote (Python `requests`, `curl`,
//! confluent-kafka, kafka-python's record-batch builder and partitioner),
//! against three agent processes sharing one SQLite file and one bucket. The
//! clients send every request to another agent than the one before: the
//! gateway keeps no state of its own. The checks themselves are in
//! `tests/clients/http_gateway.py`.

mod many_agents_support;
mod support;

use std::process::Command;
use std::time::Duration;

use many_agents_support::{
    Cluster, gateway_addresses, gateway_cluster, run_gateway_scenario, wait_for,
};

fn urls(cluster: &Cluster) -> Vec<String> {
    gateway_addresses(cluster, "http://")
}

fn started(count: usize, args: &[&str]) -> Cluster {
    gateway_cluster(count, args)
}

fn run(scenario: &str, cluster: &Cluster, extra: &[&str]) -> String {
    run_gateway_scenario("http_gateway.py", scenario, cluster, extra, &urls(cluster))
}

#[test]
fn records_produced_over_http_and_kafka_read_back_the_same_through_any_agent() {
    let cluster = started(3, &[]);
    let out = run("roundtrip", &cluster, &[]);
    assert!(out.contains("OK roundtrip"), "{out}");
}

#[test]
fn expected_offset_is_checked_by_the_leader_through_every_agent() {
    let cluster = started(3, &[]);
    let out = run("expected-offset", &cluster, &[]);
    assert!(out.contains("OK expected-offset"), "{out}");
}

#[test]
fn bad_input_gets_a_clear_error_and_stores_nothing() {
    let cluster = started(3, &[]);
    let out = run("bad-input", &cluster, &[]);
    assert!(out.contains("OK bad-input"), "{out}");
    // Every agent is still up.
    let mut cluster = cluster;
    for i in 0..3 {
        assert!(cluster.exited(i).is_none(), "agent {i} exited");
    }
}

#[test]
fn after_kill_9_the_others_read_every_record_recognise_retries_and_take_produces() {
    let mut cluster = started(3, &[]);
    let out = run("seed", &cluster, &["after-kill", "6", "300"]);
    assert!(out.contains("OK seed records=330"), "{out}");
    let idempotent = out
        .lines()
        .find_map(|line| line.strip_prefix("IDEMPOTENT "))
        .expect("the seed prints its idempotent producer")
        .to_owned();
    // Agent 0 leads some of the partitions it dies with, so the retries
    // below reach new leaders.
    let nodes = (0..3).map(|i| cluster.node_id(i)).collect();
    cluster
        .meta()
        .wait_spread("after-kill", &nodes, 1, Duration::from_secs(60));
    cluster.kill(0);
    let out = run("after-kill", &cluster, &["after-kill", "330", &idempotent]);
    assert!(
        out.contains("OK after-kill read=330 retried=30 partitions=6"),
        "{out}"
    );
}

/// `curl` over HTTP/1.1 and over HTTP/2 (prior knowledge, as gRPC clients
/// connect): produce on one agent, read on another.
#[test]
fn curl_produces_and_reads_over_http1_and_http2() {
    let cluster = started(2, &[]);
    let urls = urls(&cluster);
    let curl = |args: &[&str]| -> String {
        let output = Command::new("curl")
            .args(["-sS", "--fail-with-body", "--max-time", "60"])
            .args(args)
            .output()
            .expect("curl runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "curl {args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let created = curl(&[
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"name": "curled", "partitions": 2}"#,
        &format!("{}/v1/topics", urls[0]),
    ]);
    assert!(created.contains(r#""name":"curled""#), "{created}");
    // Leadership may still be settling: a produce answered 503 is retried.
    let produced = wait_for("a produce over HTTP/2", Duration::from_secs(60), || {
        let output = Command::new("curl")
            .args(["-sS", "--http2-prior-knowledge", "--max-time", "60"])
            .args(["-H", "Content-Type: application/json"])
            .args(["-d", r#"{"records": [{"key": "k", "value": "over h2"}]}"#])
            .arg(format!("{}/v1/topics/curled/partitions/1/records", urls[1]))
            .output()
            .expect("curl runs");
        let body = String::from_utf8_lossy(&output.stdout).into_owned();
        body.contains(r#""offsets""#).then_some(body)
    });
    assert!(
        produced.contains(r#""partition":1,"offset":0"#),
        "{produced}"
    );
    let read = curl(&[&format!(
        "{}/v1/topics/curled/partitions/1/records?offset=0",
        urls[0]
    )]);
    assert!(read.contains(r#""value":"over h2""#), "{read}");
    assert!(read.contains(r#""high_watermark":1"#), "{read}");
    let verbose = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "-w", "%{http_version}"])
        .arg("--http2-prior-knowledge")
        .arg(format!("{}/healthz", urls[1]))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&verbose.stdout), "2");
}

/// A Server-Sent Events tail served by an agent that is killed (`kill -9`)
/// mid-stream resumes on another agent with `Last-Event-ID`: every
/// acknowledged record arrives once, in order.
#[test]
fn an_sse_tail_survives_kill_9_of_its_agent_with_no_gap_and_no_duplicate() {
    let mut cluster = started(3, &[]);
    let victim = cluster.agents[0].as_ref().expect("agent 0 runs").child.id();
    let victim = victim.to_string();
    let out = run("sse-kill", &cluster, &[&victim]);
    assert!(out.contains("OK sse-kill received=400"), "{out}");
    // The script killed agent 0; reap it.
    cluster.kill(0);
}

/// Schemathesis, a property-based HTTP fuzzer nobody here wrote, generates
/// requests from the OpenAPI document the agent serves (valid ones, and ones
/// that break it on purpose) against every route: no answer is a server error
/// (a produce's `REQUEST_TIMED_OUT` under a tiny `timeout_ms` aside), every
/// answer matches the document, and every request the document forbids is
/// refused. The agent is still up afterwards, its topic intact.
#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let mut cluster = started(1, &[]);
    let url = urls(&cluster).remove(0);
    let created = Command::new("curl")
        .args([
            "-sS",
            "--fail-with-body",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["-d", r#"{"name": "fuzz", "partitions": 2}"#])
        .arg(format!("{url}/v1/topics"))
        .output()
        .expect("curl runs");
    assert!(created.status.success(), "{created:?}");
    let config = many_agents_support::script("schemathesis.toml");
    let work = tempfile::tempdir().unwrap();
    let output = Command::new("python3")
        .current_dir(work.path())
        .args([
            "-c",
            "import sys; from schemathesis.cli import schemathesis; \
             sys.argv[0] = 'schemathesis'; schemathesis()",
            "--config-file",
        ])
        .arg(&config)
        .args(["run", &format!("{url}/v1/openapi.json")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_schema_conformance,negative_data_rejection",
        ])
        .args(["--max-examples", "40", "--seed", "1", "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing", "--no-color"])
        .output()
        .expect("python3 runs schemathesis");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "schemathesis found failures ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" passed"), "{stdout}");
    assert!(cluster.exited(0).is_none(), "the agent exited");
    let topic = Command::new("curl")
        .args(["-sS", "--fail-with-body"])
        .arg(format!("{url}/v1/topics/fuzz"))
        .output()
        .expect("curl runs");
    assert!(topic.status.success(), "{topic:?}");
}

/// SIGTERM ends the agent's event streams as it starts shutting down (so
/// their clients reconnect elsewhere while it hands its partitions off), the
/// agent still exits cleanly, and the tail resumes on another agent with no
/// gap and no duplicate.
#[test]
fn sigterm_ends_an_agents_tails_and_they_resume_elsewhere() {
    let mut cluster = started(2, &[]);
    let pid = cluster.agents[0]
        .as_ref()
        .expect("agent 0 runs")
        .child
        .id()
        .to_string();
    let out = run("sse-term", &cluster, &[&pid]);
    assert!(out.contains("OK sse-term received=60"), "{out}");
    let status = wait_for(
        "agent 0 exiting after SIGTERM",
        Duration::from_secs(60),
        || cluster.exited(0),
    );
    assert!(status.success(), "agent 0 exited with {status}");
}
