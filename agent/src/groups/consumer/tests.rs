//! The consumer protocol's rules, driven heartbeat by heartbeat: joins,
//! incremental revocation, epochs, static members, regular expressions,
//! timers and commit fencing.

use std::collections::BTreeMap;
use std::time::Duration;

use fjord_metadata::TopicId;
use tokio::time::Instant;
use uuid::Uuid;

use super::*;
use crate::groups::GroupError;
use crate::groups::types::ConsumerHeartbeatRequest;

fn topics(list: &[(&str, u128, i32)]) -> TopicsView {
    TopicsView {
        by_name: list
            .iter()
            .map(|(name, id, n)| ((*name).to_owned(), (TopicId(Uuid::from_u128(*id)), *n)))
            .collect(),
        version: 0,
    }
}

fn settings() -> ConsumerGroupSettings {
    ConsumerGroupSettings {
        session_timeout: Duration::from_secs(10),
        heartbeat_interval: Duration::from_secs(1),
        max_size: 3,
    }
}

fn join(member: &str, names: &[&str]) -> ConsumerHeartbeatRequest {
    ConsumerHeartbeatRequest {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: 0,
        rebalance_timeout_ms: 5_000,
        subscribed_topic_names: Some(names.iter().map(|n| (*n).to_owned()).collect()),
        owned: Some(Vec::new()),
        ..ConsumerHeartbeatRequest::default()
    }
}

fn beat(member: &str, epoch: i32, owned: &TopicPartitionSet) -> ConsumerHeartbeatRequest {
    ConsumerHeartbeatRequest {
        group_id: "g".into(),
        member_id: member.into(),
        member_epoch: epoch,
        rebalance_timeout_ms: -1,
        owned: Some(owned.clone()),
        ..ConsumerHeartbeatRequest::default()
    }
}

struct Client {
    id: String,
    epoch: i32,
    owned: TopicPartitionSet,
}

impl Client {
    fn apply(&mut self, response: &ConsumerHeartbeatResponse) {
        self.id = response.member_id.clone();
        self.epoch = response.member_epoch;
        if let Some(assignment) = &response.assignment {
            self.owned = assignment.clone();
        }
    }

    fn count(&self) -> usize {
        self.owned.iter().map(|(_, p)| p.len()).sum()
    }
}

fn run(
    group: &mut ConsumerGroup,
    request: &ConsumerHeartbeatRequest,
    view: &TopicsView,
    now: Instant,
) -> Result<ConsumerHeartbeatResponse, GroupError> {
    let outcome = group.heartbeat(request, view, &settings(), now, || "generated".into())?;
    group.debug_assert_invariants();
    Ok(outcome.response)
}

/// Heartbeats every client until nothing changes; returns the rounds taken.
fn settle(
    group: &mut ConsumerGroup,
    clients: &mut [Client],
    view: &TopicsView,
    now: Instant,
) -> usize {
    for round in 0..20 {
        let mut moved = false;
        for client in clients.iter_mut() {
            let before = (client.epoch, client.owned.clone());
            let response = run(
                group,
                &beat(&client.id, client.epoch, &client.owned),
                view,
                now,
            )
            .unwrap();
            client.apply(&response);
            moved |= before != (client.epoch, client.owned.clone());
        }
        if !moved {
            return round;
        }
    }
    panic!("the group did not settle");
}

/// No partition is owned by two clients at once.
fn assert_disjoint(clients: &[Client]) {
    let mut seen = std::collections::BTreeSet::new();
    for client in clients {
        for (topic, partitions) in &client.owned {
            for p in partitions {
                assert!(seen.insert((*topic, *p)), "{topic}/{p} owned twice");
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn members_join_share_partitions_and_revoke_before_others_take_them() {
    let view = topics(&[("orders", 1, 6)]);
    let now = Instant::now();
    let mut group = ConsumerGroup::default();
    let first = run(&mut group, &join("a", &["orders"]), &view, now).unwrap();
    assert_eq!(first.member_epoch, 1);
    assert_eq!(
        first.assignment.as_ref().unwrap()[0].1,
        vec![0, 1, 2, 3, 4, 5]
    );
    let mut a = Client {
        id: "a".into(),
        epoch: 0,
        owned: Vec::new(),
    };
    a.apply(&first);

    // b joins: a keeps epoch 1 until it revokes; b gets nothing a still owns.
    let second = run(&mut group, &join("b", &["orders"]), &view, now).unwrap();
    let mut b = Client {
        id: "b".into(),
        epoch: 0,
        owned: Vec::new(),
    };
    b.apply(&second);
    assert_eq!(group.group_epoch, 2);
    assert_eq!(b.epoch, 2);
    assert_eq!(b.count(), 0, "nothing is free before a revokes");
    let answer = run(&mut group, &beat("a", 1, &a.owned), &view, now).unwrap();
    assert_eq!(answer.member_epoch, 1, "a keeps its epoch until it revoked");
    a.apply(&answer);
    assert_eq!(a.count(), 3);
    let mut clients = [a, b];
    assert_disjoint(&clients);
    settle(&mut group, &mut clients, &view, now);
    assert_disjoint(&clients);
    assert_eq!((clients[0].count(), clients[1].count()), (3, 3));
    assert!(clients.iter().all(|c| c.epoch == 2));
    assert_eq!(group.state_name(), "Stable");

    // Commits are fenced by the member's epoch.
    assert_eq!(group.validate_commit("a", 2), Ok(()));
    assert_eq!(
        group.validate_commit("a", 1),
        Err(GroupError::StaleMemberEpoch)
    );
    assert_eq!(
        group.validate_commit("x", 2),
        Err(GroupError::UnknownMemberId)
    );
    assert_eq!(
        group.validate_commit("", -1),
        Err(GroupError::UnknownMemberId)
    );

    // An epoch the member never had is fenced; an unknown member is unknown.
    assert_eq!(
        run(&mut group, &beat("a", 7, &clients[0].owned), &view, now).unwrap_err(),
        GroupError::FencedMemberEpoch
    );
    assert_eq!(
        run(&mut group, &beat("zz", 1, &Vec::new()), &view, now).unwrap_err(),
        GroupError::UnknownMemberId
    );

    // b leaves: a gets everything at a new epoch.
    let left = run(
        &mut group,
        &beat("b", LEAVE_EPOCH, &clients[1].owned),
        &view,
        now,
    )
    .unwrap();
    assert_eq!(left.member_epoch, LEAVE_EPOCH);
    let mut clients = [Client {
        id: "a".into(),
        epoch: clients[0].epoch,
        owned: clients[0].owned.clone(),
    }];
    settle(&mut group, &mut clients, &view, now);
    assert_eq!(clients[0].count(), 6);
    assert_eq!(clients[0].epoch, 3);
}

#[tokio::test(start_paused = true)]
async fn a_member_that_missed_its_answer_catches_up_and_a_lost_one_is_fenced() {
    let view = topics(&[("orders", 1, 4)]);
    let now = Instant::now();
    let mut group = ConsumerGroup::default();
    let mut a = Client {
        id: "a".into(),
        epoch: 0,
        owned: Vec::new(),
    };
    a.apply(&run(&mut group, &join("a", &["orders"]), &view, now).unwrap());
    // New partitions: a moves to epoch 2, but the answer is lost.
    let more = topics(&[("orders", 1, 6)]);
    let lost = run(&mut group, &beat("a", 1, &a.owned), &more, now).unwrap();
    assert_eq!(lost.member_epoch, 2);
    // Heartbeating with the previous epoch and what it owned is allowed.
    let again = run(&mut group, &beat("a", 1, &a.owned), &more, now).unwrap();
    assert_eq!(again.member_epoch, 2);
    a.apply(&again);
    assert_eq!(a.count(), 6);
    // Claiming to own partitions it does not own, under an old epoch: fenced.
    let claim = vec![(TopicId(Uuid::from_u128(9)), vec![0])];
    assert_eq!(
        run(&mut group, &beat("a", 1, &claim), &more, now).unwrap_err(),
        GroupError::FencedMemberEpoch
    );
}

#[tokio::test(start_paused = true)]
async fn a_topic_view_already_looked_at_is_not_read_again() {
    let now = Instant::now();
    let mut group = ConsumerGroup::default();
    let mut first = topics(&[("orders", 1, 2)]);
    first.version = 7;
    run(&mut group, &join("a", &["orders"]), &first, now).unwrap();
    assert!(!group.refresh_metadata(&first));
    // Same version, other contents: not looked at (a view is immutable).
    let mut same = topics(&[("orders", 1, 4)]);
    same.version = 7;
    assert!(!group.refresh_metadata(&same));
    let mut newer = topics(&[("orders", 1, 4)]);
    newer.version = 8;
    assert!(
        group.refresh_metadata(&newer),
        "more partitions: a new epoch"
    );
}

#[tokio::test(start_paused = true)]
async fn regex_subscriptions_pick_up_new_topics() {
    let now = Instant::now();
    let mut group = ConsumerGroup::default();
    let mut request = join("a", &[]);
    request.subscribed_topic_names = None;
    request.subscribed_topic_regex = Some("logs-.*".into());
    let view = topics(&[("logs-1", 1, 2), ("other", 2, 2)]);
    let mut a = Client {
        id: "a".into(),
        epoch: 0,
        owned: Vec::new(),
    };
    a.apply(&run(&mut group, &request, &view, now).unwrap());
    assert_eq!(a.owned, vec![(TopicId(Uuid::from_u128(1)), vec![0, 1])]);
    let grown = topics(&[("logs-1", 1, 2), ("logs-2", 3, 1), ("other", 2, 2)]);
    let mut clients = [a];
    settle(&mut group, &mut clients, &grown, now);
    assert_eq!(clients[0].count(), 3);

    let mut bad = join("b", &[]);
    bad.subscribed_topic_regex = Some("(".into());
    assert!(matches!(
        run(&mut group, &bad, &grown, now),
        Err(GroupError::InvalidRegularExpression(_))
    ));
    let mut unknown = join("c", &["x"]);
    unknown.server_assignor = Some("sticky-magic".into());
    assert!(matches!(
        run(&mut group, &unknown, &grown, now),
        Err(GroupError::UnsupportedAssignor(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn a_static_member_comes_back_to_its_partitions_without_a_new_epoch() {
    let view = topics(&[("orders", 1, 4)]);
    let now = Instant::now();
    let mut group = ConsumerGroup::default();
    let mut clients = Vec::new();
    for (id, instance) in [("a", "i-a"), ("b", "i-b")] {
        let mut request = join(id, &["orders"]);
        request.instance_id = Some(instance.into());
        let mut client = Client {
            id: id.into(),
            epoch: 0,
            owned: Vec::new(),
        };
        client.apply(&run(&mut group, &request, &view, now).unwrap());
        clients.push(client);
    }
    settle(&mut group, &mut clients, &view, now);
    let epoch = group.group_epoch;
    let owned_by_a = clients[0].owned.clone();

    // a leaves temporarily; the instance id cannot be taken while a is active.
    let mut request = join("a2", &["orders"]);
    request.instance_id = Some("i-a".into());
    assert_eq!(
        run(&mut group, &request, &view, now).unwrap_err(),
        GroupError::UnreleasedInstanceId
    );
    let mut leave = beat("a", STATIC_LEAVE_EPOCH, &owned_by_a);
    leave.instance_id = Some("i-a".into());
    assert_eq!(
        run(&mut group, &leave, &view, now).unwrap().member_epoch,
        STATIC_LEAVE_EPOCH
    );
    // b keeps its partitions and a's are not moved.
    let mut b = [Client {
        id: "b".into(),
        epoch: clients[1].epoch,
        owned: clients[1].owned.clone(),
    }];
    settle(&mut group, &mut b, &view, now);
    assert_eq!(b[0].count(), 2);

    // The instance comes back with a new member id and gets a's partitions.
    let back = run(&mut group, &request, &view, now).unwrap();
    assert_eq!(back.assignment.unwrap(), owned_by_a);
    assert_eq!(group.group_epoch, epoch, "no new group epoch");
    assert!(!group.members.contains_key("a"));
}

#[tokio::test(start_paused = true)]
async fn expired_sessions_and_unrevoked_partitions_remove_members() {
    let view = topics(&[("orders", 1, 4)]);
    let start = Instant::now();
    let mut group = ConsumerGroup::default();
    let mut a = Client {
        id: "a".into(),
        epoch: 0,
        owned: Vec::new(),
    };
    a.apply(&run(&mut group, &join("a", &["orders"]), &view, start).unwrap());
    let mut b = Client {
        id: "b".into(),
        epoch: 0,
        owned: Vec::new(),
    };
    b.apply(&run(&mut group, &join("b", &["orders"]), &view, start).unwrap());
    // a is told to revoke, never does, and keeps heartbeating: after its
    // rebalance timeout (5 s) it is removed.
    a.apply(&run(&mut group, &beat("a", a.epoch, &a.owned), &view, start).unwrap());
    let stubborn: TopicPartitionSet = vec![(TopicId(Uuid::from_u128(1)), vec![0, 1, 2, 3])];
    let later = start + Duration::from_secs(6);
    run(&mut group, &beat("a", a.epoch, &stubborn), &view, later).unwrap();
    assert!(group.next_deadline().unwrap() <= later);
    assert!(group.expire(later, &view));
    assert!(!group.members.contains_key("a"));
    // b, heartbeating, gets all four; then its session runs out too.
    let mut clients = [b];
    settle(&mut group, &mut clients, &view, later);
    assert_eq!(clients[0].count(), 4);
    let gone = later + Duration::from_secs(11);
    assert!(group.expire(gone, &view));
    assert!(group.is_empty());
    assert_eq!(group.state_name(), "Empty");
    // A commit without a member is allowed in an empty group.
    assert_eq!(group.validate_commit("", -1), Ok(()));
}

#[tokio::test(start_paused = true)]
async fn bad_requests_are_refused_and_the_group_has_a_maximum_size() {
    let view = topics(&[("orders", 1, 4)]);
    let now = Instant::now();
    let mut group = ConsumerGroup::default();
    let mut no_subscription = join("a", &[]);
    no_subscription.subscribed_topic_names = None;
    assert!(matches!(
        run(&mut group, &no_subscription, &view, now),
        Err(GroupError::InvalidRequest(_))
    ));
    let mut owning = join("a", &["orders"]);
    owning.owned = Some(vec![(TopicId(Uuid::from_u128(1)), vec![0])]);
    assert!(matches!(
        run(&mut group, &owning, &view, now),
        Err(GroupError::InvalidRequest(_))
    ));
    assert!(matches!(
        run(&mut group, &beat("", 3, &Vec::new()), &view, now),
        Err(GroupError::InvalidRequest(_))
    ));
    assert!(matches!(
        run(&mut group, &beat("a", -3, &Vec::new()), &view, now),
        Err(GroupError::InvalidRequest(_))
    ));
    // A v0 join without a member id gets one.
    assert_eq!(
        run(&mut group, &join("", &["orders"]), &view, now)
            .unwrap()
            .member_id,
        "generated"
    );
    for id in ["m1", "m2"] {
        run(&mut group, &join(id, &["orders"]), &view, now).unwrap();
    }
    assert_eq!(
        run(&mut group, &join("m3", &["orders"]), &view, now).unwrap_err(),
        GroupError::GroupMaxSizeReached
    );
    let _ = BTreeMap::<i32, i32>::new();
}
