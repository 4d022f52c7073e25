//! A raw Kafka wire client for tests: requests encoded with the `kafka-protocol`
//! codecs, framed by hand and written to a plain socket, so a test controls
//! exactly what is sent (pipelining, acks=0, broken frames) and decodes exactly
//! what comes back.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// One connection to a broker.
pub struct Wire {
    pub stream: TcpStream,
}

impl Wire {
    /// Connects with a generous read timeout: a test that waits for an answer
    /// that never comes fails instead of hanging.
    pub fn connect(address: &str) -> Self {
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Wire { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// One response frame, or `None` once the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        read_frame(&mut self.stream)
    }

    /// Sends one request and decodes its answer.
    pub fn call<R: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        correlation_id: i32,
        request: &impl Encodable,
    ) -> R {
        self.send(&request_frame(api, version, correlation_id, request));
        let frame = self
            .read_frame()
            .unwrap_or_else(|| panic!("no answer to {api:?} v{version}"));
        let (answered, response) = decode_response(api, version, frame);
        assert_eq!(answered, correlation_id, "{api:?} correlation id");
        response
    }
}

/// Reads one length-prefixed frame; `None` if the peer closed (or reset) the
/// connection first. A read timeout fails the test.
pub fn read_frame(stream: &mut TcpStream) -> Option<Bytes> {
    let mut len = [0u8; 4];
    match stream.read_exact(&mut len) {
        Ok(()) => {}
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ) =>
        {
            return None;
        }
        Err(e) => panic!("reading a response failed: {e}"),
    }
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).unwrap();
    Some(Bytes::from(body))
}

/// `body` with its 4-byte length prefix.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = (body.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// A framed request: header (in the header version `api` uses at `version`) and body.
pub fn request_frame(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &impl Encodable,
) -> Vec<u8> {
    let mut header = RequestHeader::default();
    header.request_api_key = api as i16;
    header.request_api_version = version;
    header.correlation_id = correlation_id;
    header.client_id = Some(StrBytes::from_static_str("fjord-wire-test"));
    let mut body = BytesMut::new();
    header
        .encode(&mut body, api.request_header_version(version))
        .unwrap();
    request.encode(&mut body, version).unwrap();
    frame(&body)
}

/// The correlation id and body of a response frame.
pub fn decode_response<R: Decodable>(api: ApiKey, version: i16, frame: Bytes) -> (i32, R) {
    let mut bytes = frame;
    let header = ResponseHeader::decode(&mut bytes, api.response_header_version(version))
        .unwrap_or_else(|e| panic!("{api:?} v{version} response header: {e}"));
    let response = R::decode(&mut bytes, version)
        .unwrap_or_else(|e| panic!("{api:?} v{version} response: {e:#}"));
    assert_eq!(
        bytes.remaining(),
        0,
        "{api:?} v{version}: bytes left after the response"
    );
    (header.correlation_id, response)
}

/// The correlation id of a response frame (its first four bytes).
pub fn correlation_id(frame: &Bytes) -> i32 {
    i32::from_be_bytes(frame[..4].try_into().unwrap())
}

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// A record for [`batch`]: key, value, headers, timestamp.
pub struct TestRecord {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<(String, Option<Bytes>)>,
    pub timestamp: i64,
}

impl TestRecord {
    pub fn new(key: &str, value: &str, timestamp: i64) -> Self {
        TestRecord {
            key: Some(Bytes::from(key.to_owned())),
            value: Some(Bytes::from(value.to_owned())),
            headers: vec![("h".to_owned(), Some(Bytes::from(format!("{key}/{value}"))))],
            timestamp,
        }
    }
}

/// One v2 record batch of `records`; `producer` is `(id, epoch, first
/// sequence)` for an idempotent producer.
pub fn batch(records: &[TestRecord], producer: Option<(i64, i16, i32)>) -> Bytes {
    let (producer_id, producer_epoch, sequence) = producer.unwrap_or((-1, -1, -1));
    let encoded: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records whose offset - sequence is constant in
            // one batch; the batch's base sequence is the first record's.
            sequence: sequence + i as i32,
            timestamp: r.timestamp,
            key: r.key.clone(),
            value: r.value.clone(),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                .collect(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &encoded,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    out.freeze()
}

/// A produce request of `records` to one partition.
pub fn produce_request(topic: &str, partition: i32, records: Bytes, acks: i16) -> ProduceRequest {
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    let mut data = PartitionProduceData::default();
    data.index = partition;
    data.records = Some(records);
    let mut topic_data = TopicProduceData::default();
    topic_data.name = topic_name(topic);
    topic_data.partition_data = vec![data];
    let mut request = ProduceRequest::default();
    request.acks = acks;
    request.timeout_ms = 30_000;
    request.topic_data = vec![topic_data];
    request
}

/// A fetch of one partition from `offset`.
pub fn fetch_request(
    topic: &str,
    partition: i32,
    offset: i64,
    max_wait_ms: i32,
    min_bytes: i32,
) -> FetchRequest {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let mut request = FetchRequest::default();
    request.replica_id = BrokerId(-1);
    request.max_wait_ms = max_wait_ms;
    request.min_bytes = min_bytes;
    request.max_bytes = 50 << 20;
    request.session_id = 0;
    request.session_epoch = -1;
    let mut fetch_partition = FetchPartition::default();
    fetch_partition.partition = partition;
    fetch_partition.fetch_offset = offset;
    fetch_partition.partition_max_bytes = 10 << 20;
    let mut fetch_topic = FetchTopic::default();
    fetch_topic.topic = topic_name(topic);
    fetch_topic.partitions = vec![fetch_partition];
    request.topics = vec![fetch_topic];
    request
}

/// ListOffsets of one partition at `timestamp` (-1 latest, -2 earliest).
pub fn list_offsets_request(topic: &str, partition: i32, timestamp: i64) -> ListOffsetsRequest {
    use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
    let mut request = ListOffsetsRequest::default();
    request.replica_id = BrokerId(-1);
    let mut list_partition = ListOffsetsPartition::default();
    list_partition.partition_index = partition;
    list_partition.timestamp = timestamp;
    list_partition.current_leader_epoch = -1;
    let mut list_topic = ListOffsetsTopic::default();
    list_topic.name = topic_name(topic);
    list_topic.partitions = vec![list_partition];
    request.topics = vec![list_topic];
    request
}

/// Metadata for `topics` (created if unknown).
pub fn metadata_request(topics: &[&str]) -> MetadataRequest {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let mut request = MetadataRequest::default();
    request.topics = Some(
        topics
            .iter()
            .map(|t| {
                let mut topic = MetadataRequestTopic::default();
                topic.name = Some(topic_name(t));
                topic
            })
            .collect(),
    );
    request.allow_auto_topic_creation = true;
    request
}

/// Splits fetched bytes into their batches: `(base offset, record count, bytes
/// of the batch)`.
pub fn split_batches(records: &Bytes) -> Vec<(i64, i32, Bytes)> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at + 61 <= records.len() {
        let base = i64::from_be_bytes(records[at..at + 8].try_into().unwrap());
        let len = i32::from_be_bytes(records[at + 8..at + 12].try_into().unwrap()) as usize;
        let end = at + 12 + len;
        assert!(end <= records.len(), "a partial batch at {at}");
        let count = i32::from_be_bytes(records[at + 57..at + 61].try_into().unwrap());
        out.push((base, count, records.slice(at..end)));
        at = end;
    }
    out
}

/// The part of a stored batch its CRC covers (from the attributes on): what a
/// broker must keep byte for byte.
pub fn crc_covered(batch: &Bytes) -> Bytes {
    batch.slice(21..)
}

/// Fetches `topic`/`partition` from offset 0 until `records` records are
/// there; returns the batches (see [`split_batches`]).
pub fn fetch_all(
    wire: &mut Wire,
    topic: &str,
    partition: i32,
    records: i64,
) -> Vec<(i64, i32, Bytes)> {
    use kafka_protocol::messages::FetchResponse;
    let mut batches: Vec<(i64, i32, Bytes)> = Vec::new();
    let mut next = 0i64;
    for attempt in 0..600 {
        if next >= records {
            break;
        }
        let response: FetchResponse = wire.call(
            ApiKey::Fetch,
            12,
            10_000 + attempt,
            &fetch_request(topic, partition, next, 500, 1),
        );
        let data = &response.responses[0].partitions[0];
        assert_eq!(data.error_code, 0, "fetch error");
        for (base, count, bytes) in split_batches(&data.records.clone().unwrap_or_default()) {
            if base >= next {
                next = base + i64::from(count);
                batches.push((base, count, bytes));
            }
        }
    }
    assert_eq!(next, records, "{topic}/{partition}: records fetched");
    batches
}
