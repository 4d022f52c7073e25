//! The FoundationDB backend: production metadata, shared by many agents on many hosts.
//!
//! A thin adapter: FoundationDB *is* the model [`super`] describes (ordered byte
//! keys, serializable optimistic transactions, read-your-writes, the `ADD` mutation,
//! the same size limits), so every [`KvTransaction`] call maps onto one call of the
//! `foundationdb` crate's [`Transaction`]. Serializability is FoundationDB's own:
//! reads are *not* snapshot reads, so each adds a read-conflict range and a commit
//! whose reads were overwritten by a concurrent commit fails with `not_committed`.
//!
//! Retries: the shared loop in [`Database::run`](super::Database::run) is used, not
//! the crate's `Database::run`/`transact` (nor `fdb_transaction_on_error`), so every
//! backend retries, backs off and reports "maybe committed" the same way. Each
//! attempt is a fresh FoundationDB transaction, which gets a fresh read version.
//! Every transaction carries a [`TRANSACTION_TIMEOUT`], so an unreachable cluster
//! surfaces as [`KvError::Unavailable`] instead of a hang.
//!
//! Error mapping (FoundationDB error code → [`KvError`]), checked in this order:
//!
//! | FoundationDB error | read | commit |
//! |---|---|---|
//! | `not_committed` (1020) | `Conflict` | `Conflict` |
//! | `transaction_too_large` (2101), `key_too_large` (2102), `value_too_large` (2103) | `TooLarge` | `TooLarge` |
//! | `transaction_timed_out` (1031) | `Unavailable` | `MaybeCommitted` |
//! | the `maybe_committed` predicate (`commit_unknown_result` 1021, `cluster_version_changed` 1039) | `Unavailable` | `MaybeCommitted` |
//! | any other error of the `retryable` predicate (`transaction_too_old` 1007, `future_version` 1009, `process_behind` 1037, `database_locked` 1038, throttling, …) | `Unavailable` | `Unavailable` |
//! | everything else | `Backend` | `Backend` |
//!
//! A read never commits anything, so a read error is never "maybe committed". A
//! timeout that fires while the commit request is in flight cancels only the
//! client's wait, not the request, so a commit that timed out may have applied.
//!
//! Network thread: FoundationDB's client runs one network thread per process, which
//! can be started once and never restarted. This module owns it in the process-wide
//! [`NETWORK`]: the first [`FdbBackend::open`] selects the API version (the one the
//! crate was built for, `fdb-7_3`) and starts the thread; later opens reuse it. The
//! thread must be stopped before the process exits: the binary calls
//! [`stop_network`] on its shutdown path, after the last transaction finished
//! (FoundationDB leaves the behaviour undefined otherwise; an aborted process is
//! fine). After [`stop_network`] no FoundationDB backend works in this process. No
//! other code in the process may select an API version or boot the network (for
//! example `foundationdb::boot`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use foundationdb::api::{FdbApiBuilder, NetworkStop};
use foundationdb::options::{MutationType, StreamingMode, TransactionOption};
use foundationdb::{FdbError, KeySelector, RangeOption, Transaction};

use super::fdb_errors::{FdbErrorFacts, Phase, classify};
use super::{KeyValue, KvBackend, KvError, KvTransaction, RangeOptions};

/// How long one transaction may run (reads and commit) before FoundationDB cancels
/// it with `transaction_timed_out`. FoundationDB's MVCC window is 5 s as well.
pub const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(5);

/// The process's FoundationDB network thread.
///
/// `None` until the first [`FdbBackend::open`]. A `Mutex` rather than a `OnceLock`
/// because [`stop_network`] must take the running thread back out to stop and join
/// it. The lock is held only while booting or stopping.
static NETWORK: Mutex<Option<Network>> = Mutex::new(None);

enum Network {
    /// The thread runs; `stop` ends it and `thread` is then joined.
    Running {
        stop: NetworkStop,
        thread: JoinHandle<()>,
    },
    /// Selecting the API version or setting up the network failed. FoundationDB
    /// allows one attempt per process, so the error is final.
    Failed(String),
    /// [`stop_network`] ran; FoundationDB's network cannot be restarted.
    Stopped,
}

fn lock_network() -> MutexGuard<'static, Option<Network>> {
    NETWORK.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts the network thread unless it runs; fails if it failed or was stopped.
fn ensure_network() -> Result<(), KvError> {
    let mut network = lock_network();
    if network.is_none() {
        *network = Some(boot());
    }
    match network.as_ref() {
        Some(Network::Running { .. }) => Ok(()),
        Some(Network::Failed(reason)) => Err(KvError::Backend(format!(
            "FoundationDB client failed to start: {reason}"
        ))),
        Some(Network::Stopped) | None => Err(network_stopped()),
    }
}

/// Selects the API version and starts the network thread. Called once per process,
/// under the [`NETWORK`] lock.
fn boot() -> Network {
    // `build` panics if an API version was already selected in this process; the
    // NETWORK lock and state make this the only call.
    let builder = match FdbApiBuilder::default().build() {
        Ok(builder) => builder,
        Err(error) => {
            return Network::Failed(format!(
                "selecting API version: {error} (FoundationDB error {})",
                error.code()
            ));
        }
    };
    let (runner, wait) = match builder.build() {
        Ok(pair) => pair,
        Err(error) => {
            return Network::Failed(format!(
                "setting up the network: {error} (FoundationDB error {})",
                error.code()
            ));
        }
    };
    let spawned = std::thread::Builder::new()
        .name("fdb-network".into())
        .spawn(move || {
            #[allow(unsafe_code)]
            // SAFETY: `NetworkRunner::run` requires that the network be stopped
            // before the process exits. The matching `NetworkStop` is kept in the
            // process-wide NETWORK and used by `stop_network`, which the binary's
            // shutdown path calls (see the module documentation); this thread is the
            // only one running the network, as `boot` runs once per process.
            let result = unsafe { runner.run() };
            if let Err(error) = result {
                tracing::error!(
                    code = error.code(),
                    %error,
                    "FoundationDB network thread stopped with an error"
                );
            }
        });
    match spawned {
        Ok(thread) => Network::Running {
            // Returns once the thread entered the run loop.
            stop: wait.wait(),
            thread,
        },
        Err(error) => Network::Failed(format!("spawning the network thread: {error}")),
    }
}

/// Stops FoundationDB's network thread and waits for it to end. Call once, before
/// the process exits and after every FoundationDB transaction finished; later calls
/// do nothing. Afterwards no FoundationDB backend works in this process: pending
/// and new operations fail or never complete.
pub fn stop_network() -> Result<(), KvError> {
    let running = {
        let mut network = lock_network();
        match network.take() {
            Some(Network::Running { stop, thread }) => {
                *network = Some(Network::Stopped);
                Some((stop, thread))
            }
            other => {
                // Never started, failed or already stopped: mark it so no later
                // `open` boots a network nobody would stop.
                *network = Some(match other {
                    Some(Network::Failed(reason)) => Network::Failed(reason),
                    _ => Network::Stopped,
                });
                None
            }
        }
    };
    let Some((stop, thread)) = running else {
        return Ok(());
    };
    stop.stop()
        .map_err(|error| fdb_error(Phase::Other, "stopping the FoundationDB network", error))?;
    thread
        .join()
        .map_err(|_| KvError::Backend("the FoundationDB network thread panicked".into()))
}

fn network_stopped() -> KvError {
    KvError::Backend(
        "the FoundationDB network was stopped; it cannot restart in this process".into(),
    )
}

/// Maps a FoundationDB error (see the table in the module documentation; the
/// decision itself is [`classify`], tested without `libfdb_c`).
fn fdb_error(phase: Phase, context: &str, error: FdbError) -> KvError {
    let code = error.code();
    let facts = FdbErrorFacts {
        code,
        maybe_committed: error.is_maybe_committed(),
        retryable: error.is_retryable(),
    };
    classify(
        phase,
        facts,
        format!("{context}: {error} (FoundationDB error {code})"),
    )
}

/// A FoundationDB cluster, reached through a cluster file.
#[derive(Clone)]
pub struct FdbBackend {
    database: Arc<foundationdb::Database>,
    cluster_file: Option<PathBuf>,
}

impl fmt::Debug for FdbBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FdbBackend")
            .field("cluster_file", &self.cluster_file)
            .finish_non_exhaustive()
    }
}

impl FdbBackend {
    /// Opens the cluster named by `cluster_file` (`None`: FoundationDB's default
    /// cluster file, or `FDB_CLUSTER_FILE`), starting the process's network thread
    /// on first use. Does not contact the cluster: an unreachable cluster shows as
    /// [`KvError::Unavailable`] when the first transaction times out.
    pub fn open(cluster_file: Option<&Path>) -> Result<Self, KvError> {
        let path = match cluster_file {
            None => None,
            Some(path) => match path.to_str() {
                // The crate passes the path as a C string.
                Some(text) if !text.contains('\0') => Some(text),
                _ => {
                    return Err(KvError::Backend(format!(
                        "cluster file path {} is not valid UTF-8 without NUL bytes",
                        path.display()
                    )));
                }
            },
        };
        ensure_network()?;
        let database = foundationdb::Database::new(path).map_err(|error| {
            let what = match cluster_file {
                Some(file) => format!("opening cluster file {}", file.display()),
                None => "opening the default cluster file".to_owned(),
            };
            fdb_error(Phase::Other, &what, error)
        })?;
        Ok(Self {
            database: Arc::new(database),
            cluster_file: cluster_file.map(Path::to_path_buf),
        })
    }

    /// The cluster file given to [`FdbBackend::open`] (`None`: the default).
    pub fn cluster_file(&self) -> Option<&Path> {
        self.cluster_file.as_deref()
    }
}

#[async_trait]
impl KvBackend for FdbBackend {
    async fn begin(&self) -> Result<Box<dyn KvTransaction>, KvError> {
        if !matches!(lock_network().as_ref(), Some(Network::Running { .. })) {
            return Err(network_stopped());
        }
        let transaction = self
            .database
            .create_trx()
            .map_err(|error| fdb_error(Phase::Other, "creating a transaction", error))?;
        let timeout_ms = i32::try_from(TRANSACTION_TIMEOUT.as_millis()).unwrap_or(i32::MAX);
        transaction
            .set_option(TransactionOption::Timeout(timeout_ms))
            .map_err(|error| fdb_error(Phase::Other, "setting the transaction timeout", error))?;
        Ok(Box::new(FdbTransaction {
            inner: Mutex::new(Some(transaction)),
        }))
    }

    fn name(&self) -> &'static str {
        "fdb"
    }
}

/// One FoundationDB transaction.
///
/// The crate's `commit` consumes the transaction while [`KvTransaction::commit`]
/// takes `&self`, so it lives in an `Option` that commit takes. Every read returns
/// a future that owns what it needs (it does not borrow the transaction), so the
/// lock is held only while issuing a call, never across an `.await`.
#[derive(Debug)]
struct FdbTransaction {
    /// `None` once committed.
    inner: Mutex<Option<Transaction>>,
}

fn finished() -> KvError {
    KvError::Backend("transaction already finished".into())
}

impl FdbTransaction {
    fn lock(&self) -> MutexGuard<'_, Option<Transaction>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `call` on the open transaction; an error once it was committed.
    fn with<R>(&self, call: impl FnOnce(&Transaction) -> R) -> Result<R, KvError> {
        self.lock().as_ref().map(call).ok_or_else(finished)
    }

    /// Issues a write; a write after commit is a caller bug and is dropped.
    fn write(&self, op: &str, call: impl FnOnce(&Transaction)) {
        if self.with(call).is_err() {
            tracing::warn!(op, "FoundationDB write after commit ignored");
        }
    }
}

#[async_trait]
impl KvTransaction for FdbTransaction {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        // Not a snapshot read: the key joins the read-conflict set.
        let read = self.with(|txn| txn.get(key, false))?;
        let value = read
            .await
            .map_err(|error| fdb_error(Phase::Other, "reading a key", error))?;
        Ok(value.map(|slice| slice.to_vec()))
    }

    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        // Every read is sent before the first answer is awaited (the client
        // issues a read when it is created): one round trip, not one per key.
        let reads = keys
            .iter()
            .map(|key| self.with(|txn| txn.get(key, false)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut values = Vec::with_capacity(reads.len());
        for read in reads {
            let value = read
                .await
                .map_err(|error| fdb_error(Phase::Other, "reading a key", error))?;
            values.push(value.map(|slice| slice.to_vec()));
        }
        Ok(values)
    }

    async fn get_range(
        &self,
        begin: &[u8],
        end: &[u8],
        options: RangeOptions,
    ) -> Result<Vec<KeyValue>, KvError> {
        // FoundationDB reads a limit of 0 as "no limit".
        if options.limit == Some(0) || begin >= end {
            return Ok(Vec::new());
        }
        let mut next = Some(RangeOption {
            begin: KeySelector::first_greater_or_equal(begin.to_vec()),
            end: KeySelector::first_greater_or_equal(end.to_vec()),
            limit: options.limit,
            mode: StreamingMode::WantAll,
            reverse: options.reverse,
            ..RangeOption::default()
        });
        let mut pairs = Vec::new();
        let mut iteration = 1;
        // Each call returns one batch; `next_range` moves past its last key (from
        // the end when reversed) and lowers the limit, and is `None` when the range
        // or the limit is exhausted.
        while let Some(range) = next.take() {
            // Not a snapshot read: the range joins the read-conflict set.
            let read = self.with(|txn| txn.get_range(&range, iteration, false))?;
            let batch = read
                .await
                .map_err(|error| fdb_error(Phase::Other, "reading a range", error))?;
            pairs.extend(batch.iter().map(|pair| KeyValue {
                key: pair.key().to_vec(),
                value: pair.value().to_vec(),
            }));
            next = range.next_range(&batch);
            iteration += 1;
        }
        if let Some(limit) = options.limit {
            pairs.truncate(limit);
        }
        Ok(pairs)
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        self.write("set", |txn| txn.set(key, value));
    }

    fn clear(&self, key: &[u8]) {
        self.write("clear", |txn| txn.clear(key));
    }

    fn clear_range(&self, begin: &[u8], end: &[u8]) {
        self.write("clear_range", |txn| txn.clear_range(begin, end));
    }

    fn atomic_add(&self, key: &[u8], delta: i64) {
        self.write("atomic_add", |txn| {
            txn.atomic_op(key, &delta.to_le_bytes(), MutationType::Add);
        });
    }

    async fn commit(&self) -> Result<(), KvError> {
        let transaction = self.lock().take().ok_or_else(finished)?;
        match transaction.commit().await {
            // Dropping the committed handle destroys the transaction.
            Ok(_committed) => Ok(()),
            Err(error) => Err(fdb_error(
                Phase::Commit,
                "committing",
                FdbError::from(error),
            )),
        }
    }
}
