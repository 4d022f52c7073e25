//! One conformance suite for every key-value backend: the same assertions run on
//! memory and SQLite on every test run, and on FoundationDB when
//! `FJORD_FDB_CLUSTER_FILE` names a cluster file (with `--features fdb`).
//!
//! The suite tries to break the invariants the rest of Fjord stands on: no lost
//! update under contention, exactly one compare-and-set winner, epoch fencing that
//! writes nothing, and segment commits that stay exactly-once across a lost reply.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use fjord_common::{IdGenerator, ManualClock, RandomIds, SeededRng};
use fjord_metadata::kv::fault::{Fault, FaultInjector, Operation, Trigger};
use fjord_metadata::kv::memory::MemoryBackend;
use fjord_metadata::kv::{
    Database, KeyValue, KvBackend, KvError, KvTransaction, MAX_VALUE_BYTES, RangeOptions,
    RetryPolicy, decode_counter,
};
use fjord_metadata::rest_consumers::{RestConsumerRecord, RestConsumerWrite};
use fjord_metadata::{
    AbortedTransaction, AbortedTransactionCommit, AgentRoles, COORDINATOR_SHARDS, ChunkCommit,
    CompactedInput, CompactionSwap, ConsumerGroupRecord, ConsumerMemberRecord, ConsumerMemberState,
    ErrorKind, GroupMemberRecord, GroupPhase, GroupProtocol, GroupRecord, IndexEntry, JOB_SHARDS,
    JobLease, JobShardState, MAX_COMMIT_AGE_MS, MetadataError, MetadataStore, NewTopic,
    OffsetCommit, PartitionSwap, ProducerBatch, ProducerCommit, ProducerState, RetentionLimits,
    SegmentCommit, SegmentId, ShardFence, SwapOutcome, TopicId, TopicPartition, TransactionPhase,
    TransactionRecord, coordinator_shard_of,
};
use uuid::Uuid;

/// A backend under test, with whatever keeps it alive (a temporary directory).
struct Fixture {
    backend: Arc<dyn KvBackend>,
    /// Keys of this fixture live under this cluster name (FoundationDB runs share
    /// one cluster).
    cluster: String,
    /// How many index entries a partition gets in the tests of long logs: past
    /// the agent's old 100k-entry scan on the memory backend, fewer where every
    /// commit is an fsync or a network round trip.
    bulk_entries: usize,
    _dir: Option<tempfile::TempDir>,
}

impl Fixture {
    fn database(&self, backend: Arc<dyn KvBackend>) -> Database {
        Database::new(backend, RetryPolicy::default(), 42)
    }

    fn db(&self) -> Database {
        self.database(self.backend.clone())
    }

    fn store_over(&self, backend: Arc<dyn KvBackend>) -> MetadataStore {
        MetadataStore::new(
            self.database(backend),
            &self.cluster,
            Arc::new(ManualClock::new(1_700_000_000_000)),
            Arc::new(RandomIds::new()),
        )
    }

    fn store(&self) -> MetadataStore {
        self.store_over(self.backend.clone())
    }

    /// A key-value key private to this fixture.
    fn key(&self, name: &str) -> Vec<u8> {
        foundationdb_tuple::pack(&("conformance", self.cluster.as_str(), name))
    }
}

fn memory() -> Option<Fixture> {
    Some(Fixture {
        backend: Arc::new(MemoryBackend::new()),
        cluster: "test".into(),
        bulk_entries: 120_000,
        _dir: None,
    })
}

fn sqlite() -> Option<Fixture> {
    let dir = tempfile::tempdir().unwrap();
    let backend =
        fjord_metadata::kv::sqlite::SqliteBackend::open(dir.path().join("meta.db")).unwrap();
    Some(Fixture {
        backend: Arc::new(backend),
        cluster: "test".into(),
        bulk_entries: 1_500,
        _dir: Some(dir),
    })
}

#[cfg(feature = "fdb")]
fn fdb() -> Option<Fixture> {
    let Ok(cluster_file) = std::env::var("FJORD_FDB_CLUSTER_FILE") else {
        eprintln!("FJORD_FDB_CLUSTER_FILE is not set: FoundationDB conformance not run");
        return None;
    };
    let backend =
        fjord_metadata::kv::fdb::FdbBackend::open(Some(std::path::Path::new(&cluster_file)))
            .unwrap();
    Some(Fixture {
        backend: Arc::new(backend),
        // A fresh keyspace per test: runs never see each other's keys.
        cluster: format!("conformance-{}", RandomIds::new().ulid(0)),
        bulk_entries: 3_000,
        _dir: None,
    })
}

// ----- the suite -----

async fn range_reads_are_ordered_and_bounded(fx: Fixture) {
    let db = fx.db();
    let offsets: Vec<i64> = vec![300, -5, 0, 70_000, 1, 255, 256, 42, 9, 10];
    let keys: Vec<Vec<u8>> = offsets
        .iter()
        .map(|o| foundationdb_tuple::pack(&("conformance", fx.cluster.as_str(), "range", *o)))
        .collect();
    db.run(|txn, _| {
        let keys = keys.clone();
        async move {
            for (i, key) in keys.iter().enumerate() {
                txn.set(key, format!("v{i}").as_bytes());
            }
            Ok::<_, KvError>(())
        }
    })
    .await
    .unwrap();
    let prefix = foundationdb_tuple::pack(&("conformance", fx.cluster.as_str(), "range"));
    let (all, first3, last2) = db
        .run(|txn, _| {
            let prefix = prefix.clone();
            async move {
                let all = txn.get_prefix(&prefix, RangeOptions::default()).await?;
                let first3 = txn.get_prefix(&prefix, RangeOptions::first(3)).await?;
                let last2 = txn.get_prefix(&prefix, RangeOptions::last(2)).await?;
                Ok::<_, KvError>((all, first3, last2))
            }
        })
        .await
        .unwrap();
    let mut sorted = offsets.clone();
    sorted.sort();
    let decoded: Vec<i64> = all
        .iter()
        .map(|kv| {
            foundationdb_tuple::unpack::<(String, String, String, i64)>(&kv.key)
                .unwrap()
                .3
        })
        .collect();
    assert_eq!(
        decoded, sorted,
        "range read must follow numeric tuple order"
    );
    assert_eq!(first3, all[..3].to_vec());
    assert_eq!(last2, vec![all[9].clone(), all[8].clone()]);

    // Read-your-writes over the snapshot, with clears, in one transaction; then the
    // same view from a fresh transaction after commit.
    let view = |txn: fjord_metadata::kv::Transaction, prefix: Vec<u8>| async move {
        txn.get_prefix(&prefix, RangeOptions::default()).await
    };
    let inside = db
        .run(|txn, _| {
            let (keys, prefix) = (keys.clone(), prefix.clone());
            async move {
                txn.clear_range(&keys[2], &keys[6]); // offsets 0 ..< 256
                txn.clear(&keys[0]); // 300
                txn.set(&keys[2], b"back"); // 0 again
                let seen = view(txn.clone(), prefix).await?;
                Ok::<_, KvError>(seen)
            }
        })
        .await
        .unwrap();
    let after = db.run(|txn, _| view(txn, prefix.clone())).await.unwrap();
    assert_eq!(
        inside, after,
        "a transaction must see its own writes as committed"
    );
    let values: Vec<&[u8]> = after.iter().map(|kv| kv.value.as_slice()).collect();
    assert!(values.contains(&b"back".as_slice()));
    assert!(
        !values.contains(&b"v0".as_slice()),
        "cleared key still present"
    );
    let remaining: Vec<i64> = after
        .iter()
        .map(|kv| {
            foundationdb_tuple::unpack::<(String, String, String, i64)>(&kv.key)
                .unwrap()
                .3
        })
        .collect();
    assert_eq!(remaining, vec![-5, 0, 256, 70_000]);
}

/// `get_many` answers each key as `get` would, in the order asked: committed
/// values, the transaction's own sets and clears, `ADD`s over the snapshot,
/// and absent keys.
async fn many_keys_read_at_once_see_the_transactions_own_writes(fx: Fixture) {
    let db = fx.db();
    let key =
        |name: &str| foundationdb_tuple::pack(&("conformance", fx.cluster.as_str(), "many", name));
    let (a, b, c, counter, missing) =
        (key("a"), key("b"), key("c"), key("counter"), key("missing"));
    db.run(|txn, _| {
        let (a, b, counter) = (a.clone(), b.clone(), counter.clone());
        async move {
            txn.set(&a, b"a0");
            txn.set(&b, b"b0");
            txn.atomic_add(&counter, 5);
            Ok::<_, KvError>(())
        }
    })
    .await
    .unwrap();
    let (inside, singly) = db
        .run(|txn, _| {
            let keys = vec![
                missing.clone(),
                b.clone(),
                a.clone(),
                counter.clone(),
                c.clone(),
                a.clone(),
            ];
            async move {
                txn.clear(&keys[1]); // b
                txn.set(&keys[4], b"c1"); // c
                txn.atomic_add(&keys[3], 2); // counter: 5 + 2
                let many = txn.get_many(&keys).await?;
                let mut singly = Vec::new();
                for key in &keys {
                    singly.push(txn.get(key).await?);
                }
                Ok::<_, KvError>((many, singly))
            }
        })
        .await
        .unwrap();
    assert_eq!(inside, singly, "get_many answers as get does, key by key");
    assert_eq!(
        inside,
        vec![
            None,
            None,
            Some(b"a0".to_vec()),
            Some(7i64.to_le_bytes().to_vec()),
            Some(b"c1".to_vec()),
            Some(b"a0".to_vec()),
        ]
    );
    let empty = db
        .run(|txn, _| async move { txn.get_many(&[]).await })
        .await
        .unwrap();
    assert!(empty.is_empty());
}

async fn stale_reads_conflict_and_blind_writes_do_not(fx: Fixture) {
    let key = fx.key("contended");
    let first = fx.backend.begin().await.unwrap();
    let second = fx.backend.begin().await.unwrap();
    assert_eq!(first.get(&key).await.unwrap(), None);
    assert_eq!(second.get(&key).await.unwrap(), None);
    first.set(&key, b"first");
    second.set(&key, b"second");
    first.commit().await.unwrap();
    assert_eq!(second.commit().await, Err(KvError::Conflict));
    drop(second);

    // Writes without reads never conflict; the later commit wins.
    let blind_a = fx.backend.begin().await.unwrap();
    let blind_b = fx.backend.begin().await.unwrap();
    blind_a.set(&key, b"a");
    blind_b.set(&key, b"b");
    blind_a.commit().await.unwrap();
    blind_b.commit().await.unwrap();
    let check = fx.backend.begin().await.unwrap();
    assert_eq!(
        check.get(&key).await.unwrap().as_deref(),
        Some(b"b".as_slice())
    );
    check.commit().await.unwrap();
}

/// Phantoms: a transaction that read a range (whole, or the part a limit let it
/// see) must conflict when a concurrent commit inserts a key into what it read,
/// even though no key it saw changed. T1 writes only outside the range, and T2
/// writes blind, so only T1's range read can explain the conflict.
async fn range_reads_conflict_with_inserts_into_the_range(fx: Fixture) {
    let key = |name: &str| {
        foundationdb_tuple::pack(&("conformance", fx.cluster.as_str(), "phantom", name))
    };
    let prefix = foundationdb_tuple::pack(&("conformance", fx.cluster.as_str(), "phantom"));
    let outside = fx.key("phantom-outside");
    let seed = fx.backend.begin().await.unwrap();
    seed.set(&key("b"), b"1");
    seed.set(&key("d"), b"1");
    seed.commit().await.unwrap();

    // (what T1 reads, what it must see, the key T2 inserts into that read)
    let cases: [(&str, RangeOptions, &[&str], &str); 4] = [
        ("whole range", RangeOptions::default(), &["b", "d"], "c"),
        ("first 1", RangeOptions::first(1), &["b"], "a"),
        ("last 1", RangeOptions::last(1), &["d"], "e"),
        ("empty range", RangeOptions::default(), &[], "y/1"),
    ];
    for (name, options, expected, inserted) in cases {
        let (begin, end) = if expected.is_empty() {
            (key("y"), key("z"))
        } else {
            (prefix.clone(), fjord_metadata::kv::strinc(&prefix))
        };
        let first = fx.backend.begin().await.unwrap();
        let seen = first.get_range(&begin, &end, options).await.unwrap();
        let seen: Vec<Vec<u8>> = seen.into_iter().map(|kv| kv.key).collect();
        let wanted: Vec<Vec<u8>> = expected.iter().map(|k| key(k)).collect();
        assert_eq!(seen, wanted, "{name}");

        let second = fx.backend.begin().await.unwrap();
        second.set(&key(inserted), b"phantom");
        second.commit().await.unwrap();

        first.set(&outside, name.as_bytes());
        assert_eq!(
            first.commit().await,
            Err(KvError::Conflict),
            "{name}: an insert into the range T1 read did not conflict"
        );
        drop(first);
        // The conflicting transaction wrote nothing.
        let check = fx.backend.begin().await.unwrap();
        assert_eq!(check.get(&outside).await.unwrap(), None, "{name}");
        check.commit().await.unwrap();
        // Undo the insert, so the next case starts from the same range.
        let undo = fx.backend.begin().await.unwrap();
        undo.clear(&key(inserted));
        undo.commit().await.unwrap();
    }

    // The same through Database::run: the body sees the phantom on its retry.
    let db = fx.db();
    let attempts = Arc::new(AtomicUsize::new(0));
    let counted = db
        .run(|txn, _| {
            let (attempts, prefix, inserted, outside) =
                (attempts.clone(), prefix.clone(), key("c"), outside.clone());
            let backend = fx.backend.clone();
            async move {
                let attempt = attempts.fetch_add(1, Ordering::SeqCst) + 1;
                let rows = txn.get_prefix(&prefix, RangeOptions::default()).await?;
                if attempt == 1 {
                    let other = backend.begin().await?;
                    other.set(&inserted, b"phantom");
                    other.commit().await?;
                }
                txn.set(&outside, rows.len().to_string().as_bytes());
                Ok::<_, KvError>(rows.len())
            }
        })
        .await
        .unwrap();
    assert_eq!(attempts.load(Ordering::SeqCst), 2);
    assert_eq!(counted, 3, "the retry counts the inserted key");
}

async fn large_values_round_trip_and_oversized_ones_write_nothing(fx: Fixture) {
    let db = fx.db();
    let big: Vec<u8> = (0..MAX_VALUE_BYTES).map(|i| (i * 7 % 251) as u8).collect();
    let (key, other) = (fx.key("big"), fx.key("other"));
    db.run(|txn, _| {
        let (key, big) = (key.clone(), big.clone());
        async move {
            txn.set(&key, &big);
            Ok::<_, KvError>(())
        }
    })
    .await
    .unwrap();
    let read = db
        .run(|txn, _| {
            let key = key.clone();
            async move { txn.get(&key).await }
        })
        .await
        .unwrap();
    assert_eq!(read.as_deref(), Some(big.as_slice()));

    let too_big = vec![1u8; MAX_VALUE_BYTES + 1];
    let result = db
        .run(|txn, _| {
            let (other, too_big) = (other.clone(), too_big.clone());
            async move {
                txn.set(&other, b"small");
                txn.set(&other, &too_big);
                Ok::<_, KvError>(())
            }
        })
        .await;
    assert!(matches!(result, Err(KvError::TooLarge(_))), "{result:?}");
    let read = db
        .run(|txn, _| {
            let other = other.clone();
            async move { txn.get(&other).await }
        })
        .await
        .unwrap();
    assert_eq!(
        read, None,
        "a transaction that broke a limit must write nothing"
    );
}

async fn concurrent_increments_lose_no_update(fx: Fixture) {
    const TASKS: usize = 8;
    const INCREMENTS: usize = 40;
    let db = fx.db();
    let (plain, atomic) = (fx.key("counter"), fx.key("atomic-counter"));
    let mut handles = Vec::new();
    for _ in 0..TASKS {
        let (db, plain, atomic) = (db.clone(), plain.clone(), atomic.clone());
        handles.push(tokio::spawn(async move {
            for _ in 0..INCREMENTS {
                db.run(|txn, _| {
                    let (plain, atomic) = (plain.clone(), atomic.clone());
                    async move {
                        // A read-modify-write (conflicts) and an atomic add (does not).
                        let value = decode_counter(txn.get(&plain).await?.as_deref());
                        txn.set(&plain, &(value + 1).to_le_bytes());
                        txn.atomic_add(&atomic, 1);
                        Ok::<_, KvError>(())
                    }
                })
                .await
                .unwrap();
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
    let (p, a) = db
        .run(|txn, _| {
            let (plain, atomic) = (plain.clone(), atomic.clone());
            async move {
                Ok::<_, KvError>((
                    decode_counter(txn.get(&plain).await?.as_deref()),
                    decode_counter(txn.get(&atomic).await?.as_deref()),
                ))
            }
        })
        .await
        .unwrap();
    assert_eq!(p, (TASKS * INCREMENTS) as i64);
    assert_eq!(a, (TASKS * INCREMENTS) as i64);
}

async fn compare_and_set_rounds_have_exactly_one_winner(fx: Fixture) {
    const TASKS: usize = 8;
    const ROUNDS: i64 = 20;
    let db = fx.db();
    let slot = fx.key("cas-slot");
    let wins: Arc<Vec<AtomicUsize>> = Arc::new((0..ROUNDS).map(|_| AtomicUsize::new(0)).collect());
    for round in 0..ROUNDS {
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let (db, slot, wins) = (db.clone(), slot.clone(), wins.clone());
            handles.push(tokio::spawn(async move {
                let won = db
                    .run(|txn, _| {
                        let slot = slot.clone();
                        async move {
                            let current = decode_counter(txn.get(&slot).await?.as_deref());
                            if current != round {
                                return Ok::<_, KvError>(false);
                            }
                            txn.set(&slot, &(round + 1).to_le_bytes());
                            let owner = foundationdb_tuple::pack(&(slot.clone(), round));
                            txn.set(&owner, &(task as i64).to_le_bytes());
                            Ok(true)
                        }
                    })
                    .await
                    .unwrap();
                if won {
                    wins[round as usize].fetch_add(1, Ordering::SeqCst);
                }
            }));
        }
        for handle in handles {
            handle.await.unwrap();
        }
    }
    for (round, count) in wins.iter().enumerate() {
        assert_eq!(count.load(Ordering::SeqCst), 1, "round {round}");
    }
    let final_value = db
        .run(|txn, _| {
            let slot = slot.clone();
            async move { Ok::<_, KvError>(decode_counter(txn.get(&slot).await?.as_deref())) }
        })
        .await
        .unwrap();
    assert_eq!(final_value, ROUNDS);
}

fn chunk(tp: TopicPartition, epoch: i32, base: i64, count: u32, at: u64) -> ChunkCommit {
    ChunkCommit {
        partition: tp,
        leader_epoch: epoch,
        base_offset: base,
        last_offset: base + i64::from(count) - 1,
        record_count: count,
        max_timestamp: 1_700_000_000_000 + base,
        byte_offset: at,
        byte_length: 100,
    }
}

fn segment(chunks: Vec<ChunkCommit>) -> SegmentCommit {
    let id = SegmentId(RandomIds::new().ulid(1_700_000_000_000));
    SegmentCommit {
        segment_id: id,
        object_key: format!("segments/{id}.seg"),
        object_size: 100 * chunks.len() as u64,
        chunks,
        producers: Vec::new(),
        aborted: Vec::new(),
    }
}

async fn stale_epoch_commits_are_fenced_and_write_nothing(fx: Fixture) {
    let store = fx.store();
    let topic = store
        .create_topic(NewTopic::new("fenced", 2))
        .await
        .unwrap();
    let (p0, p1) = (
        TopicPartition::new(topic.id, 0),
        TopicPartition::new(topic.id, 1),
    );
    let e0 = store.acquire_leadership(p0, 1).await.unwrap().leader_epoch;
    let e1 = store.acquire_leadership(p1, 1).await.unwrap().leader_epoch;
    assert_eq!((e0, e1), (1, 1));
    store
        .commit_segment(&segment(vec![
            chunk(p0, e0, 0, 10, 0),
            chunk(p1, e1, 0, 5, 100),
        ]))
        .await
        .unwrap();

    // Another agent takes p1 over: epoch 2.
    let taken = store.acquire_leadership(p1, 2).await.unwrap();
    assert_eq!((taken.leader, taken.leader_epoch), (Some(2), 2));
    assert_eq!(
        taken.high_watermark, 5,
        "the new leader starts at the committed HWM"
    );

    // The old leader's next flush still carries epoch 1 for p1.
    let stale = segment(vec![chunk(p0, e0, 10, 10, 0), chunk(p1, e1, 5, 5, 100)]);
    let error = store.commit_segment(&stale).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fenced, "{error}");
    assert!(matches!(
        error,
        MetadataError::Fenced { partition, current_epoch: 2, attempted_epoch: 1 } if partition == p1
    ));
    // Nothing of it applied: not p0's chunk either.
    assert_eq!(store.partition_state(p0).await.unwrap().high_watermark, 10);
    assert_eq!(store.partition_state(p1).await.unwrap().high_watermark, 5);
    assert_eq!(store.lookup(p0, 10, 10).await.unwrap().entries, vec![]);
    assert!(
        store
            .segment_record(stale.segment_id)
            .await
            .unwrap()
            .is_none()
    );

    // The remaining chunk can be committed under the same segment id; the new
    // leader commits under its own epoch.
    let rest = SegmentCommit {
        chunks: vec![stale.chunks[0]],
        ..stale.clone()
    };
    store.commit_segment(&rest).await.unwrap();
    store
        .commit_segment(&segment(vec![chunk(p1, 2, 5, 3, 0)]))
        .await
        .unwrap();
    assert_eq!(store.partition_state(p0).await.unwrap().high_watermark, 20);
    assert_eq!(store.partition_state(p1).await.unwrap().high_watermark, 8);
}

/// Commits apply; then the reply is lost (the caller sees "maybe committed").
#[derive(Debug)]
struct LoseCommitReplies {
    inner: Arc<dyn KvBackend>,
    armed: Arc<AtomicBool>,
}

#[derive(Debug)]
struct LossyTransaction {
    inner: Box<dyn KvTransaction>,
    armed: Arc<AtomicBool>,
}

#[async_trait]
impl KvBackend for LoseCommitReplies {
    async fn begin(&self) -> Result<Box<dyn KvTransaction>, KvError> {
        Ok(Box::new(LossyTransaction {
            inner: self.inner.begin().await?,
            armed: self.armed.clone(),
        }))
    }

    fn name(&self) -> &'static str {
        "lossy"
    }
}

#[async_trait]
impl KvTransaction for LossyTransaction {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(key).await
    }
    async fn get_range(
        &self,
        begin: &[u8],
        end: &[u8],
        options: RangeOptions,
    ) -> Result<Vec<KeyValue>, KvError> {
        self.inner.get_range(begin, end, options).await
    }
    fn set(&self, key: &[u8], value: &[u8]) {
        self.inner.set(key, value)
    }
    fn clear(&self, key: &[u8]) {
        self.inner.clear(key)
    }
    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.inner.clear_range(begin, end)
    }
    fn atomic_add(&self, key: &[u8], delta: i64) {
        self.inner.atomic_add(key, delta)
    }
    async fn commit(&self) -> Result<(), KvError> {
        self.inner.commit().await?;
        if self.armed.swap(false, Ordering::SeqCst) {
            return Err(KvError::MaybeCommitted("reply lost (injected)".into()));
        }
        Ok(())
    }
}

async fn segment_commit_retry_after_lost_reply_does_not_double_count(fx: Fixture) {
    let armed = Arc::new(AtomicBool::new(false));
    let lossy: Arc<dyn KvBackend> = Arc::new(LoseCommitReplies {
        inner: fx.backend.clone(),
        armed: armed.clone(),
    });
    let store = fx.store_over(lossy);
    let topic = store.create_topic(NewTopic::new("lossy", 2)).await.unwrap();
    let (p0, p1) = (
        TopicPartition::new(topic.id, 0),
        TopicPartition::new(topic.id, 1),
    );
    let epoch = store.acquire_leadership(p0, 7).await.unwrap().leader_epoch;
    store.acquire_leadership(p1, 7).await.unwrap();
    let commit = segment(vec![
        chunk(p0, epoch, 0, 10, 0),
        chunk(p1, epoch, 0, 4, 100),
    ]);

    armed.store(true, Ordering::SeqCst);
    let outcome = store.commit_segment(&commit).await.unwrap();
    assert!(
        !armed.load(Ordering::SeqCst),
        "the injected loss did not fire"
    );
    assert!(
        outcome.replayed,
        "the retry must find the first attempt's commit"
    );
    assert_eq!(outcome.high_watermarks, vec![(p0, 10), (p1, 4)]);

    // And a second, explicit retry by the caller.
    let again = store.commit_segment(&commit).await.unwrap();
    assert!(again.replayed);

    assert_eq!(store.partition_state(p0).await.unwrap().high_watermark, 10);
    assert_eq!(store.partition_state(p1).await.unwrap().high_watermark, 4);
    assert_eq!(store.lookup(p0, 0, 100).await.unwrap().entries.len(), 1);
    assert_eq!(store.lookup(p1, 0, 100).await.unwrap().entries.len(), 1);
    let record = store
        .segment_record(commit.segment_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(record.live_chunks, 2);
}

/// Segment commits through the fault-injecting decorator: whatever the store does
/// to a commit (applies it and loses the reply, loses it, refuses it, times out),
/// `Database::run` retries it and the segment applies exactly once; a replay is
/// recognised by the segment record.
async fn segment_commits_under_injected_faults_apply_exactly_once(fx: Fixture) {
    let injector = FaultInjector::new(11);
    let store = fx.store_over(injector.wrap(fx.backend.clone()));
    let topic = store
        .create_topic(NewTopic::new("faulty", 1))
        .await
        .unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let epoch = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    let mut base = 0;
    let mut expected_injected = 0;
    const PAUSE: std::time::Duration = std::time::Duration::from_millis(5);
    // (what happens, the faults for it, whether the retry finds a replay)
    type Case = (
        &'static str,
        &'static [(Operation, Fault, Trigger)],
        Option<bool>,
    );
    let cases: [Case; 5] = [
        (
            "applied, reply lost",
            &[(
                Operation::Commit,
                Fault::MaybeCommittedApplied,
                Trigger::Next(1),
            )],
            Some(true),
        ),
        (
            "not applied, outcome unknown",
            &[(
                Operation::Commit,
                Fault::MaybeCommittedNotApplied,
                Trigger::Next(1),
            )],
            Some(false),
        ),
        (
            "begin, read and commit unavailable",
            &[
                (Operation::Begin, Fault::Unavailable, Trigger::Next(1)),
                (Operation::Read, Fault::Unavailable, Trigger::Next(1)),
                (Operation::Commit, Fault::Unavailable, Trigger::Next(2)),
            ],
            Some(false),
        ),
        (
            "slow, then applied and reply lost",
            &[
                (Operation::Commit, Fault::Delay(PAUSE), Trigger::Next(1)),
                (
                    Operation::Commit,
                    Fault::MaybeCommittedApplied,
                    Trigger::Next(1),
                ),
            ],
            Some(true),
        ),
        (
            "timed out, applied or not",
            &[(Operation::Commit, Fault::Timeout(PAUSE), Trigger::Next(1))],
            None,
        ),
    ];
    for (name, faults, replayed) in cases {
        for (operation, fault, trigger) in faults {
            injector.inject(*operation, *fault, *trigger).unwrap();
            expected_injected += match trigger {
                Trigger::Next(n) => u64::from(*n),
                Trigger::Always | Trigger::PerMillion(_) => unreachable!(),
            };
        }
        let commit = segment(vec![chunk(tp, epoch, base, 5, 0)]);
        let outcome = store.commit_segment(&commit).await.unwrap();
        if let Some(replayed) = replayed {
            assert_eq!(outcome.replayed, replayed, "{name}");
        }
        base += 5;
        assert_eq!(outcome.high_watermarks, vec![(tp, base)], "{name}");
        assert_eq!(
            injector.injected(),
            expected_injected,
            "{name}: faults fired"
        );
        // Applied exactly once: the high watermark moved by the chunk, one entry.
        assert_eq!(
            store.partition_state(tp).await.unwrap().high_watermark,
            base,
            "{name}"
        );
        let entries = store.lookup(tp, 0, 100).await.unwrap().entries;
        assert_eq!(entries.len() as i64, base / 5, "{name}: {entries:?}");
        let record = store
            .segment_record(commit.segment_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(record.live_chunks, 1, "{name}");
    }
    let stats = injector.stats();
    assert_eq!(
        stats.open_transactions, 0,
        "every transaction ended: {stats:?}"
    );
    assert!(stats.transactions > 0);
}

/// What the agent's commit path relies on (review H4): when retries run out
/// after an unknown outcome the error says so, never "not committed", and the
/// same commit called again settles it; a chunk of a deleted topic is refused
/// by name, and the rest commits under the same segment id.
async fn segment_commit_errors_tell_the_caller_what_to_do(fx: Fixture) {
    let injector = FaultInjector::new(17);
    let policy = RetryPolicy {
        max_attempts: 3,
        initial_backoff: std::time::Duration::from_micros(100),
        max_backoff: std::time::Duration::from_millis(1),
    };
    let store = MetadataStore::new(
        Database::new(injector.wrap(fx.backend.clone()), policy, 42),
        &fx.cluster,
        Arc::new(ManualClock::new(1_700_000_000_000)),
        Arc::new(RandomIds::new()),
    );
    let topic = store
        .create_topic(NewTopic::new("settled", 1))
        .await
        .unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let epoch = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;

    let mut base = 0;
    for (fault, applied) in [
        (Fault::MaybeCommittedApplied, true),
        (Fault::MaybeCommittedNotApplied, false),
    ] {
        injector
            .inject(Operation::Commit, fault, Trigger::Always)
            .unwrap();
        let commit = segment(vec![chunk(tp, epoch, base, 4, 0)]);
        let error = store.commit_segment(&commit).await.unwrap_err();
        assert_eq!(
            error.kind(),
            ErrorKind::MaybeCommitted,
            "{fault:?}: {error}"
        );
        assert!(!error.is_certainly_not_committed());
        injector.clear();
        let settled = store.commit_segment(&commit).await.unwrap();
        assert_eq!(settled.replayed, applied, "{fault:?}");
        base += 4;
        assert_eq!(
            store.partition_state(tp).await.unwrap().high_watermark,
            base
        );
    }

    // A topic deleted while a flush was in flight.
    let other = store
        .create_topic(NewTopic::new("doomed", 1))
        .await
        .unwrap();
    let doomed = TopicPartition::new(other.id, 0);
    let doomed_epoch = store
        .acquire_leadership(doomed, 1)
        .await
        .unwrap()
        .leader_epoch;
    store.delete_topic("doomed").await.unwrap();
    let both = segment(vec![
        chunk(tp, epoch, base, 2, 0),
        chunk(doomed, doomed_epoch, 0, 2, 100),
    ]);
    let error = store.commit_segment(&both).await.unwrap_err();
    assert!(
        matches!(error, MetadataError::UnknownPartition { partition } if partition == doomed),
        "{error}"
    );
    assert!(error.is_certainly_not_committed());
    assert_eq!(
        store.partition_state(tp).await.unwrap().high_watermark,
        base
    );
    let rest = SegmentCommit {
        chunks: vec![both.chunks[0]],
        ..both.clone()
    };
    assert!(!store.commit_segment(&rest).await.unwrap().replayed);
    assert_eq!(
        store.partition_state(tp).await.unwrap().high_watermark,
        base + 2
    );
}

async fn segment_commits_keep_offsets_contiguous(fx: Fixture) {
    let store = fx.store();
    let topic = store
        .create_topic(NewTopic::new("contiguous", 1))
        .await
        .unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let epoch = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    let mut base = 0;
    for count in [3u32, 1, 7, 5, 2] {
        store
            .commit_segment(&segment(vec![chunk(tp, epoch, base, count, 0)]))
            .await
            .unwrap();
        base += i64::from(count);
    }
    // A gap and an overlap are both refused, writing nothing.
    for bad_base in [base + 1, base - 1] {
        let error = store
            .commit_segment(&segment(vec![chunk(tp, epoch, bad_base, 1, 0)]))
            .await
            .unwrap_err();
        assert!(
            matches!(error, MetadataError::OffsetMismatch { .. }),
            "{error}"
        );
    }
    assert_eq!(
        store.partition_state(tp).await.unwrap().high_watermark,
        base
    );
    // Every offset maps to the entry that covers it.
    for offset in 0..base {
        let lookup = store.lookup(tp, offset, 1).await.unwrap();
        let entry = &lookup.entries[0];
        assert!(
            entry.base_offset <= offset && offset <= entry.last_offset,
            "offset {offset} -> {entry:?}"
        );
    }
    let all = store.lookup(tp, 0, 100).await.unwrap().entries;
    assert_eq!(all.len(), 5);
    assert!(
        all.windows(2)
            .all(|w| w[0].last_offset + 1 == w[1].base_offset)
    );
    assert!(store.lookup(tp, base, 10).await.unwrap().entries.is_empty());
    // Malformed commits are invalid, not partially applied.
    let error = store
        .commit_segment(&segment(vec![
            chunk(tp, epoch, base, 1, 0),
            chunk(tp, epoch, base, 1, 0),
        ]))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid);
}

/// What the time index must answer, worked out from the chunks' timestamps by
/// brute force: the first chunk whose largest timestamp reaches `timestamp`.
fn first_reaching(maxima: &[(i64, i64, i64)], timestamp: i64) -> Option<(i64, i64)> {
    maxima
        .iter()
        .find(|(_, _, max)| *max >= timestamp)
        .map(|(base, last, _)| (*base, *last))
}

/// `ListOffsets` by timestamp over a long log (past the 100k index entries the
/// agent used to scan, on the memory backend) whose timestamps go down and up
/// again: the lookup names exactly the first chunk reaching the timestamp, the
/// largest timestamp and its first chunk, before and after the log start moves.
async fn timestamp_lookups_are_exact_on_long_logs(fx: Fixture) {
    let entries = fx.bulk_entries;
    let store = fx.store();
    let topic = store.create_topic(NewTopic::new("timed", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let epoch = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    let empty = store.lookup_by_timestamp(tp, 0, 10).await.unwrap();
    assert!(empty.entries.is_empty() && !empty.clamped);
    assert_eq!(store.max_timestamp(tp).await.unwrap().max, None);

    // A clock that mostly moves forward with jitter, with dips far back (a
    // producer with a wrong clock) and two spikes: the log's largest timestamp
    // three quarters in, a smaller one early on.
    let rng = SeededRng::new(0x7135);
    let start = 1_700_000_000_000i64;
    let (early_spike, late_spike) = (entries / 10, entries * 3 / 4);
    let mut maxima = Vec::with_capacity(entries); // (base, last, max timestamp)
    let mut base = 0i64;
    for i in 0..entries {
        let count = 1 + (i % 3) as u32;
        let jitter = rng.below(20_001) as i64 - 10_000;
        let mut max_timestamp = start + i as i64 * 10 + jitter;
        if i % 97 == 0 {
            max_timestamp -= 5_000_000;
        }
        if i == early_spike {
            max_timestamp = start + entries as i64 * 10 + 1_000_000;
        }
        if i == late_spike {
            max_timestamp = start + entries as i64 * 10 + 2_000_000;
        }
        let mut chunk = chunk(tp, epoch, base, count, 0);
        chunk.max_timestamp = max_timestamp;
        store.commit_segment(&segment(vec![chunk])).await.unwrap();
        maxima.push((base, chunk.last_offset, max_timestamp));
        base += i64::from(count);
    }
    let high_watermark = base;

    // Timestamps to ask for: every kind of chunk's own maximum, one above and
    // below it, and values outside the log's range.
    let mut queries = vec![i64::MIN, 0, start - 10_000_000, i64::MAX];
    for _ in 0..150 {
        let (_, _, max) = maxima[rng.below(entries as u64) as usize];
        queries.extend([max - 1, max, max + 1]);
    }
    for at in [0, 1, early_spike, early_spike + 1, late_spike, entries - 1] {
        queries.extend([maxima[at].2, maxima[at].2 + 1]);
    }
    let check = |log_start: i64| {
        let (store, maxima, queries) = (store.clone(), maxima.clone(), queries.clone());
        async move {
            let covering_log_start = maxima
                .iter()
                .find(|(_, last, _)| *last >= log_start)
                .map(|(_, last, _)| *last);
            let (mut exact, mut clamped) = (0, 0);
            for &timestamp in &queries {
                let lookup = store.lookup_by_timestamp(tp, timestamp, 2).await.unwrap();
                if lookup.clamped {
                    clamped += 1;
                } else if !lookup.entries.is_empty() {
                    exact += 1;
                }
                let first = lookup.entries.first().map(|entry| entry.last_offset);
                match first_reaching(&maxima, timestamp) {
                    None => assert!(
                        lookup.entries.is_empty() && !lookup.clamped,
                        "{timestamp}: no chunk reaches it, got {lookup:?}"
                    ),
                    Some((base, last)) if base >= log_start => {
                        assert_eq!((first, lookup.clamped), (Some(last), false), "{timestamp}");
                        assert!(lookup.entries[0].max_timestamp >= timestamp);
                    }
                    Some(_) => assert_eq!(
                        (first, lookup.clamped),
                        (covering_log_start, true),
                        "{timestamp}: first reached below the log start {log_start}"
                    ),
                }
                assert!(lookup.entries.len() <= 2);
                assert_eq!(lookup.state.log_start_offset, log_start);
            }
            // The largest timestamp and the first chunk holding it.
            let largest = maxima.iter().map(|(_, _, max)| *max).max().unwrap();
            let (base, last) = first_reaching(&maxima, largest).unwrap();
            let max = store.max_timestamp(tp).await.unwrap();
            if base >= log_start {
                let found = max.max.unwrap();
                assert_eq!((found.timestamp, found.entry.last_offset), (largest, last));
                assert!(!max.below_log_start);
            } else {
                assert_eq!((max.max, max.below_log_start), (None, true));
            }
            (exact, clamped)
        }
    };
    let (_, clamped) = check(0).await;
    assert_eq!(clamped, 0, "nothing is clamped before the log start moves");
    assert_eq!(
        store.partition_state(tp).await.unwrap().max_timestamp,
        Some(maxima[late_spike].2)
    );

    // The log start moves into the middle of a chunk between the spikes, then
    // past the largest timestamp.
    let middle = maxima[(entries / 2..).find(|i| i % 3 == 1).unwrap()];
    assert!(middle.1 > middle.0, "the log start must cut a chunk");
    assert_eq!(
        store.delete_records(tp, middle.0 + 1).await.unwrap(),
        middle.0 + 1
    );
    let (exact, clamped) = check(middle.0 + 1).await;
    assert!(exact > 0 && clamped > 0, "{exact} exact, {clamped} clamped");
    let past_spike = maxima[late_spike + 1].0;
    assert_eq!(
        store.delete_records(tp, past_spike).await.unwrap(),
        past_spike
    );
    check(past_spike).await;

    // Everything deleted: nothing readable reaches any timestamp.
    store.delete_records(tp, high_watermark).await.unwrap();
    let lookup = store.lookup_by_timestamp(tp, i64::MIN, 5).await.unwrap();
    assert!(lookup.entries.is_empty(), "{lookup:?}");
}

/// The time index goes with its topic; a topic created again under the name
/// starts with an empty one.
async fn time_indexes_are_deleted_with_their_topic(fx: Fixture) {
    let store = fx.store();
    let topic = store.create_topic(NewTopic::new("brief", 2)).await.unwrap();
    for partition in 0..2 {
        let tp = TopicPartition::new(topic.id, partition);
        let epoch = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
        store
            .commit_segment(&segment(vec![chunk(tp, epoch, 0, 3, 0)]))
            .await
            .unwrap();
    }
    let tp = TopicPartition::new(topic.id, 1);
    assert_eq!(
        store
            .lookup_by_timestamp(tp, 0, 1)
            .await
            .unwrap()
            .entries
            .len(),
        1
    );
    store.delete_topic("brief").await.unwrap();
    let db = fx.db();
    let keys = store.keyspace().clone();
    let left = db
        .run(|txn, _| {
            let prefix = keys.time_index_of_topic(topic.id);
            async move { txn.get_prefix(&prefix, RangeOptions::default()).await }
        })
        .await
        .unwrap();
    assert_eq!(left, vec![], "time-index points outlived their topic");
    assert_eq!(
        store
            .lookup_by_timestamp(tp, 0, 1)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

/// Index entries of `tp` left: (base, last) of each.
async fn entries(store: &MetadataStore, tp: TopicPartition) -> Vec<(i64, i64)> {
    store
        .lookup(tp, 0, 10_000)
        .await
        .unwrap()
        .entries
        .iter()
        .map(|e| (e.base_offset, e.last_offset))
        .collect()
}

/// A chunk of 10 records at `base` whose largest timestamp is `ts`.
fn timed(tp: TopicPartition, epoch: i32, base: i64, ts: i64) -> ChunkCommit {
    ChunkCommit {
        max_timestamp: ts,
        ..chunk(tp, epoch, base, 10, 0)
    }
}

/// Retention by time removes only an expired prefix: the first entry not
/// expired (a future timestamp among them) holds back the rest; releasing
/// drops the entries below the log start and makes an object garbage only
/// when its last entry goes.
async fn retention_removes_an_expired_prefix_and_frees_objects_with_their_last_entry(fx: Fixture) {
    let store = fx.store();
    let topic = store.create_topic(NewTopic::new("kept", 2)).await.unwrap();
    let (p0, p1) = (
        TopicPartition::new(topic.id, 0),
        TopicPartition::new(topic.id, 1),
    );
    let e0 = store.acquire_leadership(p0, 1).await.unwrap().leader_epoch;
    let e1 = store.acquire_leadership(p1, 1).await.unwrap().leader_epoch;
    let now = 1_000_000;
    // Segment A: p0 0..9 (old) and p1 0..9 (old). Segment B: p0 10..19 (old).
    // Segment C: p0 20..29 (in the future), p0 30..39 (old again).
    let a = segment(vec![timed(p0, e0, 0, 10), timed(p1, e1, 0, 10)]);
    let b = segment(vec![timed(p0, e0, 10, 20)]);
    let c = segment(vec![timed(p0, e0, 20, now + 3_600_000)]);
    let d = segment(vec![timed(p0, e0, 30, 30)]);
    for commit in [&a, &b, &c, &d] {
        store.commit_segment(commit).await.unwrap();
    }
    let limits = RetentionLimits {
        max_age_ms: Some(60_000),
        max_bytes: None,
    };
    let outcome = store.apply_retention(p0, limits, now).await.unwrap();
    assert_eq!((outcome.log_start_offset, outcome.moved), (20, true));
    // Nothing released yet: reads below the log start are refused by bounds.
    assert_eq!(
        entries(&store, p0).await.len(),
        2,
        "lookup starts at the log start"
    );
    let released = store.release_prefix(p0, 1, now).await.unwrap();
    assert_eq!(
        (released.entries, released.objects, released.more),
        (1, 0, true)
    );
    let released = store.release_prefix(p0, 100, now).await.unwrap();
    // Segment B had one chunk: garbage. Segment A still holds p1's chunk.
    assert_eq!(
        (released.entries, released.objects, released.more),
        (1, 1, false)
    );
    let garbage = store.garbage_objects(10).await.unwrap();
    assert_eq!(
        garbage
            .iter()
            .map(|g| g.object_key.clone())
            .collect::<Vec<_>>(),
        vec![b.object_key.clone()]
    );
    assert_eq!(garbage[0].freed_at_ms, now);
    assert!(store.segment_record(b.segment_id).await.unwrap().is_none());
    assert_eq!(
        store
            .segment_record(a.segment_id)
            .await
            .unwrap()
            .unwrap()
            .live_chunks,
        1
    );
    // Again: nothing more expires (the future timestamp holds it back).
    let outcome = store.apply_retention(p0, limits, now).await.unwrap();
    assert_eq!((outcome.log_start_offset, outcome.moved), (20, false));
    // p1 expires too; its entry was segment A's last reference.
    assert!(store.apply_retention(p1, limits, now).await.unwrap().moved);
    let released = store.release_prefix(p1, 100, now).await.unwrap();
    assert_eq!((released.entries, released.objects), (1, 1));
    assert_eq!(store.garbage_objects(10).await.unwrap().len(), 2);
    // Forgotten once deleted.
    store.forget_garbage(b.segment_id).await.unwrap();
    let left: Vec<String> = store
        .garbage_objects(10)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.object_key)
        .collect();
    assert_eq!(left, vec![a.object_key.clone()]);
    // The high watermark bounds the log start; no limit moves nothing.
    let state = store.partition_state(p1).await.unwrap();
    assert_eq!((state.log_start_offset, state.high_watermark), (10, 10));
    let none = RetentionLimits::default();
    assert!(!store.apply_retention(p0, none, now).await.unwrap().moved);
}

/// Retention by size keeps the partition at or above the limit: the oldest
/// entry goes only while what remains still reaches it.
async fn retention_by_bytes_keeps_at_least_the_limit(fx: Fixture) {
    let store = fx.store();
    let topic = store.create_topic(NewTopic::new("sized", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let epoch = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    // Five entries of 100 bytes each.
    for base in (0..50).step_by(10) {
        store
            .commit_segment(&segment(vec![chunk(tp, epoch, base, 10, 0)]))
            .await
            .unwrap();
    }
    let limits = |bytes| RetentionLimits {
        max_age_ms: None,
        max_bytes: Some(bytes),
    };
    // 250 bytes: the newest three (300) reach it, the newest two do not.
    let outcome = store.apply_retention(tp, limits(250), 0).await.unwrap();
    assert_eq!(outcome.log_start_offset, 20);
    store.release_prefix(tp, 100, 0).await.unwrap();
    assert_eq!(
        entries(&store, tp).await,
        vec![(20, 29), (30, 39), (40, 49)]
    );
    // Exactly 200: two entries stay.
    assert_eq!(
        store
            .apply_retention(tp, limits(200), 0)
            .await
            .unwrap()
            .log_start_offset,
        30
    );
    // More than everything: nothing moves.
    assert!(
        !store
            .apply_retention(tp, limits(10_000), 0)
            .await
            .unwrap()
            .moved
    );
}

/// DeleteRecords moves the log start; releasing then frees the entries below
/// it. A deleted topic's entries are released and its record forgotten.
async fn delete_records_and_deleted_topics_free_their_entries(fx: Fixture) {
    let store = fx.store();
    let topic = store.create_topic(NewTopic::new("gone", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let epoch = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    let commits: Vec<SegmentCommit> = (0..4)
        .map(|i| segment(vec![chunk(tp, epoch, i * 10, 10, 0)]))
        .collect();
    for commit in &commits {
        store.commit_segment(commit).await.unwrap();
    }
    store.delete_records(tp, 25).await.unwrap();
    let released = store.release_prefix(tp, 100, 7).await.unwrap();
    // 0..9 and 10..19 lie wholly below 25; 20..29 does not.
    assert_eq!((released.entries, released.objects), (2, 2));
    store.delete_topic("gone").await.unwrap();
    assert_eq!(store.deleted_topics().await.unwrap().len(), 1);
    let released = store.release_deleted_topic(topic.id, 1, 8).await.unwrap();
    assert_eq!((released.entries, released.more), (1, true));
    let released = store.release_deleted_topic(topic.id, 100, 8).await.unwrap();
    assert_eq!((released.entries, released.more), (1, false));
    assert!(store.deleted_topics().await.unwrap().is_empty());
    let mut garbage: Vec<String> = store
        .garbage_objects(100)
        .await
        .unwrap()
        .into_iter()
        .map(|g| g.object_key)
        .collect();
    garbage.sort();
    let mut expected: Vec<String> = commits.iter().map(|c| c.object_key.clone()).collect();
    expected.sort();
    assert_eq!(garbage, expected, "every object of the topic is garbage");
    // Garbage and committed segments are known; an id nobody wrote is not.
    let stranger = SegmentId(RandomIds::new().ulid(1_700_000_000_000));
    let mut asked: Vec<SegmentId> = commits.iter().map(|c| c.segment_id).collect();
    asked.push(stranger);
    assert_eq!(
        store.unknown_segments(&asked).await.unwrap(),
        vec![stranger]
    );
}

/// A compaction output: its id (born at `born_ms`), key and size.
fn output(born_ms: i64) -> (SegmentId, String, u64) {
    let id = SegmentId(RandomIds::new().ulid(born_ms));
    (id, format!("segments/{id}.seg"), 10_000)
}

/// An entry of `output` for `base..=last`.
fn output_entry(
    output: &(SegmentId, String, u64),
    base: i64,
    last: i64,
    records: u32,
    epoch: i32,
) -> IndexEntry {
    IndexEntry {
        base_offset: base,
        last_offset: last,
        record_count: records,
        max_timestamp: 1_700_000_000_000 + last,
        leader_epoch: epoch,
        segment_id: output.0,
        object_key: output.1.clone(),
        byte_offset: 8,
        byte_length: 100,
        object_size: output.2,
    }
}

/// What a compactor read of `commit`'s chunk of `tp`.
fn input_of(commit: &SegmentCommit, tp: TopicPartition) -> CompactedInput {
    let chunk = commit
        .chunks
        .iter()
        .find(|c| c.partition == tp)
        .expect("a chunk of the partition");
    CompactedInput {
        last_offset: chunk.last_offset,
        segment_id: commit.segment_id,
        byte_offset: chunk.byte_offset,
    }
}

/// A compaction swap replaces a partition's entries only while they are the
/// ones the compactor read, keeps offsets, records and epochs, frees old
/// objects with their last reference, and applies once.
async fn compaction_swaps_entries_only_where_they_did_not_change(fx: Fixture) {
    let store = fx.store();
    let topic = store
        .create_topic(NewTopic::new("merged", 3))
        .await
        .unwrap();
    let [p0, p1, p2] = [0, 1, 2].map(|p| TopicPartition::new(topic.id, p));
    let mut epochs = Vec::new();
    for tp in [p0, p1, p2] {
        epochs.push(store.acquire_leadership(tp, 1).await.unwrap().leader_epoch);
    }
    let (e0, e1, e2) = (epochs[0], epochs[1], epochs[2]);
    // A: p0 0..9, p1 0..9, p2 0..9. B: p0 10..19, p1 10..19.
    let a = segment(vec![
        chunk(p0, e0, 0, 10, 0),
        chunk(p1, e1, 0, 10, 100),
        chunk(p2, e2, 0, 10, 200),
    ]);
    let b = segment(vec![chunk(p0, e0, 10, 10, 0), chunk(p1, e1, 10, 10, 100)]);
    for commit in [&a, &b] {
        store.commit_segment(commit).await.unwrap();
    }
    let now: i64 = 1_700_000_100_000;
    let out = output(now);
    let swap = CompactionSwap {
        segment_id: out.0,
        object_key: out.1.clone(),
        object_size: out.2,
        partitions: vec![
            PartitionSwap {
                partition: p0,
                inputs: vec![input_of(&a, p0), input_of(&b, p0)],
                outputs: vec![output_entry(&out, 0, 19, 20, e0)],
            },
            PartitionSwap {
                partition: p1,
                inputs: vec![input_of(&a, p1), input_of(&b, p1)],
                outputs: vec![output_entry(&out, 0, 19, 20, e1)],
            },
            PartitionSwap {
                partition: p2,
                inputs: vec![input_of(&a, p2)],
                outputs: vec![output_entry(&out, 0, 9, 10, e2)],
            },
        ],
    };
    // Not registered: refused, nothing written.
    let error = store.swap_compacted(&swap, now).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid, "{error}");
    store
        .register_compaction_output(out.0, &out.1, now)
        .await
        .unwrap();
    // Registered outputs are known to metadata: the orphan sweep keeps them.
    assert!(store.unknown_segments(&[out.0]).await.unwrap().is_empty());
    // Meanwhile p1 loses its first entry to DeleteRecords.
    store.delete_records(p1, 10).await.unwrap();
    store.release_prefix(p1, 100, now).await.unwrap();

    let outcome = store.swap_compacted(&swap, now).await.unwrap();
    assert_eq!(outcome.swapped, vec![p0, p2]);
    assert_eq!(outcome.skipped, vec![p1]);
    assert_eq!((outcome.entries_removed, outcome.entries_written), (3, 2));
    // A lost p0 and p2 to the swap and p1 to DeleteRecords: garbage.
    assert_eq!(outcome.objects_freed, 1);
    assert!(!outcome.output_unused && !outcome.replayed);
    assert_eq!(entries(&store, p0).await, vec![(0, 19)]);
    assert_eq!(entries(&store, p1).await, vec![(10, 19)]);
    assert_eq!(entries(&store, p2).await, vec![(0, 9)]);
    let looked = store.lookup(p0, 5, 10).await.unwrap();
    assert_eq!(looked.entries[0].segment_id, out.0);
    assert_eq!(looked.state.high_watermark, 20, "offsets untouched");
    assert_eq!(looked.state.log_start_offset, 0);
    let record = |id| {
        let store = store.clone();
        async move { store.segment_record(id).await.unwrap() }
    };
    assert!(record(a.segment_id).await.is_none());
    assert_eq!(record(b.segment_id).await.unwrap().live_chunks, 1);
    assert_eq!(record(out.0).await.unwrap().live_chunks, 2);
    let garbage: Vec<SegmentId> = store
        .garbage_objects(10)
        .await
        .unwrap()
        .iter()
        .map(|g| g.segment_id)
        .collect();
    assert_eq!(garbage, vec![a.segment_id]);
    assert!(store.compaction_outputs().await.unwrap().is_empty());
    // A retry after a lost reply changes nothing.
    let again = store.swap_compacted(&swap, now).await.unwrap();
    assert!(again.replayed);
    assert_eq!(entries(&store, p0).await, vec![(0, 19)]);
    assert_eq!(record(out.0).await.unwrap().live_chunks, 2);

    // Retention later frees the output like any object.
    store.delete_records(p0, 20).await.unwrap();
    store.delete_records(p2, 10).await.unwrap();
    for tp in [p0, p2] {
        store.release_prefix(tp, 100, now).await.unwrap();
    }
    assert!(record(out.0).await.is_none());
    assert!(
        store
            .garbage_objects(10)
            .await
            .unwrap()
            .iter()
            .any(|g| g.segment_id == out.0)
    );
}

/// A swap whose new entries would change what a partition holds is refused
/// whole; an output nobody swapped in becomes garbage once it is too old to
/// be swapped, and such an output is refused.
async fn compaction_swaps_that_would_change_a_log_are_refused(fx: Fixture) {
    let store = fx.store();
    let topic = store
        .create_topic(NewTopic::new("strict", 1))
        .await
        .unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let e1 = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    let a = segment(vec![chunk(tp, e1, 0, 10, 0)]);
    store.commit_segment(&a).await.unwrap();
    let e2 = store.acquire_leadership(tp, 2).await.unwrap().leader_epoch;
    let b = segment(vec![chunk(tp, e2, 10, 10, 0)]);
    store.commit_segment(&b).await.unwrap();
    let now: i64 = 1_700_000_100_000;
    let out = output(now);
    store
        .register_compaction_output(out.0, &out.1, now)
        .await
        .unwrap();
    let inputs = vec![input_of(&a, tp), input_of(&b, tp)];
    let swap_with = |outputs: Vec<IndexEntry>| CompactionSwap {
        segment_id: out.0,
        object_key: out.1.clone(),
        object_size: out.2,
        partitions: vec![PartitionSwap {
            partition: tp,
            inputs: inputs.clone(),
            outputs,
        }],
    };
    let refused = [
        // Two epochs in one entry.
        vec![output_entry(&out, 0, 19, 20, e2)],
        // A record lost.
        vec![
            output_entry(&out, 0, 9, 9, e1),
            output_entry(&out, 10, 19, 10, e2),
        ],
        // Offsets not covered.
        vec![
            output_entry(&out, 0, 9, 10, e1),
            output_entry(&out, 11, 19, 10, e2),
        ],
        // Offsets beyond the inputs.
        vec![
            output_entry(&out, 0, 9, 10, e1),
            output_entry(&out, 10, 20, 10, e2),
        ],
    ];
    for outputs in refused {
        let error = store
            .swap_compacted(&swap_with(outputs.clone()), now)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid, "{outputs:?}: {error}");
        assert_eq!(entries(&store, tp).await, vec![(0, 9), (10, 19)]);
    }
    // Epoch by epoch it is accepted.
    let fine = swap_with(vec![
        output_entry(&out, 0, 9, 10, e1),
        output_entry(&out, 10, 19, 10, e2),
    ]);
    // Too old to swap in.
    let too_late = now + MAX_COMMIT_AGE_MS + 1;
    let error = store.swap_compacted(&fine, too_late).await.unwrap_err();
    assert!(
        matches!(error, MetadataError::SegmentTooOld { .. }),
        "{error}"
    );
    // And the registration expires to garbage only past that age.
    assert_eq!(
        store
            .expire_compaction_outputs(now + 1_000, MAX_COMMIT_AGE_MS, 10)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .expire_compaction_outputs(too_late, MAX_COMMIT_AGE_MS, 10)
            .await
            .unwrap(),
        1
    );
    assert!(store.compaction_outputs().await.unwrap().is_empty());
    let garbage = store.garbage_objects(10).await.unwrap();
    assert_eq!(garbage.len(), 1);
    assert_eq!(
        (garbage[0].segment_id, garbage[0].object_key.as_str()),
        (out.0, out.1.as_str())
    );
    // Its swap can no longer apply.
    let error = store.swap_compacted(&fine, now).await;
    assert!(
        matches!(error, Ok(SwapOutcome { replayed: true, .. })),
        "{error:?}"
    );
    assert_eq!(entries(&store, tp).await, vec![(0, 9), (10, 19)]);
    // Segment records are listed oldest first.
    let listed: Vec<SegmentId> = store
        .segment_records(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut expected = vec![a.segment_id, b.segment_id];
    expected.sort();
    assert_eq!(listed, expected);
    let after_first = store.segment_records(Some(expected[0]), 10).await.unwrap();
    assert_eq!(after_first.len(), 1);
}

/// A swap keeps one time-index point per new entry, and every timestamp
/// search lands where it did (in the entry that now holds the record).
async fn compaction_keeps_timestamp_searches_exact(fx: Fixture) {
    let store = fx.store();
    let topic = store.create_topic(NewTopic::new("timed", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let epoch = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    // Chunks of ten records whose largest timestamps are 10, 50, 30, 60, 70:
    // every one but the third raises the running maximum.
    let commits: Vec<SegmentCommit> = [10, 50, 30, 60, 70]
        .iter()
        .enumerate()
        .map(|(i, ts)| segment(vec![timed(tp, epoch, i as i64 * 10, *ts)]))
        .collect();
    for commit in &commits {
        store.commit_segment(commit).await.unwrap();
    }
    // Where each search starts, as (first entry's base, last).
    let searches = [5, 10, 11, 40, 50, 55, 60, 65, 70];
    let start = |ts: i64| {
        let store = store.clone();
        async move {
            let lookup = store.lookup_by_timestamp(tp, ts, 1).await.unwrap();
            lookup
                .entries
                .first()
                .map(|e| (e.base_offset, e.last_offset))
        }
    };
    let mut before = Vec::new();
    for ts in searches {
        before.push(start(ts).await);
    }
    // The first four chunks become one entry.
    let now: i64 = 1_700_000_100_000;
    let out = output(now);
    store
        .register_compaction_output(out.0, &out.1, now)
        .await
        .unwrap();
    let mut merged = output_entry(&out, 0, 39, 40, epoch);
    merged.max_timestamp = 60;
    let swap = CompactionSwap {
        segment_id: out.0,
        object_key: out.1.clone(),
        object_size: out.2,
        partitions: vec![PartitionSwap {
            partition: tp,
            inputs: commits[..4].iter().map(|c| input_of(c, tp)).collect(),
            outputs: vec![merged],
        }],
    };
    let outcome = store.swap_compacted(&swap, now).await.unwrap();
    // Points 10, 50 and 60 lay in the merged chunks: 60 stays.
    assert_eq!(outcome.time_points_removed, 2);
    for (ts, was) in searches.into_iter().zip(before) {
        let now_starts = start(ts).await;
        // Searches that started in one of the merged chunks start in the
        // merged entry; the others where they did.
        let expected = match was {
            Some((base, _)) if base < 40 => Some((0, 39)),
            other => other,
        };
        assert_eq!(now_starts, expected, "timestamp {ts}");
    }
    let max = store.max_timestamp(tp).await.unwrap().max.unwrap();
    assert_eq!((max.timestamp, max.entry.base_offset), (70, 40));
}

async fn topics_are_created_listed_altered_and_deleted(fx: Fixture) {
    let store = fx.store();
    let orders = store
        .create_topic(NewTopic::new("orders", 3))
        .await
        .unwrap();
    let error = store
        .create_topic(NewTopic::new("orders", 1))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::AlreadyExists);
    for bad in ["", ".", "..", "has space", "slash/no", &"x".repeat(250)] {
        let error = store.create_topic(NewTopic::new(bad, 1)).await.unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid, "{bad:?}");
    }
    assert_eq!(
        store
            .create_topic(NewTopic::new("zero", 0))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Invalid
    );
    let mut spec = NewTopic::new("events", 1);
    spec.configs.insert("retention.ms".into(), "-1".into());
    store.create_topic(spec).await.unwrap();

    let names: BTreeSet<String> = store
        .list_topics()
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["events".to_string(), "orders".to_string()])
    );
    assert_eq!(store.describe_topic("orders").await.unwrap(), orders);
    assert_eq!(store.topic_by_id(orders.id).await.unwrap(), orders);

    let grown = store.create_partitions("orders", 5).await.unwrap();
    assert_eq!(grown.partition_count, 5);
    assert_eq!(store.partition_states(orders.id).await.unwrap().len(), 5);
    assert_eq!(
        store
            .create_partitions("orders", 2)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::Invalid
    );
    let altered = store
        .update_topic_configs(
            "events",
            &[
                ("retention.ms".into(), None),
                ("cleanup.policy".into(), Some("compact".into())),
            ],
        )
        .await
        .unwrap();
    assert_eq!(altered.configs.len(), 1);
    assert_eq!(altered.configs["cleanup.policy"], "compact");

    store.delete_topic("orders").await.unwrap();
    assert_eq!(
        store.describe_topic("orders").await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        store
            .partition_state(TopicPartition::new(orders.id, 0))
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    let again = store
        .create_topic(NewTopic::new("orders", 1))
        .await
        .unwrap();
    assert_ne!(again.id, orders.id, "a recreated topic gets a new id");
}

async fn agents_register_heartbeat_and_leave(fx: Fixture) {
    let store = fx.store();
    let a = store
        .register_agent(
            Uuid::from_u128(1),
            "127.0.0.1:9092",
            Some("127.0.0.1:8080"),
            AgentRoles::ALL,
        )
        .await
        .unwrap();
    let jobs_only = AgentRoles {
        serve: false,
        jobs: true,
    };
    let b = store
        .register_agent(Uuid::from_u128(2), "127.0.0.1:9093", None, jobs_only)
        .await
        .unwrap();
    assert_ne!(a.node_id, b.node_id);
    assert_eq!(store.heartbeat(a.node_id).await.unwrap(), 1);
    assert_eq!(store.heartbeat(a.node_id).await.unwrap(), 2);
    let agents = store.list_agents().await.unwrap();
    assert_eq!(agents.len(), 2);
    assert_eq!(agents[0].heartbeat, 2);
    assert_eq!(agents[1].advertised_address, "127.0.0.1:9093");
    assert_eq!(
        (
            agents[0].gateway_address.as_deref(),
            agents[1].gateway_address.as_deref()
        ),
        (Some("127.0.0.1:8080"), None)
    );
    assert_eq!(
        (agents[0].roles, agents[1].roles),
        (AgentRoles::ALL, jobs_only)
    );
    // A restart may change an agent's roles.
    let again = store
        .reregister_agent(
            b.node_id,
            Uuid::from_u128(3),
            "127.0.0.1:9094",
            Some("127.0.0.1:8081"),
            AgentRoles::ALL,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.node_id, again.roles), (b.node_id, AgentRoles::ALL));
    assert_eq!(again.gateway_address.as_deref(), Some("127.0.0.1:8081"));
    store.deregister_agent(a.node_id).await.unwrap();
    assert_eq!(
        store.heartbeat(a.node_id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// Takes the coordinator shard of `group` for agent `node_id`.
async fn take_shard(store: &MetadataStore, group: &str, node_id: i32) -> ShardFence {
    store
        .acquire_coordinator_shard(coordinator_shard_of(group), node_id)
        .await
        .unwrap()
}

fn offset(topic: &str, partition: i32, offset: i64) -> OffsetCommit {
    OffsetCommit {
        topic: topic.into(),
        partition,
        offset,
        leader_epoch: Some(1),
        metadata: None,
    }
}

async fn group_offsets_and_producer_ids(fx: Fixture) {
    let store = fx.store();
    let g1 = take_shard(&store, "g1", 1).await;
    let g2 = take_shard(&store, "g2", 1).await;
    store
        .commit_offsets(
            g1,
            "g1",
            None,
            &[offset("a", 0, 5), offset("a", 1, 7), offset("b", 0, 1)],
        )
        .await
        .unwrap();
    store
        .commit_offsets(g1, "g1", None, &[offset("a", 0, 9)])
        .await
        .unwrap();
    store
        .commit_offsets(g2, "g2", None, &[offset("a", 0, 100)])
        .await
        .unwrap();
    let g1_offsets: Vec<(String, i32, i64)> = store
        .fetch_offsets("g1")
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.topic, o.partition, o.committed.offset))
        .collect();
    assert_eq!(
        g1_offsets,
        vec![("a".into(), 0, 9), ("a".into(), 1, 7), ("b".into(), 0, 1)]
    );
    assert_eq!(store.fetch_offsets("g2").await.unwrap().len(), 1);
    assert!(store.fetch_offsets("nobody").await.unwrap().is_empty());

    let cluster_id = store.cluster_id().await.unwrap();
    assert_eq!(
        store.cluster_id().await.unwrap(),
        cluster_id,
        "the cluster id is stable"
    );

    let mut handles = Vec::new();
    for _ in 0..4 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for _ in 0..20 {
                ids.push(store.allocate_producer_id().await.unwrap());
            }
            ids
        }));
    }
    let mut all = BTreeSet::new();
    for handle in handles {
        for id in handle.await.unwrap() {
            assert!(all.insert(id), "producer id {id} handed out twice");
        }
    }
    assert_eq!(all.len(), 80);
}

fn producer(
    tp: TopicPartition,
    producer_id: i64,
    epoch: i16,
    base: i64,
    count: i32,
) -> ProducerCommit {
    ProducerCommit {
        partition: tp,
        producer_id,
        state: ProducerState {
            producer_epoch: epoch,
            batches: vec![ProducerBatch {
                first_sequence: 0,
                last_sequence: count - 1,
                base_offset: base,
                last_offset: base + i64::from(count) - 1,
            }],
            last_timestamp: 1_700_000_000_000,
            txn_first_offset: None,
        },
    }
}

async fn transaction_outcomes_commit_with_their_offsets(fx: Fixture) {
    let store = fx.store();
    let txn_fence = take_shard(&store, "txn-a", 1).await;
    let group_fence = take_shard(&store, "g-txn", 1).await;
    let record = TransactionRecord {
        transactional_id: "txn-a".into(),
        producer_id: 5,
        producer_epoch: 2,
        timeout_ms: 60_000,
        phase: TransactionPhase::Ongoing,
        partitions: [("t".to_owned(), 0)].into_iter().collect(),
        groups: ["g-txn".to_owned()].into_iter().collect(),
        started_ms: 1,
        updated_ms: 1,
    };
    store.store_transaction(txn_fence, &record).await.unwrap();
    assert_eq!(
        store.load_transaction("txn-a").await.unwrap(),
        Some(record.clone())
    );
    assert_eq!(
        store
            .shard_transactions(coordinator_shard_of("txn-a"))
            .await
            .unwrap(),
        vec![record.clone()]
    );
    // Offsets committed in the transaction are pending, not the group's.
    store
        .store_pending_txn_offsets(
            group_fence,
            "g-txn",
            5,
            &[offset("t", 0, 10), offset("t", 1, 20)],
        )
        .await
        .unwrap();
    assert!(store.fetch_offsets("g-txn").await.unwrap().is_empty());
    assert_eq!(
        store.pending_txn_partitions("g-txn").await.unwrap(),
        [("t".to_owned(), 0), ("t".to_owned(), 1)]
            .into_iter()
            .collect()
    );

    // A coordinator that lost the shard decides nothing and moves nothing.
    let newer = store
        .acquire_coordinator_shard(coordinator_shard_of("txn-a"), 2)
        .await
        .unwrap();
    let mut commit = record.clone();
    commit.phase = TransactionPhase::PrepareCommit;
    let error = store
        .prepare_end_transaction(txn_fence, &commit)
        .await
        .unwrap_err();
    assert!(
        matches!(error, MetadataError::CoordinatorFenced { .. }),
        "{error}"
    );
    assert_eq!(
        store.load_transaction("txn-a").await.unwrap(),
        Some(record.clone())
    );
    assert!(store.fetch_offsets("g-txn").await.unwrap().is_empty());

    // The decision and the offsets land together.
    store.prepare_end_transaction(newer, &commit).await.unwrap();
    assert_eq!(
        store
            .load_transaction("txn-a")
            .await
            .unwrap()
            .unwrap()
            .phase,
        TransactionPhase::PrepareCommit
    );
    let offsets: Vec<(String, i32, i64)> = store
        .fetch_offsets("g-txn")
        .await
        .unwrap()
        .into_iter()
        .map(|o| (o.topic, o.partition, o.committed.offset))
        .collect();
    assert_eq!(offsets, vec![("t".into(), 0, 10), ("t".into(), 1, 20)]);
    assert!(
        store
            .pending_txn_partitions("g-txn")
            .await
            .unwrap()
            .is_empty()
    );

    // An abort drops its pending offsets and leaves the group's alone.
    let group_fence = store
        .acquire_coordinator_shard(coordinator_shard_of("g-txn"), 2)
        .await
        .unwrap();
    store
        .store_pending_txn_offsets(group_fence, "g-txn", 5, &[offset("t", 0, 99)])
        .await
        .unwrap();
    let mut abort = record;
    abort.phase = TransactionPhase::PrepareAbort;
    let fence = store
        .coordinator_shard(coordinator_shard_of("txn-a"))
        .await
        .unwrap();
    let fence = ShardFence {
        shard: coordinator_shard_of("txn-a"),
        epoch: fence.epoch,
    };
    store.prepare_end_transaction(fence, &abort).await.unwrap();
    assert_eq!(
        store.fetch_offsets("g-txn").await.unwrap()[0]
            .committed
            .offset,
        10
    );
    assert!(
        store
            .pending_txn_partitions("g-txn")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn segment_commits_track_open_and_aborted_transactions(fx: Fixture) {
    let store = fx.store();
    let topic = store.create_topic(NewTopic::new("txns", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let epoch = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    // Producer 7 opens a transaction at 0; producer 9 at 2.
    let mut first = segment(vec![chunk(tp, epoch, 0, 4, 0)]);
    let mut open7 = producer(tp, 7, 0, 0, 2);
    open7.state.txn_first_offset = Some(0);
    let mut open9 = producer(tp, 9, 0, 2, 2);
    open9.state.txn_first_offset = Some(2);
    first.producers = vec![open7.clone(), open9.clone()];
    store.commit_segment(&first).await.unwrap();
    let state = store.partition_state(tp).await.unwrap();
    assert_eq!((state.high_watermark, state.last_stable_offset()), (4, 0));

    // 7's abort marker at 4 closes it and records the aborted transaction;
    // 9 is still open.
    let mut second = segment(vec![chunk(tp, epoch, 4, 1, 0)]);
    let mut closed7 = open7.clone();
    closed7.state.txn_first_offset = None;
    second.producers = vec![closed7];
    second.aborted = vec![AbortedTransactionCommit {
        partition: tp,
        producer_id: 7,
        first_offset: 0,
        last_offset: 4,
    }];
    store.commit_segment(&second).await.unwrap();
    let state = store.partition_state(tp).await.unwrap();
    assert_eq!((state.high_watermark, state.last_stable_offset()), (5, 2));
    let aborted = store.aborted_transactions(tp, 0, 5, 100).await.unwrap();
    assert_eq!(
        aborted,
        vec![AbortedTransaction {
            producer_id: 7,
            first_offset: 0,
            last_offset: 4
        }]
    );
    // Reads past the marker, or ending before the transaction, need none.
    assert!(
        store
            .aborted_transactions(tp, 5, 10, 100)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .aborted_transactions(tp, 0, 0, 100)
            .await
            .unwrap()
            .is_empty()
    );

    // 9's commit marker: nothing open, the last stable offset is the end.
    let mut third = segment(vec![chunk(tp, epoch, 5, 1, 0)]);
    let mut closed9 = open9;
    closed9.state.txn_first_offset = None;
    third.producers = vec![closed9];
    store.commit_segment(&third).await.unwrap();
    let state = store.partition_state(tp).await.unwrap();
    assert_eq!((state.high_watermark, state.last_stable_offset()), (6, 6));

    // An aborted transaction for a partition the segment does not cover is
    // refused.
    let other = store.create_topic(NewTopic::new("other", 1)).await.unwrap();
    let mut stray = segment(vec![chunk(tp, epoch, 6, 1, 0)]);
    stray.aborted = vec![AbortedTransactionCommit {
        partition: TopicPartition::new(other.id, 0),
        producer_id: 1,
        first_offset: 0,
        last_offset: 0,
    }];
    assert_eq!(
        store.commit_segment(&stray).await.unwrap_err().kind(),
        ErrorKind::Invalid
    );

    // Released below the log start, and with the topic.
    store.release_aborted_transactions(tp, 5).await.unwrap();
    assert!(
        store
            .aborted_transactions(tp, 0, 10, 100)
            .await
            .unwrap()
            .is_empty()
    );
    store.delete_topic("txns").await.unwrap();
}

async fn producer_state_commits_with_its_segment_only(fx: Fixture) {
    let store = fx.store();
    let topic = store.create_topic(NewTopic::new("idem", 2)).await.unwrap();
    let (p0, p1) = (
        TopicPartition::new(topic.id, 0),
        TopicPartition::new(topic.id, 1),
    );
    let epoch = store.acquire_leadership(p0, 1).await.unwrap().leader_epoch;
    store.acquire_leadership(p1, 1).await.unwrap();

    // A producer state for a partition the segment does not cover is refused.
    let mut stray = segment(vec![chunk(p0, epoch, 0, 4, 0)]);
    stray.producers = vec![producer(p1, 7, 0, 0, 4)];
    let error = store.commit_segment(&stray).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid, "{error}");

    let mut first = segment(vec![chunk(p0, epoch, 0, 4, 0)]);
    first.producers = vec![producer(p0, 7, 0, 0, 4), producer(p0, 9, 3, 0, 4)];
    store.commit_segment(&first).await.unwrap();
    let states = store.producer_states(p0).await.unwrap();
    assert_eq!(
        states,
        vec![
            (7, first.producers[0].state.clone()),
            (9, first.producers[1].state.clone())
        ]
    );
    assert_eq!(store.producer_states(p1).await.unwrap(), vec![]);

    // A fenced commit writes no producer state either.
    store.acquire_leadership(p0, 2).await.unwrap();
    let mut stale = segment(vec![chunk(p0, epoch, 4, 2, 0)]);
    stale.producers = vec![producer(p0, 7, 1, 4, 2)];
    store.commit_segment(&stale).await.unwrap_err();
    assert_eq!(
        store.producer_states(p0).await.unwrap()[0].1,
        first.producers[0].state
    );

    // Deleting the topic removes its producer states; a new topic of the same
    // name starts clean.
    store.delete_topic("idem").await.unwrap();
    assert_eq!(store.producer_states(p0).await.unwrap(), vec![]);
}

fn producer_at(
    tp: TopicPartition,
    producer_id: i64,
    base: i64,
    last_timestamp: i64,
) -> ProducerCommit {
    let mut commit = producer(tp, producer_id, 0, base, 1);
    commit.state.last_timestamp = last_timestamp;
    commit
}

async fn producer_ids(store: &MetadataStore, tp: TopicPartition) -> Vec<(i64, i64)> {
    store
        .producer_states(tp)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, state)| (id, state.last_timestamp))
        .collect()
}

async fn producer_states_expire_under_the_leader_epoch_only(fx: Fixture) {
    let store = fx.store();
    let topic = store
        .create_topic(NewTopic::new("expiry", 1))
        .await
        .unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let epoch = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    let mut commit = segment(vec![chunk(tp, epoch, 0, 3, 0)]);
    commit.producers = vec![
        producer_at(tp, 7, 0, 1_000),
        producer_at(tp, 9, 1, 1_999),
        producer_at(tp, 11, 2, 2_000),
    ];
    store.commit_segment(&commit).await.unwrap();

    // Only states last written before the threshold go.
    assert_eq!(
        store
            .expire_producer_states(tp, epoch, 2_000)
            .await
            .unwrap(),
        vec![7, 9]
    );
    assert_eq!(producer_ids(&store, tp).await, vec![(11, 2_000)]);
    assert_eq!(
        store
            .expire_producer_states(tp, epoch, 2_000)
            .await
            .unwrap(),
        Vec::<i64>::new()
    );

    // A new leader fences the old one's expiry, which removes nothing.
    let taken = store.acquire_leadership(tp, 2).await.unwrap();
    let error = store
        .expire_producer_states(tp, epoch, i64::MAX)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fenced, "{error}");
    assert!(matches!(
        error,
        MetadataError::Fenced { partition, current_epoch, attempted_epoch }
            if partition == tp && current_epoch == taken.leader_epoch && attempted_epoch == epoch
    ));
    assert_eq!(producer_ids(&store, tp).await, vec![(11, 2_000)]);
    assert_eq!(
        store
            .expire_producer_states(tp, taken.leader_epoch, i64::MAX)
            .await
            .unwrap(),
        vec![11]
    );
    assert_eq!(producer_ids(&store, tp).await, vec![]);
    let missing = TopicPartition::new(topic.id, 5);
    assert_eq!(
        store
            .expire_producer_states(missing, 1, 0)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

/// Holds the next commit that writes something made through it until released,
/// so a test can run another transaction between a transaction's reads and its
/// commit.
#[derive(Debug, Default)]
struct CommitGate {
    armed: AtomicBool,
    reached: tokio::sync::Notify,
    release: tokio::sync::Notify,
    commits: AtomicUsize,
}

#[derive(Debug)]
struct GatedBackend {
    inner: Arc<dyn KvBackend>,
    gate: Arc<CommitGate>,
}

#[derive(Debug)]
struct GatedTransaction {
    inner: Box<dyn KvTransaction>,
    gate: Arc<CommitGate>,
    wrote: AtomicBool,
}

#[async_trait]
impl KvBackend for GatedBackend {
    async fn begin(&self) -> Result<Box<dyn KvTransaction>, KvError> {
        Ok(Box::new(GatedTransaction {
            inner: self.inner.begin().await?,
            gate: self.gate.clone(),
            wrote: AtomicBool::new(false),
        }))
    }

    fn name(&self) -> &'static str {
        "gated"
    }
}

#[async_trait]
impl KvTransaction for GatedTransaction {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.inner.get(key).await
    }
    async fn get_range(
        &self,
        begin: &[u8],
        end: &[u8],
        options: RangeOptions,
    ) -> Result<Vec<KeyValue>, KvError> {
        self.inner.get_range(begin, end, options).await
    }
    fn set(&self, key: &[u8], value: &[u8]) {
        self.wrote.store(true, Ordering::SeqCst);
        self.inner.set(key, value)
    }
    fn clear(&self, key: &[u8]) {
        self.wrote.store(true, Ordering::SeqCst);
        self.inner.clear(key)
    }
    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.wrote.store(true, Ordering::SeqCst);
        self.inner.clear_range(begin, end)
    }
    fn atomic_add(&self, key: &[u8], delta: i64) {
        self.wrote.store(true, Ordering::SeqCst);
        self.inner.atomic_add(key, delta)
    }
    async fn commit(&self) -> Result<(), KvError> {
        self.gate.commits.fetch_add(1, Ordering::SeqCst);
        if self.wrote.load(Ordering::SeqCst) && self.gate.armed.swap(false, Ordering::SeqCst) {
            self.gate.reached.notify_one();
            self.gate.release.notified().await;
        }
        self.inner.commit().await
    }
}

/// Expiry against a segment commit that refreshes a state it is about to
/// remove, in both orders; the refreshed state survives either way, the stale
/// one goes. The fault injector's (rule-less) counters show the transactions
/// overlapped.
async fn producer_expiry_never_loses_a_state_refreshed_concurrently(fx: Fixture) {
    let injector = FaultInjector::new(3);
    let counted = injector.wrap(fx.backend.clone());
    let gate = Arc::new(CommitGate::default());
    let gated = fx.store_over(Arc::new(GatedBackend {
        inner: counted.clone(),
        gate: gate.clone(),
    }));
    let store = fx.store_over(counted);
    let topic = store
        .create_topic(NewTopic::new("refresh", 2))
        .await
        .unwrap();
    let (p0, p1) = (
        TopicPartition::new(topic.id, 0),
        TopicPartition::new(topic.id, 1),
    );
    let epoch = store.acquire_leadership(p0, 1).await.unwrap().leader_epoch;
    store.acquire_leadership(p1, 1).await.unwrap();
    let mut first = segment(vec![chunk(p0, epoch, 0, 2, 0), chunk(p1, epoch, 0, 2, 100)]);
    first.producers = vec![
        producer_at(p0, 7, 0, 1_000),
        producer_at(p0, 9, 1, 1_000),
        producer_at(p1, 21, 0, 1_000),
        producer_at(p1, 23, 1, 1_000),
    ];
    store.commit_segment(&first).await.unwrap();

    // 1. Expiry has read 7 and 9 as stale; a commit refreshes 7 before expiry
    //    commits. Expiry must not remove the fresh 7.
    gate.armed.store(true, Ordering::SeqCst);
    let expiry = tokio::spawn({
        let gated = gated.clone();
        async move { gated.expire_producer_states(p0, epoch, 2_000).await }
    });
    gate.reached.notified().await;
    let mut refresh = segment(vec![chunk(p0, epoch, 2, 1, 0)]);
    refresh.producers = vec![producer_at(p0, 7, 2, 3_000)];
    store.commit_segment(&refresh).await.unwrap();
    assert!(injector.stats().peak_open_transactions >= 2);
    let commits_before = gate.commits.load(Ordering::SeqCst);
    gate.release.notify_one();
    let expired = expiry.await.unwrap().unwrap();
    assert_eq!(expired, vec![9], "expiry retried on the refreshed snapshot");
    assert!(
        gate.commits.load(Ordering::SeqCst) > commits_before,
        "expiry was retried"
    );
    assert_eq!(producer_ids(&store, p0).await, vec![(7, 3_000)]);

    // 2. A commit refreshing 21 has read its snapshot; expiry removes 21 and 23
    //    first. The commit then writes 21 back (after a retry where the backend
    //    conflicts it).
    gate.armed.store(true, Ordering::SeqCst);
    let mut refresh = segment(vec![chunk(p1, epoch, 2, 1, 0)]);
    refresh.producers = vec![producer_at(p1, 21, 2, 4_000)];
    let refreshing = tokio::spawn({
        let gated = gated.clone();
        async move { gated.commit_segment(&refresh).await }
    });
    gate.reached.notified().await;
    assert_eq!(
        store
            .expire_producer_states(p1, epoch, 2_000)
            .await
            .unwrap(),
        vec![21, 23]
    );
    gate.release.notify_one();
    let outcome = refreshing.await.unwrap().unwrap();
    assert_eq!(outcome.high_watermarks, vec![(p1, 3)]);
    assert_eq!(producer_ids(&store, p1).await, vec![(21, 4_000)]);
    assert_eq!(injector.stats().open_transactions, 0);
}

/// A takeover in one transaction: the new epoch and the producer states it
/// serves from.
async fn leadership_is_taken_with_its_producer_states(fx: Fixture) {
    let store = fx.store();
    let topic = store
        .create_topic(NewTopic::new("takeover", 1))
        .await
        .unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let (state, producers) = store
        .acquire_leadership_with_producers(tp, 1, 0)
        .await
        .unwrap();
    assert_eq!(
        (state.leader, state.leader_epoch, producers),
        (Some(1), 1, vec![])
    );
    let mut commit = segment(vec![chunk(tp, 1, 0, 2, 0)]);
    commit.producers = vec![producer_at(tp, 5, 0, 10), producer_at(tp, 6, 1, 20)];
    store.commit_segment(&commit).await.unwrap();

    // A takeover judged by an epoch that has moved on takes nothing: the
    // agent holding it now may have acknowledged batches it has not committed.
    let moved_on = store
        .acquire_leadership_with_producers(tp, 3, 0)
        .await
        .unwrap_err();
    assert_eq!(moved_on.kind(), ErrorKind::Fenced);
    assert_eq!(
        store.partition_state(tp).await.unwrap().leader,
        Some(1),
        "a refused takeover writes nothing"
    );
    let (state, producers) = store
        .acquire_leadership_with_producers(tp, 2, 1)
        .await
        .unwrap();
    assert_eq!(
        (state.leader, state.leader_epoch, state.high_watermark),
        (Some(2), 2, 2)
    );
    assert_eq!(
        producers,
        vec![
            (5, commit.producers[0].state.clone()),
            (6, commit.producers[1].state.clone())
        ]
    );
    assert_eq!(store.partition_state(tp).await.unwrap(), state);
    // The old leader is fenced from then on.
    let stale = segment(vec![chunk(tp, 1, 2, 1, 0)]);
    assert_eq!(
        store.commit_segment(&stale).await.unwrap_err().kind(),
        ErrorKind::Fenced
    );
    let missing = TopicPartition::new(topic.id, 3);
    assert_eq!(
        store
            .acquire_leadership_with_producers(missing, 1, 0)
            .await
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
}

/// The balancer's view: every topic with all its partitions, as the per-topic
/// reads give them, and never a topic half created or half deleted while
/// topics come and go.
async fn all_partition_states_come_from_one_snapshot(fx: Fixture) {
    let store = fx.store();
    let a = store.create_topic(NewTopic::new("a", 3)).await.unwrap();
    let b = store.create_topic(NewTopic::new("b", 1)).await.unwrap();
    let a1 = TopicPartition::new(a.id, 1);
    let epoch = store.acquire_leadership(a1, 4).await.unwrap().leader_epoch;
    store
        .commit_segment(&segment(vec![chunk(a1, epoch, 0, 6, 0)]))
        .await
        .unwrap();
    store.create_partitions("b", 2).await.unwrap();

    let all = store.all_partition_states().await.unwrap();
    let mut expected = Vec::new();
    for topic in store.list_topics().await.unwrap() {
        let states = store.partition_states(topic.id).await.unwrap();
        expected.push((topic, states));
    }
    assert_eq!(all, expected);
    let a_states = &all.iter().find(|(topic, _)| topic.id == a.id).unwrap().1;
    assert_eq!(a_states.len(), 3);
    assert_eq!(
        (a_states[1].leader, a_states[1].high_watermark),
        (Some(4), 6)
    );
    let b_states = &all.iter().find(|(topic, _)| topic.id == b.id).unwrap().1;
    assert_eq!(b_states.len(), 2);

    // Topics created, grown and deleted meanwhile: every answer is whole.
    let churn = tokio::spawn({
        let store = store.clone();
        async move {
            for round in 0..15 {
                let name = format!("churn-{round}");
                store.create_topic(NewTopic::new(&name, 4)).await.unwrap();
                store.create_partitions(&name, 7).await.unwrap();
                if round % 2 == 0 {
                    store.delete_topic(&name).await.unwrap();
                }
            }
        }
    });
    let mut answers = 0;
    while !churn.is_finished() || answers == 0 {
        for (topic, states) in store.all_partition_states().await.unwrap() {
            assert_eq!(states.len() as i32, topic.partition_count, "{topic:?}");
        }
        answers += 1;
        tokio::task::yield_now().await;
    }
    churn.await.unwrap();
    let names: Vec<String> = store
        .all_partition_states()
        .await
        .unwrap()
        .into_iter()
        .map(|(topic, _)| topic.name)
        .collect();
    assert_eq!(names.len(), 2 + 7, "{names:?}");
    assert!(!names.contains(&"churn-0".to_owned()) && names.contains(&"churn-1".to_owned()));
}

async fn delete_records_moves_the_log_start_forward_only(fx: Fixture) {
    let store = fx.store();
    let topic = store
        .create_topic(NewTopic::new("trimmed", 1))
        .await
        .unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let epoch = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    for (base, count) in [(0, 4u32), (4, 3), (7, 5)] {
        store
            .commit_segment(&segment(vec![chunk(tp, epoch, base, count, 0)]))
            .await
            .unwrap();
    }
    assert_eq!(store.delete_records(tp, 5).await.unwrap(), 5);
    // Never backwards: an older offset leaves the log start where it is.
    assert_eq!(store.delete_records(tp, 2).await.unwrap(), 5);
    let state = store.partition_state(tp).await.unwrap();
    assert_eq!((state.log_start_offset, state.high_watermark), (5, 12));
    // Reads start at the entry covering the new log start.
    let lookup = store.lookup(tp, 0, 10).await.unwrap();
    assert_eq!(lookup.entries[0].base_offset, 4, "{:?}", lookup.entries);
    // Beyond the high watermark, or negative, is out of range and writes nothing.
    for bad in [13, -2, i64::MIN] {
        let error = store.delete_records(tp, bad).await.unwrap_err();
        assert!(
            matches!(error, MetadataError::OffsetOutOfRange { offset, log_start_offset: 5, high_watermark: 12, .. } if offset == bad),
            "{bad}: {error}"
        );
        assert_eq!(error.kind(), ErrorKind::Invalid);
    }
    assert_eq!(store.partition_state(tp).await.unwrap(), state);
    // -1 means the high watermark; deleting up to it again is a no-op.
    assert_eq!(
        store
            .delete_records(tp, fjord_metadata::DELETE_UP_TO_HIGH_WATERMARK)
            .await
            .unwrap(),
        12
    );
    assert_eq!(store.delete_records(tp, 12).await.unwrap(), 12);
    assert!(store.lookup(tp, 0, 10).await.unwrap().entries.is_empty());
    // The leader keeps committing after the log start; epochs are untouched.
    store
        .commit_segment(&segment(vec![chunk(tp, epoch, 12, 2, 0)]))
        .await
        .unwrap();
    let state = store.partition_state(tp).await.unwrap();
    assert_eq!(
        (
            state.log_start_offset,
            state.high_watermark,
            state.leader_epoch
        ),
        (12, 14, epoch)
    );
    let missing = TopicPartition::new(topic.id, 1);
    assert_eq!(
        store.delete_records(missing, 0).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

async fn epoch_end_offsets_follow_the_index(fx: Fixture) {
    let store = fx.store();
    let topic = store
        .create_topic(NewTopic::new("epochs", 1))
        .await
        .unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let end = |epoch: i32| {
        let store = store.clone();
        async move {
            store
                .epoch_end_offset(tp, epoch)
                .await
                .unwrap()
                .end
                .map(|end| (end.leader_epoch, end.end_offset))
        }
    };
    // A fresh partition: epoch 0 is current and ends at the high watermark.
    assert_eq!(end(0).await, Some((0, 0)));
    assert_eq!(end(1).await, None);

    // Epoch 1: offsets 0..260, one entry each (more than one backward scan
    // page); epoch 2 takes leadership and writes nothing; epoch 3: offsets
    // 260..265; epoch 4 is current and has written nothing yet.
    let epoch1 = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    assert_eq!(epoch1, 1);
    for base in 0..260 {
        store
            .commit_segment(&segment(vec![chunk(tp, epoch1, base, 1, 0)]))
            .await
            .unwrap();
    }
    store.acquire_leadership(tp, 1).await.unwrap();
    let epoch3 = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    assert_eq!(epoch3, 3);
    store
        .commit_segment(&segment(vec![chunk(tp, epoch3, 260, 5, 0)]))
        .await
        .unwrap();
    let epoch4 = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    assert_eq!(epoch4, 4);

    assert_eq!(
        end(4).await,
        Some((4, 265)),
        "current epoch: the high watermark"
    );
    assert_eq!(
        end(3).await,
        Some((3, 265)),
        "epoch 4 starts at the high watermark"
    );
    assert_eq!(
        end(2).await,
        Some((1, 260)),
        "no records under 2: epoch 1 ends at 260"
    );
    assert_eq!(end(1).await, Some((1, 260)));
    assert_eq!(
        end(0).await,
        Some((0, 0)),
        "older than every epoch held: its first"
    );
    assert_eq!(end(5).await, None, "newer than the current epoch");
    assert_eq!(end(-1).await, None);

    // After the log start moves past epoch 1, asking for it answers with the
    // log start, as Kafka does once the epoch's records are gone.
    assert_eq!(store.delete_records(tp, 262).await.unwrap(), 262);
    assert_eq!(end(1).await, Some((1, 262)));
    assert_eq!(end(3).await, Some((3, 265)));
    let lookup = store.epoch_end_offset(tp, 3).await.unwrap();
    assert_eq!(lookup.state.leader_epoch, 4);
    assert_eq!(lookup.state.log_start_offset, 262);
}

async fn leadership_is_released_only_by_its_holder(fx: Fixture) {
    let store = fx.store();
    let topic = store
        .create_topic(NewTopic::new("handoff", 1))
        .await
        .unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let first = store.acquire_leadership(tp, 1).await.unwrap();
    assert!(
        !store
            .release_leadership(tp, 2, first.leader_epoch)
            .await
            .unwrap(),
        "not the holder"
    );
    assert!(
        !store
            .release_leadership(tp, 1, first.leader_epoch + 1)
            .await
            .unwrap(),
        "wrong epoch"
    );
    assert!(
        store
            .release_leadership(tp, 1, first.leader_epoch)
            .await
            .unwrap()
    );
    let state = store.partition_state(tp).await.unwrap();
    assert_eq!(
        (state.leader, state.leader_epoch),
        (None, first.leader_epoch)
    );
    let next = store.acquire_leadership(tp, 2).await.unwrap();
    assert_eq!(
        (next.leader, next.leader_epoch),
        (Some(2), first.leader_epoch + 1)
    );
    // The old holder's commits stay fenced.
    let error = store
        .commit_segment(&segment(vec![chunk(tp, first.leader_epoch, 0, 1, 0)]))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fenced);
}

async fn job_shards_are_taken_once_per_epoch_and_released_by_their_holder(fx: Fixture) {
    let store = fx.store();
    let shards = store.job_shards().await.unwrap();
    assert_eq!(shards.len(), JOB_SHARDS as usize);
    assert!(shards.iter().all(|s| *s == JobShardState::default()));
    // Two agents decide on the same state: only the first takes the shard.
    let first = store.acquire_job_shard(5, 1, 0).await.unwrap();
    let first = first.expect("taken at the epoch it was seen at");
    assert_eq!(first, JobLease { shard: 5, epoch: 1 });
    assert_eq!(store.acquire_job_shard(5, 2, 0).await.unwrap(), None);
    let shards = store.job_shards().await.unwrap();
    assert_eq!(
        shards[5],
        JobShardState {
            holder: Some(1),
            epoch: 1
        }
    );
    assert!(
        shards
            .iter()
            .enumerate()
            .all(|(i, s)| i == 5 || s.holder.is_none())
    );
    // Only the holder, under its epoch, releases it.
    assert!(
        !store.release_job_shard(first, 2).await.unwrap(),
        "not the holder"
    );
    let stale = JobLease { shard: 5, epoch: 2 };
    assert!(
        !store.release_job_shard(stale, 1).await.unwrap(),
        "wrong epoch"
    );
    assert!(store.release_job_shard(first, 1).await.unwrap());
    assert_eq!(
        store.job_shards().await.unwrap()[5],
        JobShardState {
            holder: None,
            epoch: 1
        }
    );
    // Taken over from a holder that is gone: the old lease no longer releases.
    let second = store.acquire_job_shard(5, 2, 1).await.unwrap().unwrap();
    let third = store.acquire_job_shard(5, 3, 2).await.unwrap().unwrap();
    assert_eq!((second.epoch, third.epoch), (2, 3));
    assert!(!store.release_job_shard(second, 2).await.unwrap());
    assert_eq!(store.job_shards().await.unwrap()[5].holder, Some(3));
    // Shards outside the range are refused.
    assert!(store.acquire_job_shard(JOB_SHARDS, 1, 0).await.is_err());
}

async fn coordinator_shards_are_released_only_by_their_holder(fx: Fixture) {
    let store = fx.store();
    let first = take_shard(&store, "handoff-group", 1).await;
    let stale = ShardFence {
        shard: first.shard,
        epoch: first.epoch + 1,
    };
    assert!(
        !store.release_coordinator_shard(first, 2).await.unwrap(),
        "not the holder"
    );
    assert!(
        !store.release_coordinator_shard(stale, 1).await.unwrap(),
        "wrong epoch"
    );
    assert!(store.release_coordinator_shard(first, 1).await.unwrap());
    let state = store.coordinator_shard(first.shard).await.unwrap();
    assert_eq!((state.leader, state.epoch), (None, first.epoch));
    let next = take_shard(&store, "handoff-group", 2).await;
    assert_eq!(next.epoch, first.epoch + 1);
    // The old coordinator's writes stay fenced.
    let error = store
        .commit_offsets(first, "handoff-group", None, &[offset("a", 0, 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(error, MetadataError::CoordinatorFenced { .. }),
        "{error:?}"
    );
}

fn member(id: &str, instance: Option<&str>, assignment: &[u8]) -> GroupMemberRecord {
    GroupMemberRecord {
        member_id: id.into(),
        group_instance_id: instance.map(str::to_owned),
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 6_000,
        rebalance_timeout_ms: 30_000,
        protocols: vec![GroupProtocol {
            name: "range".into(),
            metadata: vec![0, 3, 1, 4],
        }],
        assignment: assignment.to_vec(),
    }
}

fn stable_group(group: &str, generation: i32, members: Vec<GroupMemberRecord>) -> GroupRecord {
    GroupRecord {
        group_id: group.into(),
        protocol_type: Some("consumer".into()),
        protocol_name: Some("range".into()),
        generation,
        leader: members.first().map(|m| m.member_id.clone()),
        phase: GroupPhase::Stable,
        members,
        consumer: None,
        updated_at_ms: 0,
    }
}

fn consumer_member(
    member_id: &str,
    epoch: i32,
    topic: TopicId,
    partitions: &[i32],
) -> ConsumerMemberRecord {
    ConsumerMemberRecord {
        member_id: member_id.into(),
        instance_id: None,
        rack_id: None,
        client_id: "c".into(),
        client_host: "/127.0.0.1".into(),
        rebalance_timeout_ms: 30_000,
        session_timeout_ms: 45_000,
        subscribed_topic_names: vec!["orders".into()],
        subscribed_topic_regex: Some("^orders-.*".into()),
        server_assignor: Some("uniform".into()),
        member_epoch: epoch,
        previous_member_epoch: epoch - 1,
        state: ConsumerMemberState::Stable,
        assigned: vec![(topic, partitions.to_vec())],
        pending_revocation: Vec::new(),
        target: vec![(topic, partitions.to_vec())],
    }
}

/// A consumer-protocol group (KIP-848) round-trips with its members; written
/// back as a classic group, its consumer members are gone; deleting it takes
/// every key with it.
async fn consumer_protocol_groups_round_trip_and_switch_protocols(fx: Fixture) {
    let store = fx.store();
    let fence = take_shard(&store, "streams", 1).await;
    let topic = TopicId(Uuid::from_u128(7));
    let mut record = GroupRecord::empty("streams");
    record.protocol_type = Some("consumer".into());
    record.generation = 4;
    record.consumer = Some(ConsumerGroupRecord {
        group_epoch: 4,
        assignment_epoch: 4,
        members: vec![
            consumer_member("a", 4, topic, &[0, 2]),
            consumer_member("b", 3, topic, &[1]),
        ],
    });
    store.store_group(fence, &record).await.unwrap();
    let loaded = store.load_group("streams").await.unwrap().unwrap();
    assert!(same_group(&loaded, &record), "{loaded:?}");

    // One member left: the other is gone from metadata too.
    record.consumer.as_mut().unwrap().members.truncate(1);
    store.store_group(fence, &record).await.unwrap();
    let loaded = store.load_group("streams").await.unwrap().unwrap();
    assert_eq!(loaded.consumer.as_ref().unwrap().members.len(), 1);

    // Downgraded to a classic group: no consumer members remain.
    let classic = stable_group("streams", 5, vec![member("m-1", None, b"p0")]);
    store.store_group(fence, &classic).await.unwrap();
    let loaded = store.load_group("streams").await.unwrap().unwrap();
    assert!(same_group(&loaded, &classic), "{loaded:?}");

    // A stale coordinator cannot write it.
    let _newer = take_shard(&store, "streams", 2).await;
    let error = store.store_group(fence, &record).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Fenced, "{error}");
}

/// Compares what matters of two records (`updated_at_ms` is the store's).
fn same_group(a: &GroupRecord, b: &GroupRecord) -> bool {
    GroupRecord {
        updated_at_ms: 0,
        ..a.clone()
    } == GroupRecord {
        updated_at_ms: 0,
        ..b.clone()
    }
}

async fn group_writes_of_a_stale_coordinator_are_fenced_and_write_nothing(fx: Fixture) {
    let store = fx.store();
    let shard = coordinator_shard_of("payments");
    assert_eq!(store.coordinator_shard(shard).await.unwrap().epoch, 0);
    let old = take_shard(&store, "payments", 1).await;
    assert_eq!(old, ShardFence { shard, epoch: 1 });
    let generation_1 = stable_group(
        "payments",
        1,
        vec![
            member("m-1", None, b"p0"),
            member("m-2", Some("static-2"), b"p1"),
        ],
    );
    store.store_group(old, &generation_1).await.unwrap();
    store
        .commit_offsets(old, "payments", Some(1), &[offset("t", 0, 10)])
        .await
        .unwrap();

    // Another agent takes the shard over and resumes the group from metadata.
    let new = take_shard(&store, "payments", 2).await;
    assert_eq!(new.epoch, 2);
    let state = store.coordinator_shard(shard).await.unwrap();
    assert_eq!((state.leader, state.epoch), (Some(2), 2));
    let loaded = store.load_groups(shard).await.unwrap();
    assert_eq!(loaded.len(), 1);
    assert!(same_group(&loaded[0], &generation_1), "{loaded:?}");

    // Every write of the old coordinator fails as fenced and writes nothing.
    let mut generation_2 = stable_group("payments", 2, vec![member("m-3", None, b"p0p1")]);
    let fenced = |error: MetadataError| {
        assert_eq!(error.kind(), ErrorKind::Fenced, "{error}");
        assert!(
            matches!(
                error,
                MetadataError::CoordinatorFenced { shard: s, current_epoch: 2, attempted_epoch: 1 } if s == shard
            ),
            "{error}"
        );
    };
    fenced(store.store_group(old, &generation_2).await.unwrap_err());
    fenced(
        store
            .commit_offsets(
                old,
                "payments",
                Some(1),
                &[offset("t", 0, 99), offset("t", 1, 99)],
            )
            .await
            .unwrap_err(),
    );
    fenced(
        store
            .delete_offsets(old, "payments", &[("t".into(), 0)])
            .await
            .unwrap_err(),
    );
    fenced(store.delete_group(old, "payments").await.unwrap_err());
    // A group the old coordinator never stored is not created either.
    let other = (0..)
        .map(|i| format!("other-{i}"))
        .find(|g| coordinator_shard_of(g) == shard)
        .unwrap();
    fenced(
        store
            .commit_offsets(old, &other, None, &[offset("t", 0, 1)])
            .await
            .unwrap_err(),
    );
    let stored = store.load_group("payments").await.unwrap().unwrap();
    assert!(same_group(&stored, &generation_1), "{stored:?}");
    let offsets = store.fetch_offsets("payments").await.unwrap();
    assert_eq!(offsets.len(), 1);
    assert_eq!(offsets[0].committed.offset, 10);
    assert_eq!(store.load_group(&other).await.unwrap(), None);
    assert!(store.fetch_offsets(&other).await.unwrap().is_empty());

    // The new coordinator writes under its own epoch; a fence for another shard
    // is refused outright.
    store.store_group(new, &generation_2).await.unwrap();
    let stored = store.load_group("payments").await.unwrap().unwrap();
    assert!(same_group(&stored, &generation_2), "{stored:?}");
    assert_eq!(stored.members.len(), 1, "the old members are gone");
    let wrong_shard = ShardFence {
        shard: (shard + 1) % COORDINATOR_SHARDS,
        epoch: 1,
    };
    generation_2.generation = 3;
    let error = store
        .store_group(wrong_shard, &generation_2)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Invalid, "{error}");
    assert_eq!(
        store
            .load_group("payments")
            .await
            .unwrap()
            .unwrap()
            .generation,
        2
    );
}

async fn group_offsets_are_fenced_by_generation_and_deleted_with_the_group(fx: Fixture) {
    let store = fx.store();
    let fence = take_shard(&store, "billing", 1).await;
    store
        .store_group(
            fence,
            &stable_group("billing", 4, vec![member("m-1", None, b"")]),
        )
        .await
        .unwrap();
    let with_metadata = OffsetCommit {
        topic: "invoices".into(),
        partition: 2,
        offset: 42,
        leader_epoch: Some(7),
        metadata: Some("checkpoint ✓".into()),
    };
    store
        .commit_offsets(
            fence,
            "billing",
            Some(4),
            &[with_metadata.clone(), offset("invoices", 0, 5)],
        )
        .await
        .unwrap();

    // A commit of an older or newer generation writes nothing.
    for attempted in [3, 5] {
        let error = store
            .commit_offsets(
                fence,
                "billing",
                Some(attempted),
                &[offset("invoices", 0, 1_000)],
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, MetadataError::IllegalGeneration { current: Some(4), attempted: a, .. } if *a == attempted),
            "{error}"
        );
    }
    // A generation commit to a group that is not stored is refused too.
    let other = take_shard(&store, "unstored", 1).await;
    let error = store
        .commit_offsets(other, "unstored", Some(1), &[offset("invoices", 0, 1)])
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            MetadataError::IllegalGeneration { current: None, .. }
        ),
        "{error}"
    );
    assert_eq!(store.load_group("unstored").await.unwrap(), None);

    let offsets = store.fetch_offsets("billing").await.unwrap();
    type Row = (String, i32, i64, Option<i32>, Option<String>);
    let got: Vec<Row> = offsets
        .iter()
        .map(|o| {
            (
                o.topic.clone(),
                o.partition,
                o.committed.offset,
                o.committed.leader_epoch,
                o.committed.metadata.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("invoices".into(), 0, 5, Some(1), None),
            (
                "invoices".into(),
                2,
                42,
                Some(7),
                Some("checkpoint ✓".into())
            ),
        ]
    );
    assert_eq!(offsets[1].committed.commit_timestamp_ms, 1_700_000_000_000);

    // A simple commit (no generation) to a new group creates it empty.
    let audit = take_shard(&store, "audit", 1).await;
    store
        .commit_offsets(audit, "audit", None, &[offset("invoices", 0, 3)])
        .await
        .unwrap();
    let created = store.load_group("audit").await.unwrap().unwrap();
    assert_eq!(
        (created.phase, created.generation, created.members.len()),
        (GroupPhase::Empty, 0, 0)
    );
    assert!(
        store
            .list_group_ids()
            .await
            .unwrap()
            .contains(&"audit".to_owned())
    );

    // OffsetDelete removes exactly the named partitions.
    store
        .delete_offsets(
            fence,
            "billing",
            &[("invoices".into(), 0), ("absent".into(), 9)],
        )
        .await
        .unwrap();
    let left: Vec<i32> = store
        .fetch_offsets("billing")
        .await
        .unwrap()
        .iter()
        .map(|o| o.partition)
        .collect();
    assert_eq!(left, vec![2]);

    // DeleteGroups removes the group, its members and its offsets, not others'.
    assert!(store.delete_group(fence, "billing").await.unwrap());
    assert_eq!(store.load_group("billing").await.unwrap(), None);
    assert!(store.fetch_offsets("billing").await.unwrap().is_empty());
    assert!(
        !store.delete_group(fence, "billing").await.unwrap(),
        "already gone"
    );
    assert_eq!(store.fetch_offsets("audit").await.unwrap().len(), 1);
    let ids = store.list_group_ids().await.unwrap();
    assert!(
        !ids.contains(&"billing".to_owned()) && ids.contains(&"audit".to_owned()),
        "{ids:?}"
    );
}

/// Every case of the suite, each given to the macro named `$case`.
macro_rules! all_cases {
    ($case:ident) => {
        $case!(range_reads_are_ordered_and_bounded);
        $case!(many_keys_read_at_once_see_the_transactions_own_writes);
        $case!(stale_reads_conflict_and_blind_writes_do_not);
        $case!(range_reads_conflict_with_inserts_into_the_range);
        $case!(large_values_round_trip_and_oversized_ones_write_nothing);
        $case!(concurrent_increments_lose_no_update);
        $case!(compare_and_set_rounds_have_exactly_one_winner);
        $case!(stale_epoch_commits_are_fenced_and_write_nothing);
        $case!(segment_commit_retry_after_lost_reply_does_not_double_count);
        $case!(segment_commits_under_injected_faults_apply_exactly_once);
        $case!(segment_commit_errors_tell_the_caller_what_to_do);
        $case!(segment_commits_keep_offsets_contiguous);
        $case!(topics_are_created_listed_altered_and_deleted);
        $case!(agents_register_heartbeat_and_leave);
        $case!(group_offsets_and_producer_ids);
        $case!(producer_state_commits_with_its_segment_only);
        $case!(transaction_outcomes_commit_with_their_offsets);
        $case!(segment_commits_track_open_and_aborted_transactions);
        $case!(producer_states_expire_under_the_leader_epoch_only);
        $case!(producer_expiry_never_loses_a_state_refreshed_concurrently);
        $case!(leadership_is_taken_with_its_producer_states);
        $case!(all_partition_states_come_from_one_snapshot);
        $case!(leadership_is_released_only_by_its_holder);
        $case!(coordinator_shards_are_released_only_by_their_holder);
        $case!(job_shards_are_taken_once_per_epoch_and_released_by_their_holder);
        $case!(delete_records_moves_the_log_start_forward_only);
        $case!(epoch_end_offsets_follow_the_index);
        $case!(timestamp_lookups_are_exact_on_long_logs);
        $case!(time_indexes_are_deleted_with_their_topic);
        $case!(retention_removes_an_expired_prefix_and_frees_objects_with_their_last_entry);
        $case!(compaction_swaps_entries_only_where_they_did_not_change);
        $case!(compaction_swaps_that_would_change_a_log_are_refused);
        $case!(compaction_keeps_timestamp_searches_exact);
        $case!(retention_by_bytes_keeps_at_least_the_limit);
        $case!(delete_records_and_deleted_topics_free_their_entries);
        $case!(group_writes_of_a_stale_coordinator_are_fenced_and_write_nothing);
        $case!(group_offsets_are_fenced_by_generation_and_deleted_with_the_group);
        $case!(consumer_protocol_groups_round_trip_and_switch_protocols);
        $case!(rest_consumer_instances_are_created_once_and_stored_by_compare_and_set);
    };
}

/// One test per case, for backends that need nothing torn down at exit.
macro_rules! conformance {
    ($backend:ident) => {
        mod $backend {
            macro_rules! case {
                ($name:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        if let Some(fixture) = super::$backend() {
                            super::$name(fixture).await;
                        }
                    }
                };
            }

            all_cases!(case);
        }
    };
}

conformance!(memory);
conformance!(sqlite);

/// FoundationDB: the client's network thread can start once per process and
/// must be stopped before the process exits (`kv::fdb::stop_network`), after the
/// last transaction. A test harness has no "after the last test" hook, so the
/// whole suite is one test that owns the network: the cases run one after
/// another, each caught so one failure does not hide the others, and a guard
/// stops the network when the test ends, whether it passed or panicked. This
/// holds under nextest (a process per test) and `cargo test` (one process) alike.
#[cfg(feature = "fdb")]
mod fdb {
    use futures::FutureExt;

    /// Stops the process's FoundationDB network thread when dropped.
    struct NetworkGuard;

    impl Drop for NetworkGuard {
        fn drop(&mut self) {
            if let Err(error) = fjord_metadata::kv::fdb::stop_network() {
                eprintln!("stopping the FoundationDB network: {error}");
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn conformance_suite() {
        let _network = NetworkGuard;
        if super::fdb().is_none() {
            return;
        }
        let mut failed: Vec<&str> = Vec::new();
        macro_rules! case {
            ($name:ident) => {
                if let Some(fixture) = super::fdb() {
                    let run = std::panic::AssertUnwindSafe(super::$name(fixture));
                    if run.catch_unwind().await.is_err() {
                        failed.push(stringify!($name));
                    }
                }
            };
        }
        all_cases!(case);
        assert!(failed.is_empty(), "FoundationDB cases failed: {failed:?}");
    }
}

fn rest_consumer(group: &str, instance: &str, write_id: &str) -> RestConsumerRecord {
    RestConsumerRecord {
        group: group.into(),
        instance: instance.into(),
        write_id: write_id.into(),
        format: "binary".into(),
        auto_offset_reset: "earliest".into(),
        auto_commit: true,
        fetch_min_bytes: -1,
        request_timeout_ms: 1_000,
        session_timeout_ms: 6_000,
        instance_timeout_ms: 300_000,
        ..RestConsumerRecord::default()
    }
}

/// REST Proxy consumer instances: a name is created once per group; stores are
/// a compare-and-set on the version, so of N concurrent stores of one version
/// exactly one wins; a store whose reply was lost and is retried is not a
/// conflict; deletes apply only at the version read.
async fn rest_consumer_instances_are_created_once_and_stored_by_compare_and_set(fx: Fixture) {
    const TASKS: usize = 8;
    const ROUNDS: u64 = 10;
    let store = fx.store();
    assert!(
        store
            .create_rest_consumer(&rest_consumer("g", "i-1", "w0"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .create_rest_consumer(&rest_consumer("g", "i-1", "other"))
            .await
            .unwrap(),
        "a name is taken once per group"
    );
    assert!(
        store
            .create_rest_consumer(&rest_consumer("g", "i-2", "w0"))
            .await
            .unwrap()
    );
    assert!(
        store
            .create_rest_consumer(&rest_consumer("gg", "i-1", "w0"))
            .await
            .unwrap()
    );
    let loaded = store.rest_consumer("g", "i-1").await.unwrap().unwrap();
    assert_eq!((loaded.version, loaded.write_id.as_str()), (1, "w0"));
    assert_eq!(store.rest_consumer("g", "absent").await.unwrap(), None);

    // N writers of one version per round: exactly one wins.
    for round in 0..ROUNDS {
        let mut handles = Vec::new();
        for task in 0..TASKS {
            let store = store.clone();
            handles.push(tokio::spawn(async move {
                let mut record = rest_consumer("g", "i-1", &format!("r{round}-t{task}"));
                record.version = round + 1;
                record.member_epoch = i32::try_from(task).unwrap();
                store.store_rest_consumer(&record).await.unwrap()
            }));
        }
        let mut winners = 0;
        for handle in handles {
            match handle.await.unwrap() {
                RestConsumerWrite::Stored { version } => {
                    assert_eq!(version, round + 2);
                    winners += 1;
                }
                RestConsumerWrite::Conflict { current } => {
                    assert_eq!(current, Some(round + 2), "round {round}");
                }
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
    let stored = store.rest_consumer("g", "i-1").await.unwrap().unwrap();
    assert_eq!(stored.version, ROUNDS + 1);

    // A retry of a store that committed finds its own write: not a conflict.
    let mut mine = stored.clone();
    mine.write_id = "retried".into();
    mine.positions = vec![("t".into(), 0, 42)];
    assert_eq!(
        store.store_rest_consumer(&mine).await.unwrap(),
        RestConsumerWrite::Stored {
            version: ROUNDS + 2
        }
    );
    assert_eq!(
        store.store_rest_consumer(&mine).await.unwrap(),
        RestConsumerWrite::Stored {
            version: ROUNDS + 2
        },
        "the same write again is recognised"
    );
    let mut stale = stored.clone();
    stale.write_id = "stale".into();
    assert_eq!(
        store.store_rest_consumer(&stale).await.unwrap(),
        RestConsumerWrite::Conflict {
            current: Some(ROUNDS + 2)
        }
    );
    assert_eq!(
        store
            .rest_consumer("g", "i-1")
            .await
            .unwrap()
            .unwrap()
            .positions,
        vec![("t".to_owned(), 0, 42)]
    );

    // Listing: by group, and every group.
    let names = |records: Vec<RestConsumerRecord>| -> Vec<(String, String)> {
        records.into_iter().map(|r| (r.group, r.instance)).collect()
    };
    assert_eq!(
        names(store.list_rest_consumers(Some("g")).await.unwrap()),
        vec![("g".into(), "i-1".into()), ("g".into(), "i-2".into())]
    );
    assert_eq!(store.list_rest_consumers(None).await.unwrap().len(), 3);

    // Deletes apply at the version read only; a store after a delete conflicts.
    assert!(
        !store
            .delete_rest_consumer("g", "i-1", ROUNDS + 1)
            .await
            .unwrap()
    );
    assert!(
        store
            .delete_rest_consumer("g", "i-1", ROUNDS + 2)
            .await
            .unwrap()
    );
    assert_eq!(store.rest_consumer("g", "i-1").await.unwrap(), None);
    let mut late = mine.clone();
    late.version = ROUNDS + 2;
    late.write_id = "late".into();
    assert_eq!(
        store.store_rest_consumer(&late).await.unwrap(),
        RestConsumerWrite::Conflict { current: None }
    );
    assert!(store.rest_consumer("g", "i-1").await.unwrap().is_none());
    assert_eq!(
        names(store.list_rest_consumers(Some("g")).await.unwrap()),
        vec![("g".into(), "i-2".into())]
    );
}
