//! The orphan sweep deletes only objects that are old by their id and by the
//! bucket's clock, of Fjord's key shape, and unknown to metadata; a dry run
//! deletes nothing; and a commit of a segment too old for the sweep's bound is
//! refused, so no commit can take an object the sweep may delete.

#![allow(clippy::unwrap_used)] // tests fail loudly by design

mod support;

use std::collections::BTreeSet;
use std::time::SystemTime;

use fjord_agent::maintenance::orphans::{ORPHAN_AGE, sweep};
use fjord_common::{Clock, IdGenerator, RandomIds, SystemClock};
use fjord_metadata::{
    ChunkCommit, MAX_COMMIT_AGE_MS, MetadataError, NewTopic, SegmentCommit, SegmentId,
    TopicPartition,
};
use fjord_storage::ObjectKeys;
use futures::StreamExt;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

fn wall_ms() -> i64 {
    SystemClock.now_millis()
}

async fn keys_in(objects: &InMemory) -> BTreeSet<String> {
    objects
        .list(None)
        .map(|meta| meta.unwrap().location.to_string())
        .collect()
        .await
}

fn commit_of(segment_id: SegmentId, key: &str, tp: TopicPartition, epoch: i32) -> SegmentCommit {
    SegmentCommit {
        segment_id,
        object_key: key.to_owned(),
        object_size: 3,
        chunks: vec![ChunkCommit {
            partition: tp,
            leader_epoch: epoch,
            base_offset: 0,
            last_offset: 0,
            record_count: 1,
            max_timestamp: 0,
            byte_offset: 0,
            byte_length: 3,
        }],
        producers: Vec::new(),
        aborted: Vec::new(),
    }
}

#[tokio::test]
async fn only_old_unknown_objects_of_fjords_shape_are_swept() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let keys = ObjectKeys::new("cluster").unwrap();
    let objects = InMemory::new();
    let ids = RandomIds::new();
    let now = wall_ms();
    let age = i64::try_from(ORPHAN_AGE.as_millis()).unwrap();
    // The sweep runs "later": every object was just written by the bucket's
    // clock, so it looks at them from beyond the age bound.
    let later = now + age + 60_000;
    let put = |key: String| {
        let objects = &objects;
        async move {
            objects
                .put(&Path::from(key.as_str()), PutPayload::from_static(b"abc"))
                .await
                .unwrap();
            key
        }
    };
    // Old by its id, unknown: an orphan.
    let orphan = put(keys.segment(ids.ulid(now)).into_string()).await;
    // Young by its id (written "just before" the sweep): kept.
    let young_id = ids.ulid(later - 60_000);
    let young = put(keys.segment(young_id).into_string()).await;
    // Committed: kept.
    let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let epoch = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    let committed_id = SegmentId(ids.ulid(now));
    let committed = put(keys.segment(committed_id.0).into_string()).await;
    store
        .commit_segment(&commit_of(committed_id, &committed, tp, epoch))
        .await
        .unwrap();
    // Not Fjord's shape: kept.
    let foreign = put("cluster/segments/notes.txt".to_owned()).await;
    let other_cluster = put(ObjectKeys::new("elsewhere")
        .unwrap()
        .segment(ids.ulid(now))
        .into_string())
    .await;
    let everything = keys_in(&objects).await;

    let dry = sweep(&store, &objects, &keys, later, 1_000, true)
        .await
        .unwrap();
    assert_eq!(dry.orphans, vec![orphan.clone()]);
    assert_eq!((dry.deleted, dry.orphan_bytes), (0, 3));
    assert_eq!(keys_in(&objects).await, everything, "a dry run deleted");

    let swept = sweep(&store, &objects, &keys, later, 1_000, false)
        .await
        .unwrap();
    assert_eq!(
        (swept.orphans.clone(), swept.deleted),
        (vec![orphan.clone()], 1)
    );
    let left = keys_in(&objects).await;
    let expected: BTreeSet<String> = [young, committed, foreign, other_cluster]
        .into_iter()
        .collect();
    assert_eq!(left, expected);

    // Seen from now (the bucket's clock says just written), nothing is old.
    let put_again = put(orphan.clone()).await;
    let now_sweep = sweep(&store, &objects, &keys, now, 1_000, false)
        .await
        .unwrap();
    assert!(now_sweep.orphans.is_empty(), "{now_sweep:?}");
    assert!(keys_in(&objects).await.contains(&put_again));
}

#[tokio::test]
async fn a_segment_older_than_a_commit_may_be_is_refused_and_writes_nothing() {
    let store = fjord_metadata::open("memory://").await.unwrap();
    let keys = ObjectKeys::new("cluster").unwrap();
    let ids = RandomIds::new();
    let topic = store.create_topic(NewTopic::new("t", 1)).await.unwrap();
    let tp = TopicPartition::new(topic.id, 0);
    let epoch = store.acquire_leadership(tp, 1).await.unwrap().leader_epoch;
    let old = wall_ms() - MAX_COMMIT_AGE_MS - 60_000;
    let id = SegmentId(ids.ulid(old));
    let key = keys.segment(id.0).into_string();
    let error = store
        .commit_segment(&commit_of(id, &key, tp, epoch))
        .await
        .unwrap_err();
    assert!(
        matches!(error, MetadataError::SegmentTooOld { .. }),
        "{error}"
    );
    assert!(error.is_certainly_not_committed());
    assert_eq!(store.partition_state(tp).await.unwrap().high_watermark, 0);
    assert!(store.segment_record(id).await.unwrap().is_none());
    // A segment of now commits.
    let fresh = SegmentId(ids.ulid(wall_ms()));
    let key = keys.segment(fresh.0).into_string();
    store
        .commit_segment(&commit_of(fresh, &key, tp, epoch))
        .await
        .unwrap();
}

/// `fjord sweep-orphans` over a real agent's data directory: a dry run prints
/// the orphan and deletes nothing; the sweep then deletes it, and leaves an
/// object the bucket's clock says is young.
#[tokio::test]
async fn fjord_sweep_orphans_prints_then_deletes_over_a_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    // An agent run creates the metadata and the cluster id.
    drop(support::AgentProcess::start(dir.path(), &[]));
    let store = fjord_metadata::open(&format!(
        "sqlite://{}",
        dir.path().join("metadata.db").display()
    ))
    .await
    .unwrap();
    let keys = ObjectKeys::new(&store.cluster_id().await.unwrap()).unwrap();
    let ids = RandomIds::new();
    let hours_ago = wall_ms() - 3 * 3_600_000;
    let write = |key: String, old: bool| {
        let path = dir.path().join("bucket").join(&key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"abc").unwrap();
        if old {
            let then = SystemTime::UNIX_EPOCH
                + std::time::Duration::from_millis(u64::try_from(hours_ago).unwrap());
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(then)
                .unwrap();
        }
        (key, path)
    };
    let (orphan, orphan_path) = write(keys.segment(ids.ulid(hours_ago)).into_string(), true);
    let (_, young_path) = write(keys.segment(ids.ulid(hours_ago)).into_string(), false);
    let sweep = |dry_run: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fjord"));
        command
            .arg("sweep-orphans")
            .arg("--data-dir")
            .arg(dir.path());
        if dry_run {
            command.arg("--dry-run");
        }
        let output = command.output().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        assert!(
            output.status.success(),
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let dry = sweep(true);
    assert!(dry.contains(&orphan), "{dry}");
    assert!(dry.contains("would delete 1 orphaned objects"), "{dry}");
    assert!(orphan_path.exists(), "a dry run deleted");
    let done = sweep(false);
    assert!(done.contains("deleted 1 orphaned objects"), "{done}");
    assert!(!orphan_path.exists());
    assert!(
        young_path.exists(),
        "an object the bucket says is young went"
    );
}
