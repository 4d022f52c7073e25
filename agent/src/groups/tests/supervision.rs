//! A group actor that panics is reloaded from metadata, on the next request
//! or at once by its shard's supervisor.

use super::*;

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
