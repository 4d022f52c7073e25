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
    let mut not_served = BytesMut::new();
    not_served.put_i16(ApiKey::AlterReplicaLogDirs as i16);
    not_served.put_i16(1);
    not_served.put_i32(1);
    not_served.put_i16(-1);
    assert_closed_without_answer(&agent, "api not served", &frame(&not_served));
    let mut old_produce = BytesMut::new();
    old_produce.put_i16(ApiKey::Produce as i16);
    old_produce.put_i16(2);
    old_produce.put_i32(1);
    old_produce.put_i16(-1);
    assert_closed_without_answer(&agent, "produce version not served", &frame(&old_produce));
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

/// A v2 record batch with `count` records (opaque record bytes), CRC-32C correct.
fn record_batch(count: i32) -> bytes::Bytes {
    let mut body = BytesMut::new();
    body.put_i16(0); // attributes: no compression
    body.put_i32(count - 1); // lastOffsetDelta
    body.put_i64(1_700_000_000_000); // baseTimestamp
    body.put_i64(1_700_000_000_000); // maxTimestamp
    body.put_i64(-1); // producerId
    body.put_i16(-1); // producerEpoch
    body.put_i32(-1); // baseSequence
    body.put_i32(count);
    for i in 0..count {
        // A record: length, attributes, timestamp delta, offset delta, key, value, headers
        // (varints; all small, so one byte each).
        let record = [0u8, 0, (i * 2) as u8, 1, 0x02, b'v', 0];
        body.put_u8((record.len() * 2) as u8);
        body.put_slice(&record);
    }
    let crc = crc32c::crc32c(&body);
    let mut batch = BytesMut::new();
    batch.put_i64(0);
    batch.put_i32((body.len() + 9) as i32);
    batch.put_i32(-1);
    batch.put_i8(2);
    batch.put_u32(crc);
    batch.put_slice(&body);
    batch.freeze()
}

fn produce(
    stream: &mut TcpStream,
    topic: &str,
    records: bytes::Bytes,
    correlation_id: i32,
) -> (i16, i64) {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
    let version = 7;
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::Produce as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    let mut partition = PartitionProduceData::default();
    partition.index = 0;
    partition.records = Some(records);
    let mut topic_data = TopicProduceData::default();
    topic_data.name = TopicName(StrBytes::from_string(topic.to_owned()));
    topic_data.partition_data = vec![partition];
    let mut request = ProduceRequest::default();
    request.acks = -1;
    request.timeout_ms = 30_000;
    request.topic_data = vec![topic_data];
    let mut body = BytesMut::new();
    header
        .encode(&mut body, ApiKey::Produce.request_header_version(version))
        .unwrap();
    request.encode(&mut body, version).unwrap();
    stream.write_all(&frame(&body)).unwrap();
    let mut response = bytes::Bytes::from(read_frame(stream).expect("a produce response"));
    assert_eq!(response.get_i32(), correlation_id);
    let decoded = ProduceResponse::decode(&mut response, version).unwrap();
    let partition = &decoded.responses[0].partition_responses[0];
    (partition.error_code, partition.base_offset)
}

#[test]
fn a_batch_with_a_bad_crc_is_refused_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &["--flush-interval-ms", "10"]);
    // A metadata request creates the topic (auto.create.topics.enable), as a
    // client's first metadata lookup would.
    let listing = Command::new("kcat")
        .args(["-b", &agent.address(), "-L", "-t", "crc"])
        .output()
        .unwrap();
    assert!(listing.status.success());
    let mut stream = connect(&agent);
    let good = record_batch(3);
    let mut bad = good.to_vec();
    let last = bad.len() - 2;
    bad[last] ^= 0x01; // a record byte: covered by the CRC
    let (error, _) = produce(&mut stream, "crc", bytes::Bytes::from(bad), 1);
    assert_eq!(error, 2, "CORRUPT_MESSAGE");
    let mut truncated = good.to_vec();
    truncated.truncate(good.len() - 4);
    let (error, _) = produce(&mut stream, "crc", bytes::Bytes::from(truncated), 2);
    assert_eq!(error, 2, "CORRUPT_MESSAGE for a truncated batch");
    // The refused batches took no offsets: the first good one starts at 0.
    assert_eq!(produce(&mut stream, "crc", good.clone(), 3), (0, 0));
    assert_eq!(produce(&mut stream, "crc", good, 4), (0, 3));
    assert_serving(&agent);
}
