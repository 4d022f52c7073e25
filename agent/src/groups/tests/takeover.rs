//! Coordinator shards moving between agents: a stale coordinator is fenced,
//! a shard is taken from a live agent only once released, at once from a dead
//! one, and a restarted agent releases what is recorded as its own.

use super::*;

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
