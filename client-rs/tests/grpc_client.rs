//! The client's gRPC transport against three real agents in-process sharing
//! metadata and bucket, calls spread over all of them: produce and read back
//! equal (HTTP and gRPC both ways), idempotent retries stored once,
//! `expected_offset`, streaming produce in order, topic administration, and a
//! tail that goes on through another agent when its own stops.

#![cfg(feature = "grpc")]
#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use fjord_client::grpc::{GrpcClient, TailStart};
use fjord_client::{
    Client, ConsumedRecord, Position, ProducerConfig, Record, Sequence, partition_for_key,
};
use futures::StreamExt as _;
use support::{Cluster, within};

/// A generous bound against hangs (never a timing assertion).
const MUST_HAPPEN: Duration = Duration::from_secs(90);

/// Every record of `partition`, read page by page over gRPC.
async fn read_all(client: &GrpcClient, topic: &str, partition: i32) -> Vec<ConsumedRecord> {
    let mut records = Vec::new();
    let mut from = Position::Earliest;
    loop {
        let page = client.read(topic, partition, from, 23).await.unwrap();
        let done = page.records.is_empty() && page.next_offset >= page.high_watermark;
        records.extend(page.records);
        if done {
            return records;
        }
        from = Position::Offset(page.next_offset);
    }
}

fn sample(i: i64) -> Record {
    let mut value = format!("value-{i}").into_bytes();
    if i % 5 == 0 {
        value.extend_from_slice(&[0xff, 0x00, 0xfe]);
    }
    Record::new(value)
        .with_key(format!("key-{i}"))
        .with_header("i", i.to_string())
        .with_header("bin", vec![0xc3u8, 0x28])
        .with_timestamp(1_700_000_000_000 + i)
}

fn same(read: &ConsumedRecord, sent: &Record) {
    assert_eq!(read.key, sent.key, "key");
    assert_eq!(read.value, sent.value, "value of {:?}", read.key);
    assert_eq!(read.headers, sent.headers, "headers of {:?}", read.key);
    assert_eq!(
        Some(read.timestamp),
        sent.timestamp,
        "timestamp of {:?}",
        read.key
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_agents_answer_every_call_over_grpc_and_http_alike() {
    let cluster = Cluster::new();
    let agents = [
        cluster.start("a").await,
        cluster.start("b").await,
        cluster.start("c").await,
    ];
    let urls: Vec<String> = agents.iter().map(|a| a.url.clone()).collect();
    let grpc = GrpcClient::new(urls.clone()).unwrap();
    let http = Client::new(urls.clone()).unwrap();

    // Administration.
    let created = grpc
        .create_topic("both", Some(3), [("retention.ms", "3600000")])
        .await
        .unwrap();
    assert_eq!(created.partitions.len(), 3);
    assert_eq!(created.configs["retention.ms"], "3600000");
    let again = grpc
        .create_topic("both", Some(3), Vec::<(String, String)>::new())
        .await;
    assert_eq!(
        again.unwrap_err().code(),
        Some("TOPIC_ALREADY_EXISTS"),
        "a second create"
    );
    assert!(
        grpc.list_topics()
            .await
            .unwrap()
            .iter()
            .any(|t| t.name == "both" && t.partitions == 3)
    );

    // gRPC produce (keyed; the agents place them on murmur2's partitions),
    // read back over HTTP and gRPC. One partition per request: a produce to
    // one partition is retried on the next agent while leadership settles
    // over the three agents (one spread over several is not retried).
    let sent: Vec<Record> = (0..60).map(sample).collect();
    let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
    for record in &sent {
        let partition = partition_for_key(record.key.as_ref().unwrap(), 3);
        by_partition
            .entry(partition)
            .or_default()
            .push(record.clone());
    }
    let mut stored = BTreeMap::new();
    for chunk in by_partition.values().flat_map(|records| records.chunks(7)) {
        let partition = partition_for_key(chunk[0].key.as_ref().unwrap(), 3);
        let metadata = grpc
            .produce("both", Some(partition), chunk, None)
            .await
            .unwrap();
        assert_eq!(metadata.len(), chunk.len());
        for (record, meta) in chunk.iter().zip(metadata) {
            let key = record.key.clone().unwrap();
            assert_eq!(meta.partition, partition_for_key(&key, 3));
            stored.insert(key, (meta, record.clone()));
        }
    }
    let mut read = 0;
    for partition in 0..3 {
        let over_grpc = read_all(&grpc, "both", partition).await;
        let mut over_http = Vec::new();
        let mut from = Position::Earliest;
        loop {
            let page = http
                .reader()
                .read("both", partition, from, 50)
                .await
                .unwrap();
            let done = page.records.is_empty() && page.next_offset >= page.high_watermark;
            over_http.extend(page.records);
            if done {
                break;
            }
            from = Position::Offset(page.next_offset);
        }
        assert_eq!(
            over_grpc, over_http,
            "partition {partition}: both transports read the same"
        );
        for record in over_grpc {
            let (meta, original) = &stored[record.key.as_ref().unwrap()];
            assert_eq!(
                (record.partition, record.offset),
                (meta.partition, meta.offset)
            );
            same(&record, original);
            read += 1;
        }
    }
    assert_eq!(read, 60, "every record read once");

    // HTTP's batching producer, read back over gRPC.
    let producer = fjord_client::Producer::new(
        http.clone(),
        "both",
        ProducerConfig {
            linger: Duration::from_millis(5),
            ..ProducerConfig::default()
        },
    );
    let mut deliveries = Vec::new();
    for i in 100..130 {
        deliveries.push((i, producer.send(sample(i)).await.unwrap()));
    }
    within(MUST_HAPPEN, "the flush", producer.flush())
        .await
        .unwrap();
    for (i, delivery) in deliveries {
        let meta = delivery.await.unwrap();
        let page = grpc
            .read("both", meta.partition, Position::Offset(meta.offset), 1)
            .await
            .unwrap();
        same(&page.records[0], &sample(i));
    }

    // Idempotent retries through other agents: the same offsets, stored once.
    let producer_id = grpc.new_producer_id().await.unwrap();
    // A retry is the same request: the same records, timestamps included.
    let batch: Vec<Record> = (0..5)
        .map(|i| Record::new(format!("once-{i}")).with_timestamp(1_700_000_000_000 + i))
        .collect();
    let sequence = Some(Sequence {
        producer: producer_id,
        first: 0,
    });
    let first = grpc
        .produce("both", Some(1), &batch, sequence)
        .await
        .unwrap();
    for _ in 0..3 {
        let retry = grpc
            .produce("both", Some(1), &batch, sequence)
            .await
            .unwrap();
        assert_eq!(
            retry, first,
            "a retry is answered with the original offsets"
        );
    }
    let partition_1 = read_all(&grpc, "both", 1).await;
    let once = partition_1
        .iter()
        .filter(|r| r.value.as_deref().is_some_and(|v| v.starts_with(b"once-")))
        .count();
    assert_eq!(once, 5, "stored once");

    // expected_offset, through every agent (two of them forward it).
    let mut next = grpc.describe_topic("both").await.unwrap().partitions[2].high_watermark;
    for _ in 0..3 {
        let stale = grpc
            .produce_at("both", 2, &[Record::new("stale")], next + 1)
            .await
            .unwrap_err();
        assert_eq!(stale.code(), Some("OFFSET_MISMATCH"));
        assert_eq!(stale.next_offset(), Some(next));
        assert!(!stale.is_retriable());
        let written = grpc
            .produce_at("both", 2, &[Record::new("at"), Record::new("at+1")], next)
            .await
            .unwrap();
        assert_eq!(written[0].offset, next);
        next += 2;
    }
    assert_eq!(
        grpc.describe_topic("both").await.unwrap().partitions[2].high_watermark,
        next,
        "nothing written by a refused precondition"
    );

    // A produce stream: answered in order, each after the one before.
    let requests = futures::stream::iter((0..20).map(|i| {
        (
            Some(0),
            vec![Record::new(format!("s{i}")), Record::new("pad")],
        )
    }));
    let answers: Vec<_> = grpc
        .produce_stream("both", requests)
        .await
        .unwrap()
        .collect()
        .await;
    let offsets: Vec<i64> = answers.into_iter().map(|a| a.unwrap()[0].offset).collect();
    assert_eq!(offsets.len(), 20);
    assert!(offsets.windows(2).all(|w| w[1] == w[0] + 2), "{offsets:?}");

    // Errors carry the Kafka code.
    let unknown = grpc
        .read("nope", 0, Position::Earliest, 1)
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Some("UNKNOWN_TOPIC_OR_PARTITION"));

    grpc.delete_topic("both").await.unwrap();
    assert_eq!(
        grpc.describe_topic("both").await.unwrap_err().code(),
        Some("UNKNOWN_TOPIC_OR_PARTITION")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grpc_tail_goes_on_through_another_agent_when_its_agent_stops() {
    let cluster = Cluster::new();
    let mut first = cluster.start("a").await;
    let second = cluster.start("b").await;
    let survivor = GrpcClient::new(vec![second.url.clone()]).unwrap();
    survivor
        .create_topic("moving", Some(2), Vec::<(String, String)>::new())
        .await
        .unwrap();
    for i in 0..10 {
        survivor
            .produce("moving", Some(i % 2), &[Record::new(format!("m{i}"))], None)
            .await
            .unwrap();
    }
    // The tail's first call goes to the first agent.
    let both = GrpcClient::new(vec![first.url.clone(), second.url.clone()]).unwrap();
    let mut tail = both.tail("moving", TailStart::Earliest).await.unwrap();
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
    for i in 10..20 {
        within(
            MUST_HAPPEN,
            "a produce after the stop",
            survivor.produce("moving", Some(i % 2), &[Record::new(format!("m{i}"))], None),
        )
        .await
        .unwrap();
    }
    while seen.len() < 20 {
        seen.push(
            within(MUST_HAPPEN, "a record after the stop", tail.next())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    for partition in 0..2 {
        let offsets: Vec<i64> = seen
            .iter()
            .filter(|r| r.partition == partition)
            .map(|r| r.offset)
            .collect();
        assert_eq!(
            offsets,
            (0..10).collect::<Vec<_>>(),
            "partition {partition}: no gap, no duplicate"
        );
    }
    // The cursor goes on from here in a new tail: nothing is seen twice.
    let cursor = tail.cursor();
    drop(tail);
    survivor
        .produce("moving", Some(0), &[Record::new("after")], None)
        .await
        .unwrap();
    let mut resumed = survivor
        .tail("moving", TailStart::Cursor(cursor))
        .await
        .unwrap();
    let next = within(MUST_HAPPEN, "the record after the cursor", resumed.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.value.as_deref(), Some(&b"after"[..]));
    assert_eq!((next.partition, next.offset), (0, 10));
}
