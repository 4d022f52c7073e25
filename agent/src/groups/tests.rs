//! The coordinator against Kafka's group semantics, on in-memory metadata with
//! paused time (timers run instantly and deterministically).

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

#[tokio::test(start_paused = true)]
async fn a_first_join_needs_a_member_id_and_forms_a_generation_after_the_initial_delay() {
    let store = store().await;
    let coordinator = coordinator_on(&store, 1);
    coordinator.find_coordinator("g").await.unwrap();
    let started = tokio::time::Instant::now();
    let joined = join_dynamic(&coordinator, "g").await.await.unwrap();
    assert_eq!(
        started.elapsed(),
        INITIAL_DELAY,
        "the initial rebalance delay"
    );
    assert_eq!(joined.error, None);
    assert_eq!(joined.generation, 1);
    assert_eq!(joined.leader, joined.member_id);
    assert_eq!(joined.protocol_name.as_deref(), Some("range"));
    assert_eq!(joined.members.len(), 1, "the leader sees the members");
    assert_eq!(joined.members[0].metadata, subscription(&["orders"]));

    // Heartbeats before the sync are fine (Kafka's CompletingRebalance).
    coordinator
        .heartbeat(heartbeat("g", &joined))
        .await
        .unwrap();
    let assignment = sync_all(&coordinator, "g", std::slice::from_ref(&joined)).await;
    assert_eq!(
        assignment[0],
        Bytes::from(format!("for {}", joined.member_id))
    );
    coordinator
        .heartbeat(heartbeat("g", &joined))
        .await
        .unwrap();
    let described = coordinator.describe("g").await.unwrap();
    assert_eq!((described.state, described.generation), ("Stable", 1));
    assert_eq!(described.protocol_name, "range");
    assert_eq!(described.members[0].assignment, assignment[0]);
    assert_eq!(described.members[0].client_host, "/127.0.0.1");

    // The generation and the assignment are in metadata.
    let stored = store.load_group("g").await.unwrap().unwrap();
    assert_eq!(
        (stored.generation, stored.phase),
        (1, fjord_metadata::GroupPhase::Stable)
    );
    assert_eq!(stored.members[0].assignment, assignment[0].to_vec());

    // Unknown members and groups are told so.
    let mut stranger = heartbeat("g", &joined);
    stranger.member_id = "nobody".into();
    assert_eq!(
        coordinator.heartbeat(stranger).await,
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        coordinator.heartbeat(heartbeat("other", &joined)).await,
        Err(GroupError::UnknownMemberId)
    );
    let mut stale = heartbeat("g", &joined);
    stale.generation = 0;
    assert_eq!(
        coordinator.heartbeat(stale).await,
        Err(GroupError::IllegalGeneration)
    );
    assert_eq!(coordinator.describe("nothing").await.unwrap().state, "Dead");
}

#[tokio::test(start_paused = true)]
async fn a_new_member_triggers_a_rebalance_and_commits_are_fenced_by_generation() {
    let store = store().await;
    store
        .create_topic(NewTopic::new("orders", 4))
        .await
        .unwrap();
    let coordinator = coordinator_on(&store, 1);
    let first = join_dynamic(&coordinator, "g").await.await.unwrap();
    sync_all(&coordinator, "g", std::slice::from_ref(&first)).await;
    coordinator
        .commit_offsets(commit("g", &first, vec![offset(0, 10)]))
        .await
        .unwrap();

    // A second member joins: the first learns of the rebalance by heartbeat.
    let second = join_dynamic(&coordinator, "g").await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        coordinator.heartbeat(heartbeat("g", &first)).await,
        Err(GroupError::RebalanceInProgress)
    );
    // During the rebalance the current generation may still commit.
    coordinator
        .commit_offsets(commit("g", &first, vec![offset(0, 11)]))
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let first_again = spawn_join(&coordinator, join_request("g", &first.member_id, None));
    let (first_again, second) = (first_again.await.unwrap(), second.await.unwrap());
    assert_eq!(
        started.elapsed(),
        Duration::ZERO,
        "completes as soon as all rejoined"
    );
    assert_eq!((first_again.generation, second.generation), (2, 2));
    assert_eq!(first_again.leader, first.member_id, "the leader stays");
    assert_eq!(first_again.members.len(), 2);
    assert!(
        second.members.is_empty(),
        "followers do not see the members"
    );

    // Before the leader syncs, commits are refused as rebalancing; the old
    // generation is illegal.
    assert_eq!(
        coordinator
            .commit_offsets(commit("g", &second, vec![offset(1, 5)]))
            .await,
        Err(GroupError::RebalanceInProgress)
    );
    assert_eq!(
        coordinator
            .commit_offsets(commit("g", &first, vec![offset(0, 99)]))
            .await,
        Err(GroupError::IllegalGeneration)
    );
    let assignments = sync_all(&coordinator, "g", &[first_again.clone(), second.clone()]).await;
    assert_ne!(assignments[0], assignments[1]);
    coordinator
        .commit_offsets(commit("g", &second, vec![offset(1, 5)]))
        .await
        .unwrap();
    // A simple commit (no generation) is refused while the group has members.
    let simple = CommitRequest {
        group_id: "g".into(),
        generation: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets: vec![offset(2, 1)],
    };
    assert_eq!(
        coordinator.commit_offsets(simple).await,
        Err(GroupError::UnknownMemberId)
    );
    let offsets: Vec<(i32, i64)> = coordinator
        .fetch_offsets("g")
        .await
        .unwrap()
        .iter()
        .map(|o| (o.partition, o.committed.offset))
        .collect();
    assert_eq!(offsets, vec![(0, 11), (1, 5)]);
}

#[tokio::test(start_paused = true)]
async fn a_silent_member_expires_after_its_session_timeout() {
    let store = store().await;
    let coordinator = coordinator_on(&store, 1);
    let a = join_dynamic(&coordinator, "g").await;
    let b = join_dynamic(&coordinator, "g").await;
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    sync_all(&coordinator, "g", &[a.clone(), b.clone()]).await;

    // Only `a` heartbeats; `b` is gone after its session timeout.
    let started = tokio::time::Instant::now();
    let mut rebalancing_after = None;
    for _ in 0..20 {
        tokio::time::sleep(Duration::from_millis(1_000)).await;
        if coordinator.heartbeat(heartbeat("g", &a)).await == Err(GroupError::RebalanceInProgress) {
            rebalancing_after = Some(started.elapsed());
            break;
        }
    }
    let after = rebalancing_after.expect("b expires");
    assert!(
        after >= Duration::from_millis(SESSION_MS as u64)
            && after <= Duration::from_millis(SESSION_MS as u64 + 1_000),
        "{after:?}"
    );
    let alone = coordinator
        .join(join_request("g", &a.member_id, None))
        .await;
    assert_eq!(
        (a.generation, b.generation),
        (1, 1),
        "one initial generation"
    );
    assert_eq!(alone.generation, 2);
    assert_eq!(alone.members.len(), 1, "b was removed");
    assert_eq!(
        coordinator.heartbeat(heartbeat("g", &b)).await,
        Err(GroupError::UnknownMemberId)
    );
}

#[tokio::test(start_paused = true)]
async fn members_that_do_not_rejoin_within_the_rebalance_timeout_are_dropped() {
    let store = store().await;
    let coordinator = coordinator_on(&store, 1);
    let a = join_dynamic(&coordinator, "g").await;
    let b = join_dynamic(&coordinator, "g").await;
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    sync_all(&coordinator, "g", &[a.clone(), b.clone()]).await;

    // `a` rejoins; `b` keeps heartbeating but never rejoins.
    let started = tokio::time::Instant::now();
    let rejoined = spawn_join(&coordinator, join_request("g", &a.member_id, None));
    let keep_alive = {
        let coordinator = coordinator.clone();
        let b = b.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(1_000)).await;
                if coordinator.heartbeat(heartbeat("g", &b)).await
                    == Err(GroupError::UnknownMemberId)
                {
                    return;
                }
            }
        })
    };
    let rejoined = rejoined.await.unwrap();
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(REBALANCE_MS as u64)
    );
    assert_eq!((rejoined.generation, rejoined.members.len()), (2, 1));
    keep_alive.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_static_member_rejoins_without_a_rebalance_and_fences_its_old_id() {
    let store = store().await;
    let coordinator = coordinator_on(&store, 1);
    let stat = spawn_join(&coordinator, join_request("g", "", Some("instance-1")));
    let dynamic = join_dynamic(&coordinator, "g").await;
    let (stat, dynamic) = (stat.await.unwrap(), dynamic.await.unwrap());
    assert!(stat.member_id.starts_with("instance-1-"), "{stat:?}");
    let assignments = sync_all(&coordinator, "g", &[stat.clone(), dynamic.clone()]).await;

    // The static member's process restarts: a join without member id, same
    // instance id. Same generation, same assignment, no rebalance.
    let restarted = coordinator
        .join(join_request("g", "", Some("instance-1")))
        .await;
    assert_eq!(restarted.error, None);
    assert_eq!(restarted.generation, stat.generation);
    assert_ne!(restarted.member_id, stat.member_id);
    assert_eq!(
        restarted.leader, stat.leader,
        "the old leader id is returned"
    );
    assert!(restarted.members.is_empty());
    coordinator
        .heartbeat(heartbeat("g", &dynamic))
        .await
        .unwrap();
    let resync = coordinator
        .sync(SyncRequest {
            group_instance_id: Some("instance-1".into()),
            ..sync_request("g", &restarted, Vec::new())
        })
        .await;
    assert_eq!(resync.error, None);
    assert_eq!(resync.assignment, assignments[0]);

    // The old process is fenced.
    let old = HeartbeatRequest {
        group_instance_id: Some("instance-1".into()),
        ..heartbeat("g", &stat)
    };
    assert_eq!(
        coordinator.heartbeat(old).await,
        Err(GroupError::FencedInstanceId)
    );
    let stored = store.load_group("g").await.unwrap().unwrap();
    assert!(
        stored
            .members
            .iter()
            .any(|m| m.member_id == restarted.member_id)
    );
    assert!(!stored.members.iter().any(|m| m.member_id == stat.member_id));

    // Leaving by instance id with a stale member id is fenced; with the current
    // one (or none) it leaves. Unknown members are reported per member.
    let results = coordinator
        .leave(
            "g",
            vec![
                LeavingMember {
                    member_id: stat.member_id.clone(),
                    group_instance_id: Some("instance-1".into()),
                },
                LeavingMember {
                    member_id: "nobody".into(),
                    group_instance_id: None,
                },
                LeavingMember {
                    member_id: String::new(),
                    group_instance_id: Some("instance-1".into()),
                },
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        results,
        vec![
            Err(GroupError::FencedInstanceId),
            Err(GroupError::UnknownMemberId),
            Ok(())
        ]
    );
    assert_eq!(
        coordinator.heartbeat(heartbeat("g", &dynamic)).await,
        Err(GroupError::RebalanceInProgress)
    );
}

#[tokio::test(start_paused = true)]
async fn a_stale_coordinator_is_fenced_and_the_new_one_resumes_the_group() {
    let store = store().await;
    store
        .create_topic(NewTopic::new("orders", 2))
        .await
        .unwrap();
    let old = coordinator_on(&store, 1);
    let member = join_dynamic(&old, "g").await.await.unwrap();
    let assignment = sync_all(&old, "g", std::slice::from_ref(&member)).await;
    old.commit_offsets(commit("g", &member, vec![offset(0, 7)]))
        .await
        .unwrap();

    // Another agent takes the group's shard (a new epoch) and loads the group.
    let new = coordinator_on(&store, 2);
    new.find_coordinator("g").await.unwrap();
    let described = new.describe("g").await.unwrap();
    assert_eq!((described.state, described.generation), ("Stable", 1));
    assert_eq!(described.members[0].assignment, assignment[0]);

    // The old coordinator's writes fail and change nothing.
    assert_eq!(
        old.commit_offsets(commit("g", &member, vec![offset(0, 1_000)]))
            .await,
        Err(GroupError::NotCoordinator)
    );
    assert_eq!(
        store.fetch_offsets("g").await.unwrap()[0].committed.offset,
        7
    );
    // Having lost the shard, it takes it back only when asked again (today's
    // placement policy); the member continues with the new coordinator.
    new.heartbeat(heartbeat("g", &member)).await.unwrap();
    new.commit_offsets(commit("g", &member, vec![offset(0, 8)]))
        .await
        .unwrap();
    let again = new.sync(sync_request("g", &member, Vec::new())).await;
    assert_eq!(again.assignment, assignment[0]);
    assert_eq!(
        store.fetch_offsets("g").await.unwrap()[0].committed.offset,
        8
    );
}

#[tokio::test(start_paused = true)]
async fn groups_are_listed_deleted_only_when_empty_and_offsets_of_consumed_topics_are_kept() {
    let store = store().await;
    store
        .create_topic(NewTopic::new("orders", 2))
        .await
        .unwrap();
    store.create_topic(NewTopic::new("old", 1)).await.unwrap();
    let coordinator = coordinator_on(&store, 1);
    let member = join_dynamic(&coordinator, "busy").await.await.unwrap();
    sync_all(&coordinator, "busy", std::slice::from_ref(&member)).await;
    coordinator
        .commit_offsets(commit(
            "busy",
            &member,
            vec![
                offset(0, 1),
                OffsetCommit {
                    topic: "old".into(),
                    ..offset(0, 3)
                },
            ],
        ))
        .await
        .unwrap();
    // A simple commit creates an empty group.
    coordinator
        .commit_offsets(CommitRequest {
            group_id: "idle".into(),
            generation: -1,
            member_id: String::new(),
            group_instance_id: None,
            offsets: vec![offset(1, 4)],
        })
        .await
        .unwrap();
    let listed: Vec<(String, &str)> = coordinator
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.group_id, l.state))
        .collect();
    assert_eq!(
        listed,
        vec![("busy".into(), "Stable"), ("idle".into(), "Empty")]
    );

    // OffsetDelete: the consumed topic's offsets stay, the other's go.
    let errors = coordinator
        .delete_offsets("busy", vec![("orders".into(), 0), ("old".into(), 0)])
        .await
        .unwrap();
    assert_eq!(errors, vec![Some(GroupError::GroupSubscribedToTopic), None]);
    let left: Vec<String> = store
        .fetch_offsets("busy")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.topic)
        .collect();
    assert_eq!(left, vec!["orders".to_owned()]);

    assert_eq!(
        coordinator.delete("busy").await,
        Err(GroupError::NonEmptyGroup)
    );
    assert_eq!(
        coordinator.delete("missing").await,
        Err(GroupError::GroupIdNotFound)
    );
    coordinator.delete("idle").await.unwrap();
    assert!(store.fetch_offsets("idle").await.unwrap().is_empty());
    assert_eq!(store.load_group("idle").await.unwrap(), None);
    assert_eq!(coordinator.describe("idle").await.unwrap().state, "Dead");

    // The last member leaves: the group is empty (a new generation) and can go.
    let left = coordinator
        .leave(
            "busy",
            vec![LeavingMember {
                member_id: member.member_id.clone(),
                group_instance_id: None,
            }],
        )
        .await
        .unwrap();
    assert_eq!(left, vec![Ok(())]);
    let described = coordinator.describe("busy").await.unwrap();
    assert_eq!((described.state, described.generation), ("Empty", 2));
    coordinator.delete("busy").await.unwrap();
    assert!(coordinator.list().await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn bad_joins_are_refused() {
    let store = store().await;
    let coordinator = coordinator_on(&store, 1);
    let empty_group = coordinator.join(join_request("", "", None)).await;
    assert_eq!(empty_group.error, Some(GroupError::InvalidGroupId));
    let too_long = coordinator
        .join(JoinRequest {
            session_timeout_ms: 1_800_001,
            ..join_request("g", "", None)
        })
        .await;
    assert_eq!(too_long.error, Some(GroupError::InvalidSessionTimeout));
    let negative = coordinator
        .join(JoinRequest {
            session_timeout_ms: -5,
            ..join_request("g", "", None)
        })
        .await;
    assert_eq!(negative.error, Some(GroupError::InvalidSessionTimeout));
    let no_protocols = coordinator
        .join(JoinRequest {
            protocols: Vec::new(),
            ..join_request("g", "", None)
        })
        .await;
    assert_eq!(
        no_protocols.error,
        Some(GroupError::InconsistentGroupProtocol)
    );
    let unknown = coordinator.join(join_request("g", "made-up", None)).await;
    assert_eq!(unknown.error, Some(GroupError::UnknownMemberId));

    // A member id handed out with MEMBER_ID_REQUIRED belongs to a dynamic
    // member: it cannot come back claiming a static instance id (which another
    // member may hold).
    let holder = spawn_join(&coordinator, join_request("s", "", Some("i-1")));
    let pending = coordinator.join(join_request("s", "", None)).await;
    assert_eq!(pending.error, Some(GroupError::MemberIdRequired));
    let claim = coordinator
        .join(join_request("s", &pending.member_id, Some("i-1")))
        .await;
    assert_eq!(claim.error, Some(GroupError::UnknownMemberId));
    let holder = holder.await.unwrap();
    assert_eq!((holder.error, holder.members.len()), (None, 1));

    // A member whose protocols share nothing with the group's is refused.
    let member = join_dynamic(&coordinator, "g").await.await.unwrap();
    sync_all(&coordinator, "g", std::slice::from_ref(&member)).await;
    let other = coordinator
        .join(JoinRequest {
            protocols: vec![("roundrobin".into(), Bytes::new())],
            ..join_request("g", "", None)
        })
        .await;
    assert_eq!(other.error, Some(GroupError::InconsistentGroupProtocol));
    let other_type = coordinator
        .join(JoinRequest {
            protocol_type: "connect".into(),
            ..join_request("g", "", None)
        })
        .await;
    assert_eq!(
        other_type.error,
        Some(GroupError::InconsistentGroupProtocol)
    );
}

/// Random sequences of requests — garbage member ids, generations, instance ids
/// and protocols, joins left waiting, time jumps — never kill a group's actor
/// (its invariants are asserted after every event in debug builds) and leave
/// every group able to form a generation.
#[tokio::test(start_paused = true)]
async fn random_request_sequences_never_break_a_group() {
    use fjord_common::SeededRng;
    use std::sync::Mutex;

    // A panic in any actor task fails the test (the runtime would only log it).
    static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        default_hook(info);
    }));

    let store = store().await;
    store
        .create_topic(NewTopic::new("orders", 3))
        .await
        .unwrap();
    let coordinator = coordinator_on(&store, 1);
    let rng = Arc::new(SeededRng::new(
        std::env::var("FJORD_GROUP_FUZZ_SEED").map_or(0x6c0_ffee, |s| s.parse().unwrap()),
    ));
    let outcomes: Arc<Mutex<std::collections::BTreeMap<String, usize>>> = Arc::default();
    let tally = {
        let outcomes = outcomes.clone();
        move |what: String| *outcomes.lock().unwrap().entry(what).or_default() += 1
    };
    let groups = ["r0", "r1", "r2"];
    let issued: Arc<Mutex<Vec<String>>> =
        Arc::new(Mutex::new(vec!["garbage".into(), String::new()]));
    // (group, member id, generation) of successful joins: most syncs and
    // heartbeats come from real members, some with a stale generation.
    let members: Arc<Mutex<Vec<(String, String, i32)>>> = Arc::default();
    let pick_member = |rng: &SeededRng| {
        let issued = issued.lock().unwrap();
        issued[rng.below(issued.len() as u64) as usize].clone()
    };
    let protocols = [
        vec![("range".to_owned(), subscription(&["orders"]))],
        vec![("roundrobin".to_owned(), subscription(&["orders"]))],
        vec![
            ("range".to_owned(), subscription(&["orders", "other"])),
            (
                "roundrobin".to_owned(),
                Bytes::from_static(b"\xff\xff garbage"),
            ),
        ],
        Vec::new(),
    ];
    let instances = [None, None, Some("i-1"), Some("i-2")];
    let mut waiting = Vec::new();
    for _ in 0..600 {
        let mut group = groups[rng.below(3) as usize].to_owned();
        let mut member_id = pick_member(&rng);
        let mut instance = instances[rng.below(4) as usize].map(str::to_owned);
        let mut generation = rng.below(6) as i32 - 1;
        let known = members.lock().unwrap().clone();
        if !known.is_empty() && rng.below(4) != 0 {
            let (g, m, generation_joined) = known[rng.below(known.len() as u64) as usize].clone();
            (group, member_id, instance, generation) = (g, m, None, generation_joined);
        }
        match rng.below(10) {
            0..=2 => {
                let request = JoinRequest {
                    // Half the joins are first joins, so the groups keep members.
                    member_id: if rng.below(2) == 0 {
                        String::new()
                    } else {
                        member_id
                    },
                    group_instance_id: instance,
                    session_timeout_ms: [1, 10_000, 30_000, 30_000][rng.below(4) as usize],
                    rebalance_timeout_ms: [0, 2_000, 20_000, 20_000][rng.below(4) as usize],
                    protocols: protocols[rng.below(4) as usize].clone(),
                    require_known_member_id: rng.below(2) == 0,
                    supports_skip_assignment: rng.below(2) == 0,
                    ..join_request(&group, "", None)
                };
                let sync_after_join = rng.below(4) != 0;
                let instance = request.group_instance_id.clone();
                let coordinator = coordinator.clone();
                let issued = issued.clone();
                let members = members.clone();
                let tally = tally.clone();
                waiting.push(tokio::spawn(async move {
                    let group = request.group_id.clone();
                    let answer = coordinator.join(request).await;
                    tally(format!("join {:?}", answer.error));
                    if answer.error.is_none() {
                        members.lock().unwrap().push((
                            group.clone(),
                            answer.member_id.clone(),
                            answer.generation,
                        ));
                        if sync_after_join {
                            // As a client does: sync at once, the leader with an
                            // assignment for every member.
                            let assignments = answer
                                .members
                                .iter()
                                .map(|m| (m.member_id.clone(), Bytes::from_static(b"\x00\x01")))
                                .collect();
                            let synced = coordinator
                                .sync(SyncRequest {
                                    group_instance_id: instance,
                                    ..sync_request(&group, &answer, assignments)
                                })
                                .await;
                            tally(format!("sync {:?}", synced.error));
                        }
                    }
                    if !answer.member_id.is_empty() {
                        issued.lock().unwrap().push(answer.member_id);
                    }
                }));
            }
            3 => {
                let assignments: Vec<(String, Bytes)> = (0..rng.below(3))
                    .map(|_| (pick_member(&rng), Bytes::from_static(b"\x00\x00\x00")))
                    .collect();
                let request = SyncRequest {
                    group_id: group,
                    generation,
                    member_id,
                    group_instance_id: instance,
                    protocol_type: None,
                    protocol_name: None,
                    assignments,
                };
                let coordinator = coordinator.clone();
                let tally = tally.clone();
                waiting.push(tokio::spawn(async move {
                    let answer = coordinator.sync(request).await;
                    tally(format!("sync {:?}", answer.error));
                }));
            }
            4 => {
                let answer = coordinator
                    .heartbeat(HeartbeatRequest {
                        group_id: group,
                        generation,
                        member_id,
                        group_instance_id: instance,
                    })
                    .await;
                tally(format!("heartbeat {answer:?}"));
            }
            5 => {
                let leaving = vec![LeavingMember {
                    member_id,
                    group_instance_id: instance,
                }];
                let _ = coordinator.leave(&group, leaving).await;
            }
            6 => {
                let _ = coordinator
                    .commit_offsets(CommitRequest {
                        group_id: group,
                        generation,
                        member_id,
                        group_instance_id: instance,
                        offsets: vec![offset(rng.below(3) as i32, rng.below(100) as i64)],
                    })
                    .await;
            }
            7 => {
                let _ = coordinator.describe(&group).await.unwrap();
                let _ = coordinator.list().await.unwrap();
            }
            8 => {
                let _ = coordinator.delete(&group).await;
                let _ = coordinator
                    .delete_offsets(&group, vec![("orders".into(), 0)])
                    .await;
            }
            _ => {
                let pause = if rng.below(10) == 0 { 40_000 } else { 1_000 };
                tokio::time::sleep(Duration::from_millis(rng.below(pause))).await;
            }
        }
    }
    // Let every timer run out; every waiting request gets an answer.
    tokio::time::sleep(Duration::from_secs(600)).await;
    for handle in waiting {
        handle.await.unwrap();
    }
    let outcomes = outcomes.lock().unwrap().clone();
    eprintln!("outcomes: {outcomes:#?}");
    assert_eq!(
        PANICS.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a group actor panicked"
    );
    // The fixed sequence reaches the interesting states, not only refusals.
    let fixed_seed = std::env::var("FJORD_GROUP_FUZZ_SEED").is_err();
    for expected in [
        "join None",
        "sync None",
        "heartbeat Ok(())",
        "heartbeat Err(RebalanceInProgress)",
    ] {
        assert!(
            !fixed_seed || outcomes.contains_key(expected),
            "never saw {expected}: {outcomes:#?}"
        );
    }
    for group in groups {
        // The actor is alive (a dead one answers NOT_COORDINATOR) ...
        let described = coordinator.describe(group).await.unwrap();
        assert_ne!(described.state, "PreparingRebalance", "{described:?}");
        // ... and a fresh member can still form a generation.
        let joined = join_dynamic(&coordinator, group).await.await.unwrap();
        assert_eq!(joined.error, None, "{group}: {joined:?}");
    }
}

/// A group actor that dies (a bug: here a test-only command that panics) after
/// its group formed a generation and committed offsets comes back as persisted
/// — generation, protocol, members and assignment — not as an empty group.
#[tokio::test(start_paused = true)]
async fn a_panicked_actor_is_reloaded_from_metadata() {
    let store = store().await;
    store
        .create_topic(NewTopic::new("orders", 2))
        .await
        .unwrap();
    let coordinator = coordinator_on(&store, 1);
    let member = join_dynamic(&coordinator, "g").await.await.unwrap();
    let assignment = sync_all(&coordinator, "g", std::slice::from_ref(&member)).await;
    coordinator
        .commit_offsets(commit("g", &member, vec![offset(0, 42)]))
        .await
        .unwrap();

    assert_eq!(
        coordinator.inject_actor_panic("g").await,
        Err(GroupError::NotCoordinator),
        "the request the actor died on is answered NOT_COORDINATOR (the client retries)"
    );

    let described = coordinator.describe("g").await.unwrap();
    assert_eq!(
        (
            described.state,
            described.generation,
            described.protocol_type.as_str(),
            described.protocol_name.as_str()
        ),
        ("Stable", 1, "consumer", "range"),
        "{described:?}"
    );
    assert_eq!(described.members.len(), 1, "{described:?}");
    assert_eq!(described.members[0].member_id, member.member_id);
    assert_eq!(described.members[0].assignment, assignment[0]);
    // The member carries on in its generation: heartbeats and commits work.
    coordinator
        .heartbeat(heartbeat("g", &member))
        .await
        .unwrap();
    coordinator
        .commit_offsets(commit("g", &member, vec![offset(0, 43)]))
        .await
        .unwrap();
    assert_eq!(
        store.fetch_offsets("g").await.unwrap()[0].committed.offset,
        43
    );
    let listed: Vec<(String, &str)> = coordinator
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.group_id, l.state))
        .collect();
    assert_eq!(listed, vec![("g".into(), "Stable")]);
}

/// The shard's supervisor reloads a panicked actor at once, without waiting for
/// a request: the group's timers go on (here a silent member's session expires
/// and the reloaded actor persists the group's next, empty, generation).
#[tokio::test(start_paused = true)]
async fn a_panicked_actor_is_reloaded_at_once_and_its_timers_go_on() {
    let store = store().await;
    store
        .create_topic(NewTopic::new("orders", 2))
        .await
        .unwrap();
    let coordinator = coordinator_on(&store, 1);
    let member = join_dynamic(&coordinator, "g").await.await.unwrap();
    sync_all(&coordinator, "g", std::slice::from_ref(&member)).await;
    coordinator
        .commit_offsets(commit("g", &member, vec![offset(0, 42)]))
        .await
        .unwrap();
    assert_eq!(
        coordinator.inject_actor_panic("g").await,
        Err(GroupError::NotCoordinator)
    );

    // No request for the group from here on.
    tokio::time::sleep(Duration::from_millis(
        (SESSION_MS + REBALANCE_MS) as u64 + 5_000,
    ))
    .await;
    let stored = store.load_group("g").await.unwrap().unwrap();
    assert_eq!(
        (stored.generation, stored.phase, stored.members.len()),
        (2, fjord_metadata::GroupPhase::Empty, 0),
        "the reloaded actor expired the silent member: {stored:?}"
    );
    assert_eq!(
        store.fetch_offsets("g").await.unwrap()[0].committed.offset,
        42
    );
    assert_eq!(coordinator.actors_held().await, (1, 1));
}

// ----- expiry of offsets and groups -----

/// Wall time that follows tokio's (paused) clock, so that commit timestamps and
/// expiry move with `tokio::time::sleep`.
#[derive(Debug)]
struct TokioClock {
    start_ms: i64,
    start: tokio::time::Instant,
}

impl TokioClock {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            start_ms: 1_700_000_000_000,
            start: tokio::time::Instant::now(),
        })
    }
}

impl Clock for TokioClock {
    fn now_millis(&self) -> i64 {
        self.start_ms + i64::try_from(self.start.elapsed().as_millis()).unwrap()
    }
}

const RETENTION: Duration = Duration::from_secs(3_600);
const CHECK_INTERVAL: Duration = Duration::from_secs(600);
const MINUTE: Duration = Duration::from_secs(60);

async fn store_on(clock: &Arc<TokioClock>) -> MetadataStore {
    fjord_metadata::open_with(
        "memory://",
        fjord_metadata::DEFAULT_CLUSTER,
        fjord_metadata::kv::RetryPolicy::default(),
        clock.clone(),
        Arc::new(RandomIds::new()),
    )
    .await
    .unwrap()
}

fn expiring_coordinator(
    store: &MetadataStore,
    clock: &Arc<TokioClock>,
    node_id: i32,
) -> Arc<GroupCoordinator> {
    let settings = GroupSettings {
        offsets_retention: RETENTION,
        offsets_retention_check_interval: CHECK_INTERVAL,
        max_session_timeout: Duration::from_secs(86_400),
        ..settings()
    };
    Arc::new(
        GroupCoordinator::new(store.clone(), node_id, Arc::new(RandomIds::new()), settings)
            .with_clock(clock.clone()),
    )
}

/// A member whose session outlasts the test forms `group`'s generation.
async fn join_for_a_day(coordinator: &Arc<GroupCoordinator>, group: &str) -> JoinResponse {
    const DAY_MS: i32 = 86_400_000;
    let first = coordinator
        .join(JoinRequest {
            session_timeout_ms: DAY_MS,
            ..join_request(group, "", None)
        })
        .await;
    assert_eq!(first.error, Some(GroupError::MemberIdRequired));
    let joined = coordinator
        .join(JoinRequest {
            session_timeout_ms: DAY_MS,
            ..join_request(group, &first.member_id, None)
        })
        .await;
    assert_eq!(joined.error, None, "{joined:?}");
    joined
}

fn simple_commit(group: &str, offsets: Vec<OffsetCommit>) -> CommitRequest {
    CommitRequest {
        group_id: group.into(),
        generation: -1,
        member_id: String::new(),
        group_instance_id: None,
        offsets,
    }
}

fn committed(offsets: &[fjord_metadata::GroupOffset]) -> Vec<(String, i32, i64)> {
    offsets
        .iter()
        .map(|o| (o.topic.clone(), o.partition, o.committed.offset))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn offsets_expire_as_in_kafka_and_empty_groups_without_offsets_are_deleted() {
    let clock = TokioClock::new();
    let store = store_on(&clock).await;
    store
        .create_topic(NewTopic::new("orders", 2))
        .await
        .unwrap();
    store.create_topic(NewTopic::new("old", 1)).await.unwrap();
    let coordinator = expiring_coordinator(&store, &clock, 1);
    let old = |partition, at| OffsetCommit {
        topic: "old".into(),
        ..offset(partition, at)
    };

    // "simple" only stores offsets (a consumer without group management).
    coordinator
        .commit_offsets(simple_commit("simple", vec![offset(0, 5)]))
        .await
        .unwrap();
    // "left" is a consumer group whose member commits, then leaves.
    let leaver = join_for_a_day(&coordinator, "left").await;
    sync_all(&coordinator, "left", std::slice::from_ref(&leaver)).await;
    coordinator
        .commit_offsets(commit("left", &leaver, vec![offset(0, 7)]))
        .await
        .unwrap();
    // "quitter" has a member that leaves without committing anything.
    let quitter = join_for_a_day(&coordinator, "quitter").await;
    sync_all(&coordinator, "quitter", std::slice::from_ref(&quitter)).await;
    // "busy" stays stable (its member's session outlasts the test); it consumes
    // "orders" and once committed for "old".
    let busy = join_for_a_day(&coordinator, "busy").await;
    sync_all(&coordinator, "busy", std::slice::from_ref(&busy)).await;
    coordinator
        .commit_offsets(commit("busy", &busy, vec![offset(0, 9), old(0, 3)]))
        .await
        .unwrap();

    // Half an hour later "left" and "quitter" lose their members.
    tokio::time::sleep(30 * MINUTE).await;
    for (group, member) in [("left", &leaver), ("quitter", &quitter)] {
        let gone = LeavingMember {
            member_id: member.member_id.clone(),
            group_instance_id: None,
        };
        assert_eq!(
            coordinator.leave(group, vec![gone]).await.unwrap(),
            vec![Ok(())]
        );
        assert_eq!(coordinator.describe(group).await.unwrap().state, "Empty");
    }

    // A retention after the commits: the simple group's offset expires and the
    // group goes; "quitter" (empty, no offsets) goes; "left" keeps its offset
    // (empty for half an hour only); "busy" keeps what it consumes.
    tokio::time::sleep(RETENTION - 30 * MINUTE + MINUTE).await;
    let report = coordinator.expire_once(clock.now_millis()).await;
    assert_eq!(
        report,
        ExpiryReport {
            groups_checked: 4,
            offsets_expired: 2,
            groups_deleted: 2,
            failures: 0
        }
    );
    for gone in ["simple", "quitter"] {
        assert_eq!(store.load_group(gone).await.unwrap(), None, "{gone}");
        assert!(
            store.fetch_offsets(gone).await.unwrap().is_empty(),
            "{gone}"
        );
        assert_eq!(coordinator.describe(gone).await.unwrap().state, "Dead");
    }
    assert_eq!(
        committed(&store.fetch_offsets("left").await.unwrap()),
        vec![("orders".into(), 0, 7)]
    );
    assert_eq!(
        committed(&store.fetch_offsets("busy").await.unwrap()),
        vec![("orders".into(), 0, 9)]
    );
    let again = coordinator.expire_once(clock.now_millis()).await;
    assert_eq!((again.offsets_expired, again.groups_deleted), (0, 0));

    // Another agent takes the groups over: when "left" became empty is
    // persisted, so it expires a retention after that, not earlier or later.
    let successor = expiring_coordinator(&store, &clock, 2);
    let listed: Vec<String> = successor
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.group_id)
        .collect();
    assert_eq!(listed, vec!["busy".to_owned(), "left".to_owned()]);
    tokio::time::sleep(30 * MINUTE - 2 * MINUTE).await;
    let early = successor.expire_once(clock.now_millis()).await;
    assert_eq!((early.offsets_expired, early.groups_deleted), (0, 0));
    tokio::time::sleep(2 * MINUTE).await;
    let report = successor.expire_once(clock.now_millis()).await;
    assert_eq!(
        (
            report.groups_checked,
            report.offsets_expired,
            report.groups_deleted
        ),
        (2, 1, 1)
    );
    assert_eq!(store.load_group("left").await.unwrap(), None);
    // A group with members is never deleted, however old its offsets.
    tokio::time::sleep(RETENTION).await;
    successor.expire_once(clock.now_millis()).await;
    assert_eq!(
        committed(&store.fetch_offsets("busy").await.unwrap()),
        vec![("orders".into(), 0, 9)]
    );
    assert_eq!(
        store.list_group_ids().await.unwrap(),
        vec!["busy".to_owned()]
    );
}

/// A hostile client invents thousands of group ids with simple commits: after
/// the retention, the expiry loop leaves none of them in metadata or in memory.
#[tokio::test(start_paused = true)]
async fn thousands_of_invented_group_ids_are_gone_after_the_retention() {
    const GROUPS: usize = 3_000;
    let clock = TokioClock::new();
    let store = store_on(&clock).await;
    store
        .create_topic(NewTopic::new("orders", 1))
        .await
        .unwrap();
    let coordinator = expiring_coordinator(&store, &clock, 1);
    for i in 0..GROUPS {
        coordinator
            .commit_offsets(simple_commit(
                &format!("invented-{i}"),
                vec![offset(0, i as i64)],
            ))
            .await
            .unwrap();
    }
    assert_eq!(store.list_group_ids().await.unwrap().len(), GROUPS);
    assert_eq!(coordinator.actors_held().await, (GROUPS, GROUPS));

    let shutdown = tokio_util::sync::CancellationToken::new();
    let expiry = tokio::spawn(coordinator.clone().run_expiry(shutdown.clone()));
    tokio::time::sleep(RETENTION - MINUTE).await;
    assert_eq!(
        store.list_group_ids().await.unwrap().len(),
        GROUPS,
        "nothing expires before the retention"
    );
    tokio::time::sleep(MINUTE + CHECK_INTERVAL).await;
    assert_eq!(store.list_group_ids().await.unwrap(), Vec::<String>::new());
    for i in [0, GROUPS / 2, GROUPS - 1] {
        assert!(
            store
                .fetch_offsets(&format!("invented-{i}"))
                .await
                .unwrap()
                .is_empty()
        );
    }
    assert!(coordinator.list().await.unwrap().is_empty());
    // The supervisors reap the ended actors.
    for _ in 0..1_000 {
        if coordinator.actors_held().await == (0, 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(coordinator.actors_held().await, (0, 0));
    shutdown.cancel();
    expiry.await.unwrap().unwrap();
}

// ----- coordinator-shard takeover -----

fn cluster_of(me: i32, live: &[i32]) -> Arc<crate::cluster::ClusterView> {
    let agent = |node_id: i32| crate::cluster::LiveAgent {
        node_id,
        host: "127.0.0.1".into(),
        port: 9_000 + u16::try_from(node_id).unwrap(),
    };
    let view = Arc::new(crate::cluster::ClusterView::new(agent(me)));
    view.set_live(live.iter().map(|id| agent(*id)).collect());
    view
}

fn clustered(
    store: &MetadataStore,
    node_id: i32,
    view: &Arc<crate::cluster::ClusterView>,
) -> Arc<GroupCoordinator> {
    Arc::new(
        GroupCoordinator::new(
            store.clone(),
            node_id,
            Arc::new(RandomIds::new()),
            settings(),
        )
        .with_cluster(view.clone()),
    )
}

/// A group whose shard `view` places on `node_id`.
fn group_placed_on(view: &crate::cluster::ClusterView, node_id: i32) -> String {
    (0..)
        .map(|i| format!("g-{i}"))
        .find(|g| {
            view.shard_owner(
                fjord_metadata::coordinator_shard_of(g),
                fjord_metadata::COORDINATOR_SHARDS,
            ) == node_id
        })
        .unwrap()
}

/// Two agents whose views disagree (agent 1 believes it is alone) both place a
/// shard on themselves: the one that does not hold it waits for the live holder
/// instead of taking it (which would bump the epoch back and forth), and takes
/// it at once, one epoch on, when the holder hands it off.
#[tokio::test(start_paused = true)]
async fn a_shard_held_by_a_live_agent_is_taken_only_once_released() {
    let store = store().await;
    store
        .create_topic(NewTopic::new("orders", 2))
        .await
        .unwrap();
    let (view_1, view_2) = (cluster_of(1, &[1]), cluster_of(2, &[1, 2]));
    let group = group_placed_on(&view_2, 2);
    let shard = fjord_metadata::coordinator_shard_of(&group);
    let (one, two) = (clustered(&store, 1, &view_1), clustered(&store, 2, &view_2));
    let member = join_dynamic(&one, &group).await.await.unwrap();
    let assignment = sync_all(&one, &group, std::slice::from_ref(&member)).await;
    let held = store.coordinator_shard(shard).await.unwrap();
    assert_eq!(held.leader, Some(1));

    for round in 0..3 {
        assert_eq!(
            two.find_coordinator(&group).await,
            Err(GroupError::CoordinatorNotAvailable)
        );
        assert_eq!(
            two.heartbeat(heartbeat(&group, &member)).await,
            Err(GroupError::CoordinatorNotAvailable)
        );
        one.heartbeat(heartbeat(&group, &member)).await.unwrap();
        one.commit_offsets(commit(&group, &member, vec![offset(0, round)]))
            .await
            .unwrap();
        assert_eq!(
            store.coordinator_shard(shard).await.unwrap(),
            held,
            "untouched"
        );
    }

    // Agent 1 learns of agent 2; its balancer tick hands the shard off.
    view_1.set_live(view_2.live());
    assert_eq!(one.release_shards(false).await, 1);
    let released = store.coordinator_shard(shard).await.unwrap();
    assert_eq!((released.leader, released.epoch), (None, held.epoch));
    two.heartbeat(heartbeat(&group, &member)).await.unwrap();
    let taken = store.coordinator_shard(shard).await.unwrap();
    assert_eq!((taken.leader, taken.epoch), (Some(2), held.epoch + 1));
    let described = two.describe(&group).await.unwrap();
    assert_eq!((described.state, described.generation), ("Stable", 1));
    assert_eq!(described.members[0].assignment, assignment[0]);
    assert_eq!(
        one.heartbeat(heartbeat(&group, &member)).await,
        Err(GroupError::NotCoordinator)
    );
    assert_eq!(
        store.fetch_offsets(&group).await.unwrap()[0]
            .committed
            .offset,
        2
    );
}

/// A shard whose recorded holder is not live is taken at once; the old holder
/// is fenced.
#[tokio::test(start_paused = true)]
async fn a_shard_held_by_a_dead_agent_is_taken_at_once() {
    let store = store().await;
    store
        .create_topic(NewTopic::new("orders", 2))
        .await
        .unwrap();
    let (view_1, view_2) = (cluster_of(1, &[1]), cluster_of(2, &[2]));
    let group = "g";
    let shard = fjord_metadata::coordinator_shard_of(group);
    let (one, two) = (clustered(&store, 1, &view_1), clustered(&store, 2, &view_2));
    let member = join_dynamic(&one, group).await.await.unwrap();
    sync_all(&one, group, std::slice::from_ref(&member)).await;
    let held = store.coordinator_shard(shard).await.unwrap();

    two.heartbeat(heartbeat(group, &member)).await.unwrap();
    let taken = store.coordinator_shard(shard).await.unwrap();
    assert_eq!((taken.leader, taken.epoch), (Some(2), held.epoch + 1));
    assert_eq!(
        one.commit_offsets(commit(group, &member, vec![offset(0, 1)]))
            .await,
        Err(GroupError::NotCoordinator)
    );
    two.commit_offsets(commit(group, &member, vec![offset(0, 2)]))
        .await
        .unwrap();
}

/// An agent that restarts finds shards recorded as its own that it does not
/// hold; those placed elsewhere it releases on its first balancer tick, so
/// their owner does not wait for it.
#[tokio::test(start_paused = true)]
async fn a_restarted_agent_releases_the_shards_recorded_as_its_own() {
    let store = store().await;
    let view_1 = cluster_of(1, &[1, 2]);
    let view_2 = cluster_of(2, &[1, 2]);
    let group = group_placed_on(&view_2, 2);
    let shard = fjord_metadata::coordinator_shard_of(&group);
    // Agent 1's previous process held the shard.
    let before = store.acquire_coordinator_shard(shard, 1).await.unwrap();
    let (restarted, two) = (clustered(&store, 1, &view_1), clustered(&store, 2, &view_2));
    assert_eq!(
        two.find_coordinator(&group).await,
        Err(GroupError::CoordinatorNotAvailable)
    );
    assert_eq!(restarted.release_shards(false).await, 0, "it held nothing");
    assert_eq!(two.find_coordinator(&group).await, Ok(2));
    let taken = store.coordinator_shard(shard).await.unwrap();
    assert_eq!((taken.leader, taken.epoch), (Some(2), before.epoch + 1));
}
