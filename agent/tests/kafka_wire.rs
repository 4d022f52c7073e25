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
    produce_to(stream, topic, 0, records, correlation_id)
}

fn produce_to(
    stream: &mut TcpStream,
    topic: &str,
    partition_index: i32,
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
    partition.index = partition_index;
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

/// A v2 batch of `count` records from an idempotent producer.
fn idempotent_batch(producer_id: i64, epoch: i16, sequence: i32, count: i32) -> bytes::Bytes {
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i64::from(i),
            sequence: sequence + i,
            timestamp: 1_700_000_000_000,
            key: Some(bytes::Bytes::from(format!("k{}", sequence + i))),
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    out.freeze()
}

fn init_producer_id(stream: &mut TcpStream) -> (i16, i64, i16) {
    use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse};
    let version = 4;
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::InitProducerId as i16;
    header.request_api_version = version;
    header.correlation_id = 77;
    let mut request = InitProducerIdRequest::default();
    request.transactional_id = None;
    request.transaction_timeout_ms = 60_000;
    request.producer_id = kafka_protocol::messages::ProducerId(-1);
    request.producer_epoch = -1;
    let mut body = BytesMut::new();
    header
        .encode(
            &mut body,
            ApiKey::InitProducerId.request_header_version(version),
        )
        .unwrap();
    request.encode(&mut body, version).unwrap();
    stream.write_all(&frame(&body)).unwrap();
    let mut response = bytes::Bytes::from(read_frame(stream).expect("a response"));
    assert_eq!(response.get_i32(), 77);
    let header_version = ApiKey::InitProducerId.response_header_version(version);
    if header_version >= 1 {
        // The flexible header's tagged fields: none.
        assert_eq!(response.get_u8(), 0);
    }
    let decoded = InitProducerIdResponse::decode(&mut response, version).unwrap();
    (
        decoded.error_code,
        decoded.producer_id.0,
        decoded.producer_epoch,
    )
}

/// Kafka's idempotent producer on the wire: duplicates get their original
/// offsets, gaps get OUT_OF_ORDER_SEQUENCE_NUMBER, an old epoch gets
/// INVALID_PRODUCER_EPOCH, and the state survives a restart of the agent.
#[test]
fn idempotent_producer_sequences_are_checked_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--flush-interval-ms", "10"];
    let agent = AgentProcess::start(dir.path(), &args);
    let listing = Command::new("kcat")
        .args(["-b", &agent.address(), "-L", "-t", "idem"])
        .output()
        .unwrap();
    assert!(listing.status.success());
    let mut stream = connect(&agent);
    let (error, pid, epoch) = init_producer_id(&mut stream);
    assert_eq!((error, epoch), (0, 0));
    assert!(pid >= 0);
    let (_, second_pid, _) = init_producer_id(&mut stream);
    assert_ne!(pid, second_pid, "every InitProducerId gets a fresh id");

    let first = idempotent_batch(pid, 0, 0, 3);
    assert_eq!(produce(&mut stream, "idem", first.clone(), 1), (0, 0));
    assert_eq!(
        produce(&mut stream, "idem", first.clone(), 2),
        (0, 0),
        "a retried batch is answered with its original offset"
    );
    assert_eq!(
        produce(&mut stream, "idem", idempotent_batch(pid, 0, 3, 2), 3),
        (0, 3)
    );
    let (error, _) = produce(&mut stream, "idem", idempotent_batch(pid, 0, 9, 1), 4);
    assert_eq!(error, 45, "OUT_OF_ORDER_SEQUENCE_NUMBER for a gap");
    // A new epoch starts again at sequence 0; the old epoch is fenced.
    let bumped = idempotent_batch(pid, 1, 0, 4);
    assert_eq!(produce(&mut stream, "idem", bumped.clone(), 5), (0, 5));
    let (error, _) = produce(&mut stream, "idem", idempotent_batch(pid, 0, 5, 1), 6);
    assert_eq!(error, 47, "INVALID_PRODUCER_EPOCH for an old epoch");
    let port = agent.port;
    drop(stream);
    drop(agent); // SIGKILL

    let agent = AgentProcess::start_on(dir.path(), port, &args, &[]);
    let mut stream = connect(&agent);
    assert_eq!(
        produce(&mut stream, "idem", bumped, 7),
        (0, 5),
        "the duplicate is recognised by the restarted agent"
    );
    assert_eq!(
        produce(&mut stream, "idem", idempotent_batch(pid, 1, 4, 1), 8),
        (0, 9)
    );
    let (error, _) = produce(&mut stream, "idem", idempotent_batch(pid, 1, 4, 1), 9);
    assert_eq!(error, 0, "still a duplicate, not an error");
    let consumed = Command::new("kcat")
        .args([
            "-b",
            &agent.address(),
            "-C",
            "-t",
            "idem",
            "-o",
            "beginning",
        ])
        .args(["-e", "-q", "-f", "%o:%k\n"])
        .output()
        .unwrap();
    let listed = String::from_utf8(consumed.stdout).unwrap();
    assert_eq!(
        listed, "0:k0\n1:k1\n2:k2\n3:k3\n4:k4\n5:k0\n6:k1\n7:k2\n8:k3\n9:k4\n",
        "each batch stored once"
    );
}

/// Sends a Fetch v12 for partitions `(index, partition_max_bytes)` of `topic`
/// from offset 0; returns the top-level error and, per partition, (error, high
/// watermark, number of batches returned).
fn fetch(
    stream: &mut TcpStream,
    topic: &str,
    partitions: &[(i32, i32)],
    max_bytes: i32,
    session_id: i32,
) -> (i16, Vec<(i16, i64, usize)>) {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};
    let version = 12;
    let mut header = RequestHeader::default();
    header.request_api_key = ApiKey::Fetch as i16;
    header.request_api_version = version;
    header.correlation_id = 5;
    let mut request = FetchRequest::default();
    request.replica_id = kafka_protocol::messages::BrokerId(-1);
    request.max_wait_ms = 10;
    request.min_bytes = 1;
    request.max_bytes = max_bytes;
    request.session_id = session_id;
    request.session_epoch = -1;
    let mut fetch_topic = FetchTopic::default();
    fetch_topic.topic = TopicName(StrBytes::from_string(topic.to_owned()));
    for (index, partition_max_bytes) in partitions {
        let mut partition = FetchPartition::default();
        partition.partition = *index;
        partition.fetch_offset = 0;
        partition.partition_max_bytes = *partition_max_bytes;
        fetch_topic.partitions.push(partition);
    }
    request.topics = vec![fetch_topic];
    let mut body = BytesMut::new();
    header
        .encode(&mut body, ApiKey::Fetch.request_header_version(version))
        .unwrap();
    request.encode(&mut body, version).unwrap();
    stream.write_all(&frame(&body)).unwrap();
    let mut response = bytes::Bytes::from(read_frame(stream).expect("a fetch response"));
    assert_eq!(response.get_i32(), 5);
    assert_eq!(
        response.get_u8(),
        0,
        "no tagged fields in the response header"
    );
    let decoded = FetchResponse::decode(&mut response, version).unwrap();
    let partitions = decoded
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            let records = p.records.clone().unwrap_or_default();
            let mut batches = 0;
            let mut at = 0usize;
            while at + 12 <= records.len() {
                let len = i32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap());
                at += 12 + len as usize;
                batches += 1;
            }
            (p.error_code, p.high_watermark, batches)
        })
        .collect();
    (decoded.error_code, partitions)
}

/// Fetch honours `partition_max_bytes` and `max_bytes` as Kafka does: at least
/// the first batch, then nothing more once the response is full; and an unknown
/// fetch session is refused.
#[test]
fn fetch_limits_and_sessions_follow_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        dir.path(),
        &["--flush-interval-ms", "10", "--num-partitions", "2"],
    );
    let listing = Command::new("kcat")
        .args(["-b", &agent.address(), "-L", "-t", "limits"])
        .output()
        .unwrap();
    assert!(listing.status.success());
    let mut stream = connect(&agent);
    for i in 0..5 {
        // acks=all: each batch is committed before the next, as its own chunk.
        assert_eq!(
            produce_to(&mut stream, "limits", 0, record_batch(3), 10 + i),
            (0, i64::from(i) * 3)
        );
        assert_eq!(
            produce_to(&mut stream, "limits", 1, record_batch(3), 20 + i),
            (0, i64::from(i) * 3)
        );
    }
    // Tiny limits: the first batch still comes back whole; the response is then
    // full, so partition 1 reports its high watermark and no records.
    let (error, partitions) = fetch(&mut stream, "limits", &[(0, 1), (1, 1 << 20)], 1, 0);
    assert_eq!(error, 0);
    assert_eq!(partitions, vec![(0, 15, 1), (0, 15, 0)]);
    // A per-partition limit alone: one batch from each.
    let (_, partitions) = fetch(&mut stream, "limits", &[(0, 1), (1, 1)], 1 << 20, 0);
    assert_eq!(partitions, vec![(0, 15, 1), (0, 15, 1)]);
    // Room for everything: all five batches of each.
    let (_, partitions) = fetch(
        &mut stream,
        "limits",
        &[(0, 1 << 20), (1, 1 << 20)],
        1 << 20,
        0,
    );
    assert_eq!(partitions, vec![(0, 15, 5), (0, 15, 5)]);
    let (error, partitions) = fetch(&mut stream, "limits", &[(0, 1 << 20)], 1 << 20, 1234);
    assert_eq!(error, 70, "FETCH_SESSION_ID_NOT_FOUND");
    assert!(partitions.is_empty());
    assert_serving(&agent);
}
