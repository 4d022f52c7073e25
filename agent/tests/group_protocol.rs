//! The group APIs on the wire, at every version the agent serves: requests
//! encoded and responses decoded as a client does (the `kafka-protocol` codec),
//! against a real `fjord agent` process, with the error codes Kafka returns.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedPartition;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use support::AgentProcess;
use uuid::Uuid;

const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const UNKNOWN_MEMBER_ID: i16 = 25;
const INVALID_SESSION_TIMEOUT: i16 = 26;
const REBALANCE_IN_PROGRESS: i16 = 27;
const NON_EMPTY_GROUP: i16 = 68;
const GROUP_ID_NOT_FOUND: i16 = 69;
const MEMBER_ID_REQUIRED: i16 = 79;
const FENCED_INSTANCE_ID: i16 = 82;
const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_owned())
}

fn group(id: &str) -> GroupId {
    GroupId(s(id))
}

/// A blocking Kafka client on one connection.
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
        Self {
            stream,
            correlation_id: 0,
        }
    }

    fn call<Q: Encodable, R: Decodable>(&mut self, api: ApiKey, version: i16, request: &Q) -> R {
        self.correlation_id += 1;
        let mut header = RequestHeader::default();
        header.request_api_key = api as i16;
        header.request_api_version = version;
        header.correlation_id = self.correlation_id;
        header.client_id = Some(s("wire-test"));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, api.request_header_version(version))
            .unwrap();
        request.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_u32(body.len() as u32);
        frame.put_slice(&body);
        self.stream.write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        self.stream
            .read_exact(&mut len)
            .unwrap_or_else(|e| panic!("{api:?} v{version}: no response ({e})"));
        let mut response = vec![0u8; u32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut response).unwrap();
        let mut bytes = Bytes::from(response);
        let header =
            ResponseHeader::decode(&mut bytes, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, self.correlation_id);
        let decoded = R::decode(&mut bytes, version)
            .unwrap_or_else(|e| panic!("{api:?} v{version}: undecodable response: {e:#}"));
        assert_eq!(bytes.remaining(), 0, "{api:?} v{version}: trailing bytes");
        decoded
    }
}

fn subscription(topics: &[&str]) -> Bytes {
    let mut subscription = ConsumerProtocolSubscription::default();
    subscription.topics = topics.iter().map(|t| s(t)).collect();
    let mut bytes = BytesMut::new();
    bytes.put_i16(0);
    subscription.encode(&mut bytes, 0).unwrap();
    bytes.freeze()
}

fn assignment(topic: &str, partitions: &[i32]) -> Bytes {
    let mut topic_partitions = AssignedPartition::default();
    topic_partitions.topic = TopicName(s(topic));
    topic_partitions.partitions = partitions.to_vec();
    let mut assignment = ConsumerProtocolAssignment::default();
    assignment.assigned_partitions = vec![topic_partitions];
    let mut bytes = BytesMut::new();
    bytes.put_i16(0);
    assignment.encode(&mut bytes, 0).unwrap();
    bytes.freeze()
}

fn join_request(
    group_id: &str,
    member_id: &str,
    instance: Option<&str>,
    version: i16,
) -> JoinGroupRequest {
    let mut protocol = JoinGroupRequestProtocol::default();
    protocol.name = s("range");
    protocol.metadata = subscription(&["wire"]);
    let mut request = JoinGroupRequest::default();
    request.group_id = group(group_id);
    request.session_timeout_ms = 10_000;
    if version >= 1 {
        request.rebalance_timeout_ms = 10_000;
    }
    request.member_id = s(member_id);
    if version >= 5 {
        request.group_instance_id = instance.map(s);
    }
    request.protocol_type = s("consumer");
    request.protocols = vec![protocol];
    request
}

/// Joins `group_id` as a new member (going through `MEMBER_ID_REQUIRED` from
/// v4) and returns the join answer.
fn join(client: &mut Client, group_id: &str, version: i16) -> JoinGroupResponse {
    let first: JoinGroupResponse = client.call(
        ApiKey::JoinGroup,
        version,
        &join_request(group_id, "", None, version),
    );
    if version < 4 {
        return first;
    }
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED, "JoinGroup v{version}");
    assert!(!first.member_id.is_empty());
    client.call(
        ApiKey::JoinGroup,
        version,
        &join_request(group_id, &first.member_id, None, version),
    )
}

fn sync(
    client: &mut Client,
    group_id: &str,
    joined: &JoinGroupResponse,
    instance: Option<&str>,
    assignments: Vec<(StrBytes, Bytes)>,
    version: i16,
) -> SyncGroupResponse {
    let mut request = SyncGroupRequest::default();
    request.group_id = group(group_id);
    request.generation_id = joined.generation_id;
    request.member_id = joined.member_id.clone();
    if version >= 3 {
        request.group_instance_id = instance.map(s);
    }
    if version >= 5 {
        request.protocol_type = Some(s("consumer"));
        request.protocol_name = joined.protocol_name.clone();
    }
    request.assignments = assignments
        .into_iter()
        .map(|(member_id, assignment)| {
            let mut a = SyncGroupRequestAssignment::default();
            a.member_id = member_id;
            a.assignment = assignment;
            a
        })
        .collect();
    client.call(ApiKey::SyncGroup, version, &request)
}

fn heartbeat(
    client: &mut Client,
    group_id: &str,
    generation: i32,
    member_id: &StrBytes,
    instance: Option<&str>,
    version: i16,
) -> i16 {
    let mut request = HeartbeatRequest::default();
    request.group_id = group(group_id);
    request.generation_id = generation;
    request.member_id = member_id.clone();
    if version >= 3 {
        request.group_instance_id = instance.map(s);
    }
    let response: HeartbeatResponse = client.call(ApiKey::Heartbeat, version, &request);
    response.error_code
}

fn commit(
    client: &mut Client,
    group_id: &str,
    joined: &JoinGroupResponse,
    offsets: &[(&str, i32, i64)],
    version: i16,
) -> OffsetCommitResponse {
    let mut request = OffsetCommitRequest::default();
    request.group_id = group(group_id);
    request.generation_id_or_member_epoch = joined.generation_id;
    request.member_id = joined.member_id.clone();
    let mut topics: Vec<OffsetCommitRequestTopic> = Vec::new();
    for (topic, partition, offset) in offsets {
        let mut p = OffsetCommitRequestPartition::default();
        p.partition_index = *partition;
        p.committed_offset = *offset;
        if version >= 6 {
            p.committed_leader_epoch = 3;
        }
        p.committed_metadata = Some(s("m"));
        match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
            Some(t) => t.partitions.push(p),
            None => {
                let mut t = OffsetCommitRequestTopic::default();
                t.name = TopicName(s(topic));
                t.partitions = vec![p];
                topics.push(t);
            }
        }
    }
    request.topics = topics;
    client.call(ApiKey::OffsetCommit, version, &request)
}

/// (partition, committed offset, leader epoch, metadata) of `topic` in `group_id`.
fn fetch(
    client: &mut Client,
    group_id: &str,
    topic: &str,
    version: i16,
) -> Vec<(i32, i64, i32, String)> {
    if version >= 8 {
        let mut wanted = OffsetFetchRequestTopics::default();
        wanted.name = TopicName(s(topic));
        wanted.partition_indexes = vec![0, 1];
        let mut ours = OffsetFetchRequestGroup::default();
        ours.group_id = group(group_id);
        ours.topics = Some(vec![wanted]);
        let mut unknown = OffsetFetchRequestGroup::default();
        unknown.group_id = group("never-seen");
        unknown.topics = None;
        let mut request = OffsetFetchRequest::default();
        request.groups = vec![ours, unknown];
        let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, version, &request);
        assert_eq!(response.groups.len(), 2);
        assert_eq!(response.groups[1].error_code, NONE);
        assert!(
            response.groups[1].topics.is_empty(),
            "a group without offsets"
        );
        let ours = &response.groups[0];
        assert_eq!(ours.error_code, NONE);
        return ours.topics[0]
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    p.committed_offset,
                    p.committed_leader_epoch,
                    p.metadata.as_ref().unwrap().to_string(),
                )
            })
            .collect();
    }
    let mut wanted = OffsetFetchRequestTopic::default();
    wanted.name = TopicName(s(topic));
    wanted.partition_indexes = vec![0, 1];
    let mut request = OffsetFetchRequest::default();
    request.group_id = group(group_id);
    request.topics = Some(vec![wanted]);
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, version, &request);
    assert_eq!(response.error_code, NONE);
    response.topics[0]
        .partitions
        .iter()
        .map(|p| {
            assert_eq!(p.error_code, NONE);
            (
                p.partition_index,
                p.committed_offset,
                p.committed_leader_epoch,
                p.metadata.as_ref().unwrap().to_string(),
            )
        })
        .collect()
}

fn create_topics(client: &mut Client, names: &[&str]) {
    let mut request = CreateTopicsRequest::default();
    request.topics = names
        .iter()
        .map(|name| {
            let mut topic = CreatableTopic::default();
            topic.name = TopicName(s(name));
            topic.num_partitions = 2;
            topic.replication_factor = 1;
            topic
        })
        .collect();
    request.timeout_ms = 10_000;
    let response: CreateTopicsResponse = client.call(ApiKey::CreateTopics, 5, &request);
    assert!(response.topics.iter().all(|t| t.error_code == NONE));
}

fn agent() -> (tempfile::TempDir, AgentProcess) {
    let dir = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(dir.path(), &["--group-initial-rebalance-delay-ms", "100"]);
    (dir, agent)
}

#[test]
fn a_member_lives_through_every_version_of_every_group_api() {
    let (_dir, agent) = agent();
    let mut client = Client::connect(&agent);
    create_topics(&mut client, &["wire"]);
    for version in 0..=9i16 {
        let group_id = format!("wire-v{version}");
        let (sync_v, heartbeat_v, leave_v) = (version.min(5), version.min(4), version.min(5));
        let (commit_v, fetch_v) = (version.clamp(2, 8), version.clamp(1, 8));
        let (describe_v, delete_v) = (version.min(5), version.min(2));
        let context = format!("JoinGroup v{version}");

        let joined = join(&mut client, &group_id, version);
        assert_eq!(joined.error_code, NONE, "{context}");
        assert_eq!(joined.generation_id, 1, "{context}");
        assert_eq!(joined.leader, joined.member_id, "{context}");
        assert_eq!(
            joined.protocol_name.as_ref().map(|p| p.to_string()),
            Some("range".into())
        );
        assert_eq!(joined.members.len(), 1, "{context}");
        assert_eq!(joined.members[0].metadata, subscription(&["wire"]));
        assert!(
            joined.member_id.starts_with("wire-test-"),
            "{context}: {:?}",
            joined.member_id
        );

        let assigned = assignment("wire", &[0, 1]);
        let synced = sync(
            &mut client,
            &group_id,
            &joined,
            None,
            vec![(joined.member_id.clone(), assigned.clone())],
            sync_v,
        );
        assert_eq!(synced.error_code, NONE, "SyncGroup v{sync_v}");
        assert_eq!(synced.assignment, assigned, "SyncGroup v{sync_v}");

        let member = &joined.member_id;
        let gen_ = joined.generation_id;
        assert_eq!(
            heartbeat(&mut client, &group_id, gen_, member, None, heartbeat_v),
            NONE
        );
        assert_eq!(
            heartbeat(&mut client, &group_id, gen_ + 1, member, None, heartbeat_v),
            ILLEGAL_GENERATION
        );
        assert_eq!(
            heartbeat(
                &mut client,
                &group_id,
                gen_,
                &s("nobody"),
                None,
                heartbeat_v
            ),
            UNKNOWN_MEMBER_ID
        );

        let offset = 10 + i64::from(version);
        let committed = commit(
            &mut client,
            &group_id,
            &joined,
            &[("wire", 0, offset), ("wire", 7, 1), ("missing", 0, 1)],
            commit_v,
        );
        let codes: Vec<i16> = committed
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect();
        assert_eq!(
            codes,
            vec![NONE, UNKNOWN_TOPIC_OR_PARTITION, UNKNOWN_TOPIC_OR_PARTITION],
            "OffsetCommit v{commit_v}"
        );
        let epoch = if commit_v >= 6 && fetch_v >= 5 { 3 } else { -1 };
        assert_eq!(
            fetch(&mut client, &group_id, "wire", fetch_v),
            vec![(0, offset, epoch, "m".into()), (1, -1, -1, String::new())],
            "OffsetFetch v{fetch_v} after OffsetCommit v{commit_v}"
        );

        let mut describe = DescribeGroupsRequest::default();
        describe.groups = vec![group(&group_id), group("never-seen")];
        let described: DescribeGroupsResponse =
            client.call(ApiKey::DescribeGroups, describe_v, &describe);
        let ours = &described.groups[0];
        assert_eq!(
            (ours.error_code, ours.group_state.as_str()),
            (NONE, "Stable")
        );
        assert_eq!(ours.protocol_type.as_str(), "consumer");
        assert_eq!(ours.protocol_data.as_str(), "range");
        assert_eq!(ours.members.len(), 1);
        assert_eq!(ours.members[0].client_id.as_str(), "wire-test");
        assert_eq!(ours.members[0].client_host.as_str(), "/127.0.0.1");
        assert_eq!(ours.members[0].member_assignment, assigned);
        assert_eq!(
            described.groups[1].group_state.as_str(),
            "Dead",
            "DescribeGroups v{describe_v}"
        );

        let mut leave = LeaveGroupRequest::default();
        leave.group_id = group(&group_id);
        if leave_v >= 3 {
            let mut us = MemberIdentity::default();
            us.member_id = member.clone();
            let mut ghost = MemberIdentity::default();
            ghost.member_id = s("ghost");
            leave.members = vec![us, ghost];
        } else {
            leave.member_id = member.clone();
        }
        let left: LeaveGroupResponse = client.call(ApiKey::LeaveGroup, leave_v, &leave);
        assert_eq!(left.error_code, NONE, "LeaveGroup v{leave_v}");
        if leave_v >= 3 {
            let codes: Vec<i16> = left.members.iter().map(|m| m.error_code).collect();
            assert_eq!(
                codes,
                vec![NONE, UNKNOWN_MEMBER_ID],
                "LeaveGroup v{leave_v}"
            );
        }

        let mut delete = DeleteGroupsRequest::default();
        delete.groups_names = vec![group(&group_id), group("never-seen")];
        let deleted: DeleteGroupsResponse = client.call(ApiKey::DeleteGroups, delete_v, &delete);
        let codes: Vec<i16> = deleted.results.iter().map(|r| r.error_code).collect();
        assert_eq!(
            codes,
            vec![NONE, GROUP_ID_NOT_FOUND],
            "DeleteGroups v{delete_v}"
        );
        assert_eq!(
            fetch(&mut client, &group_id, "wire", fetch_v)[0].1,
            -1,
            "offsets go with the group"
        );
    }
}

#[test]
fn find_coordinator_list_groups_and_offset_delete_at_every_version() {
    let (_dir, agent) = agent();
    let mut client = Client::connect(&agent);
    create_topics(&mut client, &["wire", "other"]);

    for version in 0..=4i16 {
        let mut request = FindCoordinatorRequest::default();
        if version >= 4 {
            request.coordinator_keys = vec![s("a"), s("b"), s("c")];
        } else {
            request.key = s("a");
        }
        let response: FindCoordinatorResponse =
            client.call(ApiKey::FindCoordinator, version, &request);
        if version >= 4 {
            assert_eq!(response.coordinators.len(), 3);
            for coordinator in &response.coordinators {
                assert_eq!(coordinator.error_code, NONE);
                assert_eq!(coordinator.port, i32::from(agent.port));
                assert_eq!(coordinator.host.as_str(), "127.0.0.1");
            }
            let keys: Vec<&str> = response
                .coordinators
                .iter()
                .map(|c| c.key.as_str())
                .collect();
            assert_eq!(keys, vec!["a", "b", "c"]);
        } else {
            assert_eq!(response.error_code, NONE, "FindCoordinator v{version}");
            assert_eq!(response.port, i32::from(agent.port));
            assert_eq!(response.host.as_str(), "127.0.0.1");
        }
    }
    let mut transactional = FindCoordinatorRequest::default();
    transactional.key = s("txn");
    transactional.key_type = 1;
    let response: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 3, &transactional);
    // Transactional ids are coordinated on the same shards as groups.
    assert_eq!(response.error_code, NONE);
    assert_eq!(response.port, i32::from(agent.port));

    // A stable member subscribed to "wire", with offsets for "wire" and "other".
    let joined = join(&mut client, "listed", 9);
    sync(
        &mut client,
        "listed",
        &joined,
        None,
        vec![(joined.member_id.clone(), assignment("wire", &[0, 1]))],
        5,
    );
    commit(
        &mut client,
        "listed",
        &joined,
        &[("wire", 0, 5), ("other", 0, 6)],
        8,
    );
    for version in 0..=4i16 {
        let mut request = ListGroupsRequest::default();
        if version >= 4 {
            request.states_filter = vec![s("stable")];
        }
        let response: ListGroupsResponse = client.call(ApiKey::ListGroups, version, &request);
        assert_eq!(response.error_code, NONE);
        let listed: Vec<(&str, &str)> = response
            .groups
            .iter()
            .map(|g| (g.group_id.0.as_str(), g.protocol_type.as_str()))
            .collect();
        assert_eq!(
            listed,
            vec![("listed", "consumer")],
            "ListGroups v{version}"
        );
        if version >= 4 {
            assert_eq!(response.groups[0].group_state.as_str(), "Stable");
            request.states_filter = vec![s("Empty")];
            let none: ListGroupsResponse = client.call(ApiKey::ListGroups, version, &request);
            assert!(none.groups.is_empty());
        }
    }

    let mut request = OffsetDeleteRequest::default();
    request.group_id = group("listed");
    request.topics = ["wire", "other"]
        .iter()
        .map(|name| {
            let mut partition = OffsetDeleteRequestPartition::default();
            partition.partition_index = 0;
            let mut topic = OffsetDeleteRequestTopic::default();
            topic.name = TopicName(s(name));
            topic.partitions = vec![partition];
            topic
        })
        .collect();
    let response: OffsetDeleteResponse = client.call(ApiKey::OffsetDelete, 0, &request);
    assert_eq!(response.error_code, NONE);
    let codes: Vec<i16> = response
        .topics
        .iter()
        .map(|t| t.partitions[0].error_code)
        .collect();
    assert_eq!(codes, vec![GROUP_SUBSCRIBED_TO_TOPIC, NONE]);
    assert_eq!(fetch(&mut client, "listed", "wire", 8)[0].1, 5);
    assert_eq!(fetch(&mut client, "listed", "other", 8)[0].1, -1);

    // A group with members cannot be deleted; an unknown one has no offsets to
    // delete.
    let mut delete = DeleteGroupsRequest::default();
    delete.groups_names = vec![group("listed")];
    let deleted: DeleteGroupsResponse = client.call(ApiKey::DeleteGroups, 2, &delete);
    assert_eq!(deleted.results[0].error_code, NON_EMPTY_GROUP);
    request.group_id = group("never-seen");
    let response: OffsetDeleteResponse = client.call(ApiKey::OffsetDelete, 0, &request);
    assert_eq!(response.error_code, GROUP_ID_NOT_FOUND);
}

#[test]
fn rebalances_static_members_and_bad_joins_get_kafka_error_codes() {
    let (_dir, agent) = agent();
    let mut first = Client::connect(&agent);
    create_topics(&mut first, &["wire"]);

    // A bad session timeout, and a protocol the group does not speak.
    let mut bad = join_request("errors", "", None, 5);
    bad.session_timeout_ms = 10;
    let response: JoinGroupResponse = first.call(ApiKey::JoinGroup, 5, &bad);
    assert_eq!(response.error_code, INVALID_SESSION_TIMEOUT);

    let a = join(&mut first, "errors", 5);
    sync(
        &mut first,
        "errors",
        &a,
        None,
        vec![(a.member_id.clone(), assignment("wire", &[0, 1]))],
        5,
    );
    let mut other_protocol = join_request("errors", "", None, 5);
    other_protocol.protocols[0].name = s("roundrobin");
    let response: JoinGroupResponse = first.call(ApiKey::JoinGroup, 5, &other_protocol);
    assert_eq!(response.error_code, INCONSISTENT_GROUP_PROTOCOL);

    // A second member joins on its own connection; its join waits while the
    // first learns of the rebalance by heartbeat, and completes when the first
    // rejoins. The waiting join blocks nobody else.
    let address = agent.address();
    let second = std::thread::spawn(move || {
        let stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut client = Client {
            stream,
            correlation_id: 0,
        };
        join(&mut client, "errors", 5)
    });
    let mut saw_rebalance = false;
    for _ in 0..100 {
        let code = heartbeat(&mut first, "errors", a.generation_id, &a.member_id, None, 4);
        if code == REBALANCE_IN_PROGRESS {
            saw_rebalance = true;
            break;
        }
        assert_eq!(code, NONE);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(saw_rebalance, "the first member learns of the rebalance");
    let mut third = Client::connect(&agent);
    let response: ListGroupsResponse =
        third.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    assert_eq!(
        response.groups[0].group_state.as_str(),
        "PreparingRebalance"
    );
    // Commits of the current generation are still accepted while preparing.
    let committed = commit(&mut first, "errors", &a, &[("wire", 0, 1)], 8);
    assert_eq!(committed.topics[0].partitions[0].error_code, NONE);
    let rejoined: JoinGroupResponse = first.call(
        ApiKey::JoinGroup,
        5,
        &join_request("errors", &a.member_id, None, 5),
    );
    let b = second.join().unwrap();
    assert_eq!((rejoined.error_code, b.error_code), (NONE, NONE));
    assert_eq!((rejoined.generation_id, b.generation_id), (2, 2));
    assert_eq!(rejoined.members.len(), 2, "the leader sees both members");
    // The old generation is gone.
    assert_eq!(
        heartbeat(&mut first, "errors", a.generation_id, &a.member_id, None, 4),
        ILLEGAL_GENERATION
    );

    // Static membership: a restarted instance replaces its member id without a
    // rebalance; the old id is fenced.
    let mut static_client = Client::connect(&agent);
    let s1: JoinGroupResponse = static_client.call(
        ApiKey::JoinGroup,
        7,
        &join_request("static", "", Some("instance-1"), 7),
    );
    assert_eq!(
        s1.error_code, NONE,
        "a static member joins without a member id round"
    );
    sync(
        &mut static_client,
        "static",
        &s1,
        Some("instance-1"),
        vec![(s1.member_id.clone(), assignment("wire", &[0]))],
        5,
    );
    let restarted: JoinGroupResponse = static_client.call(
        ApiKey::JoinGroup,
        9,
        &join_request("static", "", Some("instance-1"), 9),
    );
    assert_eq!(restarted.error_code, NONE);
    assert_eq!(
        restarted.generation_id, s1.generation_id,
        "no new generation"
    );
    assert_ne!(restarted.member_id, s1.member_id);
    assert!(
        restarted.skip_assignment,
        "v9: the restarted leader skips the assignment"
    );
    assert_eq!(
        heartbeat(
            &mut static_client,
            "static",
            s1.generation_id,
            &s1.member_id,
            Some("instance-1"),
            4
        ),
        FENCED_INSTANCE_ID
    );
    let resynced = sync(
        &mut static_client,
        "static",
        &restarted,
        Some("instance-1"),
        Vec::new(),
        5,
    );
    assert_eq!(resynced.assignment, assignment("wire", &[0]));
}

#[test]
fn a_restarted_agent_takes_the_group_over_from_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["--group-initial-rebalance-delay-ms", "100"];
    let (member, generation, assigned) = {
        let agent = AgentProcess::start(dir.path(), &args);
        let mut client = Client::connect(&agent);
        create_topics(&mut client, &["wire"]);
        let joined = join(&mut client, "survivor", 9);
        let assigned = assignment("wire", &[0, 1]);
        sync(
            &mut client,
            "survivor",
            &joined,
            None,
            vec![(joined.member_id.clone(), assigned.clone())],
            5,
        );
        commit(&mut client, "survivor", &joined, &[("wire", 1, 42)], 8);
        (joined.member_id, joined.generation_id, assigned)
        // The agent is killed (SIGKILL) here: nothing is flushed or handed over.
    };

    let agent = AgentProcess::start(dir.path(), &args);
    let mut client = Client::connect(&agent);
    let mut find = FindCoordinatorRequest::default();
    find.key = s("survivor");
    let found: FindCoordinatorResponse = client.call(ApiKey::FindCoordinator, 3, &find);
    assert_eq!(
        (found.error_code, found.port),
        (NONE, i32::from(agent.port))
    );
    // The member carries on with its generation: no rebalance.
    assert_eq!(
        heartbeat(&mut client, "survivor", generation, &member, None, 4),
        NONE
    );
    let mut describe = DescribeGroupsRequest::default();
    describe.groups = vec![group("survivor")];
    let described: DescribeGroupsResponse = client.call(ApiKey::DescribeGroups, 5, &describe);
    let described = &described.groups[0];
    assert_eq!(described.group_state.as_str(), "Stable");
    assert_eq!(described.members[0].member_id, member);
    assert_eq!(described.members[0].member_assignment, assigned);
    assert_eq!(
        fetch(&mut client, "survivor", "wire", 8)[1],
        (1, 42, 3, "m".into())
    );

    // The new agent holds the group's coordinator shard under a new epoch.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let shard = runtime.block_on(async {
        let url = format!("sqlite://{}", dir.path().join("metadata.db").display());
        let store = fjord_metadata::open(&url).await.unwrap();
        store
            .coordinator_shard(fjord_metadata::coordinator_shard_of("survivor"))
            .await
            .unwrap()
    });
    assert_eq!(shard.epoch, 2, "{shard:?}");
    assert_eq!(
        shard.leader,
        Some(0),
        "the restarted agent keeps its data directory's node id: {shard:?}"
    );
}

// ----- the server-side consumer protocol (KIP-848) -----

const INVALID_REQUEST: i16 = 42;
const FENCED_MEMBER_EPOCH: i16 = 110;
const UNSUPPORTED_ASSIGNOR: i16 = 112;
const STALE_MEMBER_EPOCH: i16 = 113;
const INVALID_REGULAR_EXPRESSION: i16 = 128;

/// (topic id, partitions) as a heartbeat carries them.
type Owned = Vec<(Uuid, Vec<i32>)>;

fn consumer_heartbeat(
    client: &mut Client,
    group_id: &str,
    member_id: &str,
    epoch: i32,
    owned: Option<&Owned>,
    version: i16,
    tweak: impl FnOnce(&mut ConsumerGroupHeartbeatRequest),
) -> ConsumerGroupHeartbeatResponse {
    let mut request = ConsumerGroupHeartbeatRequest::default();
    request.group_id = group(group_id);
    request.member_id = s(member_id);
    request.member_epoch = epoch;
    request.rebalance_timeout_ms = if epoch == 0 { 10_000 } else { -1 };
    if epoch == 0 {
        request.subscribed_topic_names = Some(vec![TopicName(s("wire"))]);
        request.server_assignor = Some(s("uniform"));
    }
    request.topic_partitions = owned.map(|owned| {
        owned
            .iter()
            .map(|(id, partitions)| {
                let mut entry = consumer_group_heartbeat_request::TopicPartitions::default();
                entry.topic_id = *id;
                entry.partitions = partitions.clone();
                entry
            })
            .collect()
    });
    tweak(&mut request);
    client.call(ApiKey::ConsumerGroupHeartbeat, version, &request)
}

fn owned_of(response: &ConsumerGroupHeartbeatResponse) -> Option<Owned> {
    response.assignment.as_ref().map(|assignment| {
        assignment
            .topic_partitions
            .iter()
            .map(|t| (t.topic_id, t.partitions.clone()))
            .collect()
    })
}

fn count(owned: &Owned) -> usize {
    owned.iter().map(|(_, p)| p.len()).sum()
}

fn commit_with_epoch(client: &mut Client, group_id: &str, member: &str, epoch: i32) -> i16 {
    let mut p = OffsetCommitRequestPartition::default();
    p.partition_index = 0;
    p.committed_offset = 7;
    let mut t = OffsetCommitRequestTopic::default();
    t.name = TopicName(s("wire"));
    t.partitions = vec![p];
    let mut request = OffsetCommitRequest::default();
    request.group_id = group(group_id);
    request.generation_id_or_member_epoch = epoch;
    request.member_id = s(member);
    request.topics = vec![t];
    let response: OffsetCommitResponse = client.call(ApiKey::OffsetCommit, 9, &request);
    response.topics[0].partitions[0].error_code
}

fn fetch_with_epoch(client: &mut Client, group_id: &str, member: &str, epoch: i32) -> i16 {
    let mut ours = OffsetFetchRequestGroup::default();
    ours.group_id = group(group_id);
    ours.member_id = Some(s(member));
    ours.member_epoch = epoch;
    ours.topics = None;
    let mut request = OffsetFetchRequest::default();
    request.groups = vec![ours];
    let response: OffsetFetchResponse = client.call(ApiKey::OffsetFetch, 9, &request);
    response.groups[0].error_code
}

fn consumer_describe(client: &mut Client, group_id: &str) -> ConsumerGroupDescribeResponse {
    let mut request = ConsumerGroupDescribeRequest::default();
    request.group_ids = vec![group(group_id), group("no-such-group")];
    client.call(ApiKey::ConsumerGroupDescribe, 1, &request)
}

#[test]
fn consumer_protocol_members_revoke_before_others_take_and_are_fenced_by_epoch() {
    let (_dir, agent) = agent();
    let mut client = Client::connect(&agent);
    create_topics(&mut client, &["wire"]);
    let g = "kip848";

    let versions: ApiVersionsResponse =
        client.call(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    for api in [
        ApiKey::ConsumerGroupHeartbeat,
        ApiKey::ConsumerGroupDescribe,
    ] {
        let served = versions.api_keys.iter().find(|k| k.api_key == api as i16);
        assert_eq!(served.map(|k| (k.min_version, k.max_version)), Some((0, 1)));
    }

    // v1: the client generates its member id.
    let no_id = consumer_heartbeat(&mut client, g, "", 0, Some(&Vec::new()), 1, |_| {});
    assert_eq!(no_id.error_code, INVALID_REQUEST);

    let a = consumer_heartbeat(&mut client, g, "member-a", 0, Some(&Vec::new()), 1, |_| {});
    assert_eq!((a.error_code, a.member_epoch), (NONE, 1), "{a:?}");
    let mut a_owned = owned_of(&a).unwrap();
    assert_eq!(count(&a_owned), 2);
    assert_eq!(a.heartbeat_interval_ms, 5_000);

    // b joins at epoch 2 but gets nothing a still owns.
    let b = consumer_heartbeat(&mut client, g, "member-b", 0, Some(&Vec::new()), 1, |_| {});
    assert_eq!((b.error_code, b.member_epoch), (NONE, 2), "{b:?}");
    assert_eq!(count(&owned_of(&b).unwrap()), 0);

    // a is asked to revoke one partition, keeping epoch 1 ...
    let step = consumer_heartbeat(&mut client, g, "member-a", 1, Some(&a_owned), 1, |_| {});
    assert_eq!((step.error_code, step.member_epoch), (NONE, 1), "{step:?}");
    a_owned = owned_of(&step).unwrap();
    assert_eq!(count(&a_owned), 1);
    // ... and reaches epoch 2 once it reports owning only the other one.
    let step = consumer_heartbeat(&mut client, g, "member-a", 1, Some(&a_owned), 1, |_| {});
    assert_eq!((step.error_code, step.member_epoch), (NONE, 2), "{step:?}");
    // Now b gets the released partition.
    let step = consumer_heartbeat(&mut client, g, "member-b", 2, Some(&Vec::new()), 1, |_| {});
    let b_owned = owned_of(&step).unwrap();
    assert_eq!(count(&b_owned), 1);
    assert_ne!(b_owned, a_owned);

    // Epochs the member never had are fenced.
    let fenced = consumer_heartbeat(&mut client, g, "member-a", 5, Some(&a_owned), 1, |_| {});
    assert_eq!(fenced.error_code, FENCED_MEMBER_EPOCH);
    let unknown = consumer_heartbeat(&mut client, g, "nobody", 3, None, 1, |_| {});
    assert_eq!(unknown.error_code, UNKNOWN_MEMBER_ID);

    // Commits and fetches are fenced by the member epoch.
    assert_eq!(commit_with_epoch(&mut client, g, "member-a", 2), NONE);
    assert_eq!(
        commit_with_epoch(&mut client, g, "member-a", 1),
        STALE_MEMBER_EPOCH
    );
    assert_eq!(
        commit_with_epoch(&mut client, g, "nobody", 2),
        UNKNOWN_MEMBER_ID
    );
    assert_eq!(commit_with_epoch(&mut client, g, "", -1), UNKNOWN_MEMBER_ID);
    assert_eq!(fetch_with_epoch(&mut client, g, "member-a", 2), NONE);
    assert_eq!(
        fetch_with_epoch(&mut client, g, "member-a", 1),
        STALE_MEMBER_EPOCH
    );

    // Bad subscriptions.
    let bad = consumer_heartbeat(&mut client, g, "member-c", 0, Some(&Vec::new()), 1, |r| {
        r.server_assignor = Some(s("no-such-assignor"));
    });
    assert_eq!(bad.error_code, UNSUPPORTED_ASSIGNOR);
    let bad = consumer_heartbeat(&mut client, g, "member-c", 0, Some(&Vec::new()), 1, |r| {
        r.subscribed_topic_regex = Some(s("(unclosed"));
    });
    assert_eq!(bad.error_code, INVALID_REGULAR_EXPRESSION);
    assert!(bad.error_message.is_some());

    // Describe: the consumer group, and GROUP_ID_NOT_FOUND for an unknown one.
    let described = consumer_describe(&mut client, g);
    let ours = &described.groups[0];
    assert_eq!(ours.error_code, NONE);
    assert_eq!(ours.group_state.as_str(), "Stable");
    assert_eq!((ours.group_epoch, ours.assignment_epoch), (2, 2));
    assert_eq!(ours.assignor_name.as_str(), "uniform");
    assert_eq!(ours.members.len(), 2);
    for member in &ours.members {
        assert_eq!(member.member_epoch, 2);
        assert_eq!(member.member_type, 1);
        assert_eq!(
            member.assignment.topic_partitions[0].topic_name.0.as_str(),
            "wire"
        );
        assert_eq!(member.assignment.topic_partitions[0].partitions.len(), 1);
    }
    assert_eq!(described.groups[1].error_code, GROUP_ID_NOT_FOUND);
    // The classic DescribeGroups shows it too, each member's partitions in
    // the consumer protocol's assignment format.
    let mut classic = DescribeGroupsRequest::default();
    classic.groups = vec![group(g)];
    let classic: DescribeGroupsResponse = client.call(ApiKey::DescribeGroups, 5, &classic);
    let classic = &classic.groups[0];
    assert_eq!(
        (classic.error_code, classic.protocol_type.as_str()),
        (NONE, "consumer")
    );
    let mut shown: Vec<i32> = Vec::new();
    for member in &classic.members {
        let mut bytes = member.member_assignment.clone();
        bytes.advance(2);
        let decoded = ConsumerProtocolAssignment::decode(&mut bytes, 0).unwrap();
        assert_eq!(decoded.assigned_partitions[0].topic.0.as_str(), "wire");
        shown.extend(&decoded.assigned_partitions[0].partitions);
    }
    shown.sort_unstable();
    assert_eq!(shown, vec![0, 1]);

    // ListGroups v5 shows its type and filters by it.
    let mut list = ListGroupsRequest::default();
    let listed: ListGroupsResponse = client.call(ApiKey::ListGroups, 5, &list);
    let entry = listed
        .groups
        .iter()
        .find(|l| l.group_id.0.as_str() == g)
        .unwrap();
    assert_eq!(entry.group_type.as_str(), "consumer");
    assert_eq!(entry.protocol_type.as_str(), "consumer");
    list.types_filter = vec![s("classic")];
    let listed: ListGroupsResponse = client.call(ApiKey::ListGroups, 5, &list);
    assert!(listed.groups.iter().all(|l| l.group_id.0.as_str() != g));

    // Classic members cannot join it while it has members; it cannot be deleted.
    let classic: JoinGroupResponse =
        client.call(ApiKey::JoinGroup, 9, &join_request(g, "", None, 9));
    assert_eq!(classic.error_code, INCONSISTENT_GROUP_PROTOCOL);
    let mut delete = DeleteGroupsRequest::default();
    delete.groups_names = vec![group(g)];
    let deleted: DeleteGroupsResponse = client.call(ApiKey::DeleteGroups, 2, &delete);
    assert_eq!(deleted.results[0].error_code, NON_EMPTY_GROUP);

    // A v0 join gets a member id from the coordinator.
    let v0 = consumer_heartbeat(&mut client, g, "", 0, Some(&Vec::new()), 0, |_| {});
    assert_eq!(v0.error_code, NONE);
    let v0_id = v0.member_id.unwrap().to_string();
    assert!(!v0_id.is_empty());

    // Everyone leaves: the empty group turns classic on the next classic join,
    // and keeps its offsets.
    for member in ["member-a", "member-b", v0_id.as_str()] {
        let left = consumer_heartbeat(&mut client, g, member, -1, None, 1, |_| {});
        assert_eq!((left.error_code, left.member_epoch), (NONE, -1), "{member}");
    }
    let joined = join(&mut client, g, 9);
    assert_eq!(joined.error_code, NONE);
    let offsets = fetch(&mut client, g, "wire", 8);
    assert_eq!(offsets[0].1, 7, "{offsets:?}");
}

#[test]
fn a_restarted_agent_resumes_a_consumer_protocol_group_from_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let g = "kip848-survivor";
    let (owned, epoch) = {
        let agent = AgentProcess::start(dir.path(), &[]);
        let mut client = Client::connect(&agent);
        create_topics(&mut client, &["wire"]);
        let joined = consumer_heartbeat(&mut client, g, "m", 0, Some(&Vec::new()), 1, |_| {});
        assert_eq!(joined.error_code, NONE);
        assert_eq!(
            commit_with_epoch(&mut client, g, "m", joined.member_epoch),
            NONE
        );
        (owned_of(&joined).unwrap(), joined.member_epoch)
        // SIGKILL here.
    };
    let agent = AgentProcess::start(dir.path(), &[]);
    let mut client = Client::connect(&agent);
    // The member carries on at its epoch with its partitions: nothing moved.
    let beat = consumer_heartbeat(&mut client, g, "m", epoch, Some(&owned), 1, |_| {});
    assert_eq!(
        (beat.error_code, beat.member_epoch),
        (NONE, epoch),
        "{beat:?}"
    );
    assert_eq!(commit_with_epoch(&mut client, g, "m", epoch), NONE);
    assert_eq!(fetch(&mut client, g, "wire", 8)[0].1, 7);
    let described = consumer_describe(&mut client, g);
    assert_eq!(described.groups[0].group_epoch, epoch);
}
