//! Review findings H1–H4 as tests, in-process against `PartitionLogs`: each one
//! failed on the write path as it was at `58b2ab0`.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use fjord_agent::log::{Acks, LogSettings, PartitionLogs};
use fjord_common::{RandomIds, SystemClock};
use fjord_metadata::kv::RetryPolicy;
use fjord_metadata::kv::fault::{Fault, FaultInjector, Operation, Trigger};
use fjord_metadata::{MetadataStore, NewTopic, OpenOptions, TopicPartition};
use fjord_storage::ObjectKeys;
use fjord_storage::object_store::{self as objects, FaultInjectingObjectStore};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use object_store::memory::InMemory;
use tokio_util::sync::CancellationToken;

fn batch(value: &str) -> Bytes {
    let record = Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: 1_700_000_000_000,
        key: None,
        value: Some(Bytes::from(value.to_owned())),
        headers: Default::default(),
    };
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &[record],
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    out.freeze()
}

/// Every committed value of `tp`, by offset.
async fn committed(logs: &PartitionLogs, tp: TopicPartition) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    let mut offset = 0;
    loop {
        let read = logs.read(tp, offset, 1 << 20).await.unwrap();
        if offset >= read.high_watermark {
            return out;
        }
        let mut bytes = read.records.clone();
        for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
            for record in set.records {
                let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
                out.push((record.offset, value));
                offset = record.offset + 1;
            }
        }
    }
}

fn settings() -> LogSettings {
    LogSettings {
        flush_interval: Duration::from_millis(5),
        ..LogSettings::default()
    }
}

fn logs_over(
    store: &MetadataStore,
    objects: Arc<dyn object_store::ObjectStore>,
    wal: Option<(fjord_storage::wal::Wal, u64)>,
) -> Arc<PartitionLogs> {
    Arc::new(PartitionLogs::new(
        store.clone(),
        objects,
        ObjectKeys::new("test").unwrap(),
        Arc::new(RandomIds::new()),
        Arc::new(SystemClock),
        1,
        settings(),
        wal,
    ))
}

/// Asserts that `answer` does not resolve for a while (it may only resolve
/// once the test lets it: resolving now is the bug).
async fn still_waiting<T: std::fmt::Debug>(answer: &mut tokio::task::JoinHandle<T>, why: &str) {
    let early = tokio::time::timeout(Duration::from_millis(300), answer).await;
    assert!(early.is_err(), "{why}: {early:?}");
}

fn open_wal(dir: &std::path::Path) -> (fjord_storage::wal::Wal, fjord_storage::wal::Recovery) {
    fjord_storage::wal::Wal::open(dir, fjord_storage::wal::WalOptions::default()).unwrap()
}

/// H1: an `acks=1` batch is acknowledged once it is in the WAL; a failed upload
/// must not drop it, and a later flush must not reuse its offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks1_batch_survives_a_failed_upload() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let dir = tempfile::tempdir().unwrap();
    let (wal, recovery) = open_wal(dir.path());
    let faults = Arc::new(FaultInjectingObjectStore::new(Arc::new(InMemory::new()), 1));
    faults.inject(
        objects::Operation::Put,
        objects::Fault::Transient,
        objects::Trigger::Next(1),
    );
    let logs = logs_over(&store, faults.clone(), Some((wal, recovery.next_sequence)));

    let first = logs.append(tp, &batch("a"), Acks::Leader).await.unwrap();
    assert_eq!(first.durable.await.unwrap(), 0, "acknowledged at offset 0");
    // This flush's upload fails.
    let _ = logs.flush_once().await;
    let second = logs.append(tp, &batch("b"), Acks::Leader).await.unwrap();
    let second_offset = second.durable.await.unwrap();
    logs.flush_once().await;
    logs.flush_once().await;

    let log = committed(&logs, tp).await;
    assert!(
        log.contains(&(0, "a".to_owned())),
        "the acknowledged batch is gone: {log:?}"
    );
    assert!(
        log.contains(&(second_offset, "b".to_owned())),
        "b at its acknowledged offset {second_offset}: {log:?}"
    );
    assert_ne!(second_offset, 0, "an acknowledged offset was given twice");
}

/// H1: `acks=1` batches survive a crash of the agent (its disk survives) after
/// uploads failed: the WAL is never truncated past a batch not committed, and
/// recovery commits each batch at its acknowledged offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks1_batches_survive_failed_uploads_and_a_restart() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let dir = tempfile::tempdir().unwrap();
    let bucket = Arc::new(InMemory::new());
    let mut acknowledged = Vec::new();
    {
        let (wal, recovery) = open_wal(dir.path());
        let faults = Arc::new(FaultInjectingObjectStore::new(bucket.clone(), 1));
        let logs = logs_over(&store, faults.clone(), Some((wal, recovery.next_sequence)));
        // One batch commits; then the bucket fails every upload.
        let ok = logs.append(tp, &batch("v0"), Acks::Leader).await.unwrap();
        acknowledged.push((ok.durable.await.unwrap(), "v0".to_owned()));
        logs.flush_once().await;
        faults.inject(
            objects::Operation::Put,
            objects::Fault::Transient,
            objects::Trigger::Always,
        );
        for i in 1..4 {
            let value = format!("v{i}");
            let appended = logs.append(tp, &batch(&value), Acks::Leader).await.unwrap();
            acknowledged.push((appended.durable.await.unwrap(), value));
            let _ = logs.flush_once().await;
        }
        // The agent dies here: nothing more is flushed.
    }
    let (wal, recovery) = open_wal(dir.path());
    let logs = logs_over(&store, bucket, Some((wal, recovery.next_sequence)));
    logs.recover(recovery.records).await.unwrap();
    logs.flush_once().await;
    let log = committed(&logs, tp).await;
    assert_eq!(log, acknowledged, "every acknowledged batch at its offset");
}

/// An object store whose first `gated` PUTs wait until the gate opens.
#[derive(Debug)]
struct GatedStore {
    inner: Arc<dyn object_store::ObjectStore>,
    open: tokio::sync::watch::Sender<bool>,
    waiting: AtomicU32,
    /// PUTs still to be held at the gate.
    gated: AtomicU32,
}

impl std::fmt::Display for GatedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "gated({})", self.inner)
    }
}

#[async_trait]
impl object_store::ObjectStore for GatedStore {
    async fn put_opts(
        &self,
        location: &object_store::path::Path,
        payload: object_store::PutPayload,
        opts: object_store::PutOptions,
    ) -> object_store::Result<object_store::PutResult> {
        let held = self
            .gated
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if held {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let mut open = self.open.subscribe();
            let _ = open.wait_for(|open| *open).await;
            self.waiting.fetch_sub(1, Ordering::SeqCst);
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &object_store::path::Path,
        opts: object_store::PutMultipartOptions,
    ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &object_store::path::Path,
        options: object_store::GetOptions,
    ) -> object_store::Result<object_store::GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: futures::stream::BoxStream<
            'static,
            object_store::Result<object_store::path::Path>,
        >,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&object_store::path::Path>,
    ) -> object_store::Result<object_store::ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &object_store::path::Path,
        to: &object_store::path::Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// H4: a topic deleted while a flush that holds its batches is uploading fails
/// only its own partitions; the other partitions of that segment commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_deleted_mid_flush_fails_only_its_own_partitions() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let kept = store.create_topic(NewTopic::new("kept", 1)).await.unwrap();
    let doomed = store
        .create_topic(NewTopic::new("doomed", 1))
        .await
        .unwrap();
    let kept_tp = TopicPartition::new(kept.id, 0);
    let doomed_tp = TopicPartition::new(doomed.id, 0);
    let gate = Arc::new(GatedStore {
        inner: Arc::new(InMemory::new()),
        open: tokio::sync::watch::channel(false).0,
        waiting: AtomicU32::new(0),
        gated: AtomicU32::new(u32::MAX),
    });
    let logs = logs_over(&store, gate.clone(), None);
    let kept_write = logs.append(kept_tp, &batch("k"), Acks::All).await.unwrap();
    let doomed_write = logs
        .append(doomed_tp, &batch("d"), Acks::All)
        .await
        .unwrap();
    let flush = tokio::spawn({
        let logs = logs.clone();
        async move { logs.flush_once().await }
    });
    while gate.waiting.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    store.delete_topic("doomed").await.unwrap();
    gate.open.send_replace(true);
    flush.await.unwrap();
    assert_eq!(
        kept_write.durable.await.map_err(|e| e.to_string()),
        Ok(0),
        "the surviving topic's batch commits"
    );
    assert!(doomed_write.durable.await.is_err());
    assert_eq!(committed(&logs, kept_tp).await, vec![(0, "k".to_owned())]);
}

/// A memory store whose transactions go through a fault injector, retrying
/// each at most three times (so a fault outlasts the store's own retries).
async fn faulty_store() -> (MetadataStore, FaultInjector) {
    let injector = FaultInjector::new(1);
    let store = fjord_metadata::open_with_options(
        "memory://",
        OpenOptions {
            retry_policy: RetryPolicy {
                max_attempts: 3,
                initial_backoff: Duration::from_millis(1),
                max_backoff: Duration::from_millis(2),
            },
            faults: Some(injector.clone()),
            ..OpenOptions::default()
        },
    )
    .await
    .unwrap();
    (store, injector)
}

/// H4: a segment commit whose outcome is unknown is retried under the same
/// segment id until it is known; its producers are answered by the outcome, and
/// no offset is given twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maybe_committed_segment_is_retried_not_reset() {
    let (store, faults) = faulty_store().await;
    let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let logs = logs_over(&store, Arc::new(InMemory::new()), None);
    let shutdown = CancellationToken::new();
    // Leadership first, so only the segment commit meets the faults.
    let warm = logs.append(tp, &batch("w"), Acks::All).await.unwrap();
    logs.flush_once().await;
    assert_eq!(warm.durable.await.unwrap(), 0);

    let first = logs.append(tp, &batch("a"), Acks::All).await.unwrap();
    // The next commit applies and loses its reply; the five after it are
    // refused: the store's own three attempts end "maybe committed".
    faults
        .inject(
            Operation::Commit,
            Fault::MaybeCommittedApplied,
            Trigger::Next(1),
        )
        .unwrap();
    faults
        .inject(Operation::Commit, Fault::Unavailable, Trigger::Next(5))
        .unwrap();
    let flusher = tokio::spawn(logs.clone().run_flusher(shutdown.clone()));
    let first = tokio::time::timeout(Duration::from_secs(30), first.durable)
        .await
        .expect("answered");
    assert_eq!(
        first.map_err(|e| e.to_string()),
        Ok(1),
        "a commit that applied is answered as committed"
    );
    let second = logs.append(tp, &batch("b"), Acks::All).await.unwrap();
    assert_eq!(second.durable.await.unwrap(), 2);
    shutdown.cancel();
    flusher.await.unwrap().unwrap();
    assert_eq!(
        committed(&logs, tp).await,
        vec![(0, "w".into()), (1, "a".into()), (2, "b".into())]
    );
}

/// An in-process agent of a two-agent cluster: its partition logs, cluster view
/// and balancer, with a heartbeat.
struct MiniAgent {
    node_id: i32,
    logs: Arc<PartitionLogs>,
    view: Arc<fjord_agent::cluster::ClusterView>,
}

async fn mini_agent(store: &MetadataStore, port: u16, shutdown: &CancellationToken) -> MiniAgent {
    mini_agent_over(store, Arc::new(InMemory::new()), port, shutdown).await
}

/// A mini agent whose segments go to `objects`.
async fn mini_agent_over(
    store: &MetadataStore,
    objects: Arc<dyn object_store::ObjectStore>,
    port: u16,
    shutdown: &CancellationToken,
) -> MiniAgent {
    use fjord_agent::balancer::run_balancer;
    use fjord_agent::cluster::{ClusterSettings, ClusterView, LiveAgent};
    use fjord_agent::groups::{GroupCoordinator, GroupSettings};
    let address = format!("127.0.0.1:{port}");
    let record = store
        .register_agent(
            fjord_common::IdGenerator::uuid(&RandomIds::new()),
            &address,
            None,
            fjord_metadata::AgentRoles::ALL,
        )
        .await
        .unwrap();
    let node_id = record.node_id;
    let view = Arc::new(ClusterView::new(LiveAgent::from_record(&record).unwrap()));
    let logs = Arc::new(
        PartitionLogs::new(
            store.clone(),
            objects,
            ObjectKeys::new("test").unwrap(),
            Arc::new(RandomIds::new()),
            Arc::new(SystemClock),
            node_id,
            settings(),
            None,
        )
        .with_cluster(view.clone()),
    );
    let groups = Arc::new(
        GroupCoordinator::new(
            store.clone(),
            node_id,
            Arc::new(RandomIds::new()),
            GroupSettings::default(),
        )
        .with_cluster(view.clone()),
    );
    tokio::spawn(logs.clone().run_flusher(shutdown.clone()));
    tokio::spawn(run_balancer(
        store.clone(),
        logs.clone(),
        groups,
        view.clone(),
        ClusterSettings {
            lease_timeout: Duration::from_secs(2),
            balance_interval: Duration::from_millis(20),
            hand_off_timeout: Duration::from_secs(1),
        },
        shutdown.clone(),
    ));
    let beat = store.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            let _ = beat.heartbeat(node_id).await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    MiniAgent {
        node_id,
        logs,
        view,
    }
}

/// H2: metadata names an agent as a partition's leader while that agent does
/// not lead it in memory and placement puts it elsewhere (as after a flush that
/// failed during a hand-off). The agent releases it, and the owner takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leadership_held_only_in_metadata_is_released_to_the_owner() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let shutdown = CancellationToken::new();
    let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let a = mini_agent(&store, 1, &shutdown).await;
    let b = mini_agent(&store, 2, &shutdown).await;
    // Both see each other live.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while a.view.live().len() < 2 || b.view.live().len() < 2 {
        assert!(tokio::time::Instant::now() < deadline, "views never met");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (owner, other) = if a.view.owns(tp, 1) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    // Let the owner take it, then record the other as leader in metadata only.
    while owner.logs.leads(tp).is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the owner never led"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store.acquire_leadership(tp, other.node_id).await.unwrap();
    // The owner notices it lost the partition; then someone must release or
    // take over, so the owner leads it again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let state = store.partition_state(tp).await.unwrap();
        if state.leader == Some(owner.node_id) && owner.logs.leads(tp).is_some() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "stuck: metadata leader {:?} (epoch {}), owner {} leads in memory: {:?}, other {} in memory: {:?}",
            state.leader,
            state.leader_epoch,
            owner.node_id,
            owner.logs.leads(tp),
            other.node_id,
            other.logs.leads(tp),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    shutdown.cancel();
}

/// An object store whose PUTs panic (a bug in an upload).
fn panicking_store() -> Arc<dyn object_store::ObjectStore> {
    #[derive(Debug)]
    struct Panics(InMemory);
    impl std::fmt::Display for Panics {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("panics")
        }
    }
    #[async_trait]
    impl object_store::ObjectStore for Panics {
        async fn put_opts(
            &self,
            _: &object_store::path::Path,
            _: object_store::PutPayload,
            _: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            panic!("injected panic in an upload");
        }
        async fn put_multipart_opts(
            &self,
            location: &object_store::path::Path,
            opts: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            self.0.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &object_store::path::Path,
            options: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            self.0.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: futures::stream::BoxStream<
                'static,
                object_store::Result<object_store::path::Path>,
            >,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::path::Path>>
        {
            self.0.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            self.0.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&object_store::path::Path>,
        ) -> object_store::Result<object_store::ListResult> {
            self.0.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &object_store::path::Path,
            to: &object_store::path::Path,
            options: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            self.0.copy_opts(from, to, options).await
        }
    }
    Arc::new(Panics(InMemory::new()))
}

/// H3: the flusher dies (a panic in an upload). The agent must not live on as a
/// zombie: its pending producers are answered, later produces are refused, it
/// stops heartbeating and deregisters (so the others take its partitions at
/// once), and `run_until` returns the failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_whose_flusher_dies_stops_and_leaves() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let dir = tempfile::tempdir().unwrap();
    let agent = fjord_agent::AgentBuilder::new(
        fjord_agent::AgentOptions::new(dir.path(), "127.0.0.1:0"),
        store.clone(),
        panicking_store(),
    )
    .start()
    .await
    .unwrap();
    let node_id = agent.node_id();
    let logs = agent.logs().clone();
    let first = logs.append(tp, &batch("a"), Acks::All).await.unwrap();
    let run = tokio::spawn(agent.run_until(std::future::pending()));
    let first = tokio::time::timeout(Duration::from_secs(30), first.durable)
        .await
        .expect("the pending produce is answered");
    assert!(first.is_err(), "{first:?}");
    let stopped = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the agent stops")
        .unwrap();
    let failure = stopped.unwrap_err().to_string();
    assert!(failure.contains("flusher"), "{failure}");
    let later = logs.append(tp, &batch("b"), Acks::All).await;
    assert!(later.is_err(), "a produce after the failure is refused");
    let agents = store.list_agents().await.unwrap();
    assert!(
        agents.iter().all(|a| a.node_id != node_id),
        "the failed agent deregistered: {agents:?}"
    );
}

/// `acks=1` survives a metadata commit that fails for longer than the store's
/// own retries: the segment is committed once metadata answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks1_batch_survives_a_failed_commit() {
    let (store, faults) = faulty_store().await;
    let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let dir = tempfile::tempdir().unwrap();
    let (wal, recovery) = open_wal(dir.path());
    let logs = logs_over(
        &store,
        Arc::new(InMemory::new()),
        Some((wal, recovery.next_sequence)),
    );
    // Leadership first, so only the segment commit meets the refusals.
    logs.take_over(tp).await.unwrap();
    let appended = logs.append(tp, &batch("a"), Acks::Leader).await.unwrap();
    assert_eq!(appended.durable.await.unwrap(), 0);
    // Ten refusals: more than the store's three attempts per call.
    faults
        .inject(Operation::Commit, Fault::Unavailable, Trigger::Next(10))
        .unwrap();
    logs.flush_once().await;
    assert_eq!(faults.injected(), 10, "every refusal was met");
    let next = logs.append(tp, &batch("b"), Acks::All).await.unwrap();
    logs.flush_once().await;
    assert_eq!(next.durable.await.unwrap(), 1);
    assert_eq!(
        committed(&logs, tp).await,
        vec![(0, "a".into()), (1, "b".into())]
    );
}

/// `acks=1` does not survive a move of the partition before its batches were
/// committed (as Kafka's `acks=1` does not survive a failed leader): recovery
/// drops them instead of appending them behind the new leader's records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks1_batches_of_a_partition_that_moved_are_dropped_at_recovery() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, recovery) = open_wal(dir.path());
        let faults = Arc::new(FaultInjectingObjectStore::new(Arc::new(InMemory::new()), 1));
        faults.inject(
            objects::Operation::Put,
            objects::Fault::Transient,
            objects::Trigger::Always,
        );
        let logs = logs_over(&store, faults, Some((wal, recovery.next_sequence)));
        let lost = logs.append(tp, &batch("lost"), Acks::Leader).await.unwrap();
        assert_eq!(lost.durable.await.unwrap(), 0);
        logs.flush_once().await;
        // The agent dies with the batch only in its WAL.
    }
    // Another agent (node 2) takes the partition over and commits.
    let bucket = Arc::new(InMemory::new());
    let other = Arc::new(PartitionLogs::new(
        store.clone(),
        bucket.clone(),
        ObjectKeys::new("test").unwrap(),
        Arc::new(RandomIds::new()),
        Arc::new(SystemClock),
        2,
        settings(),
        None,
    ));
    let theirs = other.append(tp, &batch("theirs"), Acks::All).await.unwrap();
    other.flush_once().await;
    assert_eq!(theirs.durable.await.unwrap(), 0);
    // The first agent restarts on its disk.
    let (wal, recovery) = open_wal(dir.path());
    assert_eq!(recovery.records.len(), 1, "the batch is still in the WAL");
    let logs = logs_over(&store, bucket, Some((wal, recovery.next_sequence)));
    assert_eq!(logs.recover(recovery.records).await.unwrap(), 0);
    assert_eq!(committed(&logs, tp).await, vec![(0, "theirs".into())]);
    // And the WAL no longer holds it.
    drop(logs);
    let (_, recovery) = open_wal(dir.path());
    assert!(recovery.records.is_empty(), "{:?}", recovery.records);
}

/// A committed object that is gone from the bucket is data loss: the read
/// fails with a non-retriable class (Kafka clients would retry
/// `KAFKA_STORAGE_ERROR` forever), unless the log start moved past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_object_is_data_loss_not_a_retriable_error() {
    use fjord_agent::log::LogErrorKind;
    use object_store::ObjectStoreExt;
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let bucket = Arc::new(InMemory::new());
    let writer = logs_over(&store, bucket.clone(), None);
    let appended = writer.append(tp, &batch("a"), Acks::All).await.unwrap();
    writer.flush_once().await;
    appended.durable.await.unwrap();
    let entry = store.lookup(tp, 0, 1).await.unwrap().entries.remove(0);
    bucket
        .delete(&object_store::path::Path::from(entry.object_key.as_str()))
        .await
        .unwrap();
    // Another agent (no memory tail) reads it.
    let reader = logs_over(&store, bucket, None);
    let error = reader.read(tp, 0, 1 << 20).await.unwrap_err();
    assert_eq!(error.kind(), LogErrorKind::DataLoss, "{error}");
    assert_eq!(
        fjord_agent::kafka::errors::log_error(&error),
        kafka_protocol::error::ResponseError::UnknownServerError
    );
}

/// A hand-off undone before it finished: an agent joined, so a partition was
/// placed elsewhere while its uploads were failing; its leader stopped
/// accepting produces for it and waited for what it had accepted to commit.
/// Then the newcomer died and placement put the partition back on its leader,
/// which must serve it again rather than refuse it for good while metadata
/// names it the leader. (Found by the fault soak, seed 1796590920971: a
/// partition refused with `NOT_LEADER_OR_FOLLOWER` for the rest of the run.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_off_undone_before_it_finished_serves_the_partition_again() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store.create_topic(NewTopic::new("t", 2)).await.unwrap();
    let partitions = [0, 1].map(|p| TopicPartition::new(topic.id, p));
    let bucket = Arc::new(FaultInjectingObjectStore::new(Arc::new(InMemory::new()), 1));
    let (a_stop, b_stop) = (CancellationToken::new(), CancellationToken::new());
    let a = mini_agent_over(&store, bucket.clone(), 1, &a_stop).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while partitions.iter().any(|p| a.logs.leads(*p).is_none()) {
        assert!(tokio::time::Instant::now() < deadline, "never led both");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Every upload fails from now on: what the leader accepts stays pending.
    bucket.inject(
        objects::Operation::Put,
        objects::Fault::Transient,
        objects::Trigger::Always,
    );
    let mut pending = Vec::new();
    for partition in partitions {
        let appended = a.logs.append(partition, &batch("before"), Acks::All).await;
        pending.push((partition, appended.unwrap().durable));
    }
    let b = mini_agent(&store, 2, &b_stop).await;
    while a.view.live().len() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never saw the newcomer"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let moved = *partitions.iter().find(|p| !a.view.owns(**p, 2)).unwrap();
    // The leader is handing it off: it refuses produces for it.
    while a
        .logs
        .append(moved, &batch("refused"), Acks::All)
        .await
        .is_ok()
    {
        assert!(tokio::time::Instant::now() < deadline, "never handed off");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(b.logs.leads(moved), None, "taken while its leader lived");
    // The newcomer dies; once its lease lapses the partition is placed back.
    b_stop.cancel();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while a.view.live().len() > 1 {
        assert!(tokio::time::Instant::now() < deadline, "never judged dead");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    bucket.clear();
    for (partition, durable) in pending {
        assert!(durable.await.is_ok(), "{partition}: accepted, then failed");
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let offset = loop {
        match a.logs.append(moved, &batch("after"), Acks::All).await {
            Ok(appended) => break appended.durable.await.unwrap(),
            Err(error) => assert!(
                tokio::time::Instant::now() < deadline,
                "{moved} is placed on its leader, which still refuses it: {error}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        committed(&a.logs, moved).await,
        vec![(0, "before".to_owned()), (offset, "after".to_owned())]
    );
    a_stop.cancel();
}

/// Only `acks=1` batches are written to the WAL: an `acks=all` batch is
/// answered after its commit, so the WAL would only cost a copy and an fsync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_acks1_batches_are_written_to_the_wal() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store.create_topic(NewTopic::new("t", 2)).await.unwrap();
    let (all, leader) = (
        TopicPartition::new(topic.id, 0),
        TopicPartition::new(topic.id, 1),
    );
    let dir = tempfile::tempdir().unwrap();
    {
        let (wal, recovery) = open_wal(dir.path());
        let logs = logs_over(
            &store,
            Arc::new(InMemory::new()),
            Some((wal, recovery.next_sequence)),
        );
        let _unanswered = logs.append(all, &batch("all"), Acks::All).await.unwrap();
        let _unanswered = logs.append(all, &batch("none"), Acks::None).await.unwrap();
        // Answered once fsynced: the WAL has written everything queued before it.
        let one = logs
            .append(leader, &batch("one"), Acks::Leader)
            .await
            .unwrap();
        one.durable.await.unwrap();
        // The agent dies here: nothing is flushed.
    }
    let (_wal, recovery) = open_wal(dir.path());
    assert_eq!(
        recovery.records.len(),
        1,
        "only the acks=1 batch is in the WAL: {:?}",
        recovery
            .records
            .iter()
            .map(|r| r.payload.len())
            .collect::<Vec<_>>()
    );
}

/// The WAL brings back only a run contiguous from the high watermark: an
/// `acks=1` batch behind an `acks=all` one (not in the WAL) is answered on its
/// commit, not on the WAL's fsync — else a crash before the flush would lose
/// an acknowledged batch. Once that commit is through, `acks=1` batches are
/// answered on the fsync again and survive a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acks1_batch_behind_one_not_in_the_wal_is_answered_on_its_commit() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let dir = tempfile::tempdir().unwrap();
    let bucket = Arc::new(InMemory::new());
    {
        let (wal, recovery) = open_wal(dir.path());
        let logs = logs_over(&store, bucket.clone(), Some((wal, recovery.next_sequence)));
        let first = logs.append(tp, &batch("all"), Acks::All).await.unwrap();
        let second = logs.append(tp, &batch("one"), Acks::Leader).await.unwrap();
        let mut second = tokio::spawn(second.durable);
        // Not answered while its predecessor is uncommitted, however long.
        still_waiting(
            &mut second,
            "an acks=1 batch was answered while a batch before it was in no WAL",
        )
        .await;
        logs.flush_once().await;
        assert_eq!(first.durable.await.unwrap(), 0);
        assert_eq!(second.await.unwrap().unwrap(), 1);
        // The commit is through: acks=1 is answered on the fsync again.
        let third = logs
            .append(tp, &batch("again"), Acks::Leader)
            .await
            .unwrap();
        assert_eq!(third.durable.await.unwrap(), 2);
        // The agent dies here: "again" is only in the WAL.
    }
    let (wal, recovery) = open_wal(dir.path());
    let logs = logs_over(&store, bucket, Some((wal, recovery.next_sequence)));
    logs.recover(recovery.records).await.unwrap();
    logs.flush_once().await;
    assert_eq!(
        committed(&logs, tp).await,
        vec![
            (0, "all".to_owned()),
            (1, "one".to_owned()),
            (2, "again".to_owned())
        ]
    );
}

/// A slow upload holds back only the flushes that share a partition with it:
/// a later flush of another partition commits (and is answered) meanwhile,
/// while a later flush of the same partition waits, so the partition's
/// commits stay in offset order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upload_holds_back_only_flushes_of_its_partitions() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let topic = store.create_topic(NewTopic::new("t", 2)).await.unwrap();
    let (slow, other) = (
        TopicPartition::new(topic.id, 0),
        TopicPartition::new(topic.id, 1),
    );
    let gate = Arc::new(GatedStore {
        inner: Arc::new(InMemory::new()),
        open: tokio::sync::watch::channel(false).0,
        waiting: AtomicU32::new(0),
        gated: AtomicU32::new(1),
    });
    let logs = logs_over(&store, gate.clone(), None);
    let shutdown = CancellationToken::new();
    let flusher = tokio::spawn(logs.clone().run_flusher(shutdown.clone()));

    let first = logs.append(slow, &batch("s0"), Acks::All).await.unwrap();
    while gate.waiting.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    // The first flush (partition `slow`) is stuck in its PUT.
    let unrelated = logs.append(other, &batch("o0"), Acks::All).await.unwrap();
    let unrelated = tokio::time::timeout(Duration::from_secs(20), unrelated.durable)
        .await
        .expect("a flush of another partition waited for the stuck upload");
    assert_eq!(unrelated.unwrap(), 0);
    let second = logs.append(slow, &batch("s1"), Acks::All).await.unwrap();
    let mut second = tokio::spawn(second.durable);
    still_waiting(
        &mut second,
        "a later flush of the stuck partition committed before the earlier one",
    )
    .await;
    assert_eq!(gate.waiting.load(Ordering::SeqCst), 1, "still stuck");

    gate.open.send_replace(true);
    assert_eq!(first.durable.await.unwrap(), 0);
    assert_eq!(second.await.unwrap().unwrap(), 1);
    assert_eq!(
        committed(&logs, slow).await,
        vec![(0, "s0".to_owned()), (1, "s1".to_owned())]
    );
    shutdown.cancel();
    flusher.await.unwrap().unwrap();
}
