//! ACLs over the wire, in process: a broker with the ACL authorizer
//! (`super.users` = `User:admin`), connections served as known principals
//! ([`TestBroker::connect_in_memory_as`]), ACLs created by the admin through
//! `CreateAcls`.
//!
//! For every API the agent serves, a principal without the permission Kafka
//! asks for is refused with Kafka's code, and served once the admin grants
//! it (each API's case uses its own principal, so grants do not leak between
//! cases). Then: the ACL APIs themselves, prefixed and deny ACLs taking
//! precedence, super users, deny by default and
//! `allow.everyone.if.no.acl.found`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod in_process;

use fjord_agent::BrokerSettings;
use fjord_agent::security::Principal;
use fjord_agent::security::authorizer::{AuthorizerKind, AuthorizerSettings};
use fjord_metadata::{AclOperation, AclPermission, PatternType, ResourceType};
use in_process::wire::{self, TestRecord};
use in_process::{Client, TestBroker};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::DuplexStream;

use AclOperation::*;
use AclPermission::{Allow, Deny};
use PatternType::{Literal, Prefixed};
use ResourceType::{Cluster, Group, Topic, TransactionalId as TxnId};

const TOPIC_DENIED: ResponseError = ResponseError::TopicAuthorizationFailed;
const GROUP_DENIED: ResponseError = ResponseError::GroupAuthorizationFailed;
const CLUSTER_DENIED: ResponseError = ResponseError::ClusterAuthorizationFailed;
const TXN_DENIED: ResponseError = ResponseError::TransactionalIdAuthorizationFailed;

/// One connection and its correlation ids.
struct Conn {
    client: Client<DuplexStream>,
    correlation_id: i32,
}

impl Conn {
    async fn call<Q: Encodable, R: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Q,
    ) -> R {
        self.correlation_id += 1;
        self.client
            .call(api, version, self.correlation_id, request)
            .await
    }
}

fn settings(allow_everyone_if_no_acl_found: bool) -> BrokerSettings {
    BrokerSettings {
        authorizer: AuthorizerSettings {
            kind: AuthorizerKind::Acl,
            super_users: ["User:admin".to_owned()].into(),
            allow_everyone_if_no_acl_found,
        },
        ..BrokerSettings::default()
    }
}

fn connect(broker: &TestBroker, user: &str) -> Conn {
    Conn {
        client: broker.connect_in_memory_as(1 << 20, Principal::user(user)),
        correlation_id: 0,
    }
}

fn acl(
    resource_type: ResourceType,
    name: &str,
    pattern: PatternType,
    principal: &str,
    operation: AclOperation,
    permission: AclPermission,
) -> create_acls_request::AclCreation {
    let mut creation = create_acls_request::AclCreation::default();
    creation.resource_type = resource_type.code();
    creation.resource_name = StrBytes::from_string(name.to_owned());
    creation.resource_pattern_type = pattern.code();
    creation.principal = StrBytes::from_string(principal.to_owned());
    creation.host = StrBytes::from_static_str("*");
    creation.operation = operation.code();
    creation.permission_type = permission.code();
    creation
}

/// `ALLOW` of `operation` on a literal resource, for `User:<user>`.
fn allow(
    resource_type: ResourceType,
    name: &str,
    user: &str,
    operation: AclOperation,
) -> create_acls_request::AclCreation {
    acl(
        resource_type,
        name,
        Literal,
        &format!("User:{user}"),
        operation,
        Allow,
    )
}

/// The admin creates `acls`, which must all succeed.
async fn grant(admin: &mut Conn, acls: Vec<create_acls_request::AclCreation>) {
    if acls.is_empty() {
        return;
    }
    let mut request = CreateAclsRequest::default();
    request.creations = acls;
    let response: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 3, &request).await;
    for result in &response.results {
        assert_eq!(result.error_code, 0, "{result:?}");
    }
}

/// What a step expects of the error codes of a response.
enum Expect {
    /// Exactly these codes.
    Codes(Vec<i16>),
    /// At least one code, and none is this one.
    Not(ResponseError),
}

/// Exactly these errors.
fn is(errors: &[ResponseError]) -> Expect {
    Expect::Codes(errors.iter().map(|e| e.code()).collect())
}

/// `n` codes, all 0.
fn ok(n: usize) -> Expect {
    Expect::Codes(vec![0; n])
}

fn check(what: &str, step: usize, codes: &[i16], expect: &Expect) {
    match expect {
        Expect::Codes(expected) => assert_eq!(codes, expected, "{what}, step {step}"),
        Expect::Not(refused) => {
            assert!(!codes.is_empty(), "{what}, step {step}: no codes");
            assert!(
                codes.iter().all(|c| *c != refused.code()),
                "{what}, step {step}: {codes:?} still has {refused:?}"
            );
        }
    }
}

/// Sends `request` as `user` once per step: before each, the admin grants
/// the step's ACLs; after, the codes `codes` reads from the response must be
/// as the step expects.
#[allow(clippy::too_many_arguments)]
async fn steps<Q: Encodable, R: Decodable>(
    broker: &TestBroker,
    admin: &mut Conn,
    user: &str,
    api: ApiKey,
    version: i16,
    request: &Q,
    codes: impl Fn(&R) -> Vec<i16>,
    steps: Vec<(Vec<create_acls_request::AclCreation>, Expect)>,
) {
    let mut conn = connect(broker, user);
    for (number, (acls, expect)) in steps.into_iter().enumerate() {
        grant(admin, acls).await;
        let response: R = conn.call(api, version, request).await;
        check(
            &format!("{api:?} v{version} as {user}"),
            number,
            &codes(&response),
            &expect,
        );
    }
}

fn records(label: &str) -> bytes::Bytes {
    wire::batch(&[TestRecord::new(label, label, 1_700_000_000_000)], None)
}

fn produce_codes(r: &ProduceResponse) -> Vec<i16> {
    r.responses
        .iter()
        .flat_map(|t| t.partition_responses.iter().map(|p| p.error_code))
        .collect()
}

/// A broker with the authorizer on, its flusher running, and the admin's
/// connection.
async fn fixture() -> (TestBroker, Conn) {
    let mut broker = TestBroker::new(settings(false)).await;
    broker.start_flusher();
    let admin = connect(&broker, "admin");
    (broker, admin)
}

// ----- the data path -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_fetch_and_offsets_need_their_topic_permissions() {
    let (broker, mut admin) = fixture().await;
    broker.create_topic("t-produce", 1).await;

    // Produce: WRITE on the topic.
    let produce = wire::produce_request("t-produce", 0, records("a"), -1);
    steps(
        &broker,
        &mut admin,
        "producer",
        ApiKey::Produce,
        9,
        &produce,
        produce_codes,
        vec![
            (vec![], is(&[TOPIC_DENIED])),
            // READ is not WRITE.
            (
                vec![allow(Topic, "t-produce", "producer", Read)],
                is(&[TOPIC_DENIED]),
            ),
            (vec![allow(Topic, "t-produce", "producer", Write)], ok(1)),
        ],
    )
    .await;

    // A transactional produce: WRITE on the transactional id as well.
    let mut transactional = wire::produce_request("t-produce", 0, records("b"), -1);
    transactional.transactional_id = Some(TransactionalId(StrBytes::from_static_str("tx-p")));
    steps(
        &broker,
        &mut admin,
        "txn-producer",
        ApiKey::Produce,
        9,
        &transactional,
        produce_codes,
        vec![
            (
                vec![allow(Topic, "t-produce", "txn-producer", Write)],
                is(&[TXN_DENIED]),
            ),
            (
                vec![allow(TxnId, "tx-p", "txn-producer", Write)],
                Expect::Not(TXN_DENIED),
            ),
        ],
    )
    .await;

    // Fetch by name (v12): READ.
    let fetch = wire::fetch_request("t-produce", 0, 0, 0, 0);
    let fetch_codes = |r: &FetchResponse| -> Vec<i16> {
        r.responses
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()
    };
    steps(
        &broker,
        &mut admin,
        "consumer",
        ApiKey::Fetch,
        12,
        &fetch,
        fetch_codes,
        vec![
            (vec![], is(&[TOPIC_DENIED])),
            (vec![allow(Topic, "t-produce", "consumer", Read)], ok(1)),
        ],
    )
    .await;
    // Fetch by id (v13+): an unknown id is UNKNOWN_TOPIC_ID, a known one
    // needs READ.
    let topic_id = broker
        .broker
        .store
        .describe_topic("t-produce")
        .await
        .unwrap()
        .id
        .0;
    let mut by_id = wire::fetch_request("t-produce", 0, 0, 0, 0);
    by_id.topics[0].topic_id = topic_id;
    steps(
        &broker,
        &mut admin,
        "id-consumer",
        ApiKey::Fetch,
        13,
        &by_id,
        fetch_codes,
        vec![
            (vec![], is(&[TOPIC_DENIED])),
            (vec![allow(Topic, "t-produce", "id-consumer", Read)], ok(1)),
        ],
    )
    .await;
    let mut unknown_id = by_id.clone();
    unknown_id.topics[0].topic_id = uuid::Uuid::from_u128(99);
    steps(
        &broker,
        &mut admin,
        "id-consumer-2",
        ApiKey::Fetch,
        13,
        &unknown_id,
        fetch_codes,
        vec![(vec![], is(&[ResponseError::UnknownTopicId]))],
    )
    .await;

    // ListOffsets: DESCRIBE, which READ implies.
    let list = wire::list_offsets_request("t-produce", 0, -1);
    steps(
        &broker,
        &mut admin,
        "offsets",
        ApiKey::ListOffsets,
        7,
        &list,
        |r: &ListOffsetsResponse| {
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect()
        },
        vec![
            (vec![], is(&[TOPIC_DENIED])),
            (vec![allow(Topic, "t-produce", "offsets", Read)], ok(1)),
        ],
    )
    .await;

    // OffsetForLeaderEpoch: DESCRIBE (or CLUSTER_ACTION on the cluster).
    let mut epochs = OffsetForLeaderEpochRequest::default();
    epochs.replica_id = BrokerId(-1);
    let mut partition = offset_for_leader_epoch_request::OffsetForLeaderPartition::default();
    partition.partition = 0;
    partition.current_leader_epoch = -1;
    partition.leader_epoch = 0;
    let mut topic = offset_for_leader_epoch_request::OffsetForLeaderTopic::default();
    topic.topic = wire::topic_name("t-produce");
    topic.partitions = vec![partition];
    epochs.topics = vec![topic];
    let epoch_codes = |r: &OffsetForLeaderEpochResponse| -> Vec<i16> {
        r.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()
    };
    for (user, grants) in [
        (
            "epochs",
            vec![allow(Topic, "t-produce", "epochs", Describe)],
        ),
        (
            "follower",
            vec![allow(Cluster, "kafka-cluster", "follower", ClusterAction)],
        ),
    ] {
        steps(
            &broker,
            &mut admin,
            user,
            ApiKey::OffsetForLeaderEpoch,
            4,
            &epochs,
            epoch_codes,
            vec![(vec![], is(&[TOPIC_DENIED])), (grants, ok(1))],
        )
        .await;
    }

    // DescribeProducers: READ.
    let mut producers = DescribeProducersRequest::default();
    let mut topic = describe_producers_request::TopicRequest::default();
    topic.name = wire::topic_name("t-produce");
    topic.partition_indexes = vec![0];
    producers.topics = vec![topic];
    steps(
        &broker,
        &mut admin,
        "producers",
        ApiKey::DescribeProducers,
        0,
        &producers,
        |r: &DescribeProducersResponse| {
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect()
        },
        vec![
            (vec![], is(&[TOPIC_DENIED])),
            (vec![allow(Topic, "t-produce", "producers", Read)], ok(1)),
        ],
    )
    .await;
}

// ----- metadata and topic administration -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_topic_admin_need_describe_create_delete_alter() {
    let (broker, mut admin) = fixture().await;
    for name in [
        "t-meta",
        "t-hidden",
        "t-delete",
        "t-records",
        "t-grow",
        "t-conf",
    ] {
        broker.create_topic(name, 1).await;
    }
    let topic_codes =
        |r: &MetadataResponse| -> Vec<i16> { r.topics.iter().map(|t| t.error_code).collect() };

    // Metadata by name: TOPIC_AUTHORIZATION_FAILED without DESCRIBE.
    let named = wire::metadata_request(&["t-meta"]);
    steps(
        &broker,
        &mut admin,
        "meta",
        ApiKey::Metadata,
        12,
        &named,
        topic_codes,
        vec![
            (vec![], is(&[TOPIC_DENIED])),
            (vec![allow(Topic, "t-meta", "meta", Describe)], ok(1)),
        ],
    )
    .await;
    // All topics: only the described ones are listed.
    let mut conn = connect(&broker, "meta");
    let mut all = MetadataRequest::default();
    all.topics = None;
    let listed: MetadataResponse = conn.call(ApiKey::Metadata, 12, &all).await;
    let names: Vec<String> = listed
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().0.to_string())
        .collect();
    assert_eq!(names, vec!["t-meta".to_owned()]);
    // Auto-creation needs CREATE on the cluster or the topic, besides DESCRIBE.
    let create = wire::metadata_request(&["auto-one"]);
    steps(
        &broker,
        &mut admin,
        "auto",
        ApiKey::Metadata,
        12,
        &create,
        topic_codes,
        vec![
            (
                vec![acl(Topic, "auto-", Prefixed, "User:auto", Describe, Allow)],
                is(&[TOPIC_DENIED]),
            ),
            (
                vec![acl(Topic, "auto-", Prefixed, "User:auto", Create, Allow)],
                ok(1),
            ),
        ],
    )
    .await;
    assert!(broker.broker.store.describe_topic("auto-one").await.is_ok());

    // DescribeTopicPartitions: DESCRIBE; listing all leaves the others out.
    let mut described = DescribeTopicPartitionsRequest::default();
    let mut wanted = describe_topic_partitions_request::TopicRequest::default();
    wanted.name = wire::topic_name("t-hidden");
    described.topics = vec![wanted];
    described.response_partition_limit = 100;
    steps(
        &broker,
        &mut admin,
        "dtp",
        ApiKey::DescribeTopicPartitions,
        0,
        &described,
        |r: &DescribeTopicPartitionsResponse| r.topics.iter().map(|t| t.error_code).collect(),
        vec![
            (vec![], is(&[TOPIC_DENIED])),
            (vec![allow(Topic, "t-hidden", "dtp", Describe)], ok(1)),
        ],
    )
    .await;
    let mut every = DescribeTopicPartitionsRequest::default();
    every.response_partition_limit = 100;
    let mut conn = connect(&broker, "dtp");
    let listed: DescribeTopicPartitionsResponse =
        conn.call(ApiKey::DescribeTopicPartitions, 0, &every).await;
    let names: Vec<String> = listed
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().0.to_string())
        .collect();
    assert_eq!(names, vec!["t-hidden".to_owned()]);

    // CreateTopics: CREATE on the cluster or on the topic.
    for (user, grants) in [
        (
            "creator",
            vec![allow(Cluster, "kafka-cluster", "creator", Create)],
        ),
        (
            "prefix-creator",
            vec![acl(
                Topic,
                "new-",
                Prefixed,
                "User:prefix-creator",
                Create,
                Allow,
            )],
        ),
    ] {
        let mut request = CreateTopicsRequest::default();
        let mut topic = create_topics_request::CreatableTopic::default();
        topic.name = wire::topic_name(&format!("new-{user}"));
        topic.num_partitions = 1;
        topic.replication_factor = 1;
        request.topics = vec![topic];
        request.timeout_ms = 10_000;
        steps(
            &broker,
            &mut admin,
            user,
            ApiKey::CreateTopics,
            7,
            &request,
            |r: &CreateTopicsResponse| r.topics.iter().map(|t| t.error_code).collect(),
            vec![(vec![], is(&[TOPIC_DENIED])), (grants, ok(1))],
        )
        .await;
    }

    // DeleteTopics: DELETE.
    let mut delete = DeleteTopicsRequest::default();
    let mut state = delete_topics_request::DeleteTopicState::default();
    state.name = Some(wire::topic_name("t-delete"));
    delete.topics = vec![state];
    delete.timeout_ms = 10_000;
    steps(
        &broker,
        &mut admin,
        "deleter",
        ApiKey::DeleteTopics,
        6,
        &delete,
        |r: &DeleteTopicsResponse| r.responses.iter().map(|t| t.error_code).collect(),
        vec![
            (
                vec![allow(Topic, "t-delete", "deleter", Describe)],
                is(&[TOPIC_DENIED]),
            ),
            (vec![allow(Topic, "t-delete", "deleter", Delete)], ok(1)),
        ],
    )
    .await;

    // DeleteRecords: DELETE.
    let mut records = DeleteRecordsRequest::default();
    let mut partition = delete_records_request::DeleteRecordsPartition::default();
    partition.partition_index = 0;
    partition.offset = -1;
    let mut topic = delete_records_request::DeleteRecordsTopic::default();
    topic.name = wire::topic_name("t-records");
    topic.partitions = vec![partition];
    records.topics = vec![topic];
    records.timeout_ms = 10_000;
    steps(
        &broker,
        &mut admin,
        "truncater",
        ApiKey::DeleteRecords,
        2,
        &records,
        |r: &DeleteRecordsResponse| {
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect()
        },
        vec![
            (vec![], is(&[TOPIC_DENIED])),
            (vec![allow(Topic, "t-records", "truncater", Delete)], ok(1)),
        ],
    )
    .await;

    // CreatePartitions: ALTER.
    let mut grow = CreatePartitionsRequest::default();
    let mut topic = create_partitions_request::CreatePartitionsTopic::default();
    topic.name = wire::topic_name("t-grow");
    topic.count = 2;
    topic.assignments = None;
    grow.topics = vec![topic];
    grow.timeout_ms = 10_000;
    steps(
        &broker,
        &mut admin,
        "grower",
        ApiKey::CreatePartitions,
        3,
        &grow,
        |r: &CreatePartitionsResponse| r.results.iter().map(|t| t.error_code).collect(),
        vec![
            (vec![], is(&[TOPIC_DENIED])),
            (vec![allow(Topic, "t-grow", "grower", Alter)], ok(1)),
        ],
    )
    .await;

    // DescribeConfigs: DESCRIBE_CONFIGS (which ALTER_CONFIGS implies) on the
    // topic; on the cluster for a broker.
    let config_request = |resource_type: i8, name: &str| {
        let mut request = DescribeConfigsRequest::default();
        let mut resource = describe_configs_request::DescribeConfigsResource::default();
        resource.resource_type = resource_type;
        resource.resource_name = StrBytes::from_string(name.to_owned());
        request.resources = vec![resource];
        request
    };
    let config_codes = |r: &DescribeConfigsResponse| -> Vec<i16> {
        r.results.iter().map(|t| t.error_code).collect()
    };
    steps(
        &broker,
        &mut admin,
        "config-reader",
        ApiKey::DescribeConfigs,
        4,
        &config_request(2, "t-conf"),
        config_codes,
        vec![
            (vec![], is(&[TOPIC_DENIED])),
            (
                vec![allow(Topic, "t-conf", "config-reader", AlterConfigs)],
                ok(1),
            ),
        ],
    )
    .await;
    steps(
        &broker,
        &mut admin,
        "broker-config-reader",
        ApiKey::DescribeConfigs,
        4,
        &config_request(4, ""),
        config_codes,
        vec![
            (vec![], is(&[CLUSTER_DENIED])),
            (
                vec![allow(
                    Cluster,
                    "kafka-cluster",
                    "broker-config-reader",
                    DescribeConfigs,
                )],
                ok(1),
            ),
        ],
    )
    .await;

    // AlterConfigs and IncrementalAlterConfigs: ALTER_CONFIGS.
    let mut alter = AlterConfigsRequest::default();
    let mut resource = alter_configs_request::AlterConfigsResource::default();
    resource.resource_type = 2;
    resource.resource_name = StrBytes::from_static_str("t-conf");
    let mut config = alter_configs_request::AlterableConfig::default();
    config.name = StrBytes::from_static_str("retention.ms");
    config.value = Some(StrBytes::from_static_str("3600000"));
    resource.configs = vec![config];
    alter.resources = vec![resource];
    steps(
        &broker,
        &mut admin,
        "alterer",
        ApiKey::AlterConfigs,
        2,
        &alter,
        |r: &AlterConfigsResponse| r.responses.iter().map(|t| t.error_code).collect(),
        vec![
            (
                vec![allow(Topic, "t-conf", "alterer", DescribeConfigs)],
                is(&[TOPIC_DENIED]),
            ),
            (vec![allow(Topic, "t-conf", "alterer", AlterConfigs)], ok(1)),
        ],
    )
    .await;
    let mut incremental = IncrementalAlterConfigsRequest::default();
    let mut resource = incremental_alter_configs_request::AlterConfigsResource::default();
    resource.resource_type = 2;
    resource.resource_name = StrBytes::from_static_str("t-conf");
    let mut config = incremental_alter_configs_request::AlterableConfig::default();
    config.name = StrBytes::from_static_str("retention.ms");
    config.config_operation = 0;
    config.value = Some(StrBytes::from_static_str("7200000"));
    resource.configs = vec![config];
    incremental.resources = vec![resource];
    steps(
        &broker,
        &mut admin,
        "incremental",
        ApiKey::IncrementalAlterConfigs,
        1,
        &incremental,
        |r: &IncrementalAlterConfigsResponse| r.responses.iter().map(|t| t.error_code).collect(),
        vec![
            (vec![], is(&[TOPIC_DENIED])),
            (vec![allow(Topic, "t-conf", "incremental", All)], ok(1)),
        ],
    )
    .await;
}

// ----- cluster operations -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_operations_need_describe_or_alter_on_the_cluster() {
    let (broker, mut admin) = fixture().await;
    let describe_cluster = |user: &str| allow(Cluster, "kafka-cluster", user, Describe);
    let alter_cluster = |user: &str| allow(Cluster, "kafka-cluster", user, Alter);

    // DescribeCluster is open to all, as in Kafka; the authorized operations
    // say what the client may do (0 without DESCRIBE).
    let mut request = DescribeClusterRequest::default();
    request.include_cluster_authorized_operations = true;
    request.endpoint_type = 1;
    let mut conn = connect(&broker, "viewer");
    let response: DescribeClusterResponse = conn.call(ApiKey::DescribeCluster, 1, &request).await;
    assert_eq!(response.error_code, 0);
    assert_eq!(response.cluster_authorized_operations, 0);
    grant(&mut admin, vec![describe_cluster("viewer")]).await;
    let response: DescribeClusterResponse = conn.call(ApiKey::DescribeCluster, 1, &request).await;
    assert_eq!(
        response.cluster_authorized_operations,
        1 << Describe.code(),
        "{response:?}"
    );

    // DescribeLogDirs: DESCRIBE.
    let mut dirs = DescribeLogDirsRequest::default();
    dirs.topics = None;
    steps(
        &broker,
        &mut admin,
        "dirs",
        ApiKey::DescribeLogDirs,
        4,
        &dirs,
        |r: &DescribeLogDirsResponse| {
            let mut codes = vec![r.error_code];
            codes.extend(r.results.iter().map(|d| d.error_code));
            codes
        },
        vec![
            (vec![], is(&[CLUSTER_DENIED])),
            (vec![describe_cluster("dirs")], ok(2)),
        ],
    )
    .await;

    // ListPartitionReassignments: DESCRIBE.
    let mut list = ListPartitionReassignmentsRequest::default();
    list.timeout_ms = 10_000;
    list.topics = None;
    steps(
        &broker,
        &mut admin,
        "reassignment-viewer",
        ApiKey::ListPartitionReassignments,
        0,
        &list,
        |r: &ListPartitionReassignmentsResponse| vec![r.error_code],
        vec![
            (vec![], is(&[CLUSTER_DENIED])),
            (vec![describe_cluster("reassignment-viewer")], ok(1)),
        ],
    )
    .await;

    // DescribeQuorum: DESCRIBE, then its usual answer (there is no quorum).
    let quorum = DescribeQuorumRequest::default();
    steps(
        &broker,
        &mut admin,
        "quorum",
        ApiKey::DescribeQuorum,
        2,
        &quorum,
        |r: &DescribeQuorumResponse| vec![r.error_code],
        vec![
            (vec![], is(&[CLUSTER_DENIED])),
            (
                vec![describe_cluster("quorum")],
                is(&[ResponseError::InvalidRequest]),
            ),
        ],
    )
    .await;

    // ElectLeaders and AlterPartitionReassignments: ALTER.
    let mut elect = ElectLeadersRequest::default();
    elect.election_type = 0;
    elect.topic_partitions = Some(Vec::new());
    elect.timeout_ms = 1_000;
    steps(
        &broker,
        &mut admin,
        "elector",
        ApiKey::ElectLeaders,
        2,
        &elect,
        |r: &ElectLeadersResponse| vec![r.error_code],
        vec![
            (vec![describe_cluster("elector")], is(&[CLUSTER_DENIED])),
            (vec![alter_cluster("elector")], ok(1)),
        ],
    )
    .await;
    let mut reassign = AlterPartitionReassignmentsRequest::default();
    reassign.timeout_ms = 10_000;
    steps(
        &broker,
        &mut admin,
        "reassigner",
        ApiKey::AlterPartitionReassignments,
        0,
        &reassign,
        |r: &AlterPartitionReassignmentsResponse| vec![r.error_code],
        vec![
            (vec![], is(&[CLUSTER_DENIED])),
            (vec![alter_cluster("reassigner")], ok(1)),
        ],
    )
    .await;

    // SCRAM users: ALTER to alter them, DESCRIBE to describe them.
    let mut alter_users = AlterUserScramCredentialsRequest::default();
    let mut deletion = alter_user_scram_credentials_request::ScramCredentialDeletion::default();
    deletion.name = StrBytes::from_static_str("nobody");
    deletion.mechanism = 1;
    alter_users.deletions = vec![deletion];
    steps(
        &broker,
        &mut admin,
        "user-admin",
        ApiKey::AlterUserScramCredentials,
        0,
        &alter_users,
        |r: &AlterUserScramCredentialsResponse| r.results.iter().map(|u| u.error_code).collect(),
        vec![
            (vec![describe_cluster("user-admin")], is(&[CLUSTER_DENIED])),
            // There is no such credential to delete.
            (
                vec![alter_cluster("user-admin")],
                is(&[ResponseError::ResourceNotFound]),
            ),
        ],
    )
    .await;
    let mut describe_users = DescribeUserScramCredentialsRequest::default();
    describe_users.users = None;
    steps(
        &broker,
        &mut admin,
        "user-viewer",
        ApiKey::DescribeUserScramCredentials,
        0,
        &describe_users,
        |r: &DescribeUserScramCredentialsResponse| vec![r.error_code],
        vec![
            (vec![], is(&[CLUSTER_DENIED])),
            (vec![describe_cluster("user-viewer")], ok(1)),
        ],
    )
    .await;

    // ApiVersions is never refused.
    let mut conn = connect(&broker, "nobody");
    let mut versions = ApiVersionsRequest::default();
    versions.client_software_name = StrBytes::from_static_str("test");
    versions.client_software_version = StrBytes::from_static_str("1");
    let response: ApiVersionsResponse = conn.call(ApiKey::ApiVersions, 3, &versions).await;
    assert_eq!(response.error_code, 0);
}

// ----- consumer groups -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_apis_need_read_describe_or_delete_on_the_group() {
    let (broker, mut admin) = fixture().await;
    broker.create_topic("t-groups", 1).await;
    let read_group = |group: &str, user: &str| allow(Group, group, user, Read);

    // FindCoordinator: DESCRIBE on the group, or on the transactional id.
    for (user, key_type, key, denied, grants) in [
        (
            "finder",
            0,
            "g-find",
            GROUP_DENIED,
            vec![allow(Group, "g-find", "finder", Describe)],
        ),
        (
            "txn-finder",
            1,
            "tx-find",
            TXN_DENIED,
            vec![allow(TxnId, "tx-find", "txn-finder", Describe)],
        ),
    ] {
        let mut request = FindCoordinatorRequest::default();
        request.key_type = key_type;
        request.coordinator_keys = vec![StrBytes::from_static_str(key)];
        steps(
            &broker,
            &mut admin,
            user,
            ApiKey::FindCoordinator,
            4,
            &request,
            |r: &FindCoordinatorResponse| r.coordinators.iter().map(|c| c.error_code).collect(),
            vec![(vec![], is(&[denied])), (grants, ok(1))],
        )
        .await;
    }

    // JoinGroup, SyncGroup, Heartbeat, LeaveGroup: READ on the group.
    let mut join = JoinGroupRequest::default();
    join.group_id = GroupId(StrBytes::from_static_str("g-join"));
    join.session_timeout_ms = 10_000;
    join.rebalance_timeout_ms = 10_000;
    join.protocol_type = StrBytes::from_static_str("consumer");
    let mut protocol = join_group_request::JoinGroupRequestProtocol::default();
    protocol.name = StrBytes::from_static_str("range");
    join.protocols = vec![protocol];
    steps(
        &broker,
        &mut admin,
        "joiner",
        ApiKey::JoinGroup,
        9,
        &join,
        |r: &JoinGroupResponse| vec![r.error_code],
        vec![
            (
                vec![allow(Group, "g-join", "joiner", Describe)],
                is(&[GROUP_DENIED]),
            ),
            // A first join without a member id is asked to come back with one.
            (
                vec![read_group("g-join", "joiner")],
                is(&[ResponseError::MemberIdRequired]),
            ),
        ],
    )
    .await;
    let mut sync = SyncGroupRequest::default();
    sync.group_id = GroupId(StrBytes::from_static_str("g-sync"));
    sync.member_id = StrBytes::from_static_str("nobody");
    steps(
        &broker,
        &mut admin,
        "syncer",
        ApiKey::SyncGroup,
        5,
        &sync,
        |r: &SyncGroupResponse| vec![r.error_code],
        vec![
            (vec![], is(&[GROUP_DENIED])),
            (
                vec![read_group("g-sync", "syncer")],
                Expect::Not(GROUP_DENIED),
            ),
        ],
    )
    .await;
    let mut heartbeat = HeartbeatRequest::default();
    heartbeat.group_id = GroupId(StrBytes::from_static_str("g-beat"));
    heartbeat.member_id = StrBytes::from_static_str("nobody");
    steps(
        &broker,
        &mut admin,
        "beater",
        ApiKey::Heartbeat,
        4,
        &heartbeat,
        |r: &HeartbeatResponse| vec![r.error_code],
        vec![
            (vec![], is(&[GROUP_DENIED])),
            (
                vec![read_group("g-beat", "beater")],
                Expect::Not(GROUP_DENIED),
            ),
        ],
    )
    .await;
    let mut leave = LeaveGroupRequest::default();
    leave.group_id = GroupId(StrBytes::from_static_str("g-leave"));
    let mut member = leave_group_request::MemberIdentity::default();
    member.member_id = StrBytes::from_static_str("nobody");
    leave.members = vec![member];
    steps(
        &broker,
        &mut admin,
        "leaver",
        ApiKey::LeaveGroup,
        5,
        &leave,
        |r: &LeaveGroupResponse| vec![r.error_code],
        vec![
            (vec![], is(&[GROUP_DENIED])),
            (
                vec![read_group("g-leave", "leaver")],
                Expect::Not(GROUP_DENIED),
            ),
        ],
    )
    .await;

    // OffsetCommit: READ on the group, then on the topic.
    let mut commit = OffsetCommitRequest::default();
    commit.group_id = GroupId(StrBytes::from_static_str("g-commit"));
    commit.generation_id_or_member_epoch = -1;
    let mut partition = offset_commit_request::OffsetCommitRequestPartition::default();
    partition.partition_index = 0;
    partition.committed_offset = 0;
    partition.committed_leader_epoch = -1;
    let mut topic = offset_commit_request::OffsetCommitRequestTopic::default();
    topic.name = wire::topic_name("t-groups");
    topic.partitions = vec![partition];
    commit.topics = vec![topic];
    steps(
        &broker,
        &mut admin,
        "committer",
        ApiKey::OffsetCommit,
        8,
        &commit,
        |r: &OffsetCommitResponse| {
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect()
        },
        vec![
            (
                vec![allow(Topic, "t-groups", "committer", Read)],
                is(&[GROUP_DENIED]),
            ),
            (vec![read_group("g-commit", "committer")], ok(1)),
        ],
    )
    .await;
    let mut conn = connect(&broker, "group-only");
    grant(&mut admin, vec![read_group("g-commit", "group-only")]).await;
    let response: OffsetCommitResponse = conn.call(ApiKey::OffsetCommit, 8, &commit).await;
    assert_eq!(
        response.topics[0].partitions[0].error_code,
        TOPIC_DENIED.code()
    );

    // OffsetFetch: DESCRIBE on the group, then on the topic.
    let mut fetch = OffsetFetchRequest::default();
    let mut group = offset_fetch_request::OffsetFetchRequestGroup::default();
    group.group_id = GroupId(StrBytes::from_static_str("g-commit"));
    let mut topics = offset_fetch_request::OffsetFetchRequestTopics::default();
    topics.name = wire::topic_name("t-groups");
    topics.partition_indexes = vec![0];
    group.topics = Some(vec![topics]);
    group.member_epoch = -1;
    fetch.groups = vec![group];
    steps(
        &broker,
        &mut admin,
        "fetcher",
        ApiKey::OffsetFetch,
        8,
        &fetch,
        |r: &OffsetFetchResponse| {
            let mut codes: Vec<i16> = r.groups.iter().map(|g| g.error_code).collect();
            codes.extend(
                r.groups
                    .iter()
                    .flat_map(|g| g.topics.iter())
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            );
            codes
        },
        vec![
            (vec![], is(&[GROUP_DENIED])),
            (
                vec![allow(Group, "g-commit", "fetcher", Describe)],
                Expect::Codes(vec![0, TOPIC_DENIED.code()]),
            ),
            (vec![allow(Topic, "t-groups", "fetcher", Describe)], ok(2)),
        ],
    )
    .await;

    // ConsumerGroupHeartbeat: READ on the group, DESCRIBE on its topics.
    let mut join = ConsumerGroupHeartbeatRequest::default();
    join.group_id = GroupId(StrBytes::from_static_str("g-848"));
    join.member_id = StrBytes::from_static_str("member-1");
    join.member_epoch = 0;
    join.rebalance_timeout_ms = 10_000;
    join.subscribed_topic_names = Some(vec![wire::topic_name("t-groups")]);
    join.topic_partitions = Some(Vec::new());
    steps(
        &broker,
        &mut admin,
        "member",
        ApiKey::ConsumerGroupHeartbeat,
        1,
        &join,
        |r: &ConsumerGroupHeartbeatResponse| vec![r.error_code],
        vec![
            (vec![], is(&[GROUP_DENIED])),
            (vec![read_group("g-848", "member")], is(&[TOPIC_DENIED])),
            (vec![allow(Topic, "t-groups", "member", Describe)], ok(1)),
        ],
    )
    .await;

    // ListGroups: every group with DESCRIBE on the cluster, else the
    // described ones.
    let list = ListGroupsRequest::default();
    let mut conn = connect(&broker, "lister");
    let listed = |r: &ListGroupsResponse| -> Vec<String> {
        r.groups.iter().map(|g| g.group_id.0.to_string()).collect()
    };
    let response: ListGroupsResponse = conn.call(ApiKey::ListGroups, 5, &list).await;
    assert_eq!(response.error_code, 0);
    assert!(
        !listed(&response).contains(&"g-848".to_owned()),
        "{response:?}"
    );
    grant(&mut admin, vec![allow(Group, "g-848", "lister", Describe)]).await;
    let response: ListGroupsResponse = conn.call(ApiKey::ListGroups, 5, &list).await;
    assert_eq!(listed(&response), vec!["g-848".to_owned()]);
    let mut conn = connect(&broker, "cluster-lister");
    grant(
        &mut admin,
        vec![allow(Cluster, "kafka-cluster", "cluster-lister", Describe)],
    )
    .await;
    let response: ListGroupsResponse = conn.call(ApiKey::ListGroups, 5, &list).await;
    assert!(
        listed(&response).contains(&"g-848".to_owned()),
        "{response:?}"
    );

    // DescribeGroups and ConsumerGroupDescribe: DESCRIBE.
    let mut describe = DescribeGroupsRequest::default();
    describe.groups = vec![GroupId(StrBytes::from_static_str("g-848"))];
    steps(
        &broker,
        &mut admin,
        "describer",
        ApiKey::DescribeGroups,
        5,
        &describe,
        |r: &DescribeGroupsResponse| r.groups.iter().map(|g| g.error_code).collect(),
        vec![
            (
                vec![read_group("g-other", "describer")],
                is(&[GROUP_DENIED]),
            ),
            (vec![read_group("g-848", "describer")], ok(1)),
        ],
    )
    .await;
    let mut describe = ConsumerGroupDescribeRequest::default();
    describe.group_ids = vec![GroupId(StrBytes::from_static_str("g-848"))];
    steps(
        &broker,
        &mut admin,
        "848-describer",
        ApiKey::ConsumerGroupDescribe,
        1,
        &describe,
        |r: &ConsumerGroupDescribeResponse| r.groups.iter().map(|g| g.error_code).collect(),
        vec![
            (vec![], is(&[GROUP_DENIED])),
            // Its members are assigned a topic this client may not describe.
            (
                vec![allow(Group, "g-848", "848-describer", Describe)],
                is(&[TOPIC_DENIED]),
            ),
            (
                vec![allow(Topic, "t-groups", "848-describer", Describe)],
                ok(1),
            ),
        ],
    )
    .await;

    // OffsetDelete: DELETE on the group, READ on the topic.
    let mut delete = OffsetDeleteRequest::default();
    delete.group_id = GroupId(StrBytes::from_static_str("g-commit"));
    let mut partition = offset_delete_request::OffsetDeleteRequestPartition::default();
    partition.partition_index = 0;
    let mut topic = offset_delete_request::OffsetDeleteRequestTopic::default();
    topic.name = wire::topic_name("t-groups");
    topic.partitions = vec![partition];
    delete.topics = vec![topic];
    steps(
        &broker,
        &mut admin,
        "offset-deleter",
        ApiKey::OffsetDelete,
        0,
        &delete,
        |r: &OffsetDeleteResponse| {
            let mut codes = vec![r.error_code];
            codes.extend(
                r.topics
                    .iter()
                    .flat_map(|t| t.partitions.iter().map(|p| p.error_code)),
            );
            codes
        },
        vec![
            (vec![], is(&[GROUP_DENIED])),
            (
                vec![allow(Group, "g-commit", "offset-deleter", Delete)],
                Expect::Codes(vec![0, TOPIC_DENIED.code()]),
            ),
            (
                vec![allow(Topic, "t-groups", "offset-deleter", Read)],
                ok(2),
            ),
        ],
    )
    .await;

    // DeleteGroups: DELETE.
    let mut delete = DeleteGroupsRequest::default();
    delete.groups_names = vec![GroupId(StrBytes::from_static_str("g-commit"))];
    steps(
        &broker,
        &mut admin,
        "group-deleter",
        ApiKey::DeleteGroups,
        2,
        &delete,
        |r: &DeleteGroupsResponse| r.results.iter().map(|g| g.error_code).collect(),
        vec![
            (
                vec![read_group("g-commit", "group-deleter")],
                is(&[GROUP_DENIED]),
            ),
            (
                vec![allow(Group, "g-commit", "group-deleter", Delete)],
                ok(1),
            ),
        ],
    )
    .await;
}

// ----- transactions -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_apis_need_write_on_the_transactional_id() {
    let (broker, mut admin) = fixture().await;
    broker.create_topic("t-txn", 1).await;
    let write_txn = |id: &str, user: &str| allow(TxnId, id, user, Write);

    // InitProducerId without a transactional id: IDEMPOTENT_WRITE on the
    // cluster, or WRITE on any topic.
    let idempotent = {
        let mut request = InitProducerIdRequest::default();
        request.transactional_id = None;
        request.transaction_timeout_ms = -1;
        request.producer_id = ProducerId(-1);
        request.producer_epoch = -1;
        request
    };
    let init_codes = |r: &InitProducerIdResponse| vec![r.error_code];
    for (user, grants) in [
        (
            "idempotent",
            vec![allow(
                Cluster,
                "kafka-cluster",
                "idempotent",
                IdempotentWrite,
            )],
        ),
        (
            "topic-writer",
            vec![acl(
                Topic,
                "any-",
                Prefixed,
                "User:topic-writer",
                Write,
                Allow,
            )],
        ),
    ] {
        steps(
            &broker,
            &mut admin,
            user,
            ApiKey::InitProducerId,
            5,
            &idempotent,
            init_codes,
            vec![(vec![], is(&[CLUSTER_DENIED])), (grants, ok(1))],
        )
        .await;
    }
    // A DENY of WRITE on every topic takes the topic route away.
    steps(
        &broker,
        &mut admin,
        "topic-writer",
        ApiKey::InitProducerId,
        5,
        &idempotent,
        init_codes,
        vec![(
            vec![acl(Topic, "*", Literal, "User:topic-writer", Write, Deny)],
            is(&[CLUSTER_DENIED]),
        )],
    )
    .await;
    // With a transactional id: WRITE on it.
    let mut transactional = idempotent.clone();
    transactional.transactional_id = Some(TransactionalId(StrBytes::from_static_str("tx-1")));
    transactional.transaction_timeout_ms = 60_000;
    steps(
        &broker,
        &mut admin,
        "txn",
        ApiKey::InitProducerId,
        5,
        &transactional,
        init_codes,
        vec![
            (
                vec![allow(TxnId, "tx-1", "txn", Describe)],
                is(&[TXN_DENIED]),
            ),
            (vec![write_txn("tx-1", "txn")], ok(1)),
        ],
    )
    .await;

    // AddPartitionsToTxn: WRITE on the id, then on the topic.
    let mut add = AddPartitionsToTxnRequest::default();
    add.v3_and_below_transactional_id = TransactionalId(StrBytes::from_static_str("tx-add"));
    add.v3_and_below_producer_id = ProducerId(1);
    add.v3_and_below_producer_epoch = 0;
    let mut topic = add_partitions_to_txn_request::AddPartitionsToTxnTopic::default();
    topic.name = wire::topic_name("t-txn");
    topic.partitions = vec![0];
    add.v3_and_below_topics = vec![topic];
    steps(
        &broker,
        &mut admin,
        "adder",
        ApiKey::AddPartitionsToTxn,
        3,
        &add,
        |r: &AddPartitionsToTxnResponse| {
            r.results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| {
                    t.results_by_partition
                        .iter()
                        .map(|p| p.partition_error_code)
                })
                .collect()
        },
        vec![
            (vec![], is(&[TXN_DENIED])),
            (vec![write_txn("tx-add", "adder")], is(&[TOPIC_DENIED])),
            (
                vec![allow(Topic, "t-txn", "adder", Write)],
                Expect::Not(TOPIC_DENIED),
            ),
        ],
    )
    .await;

    // AddOffsetsToTxn: WRITE on the id, READ on the group.
    let mut offsets = AddOffsetsToTxnRequest::default();
    offsets.transactional_id = TransactionalId(StrBytes::from_static_str("tx-offsets"));
    offsets.producer_id = ProducerId(1);
    offsets.group_id = GroupId(StrBytes::from_static_str("g-txn"));
    steps(
        &broker,
        &mut admin,
        "offsets-adder",
        ApiKey::AddOffsetsToTxn,
        3,
        &offsets,
        |r: &AddOffsetsToTxnResponse| vec![r.error_code],
        vec![
            (vec![], is(&[TXN_DENIED])),
            (
                vec![write_txn("tx-offsets", "offsets-adder")],
                is(&[GROUP_DENIED]),
            ),
            (
                vec![allow(Group, "g-txn", "offsets-adder", Read)],
                Expect::Not(GROUP_DENIED),
            ),
        ],
    )
    .await;

    // EndTxn: WRITE on the id.
    let mut end = EndTxnRequest::default();
    end.transactional_id = TransactionalId(StrBytes::from_static_str("tx-end"));
    end.producer_id = ProducerId(1);
    end.committed = false;
    steps(
        &broker,
        &mut admin,
        "ender",
        ApiKey::EndTxn,
        3,
        &end,
        |r: &EndTxnResponse| vec![r.error_code],
        vec![
            (vec![], is(&[TXN_DENIED])),
            (vec![write_txn("tx-end", "ender")], Expect::Not(TXN_DENIED)),
        ],
    )
    .await;

    // TxnOffsetCommit: WRITE on the id, READ on the group, READ on the topic.
    let mut commit = TxnOffsetCommitRequest::default();
    commit.transactional_id = TransactionalId(StrBytes::from_static_str("tx-commit"));
    commit.group_id = GroupId(StrBytes::from_static_str("g-txn"));
    commit.producer_id = ProducerId(1);
    let mut partition = txn_offset_commit_request::TxnOffsetCommitRequestPartition::default();
    partition.partition_index = 0;
    partition.committed_offset = 0;
    partition.committed_leader_epoch = -1;
    let mut topic = txn_offset_commit_request::TxnOffsetCommitRequestTopic::default();
    topic.name = wire::topic_name("t-txn");
    topic.partitions = vec![partition];
    commit.topics = vec![topic];
    steps(
        &broker,
        &mut admin,
        "txn-committer",
        ApiKey::TxnOffsetCommit,
        3,
        &commit,
        |r: &TxnOffsetCommitResponse| {
            r.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect()
        },
        vec![
            (vec![], is(&[TXN_DENIED])),
            (
                vec![write_txn("tx-commit", "txn-committer")],
                is(&[GROUP_DENIED]),
            ),
            (
                vec![allow(Group, "g-txn", "txn-committer", Read)],
                is(&[TOPIC_DENIED]),
            ),
            (
                vec![allow(Topic, "t-txn", "txn-committer", Read)],
                Expect::Not(TOPIC_DENIED),
            ),
        ],
    )
    .await;

    // WriteTxnMarkers: CLUSTER_ACTION on the cluster.
    let mut markers = WriteTxnMarkersRequest::default();
    let mut marker = write_txn_markers_request::WritableTxnMarker::default();
    marker.producer_id = ProducerId(12345);
    marker.producer_epoch = 0;
    marker.transaction_result = false;
    marker.coordinator_epoch = 0;
    let mut topic = write_txn_markers_request::WritableTxnMarkerTopic::default();
    topic.name = wire::topic_name("t-txn");
    topic.partition_indexes = vec![0];
    marker.topics = vec![topic];
    markers.markers = vec![marker];
    steps(
        &broker,
        &mut admin,
        "marker",
        ApiKey::WriteTxnMarkers,
        1,
        &markers,
        |r: &WriteTxnMarkersResponse| {
            r.markers
                .iter()
                .flat_map(|m| m.topics.iter())
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect()
        },
        vec![(
            vec![allow(Cluster, "kafka-cluster", "marker", All)],
            Expect::Not(CLUSTER_DENIED),
        )],
    )
    .await;
    steps(
        &broker,
        &mut admin,
        "not-a-broker",
        ApiKey::WriteTxnMarkers,
        1,
        &markers,
        |r: &WriteTxnMarkersResponse| {
            r.markers
                .iter()
                .flat_map(|m| m.topics.iter())
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect()
        },
        vec![(
            vec![allow(Cluster, "kafka-cluster", "not-a-broker", Alter)],
            is(&[CLUSTER_DENIED]),
        )],
    )
    .await;

    // ListTransactions leaves out the ids the client may not describe;
    // DescribeTransactions refuses them.
    let list = ListTransactionsRequest::default();
    let mut conn = connect(&broker, "txn-viewer");
    let listed = |r: &ListTransactionsResponse| -> Vec<String> {
        r.transaction_states
            .iter()
            .map(|s| s.transactional_id.0.to_string())
            .collect()
    };
    let response: ListTransactionsResponse = conn.call(ApiKey::ListTransactions, 1, &list).await;
    assert!(listed(&response).is_empty(), "{response:?}");
    grant(
        &mut admin,
        vec![allow(TxnId, "tx-1", "txn-viewer", Describe)],
    )
    .await;
    let response: ListTransactionsResponse = conn.call(ApiKey::ListTransactions, 1, &list).await;
    assert_eq!(listed(&response), vec!["tx-1".to_owned()]);
    let mut describe = DescribeTransactionsRequest::default();
    describe.transactional_ids = vec![
        TransactionalId(StrBytes::from_static_str("tx-1")),
        TransactionalId(StrBytes::from_static_str("tx-add")),
    ];
    let response: DescribeTransactionsResponse =
        conn.call(ApiKey::DescribeTransactions, 0, &describe).await;
    let codes: Vec<i16> = response
        .transaction_states
        .iter()
        .map(|s| s.error_code)
        .collect();
    assert_eq!(codes, vec![0, TXN_DENIED.code()]);
}

// ----- the ACL APIs -----

fn filter(principal: Option<&str>) -> DescribeAclsRequest {
    let mut request = DescribeAclsRequest::default();
    request.resource_type_filter = 1;
    request.pattern_type_filter = 1;
    request.operation = 1;
    request.permission_type = 1;
    request.resource_name_filter = None;
    request.host_filter = None;
    request.principal_filter = principal.map(|p| StrBytes::from_string(p.to_owned()));
    request
}

fn delete_filter(principal: &str) -> delete_acls_request::DeleteAclsFilter {
    let mut filter = delete_acls_request::DeleteAclsFilter::default();
    filter.resource_type_filter = 1;
    filter.pattern_type_filter = 1;
    filter.operation = 1;
    filter.permission_type = 1;
    filter.resource_name_filter = None;
    filter.host_filter = None;
    filter.principal_filter = Some(StrBytes::from_string(principal.to_owned()));
    filter
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acl_apis_create_describe_and_delete_with_kafkas_errors() {
    // Without an authorizer: SECURITY_DISABLED.
    let plain = TestBroker::new(BrokerSettings::default()).await;
    let mut anyone = connect(&plain, "anyone");
    let mut create = CreateAclsRequest::default();
    create.creations = vec![allow(Topic, "t", "x", Read)];
    let response: CreateAclsResponse = anyone.call(ApiKey::CreateAcls, 3, &create).await;
    assert_eq!(
        response.results[0].error_code,
        ResponseError::SecurityDisabled.code()
    );
    let response: DescribeAclsResponse = anyone.call(ApiKey::DescribeAcls, 3, &filter(None)).await;
    assert_eq!(response.error_code, ResponseError::SecurityDisabled.code());
    let mut delete = DeleteAclsRequest::default();
    delete.filters = vec![delete_filter("User:x")];
    let response: DeleteAclsResponse = anyone.call(ApiKey::DeleteAcls, 3, &delete).await;
    assert_eq!(
        response.filter_results[0].error_code,
        ResponseError::SecurityDisabled.code()
    );

    // With one: ALTER on the cluster to create and delete, DESCRIBE to describe.
    let (broker, mut admin) = fixture().await;
    let mut bob = connect(&broker, "bob");
    let response: CreateAclsResponse = bob.call(ApiKey::CreateAcls, 1, &create).await;
    assert_eq!(response.results[0].error_code, CLUSTER_DENIED.code());
    let response: DescribeAclsResponse = bob.call(ApiKey::DescribeAcls, 1, &filter(None)).await;
    assert_eq!(response.error_code, CLUSTER_DENIED.code());
    let response: DeleteAclsResponse = bob.call(ApiKey::DeleteAcls, 1, &delete).await;
    assert_eq!(response.filter_results[0].error_code, CLUSTER_DENIED.code());

    // Creations: valid ones stored (twice is once), invalid ones refused alone.
    let mut bad_cluster = acl(Cluster, "other", Literal, "User:x", Alter, Allow);
    bad_cluster.host = StrBytes::from_static_str("*");
    let mut any_type = allow(Topic, "t", "x", Read);
    any_type.resource_type = 1;
    let mut no_principal_type = allow(Topic, "t", "x", Read);
    no_principal_type.principal = StrBytes::from_static_str("x");
    let mut create = CreateAclsRequest::default();
    create.creations = vec![
        allow(Topic, "t", "x", Read),
        allow(Topic, "t", "x", Read),
        acl(Topic, "t-", Prefixed, "User:x", Write, Deny),
        bad_cluster,
        any_type,
        no_principal_type,
        allow(Cluster, "kafka-cluster", "bob", Describe),
    ];
    let response: CreateAclsResponse = admin.call(ApiKey::CreateAcls, 2, &create).await;
    let codes: Vec<i16> = response.results.iter().map(|r| r.error_code).collect();
    let invalid = ResponseError::InvalidRequest.code();
    assert_eq!(codes, vec![0, 0, 0, invalid, invalid, invalid, 0]);

    // DESCRIBE on the cluster lets bob describe, not create.
    let response: DescribeAclsResponse = bob
        .call(ApiKey::DescribeAcls, 3, &filter(Some("User:x")))
        .await;
    assert_eq!(response.error_code, 0);
    let described: Vec<(i8, String, i8, usize)> = response
        .resources
        .iter()
        .map(|r| {
            (
                r.resource_type,
                r.resource_name.to_string(),
                r.pattern_type,
                r.acls.len(),
            )
        })
        .collect();
    assert_eq!(
        described,
        vec![
            (Topic.code(), "t".to_owned(), Literal.code(), 1),
            (Topic.code(), "t-".to_owned(), Prefixed.code(), 1),
        ]
    );
    let response: CreateAclsResponse = bob.call(ApiKey::CreateAcls, 3, &create).await;
    assert_eq!(response.results[0].error_code, CLUSTER_DENIED.code());

    // MATCH: the bindings that apply to topic "t-1".
    let mut matching = filter(None);
    matching.resource_type_filter = Topic.code();
    matching.resource_name_filter = Some(StrBytes::from_static_str("t-1"));
    matching.pattern_type_filter = 2;
    let response: DescribeAclsResponse = admin.call(ApiKey::DescribeAcls, 3, &matching).await;
    let names: Vec<String> = response
        .resources
        .iter()
        .map(|r| r.resource_name.to_string())
        .collect();
    assert_eq!(names, vec!["t-".to_owned()]);
    // An UNKNOWN in a filter: INVALID_REQUEST.
    let mut unknown = filter(None);
    unknown.operation = 0;
    let response: DescribeAclsResponse = admin.call(ApiKey::DescribeAcls, 3, &unknown).await;
    assert_eq!(response.error_code, invalid);

    // Deleting by filter: the matches of each, an invalid filter refused alone.
    let mut bad = delete_filter("User:x");
    bad.pattern_type_filter = 0;
    let mut delete = DeleteAclsRequest::default();
    delete.filters = vec![delete_filter("User:x"), bad, delete_filter("User:nobody")];
    let response: DeleteAclsResponse = admin.call(ApiKey::DeleteAcls, 3, &delete).await;
    let outcome: Vec<(i16, usize)> = response
        .filter_results
        .iter()
        .map(|r| (r.error_code, r.matching_acls.len()))
        .collect();
    assert_eq!(outcome, vec![(0, 2), (invalid, 0), (0, 0)]);
    let response: DescribeAclsResponse = admin
        .call(ApiKey::DescribeAcls, 3, &filter(Some("User:x")))
        .await;
    assert!(response.resources.is_empty(), "{response:?}");
}

// ----- precedence, super users, defaults -----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixed_wildcard_and_deny_acls_take_precedence_as_in_kafka() {
    let (broker, mut admin) = fixture().await;
    for name in ["team-a", "team-secret", "pay-orders", "open"] {
        broker.create_topic(name, 1).await;
    }
    grant(
        &mut admin,
        vec![
            // Prefixed ALLOW, literal DENY.
            acl(Topic, "team-", Prefixed, "User:alice", Write, Allow),
            acl(Topic, "team-secret", Literal, "User:alice", Write, Deny),
            // Literal ALLOW, prefixed DENY.
            acl(Topic, "pay-orders", Literal, "User:alice", Write, Allow),
            acl(Topic, "pay-", Prefixed, "User:alice", Write, Deny),
            // Everyone may write `open`; alice is denied everything on it.
            acl(Topic, "open", Literal, "User:*", Write, Allow),
            acl(Topic, "open", Literal, "User:alice", All, Deny),
        ],
    )
    .await;
    let expectations = [
        ("alice", "team-a", 0),
        ("alice", "team-secret", TOPIC_DENIED.code()),
        ("alice", "pay-orders", TOPIC_DENIED.code()),
        ("alice", "open", TOPIC_DENIED.code()),
        ("carol", "open", 0),
        ("carol", "team-a", TOPIC_DENIED.code()),
        // Super users pass whatever the ACLs say.
        ("admin", "team-secret", 0),
        ("admin", "pay-orders", 0),
    ];
    for (user, topic, expected) in expectations {
        let mut conn = connect(&broker, user);
        let produce = wire::produce_request(topic, 0, records(user), -1);
        let response: ProduceResponse = conn.call(ApiKey::Produce, 9, &produce).await;
        assert_eq!(
            produce_codes(&response),
            vec![expected],
            "{user} writing {topic}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deny_by_default_unless_everyone_is_allowed_where_no_acl_applies() {
    for allow_everyone in [false, true] {
        let mut broker = TestBroker::new(settings(allow_everyone)).await;
        broker.start_flusher();
        broker.create_topic("free", 1).await;
        broker.create_topic("guarded", 1).await;
        let mut admin = connect(&broker, "admin");
        grant(&mut admin, vec![allow(Topic, "guarded", "alice", Write)]).await;
        let open = if allow_everyone {
            0
        } else {
            TOPIC_DENIED.code()
        };
        for (user, topic, expected) in [
            ("bob", "free", open),
            // An ACL applies to `guarded` (alice's): bob is denied either way.
            ("bob", "guarded", TOPIC_DENIED.code()),
            ("alice", "guarded", 0),
        ] {
            let mut conn = connect(&broker, user);
            let produce = wire::produce_request(topic, 0, records(user), -1);
            let response: ProduceResponse = conn.call(ApiKey::Produce, 9, &produce).await;
            assert_eq!(
                produce_codes(&response),
                vec![expected],
                "{user} writing {topic}, allow.everyone.if.no.acl.found={allow_everyone}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_authorizer_every_principal_is_served() {
    let mut broker = TestBroker::new(BrokerSettings::default()).await;
    broker.start_flusher();
    broker.create_topic("t", 1).await;
    let mut conn = connect(&broker, "bob");
    let produce = wire::produce_request("t", 0, records("x"), -1);
    let response: ProduceResponse = conn.call(ApiKey::Produce, 9, &produce).await;
    assert_eq!(produce_codes(&response), vec![0]);
    let mut request = DescribeClusterRequest::default();
    request.include_cluster_authorized_operations = true;
    let response: DescribeClusterResponse = conn.call(ApiKey::DescribeCluster, 0, &request).await;
    assert!(response.cluster_authorized_operations & (1 << Alter.code()) != 0);
}

/// Every API of the version table is checked by a case above, or needs no
/// authorization (as in Kafka): a new API does not go unchecked unnoticed.
#[test]
fn every_served_api_has_a_case_here() {
    const CHECKED: &[ApiKey] = &[
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::Metadata,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::InitProducerId,
        ApiKey::DeleteRecords,
        ApiKey::OffsetForLeaderEpoch,
        ApiKey::DescribeConfigs,
        ApiKey::AlterConfigs,
        ApiKey::CreatePartitions,
        ApiKey::IncrementalAlterConfigs,
        ApiKey::DescribeCluster,
        ApiKey::DescribeTopicPartitions,
        ApiKey::DescribeLogDirs,
        ApiKey::ElectLeaders,
        ApiKey::AlterPartitionReassignments,
        ApiKey::ListPartitionReassignments,
        ApiKey::DescribeQuorum,
        ApiKey::AlterUserScramCredentials,
        ApiKey::DescribeUserScramCredentials,
        ApiKey::FindCoordinator,
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::Heartbeat,
        ApiKey::LeaveGroup,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::ListGroups,
        ApiKey::DescribeGroups,
        ApiKey::DeleteGroups,
        ApiKey::OffsetDelete,
        ApiKey::ConsumerGroupHeartbeat,
        ApiKey::ConsumerGroupDescribe,
        ApiKey::AddPartitionsToTxn,
        ApiKey::AddOffsetsToTxn,
        ApiKey::EndTxn,
        ApiKey::TxnOffsetCommit,
        ApiKey::WriteTxnMarkers,
        ApiKey::ListTransactions,
        ApiKey::DescribeTransactions,
        ApiKey::DescribeProducers,
        ApiKey::CreateAcls,
        ApiKey::DescribeAcls,
        ApiKey::DeleteAcls,
    ];
    const OPEN: &[ApiKey] = &[
        ApiKey::ApiVersions,
        ApiKey::SaslHandshake,
        ApiKey::SaslAuthenticate,
    ];
    for (api, _, _) in fjord_agent::kafka::supported_versions() {
        assert!(
            CHECKED.contains(api) || OPEN.contains(api),
            "{api:?} is served: authorize it (docs/security.md) and give it a case here"
        );
    }
}
