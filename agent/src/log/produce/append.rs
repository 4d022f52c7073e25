//! Accepting a produce: validate, check the idempotent producer's sequence,
//! assign offsets, queue the batches in the WAL and for the next flush.
//!
//! Nothing is awaited while a lock is held: the wait for room in the WAL
//! (its byte budget) and for room in the unflushed budget happen before the
//! partition's lock is taken; numbering and queuing the WAL record under it is
//! synchronous.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use fjord_metadata::TopicPartition;
use futures::future::BoxFuture;
use tokio::sync::oneshot;

use super::ahead::{self, Ahead};
use super::wal_record;
use crate::idempotence::Decision;
use crate::log::state::{self, Pending};
use crate::log::{Acks, Appended, LogError, PartitionLogs};
use crate::records::{self, BatchError};

impl PartitionLogs {
    /// Waits while more than the allowed bytes are accepted and unflushed.
    async fn wait_for_room(&self) -> Result<(), LogError> {
        loop {
            if self.is_stopped() {
                return Err(LogError::Stopped);
            }
            if !self.unflushed.is_full() {
                return Ok(());
            }
            self.flush_now.notify_one();
            tokio::select! {
                _ = self.unflushed.wait_for_release() => {}
                _ = self.stopped.cancelled() => {}
            }
        }
    }

    /// Validates `records` (one or more batches), checks the idempotent
    /// producer's sequence, assigns offsets, queues the batches in the WAL and
    /// for the next flush. The returned future resolves as `acks` asks.
    pub async fn append(
        self: &Arc<Self>,
        partition: TopicPartition,
        records: &Bytes,
        acks: Acks,
    ) -> Result<Appended, LogError> {
        self.append_at(partition, records, acks, None).await
    }

    /// [`append`](Self::append), only if the first record gets offset
    /// `expected` when it is given ([`LogError::OffsetMismatch`] otherwise,
    /// with nothing written). Checked under the partition's lock, where
    /// offsets are assigned. A retry of an idempotent batch already written is
    /// answered as a duplicate, before the check.
    pub async fn append_at(
        self: &Arc<Self>,
        partition: TopicPartition,
        records: &Bytes,
        acks: Acks,
        expected: Option<i64>,
    ) -> Result<Appended, LogError> {
        let batches = records::parse_batches(records)?;
        if let Some(large) = batches
            .iter()
            .find(|b| b.bytes.len() > self.settings.max_batch_bytes)
        {
            return Err(LogError::BatchTooLarge {
                size: large.bytes.len(),
                limit: self.settings.max_batch_bytes,
            });
        }
        if batches.iter().any(|b| b.control) {
            return Err(LogError::Batch(BatchError::Invalid(
                "control batches (transaction markers) are written by the leader, not produced"
                    .into(),
            )));
        }
        if batches.len() > 1 && batches.iter().any(|b| b.producer_id >= 0) {
            return Err(LogError::Batch(BatchError::Corrupt(
                "an idempotent produce must hold one record batch per partition".into(),
            )));
        }
        self.wait_for_room().await?;
        let writer = self.ensure_leader(partition).await?;
        // Only `acks=1` batches go to the WAL: their answer is the WAL's fsync.
        // An `acks=all` batch is answered after its commit, so a crash before
        // the commit loses only what nobody was told is written (the client
        // retries it); `acks=0` promises nothing.
        let mut reservation = match (&self.wal, acks) {
            (Some(wal), Acks::Leader) => Some(
                wal.reserve(wal_record::payload_len(batches.iter().map(|b| &b.bytes)))
                    .await
                    .map_err(LogError::wal)?,
            ),
            _ => None,
        };
        // Counted before the batches are queued, so the flusher's idle trigger
        // never sees them pending with nobody waiting.
        let mut waiting = match acks {
            Acks::All => Some(CommitWaiter::new(&self.commit_waiters)),
            Acks::Leader if self.wal.is_none() => Some(CommitWaiter::new(&self.commit_waiters)),
            Acks::Leader | Acks::None => None,
        };
        let (done, receiver) = oneshot::channel();
        let mut compress_ahead = Vec::new();
        let (base_offset, ticket) = {
            let mut writer = state::lock(&writer);
            if writer.removed || writer.draining {
                return Err(LogError::NotLeader(partition));
            }
            if self.is_stopped() {
                return Err(LogError::Stopped);
            }
            let decision = match batches.first() {
                Some(first) => writer.producers.check(first, writer.next_offset)?,
                None => Decision::Plain,
            };
            if let Decision::Duplicate {
                base_offset,
                last_offset,
            } = decision
            {
                let epoch = writer.epoch;
                drop(writer);
                let logs = self.clone();
                // A duplicate waits for the original's commit, whatever its acks.
                let waiting = waiting
                    .take()
                    .unwrap_or_else(|| CommitWaiter::new(&self.commit_waiters));
                return Ok(Appended {
                    base_offset,
                    durable: Box::pin(async move {
                        let _waiting = waiting;
                        logs.wait_committed(partition, epoch, last_offset).await?;
                        Ok(base_offset)
                    }),
                });
            }
            if let Some(expected) = expected.filter(|e| *e != writer.next_offset) {
                return Err(LogError::OffsetMismatch {
                    expected,
                    actual: writer.next_offset,
                });
            }
            // Offsets first, so the WAL record carries them; nothing changes in
            // the partition's state unless the record is queued.
            let base_offset = writer.next_offset;
            let mut offset = base_offset;
            let placed: Vec<(Bytes, i64)> = batches
                .iter()
                .map(|batch| {
                    let at = offset;
                    offset += i64::from(batch.last_offset_delta) + 1;
                    (batch.bytes.clone(), at)
                })
                .collect();
            // The WAL can bring back only a run of batches contiguous from the
            // committed high watermark: behind a batch that is not in it, an
            // `acks=1` batch is answered on its commit instead.
            if writer.unlogged_through > writer.committed && reservation.is_some() {
                reservation = None;
                waiting = Some(CommitWaiter::new(&self.commit_waiters));
            }
            let (wal_sequence, ticket) = match reservation {
                Some(reservation) => {
                    let payload = wal_record::payload(partition, &placed, writer.epoch);
                    let mut tracker = self.wal_tracker.lock().unwrap_or_else(|e| e.into_inner());
                    let (sequence, ticket) = reservation.enqueue(payload).map_err(LogError::wal)?;
                    tracker.register(sequence, u32::try_from(batches.len()).unwrap_or(u32::MAX));
                    (Some(sequence), Some(ticket))
                }
                None => (None, None),
            };
            writer.producers.apply(&decision);
            let producer = match decision {
                Decision::Append { producer_id, state } => Some((producer_id, state)),
                Decision::Plain | Decision::Duplicate { .. } => None,
            };
            let count = batches.len();
            let mut done = Some(done);
            let mut bytes = 0;
            for (index, (batch, (_, at))) in batches.into_iter().zip(placed).enumerate() {
                let last_offset = at + i64::from(batch.last_offset_delta);
                let last = index + 1 == count;
                bytes += batch.bytes.len();
                let ahead = Ahead::for_batch(&batch.bytes, writer.epoch);
                if let Some(ahead) = &ahead {
                    compress_ahead.push((ahead.clone(), batch.bytes.clone(), at));
                }
                writer.pending.push(Pending {
                    batch: batch.bytes,
                    base_offset: at,
                    last_offset,
                    record_count: u32::try_from(batch.record_count).unwrap_or(0),
                    max_timestamp: batch.max_timestamp,
                    wal_sequence,
                    producer: if last { producer.clone() } else { None },
                    aborts: None,
                    // The request's waiter rides on its last batch.
                    done: if last { done.take() } else { None },
                    ahead,
                });
                writer.next_offset = last_offset + 1;
            }
            if wal_sequence.is_none() {
                writer.unlogged_through = writer.next_offset;
            }
            if self.unflushed.add(bytes) >= self.settings.flush_bytes {
                self.flush_now.notify_one();
            }
            self.appended.notify_one();
            (base_offset, ticket)
        };
        ahead::spawn(compress_ahead, self.settings.compression_level);
        let committed = async move {
            match receiver.await {
                Ok(outcome) => outcome.map(|()| base_offset),
                Err(_) => Err(LogError::Stopped),
            }
        };
        let durable: BoxFuture<'static, Result<i64, LogError>> = match (acks, ticket) {
            (Acks::None, _) => Box::pin(async move { Ok(base_offset) }),
            (Acks::Leader, Some(ticket)) => {
                Box::pin(async move { ticket.await.map(|_| base_offset).map_err(LogError::wal) })
            }
            (Acks::Leader, None) | (Acks::All, _) => Box::pin(async move {
                let _waiting = waiting;
                committed.await
            }),
        };
        Ok(Appended {
            base_offset,
            durable,
        })
    }

    /// Writes a transaction marker (commit or abort) of `producer_id` at
    /// `epoch` into `partition`, as the transaction coordinator asks
    /// (`WriteTxnMarkers`). The returned future resolves with the marker's
    /// offset once it is committed (as `acks=all`). Refused with
    /// `INVALID_PRODUCER_EPOCH` under an epoch older than the producer's
    /// here.
    pub async fn append_marker(
        self: &Arc<Self>,
        partition: TopicPartition,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
    ) -> Result<BoxFuture<'static, Result<i64, LogError>>, LogError> {
        let timestamp = self.clock.now_millis();
        let bytes =
            records::control_batch(producer_id, epoch, commit, coordinator_epoch, timestamp)?;
        let batch = records::parse_batches(&bytes)?
            .pop()
            .ok_or_else(|| LogError::Batch(BatchError::Corrupt("an empty marker".into())))?;
        self.wait_for_room().await?;
        let writer = self.ensure_leader(partition).await?;
        let waiting = CommitWaiter::new(&self.commit_waiters);
        let (done, receiver) = oneshot::channel();
        let base_offset = {
            let mut writer = state::lock(&writer);
            if writer.removed || writer.draining {
                return Err(LogError::NotLeader(partition));
            }
            if self.is_stopped() {
                return Err(LogError::Stopped);
            }
            let (decision, aborts) =
                writer
                    .producers
                    .check_marker(producer_id, epoch, commit, timestamp)?;
            writer.producers.apply(&decision);
            let producer = match decision {
                Decision::Append { producer_id, state } => Some((producer_id, state)),
                Decision::Plain | Decision::Duplicate { .. } => None,
            };
            let base_offset = writer.next_offset;
            writer.pending.push(Pending {
                batch: batch.bytes.clone(),
                base_offset,
                last_offset: base_offset,
                record_count: 1,
                max_timestamp: batch.max_timestamp,
                wal_sequence: None,
                producer,
                aborts,
                done: Some(done),
                ahead: None,
            });
            writer.next_offset = base_offset + 1;
            writer.unlogged_through = writer.next_offset;
            if self.unflushed.add(batch.bytes.len()) >= self.settings.flush_bytes {
                self.flush_now.notify_one();
            }
            self.appended.notify_one();
            base_offset
        };
        Ok(Box::pin(async move {
            let _waiting = waiting;
            match receiver.await {
                Ok(outcome) => outcome.map(|()| base_offset),
                Err(_) => Err(LogError::Stopped),
            }
        }))
    }

    /// Resolves once this leader has committed `partition` through `last_offset`
    /// under `epoch`; fails if the partition was forgotten or moved meanwhile.
    pub(crate) async fn wait_committed(
        &self,
        partition: TopicPartition,
        epoch: i32,
        last_offset: i64,
    ) -> Result<(), LogError> {
        let mut changes = self.signals.subscribe(partition);
        loop {
            match self.writers.get(&partition) {
                Some(writer) => {
                    let writer = state::lock(&writer);
                    if writer.epoch != epoch || writer.removed {
                        return Err(LogError::NotLeader(partition));
                    }
                    if writer.committed > last_offset {
                        return Ok(());
                    }
                }
                None => return Err(LogError::NotLeader(partition)),
            }
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return Err(LogError::Stopped);
                    }
                }
                _ = self.stopped.cancelled() => return Err(LogError::Stopped),
            }
        }
    }
}

/// One request waiting for a commit, counted while it waits (dropped with the
/// request's future, answered or not), so the flusher knows whether anybody
/// waits on a flush ([`super::super::LogSettings::flush_idle`]).
struct CommitWaiter(Arc<AtomicUsize>);

impl CommitWaiter {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(count.clone())
    }
}

impl Drop for CommitWaiter {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
