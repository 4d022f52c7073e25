//! The client against real agents in-process: produce and read back, tails,
//! idempotent retries, topic administration, and a tail that moves to another
//! agent when its own stops.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use fjord_client::{
    Client, ConsumedRecord, Header, Position, ProducerConfig, Record, Sequence, partition_for_key,
};
use futures::StreamExt as _;
use support::{Cluster, dead_url, within};

/// A generous bound against hangs (never a timing assertion).
const MUST_HAPPEN: Duration = Duration::from_secs(90);

/// Every record of `partition` from the start, reading page by page.
async fn read_all(client: &Client, topic: &str, partition: i32) -> Vec<ConsumedRecord> {
    let reader = client.reader();
    let mut records = Vec::new();
    let mut from = Position::Earliest;
    loop {
        let page = reader.read(topic, partition, from, 37).await.unwrap();
        let done = page.records.is_empty() && page.next_offset >= page.high_watermark;
        records.extend(page.records);
        if done {
            return records;
        }
        from = Position::Offset(page.next_offset);
    }
}

/// N keyed records (with headers, explicit timestamps, and bytes that are
/// not UTF-8) through the batching producer, read back equal, on the
/// partitions murmur2 puts their keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_are_read_back_equal_on_their_murmur2_partitions() {
    let cluster = Cluster::new();
    let agent = cluster.start("a").await;
    let client = Client::new(vec![agent.url.clone()]).unwrap();
    client
        .admin()
        .create_topic("keyed", Some(4), Vec::<(String, String)>::new())
        .await
        .unwrap();
    let producer = client.producer("keyed");
    let mut sent = BTreeMap::new();
    let mut deliveries = Vec::new();
    for i in 0..300i64 {
        let key = format!("key-{i}");
        let mut value = format!("value-{i}").into_bytes();
        if i % 7 == 0 {
            value.extend_from_slice(&[0xff, 0x00, 0xfe]);
        }
        let record = Record::new(value)
            .with_key(key.clone())
            .with_header("i", i.to_string())
            .with_header("bin", vec![0xc3u8, 0x28])
            .with_timestamp(1_700_000_000_000 + i);
        deliveries.push((key.clone(), producer.send(record.clone()).await.unwrap()));
        sent.insert(key, record);
    }
    within(MUST_HAPPEN, "the flush", producer.flush())
        .await
        .unwrap();
    let mut stored = BTreeMap::new();
    for (key, delivery) in deliveries {
        let metadata = within(MUST_HAPPEN, "a delivery", delivery).await.unwrap();
        assert_eq!(
            metadata.partition,
            partition_for_key(key.as_bytes(), 4),
            "{key}"
        );
        assert_eq!(metadata.timestamp, sent[&key].timestamp.unwrap());
        stored.insert(key, metadata);
    }

    let mut read = 0;
    for partition in 0..4 {
        for record in read_all(&client, "keyed", partition).await {
            read += 1;
            let key = String::from_utf8(record.key.clone().unwrap().to_vec()).unwrap();
            let original = &sent[&key];
            assert_eq!(record.partition, partition_for_key(key.as_bytes(), 4));
            assert_eq!(record.partition, partition);
            assert_eq!(record.offset, stored[&key].offset, "{key}");
            assert_eq!(record.value, original.value, "{key}");
            assert_eq!(Some(record.timestamp), original.timestamp, "{key}");
            assert_eq!(record.headers, original.headers, "{key}");
        }
    }
    assert_eq!(read, 300, "every record read once");
}

/// Keyless records are all stored (one partition per batch), and a budget
/// of in-flight bytes smaller than a record still lets every record through
/// (`send` waits for the previous answers).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_under_back_pressure_are_all_stored() {
    let cluster = Cluster::new();
    let agent = cluster.start("a").await;
    let client = Client::new(vec![agent.url.clone()]).unwrap();
    client
        .admin()
        .create_topic("keyless", Some(3), Vec::<(String, String)>::new())
        .await
        .unwrap();
    let producer = fjord_client::Producer::new(
        client.clone(),
        "keyless",
        ProducerConfig {
            max_in_flight_bytes: 1,
            ..ProducerConfig::default()
        },
    );
    let mut deliveries = Vec::new();
    for i in 0..40 {
        deliveries.push(
            within(
                MUST_HAPPEN,
                "a send",
                producer.send(Record::new(format!("v{i}"))),
            )
            .await
            .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    let mut total = 0;
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    for partition in 0..3 {
        total += read_all(&client, "keyless", partition).await.len();
    }
    assert_eq!(total, 40);
}

/// A tail started before the records were produced sees each of them once,
/// in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_sees_records_produced_after_it_started() {
    let cluster = Cluster::new();
    let agent = cluster.start("a").await;
    let client = Client::new(vec![agent.url.clone()]).unwrap();
    client
        .admin()
        .create_topic("tailed", Some(1), Vec::<(String, String)>::new())
        .await
        .unwrap();
    // Something before the tail starts, which it must not see.
    client
        .produce("tailed", 0, &[Record::new("before")], None)
        .await
        .unwrap();
    let mut tail = client
        .reader()
        .tail("tailed", 0, Position::Latest)
        .await
        .unwrap();
    let producer = client.producer("tailed");
    for i in 0..25 {
        let _delivery = producer
            .send(Record::new(format!("after-{i}")).with_key("k"))
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();
    for i in 0..25 {
        let record = within(MUST_HAPPEN, "a tailed record", tail.next())
            .await
            .expect("the tail goes on")
            .unwrap();
        assert_eq!(record.offset, 1 + i);
        assert_eq!(
            record.value.as_deref(),
            Some(format!("after-{i}").as_bytes())
        );
    }
    assert_eq!(tail.position(), Some(26));
}

/// The same idempotent request sent twice (a retry after a lost answer) is
/// stored once and answered with the same offsets; the producer's retries
/// through a dead agent store records once too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retries_are_stored_once() {
    let cluster = Cluster::new();
    let agent = cluster.start("a").await;
    let client = Client::new(vec![agent.url.clone()]).unwrap();
    client
        .admin()
        .create_topic("once", Some(1), Vec::<(String, String)>::new())
        .await
        .unwrap();
    let producer_id = client.new_producer_id().await.unwrap();
    let records: Vec<Record> = (0..3).map(|i| Record::new(format!("r{i}"))).collect();
    let first = Sequence {
        producer: producer_id,
        first: 0,
    };
    let answered = client
        .produce("once", 0, &records, Some(first))
        .await
        .unwrap();
    let retried = client
        .produce("once", 0, &records, Some(first))
        .await
        .unwrap();
    let offsets: Vec<i64> = answered.iter().map(|m| m.offset).collect();
    assert_eq!(offsets, [0, 1, 2]);
    assert_eq!(
        retried.iter().map(|m| m.offset).collect::<Vec<_>>(),
        offsets
    );
    // The next request goes on from sequence 3; a gap is refused.
    let next = client
        .produce(
            "once",
            0,
            &[Record::new("r3")],
            Some(Sequence {
                producer: producer_id,
                first: 3,
            }),
        )
        .await
        .unwrap();
    assert_eq!(next[0].offset, 3);
    let gap = client
        .produce(
            "once",
            0,
            &[Record::new("r9")],
            Some(Sequence {
                producer: producer_id,
                first: 9,
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(gap.status(), Some(409), "{gap}");
    assert_eq!(gap.code(), Some("OUT_OF_ORDER_SEQUENCE_NUMBER"));
    assert!(!gap.is_retriable());

    // Through a client whose every other request meets a dead agent first.
    let flaky = Client::new(vec![dead_url(), agent.url.clone()]).unwrap();
    let producer = flaky.producer("once");
    let mut deliveries = Vec::new();
    for i in 0..20 {
        deliveries.push(producer.send(Record::new(format!("p{i}"))).await.unwrap());
    }
    producer.flush().await.unwrap();
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    let values: Vec<Bytes> = read_all(&client, "once", 0)
        .await
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    let mut expected: Vec<Bytes> = ["r0", "r1", "r2", "r3"]
        .into_iter()
        .map(|s| Bytes::from_static(s.as_bytes()))
        .collect();
    expected.extend((0..20).map(|i| Bytes::from(format!("p{i}"))));
    assert_eq!(values, expected, "every record stored once, in order");
}

/// Create (with configs), describe, list, delete, and the errors of each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_described_listed_and_deleted() {
    let cluster = Cluster::new();
    let agent = cluster.start("a").await;
    let client = Client::new(vec![agent.url.clone()]).unwrap();
    let admin = client.admin();
    let created = admin
        .create_topic("admin-t", Some(3), [("retention.ms", "60000")])
        .await
        .unwrap();
    assert_eq!(created.name, "admin-t");
    assert_eq!(created.partitions.len(), 3);
    let described = admin.describe_topic("admin-t").await.unwrap();
    assert_eq!(described.id, created.id);
    assert_eq!(
        described.configs.get("retention.ms").map(String::as_str),
        Some("60000")
    );
    assert!(
        described
            .partitions
            .iter()
            .enumerate()
            .all(|(i, p)| p.partition == i as i32 && p.high_watermark == 0)
    );
    let listed = admin.list_topics().await.unwrap();
    assert!(
        listed
            .iter()
            .any(|t| t.name == "admin-t" && t.partitions == 3),
        "{listed:?}"
    );

    let again = admin
        .create_topic("admin-t", Some(1), Vec::<(String, String)>::new())
        .await
        .unwrap_err();
    assert_eq!(again.status(), Some(409), "{again}");
    assert_eq!(again.code(), Some("TOPIC_ALREADY_EXISTS"));
    let bad = admin
        .create_topic("bad name!", Some(1), Vec::<(String, String)>::new())
        .await
        .unwrap_err();
    assert_eq!(bad.status(), Some(400), "{bad}");

    admin.delete_topic("admin-t").await.unwrap();
    let gone = admin.describe_topic("admin-t").await.unwrap_err();
    assert_eq!(gone.status(), Some(404), "{gone}");
    assert_eq!(gone.code(), Some("UNKNOWN_TOPIC_OR_PARTITION"));
    assert!(
        !admin
            .list_topics()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "admin-t")
    );
}

/// Two agents over one metadata file and one bucket: a tail served by the
/// first goes on, on the second, when the first stops — no gap, no
/// duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_resumes_on_another_agent_when_its_agent_stops() {
    let cluster = Cluster::new();
    let mut first = cluster.start("a").await;
    let second = cluster.start("b").await;
    let both = Client::new(vec![first.url.clone(), second.url.clone()]).unwrap();
    both.admin()
        .create_topic("moving", Some(1), Vec::<(String, String)>::new())
        .await
        .unwrap();
    let producer = both.producer("moving");
    for i in 0..10 {
        let _delivery = producer
            .send(Record::new(format!("m{i}")).with_header("n", i.to_string()))
            .await
            .unwrap();
    }
    producer.flush().await.unwrap();

    // The tail's first connection goes to the first agent.
    let tail_client = Client::new(vec![first.url.clone(), second.url.clone()]).unwrap();
    let mut tail = tail_client
        .reader()
        .tail("moving", 0, Position::Earliest)
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 10 {
        seen.push(
            within(MUST_HAPPEN, "a record before the stop", tail.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    first.stop().await;

    let survivor = Client::new(vec![second.url.clone()]).unwrap();
    let producer = survivor.producer("moving");
    let mut deliveries = Vec::new();
    for i in 10..20 {
        deliveries.push(
            producer
                .send(Record::new(format!("m{i}")).with_header("n", i.to_string()))
                .await
                .unwrap(),
        );
    }
    within(MUST_HAPPEN, "the flush after the stop", producer.flush())
        .await
        .unwrap();
    for delivery in deliveries {
        delivery.await.unwrap();
    }
    while seen.len() < 20 {
        seen.push(
            within(MUST_HAPPEN, "a record after the stop", tail.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let offsets: Vec<i64> = seen.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..20).collect::<Vec<_>>(), "no gap, no duplicate");
    for (i, record) in seen.iter().enumerate() {
        assert_eq!(
            record.value.as_deref(),
            Some(format!("m{i}").as_bytes()),
            "record {i}"
        );
        assert_eq!(
            record.headers,
            [Header {
                key: "n".into(),
                value: Some(Bytes::from(i.to_string()))
            }]
        );
    }
}

/// The producer's retry after a lost answer (the request reached the agent,
/// the answer never came back) resends the same records with the same
/// sequence, and they are stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_retry_after_a_lost_answer_stores_records_once() {
    let cluster = Cluster::new();
    let agent = cluster.start("a").await;
    let proxy = support::LossyProxy::start(&agent.url).await;
    let direct = Client::new(vec![agent.url.clone()]).unwrap();
    direct
        .admin()
        .create_topic("lossy", Some(1), Vec::<(String, String)>::new())
        .await
        .unwrap();
    // Requests alternate between the proxy and the agent; a produce through
    // the proxy loses its answer and is retried on the agent.
    let client = Client::new(vec![proxy.url.clone(), agent.url.clone()]).unwrap();
    let producer = client.producer("lossy");
    let mut offsets = Vec::new();
    for i in 0..10 {
        let delivery = producer
            .send(Record::new(format!("one-{i}")))
            .await
            .unwrap();
        offsets.push(
            within(MUST_HAPPEN, "a delivery", delivery)
                .await
                .unwrap()
                .offset,
        );
    }
    let mut deliveries = Vec::new();
    for i in 0..20 {
        deliveries.push(
            producer
                .send(Record::new(format!("burst-{i}")))
                .await
                .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    for delivery in deliveries {
        offsets.push(delivery.await.unwrap().offset);
    }
    assert_eq!(offsets, (0..30).collect::<Vec<_>>());
    assert!(
        proxy.lost.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "some answer was lost"
    );
    let values: Vec<Bytes> = read_all(&direct, "lossy", 0)
        .await
        .into_iter()
        .map(|r| r.value.unwrap())
        .collect();
    let expected: Vec<Bytes> = (0..10)
        .map(|i| Bytes::from(format!("one-{i}")))
        .chain((0..20).map(|i| Bytes::from(format!("burst-{i}"))))
        .collect();
    assert_eq!(values, expected, "stored once each, in order");
}
