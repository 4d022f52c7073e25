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
use kafka_protocol::messages::ProduceResponse;
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use support::wire::{self, TestRecord, Wire};
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

/// What a connection that was sent bad input did: closed without a word, or
/// answered (frames whose correlation ids are returned) and then closed.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Closed,
    Answered(Vec<i32>),
}

/// Sends `bytes` on a fresh connection. With `half_close`, the write side is
/// shut afterwards (for input that leaves the broker waiting for more bytes);
/// without, the broker itself must answer or close. Then reads what comes back
/// until the broker closes: every answer must be a whole frame.
fn send_bad(agent: &AgentProcess, bytes: &[u8], half_close: bool) -> Outcome {
    let mut stream = connect(agent);
    // The broker may close while we are still writing: that is an answer too.
    let _ = stream.write_all(bytes);
    if half_close {
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    let mut answered = Vec::new();
    while let Some(frame) = read_frame(&mut stream) {
        assert!(frame.len() >= 4, "an answer without a correlation id");
        answered.push(i32::from_be_bytes(frame[..4].try_into().unwrap()));
        // Whatever was answered, the rest of the input is ours to end.
        let _ = stream.shutdown(std::net::Shutdown::Write);
    }
    if answered.is_empty() {
        Outcome::Closed
    } else {
        Outcome::Answered(answered)
    }
}

fn assert_closed_without_answer(agent: &AgentProcess, what: &str, bytes: &[u8]) {
    assert_eq!(
        send_bad(agent, bytes, false),
        Outcome::Closed,
        "{what}: expected the connection closed"
    );
}

/// A request header (non-flexible, v1) for `api` v`version`, then `body`.
fn raw_request(api: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut request = BytesMut::new();
    request.put_i16(api);
    request.put_i16(version);
    request.put_i32(correlation_id);
    request.put_i16(-1); // no client id
    request.put_slice(body);
    frame(&request)
}

/// The good client's round: ApiVersions and a Metadata answered on the
/// connection it has kept open since the start.
fn assert_good_client_served(good: &mut Wire, round: i32) {
    let versions: ApiVersionsResponse = good.call(
        ApiKey::ApiVersions,
        3,
        round * 2,
        &ApiVersionsRequest::default(),
    );
    assert_eq!(versions.error_code, 0);
    let metadata: kafka_protocol::messages::MetadataResponse = good.call(
        ApiKey::Metadata,
        12,
        round * 2 + 1,
        &wire::metadata_request(&["intact"]),
    );
    assert_eq!(metadata.topics[0].error_code, 0);
    assert_eq!(metadata.topics[0].partitions.len(), 1);
}

/// Bad input of every kind: each bad connection gets an error answer or is
/// closed, while a good client connected throughout keeps being served, the
/// agent never stops, and data stored before reads back byte for byte.
#[test]
fn bad_input_closes_the_connection_and_the_agent_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    // A small socket.request.max.bytes, so an oversized frame is cheap to send.
    let max_frame = 64 * 1024;
    let agent = AgentProcess::start(
        dir.path(),
        &[
            "--flush-interval-ms",
            "10",
            "--socket-request-max-bytes",
            &max_frame.to_string(),
        ],
    );
    let mut good = Wire::connect(&agent.address());
    let mut round = 1;
    assert_good_client_served(&mut good, round);

    // Known data first: five acks=all batches.
    let mut sent = Vec::new();
    for b in 0..5 {
        let records: Vec<TestRecord> = (0..3)
            .map(|i| {
                TestRecord::new(
                    &format!("k{b}-{i}"),
                    &format!("v{b}-{i}"),
                    1_700_000_000_000 + i64::from(b),
                )
            })
            .collect();
        let batch = wire::batch(&records, None);
        let response: ProduceResponse = good.call(
            ApiKey::Produce,
            7,
            100 + b,
            &wire::produce_request("intact", 0, batch.clone(), -1),
        );
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(
            (partition.error_code, partition.base_offset),
            (0, i64::from(b) * 3)
        );
        sent.push(batch);
    }
    let before = wire::fetch_all(&mut good, "intact", 0, 15);
    assert_eq!(before.len(), 5);
    for ((_, _, stored), produced) in before.iter().zip(&sent) {
        assert_eq!(wire::crc_covered(stored), wire::crc_covered(produced));
    }

    let mut check = |what: &str, good: &mut Wire| {
        round += 1;
        eprintln!("checked after: {what}");
        assert_good_client_served(good, round);
    };

    // Frames the broker must refuse outright, closing the connection.
    let mut oversized = ((max_frame + 1) as u32).to_be_bytes().to_vec();
    oversized.extend(std::iter::repeat_n(0u8, max_frame + 1));
    assert_closed_without_answer(&agent, "oversized frame (max + 1)", &oversized);
    check("oversized", &mut good);
    assert_closed_without_answer(&agent, "200 MiB length", &(200u32 << 20).to_be_bytes());
    assert_closed_without_answer(&agent, "negative length", &[0xff, 0xff, 0xff, 0xff]);
    assert_closed_without_answer(&agent, "i32::MIN length", &[0x80, 0, 0, 0]);
    assert_closed_without_answer(&agent, "empty frame", &frame(&[]));
    assert_closed_without_answer(&agent, "frame shorter than a header", &frame(&[0, 18, 0]));
    check("lengths", &mut good);
    assert_closed_without_answer(&agent, "unknown api key", &raw_request(999, 0, 1, &[]));
    assert_closed_without_answer(&agent, "negative api key", &raw_request(-7, 0, 1, &[]));
    assert_closed_without_answer(
        &agent,
        "api not served",
        &raw_request(ApiKey::AlterReplicaLogDirs as i16, 1, 1, &[]),
    );
    assert_closed_without_answer(
        &agent,
        "produce version not served",
        &raw_request(ApiKey::Produce as i16, 2, 1, &[]),
    );
    assert_closed_without_answer(
        &agent,
        "unknown metadata version",
        &raw_request(ApiKey::Metadata as i16, 99, 1, &[]),
    );
    assert_closed_without_answer(
        &agent,
        "negative version",
        &raw_request(ApiKey::Fetch as i16, -1, 1, &[]),
    );
    check("unknown apis and versions", &mut good);
    let mut truncated = api_versions_request(3, 7);
    truncated.truncate(truncated.len() - 5);
    assert_eq!(
        send_bad(&agent, &truncated, true),
        Outcome::Closed,
        "truncated frame"
    );
    assert_closed_without_answer(
        &agent,
        "malformed body",
        &raw_request(ApiKey::Metadata as i16, 9, 5, &[0x7f; 3]),
    );
    // Array counts far beyond the frame: the decoder must fail, not reserve
    // room for two billion elements.
    assert_closed_without_answer(
        &agent,
        "metadata v1 claiming i32::MAX topics",
        &raw_request(
            ApiKey::Metadata as i16,
            1,
            5,
            &[0x7f, 0xff, 0xff, 0xff, 0, 1, b'x'],
        ),
    );
    let mut produce_body = BytesMut::new();
    produce_body.put_i16(-1); // no transactional id
    produce_body.put_i16(-1); // acks
    produce_body.put_i32(30_000);
    produce_body.put_i32(i32::MAX); // topics
    assert_closed_without_answer(
        &agent,
        "produce claiming i32::MAX topics",
        &raw_request(ApiKey::Produce as i16, 7, 5, &produce_body),
    );
    // Flexible (compact) arrays: Metadata v12 claiming 2^32 - 2 topics.
    let mut flexible = BytesMut::new();
    flexible.put_i16(ApiKey::Metadata as i16);
    flexible.put_i16(12);
    flexible.put_i32(5);
    flexible.put_i16(-1); // client id (a v2 header keeps it non-compact)
    flexible.put_u8(0); // header tagged fields
    flexible.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]); // varint u32::MAX
    assert_closed_without_answer(
        &agent,
        "metadata v12 claiming 2^32 - 2 topics",
        &frame(&flexible),
    );
    check("malformed bodies", &mut good);

    // A batch whose CRC does not match gets CORRUPT_MESSAGE, on a connection
    // that stays usable.
    let mut bad_crc = sent[0].to_vec();
    let last = bad_crc.len() - 2;
    bad_crc[last] ^= 0x01;
    let mut stream = connect(&agent);
    assert_eq!(
        produce(&mut stream, "intact", bytes::Bytes::from(bad_crc), 1).0,
        2
    );
    let created: kafka_protocol::messages::MetadataResponse = good.call(
        ApiKey::Metadata,
        12,
        900,
        &wire::metadata_request(&["bomb", "big"]),
    );
    assert!(created.topics.iter().all(|t| t.error_code == 0));
    // A batch claiming i32::MAX records with a correct CRC but holding one is
    // refused with INVALID_RECORD, as Kafka refuses it (and reading timestamps
    // afterwards, ListOffsets by timestamp, must not bring the agent down).
    let mut bomb =
        wire::batch(&[TestRecord::new("bomb", "bomb", 1_700_000_000_000)], None).to_vec();
    bomb[23..27].copy_from_slice(&(i32::MAX - 1).to_be_bytes()); // lastOffsetDelta
    bomb[57..61].copy_from_slice(&i32::MAX.to_be_bytes()); // records count
    let crc = crc32c::crc32c(&bomb[21..]);
    bomb[17..21].copy_from_slice(&crc.to_be_bytes());
    let (error, _) = produce(&mut stream, "bomb", bytes::Bytes::from(bomb), 2);
    assert_eq!(
        error, 87,
        "INVALID_RECORD for a batch claiming i32::MAX records"
    );
    // One record over i32::MAX + 1 offsets: the range check must not overflow.
    let mut wide =
        wire::batch(&[TestRecord::new("wide", "wide", 1_700_000_000_000)], None).to_vec();
    wide[23..27].copy_from_slice(&i32::MAX.to_be_bytes()); // lastOffsetDelta
    let crc = crc32c::crc32c(&wide[21..]);
    wide[17..21].copy_from_slice(&crc.to_be_bytes());
    let (error, _) = produce(&mut stream, "bomb", bytes::Bytes::from(wide), 3);
    assert_eq!(
        error, 87,
        "INVALID_RECORD for one record spanning 2^31 offsets"
    );
    let offsets: kafka_protocol::messages::ListOffsetsResponse = Wire { stream }.call(
        ApiKey::ListOffsets,
        7,
        4,
        &wire::list_offsets_request("bomb", 0, 1_600_000_000_000),
    );
    assert_eq!(offsets.topics[0].partitions.len(), 1);
    check("bad batches", &mut good);

    // An ApiVersions version the broker does not know gets the v0 fallback answer.
    let mut stream = connect(&agent);
    stream
        .write_all(&raw_request(ApiKey::ApiVersions as i16, 99, 77, &[]))
        .unwrap();
    let response = read_frame(&mut stream).expect("a fallback response");
    let mut bytes = bytes::Bytes::from(response);
    assert_eq!(bytes.get_i32(), 77);
    let decoded = ApiVersionsResponse::decode(&mut bytes, 0).unwrap();
    assert_eq!(decoded.error_code, 35, "UNSUPPORTED_VERSION");
    assert!(!decoded.api_keys.is_empty());
    drop(stream);

    // A frame at the limit is served: the limit is the setting, not lower.
    let filler = "x".repeat(max_frame - 400);
    let mut record = TestRecord::new("big", &filler, 1_700_000_000_000);
    record.headers.clear();
    let big = wire::batch(&[record], None);
    let request = wire::request_frame(
        ApiKey::Produce,
        7,
        9,
        &wire::produce_request("big", 0, big, -1),
    );
    assert!(request.len() - 4 <= max_frame);
    let response: ProduceResponse = {
        let mut big_client = Wire::connect(&agent.address());
        big_client.send(&request);
        let frame = big_client
            .read_frame()
            .expect("an answer to a frame within the limit");
        wire::decode_response(ApiKey::Produce, 7, frame).1
    };
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    check("frame sizes", &mut good);

    // Random garbage, many shapes, from a logged seed. Every connection must
    // end closed by the broker; whatever it answered must be whole frames
    // carrying the request's correlation id.
    let rng = SeededRng::new(0xbad_1dea);
    eprintln!("garbage seed {}", rng.seed());
    let mut closed = 0;
    for round in 0..60 {
        let len = rng.below(512) as usize;
        let garbage: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
        if round % 2 == 0 {
            // A plausible length prefix makes the garbage reach the decoder,
            // which must answer or close without waiting for more.
            match send_bad(&agent, &frame(&garbage), false) {
                Outcome::Closed => closed += 1,
                Outcome::Answered(ids) => {
                    assert!(garbage.len() >= 8, "round {round}: answered a short frame");
                    let sent_id = i32::from_be_bytes(garbage[4..8].try_into().unwrap());
                    assert_eq!(ids, vec![sent_id], "round {round}");
                }
            }
        } else {
            // Unframed: its first bytes are the length; the broker may wait for
            // the rest, so the write side is closed.
            if send_bad(&agent, &garbage, true) == Outcome::Closed {
                closed += 1;
            }
        }
        if round % 10 == 9 {
            check("garbage", &mut good);
        }
    }
    eprintln!("garbage: {closed} of 60 connections closed without an answer");
    assert!(
        closed >= 50,
        "only {closed} of 60 garbage connections were refused"
    );

    // The stored data is intact, byte for byte, and nothing was added.
    let after = wire::fetch_all(&mut good, "intact", 0, 15);
    assert_eq!(after, before, "stored batches changed");
    let latest: kafka_protocol::messages::ListOffsetsResponse = good.call(
        ApiKey::ListOffsets,
        7,
        5_000,
        &wire::list_offsets_request("intact", 0, -1),
    );
    assert_eq!(
        latest.topics[0].partitions[0].offset, 15,
        "no offsets taken"
    );
    assert_serving(&agent);
}

/// Requests of every kind pipelined on one connection — acks=all produces
/// (which wait for a flush), acks=0 produces (which get no answer), Metadata,
/// Fetch, ListOffsets, ApiVersions — are answered in request order, each with
/// its own correlation id, and each answer reflects the requests before it.
#[test]
fn pipelined_requests_are_answered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    // A slow flush: acks=all answers lag well behind the requests after them.
    let agent = AgentProcess::start(dir.path(), &["--flush-interval-ms", "150"]);
    let mut wire = Wire::connect(&agent.address());
    let created: kafka_protocol::messages::MetadataResponse =
        wire.call(ApiKey::Metadata, 12, 1, &wire::metadata_request(&["pipe"]));
    assert_eq!(created.topics[0].error_code, 0);

    enum Expect {
        /// An acks=all produce answered with this base offset.
        Produce(i64),
        Metadata,
        /// A fetch from 0 / a ListOffsets (at this version) for the latest
        /// offset: the high watermark is at least the floor (every acks=all
        /// produce before it is committed).
        Fetch(i64),
        ListOffsets(i64, i16),
        ApiVersions(i16),
    }
    struct Burst {
        bytes: Vec<u8>,
        expected: Vec<(i32, Expect)>,
        sent: Vec<bytes::Bytes>,
        next_offset: i64,
        committed_floor: i64,
        correlation_id: i32,
    }
    impl Burst {
        fn id(&mut self) -> i32 {
            self.correlation_id += 1;
            self.correlation_id
        }
        fn produce(&mut self, acks: i16, count: i32, label: &str) {
            let records: Vec<TestRecord> = (0..count)
                .map(|i| {
                    TestRecord::new(
                        &format!("{label}-{i}"),
                        &format!("acks={acks}"),
                        1_700_000_000_000,
                    )
                })
                .collect();
            let batch = wire::batch(&records, None);
            let id = self.id();
            self.bytes.extend(wire::request_frame(
                ApiKey::Produce,
                7,
                id,
                &wire::produce_request("pipe", 0, batch.clone(), acks),
            ));
            self.sent.push(batch);
            let base = self.next_offset;
            self.next_offset += i64::from(count);
            if acks != 0 {
                self.committed_floor = self.next_offset;
                self.expected.push((id, Expect::Produce(base)));
            }
        }
        fn request(&mut self, api: ApiKey, version: i16, request: &impl Encodable, expect: Expect) {
            let id = self.id();
            self.bytes
                .extend(wire::request_frame(api, version, id, request));
            self.expected.push((id, expect));
        }
    }
    let mut burst = Burst {
        bytes: Vec::new(),
        expected: Vec::new(),
        sent: Vec::new(),
        next_offset: 0,
        committed_floor: 0,
        correlation_id: 10,
    };
    for round in 0..12 {
        // Vary the order from round to round.
        if round % 2 == 0 {
            burst.produce(-1, 3, &format!("all-{round}"));
            burst.produce(0, 2, &format!("zero-{round}"));
        } else {
            burst.produce(0, 2, &format!("zero-{round}"));
            burst.produce(-1, 3, &format!("all-{round}"));
        }
        burst.request(
            ApiKey::Metadata,
            12,
            &wire::metadata_request(&["pipe"]),
            Expect::Metadata,
        );
        let floor = burst.committed_floor;
        burst.request(
            ApiKey::Fetch,
            12,
            &wire::fetch_request("pipe", 0, 0, 100, 1),
            Expect::Fetch(floor),
        );
        let version = if round % 3 == 0 { 1 } else { 7 };
        burst.request(
            ApiKey::ListOffsets,
            version,
            &wire::list_offsets_request("pipe", 0, -1),
            Expect::ListOffsets(floor, version),
        );
        if round % 4 == 3 {
            let version = (round / 4) as i16;
            let mut request = ApiVersionsRequest::default();
            if version >= 3 {
                request.client_software_name = StrBytes::from_static_str("fjord-test");
                request.client_software_version = StrBytes::from_static_str("1");
            }
            burst.request(
                ApiKey::ApiVersions,
                version,
                &request,
                Expect::ApiVersions(version),
            );
        }
    }
    // A last acks=0 produce, then an ApiVersions: the answer after the last
    // ListOffsets must be that ApiVersions, not anything for the acks=0.
    burst.produce(0, 1, "last");
    let mut request = ApiVersionsRequest::default();
    request.client_software_name = StrBytes::from_static_str("fjord-test");
    request.client_software_version = StrBytes::from_static_str("1");
    burst.request(ApiKey::ApiVersions, 3, &request, Expect::ApiVersions(3));
    let Burst {
        bytes,
        expected,
        sent: sent_batches,
        next_offset,
        ..
    } = burst;
    wire.send(&bytes);

    for (id, expect) in &expected {
        let frame = wire.read_frame().expect("an answer");
        assert_eq!(
            wire::correlation_id(&frame),
            *id,
            "answers in request order"
        );
        match expect {
            Expect::Produce(base) => {
                let (_, response): (_, ProduceResponse) =
                    wire::decode_response(ApiKey::Produce, 7, frame);
                let partition = &response.responses[0].partition_responses[0];
                assert_eq!(
                    (partition.error_code, partition.base_offset),
                    (0, *base),
                    "request {id}"
                );
            }
            Expect::Metadata => {
                let (_, response): (_, kafka_protocol::messages::MetadataResponse) =
                    wire::decode_response(ApiKey::Metadata, 12, frame);
                assert_eq!(response.topics[0].error_code, 0);
            }
            Expect::Fetch(floor) => {
                let (_, response): (_, kafka_protocol::messages::FetchResponse) =
                    wire::decode_response(ApiKey::Fetch, 12, frame);
                let partition = &response.responses[0].partitions[0];
                assert_eq!(partition.error_code, 0);
                assert!(
                    partition.high_watermark >= *floor,
                    "request {id}: hwm {} < {floor}",
                    partition.high_watermark
                );
                let batches = wire::split_batches(&partition.records.clone().unwrap_or_default());
                assert_eq!(
                    batches.first().map(|b| b.0),
                    Some(0),
                    "request {id}: data from offset 0"
                );
            }
            Expect::ListOffsets(floor, version) => {
                let (_, response): (_, kafka_protocol::messages::ListOffsetsResponse) =
                    wire::decode_response(ApiKey::ListOffsets, *version, frame);
                let partition = &response.topics[0].partitions[0];
                assert_eq!(partition.error_code, 0);
                assert!(
                    partition.offset >= *floor,
                    "request {id}: latest {} < {floor}",
                    partition.offset
                );
            }
            Expect::ApiVersions(version) => {
                let (_, response): (_, ApiVersionsResponse) =
                    wire::decode_response(ApiKey::ApiVersions, *version, frame);
                assert_eq!(response.error_code, 0);
            }
        }
    }
    // Every batch, acks=0 ones included, is stored once, in request order,
    // byte for byte.
    let stored = wire::fetch_all(&mut wire, "pipe", 0, next_offset);
    assert_eq!(stored.len(), sent_batches.len());
    for ((_, _, stored), sent) in stored.iter().zip(&sent_batches) {
        assert_eq!(wire::crc_covered(stored), wire::crc_covered(sent));
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
    assert_serving(&agent);
}

/// Fetch sessions (KIP-227) are not created (see `handlers/fetch.rs`): a
/// request asking for a new session, or for none, or closing one, gets a full
/// answer with session id 0; an incremental request names a session that
/// cannot exist and gets FETCH_SESSION_ID_NOT_FOUND.
#[test]
fn fetch_sessions_are_refused_as_kafka_allows() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &["--flush-interval-ms", "10"]);
    let mut wire = Wire::connect(&agent.address());
    let created: kafka_protocol::messages::MetadataResponse = wire.call(
        ApiKey::Metadata,
        12,
        1,
        &wire::metadata_request(&["sessions"]),
    );
    assert_eq!(created.topics[0].error_code, 0);
    let records = [TestRecord::new("k", "v", 1_700_000_000_000)];
    let response: ProduceResponse = wire.call(
        ApiKey::Produce,
        7,
        1,
        &wire::produce_request("sessions", 0, wire::batch(&records, None), -1),
    );
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    let mut fetch_with = |session_id: i32, session_epoch: i32, version: i16| {
        let mut request = wire::fetch_request("sessions", 0, 0, 10, 1);
        request.session_id = session_id;
        request.session_epoch = session_epoch;
        let response: kafka_protocol::messages::FetchResponse =
            wire.call(ApiKey::Fetch, version, 2, &request);
        let batches: usize = response
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| wire::split_batches(&p.records.clone().unwrap_or_default()).len())
            .sum();
        (
            response.error_code,
            response.session_id,
            response.responses.len(),
            batches,
        )
    };
    for version in [7, 12] {
        // epoch 0: "create a session" — refused by answering session id 0, in full.
        assert_eq!(
            fetch_with(0, 0, version),
            (0, 0, 1, 1),
            "v{version} new session"
        );
        // epoch -1: a sessionless full fetch.
        assert_eq!(
            fetch_with(0, -1, version),
            (0, 0, 1, 1),
            "v{version} no session"
        );
        // A full request closing a session: nothing to close, a full answer.
        assert_eq!(
            fetch_with(1234, -1, version),
            (0, 0, 1, 1),
            "v{version} close"
        );
        // Incremental requests name sessions this broker never created.
        assert_eq!(
            fetch_with(1234, 1, version),
            (70, 0, 0, 0),
            "v{version} unknown session"
        );
        assert_eq!(
            fetch_with(0, 5, version),
            (70, 0, 0, 0),
            "v{version} incremental without id"
        );
    }
    // librdkafka fetches on as usual.
    let consumed = Command::new("kcat")
        .args([
            "-b",
            &agent.address(),
            "-C",
            "-t",
            "sessions",
            "-o",
            "beginning",
        ])
        .args(["-e", "-q", "-f", "%k=%s\n"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&consumed.stdout), "k=v\n");
}

/// acks=0 produces land in the log, and no answer is ever sent for them: the
/// first answer on the connection is the request sent after them.
#[test]
fn acks_0_produces_are_stored_and_never_answered() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &["--flush-interval-ms", "20"]);
    let mut wire = Wire::connect(&agent.address());
    let created: kafka_protocol::messages::MetadataResponse = wire.call(
        ApiKey::Metadata,
        12,
        1,
        &wire::metadata_request(&["fire-and-forget"]),
    );
    assert_eq!(created.topics[0].error_code, 0);
    let mut sent = Vec::new();
    for i in 0..50 {
        let records: Vec<TestRecord> = (0..4)
            .map(|r| {
                TestRecord::new(
                    &format!("k{i}-{r}"),
                    &format!("v{i}-{r}"),
                    1_700_000_000_000 + i64::from(i),
                )
            })
            .collect();
        let batch = wire::batch(&records, None);
        wire.send(&wire::request_frame(
            ApiKey::Produce,
            if i % 2 == 0 { 7 } else { 9 },
            100 + i,
            &wire::produce_request("fire-and-forget", 0, batch.clone(), 0),
        ));
        sent.push(batch);
    }
    let versions: ApiVersionsResponse =
        wire.call(ApiKey::ApiVersions, 3, 7, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
    let stored = wire::fetch_all(&mut wire, "fire-and-forget", 0, 200);
    assert_eq!(stored.len(), sent.len());
    for (i, ((base, count, stored), sent)) in stored.iter().zip(&sent).enumerate() {
        assert_eq!((*base, *count), (i as i64 * 4, 4));
        assert_eq!(wire::crc_covered(stored), wire::crc_covered(sent));
    }
    // Still nothing else on the wire: the next answer is the next request's.
    let versions: ApiVersionsResponse =
        wire.call(ApiKey::ApiVersions, 3, 8, &ApiVersionsRequest::default());
    assert_eq!(versions.error_code, 0);
}

/// A fetch long-polling an empty partition (min_bytes 1, a max_wait far longer
/// than the test) is answered, with the data, once a produce to the partition
/// commits: the commit wakes it. (Were it not woken, the read would time out.)
#[test]
fn a_long_polling_fetch_is_woken_by_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &["--flush-interval-ms", "20"]);
    let mut producer = Wire::connect(&agent.address());
    let created: kafka_protocol::messages::MetadataResponse = producer.call(
        ApiKey::Metadata,
        12,
        1,
        &wire::metadata_request(&["long-poll"]),
    );
    assert_eq!(created.topics[0].error_code, 0);
    let mut waiter = Wire::connect(&agent.address());
    // Ten minutes: far beyond the waiter's 60 s read timeout.
    waiter.send(&wire::request_frame(
        ApiKey::Fetch,
        12,
        5,
        &wire::fetch_request("long-poll", 0, 0, 600_000, 1),
    ));
    // Give the fetch time to park. (If it has not yet, it finds the data at once
    // below, which is as correct; what must not happen is an empty answer now.)
    std::thread::sleep(Duration::from_millis(500));
    waiter.stream.set_nonblocking(true).unwrap();
    let mut peek = [0u8; 1];
    match waiter.stream.peek(&mut peek) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        other => panic!("the fetch of an empty partition answered before max_wait: {other:?}"),
    }
    waiter.stream.set_nonblocking(false).unwrap();
    let records = [TestRecord::new("wake", "up", 1_700_000_000_000)];
    let batch = wire::batch(&records, None);
    let response: ProduceResponse = producer.call(
        ApiKey::Produce,
        7,
        2,
        &wire::produce_request("long-poll", 0, batch.clone(), -1),
    );
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    let frame = waiter.read_frame().expect("the long poll's answer");
    let (id, response): (_, kafka_protocol::messages::FetchResponse) =
        wire::decode_response(ApiKey::Fetch, 12, frame);
    assert_eq!(id, 5);
    let partition = &response.responses[0].partitions[0];
    assert_eq!((partition.error_code, partition.high_watermark), (0, 1));
    let batches = wire::split_batches(&partition.records.clone().unwrap_or_default());
    assert_eq!(batches.len(), 1, "the answer carries the committed batch");
    assert_eq!(wire::crc_covered(&batches[0].2), wire::crc_covered(&batch));
}

/// An idempotent producer's retry of a committed batch, sent to the agent that
/// took the partition over (a second agent on the same SQLite file and bucket,
/// after the first was killed), is answered with the original offset and
/// stored once; the sequence continues from there.
#[test]
fn an_idempotent_retry_after_a_leader_change_gets_its_original_offset() {
    let dir = tempfile::tempdir().unwrap();
    let metadata = format!("sqlite://{}", dir.path().join("shared.db").display());
    let bucket = format!("file://{}", dir.path().join("bucket").display());
    let args = [
        "--flush-interval-ms",
        "10",
        "--metadata-url",
        &metadata,
        "--storage-url",
        &bucket,
        "--lease-timeout-ms",
        "500",
        "--heartbeat-interval-ms",
        "100",
        "--balance-interval-ms",
        "100",
    ];
    let first = AgentProcess::start(&dir.path().join("a"), &args);
    let mut stream = connect(&first);
    let listing = Command::new("kcat")
        .args(["-b", &first.address(), "-L", "-t", "handover"])
        .output()
        .unwrap();
    assert!(listing.status.success());
    let (error, pid, epoch) = init_producer_id(&mut stream);
    assert_eq!(error, 0);
    let batch = idempotent_batch(pid, epoch, 0, 3);
    assert_eq!(produce(&mut stream, "handover", batch.clone(), 1), (0, 0));
    assert_eq!(
        produce(
            &mut stream,
            "handover",
            idempotent_batch(pid, epoch, 3, 2),
            2
        ),
        (0, 3)
    );
    drop(stream);
    drop(first); // SIGKILL: its lease lapses, the second agent takes over

    let second = AgentProcess::start(&dir.path().join("b"), &args);
    let mut stream = connect(&second);
    let retried = idempotent_batch(pid, epoch, 3, 2);
    let mut answer = (-1, -1);
    for attempt in 0..300 {
        answer = produce(&mut stream, "handover", retried.clone(), 10 + attempt);
        // NOT_LEADER_OR_FOLLOWER until the dead agent's lease lapses.
        if answer.0 != 6 {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        answer,
        (0, 3),
        "the retry is a duplicate with its original offset"
    );
    assert_eq!(
        produce(&mut stream, "handover", batch, 400),
        (0, 0),
        "an older duplicate too"
    );
    assert_eq!(
        produce(
            &mut stream,
            "handover",
            idempotent_batch(pid, epoch, 5, 1),
            401
        ),
        (0, 5),
        "the sequence continues"
    );
    let (error, _) = produce(
        &mut stream,
        "handover",
        idempotent_batch(pid, epoch, 9, 1),
        402,
    );
    assert_eq!(
        error, 45,
        "OUT_OF_ORDER_SEQUENCE_NUMBER for a gap, at the new leader"
    );
    let consumed = Command::new("kcat")
        .args([
            "-b",
            &second.address(),
            "-C",
            "-t",
            "handover",
            "-o",
            "beginning",
        ])
        .args(["-e", "-q", "-f", "%o:%k\n"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(consumed.stdout).unwrap(),
        "0:k0\n1:k1\n2:k2\n3:k3\n4:k4\n5:k5\n",
        "each batch stored once"
    );
}
