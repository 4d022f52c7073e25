//! Transactions in metadata: each transactional id's producer and current
//! transaction, the offsets committed inside transactions, and the aborted
//! transactions of each partition.
//!
//! A transactional id lives on the coordinator shard of its id (the same
//! hash as groups, [`coordinator_shard_of`]), and every write of its record
//! is fenced by that shard's epoch, as group writes are: a coordinator that
//! lost its shard writes nothing.
//!
//! # How a transaction's outcome and its offsets commit together
//!
//! `TxnOffsetCommit` stores its offsets as *pending*, under
//! `("txn_offset", group, producer_id, …)`, not as the group's offsets.
//! [`MetadataStore::prepare_end_transaction`] then decides the transaction in
//! one metadata transaction: it writes the record in `PrepareCommit` (or
//! `PrepareAbort`) and, in the same commit, moves every pending offset of the
//! producer in the transaction's groups to the groups' committed offsets (or
//! drops them). So either the outcome and all its offsets are durable, or
//! nothing is. The markers written into the partitions afterwards only tell
//! readers an outcome that is already decided; a coordinator that dies before
//! writing them all leaves the record in `Prepare…`, and the next holder of
//! the shard writes them again.
//!
//! The aborted transactions of a partition are written by the segment commit
//! that holds the abort marker ([`crate::SegmentCommit::aborted`]), keyed by
//! the marker's offset, and read by `read_committed` fetches
//! ([`MetadataStore::aborted_transactions`]).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::MetadataError;
use crate::codec::{self, Versioned};
use crate::groups::{check_fence, check_shard_epoch, write_group};
use crate::kv::{RangeOptions, strinc};
use crate::model::*;
use crate::store::{MetadataStore, read, write};
use crate::{COORDINATOR_SHARDS, coordinator_shard_of};

/// Where a transactional id's transaction stands (Kafka's
/// `TransactionState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransactionPhase {
    /// No transaction is open.
    Empty,
    /// A transaction is open: partitions or groups were added.
    Ongoing,
    /// Decided to commit; markers are being written.
    PrepareCommit,
    /// Decided to abort; markers are being written.
    PrepareAbort,
    /// Committed, markers written.
    CompleteCommit,
    /// Aborted, markers written.
    CompleteAbort,
}

impl TransactionPhase {
    /// Kafka's name for the state (`ListTransactions`, `DescribeTransactions`).
    pub fn kafka_name(self) -> &'static str {
        match self {
            TransactionPhase::Empty => "Empty",
            TransactionPhase::Ongoing => "Ongoing",
            TransactionPhase::PrepareCommit => "PrepareCommit",
            TransactionPhase::PrepareAbort => "PrepareAbort",
            TransactionPhase::CompleteCommit => "CompleteCommit",
            TransactionPhase::CompleteAbort => "CompleteAbort",
        }
    }

    /// Whether the transaction is decided and its markers are being written.
    pub fn is_preparing(self) -> bool {
        matches!(
            self,
            TransactionPhase::PrepareCommit | TransactionPhase::PrepareAbort
        )
    }
}

/// A transactional id's producer and its current transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionRecord {
    /// The transactional id.
    pub transactional_id: String,
    /// Its producer id.
    pub producer_id: i64,
    /// The current producer epoch: a producer with an older one is fenced.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms`: an open transaction older than this is aborted.
    pub timeout_ms: i32,
    /// Where the current transaction stands.
    pub phase: TransactionPhase,
    /// The partitions the transaction wrote to (or may have): `(topic, partition)`.
    pub partitions: BTreeSet<(String, i32)>,
    /// The groups whose offsets it commits.
    pub groups: BTreeSet<String>,
    /// When the transaction opened, by the coordinator's clock (-1: none open).
    pub started_ms: i64,
    /// When the record last changed, by the coordinator's clock.
    pub updated_ms: i64,
}

impl Versioned for TransactionRecord {
    const WHAT: &'static str = "transaction";
    const VERSION: u8 = 1;
}

fn validate_transactional_id(id: &str) -> Result<(), MetadataError> {
    if id.is_empty() {
        return Err(MetadataError::invalid("the transactional id is empty"));
    }
    Ok(())
}

fn check_owner(fence: ShardFence, transactional_id: &str) -> Result<(), MetadataError> {
    let owner = coordinator_shard_of(transactional_id);
    if owner != fence.shard {
        return Err(MetadataError::invalid(format!(
            "transactional id {transactional_id:?} belongs to coordinator shard {owner}, not {}",
            fence.shard
        )));
    }
    Ok(())
}

impl MetadataStore {
    /// The record of `transactional_id`, if it has one.
    pub async fn load_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<Option<TransactionRecord>, MetadataError> {
        validate_transactional_id(transactional_id)?;
        let keys = self.keyspace();
        let key = keys.transaction(coordinator_shard_of(transactional_id), transactional_id);
        self.database()
            .run(|txn, _| {
                let key = key.clone();
                async move { read(&txn, &key).await }
            })
            .await
    }

    /// Writes `record` if `fence` still holds its shard.
    pub async fn store_transaction(
        &self,
        fence: ShardFence,
        record: &TransactionRecord,
    ) -> Result<(), MetadataError> {
        validate_transactional_id(&record.transactional_id)?;
        check_owner(fence, &record.transactional_id)?;
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                check_shard_epoch(keys, &txn, fence).await?;
                write(
                    &txn,
                    &keys.transaction(fence.shard, &record.transactional_id),
                    record,
                );
                Ok(())
            })
            .await
    }

    /// Every transactional id of coordinator shard `shard`.
    pub async fn shard_transactions(
        &self,
        shard: u32,
    ) -> Result<Vec<TransactionRecord>, MetadataError> {
        if shard >= COORDINATOR_SHARDS {
            return Err(MetadataError::invalid(format!(
                "coordinator shard {shard} is outside 0..{COORDINATOR_SHARDS}"
            )));
        }
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let pairs = txn
                    .get_prefix(&keys.transactions_of_shard(shard), RangeOptions::default())
                    .await?;
                pairs
                    .iter()
                    .map(|pair| codec::decode::<TransactionRecord>(&pair.value))
                    .collect()
            })
            .await
    }

    /// Decides a transaction: writes `record` (in `PrepareCommit` or
    /// `PrepareAbort`) and, in the same metadata transaction, moves the
    /// offsets its producer committed in each of its groups from pending to
    /// the groups' committed offsets (commit) or drops them (abort). Fenced
    /// by the shard's epoch, so the outcome and its offsets land together or
    /// not at all.
    pub async fn prepare_end_transaction(
        &self,
        fence: ShardFence,
        record: &TransactionRecord,
    ) -> Result<(), MetadataError> {
        validate_transactional_id(&record.transactional_id)?;
        check_owner(fence, &record.transactional_id)?;
        let commit = match record.phase {
            TransactionPhase::PrepareCommit => true,
            TransactionPhase::PrepareAbort => false,
            other => {
                return Err(MetadataError::invalid(format!(
                    "ending a transaction needs a prepare phase, not {other:?}"
                )));
            }
        };
        let keys = self.keyspace();
        let now = self.now_millis();
        self.database()
            .run(|txn, _| async move {
                check_shard_epoch(keys, &txn, fence).await?;
                for group in &record.groups {
                    let prefix = keys.pending_txn_offsets(group, record.producer_id);
                    let pairs = txn.get_prefix(&prefix, RangeOptions::default()).await?;
                    if commit && !pairs.is_empty() {
                        let shard = coordinator_shard_of(group);
                        if txn.get(&keys.group(shard, group)).await?.is_none() {
                            write_group(keys, &txn, &GroupRecord::empty(group.as_str()), now);
                        }
                    }
                    for pair in &pairs {
                        if !commit {
                            continue;
                        }
                        let (_, topic, partition) = keys
                            .pending_txn_offset_of(&pair.key)
                            .ok_or_else(|| MetadataError::Corrupt {
                                what: "pending transactional offset key",
                                detail: "not a (group, producer, topic, partition) tuple".into(),
                            })?;
                        let mut offset: CommittedOffset = codec::decode(&pair.value)?;
                        offset.commit_timestamp_ms = now;
                        write(&txn, &keys.group_offset(group, &topic, partition), &offset);
                    }
                    txn.clear_prefix(&prefix);
                }
                write(
                    &txn,
                    &keys.transaction(fence.shard, &record.transactional_id),
                    record,
                );
                Ok(())
            })
            .await
    }

    /// `TxnOffsetCommit`: stores offsets `producer_id` commits in `group`
    /// inside its open transaction, pending until the transaction ends, if
    /// `fence` still holds the group's shard.
    pub async fn store_pending_txn_offsets(
        &self,
        fence: ShardFence,
        group: &str,
        producer_id: i64,
        offsets: &[OffsetCommit],
    ) -> Result<(), MetadataError> {
        if group.is_empty() {
            return Err(MetadataError::invalid("the group id is empty"));
        }
        let keys = self.keyspace();
        let now = self.now_millis();
        self.database()
            .run(|txn, _| async move {
                check_fence(keys, &txn, fence, group).await?;
                for commit in offsets {
                    let value = CommittedOffset {
                        offset: commit.offset,
                        leader_epoch: commit.leader_epoch,
                        metadata: commit.metadata.clone(),
                        commit_timestamp_ms: now,
                    };
                    write(
                        &txn,
                        &keys.pending_txn_offset(
                            group,
                            producer_id,
                            &commit.topic,
                            commit.partition,
                        ),
                        &value,
                    );
                }
                Ok(())
            })
            .await
    }

    /// The `(topic, partition)`s of `group` with offsets pending in an open
    /// transaction (`OffsetFetch` with `require_stable` answers
    /// `UNSTABLE_OFFSET_COMMIT` for them).
    pub async fn pending_txn_partitions(
        &self,
        group: &str,
    ) -> Result<BTreeSet<(String, i32)>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let pairs = txn
                    .get_prefix(
                        &keys.pending_txn_offsets_of_group(group),
                        RangeOptions::default(),
                    )
                    .await?;
                Ok(pairs
                    .iter()
                    .filter_map(|pair| keys.pending_txn_offset_of(&pair.key))
                    .map(|(_, topic, partition)| (topic, partition))
                    .collect())
            })
            .await
    }

    /// The aborted transactions of `partition` a read of offsets
    /// `from_offset..to_offset` must know: those whose abort marker is at or
    /// after `from_offset` and whose first batch is before `to_offset`, in
    /// marker order, at most `limit`.
    pub async fn aborted_transactions(
        &self,
        partition: TopicPartition,
        from_offset: i64,
        to_offset: i64,
        limit: usize,
    ) -> Result<Vec<AbortedTransaction>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let begin = keys.aborted_transaction(partition, from_offset);
                let end = strinc(&keys.aborted_transactions_of(partition));
                let pairs = txn
                    .get_range(&begin, &end, RangeOptions::first(limit))
                    .await?;
                let mut aborted = Vec::new();
                for pair in &pairs {
                    let entry: AbortedTransaction = codec::decode(&pair.value)?;
                    if entry.first_offset < to_offset {
                        aborted.push(entry);
                    }
                }
                Ok(aborted)
            })
            .await
    }

    /// Removes the aborted transactions of `partition` whose marker is below
    /// `log_start` (retention moved past them).
    pub async fn release_aborted_transactions(
        &self,
        partition: TopicPartition,
        log_start: i64,
    ) -> Result<(), MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                txn.clear_range(
                    &keys.aborted_transactions_of(partition),
                    &keys.aborted_transaction(partition, log_start),
                );
                Ok(())
            })
            .await
    }
}
