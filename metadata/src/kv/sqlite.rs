//! The SQLite backend: the embedded default. Several processes on one host may share
//! one database file.
//!
//! Each transaction holds one connection with an open *deferred* SQLite transaction:
//! reads run inside it against a consistent WAL snapshot, and writes are buffered in
//! a `WriteOverlay` (so reads see them) and replayed at commit. The first replayed
//! write upgrades the SQLite transaction to a writer. SQLite refuses the upgrade with
//! `SQLITE_BUSY_SNAPSHOT` if another connection — in this process or another —
//! committed after the snapshot was taken, and with `SQLITE_BUSY` while another
//! writer holds the lock; both become [`KvError::Conflict`] and the transaction is
//! retried by [`Database::run`](super::Database::run). A writer commits only from the
//! newest snapshot, so transactions are serializable across processes.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a commit that returned is on
//! disk (the segment index must survive a power cut once a producer was acked).
//!
//! Reads run on the calling task (a WAL read does not wait for writers and touches
//! only cached pages in the common case); commits, which fsync and may wait for the
//! write lock, run on the blocking pool.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, params};

use super::overlay::{Lookup, Op, WriteOverlay};
use super::{KeyValue, KvBackend, KvError, KvTransaction, RangeOptions, apply_add};

/// Idle connections kept for reuse.
const MAX_IDLE_CONNECTIONS: usize = 16;

/// How long SQLite waits for a lock before reporting `SQLITE_BUSY`. Only a writer
/// starting fresh (a blind write) or a reader during WAL recovery waits; an upgrade
/// from a read snapshot fails at once and is retried with backoff.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Numbered schema migrations, applied in order; `user_version` records how many
/// have run. Never edit a released migration: append a new one.
const MIGRATIONS: &[&str] = &[
    // 1: the ordered key-value table. BLOB keys compare with memcmp, then length:
    // lexicographic byte order, as FoundationDB's.
    "CREATE TABLE IF NOT EXISTS kv (key BLOB PRIMARY KEY NOT NULL, value BLOB NOT NULL) WITHOUT ROWID;",
];

/// A key-value store in one SQLite file.
#[derive(Debug, Clone)]
pub struct SqliteBackend {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

fn backend_error(context: &str, error: rusqlite::Error) -> KvError {
    match error.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => KvError::Conflict,
        Some(ErrorCode::DiskFull | ErrorCode::CannotOpen) => {
            KvError::Unavailable(format!("{context}: {error}"))
        }
        _ => KvError::Backend(format!("{context}: {error}")),
    }
}

impl SqliteBackend {
    /// Opens (creating if needed) the database at `path` and brings its schema up to
    /// date. Safe to call from several processes at once.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, KvError> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| KvError::Unavailable(format!("creating {}: {e}", parent.display())))?;
        }
        let backend = Self {
            inner: Arc::new(Inner {
                path,
                idle: Mutex::new(Vec::new()),
            }),
        };
        let connection = backend.connect()?;
        migrate(&connection)?;
        backend.release(connection);
        Ok(backend)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    fn connect(&self) -> Result<Connection, KvError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(&self.inner.path, flags).map_err(|e| {
            KvError::Unavailable(format!("opening {}: {e}", self.inner.path.display()))
        })?;
        connection
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| backend_error("setting busy timeout", e))?;
        let mode = enable_wal(&connection)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(KvError::Backend(format!(
                "{} refused WAL mode (got {mode}); is it on a network filesystem?",
                self.inner.path.display()
            )));
        }
        connection
            .execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=OFF;")
            .map_err(|e| backend_error("setting pragmas", e))?;
        Ok(connection)
    }

    fn acquire(&self) -> Result<Connection, KvError> {
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        match idle {
            Some(connection) => Ok(connection),
            None => self.connect(),
        }
    }

    fn release(&self, connection: Connection) {
        if !connection.is_autocommit() {
            // A transaction was left open (a bug or a failed rollback): never reuse it.
            return;
        }
        let mut idle = self.inner.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE_CONNECTIONS {
            idle.push(connection);
        }
    }
}

/// Switches the database to WAL mode and returns the mode it is in. Switching a
/// new file needs an exclusive lock, and SQLite answers `SQLITE_BUSY` at once,
/// without waiting in the busy handler, when connections race for it (several
/// processes opening a fresh file together, as agents starting on one host do).
/// So this retries, with a doubling pause, for about [`BUSY_TIMEOUT`] in all.
fn enable_wal(connection: &Connection) -> Result<String, KvError> {
    let mut waited = Duration::ZERO;
    let mut pause = Duration::from_millis(1);
    loop {
        // journal_mode answers with a row, so it is read rather than executed.
        match connection.query_row("PRAGMA journal_mode=WAL", [], |row| row.get(0)) {
            Ok(mode) => return Ok(mode),
            Err(error)
                if matches!(
                    error.sqlite_error_code(),
                    Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                ) && waited < BUSY_TIMEOUT =>
            {
                std::thread::sleep(pause);
                waited += pause;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(error) => return Err(backend_error("enabling WAL", error)),
        }
    }
}

fn migrate(connection: &Connection) -> Result<(), KvError> {
    // BEGIN IMMEDIATE serialises concurrent first opens from several processes.
    connection
        .execute_batch("BEGIN IMMEDIATE")
        .map_err(|e| backend_error("starting migration", e))?;
    let result = (|| {
        let applied: i64 = connection
            .query_row("PRAGMA user_version", [], |row| row.get(0))
            .map_err(|e| backend_error("reading schema version", e))?;
        let applied = usize::try_from(applied).unwrap_or(0);
        if applied > MIGRATIONS.len() {
            return Err(KvError::Backend(format!(
                "database schema version {applied} is newer than this binary knows ({})",
                MIGRATIONS.len()
            )));
        }
        for (index, migration) in MIGRATIONS.iter().enumerate().skip(applied) {
            connection
                .execute_batch(migration)
                .map_err(|e| backend_error("applying migration", e))?;
            connection
                .execute_batch(&format!("PRAGMA user_version = {}", index + 1))
                .map_err(|e| backend_error("recording schema version", e))?;
        }
        Ok(())
    })();
    let end = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
    connection
        .execute_batch(end)
        .map_err(|e| backend_error("finishing migration", e))?;
    result
}

#[async_trait]
impl KvBackend for SqliteBackend {
    async fn begin(&self) -> Result<Box<dyn KvTransaction>, KvError> {
        let connection = self.acquire()?;
        connection
            .execute_batch("BEGIN DEFERRED")
            .map_err(|e| backend_error("beginning transaction", e))?;
        Ok(Box::new(SqliteTransaction {
            backend: self.clone(),
            state: Arc::new(Mutex::new(TxnState {
                connection: Some(connection),
                overlay: WriteOverlay::default(),
            })),
        }))
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }
}

#[derive(Debug)]
struct TxnState {
    /// `None` once committed or handed to the blocking pool.
    connection: Option<Connection>,
    overlay: WriteOverlay,
}

#[derive(Debug)]
struct SqliteTransaction {
    backend: SqliteBackend,
    state: Arc<Mutex<TxnState>>,
}

impl SqliteTransaction {
    fn lock(&self) -> std::sync::MutexGuard<'_, TxnState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn finished() -> KvError {
    KvError::Backend("transaction already finished".into())
}

fn read_one(connection: &Connection, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
    let mut statement = connection
        .prepare_cached("SELECT value FROM kv WHERE key = ?1")
        .map_err(|e| backend_error("preparing read", e))?;
    let mut rows = statement
        .query(params![key])
        .map_err(|e| backend_error("reading", e))?;
    match rows.next().map_err(|e| backend_error("reading", e))? {
        Some(row) => Ok(Some(row.get(0).map_err(|e| backend_error("reading", e))?)),
        None => Ok(None),
    }
}

fn read_range(
    connection: &Connection,
    begin: &[u8],
    end: &[u8],
    options: RangeOptions,
) -> Result<Vec<KeyValue>, KvError> {
    let sql = if options.reverse {
        "SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key DESC LIMIT ?3"
    } else {
        "SELECT key, value FROM kv WHERE key >= ?1 AND key < ?2 ORDER BY key ASC LIMIT ?3"
    };
    // SQLite treats a negative LIMIT as "no limit".
    let limit = options
        .limit
        .map_or(-1, |limit| i64::try_from(limit).unwrap_or(i64::MAX));
    let mut statement = connection
        .prepare_cached(sql)
        .map_err(|e| backend_error("preparing range read", e))?;
    let rows = statement
        .query_map(params![begin, end, limit], |row| {
            Ok(KeyValue {
                key: row.get(0)?,
                value: row.get(1)?,
            })
        })
        .map_err(|e| backend_error("reading range", e))?;
    rows.collect::<Result<Vec<_>, _>>()
        .map_err(|e| backend_error("reading range", e))
}

fn replay(connection: &Connection, ops: &[Op]) -> Result<(), rusqlite::Error> {
    for op in ops {
        match op {
            Op::Set(key, value) => {
                connection
                    .prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")?
                    .execute(params![key, value])?;
            }
            Op::Clear(key) => {
                connection
                    .prepare_cached("DELETE FROM kv WHERE key = ?1")?
                    .execute(params![key])?;
            }
            Op::ClearRange(begin, end) => {
                connection
                    .prepare_cached("DELETE FROM kv WHERE key >= ?1 AND key < ?2")?
                    .execute(params![begin, end])?;
            }
            Op::Add(key, delta) => {
                let existing: Option<Vec<u8>> = connection
                    .prepare_cached("SELECT value FROM kv WHERE key = ?1")?
                    .query_row(params![key], |row| row.get(0))
                    .map(Some)
                    .or_else(|e| match e {
                        rusqlite::Error::QueryReturnedNoRows => Ok(None),
                        other => Err(other),
                    })?;
                let value = apply_add(existing.as_deref(), *delta);
                connection
                    .prepare_cached("INSERT OR REPLACE INTO kv (key, value) VALUES (?1, ?2)")?
                    .execute(params![key, value])?;
            }
        }
    }
    Ok(())
}

/// Replays the writes and commits; on any failure rolls back. Returns the
/// connection when it is fit for reuse.
fn commit_blocking(
    connection: Connection,
    ops: &[Op],
) -> (Option<Connection>, Result<(), KvError>) {
    if let Err(error) = replay(&connection, ops) {
        let rolled_back = connection.execute_batch("ROLLBACK").is_ok();
        return (
            rolled_back.then_some(connection),
            Err(backend_error("writing", error)),
        );
    }
    match connection.execute_batch("COMMIT") {
        Ok(()) => (Some(connection), Ok(())),
        Err(error) => {
            let outcome = commit_error(&error);
            let rolled_back = connection.execute_batch("ROLLBACK").is_ok();
            (rolled_back.then_some(connection), Err(outcome))
        }
    }
}

/// What a failed `COMMIT` means for the transaction.
fn commit_error(error: &rusqlite::Error) -> KvError {
    match error.sqlite_error_code() {
        // The commit did not take; SQLite keeps the transaction open.
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => KvError::Conflict,
        // An I/O error while committing leaves the outcome unknown: the WAL frames
        // may or may not have reached the disk.
        Some(ErrorCode::SystemIoFailure | ErrorCode::DiskFull) => {
            KvError::MaybeCommitted(format!("committing: {error}"))
        }
        _ => KvError::Backend(format!("committing: {error}")),
    }
}

#[async_trait]
impl KvTransaction for SqliteTransaction {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let state = self.lock();
        let connection = state.connection.as_ref().ok_or_else(finished)?;
        match state.overlay.lookup(key) {
            Lookup::Known(value) => Ok(value),
            Lookup::Snapshot => read_one(connection, key),
            Lookup::AddToSnapshot(delta) => Ok(Some(apply_add(
                read_one(connection, key)?.as_deref(),
                delta,
            ))),
        }
    }

    async fn get_range(
        &self,
        begin: &[u8],
        end: &[u8],
        options: RangeOptions,
    ) -> Result<Vec<KeyValue>, KvError> {
        let state = self.lock();
        let connection = state.connection.as_ref().ok_or_else(finished)?;
        if state.overlay.touches(begin, end) {
            let whole = read_range(connection, begin, end, RangeOptions::default())?;
            Ok(state.overlay.merge_range(whole, begin, end, options))
        } else {
            read_range(connection, begin, end, options)
        }
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        self.lock().overlay.set(key, value);
    }

    fn clear(&self, key: &[u8]) {
        self.lock().overlay.clear(key);
    }

    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.lock().overlay.clear_range(begin, end);
    }

    fn atomic_add(&self, key: &[u8], delta: i64) {
        self.lock().overlay.add(key, delta);
    }

    async fn commit(&self) -> Result<(), KvError> {
        let (connection, ops) = {
            let mut state = self.lock();
            let connection = state.connection.take().ok_or_else(finished)?;
            let ops = std::mem::take(&mut state.overlay).ops().to_vec();
            (connection, ops)
        };
        let (connection, result) = tokio::task::spawn_blocking(move || {
            if ops.is_empty() {
                // A read-only transaction: its snapshot reads were serializable.
                let result = connection
                    .execute_batch("COMMIT")
                    .map_err(|e| backend_error("ending read transaction", e));
                return (Some(connection), result);
            }
            commit_blocking(connection, &ops)
        })
        .await
        .map_err(|e| KvError::Backend(format!("commit task failed: {e}")))?;
        if let Some(connection) = connection {
            self.backend.release(connection);
        }
        result
    }
}

impl Drop for SqliteTransaction {
    fn drop(&mut self) {
        // An abandoned (uncommitted) transaction rolls back and returns its
        // connection to the pool.
        if let Some(connection) = self.lock().connection.take()
            && connection.execute_batch("ROLLBACK").is_ok()
        {
            self.backend.release(connection);
        }
    }
}

#[cfg(test)]
mod tests {
    use rusqlite::ffi;

    use super::*;

    fn sqlite_error(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(ffi::Error::new(code), None)
    }

    /// The mapping alone: an I/O error during COMMIT could not be provoked on a
    /// real file here (it needs a failing disk or a fault-injecting VFS).
    #[test]
    fn commit_errors_say_whether_the_commit_may_have_applied() {
        for code in [
            ffi::SQLITE_IOERR_WRITE,
            ffi::SQLITE_IOERR_FSYNC,
            ffi::SQLITE_FULL,
        ] {
            let error = commit_error(&sqlite_error(code));
            assert!(
                matches!(error, KvError::MaybeCommitted(_)),
                "{code}: {error}"
            );
            assert!(!error.is_certainly_not_committed());
            assert!(error.is_retryable());
        }
        for code in [
            ffi::SQLITE_BUSY,
            ffi::SQLITE_BUSY_SNAPSHOT,
            ffi::SQLITE_LOCKED,
        ] {
            let error = commit_error(&sqlite_error(code));
            assert_eq!(error, KvError::Conflict, "{code}");
            assert!(error.is_certainly_not_committed());
        }
        let error = commit_error(&sqlite_error(ffi::SQLITE_CORRUPT));
        assert!(matches!(error, KvError::Backend(_)), "{error}");
        assert!(!error.is_certainly_not_committed());
    }

    #[test]
    fn concurrent_first_opens_of_a_fresh_file_all_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fresh.db");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (path, barrier) = (path.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    SqliteBackend::open(&path).map(|_| ())
                })
            })
            .collect();
        for handle in handles {
            handle.join().unwrap().unwrap();
        }
    }
}
