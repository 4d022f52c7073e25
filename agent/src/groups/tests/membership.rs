//! Joins, syncs, heartbeats and leaves: a generation forms, new members
//! rebalance it, silent or late members are dropped, static members are replaced.

use super::*;

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
