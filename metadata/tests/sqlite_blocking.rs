//! SQLite never blocks the async runtime: while another connection holds the
//! database's write lock, metadata operations that wait for it (opening the
//! store, which migrates under `BEGIN IMMEDIATE`; writes; fresh pooled
//! connections) wait off the runtime's threads, so the other tasks of a
//! current-thread runtime keep running. Once the lock is released, the waiting
//! operations succeed.
//!
//! The lock is held by a plain `rusqlite` connection in its own thread (another
//! agent on the same host, a backup tool, an operator's `sqlite3` shell), and it
//! is released only after a ticker task on the runtime has made progress while
//! the operation was pending: a runtime thread blocked inside SQLite would hold
//! the ticker back, and the operation would fail once SQLite's busy timeout ran
//! out, lock still held.

#![allow(clippy::unwrap_used)] // tests fail loudly by design
#![cfg(feature = "sqlite")]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use fjord_metadata::{MetadataStore, NewTopic};

/// Ticks the ticker must make while an operation waits for the lock.
const TICKS_WHILE_WAITING: u64 = 25;
/// A bound on the polls of a wait for ticks, so a stuck runtime fails the test.
const MAX_POLLS: u32 = 60_000;

/// SQLite's write lock, held by another connection until released.
struct WriteLockHolder {
    release: mpsc::Sender<()>,
    thread: JoinHandle<()>,
}

impl WriteLockHolder {
    /// Takes the write lock of the database at `path` (`BEGIN IMMEDIATE` plus a
    /// write that is rolled back at release) and returns once it is held.
    fn take(path: &Path) -> Self {
        let path = path.to_path_buf();
        let (locked_tx, locked_rx) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || {
            let connection = rusqlite::Connection::open(&path).unwrap();
            connection.execute_batch("BEGIN IMMEDIATE").unwrap();
            connection
                .execute(
                    "INSERT OR REPLACE INTO kv (key, value) VALUES (x'00', x'00')",
                    [],
                )
                .unwrap();
            locked_tx.send(()).unwrap();
            // Bounded, so a test that forgets to release fails instead of hanging.
            let _ = release_rx.recv_timeout(Duration::from_secs(120));
            connection.execute_batch("ROLLBACK").unwrap();
        });
        locked_rx.recv().unwrap();
        Self { release, thread }
    }

    fn release(self) {
        self.release.send(()).unwrap();
        self.thread.join().unwrap();
    }
}

/// Waits until the ticker has ticked `by` more times.
async fn ticker_advances(ticks: &AtomicU64, by: u64) {
    let target = ticks.load(Ordering::SeqCst) + by;
    for _ in 0..MAX_POLLS {
        if ticks.load(Ordering::SeqCst) >= target {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("the ticker did not advance");
}

/// Fails the test if `task` finished: the lock it needs is still held, so it
/// can only have finished by failing after blocking the runtime's thread.
async fn assert_still_waiting<T: std::fmt::Debug>(
    what: &str,
    task: &mut tokio::task::JoinHandle<T>,
) {
    if task.is_finished() {
        let outcome = task.await.unwrap();
        panic!(
            "{what} finished while another connection held the write lock, and the \
             runtime's other tasks could not run meanwhile: {outcome:?}"
        );
    }
}

fn url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

#[test]
fn waiting_for_the_sqlite_write_lock_does_not_block_the_runtime() {
    let dir = tempfile::tempdir().unwrap();
    let path: PathBuf = dir.path().join("meta.db");
    // The file exists, in WAL mode, with its schema: as another agent left it.
    drop(fjord_metadata::kv::sqlite::SqliteBackend::open(&path).unwrap());

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let ticks = Arc::new(AtomicU64::new(0));
        let ticker = {
            let ticks = ticks.clone();
            tokio::spawn(async move {
                loop {
                    ticks.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };

        // 1. Opening the store migrates under BEGIN IMMEDIATE: it waits for the
        //    lock.
        let lock = WriteLockHolder::take(&path);
        let mut opening = tokio::spawn({
            let url = url(&path);
            async move { fjord_metadata::open(&url).await }
        });
        ticker_advances(&ticks, TICKS_WHILE_WAITING).await;
        assert_still_waiting("opening the store", &mut opening).await;
        lock.release();
        let store: MetadataStore = opening.await.unwrap().unwrap();

        // 2. Writes (several at once, so the pool opens fresh connections) wait
        //    for the lock; a read does not.
        store
            .create_topic(NewTopic::new("before", 1))
            .await
            .unwrap();
        let lock = WriteLockHolder::take(&path);
        let mut writes: Vec<_> = (0..3)
            .map(|n| {
                let store = store.clone();
                tokio::spawn(
                    async move { store.create_topic(NewTopic::new(format!("t{n}"), 2)).await },
                )
            })
            .collect();
        ticker_advances(&ticks, TICKS_WHILE_WAITING).await;
        assert_eq!(
            store
                .describe_topic("before")
                .await
                .unwrap()
                .partition_count,
            1,
            "a read must not wait for the write lock"
        );
        for write in &mut writes {
            assert_still_waiting("a metadata write", write).await;
        }
        lock.release();
        for write in writes {
            assert_eq!(write.await.unwrap().unwrap().partition_count, 2);
        }
        let names: Vec<String> = store
            .list_topics()
            .await
            .unwrap()
            .into_iter()
            .map(|topic| topic.name)
            .collect();
        for name in ["before", "t0", "t1", "t2"] {
            assert!(names.contains(&name.to_owned()), "{names:?}");
        }
        ticker.abort();
    });
}
