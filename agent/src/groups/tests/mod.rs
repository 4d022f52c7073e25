//! The coordinator against Kafka's group semantics, on in-memory metadata with
//! paused time (timers run instantly and deterministically).
//!
//! This module holds the helpers every theme uses (settings, requests, a
//! generation formed and synced); one file per behaviour covered:
//!
//! | module | covers |
//! |---|---|
//! | `membership` | joins, syncs, heartbeats and leaves: generations form, members come, expire and are replaced |
//! | `refusals` | client input that is refused, and random request sequences that never break a group |
//! | `admin` | `ListGroups`, `DeleteGroups` and `OffsetDelete` |
//! | `takeover` | coordinator shards moving between agents: fencing, taking over, releasing |
//! | `supervision` | a panicked group actor reloaded from metadata |
//! | `expiry` | offsets and empty groups expiring after `offsets.retention.minutes` |

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail loudly by design

use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use fjord_common::{Clock, RandomIds};
use fjord_metadata::{MetadataStore, NewTopic, OffsetCommit};
use kafka_protocol::messages::ConsumerProtocolSubscription;
use kafka_protocol::protocol::{Encodable, StrBytes};
use tokio::task::JoinHandle;

use super::types::*;
use super::*;

mod admin;
mod expiry;
mod membership;
mod refusals;
mod supervision;
mod takeover;

const SESSION_MS: i32 = 10_000;
const REBALANCE_MS: i32 = 20_000;
const INITIAL_DELAY: Duration = Duration::from_millis(300);

fn settings() -> GroupSettings {
    GroupSettings {
        initial_rebalance_delay: INITIAL_DELAY,
        min_session_timeout: Duration::from_millis(1),
        ..GroupSettings::default()
    }
}

async fn store() -> MetadataStore {
    fjord_metadata::open("memory://").await.unwrap()
}

fn coordinator_on(store: &MetadataStore, node_id: i32) -> Arc<GroupCoordinator> {
    Arc::new(GroupCoordinator::new(
        store.clone(),
        node_id,
        Arc::new(RandomIds::new()),
        settings(),
    ))
}

fn subscription(topics: &[&str]) -> Bytes {
    let mut subscription = ConsumerProtocolSubscription::default();
    subscription.topics = topics
        .iter()
        .map(|t| StrBytes::from_string((*t).to_owned()))
        .collect();
    let mut bytes = BytesMut::new();
    bytes.put_i16(0);
    subscription.encode(&mut bytes, 0).unwrap();
    bytes.freeze()
}

fn join_request(group: &str, member_id: &str, instance: Option<&str>) -> JoinRequest {
    JoinRequest {
        group_id: group.into(),
        member_id: member_id.into(),
        group_instance_id: instance.map(str::to_owned),
        client_id: "test-client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: SESSION_MS,
        rebalance_timeout_ms: REBALANCE_MS,
        protocol_type: "consumer".into(),
        protocols: vec![("range".into(), subscription(&["orders"]))],
        require_known_member_id: true,
        supports_skip_assignment: false,
    }
}

fn spawn_join(
    coordinator: &Arc<GroupCoordinator>,
    request: JoinRequest,
) -> JoinHandle<JoinResponse> {
    let coordinator = coordinator.clone();
    tokio::spawn(async move { coordinator.join(request).await })
}

/// A dynamic member's first join: `MEMBER_ID_REQUIRED`, then the join with its
/// id, which waits for the generation.
async fn join_dynamic(
    coordinator: &Arc<GroupCoordinator>,
    group: &str,
) -> JoinHandle<JoinResponse> {
    let first = coordinator.join(join_request(group, "", None)).await;
    assert_eq!(first.error, Some(GroupError::MemberIdRequired));
    assert!(first.member_id.starts_with("test-client-"), "{first:?}");
    spawn_join(coordinator, join_request(group, &first.member_id, None))
}

fn sync_request(
    group: &str,
    joined: &JoinResponse,
    assignments: Vec<(String, Bytes)>,
) -> SyncRequest {
    SyncRequest {
        group_id: group.into(),
        generation: joined.generation,
        member_id: joined.member_id.clone(),
        group_instance_id: None,
        protocol_type: Some("consumer".into()),
        protocol_name: joined.protocol_name.clone(),
        assignments,
    }
}

fn heartbeat(group: &str, joined: &JoinResponse) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: group.into(),
        generation: joined.generation,
        member_id: joined.member_id.clone(),
        group_instance_id: None,
    }
}

/// Syncs every member of a generation (the leader with one assignment each)
/// and returns what each received.
async fn sync_all(
    coordinator: &Arc<GroupCoordinator>,
    group: &str,
    joined: &[JoinResponse],
) -> Vec<Bytes> {
    let leader = joined
        .iter()
        .find(|j| j.member_id == j.leader)
        .expect("a leader");
    let assignments: Vec<(String, Bytes)> = leader
        .members
        .iter()
        .map(|m| {
            (
                m.member_id.clone(),
                Bytes::from(format!("for {}", m.member_id)),
            )
        })
        .collect();
    let mut handles = Vec::new();
    for member in joined {
        let coordinator = coordinator.clone();
        let request = if member.member_id == member.leader {
            sync_request(group, member, assignments.clone())
        } else {
            sync_request(group, member, Vec::new())
        };
        handles.push(tokio::spawn(async move { coordinator.sync(request).await }));
    }
    let mut received = Vec::new();
    for handle in handles {
        let answer = handle.await.unwrap();
        assert_eq!(answer.error, None, "{answer:?}");
        received.push(answer.assignment);
    }
    received
}

fn offset(partition: i32, offset: i64) -> OffsetCommit {
    OffsetCommit {
        topic: "orders".into(),
        partition,
        offset,
        leader_epoch: None,
        metadata: Some("m".into()),
    }
}

fn commit(group: &str, joined: &JoinResponse, offsets: Vec<OffsetCommit>) -> CommitRequest {
    CommitRequest {
        group_id: group.into(),
        generation: joined.generation,
        member_id: joined.member_id.clone(),
        group_instance_id: None,
        offsets,
    }
}
