//! The transaction coordinator (Kafka's `TransactionCoordinator`):
//! transactional ids, their producer ids and epochs, and each transaction
//! from its first partition to its markers.
//!
//! A transactional id is coordinated on the coordinator shard of its id (the
//! shards groups use, [`fjord_metadata::coordinator_shard_of`]); its record
//! lives in metadata, written under the shard's fence, so the agent that
//! holds the shard next carries on from it
//! ([`fjord_metadata::TransactionRecord`]).
//!
//! # A transaction
//!
//! ```text
//! InitProducerId ─▶ Empty ─AddPartitionsToTxn / AddOffsetsToTxn─▶ Ongoing
//!   ─EndTxn─▶ PrepareCommit | PrepareAbort   (one metadata commit: the
//!             outcome, and the offsets of TxnOffsetCommit moved or dropped)
//!   ─markers written in every partition─▶ CompleteCommit | CompleteAbort
//! ```
//!
//! - **Deciding.** `EndTxn` is decided by one metadata transaction
//!   ([`fjord_metadata::MetadataStore::prepare_end_transaction`]): once it
//!   commits, the outcome and the transaction's consumer offsets are durable
//!   together.
//! - **Markers.** Then a control batch (commit or abort) is written into each
//!   partition of the transaction by its leader (this agent's log, or
//!   another agent's through `WriteTxnMarkers`), committed like any batch.
//!   The marker ends the producer's open transaction there and moves the
//!   partition's last stable offset; an abort marker records the aborted
//!   transaction for `read_committed` readers. Markers go to every partition
//!   added, written or not, so each partition learns a bumped epoch and
//!   refuses a zombie's late batch.
//! - **Completing.** Once every marker is committed the record becomes
//!   `Complete…`. A coordinator that dies before leaves it in `Prepare…`; the
//!   next holder of the shard finds it on its first pass and writes the
//!   markers again (a second marker for a closed transaction changes
//!   nothing a reader sees).
//! - **Fencing zombies.** `InitProducerId` bumps the epoch. If a transaction
//!   is open it is first aborted under the bumped epoch, so its partitions
//!   refuse the old producer's batches (`INVALID_PRODUCER_EPOCH`) and the
//!   coordinator refuses its requests (`PRODUCER_FENCED`).
//! - **Timeouts.** A pass every [`PASS_INTERVAL`] aborts, under a bumped
//!   epoch, transactions open longer than their `transaction.timeout.ms`,
//!   and completes the ones left in `Prepare…`.
//!
//! Requests for one transactional id are handled one at a time (a lock per
//! id), so the read-decide-write of its record never races itself on this
//! agent; across agents the shard fence decides.

mod markers;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjord_common::Clock;
use fjord_metadata::{
    COORDINATOR_SHARDS, MetadataError, MetadataStore, ShardFence, TransactionPhase,
    TransactionRecord, coordinator_shard_of,
};
use tokio_util::sync::CancellationToken;

use crate::groups::{GroupCoordinator, GroupError};
use crate::log::PartitionLogs;

pub use markers::MarkerOutcome;

/// How often the coordinator looks for timed-out and unfinished transactions.
pub const PASS_INTERVAL: Duration = Duration::from_secs(1);
/// Kafka's `transaction.max.timeout.ms` default: the longest
/// `transaction.timeout.ms` a producer may ask for.
pub const MAX_TRANSACTION_TIMEOUT_MS: i32 = 900_000;
/// How long an `EndTxn` or `InitProducerId` waits for markers before it
/// answers (the outcome is decided; a later pass finishes the markers).
const MARKER_WAIT: Duration = Duration::from_secs(10);

/// Why a transaction request is refused; [`crate::kafka::errors::txn_error`]
/// maps each to Kafka's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxnError {
    /// This agent does not coordinate the transactional id.
    #[error("not the coordinator of this transactional id")]
    NotCoordinator,
    /// The coordinator cannot serve right now.
    #[error("transaction coordinator not available")]
    CoordinatorNotAvailable,
    /// A transaction of the id is being completed; retry.
    #[error("a transaction of this transactional id is being completed")]
    ConcurrentTransactions,
    /// A newer producer of the same transactional id exists.
    #[error("producer fenced: epoch {attempted} is not the current epoch {current}")]
    ProducerFenced {
        /// The current epoch.
        current: i16,
        /// The request's epoch.
        attempted: i16,
    },
    /// The producer id is not the transactional id's.
    #[error("the producer id is not the one of this transactional id")]
    InvalidProducerIdMapping,
    /// The request does not fit the transaction's state.
    #[error("invalid transaction state: {0}")]
    InvalidTxnState(String),
    /// `transaction.timeout.ms` outside `1..=transaction.max.timeout.ms`.
    #[error("transaction timeout {0} ms is outside 1..={MAX_TRANSACTION_TIMEOUT_MS}")]
    InvalidTransactionTimeout(i32),
    /// The transactional id is empty.
    #[error("invalid transactional id")]
    InvalidTransactionalId,
    /// Metadata failed in a way a retry will not fix.
    #[error("metadata: {0}")]
    Internal(String),
}

impl TxnError {
    fn from_group(error: GroupError) -> Self {
        match error {
            GroupError::NotCoordinator => TxnError::NotCoordinator,
            GroupError::CoordinatorNotAvailable => TxnError::CoordinatorNotAvailable,
            other => TxnError::Internal(other.to_string()),
        }
    }

    fn from_metadata(error: &MetadataError) -> Self {
        match error {
            MetadataError::CoordinatorFenced { .. } => TxnError::NotCoordinator,
            other => match other.kind() {
                fjord_metadata::ErrorKind::Retryable
                | fjord_metadata::ErrorKind::MaybeCommitted => TxnError::CoordinatorNotAvailable,
                _ => TxnError::Internal(other.to_string()),
            },
        }
    }
}

/// A producer id and epoch handed out by `InitProducerId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    /// The producer id.
    pub producer_id: i64,
    /// Its epoch.
    pub producer_epoch: i16,
}

/// What `DescribeTransactions` and `ListTransactions` show of one id.
pub type TransactionView = TransactionRecord;

/// The transaction coordinator of this agent.
pub struct TransactionCoordinator {
    store: MetadataStore,
    groups: Arc<GroupCoordinator>,
    clock: Arc<dyn Clock>,
    markers: markers::MarkerWriter,
    /// One request at a time per transactional id.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl std::fmt::Debug for TransactionCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransactionCoordinator")
            .finish_non_exhaustive()
    }
}

/// Holds a transactional id's lock; drops its table entry when it is the last.
struct IdGuard<'a> {
    coordinator: &'a TransactionCoordinator,
    id: String,
    lock: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for IdGuard<'_> {
    fn drop(&mut self) {
        self.lock.take();
        let mut locks = self
            .coordinator
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if locks
            .get(&self.id)
            .is_some_and(|l| Arc::strong_count(l) == 1)
        {
            locks.remove(&self.id);
        }
    }
}

impl TransactionCoordinator {
    /// A coordinator writing under `groups`' shards and markers through `logs`
    /// (or, for partitions other agents lead, their Kafka listeners).
    pub fn new(
        store: MetadataStore,
        groups: Arc<GroupCoordinator>,
        logs: Arc<PartitionLogs>,
        cluster: Arc<crate::cluster::ClusterView>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            markers: markers::MarkerWriter::new(logs, cluster),
            store,
            groups,
            clock,
            locks: Mutex::default(),
        }
    }

    /// Now, by the coordinator's clock (transaction start times are on it).
    pub fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    /// The node id of the agent that coordinates `transactional_id`.
    pub fn coordinator_of(&self, transactional_id: &str) -> i32 {
        self.groups
            .shard_owner(coordinator_shard_of(transactional_id))
    }

    /// `FindCoordinator` for a transactional id: takes the shard when it is
    /// this agent's, so the first request finds it.
    pub async fn find_coordinator(&self, transactional_id: &str) -> Result<i32, TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidTransactionalId);
        }
        let owner = self.coordinator_of(transactional_id);
        if self
            .groups
            .coordinates_shard(coordinator_shard_of(transactional_id))
        {
            self.fence(transactional_id).await?;
        }
        Ok(owner)
    }

    async fn lock(&self, id: &str) -> IdGuard<'_> {
        let lock = self
            .locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(id.to_owned())
            .or_default()
            .clone();
        IdGuard {
            coordinator: self,
            id: id.to_owned(),
            lock: Some(lock.lock_owned().await),
        }
    }

    async fn fence(&self, transactional_id: &str) -> Result<ShardFence, TxnError> {
        self.groups
            .shard_fence(coordinator_shard_of(transactional_id))
            .await
            .map_err(TxnError::from_group)
    }

    async fn load(&self, id: &str) -> Result<Option<TransactionRecord>, TxnError> {
        self.store
            .load_transaction(id)
            .await
            .map_err(|e| TxnError::from_metadata(&e))
    }

    async fn save(&self, fence: ShardFence, record: &TransactionRecord) -> Result<(), TxnError> {
        self.store
            .store_transaction(fence, record)
            .await
            .map_err(|e| TxnError::from_metadata(&e))
    }

    /// `InitProducerId` with a transactional id: the id's producer id under
    /// a new epoch (a new producer id when the epoch would overflow, or for
    /// a new transactional id). A transaction left open is aborted first,
    /// under the bumped epoch. With `expected` (KIP-360), the caller must be
    /// the current producer.
    pub async fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
    ) -> Result<ProducerIdAndEpoch, TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidTransactionalId);
        }
        if !(1..=MAX_TRANSACTION_TIMEOUT_MS).contains(&timeout_ms) {
            return Err(TxnError::InvalidTransactionTimeout(timeout_ms));
        }
        let _guard = self.lock(transactional_id).await;
        let fence = self.fence(transactional_id).await?;
        let now = self.clock.now_millis();
        let Some(mut record) = self.load(transactional_id).await? else {
            let producer_id = self.allocate().await?;
            let record = TransactionRecord {
                transactional_id: transactional_id.to_owned(),
                producer_id,
                producer_epoch: 0,
                timeout_ms,
                phase: TransactionPhase::Empty,
                partitions: BTreeSet::new(),
                groups: BTreeSet::new(),
                started_ms: -1,
                updated_ms: now,
            };
            self.save(fence, &record).await?;
            return Ok(ProducerIdAndEpoch {
                producer_id,
                producer_epoch: 0,
            });
        };
        if let Some(expected) = expected
            && (expected.producer_id != record.producer_id
                || expected.producer_epoch != record.producer_epoch)
        {
            return Err(TxnError::ProducerFenced {
                current: record.producer_epoch,
                attempted: expected.producer_epoch,
            });
        }
        if record.phase.is_preparing() {
            record = self.complete(fence, record).await?;
        }
        if record.phase == TransactionPhase::Ongoing {
            // Fence the old producer: abort its transaction under a new epoch.
            record = self.abort_fencing(fence, record, now).await?;
        }
        let mut record = self.bump(record).await?;
        record.timeout_ms = timeout_ms;
        record.phase = TransactionPhase::Empty;
        record.partitions.clear();
        record.groups.clear();
        record.started_ms = -1;
        record.updated_ms = now;
        self.save(fence, &record).await?;
        Ok(ProducerIdAndEpoch {
            producer_id: record.producer_id,
            producer_epoch: record.producer_epoch,
        })
    }

    async fn allocate(&self) -> Result<i64, TxnError> {
        self.store
            .allocate_producer_id()
            .await
            .map_err(|e| TxnError::from_metadata(&e))
    }

    /// The record under the next epoch; a new producer id at epoch 0 when
    /// the epoch would reach `i16::MAX` (as Kafka rotates it).
    async fn bump(&self, mut record: TransactionRecord) -> Result<TransactionRecord, TxnError> {
        if record.producer_epoch >= i16::MAX - 1 {
            record.producer_id = self.allocate().await?;
            record.producer_epoch = 0;
        } else {
            record.producer_epoch += 1;
        }
        Ok(record)
    }

    /// Checks a request's producer id and epoch against the record.
    fn check_producer(
        record: &TransactionRecord,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<(), TxnError> {
        if record.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if record.producer_epoch != producer_epoch {
            return Err(TxnError::ProducerFenced {
                current: record.producer_epoch,
                attempted: producer_epoch,
            });
        }
        Ok(())
    }

    /// `AddPartitionsToTxn` and `AddOffsetsToTxn` (the group is added; its
    /// offsets are committed with the transaction).
    pub async fn add_to_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        group: Option<&str>,
    ) -> Result<(), TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidTransactionalId);
        }
        let _guard = self.lock(transactional_id).await;
        let fence = self.fence(transactional_id).await?;
        let mut record = self
            .load(transactional_id)
            .await?
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        Self::check_producer(&record, producer_id, producer_epoch)?;
        if record.phase.is_preparing() {
            return Err(TxnError::ConcurrentTransactions);
        }
        let now = self.clock.now_millis();
        let mut changed = false;
        if record.phase != TransactionPhase::Ongoing {
            record.phase = TransactionPhase::Ongoing;
            record.partitions.clear();
            record.groups.clear();
            record.started_ms = now;
            changed = true;
        }
        for partition in partitions {
            changed |= record.partitions.insert(partition.clone());
        }
        if let Some(group) = group {
            changed |= record.groups.insert(group.to_owned());
        }
        if changed {
            record.updated_ms = now;
            self.save(fence, &record).await?;
        }
        Ok(())
    }

    /// `EndTxn`: decides the transaction (one metadata commit with its
    /// offsets), then writes its markers. A retry of an ended transaction's
    /// `EndTxn` with the same outcome succeeds.
    pub async fn end_transaction(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidTransactionalId);
        }
        let _guard = self.lock(transactional_id).await;
        let fence = self.fence(transactional_id).await?;
        let mut record = self
            .load(transactional_id)
            .await?
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        Self::check_producer(&record, producer_id, producer_epoch)?;
        match (record.phase, commit) {
            (TransactionPhase::Ongoing, _) => {}
            (TransactionPhase::CompleteCommit, true) | (TransactionPhase::CompleteAbort, false) => {
                return Ok(());
            }
            (TransactionPhase::PrepareCommit, true) | (TransactionPhase::PrepareAbort, false) => {
                self.complete(fence, record).await?;
                return Ok(());
            }
            (phase, _) => {
                return Err(TxnError::InvalidTxnState(format!(
                    "cannot {} a transaction in state {}",
                    if commit { "commit" } else { "abort" },
                    phase.kafka_name()
                )));
            }
        }
        record.phase = if commit {
            TransactionPhase::PrepareCommit
        } else {
            TransactionPhase::PrepareAbort
        };
        record.updated_ms = self.clock.now_millis();
        self.store
            .prepare_end_transaction(fence, &record)
            .await
            .map_err(|e| TxnError::from_metadata(&e))?;
        // Decided: whatever happens to the markers now, the answer is yes.
        if let Err(error) = self.complete(fence, record).await {
            tracing::warn!(%error, transactional_id, "transaction decided; its markers are finished later");
        }
        Ok(())
    }

    /// Writes the markers of a decided transaction and marks it complete.
    /// `ConcurrentTransactions` if the markers are not all written within
    /// [`MARKER_WAIT`] (a later pass finishes them).
    async fn complete(
        &self,
        fence: ShardFence,
        mut record: TransactionRecord,
    ) -> Result<TransactionRecord, TxnError> {
        let commit = match record.phase {
            TransactionPhase::PrepareCommit => true,
            TransactionPhase::PrepareAbort => false,
            _ => return Ok(record),
        };
        let outcome = self
            .markers
            .write(
                &record.partitions,
                record.producer_id,
                record.producer_epoch,
                commit,
                fence.epoch,
                MARKER_WAIT,
            )
            .await;
        if let MarkerOutcome::Pending(reason) = outcome {
            tracing::warn!(transactional_id = %record.transactional_id, %reason, "transaction markers not all written yet");
            return Err(TxnError::ConcurrentTransactions);
        }
        record.phase = if commit {
            TransactionPhase::CompleteCommit
        } else {
            TransactionPhase::CompleteAbort
        };
        record.partitions.clear();
        record.groups.clear();
        record.started_ms = -1;
        record.updated_ms = self.clock.now_millis();
        self.save(fence, &record).await?;
        Ok(record)
    }

    /// One pass over the shards this agent coordinates: transactions left in
    /// `Prepare…` are completed, open ones past their timeout aborted under
    /// a bumped epoch. Returns how many transactions it ended or completed.
    pub async fn pass(&self) -> usize {
        let mut done = 0;
        let now = self.clock.now_millis();
        for shard in 0..COORDINATOR_SHARDS {
            if !self.groups.coordinates_shard(shard) {
                continue;
            }
            let records = match self.store.shard_transactions(shard).await {
                Ok(records) => records,
                Err(error) => {
                    tracing::warn!(shard, %error, "reading a shard's transactions failed");
                    continue;
                }
            };
            for record in records {
                let expired = record.phase == TransactionPhase::Ongoing
                    && now.saturating_sub(record.started_ms) > i64::from(record.timeout_ms);
                if !(record.phase.is_preparing() || expired) {
                    continue;
                }
                match self.finish(&record.transactional_id, now).await {
                    Ok(true) => done += 1,
                    Ok(false) => {}
                    Err(error) => {
                        tracing::warn!(transactional_id = %record.transactional_id, %error, "finishing a transaction failed; the next pass retries");
                    }
                }
            }
        }
        done
    }

    /// Completes or times out one transaction, under its lock, from a fresh
    /// read of its record.
    async fn finish(&self, transactional_id: &str, now: i64) -> Result<bool, TxnError> {
        let _guard = self.lock(transactional_id).await;
        let fence = self.fence(transactional_id).await?;
        let Some(record) = self.load(transactional_id).await? else {
            return Ok(false);
        };
        if record.phase.is_preparing() {
            self.complete(fence, record).await?;
            return Ok(true);
        }
        let expired = record.phase == TransactionPhase::Ongoing
            && now.saturating_sub(record.started_ms) > i64::from(record.timeout_ms);
        if !expired {
            return Ok(false);
        }
        tracing::info!(
            transactional_id,
            producer_id = record.producer_id,
            timeout_ms = record.timeout_ms,
            "aborting a transaction open past its timeout"
        );
        self.abort_fencing(fence, record, now).await?;
        Ok(true)
    }

    /// Aborts the open transaction of `record` under the next epoch (so its
    /// producer is fenced everywhere the markers go), then completes it.
    async fn abort_fencing(
        &self,
        fence: ShardFence,
        record: TransactionRecord,
        now: i64,
    ) -> Result<TransactionRecord, TxnError> {
        let mut record = self.bump(record).await?;
        record.phase = TransactionPhase::PrepareAbort;
        record.updated_ms = now;
        self.store
            .prepare_end_transaction(fence, &record)
            .await
            .map_err(|e| TxnError::from_metadata(&e))?;
        self.complete(fence, record).await
    }

    /// Runs [`TransactionCoordinator::pass`] every [`PASS_INTERVAL`] until
    /// `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = tokio::time::sleep(PASS_INTERVAL) => {}
            }
            self.pass().await;
        }
    }

    /// `DescribeTransactions` of one id coordinated here.
    pub async fn describe(&self, transactional_id: &str) -> Result<TransactionView, TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidTransactionalId);
        }
        if !self
            .groups
            .coordinates_shard(coordinator_shard_of(transactional_id))
        {
            return Err(TxnError::NotCoordinator);
        }
        self.load(transactional_id)
            .await?
            .ok_or(TxnError::InvalidTxnState("unknown transactional id".into()))
    }

    /// `ListTransactions`: every transactional id this agent coordinates.
    pub async fn list(&self) -> Result<Vec<TransactionView>, TxnError> {
        let mut all = Vec::new();
        for shard in 0..COORDINATOR_SHARDS {
            if self.groups.coordinates_shard(shard) {
                all.extend(
                    self.store
                        .shard_transactions(shard)
                        .await
                        .map_err(|e| TxnError::from_metadata(&e))?,
                );
            }
        }
        Ok(all)
    }
}
