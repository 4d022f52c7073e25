//! The idempotent producer's checks on one partition, as Apache Kafka makes them
//! (`ProducerStateManager` / `ProducerAppendInfo`).
//!
//! A batch from producer id `p` with epoch `e` and base sequence `s`:
//!
//! - is **refused** with `INVALID_PRODUCER_EPOCH` if `e` is older than the epoch
//!   last seen from `p`;
//! - is a **duplicate** if `e` equals the last epoch and one of the last
//!   [`ProducerState::MAX_BATCHES`] batches had exactly its sequence range: it is
//!   not appended again, and the producer is answered with the original offset;
//! - under a **new epoch** must start at sequence 0 (`OUT_OF_ORDER_SEQUENCE_NUMBER`
//!   otherwise), unless nothing is known of `p` (its state expired or was never
//!   committed here), when any sequence is accepted;
//! - under the **same epoch** must follow the last sequence by one (wrapping from
//!   `i32::MAX` to 0), else `OUT_OF_ORDER_SEQUENCE_NUMBER`.
//!
//! The table here is the leader's view: the committed states read from metadata
//! when leadership was taken, advanced by every batch accepted since. Each accepted
//! batch carries the state as it stands after it, so a flush commits exactly the
//! state of what it commits.

use std::collections::HashMap;

use fjord_metadata::{ProducerBatch, ProducerState};

use crate::records::Batch;

/// `producerId` of batches from producers that are not idempotent.
pub const NO_PRODUCER_ID: i64 = -1;

/// What to do with a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Not from an idempotent producer: append, nothing to record.
    Plain,
    /// Append it; the producer's state afterwards is the one given.
    Append {
        /// The producer id.
        producer_id: i64,
        /// Its state once this batch is appended (at the offsets given to
        /// [`ProducerTable::apply`]).
        state: ProducerState,
    },
    /// A retry of a batch already accepted at these offsets.
    Duplicate {
        /// The original first offset.
        base_offset: i64,
        /// The original last offset.
        last_offset: i64,
    },
}

/// Why a batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// `INVALID_PRODUCER_EPOCH`.
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    StaleEpoch {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The latest epoch seen.
        current: i16,
    },
    /// `OUT_OF_ORDER_SEQUENCE_NUMBER`.
    #[error("producer {producer_id}: sequence {got} does not follow {last} (epoch {epoch})")]
    OutOfOrder {
        /// The producer.
        producer_id: i64,
        /// The batch's epoch.
        epoch: i16,
        /// The last sequence accepted (-1 for none).
        last: i32,
        /// The batch's base sequence.
        got: i32,
    },
}

/// The last sequence of a batch starting at `base` spanning `delta + 1` records,
/// wrapping past `i32::MAX` to 0 as Kafka's sequences do.
pub fn last_sequence(base: i32, delta: i32) -> i32 {
    let wrapped = (i64::from(base) + i64::from(delta)) % (i64::from(i32::MAX) + 1);
    // In range by construction: the remainder lies in 0..=i32::MAX.
    i32::try_from(wrapped).unwrap_or(i32::MAX)
}

fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// The idempotent producers of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerTable {
    producers: HashMap<i64, ProducerState>,
}

impl ProducerTable {
    /// A table holding the committed states read from metadata.
    pub fn from_committed(states: Vec<(i64, ProducerState)>) -> Self {
        Self {
            producers: states.into_iter().collect(),
        }
    }

    /// Decides what to do with `batch`, which would be appended at
    /// `base_offset`, without changing the table.
    pub fn check(&self, batch: &Batch, base_offset: i64) -> Result<Decision, SequenceError> {
        let producer_id = batch.producer_id;
        if producer_id == NO_PRODUCER_ID {
            return Ok(Decision::Plain);
        }
        let epoch = batch.producer_epoch;
        let first = batch.base_sequence;
        let last = last_sequence(first, batch.last_offset_delta);
        let current = self.producers.get(&producer_id);
        if let Some(current) = current {
            if epoch < current.producer_epoch {
                return Err(SequenceError::StaleEpoch {
                    producer_id,
                    epoch,
                    current: current.producer_epoch,
                });
            }
            if epoch == current.producer_epoch
                && let Some(original) = current
                    .batches
                    .iter()
                    .find(|b| b.first_sequence == first && b.last_sequence == last)
            {
                return Ok(Decision::Duplicate {
                    base_offset: original.base_offset,
                    last_offset: original.last_offset,
                });
            }
            if epoch == current.producer_epoch {
                let last_seen = current.batches.last().map_or(-1, |b| b.last_sequence);
                if !in_sequence(last_seen, first) {
                    return Err(SequenceError::OutOfOrder {
                        producer_id,
                        epoch,
                        last: last_seen,
                        got: first,
                    });
                }
            } else if first != 0 {
                return Err(SequenceError::OutOfOrder {
                    producer_id,
                    epoch,
                    last: -1,
                    got: first,
                });
            }
        }
        let mut batches = match current {
            Some(current) if current.producer_epoch == epoch => current.batches.clone(),
            _ => Vec::new(),
        };
        // A transactional batch opens its producer's transaction here unless
        // one is open; any batch leaves an open one open (its marker ends it).
        let open = current.and_then(|c| c.txn_first_offset);
        let txn_first_offset = match (open, batch.transactional) {
            (Some(first), _) => Some(first),
            (None, true) => Some(base_offset),
            (None, false) => None,
        };
        batches.push(ProducerBatch {
            first_sequence: first,
            last_sequence: last,
            base_offset,
            last_offset: base_offset + i64::from(batch.last_offset_delta),
        });
        if batches.len() > ProducerState::MAX_BATCHES {
            batches.remove(0);
        }
        Ok(Decision::Append {
            producer_id,
            state: ProducerState {
                producer_epoch: epoch,
                batches,
                last_timestamp: batch.max_timestamp,
                txn_first_offset,
            },
        })
    }

    /// Decides on a transaction marker (a control batch the leader writes at
    /// `offset` for the transaction coordinator) of `producer_id` at `epoch`:
    /// refused under an epoch older than the producer's (a coordinator that
    /// lost its transaction); otherwise it ends the producer's open
    /// transaction and carries its epoch (a bumped epoch restarts the
    /// sequences). Also returns, for an abort, the first offset of the
    /// transaction it aborts, if one was open.
    pub fn check_marker(
        &self,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        timestamp: i64,
    ) -> Result<(Decision, Option<i64>), SequenceError> {
        let current = self.producers.get(&producer_id);
        if let Some(current) = current
            && epoch < current.producer_epoch
        {
            return Err(SequenceError::StaleEpoch {
                producer_id,
                epoch,
                current: current.producer_epoch,
            });
        }
        let batches = match current {
            Some(current) if current.producer_epoch == epoch => current.batches.clone(),
            _ => Vec::new(),
        };
        let open = current.and_then(|c| c.txn_first_offset);
        let state = ProducerState {
            producer_epoch: epoch,
            batches,
            last_timestamp: current.map_or(timestamp, |c| c.last_timestamp.max(timestamp)),
            txn_first_offset: None,
        };
        let aborts = if commit { None } else { open };
        Ok((Decision::Append { producer_id, state }, aborts))
    }

    /// Every producer with its state, by producer id.
    pub fn all(&self) -> Vec<(i64, ProducerState)> {
        let mut all: Vec<_> = self
            .producers
            .iter()
            .map(|(id, state)| (*id, state.clone()))
            .collect();
        all.sort_unstable_by_key(|(id, _)| *id);
        all
    }

    /// The producers with a transaction open, with its first offset.
    pub fn open_transactions(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.producers
            .iter()
            .filter_map(|(id, state)| state.txn_first_offset.map(|first| (*id, first)))
    }

    /// Records an accepted batch's decision.
    pub fn apply(&mut self, decision: &Decision) {
        if let Decision::Append { producer_id, state } = decision {
            self.producers.insert(*producer_id, state.clone());
        }
    }

    /// The state of `producer_id`, if known.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerState> {
        self.producers.get(&producer_id)
    }

    /// Producers known, with their states.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer is known.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// The producers whose last batch's timestamp is below `older_than`
    /// (`producer.id.expiration.ms` ago), as Kafka's `ProducerStateManager`
    /// judges them.
    pub fn idle_since(&self, older_than: i64) -> Vec<i64> {
        let mut idle: Vec<i64> = self
            .producers
            .iter()
            // A producer with a transaction open stays until its marker.
            .filter(|(_, state)| {
                state.last_timestamp < older_than && state.txn_first_offset.is_none()
            })
            .map(|(id, _)| *id)
            .collect();
        idle.sort_unstable();
        idle
    }

    /// Forgets `producer_ids`: their next batch is judged as from an unknown
    /// producer.
    pub fn forget(&mut self, producer_ids: &[i64]) {
        for id in producer_ids {
            self.producers.remove(id);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use bytes::Bytes;

    use super::*;

    fn batch(producer_id: i64, epoch: i16, sequence: i32, count: i32) -> Batch {
        Batch {
            bytes: Bytes::new(),
            last_offset_delta: count - 1,
            record_count: count,
            max_timestamp: 1_000,
            base_offset: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence: sequence,
            transactional: false,
            control: false,
        }
    }

    /// Checks and applies `batch` at `offset`, as the leader does.
    fn accept(table: &mut ProducerTable, batch: &Batch, offset: i64) -> Decision {
        let decision = table.check(batch, offset).unwrap();
        table.apply(&decision);
        decision
    }

    #[test]
    fn sequences_follow_on_and_duplicates_get_their_original_offsets() {
        let mut table = ProducerTable::default();
        assert!(matches!(
            accept(&mut table, &batch(7, 0, 0, 3), 0),
            Decision::Append { .. }
        ));
        accept(&mut table, &batch(7, 0, 3, 2), 3);
        assert_eq!(
            table.check(&batch(7, 0, 0, 3), 99).unwrap(),
            Decision::Duplicate {
                base_offset: 0,
                last_offset: 2
            }
        );
        assert_eq!(
            table.check(&batch(7, 0, 3, 2), 99).unwrap(),
            Decision::Duplicate {
                base_offset: 3,
                last_offset: 4
            }
        );
        // A gap and a rewind that matches no batch are both out of order.
        assert!(matches!(
            table.check(&batch(7, 0, 6, 1), 5),
            Err(SequenceError::OutOfOrder {
                last: 4,
                got: 6,
                ..
            })
        ));
        assert!(matches!(
            table.check(&batch(7, 0, 1, 1), 5),
            Err(SequenceError::OutOfOrder { .. })
        ));
        assert_eq!(
            table.check(&batch(-1, -1, -1, 4), 5).unwrap(),
            Decision::Plain
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut table = ProducerTable::default();
        for i in 0..7 {
            accept(&mut table, &batch(1, 0, i, 1), i64::from(i));
        }
        assert_eq!(table.get(1).unwrap().batches.len(), 5);
        assert!(matches!(
            table.check(&batch(1, 0, 2, 1), 7).unwrap(),
            Decision::Duplicate { base_offset: 2, .. }
        ));
        // Sequence 1 has been forgotten: it is neither a duplicate nor in order.
        assert!(table.check(&batch(1, 0, 1, 1), 7).is_err());
    }

    #[test]
    fn epochs_fence_and_restart_sequences() {
        let mut table = ProducerTable::default();
        accept(&mut table, &batch(1, 2, 0, 5), 0);
        assert!(matches!(
            table.check(&batch(1, 1, 5, 1), 5),
            Err(SequenceError::StaleEpoch { current: 2, .. })
        ));
        // A new epoch must start at 0; then the old batches are not duplicates.
        assert!(table.check(&batch(1, 3, 5, 1), 5).is_err());
        accept(&mut table, &batch(1, 3, 0, 5), 5);
        assert_eq!(table.get(1).unwrap().batches.len(), 1);
        assert!(matches!(
            table.check(&batch(1, 3, 0, 5), 10).unwrap(),
            Decision::Duplicate { base_offset: 5, .. }
        ));
    }

    fn transactional(producer_id: i64, epoch: i16, sequence: i32, count: i32) -> Batch {
        Batch {
            transactional: true,
            ..batch(producer_id, epoch, sequence, count)
        }
    }

    #[test]
    fn a_transaction_opens_at_its_first_batch_and_its_marker_closes_it() {
        let mut table = ProducerTable::default();
        accept(&mut table, &transactional(3, 0, 0, 2), 10);
        accept(&mut table, &transactional(3, 0, 2, 2), 14);
        assert_eq!(table.get(3).unwrap().txn_first_offset, Some(10));
        assert_eq!(table.open_transactions().collect::<Vec<_>>(), vec![(3, 10)]);
        // An open transaction is never forgotten as idle.
        assert!(table.idle_since(i64::MAX).is_empty());

        // An abort marker ends it and names where it began.
        let (decision, aborts) = table.check_marker(3, 0, false, 2_000).unwrap();
        assert_eq!(aborts, Some(10));
        table.apply(&decision);
        assert_eq!(table.get(3).unwrap().txn_first_offset, None);
        // Sequences carry on under the same epoch.
        assert!(table.check(&transactional(3, 0, 4, 1), 20).is_ok());
        // A commit marker names nothing; the next transaction opens anew.
        accept(&mut table, &transactional(3, 0, 4, 1), 20);
        let (decision, aborts) = table.check_marker(3, 0, true, 2_000).unwrap();
        assert_eq!(aborts, None);
        table.apply(&decision);
        assert!(table.open_transactions().next().is_none());
    }

    #[test]
    fn a_marker_under_a_bumped_epoch_fences_the_old_producer() {
        let mut table = ProducerTable::default();
        accept(&mut table, &transactional(3, 4, 0, 2), 0);
        // The coordinator aborts the transaction under epoch 5 (a timeout, or
        // a new instance of the transactional id).
        let (decision, aborts) = table.check_marker(3, 5, false, 1_000).unwrap();
        assert_eq!(aborts, Some(0));
        table.apply(&decision);
        assert!(matches!(
            table.check(&transactional(3, 4, 2, 1), 3),
            Err(SequenceError::StaleEpoch { current: 5, .. })
        ));
        // The new epoch starts its sequences at 0.
        assert!(table.check(&transactional(3, 5, 0, 1), 3).is_ok());
        // A marker older than the producer's epoch is refused.
        assert!(matches!(
            table.check_marker(3, 4, true, 1_000),
            Err(SequenceError::StaleEpoch { .. })
        ));
    }

    #[test]
    fn unknown_producers_may_start_anywhere_and_sequences_wrap() {
        let mut table = ProducerTable::default();
        accept(&mut table, &batch(4, 0, i32::MAX - 1, 2), 0);
        assert_eq!(table.get(4).unwrap().batches[0].last_sequence, i32::MAX);
        assert!(matches!(
            accept(&mut table, &batch(4, 0, 0, 3), 2),
            Decision::Append { .. }
        ));
        assert_eq!(last_sequence(i32::MAX, 2), 1);
        assert_eq!(last_sequence(5, 0), 5);
    }
}
