//! Idempotent-producer state in metadata, per partition.
//!
//! Life cycle: a segment commit writes the state of every producer that wrote
//! into it, in the same transaction as the chunks
//! ([`MetadataStore::commit_segment`]); a new leader reads them once its epoch is
//! taken ([`MetadataStore::producer_states`], or together with the epoch,
//! [`MetadataStore::acquire_leadership_with_producers`]); the partition's leader
//! removes those idle for too long ([`MetadataStore::expire_producer_states`],
//! Kafka's `producer.id.expiration.ms`), so they do not pile up with every
//! producer restart.
//!
//! Invariants: expiry is fenced by the partition's leader epoch, as commits are,
//! so only the current leader expires; and it reads the states it removes in its
//! own transaction, so a concurrent commit that refreshes a state either commits
//! first (expiry then conflicts, retries and sees the fresh state) or commits
//! after (and writes the state back): a refreshed state is never lost.

use crate::MetadataError;
use crate::codec::{self, Versioned};
use crate::keys::Keyspace;
use crate::kv::{RangeOptions, Transaction};
use crate::model::{ProducerState, TopicPartition};
use crate::store::MetadataStore;

/// The producer states of `partition`, by producer id, read in `txn`.
pub(crate) async fn producer_states_in(
    keys: &Keyspace,
    txn: &Transaction,
    partition: TopicPartition,
) -> Result<Vec<(i64, ProducerState)>, MetadataError> {
    let pairs = txn
        .get_prefix(&keys.producer_states_of(partition), RangeOptions::default())
        .await?;
    pairs
        .iter()
        .map(|pair| {
            let id = keys
                .producer_state_id(&pair.key)
                .ok_or_else(|| MetadataError::Corrupt {
                    what: ProducerState::WHAT,
                    detail: "malformed producer state key".into(),
                })?;
            Ok((id, codec::decode::<ProducerState>(&pair.value)?))
        })
        .collect()
}

impl MetadataStore {
    /// The committed idempotent-producer states of `partition`, by producer id. A
    /// new leader reads them after [`MetadataStore::acquire_leadership`]: from then
    /// on no older leader can commit, so they are final until it commits itself.
    pub async fn producer_states(
        &self,
        partition: TopicPartition,
    ) -> Result<Vec<(i64, ProducerState)>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move { producer_states_in(keys, &txn, partition).await })
            .await
    }

    /// Removes the producer states of `partition` whose last batch's timestamp
    /// (`last_timestamp`) is below `older_than_timestamp_ms`, and returns their
    /// producer ids in order. One transaction, fenced by `leader_epoch`: if the
    /// partition's epoch moved on, it is [`MetadataError::Fenced`] and removes
    /// nothing. The states it removes are read in the same transaction, so a
    /// concurrent segment commit that refreshes one either commits first (this
    /// conflicts, retries and keeps it) or after (and writes it back).
    pub async fn expire_producer_states(
        &self,
        partition: TopicPartition,
        leader_epoch: i32,
        older_than_timestamp_ms: i64,
    ) -> Result<Vec<i64>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let state = Self::partition_in(keys, &txn, partition).await?;
                if state.leader_epoch != leader_epoch {
                    return Err(MetadataError::Fenced {
                        partition,
                        current_epoch: state.leader_epoch,
                        attempted_epoch: leader_epoch,
                    });
                }
                let mut expired = Vec::new();
                for (producer_id, producer) in producer_states_in(keys, &txn, partition).await? {
                    if producer.last_timestamp < older_than_timestamp_ms {
                        txn.clear(&keys.producer_state(partition, producer_id));
                        expired.push(producer_id);
                    }
                }
                Ok(expired)
            })
            .await
    }
}
