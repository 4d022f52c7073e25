//! `OffsetForLeaderEpoch`, `ListOffsets` by timestamp and max timestamp, and
//! `DeleteRecords`, spoken on the wire to a real agent process with requests
//! encoded as a client encodes them (`kafka-protocol`'s client side).

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteRecordsRequest, DeleteRecordsResponse,
    FetchRequest, FetchResponse, ListOffsetsRequest, ListOffsetsResponse,
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, ProduceRequest, ProduceResponse,
    RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use support::AgentProcess;

const NONE: i16 = 0;
const OFFSET_OUT_OF_RANGE: i16 = 1;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const FENCED_LEADER_EPOCH: i16 = 74;
const UNKNOWN_LEADER_EPOCH: i16 = 75;

/// A connection that sends one request at a time and decodes its response.
struct Client {
    stream: TcpStream,
    correlation_id: i32,
}

impl Client {
    fn connect(agent: &AgentProcess) -> Self {
        let stream = TcpStream::connect(agent.address()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Client {
            stream,
            correlation_id: 0,
        }
    }

    fn call<Req: Encodable, Resp: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Req,
    ) -> Resp {
        self.correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(StrBytes::from_static_str("fjord-admin-wire"));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api.request_header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = u32::try_from(body.len()).unwrap().to_be_bytes().to_vec();
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).unwrap();
        let mut response = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut response).unwrap();
        let mut bytes = Bytes::from(response);
        let header =
            ResponseHeader::decode(&mut bytes, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        Resp::decode(&mut bytes, version).unwrap()
    }

    fn create_topic(&mut self, name: &str) {
        let mut topic = CreatableTopic::default();
        topic.name = topic_name(name);
        topic.num_partitions = 1;
        topic.replication_factor = 1;
        let mut request = CreateTopicsRequest::default();
        request.topics = vec![topic];
        request.timeout_ms = 10_000;
        let response: CreateTopicsResponse = self.call(ApiKey::CreateTopics, 7, &request);
        assert_eq!(response.topics[0].error_code, NONE, "{response:?}");
    }

    /// Produces one batch of records stamped `timestamps` to partition 0 and
    /// returns its base offset once committed.
    fn produce(&mut self, topic: &str, timestamps: &[i64], compression: Compression) -> i64 {
        let mut partition = PartitionProduceData::default();
        partition.index = 0;
        partition.records = Some(batch(timestamps, compression));
        let mut topic_data = TopicProduceData::default();
        topic_data.name = topic_name(topic);
        topic_data.partition_data = vec![partition];
        let mut request = ProduceRequest::default();
        request.acks = -1;
        request.timeout_ms = 30_000;
        request.topic_data = vec![topic_data];
        let response: ProduceResponse = self.call(ApiKey::Produce, 9, &request);
        let partition = &response.responses[0].partition_responses[0];
        assert_eq!(partition.error_code, NONE, "{response:?}");
        partition.base_offset
    }

    /// `ListOffsets` v7 for partition 0: (error, offset, timestamp, leader epoch).
    fn list_offset(&mut self, topic: &str, timestamp: i64) -> (i16, i64, i64, i32) {
        let mut partition = ListOffsetsPartition::default();
        partition.partition_index = 0;
        partition.timestamp = timestamp;
        let mut wanted = ListOffsetsTopic::default();
        wanted.name = topic_name(topic);
        wanted.partitions = vec![partition];
        let mut request = ListOffsetsRequest::default();
        request.replica_id = kafka_protocol::messages::BrokerId(-1);
        request.topics = vec![wanted];
        let response: ListOffsetsResponse = self.call(ApiKey::ListOffsets, 7, &request);
        let answer = &response.topics[0].partitions[0];
        (
            answer.error_code,
            answer.offset,
            answer.timestamp,
            answer.leader_epoch,
        )
    }

    /// `OffsetForLeaderEpoch` at `version` for `partition`: (error, epoch, end offset).
    fn epoch_end(
        &mut self,
        version: i16,
        topic: &str,
        partition: i32,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> (i16, i32, i64) {
        let mut wanted = OffsetForLeaderPartition::default();
        wanted.partition = partition;
        wanted.current_leader_epoch = current_leader_epoch;
        wanted.leader_epoch = leader_epoch;
        let mut topic_request = OffsetForLeaderTopic::default();
        topic_request.topic = topic_name(topic);
        topic_request.partitions = vec![wanted];
        let mut request = OffsetForLeaderEpochRequest::default();
        if version >= 3 {
            request.replica_id = kafka_protocol::messages::BrokerId(-1);
        }
        request.topics = vec![topic_request];
        let response: OffsetForLeaderEpochResponse =
            self.call(ApiKey::OffsetForLeaderEpoch, version, &request);
        assert_eq!(response.topics.len(), 1);
        let answer = &response.topics[0].partitions[0];
        assert_eq!(answer.partition, partition);
        (answer.error_code, answer.leader_epoch, answer.end_offset)
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

/// One v2 record batch, encoded as a producer encodes it, its records stamped
/// `timestamps` (CreateTime).
fn batch(timestamps: &[i64], compression: Compression) -> Bytes {
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, timestamp)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: *timestamp,
            key: None,
            value: Some(Bytes::from(format!("record at {timestamp}"))),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .unwrap();
    out.freeze()
}

#[test]
fn offset_for_leader_epoch_answers_where_each_epoch_ends() {
    let dir = tempfile::tempdir().unwrap();
    let topic = "epochs";
    {
        // Leader epoch 1: the first agent's first produce takes leadership.
        let agent = AgentProcess::start(dir.path(), &["--flush-interval-ms", "10"]);
        let mut client = Client::connect(&agent);
        client.create_topic(topic);
        assert_eq!(client.produce(topic, &[1, 2, 3], Compression::None), 0);
        assert_eq!(client.epoch_end(4, topic, 0, -1, 1), (NONE, 1, 3));
    }
    // A new agent over the same metadata and bucket takes leadership at epoch 2.
    let agent = AgentProcess::start(dir.path(), &["--flush-interval-ms", "10"]);
    let mut client = Client::connect(&agent);
    assert_eq!(client.produce(topic, &[4, 5], Compression::Lz4), 3);
    assert_eq!(client.produce(topic, &[6], Compression::None), 5);

    for version in 2..=4 {
        // The current epoch ends at the high watermark; an older one where the
        // next began; one older than any in the log at the first offset.
        assert_eq!(client.epoch_end(version, topic, 0, -1, 2), (NONE, 2, 6));
        assert_eq!(client.epoch_end(version, topic, 0, -1, 1), (NONE, 1, 3));
        assert_eq!(client.epoch_end(version, topic, 0, -1, 0), (NONE, 0, 0));
        // An epoch newer than the partition's: Kafka's undefined answer.
        assert_eq!(client.epoch_end(version, topic, 0, -1, 3), (NONE, -1, -1));
        // The client's view of the current epoch is checked when given.
        assert_eq!(client.epoch_end(version, topic, 0, 2, 1), (NONE, 1, 3));
        assert_eq!(
            client.epoch_end(version, topic, 0, 1, 1),
            (FENCED_LEADER_EPOCH, -1, -1)
        );
        assert_eq!(
            client.epoch_end(version, topic, 0, 3, 1),
            (UNKNOWN_LEADER_EPOCH, -1, -1)
        );
        assert_eq!(
            client.epoch_end(version, topic, 7, -1, 1),
            (UNKNOWN_TOPIC_OR_PARTITION, -1, -1)
        );
        assert_eq!(
            client.epoch_end(version, "no-such-topic", 0, -1, 1),
            (UNKNOWN_TOPIC_OR_PARTITION, -1, -1)
        );
    }
    // ListOffsets reports the epoch of what it finds.
    assert_eq!(client.list_offset(topic, -1), (NONE, 6, -1, 2));
    assert_eq!(client.list_offset(topic, -2), (NONE, 0, -1, 1));
    assert_eq!(client.list_offset(topic, 4), (NONE, 3, 4, 2));
}

#[test]
fn list_offsets_finds_records_by_timestamp_and_delete_records_moves_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &["--flush-interval-ms", "10"]);
    let mut client = Client::connect(&agent);
    let topic = "stamped";
    client.create_topic(topic);
    // An empty log: nothing to find.
    assert_eq!(client.list_offset(topic, -3), (NONE, -1, -1, -1));
    assert_eq!(client.list_offset(topic, 0), (NONE, -1, -1, -1));

    // Offsets 0..3 and 3..6, in two segment chunks; the largest timestamp, 5000,
    // is held by offsets 1 and 4, inside their batches.
    assert_eq!(
        client.produce(topic, &[1000, 5000, 2000], Compression::None),
        0
    );
    assert_eq!(
        client.produce(topic, &[3000, 5000, 4000], Compression::Zstd),
        3
    );

    // Max timestamp: the first record holding it.
    assert_eq!(client.list_offset(topic, -3), (NONE, 1, 5000, 1));
    // By timestamp: the first record (by offset) at or after it, with its own
    // timestamp.
    assert_eq!(client.list_offset(topic, 0), (NONE, 0, 1000, 1));
    assert_eq!(client.list_offset(topic, 1000), (NONE, 0, 1000, 1));
    assert_eq!(client.list_offset(topic, 1001), (NONE, 1, 5000, 1));
    assert_eq!(client.list_offset(topic, 5000), (NONE, 1, 5000, 1));
    assert_eq!(client.list_offset(topic, 5001), (NONE, -1, -1, -1));
    assert_eq!(client.list_offset(topic, -2), (NONE, 0, -1, 1));
    assert_eq!(client.list_offset(topic, -1), (NONE, 6, -1, 1));

    // DeleteRecords up to offset 2 (the middle of the first batch).
    let delete = |client: &mut Client, version: i16, offset: i64| -> (i16, i64) {
        let mut partition = DeleteRecordsPartition::default();
        partition.partition_index = 0;
        partition.offset = offset;
        let mut wanted = DeleteRecordsTopic::default();
        wanted.name = topic_name(topic);
        wanted.partitions = vec![partition];
        let mut request = DeleteRecordsRequest::default();
        request.topics = vec![wanted];
        request.timeout_ms = 10_000;
        let response: DeleteRecordsResponse = client.call(ApiKey::DeleteRecords, version, &request);
        let result = &response.topics[0].partitions[0];
        (result.error_code, result.low_watermark)
    };
    assert_eq!(delete(&mut client, 2, 2), (NONE, 2));
    assert_eq!(delete(&mut client, 0, 1), (NONE, 2), "never backwards");
    assert_eq!(delete(&mut client, 1, 7), (OFFSET_OUT_OF_RANGE, -1));
    assert_eq!(delete(&mut client, 1, -5), (OFFSET_OUT_OF_RANGE, -1));

    // Offsets 0 and 1 are gone for every reader.
    assert_eq!(client.list_offset(topic, -2), (NONE, 2, -1, 1));
    assert_eq!(client.list_offset(topic, 0), (NONE, 2, 2000, 1));
    assert_eq!(client.list_offset(topic, -3), (NONE, 4, 5000, 1));
    let fetch = |client: &mut Client, offset: i64| -> (i16, i64, i64) {
        let mut partition = FetchPartition::default();
        partition.partition = 0;
        partition.fetch_offset = offset;
        partition.partition_max_bytes = 1 << 20;
        let mut wanted = FetchTopic::default();
        wanted.topic = topic_name(topic);
        wanted.partitions = vec![partition];
        let mut request = FetchRequest::default();
        request.replica_id = kafka_protocol::messages::BrokerId(-1);
        request.max_wait_ms = 0;
        request.min_bytes = 1;
        request.max_bytes = 1 << 20;
        request.topics = vec![wanted];
        let response: FetchResponse = client.call(ApiKey::Fetch, 11, &request);
        let data = &response.responses[0].partitions[0];
        (data.error_code, data.log_start_offset, data.high_watermark)
    };
    assert_eq!(fetch(&mut client, 0), (OFFSET_OUT_OF_RANGE, 2, 6));
    assert_eq!(fetch(&mut client, 2), (NONE, 2, 6));
    // -1 deletes up to the high watermark.
    assert_eq!(delete(&mut client, 2, -1), (NONE, 6));
    assert_eq!(client.list_offset(topic, -2), (NONE, 6, -1, 1));
    assert_eq!(client.list_offset(topic, -3), (NONE, -1, -1, -1));
}

#[test]
fn max_timestamp_ignores_records_below_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &["--flush-interval-ms", "10"]);
    let mut client = Client::connect(&agent);
    let topic = "straddled";
    client.create_topic(topic);
    assert_eq!(
        client.produce(topic, &[1000, 9000, 3000], Compression::Snappy),
        0
    );
    assert_eq!(client.produce(topic, &[2000], Compression::None), 3);
    assert_eq!(client.list_offset(topic, -3), (NONE, 1, 9000, 1));
    // The log start cuts the first chunk after the record holding 9000: the
    // largest timestamp left is 3000, at offset 2.
    let mut partition =
        kafka_protocol::messages::delete_records_request::DeleteRecordsPartition::default();
    partition.partition_index = 0;
    partition.offset = 2;
    let mut wanted = DeleteRecordsTopic::default();
    wanted.name = topic_name(topic);
    wanted.partitions = vec![partition];
    let mut request = DeleteRecordsRequest::default();
    request.topics = vec![wanted];
    let response: DeleteRecordsResponse = client.call(ApiKey::DeleteRecords, 2, &request);
    assert_eq!(response.topics[0].partitions[0].low_watermark, 2);
    assert_eq!(client.list_offset(topic, -3), (NONE, 2, 3000, 1));
    assert_eq!(client.list_offset(topic, 2500), (NONE, 2, 3000, 1));
    assert_eq!(client.list_offset(topic, 3001), (NONE, -1, -1, -1));
}

#[test]
fn describe_cluster_configs_and_partitions_at_every_served_version() {
    use kafka_protocol::messages::create_partitions_request::{
        CreatePartitionsAssignment, CreatePartitionsTopic,
    };
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{
        BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, DescribeClusterRequest,
        DescribeClusterResponse, DescribeConfigsRequest, DescribeConfigsResponse,
        IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
    };
    const INVALID_PARTITIONS: i16 = 37;
    const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    const INVALID_CONFIG: i16 = 40;
    const INVALID_REQUEST: i16 = 42;
    const UNSUPPORTED_ENDPOINT_TYPE: i16 = 115;

    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &[]);
    let mut client = Client::connect(&agent);
    client.create_topic("described");

    // DescribeCluster: this agent, as controller and broker.
    let mut node_id = None;
    for version in 0..=1 {
        for include_operations in [false, true] {
            let mut request = DescribeClusterRequest::default();
            request.include_cluster_authorized_operations = include_operations;
            let response: DescribeClusterResponse =
                client.call(ApiKey::DescribeCluster, version, &request);
            assert_eq!(response.error_code, NONE, "{response:?}");
            assert!(!response.cluster_id.is_empty());
            let me: Vec<_> = response
                .brokers
                .iter()
                .filter(|b| b.port == i32::from(agent.port))
                .collect();
            assert_eq!(me.len(), 1, "{response:?}");
            assert_eq!(me[0].broker_id, response.controller_id);
            assert_eq!(me[0].host.as_str(), "127.0.0.1");
            node_id = Some(response.controller_id.0);
            if include_operations {
                // DESCRIBE (8) and ALTER_CONFIGS (11) among the granted bits.
                let bits = response.cluster_authorized_operations;
                assert!(bits & (1 << 8) != 0 && bits & (1 << 11) != 0, "{bits:#x}");
            } else {
                assert_eq!(response.cluster_authorized_operations, i32::MIN);
            }
        }
    }
    let node_id = node_id.unwrap();
    let mut controllers = DescribeClusterRequest::default();
    controllers.endpoint_type = 2;
    let response: DescribeClusterResponse = client.call(ApiKey::DescribeCluster, 1, &controllers);
    assert_eq!(
        response.error_code, UNSUPPORTED_ENDPOINT_TYPE,
        "{response:?}"
    );

    // DescribeConfigs: types and documentation from v3, filters, resource errors.
    let resource = |resource_type: i8, name: &str, keys: Option<&[&str]>| {
        let mut resource = DescribeConfigsResource::default();
        resource.resource_type = resource_type;
        resource.resource_name = StrBytes::from_string(name.to_owned());
        resource.configuration_keys = keys.map(|keys| {
            keys.iter()
                .map(|k| StrBytes::from_string((*k).to_owned()))
                .collect()
        });
        resource
    };
    for version in 1..=4 {
        let mut request = DescribeConfigsRequest::default();
        // Documentation can be asked for from v3 on.
        request.include_documentation = version >= 3;
        request.resources = vec![
            resource(2, "described", Some(&["retention.ms", "cleanup.policy"])),
            resource(2, "described", None),
            resource(4, &node_id.to_string(), Some(&["num.partitions"])),
            resource(4, "", Some(&["num.partitions"])),
            resource(4, "12345", None),
            resource(2, "no-such-topic", None),
            resource(99, "anything", None),
        ];
        let response: DescribeConfigsResponse =
            client.call(ApiKey::DescribeConfigs, version, &request);
        let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
        assert_eq!(
            codes,
            vec![
                NONE,
                NONE,
                NONE,
                NONE,
                INVALID_REQUEST,
                UNKNOWN_TOPIC_OR_PARTITION,
                INVALID_REQUEST
            ],
            "v{version}: {response:?}"
        );
        let filtered = &response.results[0].configs;
        let names: Vec<&str> = filtered.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, vec!["cleanup.policy", "retention.ms"]);
        assert!(response.results[1].configs.len() > 20);
        let retention = &filtered[1];
        assert_eq!(retention.value.as_ref().unwrap().as_str(), "604800000");
        assert_eq!(retention.config_source, 5, "DEFAULT_CONFIG");
        assert!(retention.synonyms.is_empty(), "synonyms were not asked for");
        if version >= 3 {
            assert_eq!(retention.config_type, 5, "LONG");
            assert_eq!(filtered[0].config_type, 7, "LIST");
            assert!(retention.documentation.is_some());
        } else {
            // Neither field is on the wire before v3.
            assert_eq!(retention.config_type, 0);
        }
        let partitions = &response.results[2].configs;
        assert_eq!(partitions.len(), 1);
        assert!(partitions[0].read_only);
        assert_eq!(partitions[0].value.as_ref().unwrap().as_str(), "1");
    }

    // CreatePartitions: a duplicated topic, assignments, counts.
    type Grow<'a> = (&'a str, i32, Option<Vec<Vec<i32>>>);
    let grow = |client: &mut Client, version: i16, topics: Vec<Grow<'_>>| {
        let mut request = CreatePartitionsRequest::default();
        request.timeout_ms = 10_000;
        request.topics = topics
            .into_iter()
            .map(|(name, count, assignments)| {
                let mut topic = CreatePartitionsTopic::default();
                topic.name = topic_name(name);
                topic.count = count;
                topic.assignments = assignments.map(|lists| {
                    lists
                        .into_iter()
                        .map(|ids| {
                            let mut assignment = CreatePartitionsAssignment::default();
                            assignment.broker_ids = ids.into_iter().map(BrokerId).collect();
                            assignment
                        })
                        .collect()
                });
                topic
            })
            .collect();
        let response: CreatePartitionsResponse =
            client.call(ApiKey::CreatePartitions, version, &request);
        response
            .results
            .iter()
            .map(|r| (r.name.0.to_string(), r.error_code))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        grow(
            &mut client,
            3,
            vec![("described", 5, None), ("described", 6, None)]
        ),
        vec![("described".into(), INVALID_REQUEST)]
    );
    assert_eq!(
        grow(
            &mut client,
            3,
            vec![("described", 3, Some(vec![vec![node_id]]))]
        ),
        vec![("described".into(), INVALID_REPLICA_ASSIGNMENT)],
        "one assignment for two new partitions"
    );
    assert_eq!(
        grow(
            &mut client,
            3,
            vec![("described", 2, Some(vec![vec![node_id, node_id]]))]
        ),
        vec![("described".into(), INVALID_REPLICA_ASSIGNMENT)],
        "a broker twice"
    );
    assert_eq!(
        grow(&mut client, 3, vec![("described", 2, Some(vec![vec![]]))]),
        vec![("described".into(), INVALID_REPLICA_ASSIGNMENT)],
        "an empty replica list"
    );
    assert_eq!(
        grow(
            &mut client,
            2,
            vec![("described", 3, Some(vec![vec![node_id], vec![node_id]]))]
        ),
        vec![("described".into(), NONE)]
    );
    assert_eq!(
        grow(
            &mut client,
            0,
            vec![("described", 3, None), ("missing", 2, None)]
        ),
        vec![
            ("described".into(), INVALID_PARTITIONS),
            ("missing".into(), UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    assert_eq!(
        grow(&mut client, 1, vec![("described", 10_001, None)]),
        vec![("described".into(), INVALID_PARTITIONS)]
    );

    // IncrementalAlterConfigs: malformed operations are INVALID_REQUEST.
    let alter = |client: &mut Client, configs: Vec<(&str, i8, Option<&str>)>| {
        let mut resource = AlterConfigsResource::default();
        resource.resource_type = 2;
        resource.resource_name = StrBytes::from_static_str("described");
        resource.configs = configs
            .into_iter()
            .map(|(name, op, value)| {
                let mut config = AlterableConfig::default();
                config.name = StrBytes::from_string(name.to_owned());
                config.config_operation = op;
                config.value = value.map(|v| StrBytes::from_string(v.to_owned()));
                config
            })
            .collect();
        let mut request = IncrementalAlterConfigsRequest::default();
        request.resources = vec![resource];
        let response: IncrementalAlterConfigsResponse =
            client.call(ApiKey::IncrementalAlterConfigs, 1, &request);
        response.responses[0].error_code
    };
    assert_eq!(
        alter(&mut client, vec![("retention.ms", 7, Some("1"))]),
        INVALID_REQUEST
    );
    assert_eq!(
        alter(&mut client, vec![("retention.ms", 0, None)]),
        INVALID_REQUEST
    );
    assert_eq!(
        alter(
            &mut client,
            vec![("retention.ms", 0, Some("1")), ("retention.ms", 1, None)]
        ),
        INVALID_REQUEST
    );
    assert_eq!(
        alter(&mut client, vec![("retention.ms", 0, Some("-7"))]),
        INVALID_CONFIG
    );
    assert_eq!(
        alter(&mut client, vec![("retention.ms", 0, Some("99"))]),
        NONE
    );
}
