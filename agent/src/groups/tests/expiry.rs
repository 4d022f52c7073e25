//! Offsets and empty groups expiring after `offsets.retention.minutes`, on a
//! clock that follows tokio's paused time.

use super::*;

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
