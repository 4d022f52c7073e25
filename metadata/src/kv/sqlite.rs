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
//! Nothing here blocks an async worker thread. Every SQLite call that may touch
//! the file or wait for a lock — opening and configuring a connection, `BEGIN`,
//! reads, the commit (which fsyncs and may wait for the write lock), the rollback
//! of an abandoned transaction — runs on Tokio's blocking pool
//! ([`tokio::task::spawn_blocking`]). A transaction's connection sits behind a
//! mutex that only blocking-pool threads lock; its buffered writes sit behind
//! another that async code locks only for memory operations, so `set` never
//! waits for a read in flight. `BEGIN DEFERRED` runs with the transaction's first
//! read or its commit (SQLite takes a deferred transaction's snapshot at its first
//! read anyway), so a transaction costs one blocking-pool hop per read plus one
//! for a commit that writes (a read-only transaction ends on the calling thread:
//! it only releases a WAL read mark). [`SqliteBackend::open`] itself is synchronous: call it from a
//! blocking context ([`crate::open`] does).
//!
//! Waiting for locks is SQLite's own busy handler (`BUSY_TIMEOUT`, 5 s), except for
//! the switch of a fresh file to WAL mode: SQLite answers `SQLITE_BUSY` at once,
//! without calling the busy handler, to connections that race for it (measured:
//! 45 of 2,400 racing first opens failed at once despite a 5 s busy timeout), so
//! that one step keeps a bounded retry loop of its own.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode, OpenFlags, params};

use super::overlay::{Lookup, Op, WriteOverlay};
use super::{KeyValue, KvBackend, KvError, KvTransaction, RangeOptions, apply_add};

/// Idle connections kept for reuse.
const MAX_IDLE_CONNECTIONS: usize = 16;

/// How long SQLite's busy handler waits for a lock before reporting
/// `SQLITE_BUSY`: a writer starting fresh (a blind write, the migration's
/// `BEGIN IMMEDIATE`) or a reader during WAL recovery waits, on the blocking pool.
/// An upgrade from a read snapshot fails at once (SQLite does not call the busy
/// handler then, as waiting could deadlock) and is retried with backoff by
/// [`Database::run`](super::Database::run).
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

    /// A pooled connection, or a new one (opened on the blocking pool).
    async fn acquire(&self) -> Result<Connection, KvError> {
        let idle = self
            .inner
            .idle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        match idle {
            Some(connection) => Ok(connection),
            None => {
                let backend = self.clone();
                blocking("opening a connection", move || backend.connect()).await?
            }
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
/// It sleeps the calling thread: it runs only on the blocking pool or in
/// [`SqliteBackend::open`]'s (blocking) caller.
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

/// Runs `work` on the blocking pool.
async fn blocking<T, F>(what: &str, work: F) -> Result<T, KvError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| KvError::Backend(format!("{what}: blocking task failed: {e}")))
}

#[async_trait]
impl KvBackend for SqliteBackend {
    async fn begin(&self) -> Result<Box<dyn KvTransaction>, KvError> {
        let connection = self.acquire().await?;
        Ok(Box::new(SqliteTransaction {
            backend: self.clone(),
            session: Arc::new(Mutex::new(Session {
                connection: Some(connection),
                begun: false,
            })),
            overlay: Mutex::new(WriteOverlay::default()),
        }))
    }

    fn name(&self) -> &'static str {
        "sqlite"
    }
}

/// A transaction's connection. Locked only on the blocking pool (and by `Drop`
/// when no SQLite call is needed).
#[derive(Debug)]
struct Session {
    /// `None` once committed.
    connection: Option<Connection>,
    /// Whether `BEGIN DEFERRED` ran on it.
    begun: bool,
}

impl Session {
    /// The connection inside its SQLite transaction, begun on first use.
    fn begun(&mut self) -> Result<&Connection, KvError> {
        let connection = self.connection.as_ref().ok_or_else(finished)?;
        if !self.begun {
            connection
                .execute_batch("BEGIN DEFERRED")
                .map_err(|e| backend_error("beginning transaction", e))?;
            self.begun = true;
        }
        Ok(connection)
    }
}

fn lock_session(session: &Mutex<Session>) -> std::sync::MutexGuard<'_, Session> {
    session.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug)]
struct SqliteTransaction {
    backend: SqliteBackend,
    session: Arc<Mutex<Session>>,
    /// Buffered writes; locked by async code for memory operations only.
    overlay: Mutex<WriteOverlay>,
}

impl SqliteTransaction {
    fn overlay(&self) -> std::sync::MutexGuard<'_, WriteOverlay> {
        self.overlay.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `read` against the transaction's snapshot, on the blocking pool.
    async fn read<T, F>(&self, read: F) -> Result<T, KvError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, KvError> + Send + 'static,
    {
        let session = Arc::clone(&self.session);
        blocking("reading", move || read(lock_session(&session).begun()?)).await?
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
        let delta = match self.overlay().lookup(key) {
            Lookup::Known(value) => return Ok(value),
            Lookup::Snapshot => None,
            Lookup::AddToSnapshot(delta) => Some(delta),
        };
        let key = key.to_vec();
        let value = self
            .read(move |connection| read_one(connection, &key))
            .await?;
        Ok(match delta {
            Some(delta) => Some(apply_add(value.as_deref(), delta)),
            None => value,
        })
    }

    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        // What the overlay answers, and what the snapshot must (with the
        // buffered `ADD` to apply on top).
        let mut known = Vec::with_capacity(keys.len());
        let mut to_read = Vec::new();
        {
            let overlay = self.overlay();
            for key in keys {
                known.push(match overlay.lookup(key) {
                    Lookup::Known(value) => Ok(value),
                    Lookup::Snapshot => Err(None),
                    Lookup::AddToSnapshot(delta) => Err(Some(delta)),
                });
                if !matches!(known.last(), Some(Ok(_))) {
                    to_read.push(key.clone());
                }
            }
        }
        let read = if to_read.is_empty() {
            Vec::new()
        } else {
            self.read(move |connection| {
                to_read
                    .iter()
                    .map(|key| read_one(connection, key))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?
        };
        let mut read = read.into_iter();
        Ok(known
            .into_iter()
            .map(|answer| match answer {
                Ok(value) => value,
                Err(delta) => {
                    let value = read.next().unwrap_or_default();
                    match delta {
                        Some(delta) => Some(apply_add(value.as_deref(), delta)),
                        None => value,
                    }
                }
            })
            .collect())
    }

    async fn get_range(
        &self,
        begin: &[u8],
        end: &[u8],
        options: RangeOptions,
    ) -> Result<Vec<KeyValue>, KvError> {
        let touched = self.overlay().touches(begin, end);
        // With buffered writes in the range, read all of it and merge (the limit
        // applies to the merged view).
        let snapshot_options = if touched {
            RangeOptions::default()
        } else {
            options
        };
        let (begin, end) = (begin.to_vec(), end.to_vec());
        let (read_begin, read_end) = (begin.clone(), end.clone());
        let pairs = self
            .read(move |connection| {
                read_range(connection, &read_begin, &read_end, snapshot_options)
            })
            .await?;
        if touched {
            Ok(self.overlay().merge_range(pairs, &begin, &end, options))
        } else {
            Ok(pairs)
        }
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        self.overlay().set(key, value);
    }

    fn clear(&self, key: &[u8]) {
        self.overlay().clear(key);
    }

    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.overlay().clear_range(begin, end);
    }

    fn atomic_add(&self, key: &[u8], delta: i64) {
        self.overlay().add(key, delta);
    }

    async fn commit(&self) -> Result<(), KvError> {
        let ops = std::mem::take(&mut *self.overlay()).into_ops();
        if ops.is_empty()
            && let Ok(mut session) = self.session.try_lock()
        {
            // A read-only transaction, no read in flight: ending it releases a WAL
            // read mark (no I/O, no lock to wait for), so it stays on this thread
            // and saves a blocking-pool hop per read.
            let connection = session.connection.take().ok_or_else(finished)?;
            let result = if session.begun {
                connection
                    .execute_batch("COMMIT")
                    .map_err(|e| backend_error("ending read transaction", e))
            } else {
                Ok(())
            };
            self.backend.release(connection);
            return result;
        }
        let session = Arc::clone(&self.session);
        let backend = self.backend.clone();
        blocking("committing", move || {
            let mut session = lock_session(&session);
            let begun = session.begun;
            let connection = session.connection.take().ok_or_else(finished)?;
            let (connection, result) = match (ops.is_empty(), begun) {
                // Nothing read, nothing written: no SQLite transaction to end.
                (true, false) => (Some(connection), Ok(())),
                // A read-only transaction: its snapshot reads were serializable.
                (true, true) => {
                    let result = connection
                        .execute_batch("COMMIT")
                        .map_err(|e| backend_error("ending read transaction", e));
                    (Some(connection), result)
                }
                (false, true) => commit_blocking(connection, &ops),
                // Blind writes: begin here, so the replay is one SQLite transaction.
                (false, false) => match connection.execute_batch("BEGIN DEFERRED") {
                    Ok(()) => commit_blocking(connection, &ops),
                    Err(error) => (
                        Some(connection),
                        Err(backend_error("beginning transaction", error)),
                    ),
                },
            };
            if let Some(connection) = connection {
                backend.release(connection);
            }
            result
        })
        .await?
    }
}

impl Drop for SqliteTransaction {
    fn drop(&mut self) {
        // An abandoned (uncommitted) transaction rolls back and returns its
        // connection to the pool. A connection that never began needs no SQLite
        // call; a rollback runs on the blocking pool when there is a runtime (it
        // may wait for a read still in flight on this connection).
        if let Ok(mut session) = self.session.try_lock() {
            if session.connection.is_none() {
                return;
            }
            if !session.begun {
                if let Some(connection) = session.connection.take() {
                    self.backend.release(connection);
                }
                return;
            }
        }
        let session = Arc::clone(&self.session);
        let backend = self.backend.clone();
        let roll_back = move || {
            let mut session = lock_session(&session);
            if let Some(connection) = session.connection.take() {
                let clean = !session.begun || connection.execute_batch("ROLLBACK").is_ok();
                if clean {
                    backend.release(connection);
                }
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(roll_back)),
            Err(_) => roll_back(),
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
