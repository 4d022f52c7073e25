//! The Kafka listener in-process (`kafka::serve` on a loopback port,
//! `kafka::serve_connection` on in-memory streams) over a broker with an
//! in-memory bucket and metadata store: request order, bad input, and the
//! bounds a hostile client meets.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod in_process;

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use fjord_agent::BrokerSettings;
use fjord_agent::log::LogSettings;
use in_process::wire::{self, TestRecord};
use in_process::{MUST_HAPPEN, TestBroker};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};

fn records(label: &str, count: i32) -> bytes::Bytes {
    let records: Vec<TestRecord> = (0..count)
        .map(|i| TestRecord::new(&format!("{label}-{i}"), label, 1_700_000_000_000))
        .collect();
    wire::batch(&records, None)
}

/// A raw frame: `api`, `version`, `correlation_id` and then `body` as given.
fn raw_frame(api: i16, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let mut out = BytesMut::new();
    out.put_i16(api);
    out.put_i16(version);
    out.put_i32(correlation_id);
    out.put_i16(-1); // null client id
    out.put_slice(body);
    wire::frame(&out)
}

// ----- behaviour the listener keeps -----

/// acks=all produces (held until a flush), acks=0 produces (never answered),
/// and requests of other kinds, pipelined on one connection, are answered in
/// request order; an `ApiVersions` of an unknown version gets the v0
/// fallback in its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_request_order() {
    let mut broker = TestBroker::new(BrokerSettings::default()).await;
    broker.create_topic("pipe", 1).await;
    broker.start_flusher();
    let mut client = broker.connect_in_memory(1 << 20);

    let mut burst = Vec::new();
    let mut expected = Vec::new();
    let mut next_offset = 0i64;
    for round in 0..6 {
        let id = 100 + round * 10;
        burst.extend(wire::request_frame(
            ApiKey::Produce,
            9,
            id,
            &wire::produce_request("pipe", 0, records(&format!("all-{round}"), 3), -1),
        ));
        expected.push((id, ApiKey::Produce, 9, Some(next_offset)));
        next_offset += 3;
        burst.extend(wire::request_frame(
            ApiKey::Produce,
            9,
            id + 1,
            &wire::produce_request("pipe", 0, records(&format!("zero-{round}"), 2), 0),
        ));
        next_offset += 2;
        burst.extend(wire::request_frame(
            ApiKey::Metadata,
            12,
            id + 2,
            &wire::metadata_request(&["pipe"]),
        ));
        expected.push((id + 2, ApiKey::Metadata, 12, None));
        burst.extend(wire::request_frame(
            ApiKey::ListOffsets,
            7,
            id + 3,
            &wire::list_offsets_request("pipe", 0, -1),
        ));
        expected.push((id + 3, ApiKey::ListOffsets, 7, Some(next_offset - 2)));
        if round % 2 == 1 {
            // An ApiVersions version from the future.
            burst.extend(raw_frame(ApiKey::ApiVersions as i16, 99, id + 4, &[]));
            expected.push((id + 4, ApiKey::ApiVersions, 0, None));
        }
    }
    client.send(&burst).await;

    for (id, api, version, offset) in expected {
        let frame = in_process::within(MUST_HAPPEN, "an answer", client.read_frame())
            .await
            .expect("an answer, not a close");
        assert_eq!(wire::correlation_id(&frame), id, "answers in request order");
        match api {
            ApiKey::Produce => {
                let (_, response): (_, ProduceResponse) =
                    wire::decode_response(api, version, frame);
                let partition = &response.responses[0].partition_responses[0];
                assert_eq!(
                    (partition.error_code, Some(partition.base_offset)),
                    (0, offset)
                );
            }
            ApiKey::ListOffsets => {
                let (_, response): (_, ListOffsetsResponse) =
                    wire::decode_response(api, version, frame);
                let partition = &response.topics[0].partitions[0];
                assert_eq!(partition.error_code, 0);
                // Every acks=all produce before it is committed.
                assert!(partition.offset >= offset.unwrap(), "request {id}");
            }
            ApiKey::Metadata => {
                let (_, response): (_, MetadataResponse) =
                    wire::decode_response(api, version, frame);
                assert_eq!(response.topics[0].error_code, 0);
            }
            ApiKey::ApiVersions => {
                let (_, response): (_, ApiVersionsResponse) =
                    wire::decode_response(api, version, frame);
                assert_eq!(response.error_code, 35, "UNSUPPORTED_VERSION");
                assert!(!response.api_keys.is_empty());
            }
            other => unreachable!("{other:?}"),
        }
    }
}

/// The request every served API gets in [`every_served_api_is_answered`]:
/// the defaults, except where they would not be answered at once.
fn minimal_request(api: ApiKey) -> RequestKind {
    match api {
        ApiKey::Produce => {
            let mut request = ProduceRequest::default();
            request.acks = -1;
            request.timeout_ms = 30_000;
            request.into()
        }
        ApiKey::Fetch => FetchRequest::default().into(),
        ApiKey::ListOffsets => ListOffsetsRequest::default().into(),
        ApiKey::Metadata => MetadataRequest::default().into(),
        ApiKey::ApiVersions => {
            let mut request = ApiVersionsRequest::default();
            request.client_software_name = StrBytes::from_static_str("fjord-test");
            request.client_software_version = StrBytes::from_static_str("1");
            request.into()
        }
        ApiKey::CreateTopics => CreateTopicsRequest::default().into(),
        ApiKey::DeleteTopics => DeleteTopicsRequest::default().into(),
        ApiKey::InitProducerId => InitProducerIdRequest::default().into(),
        ApiKey::DeleteRecords => DeleteRecordsRequest::default().into(),
        ApiKey::OffsetForLeaderEpoch => OffsetForLeaderEpochRequest::default().into(),
        ApiKey::DescribeConfigs => DescribeConfigsRequest::default().into(),
        ApiKey::AlterConfigs => AlterConfigsRequest::default().into(),
        ApiKey::CreatePartitions => CreatePartitionsRequest::default().into(),
        ApiKey::IncrementalAlterConfigs => IncrementalAlterConfigsRequest::default().into(),
        ApiKey::DescribeCluster => DescribeClusterRequest::default().into(),
        ApiKey::DescribeTopicPartitions => DescribeTopicPartitionsRequest::default().into(),
        ApiKey::DescribeLogDirs => DescribeLogDirsRequest::default().into(),
        ApiKey::ElectLeaders => ElectLeadersRequest::default().into(),
        ApiKey::AlterPartitionReassignments => AlterPartitionReassignmentsRequest::default().into(),
        ApiKey::ListPartitionReassignments => ListPartitionReassignmentsRequest::default().into(),
        ApiKey::DescribeQuorum => DescribeQuorumRequest::default().into(),
        // On a listener without SASL both are answered ILLEGAL_SASL_STATE.
        ApiKey::SaslHandshake => SaslHandshakeRequest::default().into(),
        ApiKey::SaslAuthenticate => SaslAuthenticateRequest::default().into(),
        ApiKey::AlterUserScramCredentials => AlterUserScramCredentialsRequest::default().into(),
        ApiKey::DescribeUserScramCredentials => {
            DescribeUserScramCredentialsRequest::default().into()
        }
        ApiKey::FindCoordinator => FindCoordinatorRequest::default().into(),
        ApiKey::JoinGroup => JoinGroupRequest::default().into(),
        ApiKey::SyncGroup => SyncGroupRequest::default().into(),
        ApiKey::Heartbeat => HeartbeatRequest::default().into(),
        ApiKey::LeaveGroup => LeaveGroupRequest::default().into(),
        ApiKey::OffsetCommit => OffsetCommitRequest::default().into(),
        ApiKey::OffsetFetch => OffsetFetchRequest::default().into(),
        ApiKey::ListGroups => ListGroupsRequest::default().into(),
        ApiKey::DescribeGroups => DescribeGroupsRequest::default().into(),
        ApiKey::DeleteGroups => DeleteGroupsRequest::default().into(),
        ApiKey::OffsetDelete => OffsetDeleteRequest::default().into(),
        ApiKey::ConsumerGroupHeartbeat => ConsumerGroupHeartbeatRequest::default().into(),
        ApiKey::ConsumerGroupDescribe => ConsumerGroupDescribeRequest::default().into(),
        ApiKey::AddPartitionsToTxn => AddPartitionsToTxnRequest::default().into(),
        ApiKey::AddOffsetsToTxn => AddOffsetsToTxnRequest::default().into(),
        ApiKey::EndTxn => EndTxnRequest::default().into(),
        ApiKey::TxnOffsetCommit => TxnOffsetCommitRequest::default().into(),
        ApiKey::WriteTxnMarkers => WriteTxnMarkersRequest::default().into(),
        ApiKey::ListTransactions => ListTransactionsRequest::default().into(),
        ApiKey::DescribeTransactions => DescribeTransactionsRequest::default().into(),
        ApiKey::DescribeProducers => DescribeProducersRequest::default().into(),
        ApiKey::CreateAcls => CreateAclsRequest::default().into(),
        ApiKey::DescribeAcls => DescribeAclsRequest::default().into(),
        ApiKey::DeleteAcls => DeleteAclsRequest::default().into(),
        other => panic!("{other:?} is served: give it a request here"),
    }
}

/// Every API of the version table, at its lowest and highest version, is
/// answered (not closed), with its correlation id: nothing served is left out
/// of dispatch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_api_is_answered() {
    let broker = TestBroker::new(BrokerSettings::default()).await;
    let mut client = broker.connect_in_memory(1 << 20);
    let mut correlation_id = 0;
    for (api, min, max) in fjord_agent::kafka::supported_versions() {
        for version in [*min, *max] {
            correlation_id += 1;
            let mut header = RequestHeader::default();
            header.request_api_key = *api as i16;
            header.request_api_version = version;
            header.correlation_id = correlation_id;
            header.client_id = Some(StrBytes::from_static_str("fjord-test"));
            let mut body = BytesMut::new();
            header
                .encode(&mut body, api.request_header_version(version))
                .unwrap();
            minimal_request(*api).encode(&mut body, version).unwrap();
            client.send(&wire::frame(&body)).await;
            let frame = in_process::within(MUST_HAPPEN, "an answer", client.read_frame())
                .await
                .unwrap_or_else(|| panic!("{api:?} v{version} closed the connection"));
            assert_eq!(
                wire::correlation_id(&frame),
                correlation_id,
                "{api:?} v{version}"
            );
        }
    }
}

/// Bad input closes the connection without an answer (and without reading a
/// body the length prefix rules out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frames_close_the_connection() {
    let settings = BrokerSettings {
        max_request_bytes: 1 << 20,
        ..BrokerSettings::default()
    };
    let broker = TestBroker::new(settings).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a negative length", (-5i32).to_be_bytes().to_vec()),
        ("a frame too short for a header", wire::frame(&[0, 3, 0])),
        (
            "a frame above socket.request.max.bytes",
            ((1u32 << 20) + 1).to_be_bytes().to_vec(),
        ),
        ("an unknown api key", raw_frame(999, 0, 7, &[])),
        (
            "an unsupported version",
            raw_frame(ApiKey::Metadata as i16, 99, 7, &[]),
        ),
        (
            "a body that does not decode",
            raw_frame(ApiKey::Metadata as i16, 1, 7, &[0, 0, 0, 9]),
        ),
    ];
    for (what, bytes) in cases {
        let mut client = broker.connect_in_memory(1 << 16);
        client.send(&bytes).await;
        client.expect_closed(MUST_HAPPEN, what).await;
    }
    // A good connection is still served.
    let mut client = broker.connect_in_memory(1 << 16);
    let response: MetadataResponse = client
        .call(ApiKey::Metadata, 12, 1, &wire::metadata_request(&[]))
        .await;
    assert_eq!(response.brokers.len(), 1);
}

// ----- bounds a hostile client meets -----

fn api_versions_request() -> ApiVersionsRequest {
    let mut request = ApiVersionsRequest::default();
    request.client_software_name = StrBytes::from_static_str("fjord-test");
    request.client_software_version = StrBytes::from_static_str("1");
    request
}

/// `connections.max.idle.ms`: a connection that sends no request for that
/// long, with nothing in flight, is closed; each request starts the clock
/// over.
#[tokio::test(start_paused = true)]
async fn an_idle_connection_is_closed() {
    let broker = TestBroker::new(BrokerSettings::default()).await;
    let idle = broker.broker.settings.connections_max_idle;
    let mut client = broker.connect_in_memory(1 << 16);
    for correlation_id in 1..=3 {
        let response: ApiVersionsResponse = client
            .call(
                ApiKey::ApiVersions,
                3,
                correlation_id,
                &api_versions_request(),
            )
            .await;
        assert_eq!(response.error_code, 0);
        tokio::time::sleep(idle - Duration::from_secs(1)).await;
    }
    client
        .expect_closed(
            idle * 2,
            "closing a connection idle for connections.max.idle.ms",
        )
        .await;
}

/// A connection waiting for its produce (held back by the flusher) or for a
/// long-polling fetch is not idle, however long that takes; once answered,
/// the idle clock runs.
#[tokio::test(start_paused = true)]
async fn a_connection_waiting_for_its_answers_is_not_idle() {
    let broker = TestBroker::new(BrokerSettings::default()).await;
    broker.create_topic("held", 1).await;
    let idle = broker.broker.settings.connections_max_idle;
    let mut client = broker.connect_in_memory(1 << 16);

    let mut produce = wire::produce_request("held", 0, records("held", 3), -1);
    produce.timeout_ms = i32::MAX;
    client.send_request(ApiKey::Produce, 9, 1, &produce).await;
    tokio::time::sleep(idle * 3).await;
    broker.flush().await;
    let response: ProduceResponse = client.response(ApiKey::Produce, 9, 1).await;
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!((partition.error_code, partition.base_offset), (0, 0));

    let wait_ms = i32::try_from((idle * 3).as_millis()).unwrap();
    let fetch = wire::fetch_request("held", 0, 3, wait_ms, 1);
    client.send_request(ApiKey::Fetch, 12, 2, &fetch).await;
    let response: FetchResponse = client.response_within(idle * 4, ApiKey::Fetch, 12, 2).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!((partition.error_code, partition.high_watermark), (0, 3));

    client
        .expect_closed(idle * 2, "closing the connection once answered and idle")
        .await;
}

/// A frame that never completes does not keep its connection (and its share
/// of the request budget) past the idle limit.
#[tokio::test(start_paused = true)]
async fn a_frame_that_never_completes_does_not_keep_the_connection() {
    let broker = TestBroker::new(BrokerSettings::default()).await;
    let idle = broker.broker.settings.connections_max_idle;
    let mut client = broker.connect_in_memory(1 << 16);
    let mut partial = 10_000u32.to_be_bytes().to_vec();
    partial.extend_from_slice(&[0u8; 100]);
    client.send(&partial).await;
    client
        .expect_closed(idle * 2, "closing a connection stuck in a frame")
        .await;
}

/// One batch of one record whose value is `value_bytes` long.
fn large_batch(value_bytes: usize) -> bytes::Bytes {
    let records = [TestRecord {
        key: None,
        value: Some(bytes::Bytes::from(vec![b'x'; value_bytes])),
        headers: Vec::new(),
        timestamp: 1_700_000_000_000,
    }];
    wire::batch(&records, None)
}

/// `queued.max.request.bytes`: while one connection's produce (held back by
/// the flusher) holds most of the budget, a second connection's large frame
/// is not read; once the produce is answered, it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_frame_waits_for_the_shared_request_budget() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let settings = BrokerSettings {
        queued_max_request_bytes: 1 << 20,
        ..BrokerSettings::default()
    };
    let broker = TestBroker::new(settings).await;
    let topic = broker.create_topic("budget", 1).await;
    let server = broker.serve_tcp().await;

    // The first connection's produce is read, appended, and waits for a flush.
    let mut first = server.connect().await;
    first
        .send_request(
            ApiKey::Produce,
            9,
            1,
            &wire::produce_request("budget", 0, large_batch(700 << 10), -1),
        )
        .await;
    let partition = fjord_metadata::TopicPartition::new(topic.id, 0);
    in_process::within(MUST_HAPPEN, "the first produce appended", async {
        while broker.logs.leads(partition).is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;

    // The second connection's produce names no topic: once read it is
    // answered at once.
    let released = Arc::new(AtomicBool::new(false));
    let mut second = server.connect().await;
    let second_side = tokio::spawn({
        let released = released.clone();
        async move {
            second
                .send_request(
                    ApiKey::Produce,
                    9,
                    2,
                    &wire::produce_request("nowhere", 0, large_batch(700 << 10), -1),
                )
                .await;
            let response: ProduceResponse = second.response(ApiKey::Produce, 9, 2).await;
            (released.load(Ordering::SeqCst), response)
        }
    });
    // Time for the broker to read the second frame, were it to.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !second_side.is_finished(),
        "the second frame was answered while the first held the budget"
    );
    released.store(true, Ordering::SeqCst);
    broker.flush().await;

    let response: ProduceResponse = first.response(ApiKey::Produce, 9, 1).await;
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!((partition.error_code, partition.base_offset), (0, 0));
    let (answered_after_release, response) =
        in_process::within(MUST_HAPPEN, "the second frame answered", second_side)
            .await
            .unwrap();
    assert!(
        answered_after_release,
        "the second frame was answered while the first held the budget"
    );
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(partition.error_code, 3, "UNKNOWN_TOPIC_OR_PARTITION");
}

/// A frame larger than the whole budget waits for all of it, and is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_larger_than_the_whole_budget_is_served() {
    let settings = BrokerSettings {
        queued_max_request_bytes: 64 << 10,
        ..BrokerSettings::default()
    };
    let mut broker = TestBroker::new(settings).await;
    broker.create_topic("big", 1).await;
    broker.start_flusher();
    let server = broker.serve_tcp().await;
    let mut client = server.connect().await;
    let produce = wire::produce_request("big", 0, large_batch(200 << 10), -1);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, 1, &produce).await;
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!((partition.error_code, partition.base_offset), (0, 0));
}

/// `fetch.max.bytes`: the broker caps what a fetch asks for (the first batch
/// whole, as Kafka).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_caps_a_fetch_at_fetch_max_bytes() {
    let settings = BrokerSettings {
        fetch_max_bytes: 10_000,
        ..BrokerSettings::default()
    };
    let mut broker = TestBroker::new(settings).await;
    broker.create_topic("capped", 1).await;
    broker.start_flusher();
    let mut client = broker.connect_in_memory(1 << 20);
    for round in 0..4 {
        let produce = wire::produce_request("capped", 0, large_batch(8_000), -1);
        let response: ProduceResponse = client.call(ApiKey::Produce, 9, round, &produce).await;
        assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    }
    let mut fetch = wire::fetch_request("capped", 0, 0, 0, 1);
    fetch.max_bytes = i32::MAX;
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, 10, &fetch).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!((partition.error_code, partition.high_watermark), (0, 4));
    let fetched = partition.records.clone().unwrap_or_default();
    let batches = wire::split_batches(&fetched);
    assert_eq!(batches.len(), 1, "one 8 KB batch fits in 10,000 bytes");
    assert!(fetched.len() <= 10_000, "{} bytes", fetched.len());
}

/// A fetch with `min_bytes` 0 is answered at once, whatever its `max_wait_ms`;
/// so is a fetch of no partitions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_that_needs_no_bytes_is_answered_at_once() {
    let broker = TestBroker::new(BrokerSettings::default()).await;
    broker.create_topic("empty", 1).await;
    let mut client = broker.connect_in_memory(1 << 20);
    let fetch = wire::fetch_request("empty", 0, 0, i32::MAX, 0);
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, 1, &fetch).await;
    let partition = &response.responses[0].partitions[0];
    assert_eq!((partition.error_code, partition.high_watermark), (0, 0));

    let mut nothing = wire::fetch_request("empty", 0, 0, i32::MAX, 1);
    nothing.topics.clear();
    let response: FetchResponse = client.call(ApiKey::Fetch, 12, 2, &nothing).await;
    assert!(response.responses.is_empty());
}

/// `acks` other than -1, 0 and 1 is refused with `INVALID_REQUIRED_ACKS`,
/// and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_acks_are_refused() {
    let mut broker = TestBroker::new(BrokerSettings::default()).await;
    broker.create_topic("acks", 1).await;
    broker.start_flusher();
    let mut client = broker.connect_in_memory(1 << 20);
    for (correlation_id, acks) in [(1, 2), (2, -2), (3, i16::MAX)] {
        let produce = wire::produce_request("acks", 0, records("acks", 2), acks);
        let response: ProduceResponse = client
            .call(ApiKey::Produce, 9, correlation_id, &produce)
            .await;
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(
            (partition.error_code, partition.base_offset),
            (21, -1),
            "acks={acks}: INVALID_REQUIRED_ACKS"
        );
    }
    let produce = wire::produce_request("acks", 0, records("acks", 2), -1);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, 4, &produce).await;
    let partition = &response.responses[0].partition_responses[0];
    assert_eq!(
        (partition.error_code, partition.base_offset),
        (0, 0),
        "the refused produces took no offsets"
    );
}

/// A produce whose batches are not durable within its `timeout_ms` is
/// answered `REQUEST_TIMED_OUT`; the batches may still commit later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_produce_not_durable_within_its_timeout_times_out() {
    let broker = TestBroker::new(BrokerSettings::default()).await;
    broker.create_topic("slow", 1).await;
    let mut client = broker.connect_in_memory(1 << 20);
    for (correlation_id, acks) in [(1, -1), (2, 1)] {
        let mut produce = wire::produce_request("slow", 0, records("slow", 3), acks);
        produce.timeout_ms = 200;
        let response: ProduceResponse = client
            .call(ApiKey::Produce, 9, correlation_id, &produce)
            .await;
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(
            (partition.error_code, partition.base_offset),
            (7, -1),
            "acks={acks}: REQUEST_TIMED_OUT"
        );
    }
    // The flush the producers did not wait for commits both.
    broker.flush().await;
    assert_eq!(broker.offsets("slow", 0).await, (0, 6));
}

// ----- spans -----

/// The fields of every closed `kafka_request` span.
#[derive(Clone, Default)]
struct RequestSpans(std::sync::Arc<std::sync::Mutex<Vec<SpanFields>>>);

#[derive(Clone, Debug, Default)]
struct SpanFields(std::collections::BTreeMap<String, String>);

impl tracing::field::Visit for SpanFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl<S> tracing_subscriber::Layer<S> for RequestSpans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attributes: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        if attributes.metadata().name() != "kafka_request" {
            return;
        }
        let mut fields = SpanFields::default();
        attributes.record(&mut fields);
        context.span(id).unwrap().extensions_mut().insert(fields);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        context: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let span = context.span(id).unwrap();
        if let Some(fields) = span.extensions_mut().get_mut::<SpanFields>() {
            values.record(fields);
        }
    }

    fn on_close(&self, id: tracing::span::Id, context: tracing_subscriber::layer::Context<'_, S>) {
        let span = context.span(&id).unwrap();
        if let Some(fields) = span.extensions().get::<SpanFields>() {
            self.0.lock().unwrap().push(fields.clone());
        }
    }
}

/// Each request runs in a `kafka_request` span with its api, version,
/// correlation id and client id; produce and fetch add their topic and
/// partition.
#[tokio::test]
async fn each_request_runs_in_a_span_naming_it() {
    use tracing_subscriber::layer::SubscriberExt;
    let spans = RequestSpans::default();
    let _default =
        tracing::subscriber::set_default(tracing_subscriber::registry().with(spans.clone()));

    let mut broker = TestBroker::new(BrokerSettings::default()).await;
    broker.create_topic("traced", 2).await;
    broker.start_flusher();
    let mut client = broker.connect_in_memory(1 << 20);
    let produce = wire::produce_request("traced", 1, records("traced", 2), -1);
    let response: ProduceResponse = client.call(ApiKey::Produce, 9, 7, &produce).await;
    assert_eq!(response.responses[0].partition_responses[0].error_code, 0);
    let fetch = wire::fetch_request("traced", 1, 0, 0, 1);
    let _: FetchResponse = client.call(ApiKey::Fetch, 12, 8, &fetch).await;
    let _: MetadataResponse = client
        .call(
            ApiKey::Metadata,
            12,
            9,
            &wire::metadata_request(&["traced"]),
        )
        .await;

    let expected = [
        ("Produce", "9", "7", Some(("traced", "1"))),
        ("Fetch", "12", "8", Some(("traced", "1"))),
        ("Metadata", "12", "9", None),
    ];
    in_process::within(MUST_HAPPEN, "three request spans closed", async {
        while spans.0.lock().unwrap().len() < expected.len() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let closed = spans.0.lock().unwrap().clone();
    for (api, version, correlation_id, target) in expected {
        let span = closed
            .iter()
            .find(|s| s.0.get("correlation_id").map(String::as_str) == Some(correlation_id))
            .unwrap_or_else(|| panic!("no span for {api} (correlation id {correlation_id})"));
        let field = |name: &str| span.0.get(name).map(String::as_str);
        assert_eq!(field("api"), Some(api), "{span:?}");
        assert_eq!(field("version"), Some(version), "{span:?}");
        assert_eq!(field("client_id"), Some("fjord-wire-test"), "{span:?}");
        assert_eq!(field("topic"), target.map(|t| t.0), "{span:?}");
        assert_eq!(field("partition"), target.map(|t| t.1), "{span:?}");
    }
}

/// An idempotent producer keeps at most five requests in flight per
/// connection; once five wait for their commit it cannot send more, so the
/// flusher starts at once instead of waiting for a timer (here an interval of
/// an hour and no idle trigger). Four waiting are not flushed, and neither
/// are five while another connection, whose window is not known, also waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_idempotent_window_is_flushed_at_once() {
    let mut broker = TestBroker::with_log_settings(
        BrokerSettings::default(),
        LogSettings {
            flush_interval: Duration::from_secs(3600),
            flush_idle: Duration::ZERO,
            ..LogSettings::default()
        },
    )
    .await;
    broker.create_topic("window", 2).await;
    broker.start_flusher();
    let produce = |partition: i32, value: &str, producer: Option<(i64, i16, i32)>| {
        let batch = wire::batch(&[TestRecord::new("k", value, 1_700_000_000_000)], producer);
        wire::produce_request("window", partition, batch, -1)
    };
    let mut idempotent = broker.connect_in_memory(1 << 20);
    for sequence in 0..4 {
        let request = produce(0, &format!("i{sequence}"), Some((7, 0, sequence)));
        idempotent
            .send_request(ApiKey::Produce, 9, sequence, &request)
            .await;
    }
    let early = tokio::time::timeout(Duration::from_millis(300), idempotent.read_frame()).await;
    assert!(early.is_err(), "flushed with four of five in flight");
    assert_eq!(broker.logs.client_windows(), (1, 0));

    // A producer without idempotence waits too, with a short timeout.
    let mut plain = broker.connect_in_memory(1 << 20);
    let mut request = produce(1, "p0", None);
    request.timeout_ms = 2_000;
    plain.send_request(ApiKey::Produce, 9, 100, &request).await;
    in_process::within(MUST_HAPPEN, "both connections waiting", async {
        while broker.logs.client_windows() != (2, 0) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    let request = produce(0, "i4", Some((7, 0, 4)));
    idempotent
        .send_request(ApiKey::Produce, 9, 4, &request)
        .await;
    in_process::within(MUST_HAPPEN, "the fifth request counted", async {
        while broker.logs.client_windows() != (2, 1) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    let early = tokio::time::timeout(Duration::from_millis(300), idempotent.read_frame()).await;
    assert!(
        early.is_err(),
        "flushed while a connection that could send more waited"
    );

    // Once that one stops waiting (its timeout), only the full one waits.
    let timed_out: ProduceResponse = plain.response(ApiKey::Produce, 9, 100).await;
    assert_eq!(
        timed_out.responses[0].partition_responses[0].error_code, 7,
        "REQUEST_TIMED_OUT"
    );
    for sequence in 0..5 {
        let answer: ProduceResponse = idempotent.response(ApiKey::Produce, 9, sequence).await;
        let partition = &answer.responses[0].partition_responses[0];
        assert_eq!(
            (partition.error_code, partition.base_offset),
            (0, i64::from(sequence))
        );
    }
    assert_eq!(broker.offsets("window", 0).await, (0, 5));
    assert_eq!(broker.logs.client_windows(), (0, 0));
}

/// `batch` marked transactional (attributes bit 4), its CRC recomputed.
fn transactional(batch: bytes::Bytes) -> bytes::Bytes {
    let mut bytes = BytesMut::from(&batch[..]);
    let attributes = i16::from_be_bytes([bytes[21], bytes[22]]) | 0x10;
    bytes[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&bytes[21..]);
    bytes[17..21].copy_from_slice(&crc.to_be_bytes());
    bytes.freeze()
}

/// The transaction APIs over the wire, as a transactional producer and the
/// admin tools use them: a transaction is described while open (state,
/// partitions, the producer's open transaction in `DescribeProducers`) and
/// holds `read_committed` fetches at its first offset; a commit releases
/// them; an abort is listed in `read_committed` fetches; a stale epoch is
/// fenced; a transaction past its timeout is aborted under a bumped epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_apis_describe_commit_abort_fence_and_time_out() {
    let mut broker = TestBroker::new(BrokerSettings::default()).await;
    broker.start_flusher();
    broker.create_topic("t", 1).await;
    let mut client = broker.connect_in_memory(1 << 20);
    let mut id = 0;
    let mut next = || {
        id += 1;
        id
    };

    let mut init = InitProducerIdRequest::default();
    init.transactional_id = Some(TransactionalId(StrBytes::from_static_str("tx")));
    init.transaction_timeout_ms = 60_000;
    init.producer_id = ProducerId(-1);
    init.producer_epoch = -1;
    let answer: InitProducerIdResponse =
        client.call(ApiKey::InitProducerId, 4, next(), &init).await;
    assert_eq!(answer.error_code, 0);
    let (pid, epoch) = (answer.producer_id, answer.producer_epoch);

    let add = |pid: ProducerId, epoch: i16| {
        let mut add = AddPartitionsToTxnRequest::default();
        add.v3_and_below_transactional_id = TransactionalId(StrBytes::from_static_str("tx"));
        add.v3_and_below_producer_id = pid;
        add.v3_and_below_producer_epoch = epoch;
        let mut topic = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
        topic.name = wire::topic_name("t");
        topic.partitions = vec![0];
        add.v3_and_below_topics = vec![topic];
        add
    };
    let added: AddPartitionsToTxnResponse = client
        .call(ApiKey::AddPartitionsToTxn, 3, next(), &add(pid, epoch))
        .await;
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    let produce = |sequence: i32, epoch: i16| {
        let records = transactional(wire::batch(
            &[TestRecord::new("k", "v", 1_000)],
            Some((pid.0, epoch, sequence)),
        ));
        let mut request = wire::produce_request("t", 0, records, -1);
        request.transactional_id = Some(TransactionalId(StrBytes::from_static_str("tx")));
        request
    };
    let produced: ProduceResponse = client
        .call(ApiKey::Produce, 9, next(), &produce(0, epoch))
        .await;
    assert_eq!(produced.responses[0].partition_responses[0].error_code, 0);

    // Open: described, listed, and holding read_committed readers.
    let mut describe = DescribeTransactionsRequest::default();
    describe.transactional_ids = vec![TransactionalId(StrBytes::from_static_str("tx"))];
    let described: DescribeTransactionsResponse = client
        .call(ApiKey::DescribeTransactions, 0, next(), &describe)
        .await;
    let state = &described.transaction_states[0];
    assert_eq!(
        (state.error_code, state.transaction_state.as_str()),
        (0, "Ongoing")
    );
    assert_eq!(
        (state.producer_id, state.topics[0].partitions.clone()),
        (pid, vec![0])
    );
    let mut list = ListTransactionsRequest::default();
    list.state_filters = vec![
        StrBytes::from_static_str("Ongoing"),
        StrBytes::from_static_str("Bogus"),
    ];
    let listed: ListTransactionsResponse = client
        .call(ApiKey::ListTransactions, 1, next(), &list)
        .await;
    assert_eq!(listed.transaction_states.len(), 1);
    assert_eq!(
        listed.unknown_state_filters,
        vec![StrBytes::from_static_str("Bogus")]
    );
    let mut producers = DescribeProducersRequest::default();
    let mut topic = describe_producers_request::TopicRequest::default();
    topic.name = wire::topic_name("t");
    topic.partition_indexes = vec![0];
    producers.topics = vec![topic];
    let described: DescribeProducersResponse = client
        .call(ApiKey::DescribeProducers, 0, next(), &producers)
        .await;
    let active = &described.topics[0].partitions[0].active_producers;
    assert_eq!(
        (active[0].producer_id, active[0].current_txn_start_offset),
        (pid, 0)
    );
    let fetch = |isolation: i8, offset: i64| {
        let mut request = wire::fetch_request("t", 0, offset, 0, 0);
        request.isolation_level = isolation;
        request
    };
    let committed: FetchResponse = client.call(ApiKey::Fetch, 11, next(), &fetch(1, 0)).await;
    let data = &committed.responses[0].partitions[0];
    assert_eq!((data.high_watermark, data.last_stable_offset), (1, 0));
    assert!(data.records.as_ref().unwrap().is_empty());
    let uncommitted: FetchResponse = client.call(ApiKey::Fetch, 11, next(), &fetch(0, 0)).await;
    assert!(
        !uncommitted.responses[0].partitions[0]
            .records
            .as_ref()
            .unwrap()
            .is_empty()
    );

    // Committed: the marker at 1 releases readers.
    let end = |pid: ProducerId, epoch: i16, committed: bool| {
        let mut end = EndTxnRequest::default();
        end.transactional_id = TransactionalId(StrBytes::from_static_str("tx"));
        end.producer_id = pid;
        end.producer_epoch = epoch;
        end.committed = committed;
        end
    };
    let ended: EndTxnResponse = client
        .call(ApiKey::EndTxn, 3, next(), &end(pid, epoch, true))
        .await;
    assert_eq!(ended.error_code, 0);
    let committed: FetchResponse = client.call(ApiKey::Fetch, 11, next(), &fetch(1, 0)).await;
    let data = &committed.responses[0].partitions[0];
    assert_eq!((data.high_watermark, data.last_stable_offset), (2, 2));
    assert_eq!(wire::split_batches(data.records.as_ref().unwrap()).len(), 2);
    assert_eq!(data.aborted_transactions, Some(vec![]));

    // Aborted: listed for read_committed readers from where it began.
    let added: AddPartitionsToTxnResponse = client
        .call(ApiKey::AddPartitionsToTxn, 3, next(), &add(pid, epoch))
        .await;
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    let produced: ProduceResponse = client
        .call(ApiKey::Produce, 9, next(), &produce(1, epoch))
        .await;
    assert_eq!(produced.responses[0].partition_responses[0].base_offset, 2);
    let ended: EndTxnResponse = client
        .call(ApiKey::EndTxn, 3, next(), &end(pid, epoch, false))
        .await;
    assert_eq!(ended.error_code, 0);
    let read: FetchResponse = client.call(ApiKey::Fetch, 11, next(), &fetch(1, 0)).await;
    let aborted = read.responses[0].partitions[0]
        .aborted_transactions
        .clone()
        .unwrap();
    assert_eq!(aborted.len(), 1);
    assert_eq!((aborted[0].producer_id, aborted[0].first_offset), (pid, 2));

    // A new instance bumps the epoch; the old one is fenced.
    let answer: InitProducerIdResponse =
        client.call(ApiKey::InitProducerId, 4, next(), &init).await;
    assert_eq!(
        (answer.producer_id, answer.producer_epoch),
        (pid, epoch + 1)
    );
    let fenced: EndTxnResponse = client
        .call(ApiKey::EndTxn, 3, next(), &end(pid, epoch, true))
        .await;
    assert_eq!(fenced.error_code, ResponseError::ProducerFenced.code());
    let fenced: EndTxnResponse = client
        .call(ApiKey::EndTxn, 1, next(), &end(pid, epoch, true))
        .await;
    assert_eq!(
        fenced.error_code,
        ResponseError::InvalidProducerEpoch.code()
    );
    let wrong: AddPartitionsToTxnResponse = client
        .call(
            ApiKey::AddPartitionsToTxn,
            3,
            next(),
            &add(ProducerId(pid.0 + 1000), epoch + 1),
        )
        .await;
    assert_eq!(
        wrong.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        ResponseError::InvalidProducerIdMapping.code()
    );

    // Past its timeout, an open transaction is aborted under a new epoch.
    init.transaction_timeout_ms = 1;
    let answer: InitProducerIdResponse =
        client.call(ApiKey::InitProducerId, 4, next(), &init).await;
    let epoch = answer.producer_epoch;
    let added: AddPartitionsToTxnResponse = client
        .call(ApiKey::AddPartitionsToTxn, 3, next(), &add(pid, epoch))
        .await;
    assert_eq!(
        added.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code,
        0
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(broker.broker.transactions.pass().await, 1);
    let described: DescribeTransactionsResponse = client
        .call(ApiKey::DescribeTransactions, 0, next(), &describe)
        .await;
    let state = &described.transaction_states[0];
    assert_eq!(
        (state.transaction_state.as_str(), state.producer_epoch),
        ("CompleteAbort", epoch + 1)
    );
}
