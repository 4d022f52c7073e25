//! The FDB-shaped key-value interface every metadata backend implements.
//!
//! Shape (FoundationDB's, so the production backend is a thin adapter):
//!
//! - keys and values are byte strings, keys ordered lexicographically;
//! - a transaction reads a consistent snapshot (`get`, `get_range` with a limit and
//!   a direction), buffers writes (`set`, `clear`, `clear_range`, `atomic_add`), sees
//!   its own writes, and commits atomically;
//! - transactions are serializable and optimistic: a commit whose reads were
//!   invalidated by a concurrent commit fails with [`KvError::Conflict`] and writes
//!   nothing; [`Database::run`] retries it with jittered backoff under a bounded
//!   budget ([`RetryPolicy`]);
//! - a commit outcome is either known or *maybe committed*
//!   ([`KvError::MaybeCommitted`]); bodies passed to [`Database::run`] are therefore
//!   written to be idempotent, and learn through [`Attempt::maybe_committed`] that an
//!   earlier attempt may have applied.
//!
//! FoundationDB's size limits apply to every backend (checked here, once), so code
//! that works on SQLite does not break on FoundationDB: keys up to
//! [`MAX_KEY_BYTES`], values up to [`MAX_VALUE_BYTES`], a transaction's writes up to
//! [`MAX_TRANSACTION_BYTES`].
//!
//! Backends: [`memory`] (tests), [`sqlite`] (the embedded default; several processes
//! may share one file) and `fdb` (FoundationDB, cargo feature `fdb`). Decorators
//! implement the same trait: [`fault`] injects the failures real stores have
//! (unavailable, maybe committed, slow, timed out), for tests and chaos runs.

use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use fjord_common::SeededRng;

pub mod fault;
#[cfg(feature = "fdb")]
pub mod fdb;
#[cfg(any(feature = "fdb", test))]
mod fdb_errors;
pub mod memory;
mod overlay;
#[cfg(feature = "sqlite")]
pub mod sqlite;

/// FoundationDB's limit on a key's size.
pub const MAX_KEY_BYTES: usize = 10_000;
/// FoundationDB's limit on a value's size.
pub const MAX_VALUE_BYTES: usize = 100_000;
/// FoundationDB's limit on the bytes a transaction writes.
pub const MAX_TRANSACTION_BYTES: usize = 10_000_000;

/// One key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: Vec<u8>,
    /// The value stored under it.
    pub value: Vec<u8>,
}

/// How a range is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeOptions {
    /// At most this many pairs; `None` reads the whole range.
    pub limit: Option<usize>,
    /// Read from the end of the range backwards.
    pub reverse: bool,
}

impl RangeOptions {
    /// Forward, at most `limit` pairs.
    pub fn first(limit: usize) -> Self {
        Self {
            limit: Some(limit),
            reverse: false,
        }
    }

    /// Backward, at most `limit` pairs.
    pub fn last(limit: usize) -> Self {
        Self {
            limit: Some(limit),
            reverse: true,
        }
    }
}

/// What went wrong in the key-value layer.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum KvError {
    /// A concurrent commit invalidated this transaction's reads, or the backend's
    /// write lock was taken. Nothing was written; retrying is safe.
    #[error("transaction conflict")]
    Conflict,
    /// The commit may or may not have applied (for example the reply was lost).
    /// Retrying is safe only for an idempotent body.
    #[error("commit outcome unknown: {0}")]
    MaybeCommitted(String),
    /// The backend is not reachable or timed out; nothing was written.
    #[error("metadata backend unavailable: {0}")]
    Unavailable(String),
    /// A key, value or transaction exceeds the limits in this module.
    #[error("transaction too large: {0}")]
    TooLarge(String),
    /// The backend failed in a way retrying will not fix.
    #[error("metadata backend error: {0}")]
    Backend(String),
}

impl KvError {
    /// Whether [`Database::run`] may run the body again.
    pub fn is_retryable(&self) -> bool {
        match self {
            KvError::Conflict | KvError::MaybeCommitted(_) | KvError::Unavailable(_) => true,
            KvError::TooLarge(_) | KvError::Backend(_) => false,
        }
    }

    /// Whether the transaction certainly did not apply.
    pub fn is_certainly_not_committed(&self) -> bool {
        match self {
            KvError::Conflict | KvError::Unavailable(_) | KvError::TooLarge(_) => true,
            KvError::MaybeCommitted(_) | KvError::Backend(_) => false,
        }
    }
}

/// A key-value backend: a factory of transactions.
#[async_trait]
pub trait KvBackend: Send + Sync + Debug + 'static {
    /// Starts a transaction.
    async fn begin(&self) -> Result<Box<dyn KvTransaction>, KvError>;

    /// A short name for logs (`memory`, `sqlite`, `fdb`).
    fn name(&self) -> &'static str;
}

/// One backend transaction. Implementations give snapshot reads, read-your-writes,
/// and an atomic, serializable commit. Sizes are checked by [`Transaction`] before
/// anything reaches a backend.
#[async_trait]
pub trait KvTransaction: Send + Sync + Debug {
    /// The value at `key`.
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;
    /// The values at `keys`, in their order. A backend that pays a round trip
    /// per read (SQLite's blocking-pool hop) answers them in one; the default
    /// reads one key after another.
    async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            values.push(self.get(key).await?);
        }
        Ok(values)
    }
    /// Pairs with `begin <= key < end`, ordered (reversed when asked).
    async fn get_range(
        &self,
        begin: &[u8],
        end: &[u8],
        options: RangeOptions,
    ) -> Result<Vec<KeyValue>, KvError>;
    /// Writes `value` at `key`.
    fn set(&self, key: &[u8], value: &[u8]);
    /// Removes `key`.
    fn clear(&self, key: &[u8]);
    /// Removes every key with `begin <= key < end`.
    fn clear_range(&self, begin: &[u8], end: &[u8]);
    /// Adds `delta` to the little-endian 8-byte integer at `key` (absent is 0),
    /// without a read conflict, as FoundationDB's `ADD` mutation.
    fn atomic_add(&self, key: &[u8], delta: i64);
    /// Commits the transaction. Called at most once.
    async fn commit(&self) -> Result<(), KvError>;
}

/// Applies an 8-byte little-endian `ADD` to an existing value, with FoundationDB's
/// rules: an absent or shorter value is zero-extended, a longer one truncated.
pub(crate) fn apply_add(existing: Option<&[u8]>, delta: i64) -> Vec<u8> {
    let mut base = [0u8; 8];
    if let Some(bytes) = existing {
        let n = bytes.len().min(8);
        base[..n].copy_from_slice(&bytes[..n]);
    }
    i64::from_le_bytes(base)
        .wrapping_add(delta)
        .to_le_bytes()
        .to_vec()
}

/// Reads an 8-byte little-endian counter written by [`Transaction::atomic_add`].
pub fn decode_counter(value: Option<&[u8]>) -> i64 {
    let mut base = [0u8; 8];
    if let Some(bytes) = value {
        let n = bytes.len().min(8);
        base[..n].copy_from_slice(&bytes[..n]);
    }
    i64::from_le_bytes(base)
}

/// The first key after every key that starts with `prefix` (for prefix ranges).
pub fn strinc(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff: no key is greater, so the range runs to the end.
    vec![0xff; prefix.len() + 1]
}

/// The key right after `key` in order (`key` + `\0`): `[key, key_after(key))` holds
/// exactly `key`.
pub fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

#[derive(Debug, Default)]
struct TransactionBudget {
    bytes_written: usize,
    error: Option<KvError>,
}

/// A transaction handle as the domain layer sees it: cheap to clone (it is moved
/// into each attempt's body), enforcing FoundationDB's size limits on every backend.
/// A write that breaks a limit poisons the transaction: later reads and the commit
/// return the error, and nothing is written.
#[derive(Debug, Clone)]
pub struct Transaction {
    inner: Arc<dyn KvTransaction>,
    budget: Arc<Mutex<TransactionBudget>>,
}

impl Transaction {
    fn new(inner: Box<dyn KvTransaction>) -> Self {
        Self {
            inner: Arc::from(inner),
            budget: Arc::default(),
        }
    }

    fn poisoned(&self) -> Result<(), KvError> {
        match &self.lock_budget().error {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }

    fn lock_budget(&self) -> std::sync::MutexGuard<'_, TransactionBudget> {
        self.budget.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Charges a write against the limits; false (and poisoned) when it breaks one.
    fn charge(&self, key: &[u8], value_len: usize) -> bool {
        let mut budget = self.lock_budget();
        if budget.error.is_some() {
            return false;
        }
        let violation = if key.len() > MAX_KEY_BYTES {
            Some(format!(
                "key of {} bytes exceeds {MAX_KEY_BYTES}",
                key.len()
            ))
        } else if value_len > MAX_VALUE_BYTES {
            Some(format!(
                "value of {value_len} bytes exceeds {MAX_VALUE_BYTES}"
            ))
        } else if budget.bytes_written + key.len() + value_len > MAX_TRANSACTION_BYTES {
            Some(format!(
                "transaction writes more than {MAX_TRANSACTION_BYTES} bytes"
            ))
        } else {
            None
        };
        match violation {
            Some(message) => {
                budget.error = Some(KvError::TooLarge(message));
                false
            }
            None => {
                budget.bytes_written += key.len() + value_len;
                true
            }
        }
    }

    fn check_key(key: &[u8]) -> Result<(), KvError> {
        if key.len() > MAX_KEY_BYTES {
            return Err(KvError::TooLarge(format!(
                "key of {} bytes exceeds {MAX_KEY_BYTES}",
                key.len()
            )));
        }
        Ok(())
    }

    /// The value at `key`.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.poisoned()?;
        Self::check_key(key)?;
        self.inner.get(key).await
    }

    /// The values at `keys`, in their order (one round trip where the backend
    /// can).
    pub async fn get_many(&self, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.poisoned()?;
        for key in keys {
            Self::check_key(key)?;
        }
        self.inner.get_many(keys).await
    }

    /// Pairs with `begin <= key < end`.
    pub async fn get_range(
        &self,
        begin: &[u8],
        end: &[u8],
        options: RangeOptions,
    ) -> Result<Vec<KeyValue>, KvError> {
        self.poisoned()?;
        Self::check_key(begin)?;
        Self::check_key(end)?;
        if begin >= end || options.limit == Some(0) {
            return Ok(Vec::new());
        }
        self.inner.get_range(begin, end, options).await
    }

    /// Every pair whose key starts with `prefix`.
    pub async fn get_prefix(
        &self,
        prefix: &[u8],
        options: RangeOptions,
    ) -> Result<Vec<KeyValue>, KvError> {
        self.get_range(prefix, &strinc(prefix), options).await
    }

    /// Writes `value` at `key`.
    pub fn set(&self, key: &[u8], value: &[u8]) {
        if self.charge(key, value.len()) {
            self.inner.set(key, value);
        }
    }

    /// Removes `key`.
    pub fn clear(&self, key: &[u8]) {
        if self.charge(key, 0) {
            self.inner.clear(key);
        }
    }

    /// Removes every key with `begin <= key < end`.
    pub fn clear_range(&self, begin: &[u8], end: &[u8]) {
        if begin >= end {
            return;
        }
        if self.charge(begin, end.len()) {
            self.inner.clear_range(begin, end);
        }
    }

    /// Removes every key that starts with `prefix`.
    pub fn clear_prefix(&self, prefix: &[u8]) {
        self.clear_range(prefix, &strinc(prefix));
    }

    /// Adds `delta` to the counter at `key` without a read conflict.
    pub fn atomic_add(&self, key: &[u8], delta: i64) {
        if self.charge(key, 8) {
            self.inner.atomic_add(key, delta);
        }
    }

    async fn commit(&self) -> Result<(), KvError> {
        self.poisoned()?;
        self.inner.commit().await
    }
}

/// How many times, and how patiently, [`Database::run`] retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles each time up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The largest backoff. Each sleep is uniformly jittered in `[0, backoff]`.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 100,
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(100),
        }
    }
}

/// What a transaction body is told about its attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first attempt.
    pub number: u32,
    /// An earlier attempt's commit may have applied.
    pub maybe_committed: bool,
}

/// Lets [`Database::run`] see the key-value error inside a caller's error type, to
/// decide whether to retry.
pub trait AsKvError {
    /// The key-value error this error wraps, if any.
    fn as_kv_error(&self) -> Option<&KvError>;
}

impl AsKvError for KvError {
    fn as_kv_error(&self) -> Option<&KvError> {
        Some(self)
    }
}

/// A handle to a backend with a retry policy: the entry point for transactions.
#[derive(Debug, Clone)]
pub struct Database {
    backend: Arc<dyn KvBackend>,
    policy: RetryPolicy,
    jitter: Arc<SeededRng>,
}

impl Database {
    /// A database over `backend`; `jitter_seed` seeds the backoff jitter.
    pub fn new(backend: Arc<dyn KvBackend>, policy: RetryPolicy, jitter_seed: u64) -> Self {
        Self {
            backend,
            policy,
            jitter: Arc::new(SeededRng::new(jitter_seed)),
        }
    }

    /// The backend's short name.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// The retry policy in force.
    pub fn policy(&self) -> RetryPolicy {
        self.policy
    }

    /// Runs `body` in a transaction and commits it, retrying conflicts and transient
    /// failures with jittered exponential backoff until the policy's attempts run
    /// out. The body may run several times, so it must be idempotent: it writes only
    /// through the transaction, and where an earlier attempt may have committed
    /// ([`Attempt::maybe_committed`]) it detects its own earlier write.
    ///
    /// A body error that wraps a retryable [`KvError`] (a read that conflicted)
    /// retries; any other body error is returned at once and nothing is committed.
    /// When attempts run out after a maybe-committed attempt, the error is
    /// [`KvError::MaybeCommitted`], never a false "did not apply".
    pub async fn run<T, E, F, Fut>(&self, mut body: F) -> Result<T, E>
    where
        F: FnMut(Transaction, Attempt) -> Fut,
        Fut: Future<Output = Result<T, E>>,
        E: From<KvError> + AsKvError,
    {
        let mut attempt = Attempt {
            number: 1,
            maybe_committed: false,
        };
        let mut backoff = self.policy.initial_backoff;
        loop {
            let error = match self.backend.begin().await {
                Err(error) => E::from(error),
                Ok(inner) => {
                    let txn = Transaction::new(inner);
                    match body(txn.clone(), attempt).await {
                        Ok(value) => match txn.commit().await {
                            Ok(()) => return Ok(value),
                            Err(error) => E::from(error),
                        },
                        Err(error) => error,
                    }
                }
            };
            let Some(kv_error) = error.as_kv_error() else {
                return Err(error);
            };
            if matches!(kv_error, KvError::MaybeCommitted(_)) {
                attempt.maybe_committed = true;
            }
            if !kv_error.is_retryable() || attempt.number >= self.policy.max_attempts {
                if attempt.maybe_committed && kv_error.is_certainly_not_committed() {
                    return Err(E::from(KvError::MaybeCommitted(format!(
                        "an earlier attempt may have committed; last attempt: {kv_error}"
                    ))));
                }
                return Err(error);
            }
            tracing::trace!(
                backend = self.backend.name(),
                attempt = attempt.number,
                error = %kv_error,
                "retrying metadata transaction"
            );
            let ceiling = u64::try_from(backoff.as_micros()).unwrap_or(u64::MAX);
            tokio::time::sleep(Duration::from_micros(self.jitter.below(ceiling + 1))).await;
            backoff = (backoff * 2).min(self.policy.max_backoff);
            attempt.number += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A backend whose commits fail with the scripted errors, then succeed.
    #[derive(Debug)]
    struct Scripted {
        failures: Mutex<Vec<KvError>>,
        commits: Arc<AtomicU32>,
    }

    #[derive(Debug)]
    struct ScriptedTxn {
        outcome: Option<KvError>,
        commits: Arc<AtomicU32>,
    }

    #[async_trait]
    impl KvBackend for Scripted {
        async fn begin(&self) -> Result<Box<dyn KvTransaction>, KvError> {
            let outcome = self.failures.lock().unwrap().pop();
            Ok(Box::new(ScriptedTxn {
                outcome,
                commits: self.commits.clone(),
            }))
        }
        fn name(&self) -> &'static str {
            "scripted"
        }
    }

    #[async_trait]
    impl KvTransaction for ScriptedTxn {
        async fn get(&self, _: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
            Ok(None)
        }
        async fn get_range(
            &self,
            _: &[u8],
            _: &[u8],
            _: RangeOptions,
        ) -> Result<Vec<KeyValue>, KvError> {
            Ok(Vec::new())
        }
        fn set(&self, _: &[u8], _: &[u8]) {}
        fn clear(&self, _: &[u8]) {}
        fn clear_range(&self, _: &[u8], _: &[u8]) {}
        fn atomic_add(&self, _: &[u8], _: i64) {}
        async fn commit(&self) -> Result<(), KvError> {
            self.commits.fetch_add(1, Ordering::SeqCst);
            match &self.outcome {
                Some(error) => Err(error.clone()),
                None => Ok(()),
            }
        }
    }

    fn database(mut failures: Vec<KvError>, max_attempts: u32) -> (Database, Arc<AtomicU32>) {
        failures.reverse();
        let commits = Arc::new(AtomicU32::new(0));
        let backend = Scripted {
            failures: Mutex::new(failures),
            commits: commits.clone(),
        };
        let policy = RetryPolicy {
            max_attempts,
            initial_backoff: Duration::from_micros(10),
            max_backoff: Duration::from_micros(100),
        };
        (Database::new(Arc::new(backend), policy, 3), commits)
    }

    #[tokio::test]
    async fn conflicts_retry_until_the_budget_runs_out() {
        let (db, commits) = database(vec![KvError::Conflict; 2], 5);
        let attempts = db
            .run(|_, attempt| async move { Ok::<_, KvError>(attempt.number) })
            .await
            .unwrap();
        assert_eq!((attempts, commits.load(Ordering::SeqCst)), (3, 3));

        let (db, commits) = database(vec![KvError::Conflict; 10], 4);
        let result = db.run(|_, _| async { Ok::<_, KvError>(()) }).await;
        assert_eq!(result, Err(KvError::Conflict));
        assert_eq!(commits.load(Ordering::SeqCst), 4);
    }

    #[tokio::test]
    async fn a_maybe_committed_attempt_is_never_reported_as_not_applied() {
        let failures = vec![KvError::MaybeCommitted("lost".into()), KvError::Conflict];
        let (db, _) = database(failures, 2);
        let result = db.run(|_, _| async { Ok::<_, KvError>(()) }).await;
        assert!(
            matches!(result, Err(KvError::MaybeCommitted(_))),
            "{result:?}"
        );

        // The body learns about it on the next attempt.
        let (db, _) = database(vec![KvError::MaybeCommitted("lost".into())], 3);
        let seen = db
            .run(|_, attempt| async move { Ok::<_, KvError>(attempt.maybe_committed) })
            .await
            .unwrap();
        assert!(seen);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let (db, commits) = database(vec![KvError::Backend("disk on fire".into())], 10);
        let result = db.run(|_, _| async { Ok::<_, KvError>(()) }).await;
        assert!(matches!(result, Err(KvError::Backend(_))));
        assert_eq!(commits.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn strinc_and_key_after_bound_prefixes() {
        assert_eq!(strinc(b"ab"), b"ac".to_vec());
        assert_eq!(strinc(b"a\xff"), b"b".to_vec());
        assert_eq!(key_after(b"a"), b"a\0".to_vec());
    }

    #[test]
    fn add_follows_foundationdb_rules() {
        assert_eq!(decode_counter(Some(&apply_add(None, 5))), 5);
        assert_eq!(decode_counter(Some(&apply_add(Some(&[1]), 1))), 2);
        let long = [1u8, 0, 0, 0, 0, 0, 0, 0, 9, 9];
        assert_eq!(decode_counter(Some(&apply_add(Some(&long), -1))), 0);
    }
}
