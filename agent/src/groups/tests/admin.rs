//! `ListGroups`, `DeleteGroups` and `OffsetDelete`.

use super::*;

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
