//! [`GroupConsumer`] against real agents in-process: two members of one group
//! share a topic's partitions through two agents, see their assignment
//! change, commit by either policy, and consume every record exactly once; a
//! member that stops polling past its session loses its partitions and joins
//! again by itself.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use fjord_client::{AssignmentEvent, Client, CommitPolicy, GroupConfig, GroupConsumer, Record};
use support::{Cluster, within};

const MUST_HAPPEN: Duration = Duration::from_secs(90);

fn config(commit: CommitPolicy) -> GroupConfig {
    GroupConfig {
        session_timeout: Duration::from_secs(6),
        commit,
        max_records: 40,
        wait: Duration::from_millis(100),
        ..GroupConfig::topics(["shared"])
    }
}

async fn produce(client: &Client, from: usize, count: usize) {
    let producer = client.producer("shared");
    for i in from..from + count {
        let _delivery = producer
            .send(Record::new(format!("v{i}")).with_key(format!("k{i}")))
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();
}

/// Polls until `seen` holds `total` distinct records; each record counted
/// once per delivery.
async fn consume(
    members: &mut [&mut GroupConsumer],
    seen: &mut BTreeMap<(i32, i64), usize>,
    events: &mut Vec<(usize, AssignmentEvent)>,
    total: usize,
) {
    while seen.len() < total {
        for (index, member) in members.iter_mut().enumerate() {
            let polled = member.poll().await.unwrap();
            events.extend(polled.events.into_iter().map(|e| (index, e)));
            for record in polled.records {
                assert_eq!(record.topic, "shared");
                *seen
                    .entry((record.record.partition, record.record.offset))
                    .or_default() += 1;
            }
            if member.member_epoch() > 0 {
                member.commit().await.unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_members_share_partitions_commit_and_hand_them_over() {
    let cluster = Cluster::new();
    let a = cluster.start("a").await;
    let b = cluster.start("b").await;
    let client = Client::new(vec![a.url.clone(), b.url.clone()]).unwrap();
    client
        .admin()
        .create_topic("shared", Some(6), Vec::<(String, String)>::new())
        .await
        .unwrap();
    produce(&client, 0, 120).await;

    let mut first = client
        .group_consumer("sharing", config(CommitPolicy::Auto))
        .await
        .unwrap();
    assert_eq!(first.assignment().len(), 6, "alone, it gets everything");
    let mut seen = BTreeMap::new();
    let mut events = Vec::new();
    within(
        MUST_HAPPEN,
        "the first member reads all",
        consume(&mut [&mut first], &mut seen, &mut events, 120),
    )
    .await;

    // A second member joins: the first gives up half, which the second gets
    // once the first polled again.
    let mut second = client
        .group_consumer("sharing", config(CommitPolicy::Manual))
        .await
        .unwrap();
    produce(&client, 120, 120).await;
    within(
        MUST_HAPPEN,
        "both read the rest",
        consume(&mut [&mut first, &mut second], &mut seen, &mut events, 240),
    )
    .await;
    let settle = async {
        while first.assignment().len() + second.assignment().len() != 6
            || second.assignment().is_empty()
        {
            for member in [&mut first, &mut second] {
                let polled = member.poll().await.unwrap();
                assert!(polled.records.is_empty(), "everything was read");
                events.extend(polled.events.into_iter().map(|e| (9, e)));
            }
        }
    };
    within(MUST_HAPPEN, "the partitions are shared", settle).await;
    assert_eq!(first.assignment().len(), 3);
    assert_eq!(second.assignment().len(), 3);
    assert!(
        events
            .iter()
            .any(|(_, e)| matches!(e, AssignmentEvent::Revoked(parts) if !parts.is_empty())),
        "{events:?}"
    );
    assert!(seen.values().all(|n| *n == 1), "each record once");

    // The second member leaves: its partitions go back to the first, which
    // goes on from the second's commits (no record twice).
    second.close().await.unwrap();
    produce(&client, 240, 60).await;
    within(
        MUST_HAPPEN,
        "the first reads what follows",
        consume(&mut [&mut first], &mut seen, &mut events, 300),
    )
    .await;
    assert_eq!(first.assignment().len(), 6);
    assert_eq!(seen.len(), 300);
    assert!(seen.values().all(|n| *n == 1), "each record once");
    first.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_polling_loses_its_partitions_and_joins_again() {
    let cluster = Cluster::new();
    let agent = cluster.start("a").await;
    let client = Client::new(vec![agent.url.clone()]).unwrap();
    client
        .admin()
        .create_topic("shared", Some(2), Vec::<(String, String)>::new())
        .await
        .unwrap();
    let mut sleeper = client
        .group_consumer("lapsing", config(CommitPolicy::Auto))
        .await
        .unwrap();
    let mut other = client
        .group_consumer("lapsing", config(CommitPolicy::Auto))
        .await
        .unwrap();
    // The sleeper stops polling; the other keeps going until it owns both.
    let takeover = async {
        while other.assignment().len() < 2 {
            other.poll().await.unwrap();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    within(MUST_HAPPEN, "the other member takes over", takeover).await;
    let polled = sleeper.poll().await.unwrap();
    assert!(
        matches!(polled.events.first(), Some(AssignmentEvent::Lost(_))),
        "{:?}",
        polled.events
    );
    assert!(sleeper.member_epoch() > 0, "it joined again");
}
