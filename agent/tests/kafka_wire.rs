//! The Kafka listener of a real `fjord agent` process, probed with real clients
//! (kcat/librdkafka, kafka-python) and with bad input on raw sockets.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use bytes::{Buf, BufMut, BytesMut};
use fjord_common::SeededRng;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use support::{AgentProcess, run_python_client};

fn connect(agent: &AgentProcess) -> TcpStream {
    let stream = TcpStream::connect(agent.address()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads one response frame, or `None` if the broker closed the connection.
fn read_frame(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            return None;
        }
        Err(e) => panic!("reading a response failed: {e}"),
    }
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).unwrap();
    Some(body)
}

fn api_versions_request(version: i16, correlation_id: i32) -> Vec<u8> {
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::ApiVersions as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("fjord-test"));
    let mut body = BytesMut::new();
    header
        .encode(
            &mut body,
            ApiKey::ApiVersions.request_header_version(version),
        )
        .unwrap();
    let mut request = ApiVersionsRequest::default();
    if version >= 3 {
        request.client_software_name = StrBytes::from_static_str("fjord-test");
        request.client_software_version = StrBytes::from_static_str("1");
    }
    request.encode(&mut body, version).unwrap();
    frame(&body)
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// Sends a valid ApiVersions v3 request and checks the answer: the agent serves.
fn assert_serving(agent: &AgentProcess) {
    let mut stream = connect(agent);
    stream.write_all(&api_versions_request(3, 42)).unwrap();
    let response = read_frame(&mut stream).expect("a response");
    let mut bytes = bytes::Bytes::from(response);
    assert_eq!(bytes.get_i32(), 42, "correlation id");
    let decoded = ApiVersionsResponse::decode(&mut bytes, 3).unwrap();
    assert_eq!(decoded.error_code, 0);
    assert!(
        decoded
            .api_keys
            .iter()
            .any(|k| k.api_key == ApiKey::Metadata as i16)
    );
}

fn assert_closed_without_answer(agent: &AgentProcess, what: &str, bytes: &[u8]) {
    let mut stream = connect(agent);
    // The broker may close while we are still writing: that is an answer too.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(std::net::Shutdown::Write);
    assert_eq!(
        read_frame(&mut stream),
        None,
        "{what}: expected the connection closed"
    );
}

#[test]
fn bad_input_closes_the_connection_and_the_agent_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &[]);
    assert_serving(&agent);

    // Frames the broker must refuse outright.
    assert_closed_without_answer(&agent, "oversized frame", &(200u32 << 20).to_be_bytes());
    assert_closed_without_answer(&agent, "negative length", &[0xff, 0xff, 0xff, 0xff]);
    assert_closed_without_answer(&agent, "frame shorter than a header", &frame(&[0, 18, 0]));
    let mut unknown_api = BytesMut::new();
    unknown_api.put_i16(999);
    unknown_api.put_i16(0);
    unknown_api.put_i32(1);
    unknown_api.put_i16(-1);
    assert_closed_without_answer(&agent, "unknown api key", &frame(&unknown_api));
    let mut produce = BytesMut::new();
    produce.put_i16(ApiKey::Produce as i16);
    produce.put_i16(9);
    produce.put_i32(1);
    produce.put_i16(-1);
    assert_closed_without_answer(&agent, "api not served", &frame(&produce));
    let mut truncated = api_versions_request(3, 7);
    truncated.truncate(truncated.len() - 5);
    assert_closed_without_answer(&agent, "truncated frame", &truncated);
    let mut bad_body = BytesMut::new();
    bad_body.put_i16(ApiKey::Metadata as i16);
    bad_body.put_i16(9);
    bad_body.put_i32(5);
    bad_body.put_slice(&[0x7f; 3]);
    assert_closed_without_answer(&agent, "malformed body", &frame(&bad_body));

    // Random garbage, many shapes, from a logged seed.
    let rng = SeededRng::new(0xbad_1dea);
    eprintln!("garbage seed {}", rng.seed());
    for round in 0..50 {
        let len = rng.below(512) as usize;
        let mut garbage: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        if round % 2 == 0 {
            // A plausible length prefix makes the garbage reach the decoder.
            garbage = frame(&garbage);
        }
        let mut stream = connect(&agent);
        let _ = stream.write_all(&garbage);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        // Whatever comes back must be framed; most likely nothing.
        let mut rest = Vec::new();
        let _ = stream.read_to_end(&mut rest);
    }
    assert_serving(&agent);

    // An ApiVersions version the broker does not know gets the v0 fallback answer.
    let mut stream = connect(&agent);
    let mut future = BytesMut::new();
    future.put_i16(ApiKey::ApiVersions as i16);
    future.put_i16(99);
    future.put_i32(77);
    future.put_i16(-1);
    stream.write_all(&frame(&future)).unwrap();
    let response = read_frame(&mut stream).expect("a fallback response");
    let mut bytes = bytes::Bytes::from(response);
    assert_eq!(bytes.get_i32(), 77);
    let decoded = ApiVersionsResponse::decode(&mut bytes, 0).unwrap();
    assert_eq!(decoded.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(!decoded.api_keys.is_empty());
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &[]);
    let mut stream = connect(&agent);
    let mut burst = Vec::new();
    for correlation_id in 0..100 {
        burst.extend(api_versions_request(
            (correlation_id % 4) as i16,
            correlation_id,
        ));
    }
    stream.write_all(&burst).unwrap();
    for correlation_id in 0..100 {
        let response = read_frame(&mut stream).expect("a response");
        let mut bytes = bytes::Bytes::from(response);
        assert_eq!(bytes.get_i32(), correlation_id);
    }
}

#[test]
fn kafka_python_admin_manages_topics_and_kcat_sees_them() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &[]);
    let out = run_python_client("kafka_python_admin.py", &agent.address());
    assert!(out.contains("kafka-python admin: ok"), "{out}");

    let output = Command::new("kcat")
        .args(["-b", &agent.address(), "-L", "-J"])
        .output()
        .expect("kcat is installed by scripts/install-deps.sh");
    assert!(
        output.status.success(),
        "kcat -L failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listing = String::from_utf8(output.stdout).unwrap();
    // kcat's JSON: {"brokers":[{"id":N,"name":"host:port"}],"topics":[{"topic":..,"partitions":[..]}]}
    assert!(
        listing.contains(&format!("\"name\":\"{}\"", agent.address())),
        "{listing}"
    );
    assert!(listing.contains("\"topic\":\"events\""), "{listing}");
    assert!(
        !listing.contains("\"topic\":\"orders\""),
        "deleted topic listed: {listing}"
    );

    // Metadata for an unknown topic auto-creates it (auto.create.topics.enable).
    let output = Command::new("kcat")
        .args(["-b", &agent.address(), "-L", "-J", "-t", "auto-created"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let again = Command::new("kcat")
        .args(["-b", &agent.address(), "-L", "-J"])
        .output()
        .unwrap();
    let listing = String::from_utf8(again.stdout).unwrap();
    assert!(listing.contains("\"topic\":\"auto-created\""), "{listing}");
}
