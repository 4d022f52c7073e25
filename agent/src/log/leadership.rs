//! Taking, handing off and forgetting partitions.
//!
//! # Invariants
//!
//! - One acquisition per partition at a time: a produce and the balancer
//!   taking the same partition at once would bump its epoch twice and fence
//!   each other. Different partitions are taken concurrently (a takeover of
//!   many partitions is not serial).
//! - A partition placed on this agent is taken only when no *other live*
//!   agent holds it (it may still be committing what it accepted while handing
//!   off); a dead holder's or a released partition is taken at once.
//! - A hand-off ([`PartitionLogs::hand_off`]) is undone
//!   ([`PartitionLogs::keep`]) when the partition is placed here again before
//!   it finished: a partition led here and placed here is never left refusing
//!   produces. Both run under the partition's acquisition gate, so no produce
//!   is accepted between a hand-off's idle check and its release.
//! - Whenever this agent forgets a partition it led (fenced, deleted, a commit
//!   that found metadata out of line), every batch it held for it is answered,
//!   its WAL records are resolved, and — unless another agent fenced it — the
//!   leadership recorded in metadata is released or taken again by the
//!   balancer ([`PartitionLogs::release_if_unheld`]), so no partition stays
//!   recorded under an agent that does not serve it.

use std::sync::Arc;

use fjord_metadata::TopicPartition;

use super::state::{self, PartitionWriter, Writer};
use super::{LogError, PartitionLogs, tail_key};
use crate::idempotence::ProducerTable;

impl PartitionLogs {
    /// The epoch this agent leads `partition` under, if it does.
    pub fn leads(&self, partition: TopicPartition) -> Option<i32> {
        self.writers
            .get(&partition)
            .map(|writer| state::lock(&writer).epoch)
    }

    /// The partitions this agent leads (or is handing off).
    pub fn led_partitions(&self) -> Vec<TopicPartition> {
        self.writers.partitions()
    }

    /// Takes leadership of `partition` (the balancer found it should).
    pub async fn take_over(&self, partition: TopicPartition) -> Result<(), LogError> {
        self.ensure_leader(partition).await.map(|_| ())
    }

    /// Drops `partition`, led under `epoch`, after another agent took it over:
    /// pending producers get a retriable error.
    pub fn lost(&self, partition: TopicPartition, epoch: i32) {
        self.forget(partition, epoch, &LogError::NotLeader(partition));
    }

    /// Records that `partition`'s log start moved to `log_start` (after a
    /// `DeleteRecords` committed in metadata).
    pub fn log_start_moved(&self, partition: TopicPartition, log_start: i64) {
        if let Some(writer) = self.writers.get(&partition) {
            let mut writer = state::lock(&writer);
            writer.log_start = writer.log_start.max(log_start);
        }
    }

    /// Hands `partition` off: refuses produces from now on, and once everything
    /// accepted is committed, releases leadership in metadata and forgets the
    /// partition. Called repeatedly until done.
    pub async fn hand_off(&self, partition: TopicPartition) {
        // Under the gate, so a hand-off undone ([`Self::keep`]) cannot let a
        // produce in between the idle check and the release.
        let gate = self.acquisition_gate(partition);
        let _changing = gate.lock().await;
        let Some(writer) = self.writers.get(&partition) else {
            return;
        };
        let ready = {
            let mut locked = state::lock(&writer);
            locked.draining = true;
            locked.is_idle().then_some(locked.epoch)
        };
        let Some(epoch) = ready else {
            self.flush_now.notify_one();
            return;
        };
        match self
            .store
            .release_leadership(partition, self.node_id, epoch)
            .await
        {
            Ok(released) => {
                tracing::info!(%partition, epoch, released, "handed leadership off");
                self.remove(partition, &writer);
            }
            Err(error) => tracing::warn!(%partition, %error, "releasing leadership failed"),
        }
    }

    /// Whether this agent is handing `partition` off (it leads it and refuses
    /// produces for it until what it accepted is committed).
    pub fn handing_off(&self, partition: TopicPartition) -> bool {
        self.writers
            .get(&partition)
            .is_some_and(|writer| state::lock(&writer).draining)
    }

    /// Undoes a hand-off not finished yet: `partition` was placed elsewhere,
    /// then back here before everything it had accepted was committed. It
    /// accepts produces again, under the same epoch (leadership was never
    /// released, so nothing else could have written to it).
    pub async fn keep(&self, partition: TopicPartition) {
        let gate = self.acquisition_gate(partition);
        let _changing = gate.lock().await;
        let Some(writer) = self.writers.get(&partition) else {
            return;
        };
        let mut locked = state::lock(&writer);
        if locked.draining && !locked.removed {
            locked.draining = false;
            tracing::info!(%partition, epoch = locked.epoch, "hand-off undone: the partition is placed here again");
        }
    }

    /// Releases `partition` in metadata if metadata records this agent as its
    /// leader under `epoch` while this agent does not lead it in memory. The
    /// balancer calls it for partitions placed elsewhere (review finding H2: a
    /// partition forgotten after a failed commit must not stay recorded here,
    /// or its owner would wait for this agent forever). Returns whether it
    /// released.
    pub async fn release_if_unheld(
        &self,
        partition: TopicPartition,
        epoch: i32,
    ) -> Result<bool, LogError> {
        let gate = self.acquisition_gate(partition);
        let _acquiring = gate.lock().await;
        if self.writers.get(&partition).is_some() {
            return Ok(false);
        }
        let released = self
            .store
            .release_leadership(partition, self.node_id, epoch)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))?;
        if released {
            tracing::info!(%partition, epoch, "released a leadership recorded here but not held");
        }
        Ok(released)
    }

    /// Forgets `partition` if this agent still leads it under `epoch`: every
    /// batch not committed is answered with `error`, its WAL records are
    /// resolved, and the tail cache drops it. A writer under another epoch is
    /// left alone. Leadership in metadata is not touched (see the module docs).
    pub(crate) fn forget(&self, partition: TopicPartition, epoch: i32, error: &LogError) {
        let Some(writer) = self.writers.get(&partition) else {
            return;
        };
        if state::lock(&writer).epoch != epoch {
            return;
        }
        self.remove(partition, &writer);
        let dropped = {
            let mut locked = state::lock(&writer);
            let mut dropped = std::mem::take(&mut locked.returned);
            dropped.append(&mut locked.pending);
            dropped
        };
        let bytes: usize = dropped.iter().map(|p| p.batch.len()).sum();
        self.unflushed.release(bytes);
        // Batches dropped because the agent stops stay in the WAL: the next
        // start commits them if this agent still leads their partition then.
        if !matches!(error, LogError::Stopped) {
            self.resolve_wal(dropped.iter().filter_map(|p| p.wal_sequence));
        }
        for mut pending in dropped {
            pending.answer(Err(error.clone()));
        }
        self.tail.invalidate_partition(tail_key(partition));
        tracing::warn!(%partition, epoch, %error, "forgot partition");
    }

    /// Takes `writer` out of the table (if it is still the one there) and
    /// marks it removed, waking whoever waits on the partition.
    fn remove(&self, partition: TopicPartition, writer: &Writer) {
        if self.writers.remove_if(&partition, writer) {
            state::lock(writer).removed = true;
        }
        self.signals.notify(partition);
        self.changes.send_modify(|n| *n += 1);
    }

    fn acquisition_gate(&self, partition: TopicPartition) -> Arc<tokio::sync::Mutex<()>> {
        let mut gates = self.acquiring.lock().unwrap_or_else(|e| e.into_inner());
        // Gates nobody holds are dropped as others are made, so the table stays
        // as small as the acquisitions in progress.
        gates.retain(|_, gate| Arc::strong_count(gate) > 1);
        gates.entry(partition).or_default().clone()
    }

    /// The writer of `partition`, taking leadership unless this agent holds it
    /// already, and reading the committed high watermark and producer states.
    pub(crate) async fn ensure_leader(
        &self,
        partition: TopicPartition,
    ) -> Result<Writer, LogError> {
        if let Some(writer) = self.usable_writer(partition)? {
            return Ok(writer);
        }
        let gate = self.acquisition_gate(partition);
        let _acquiring = gate.lock().await;
        if let Some(writer) = self.usable_writer(partition)? {
            return Ok(writer);
        }
        if self.is_stopped() {
            return Err(LogError::Stopped);
        }
        let topic = self
            .topics
            .by_id(partition.topic_id)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))?;
        if partition.partition < 0 || partition.partition >= topic.partition_count {
            return Err(LogError::UnknownPartition(partition));
        }
        if !self.placement.owns(partition, topic.partition_count) {
            return Err(LogError::NotLeader(partition));
        }
        // Another live agent still holds it (handing off): wait for its release
        // rather than fence what it is committing.
        let current = self
            .store
            .partition_state(partition)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))?;
        if let Some(holder) = current.leader
            && holder != self.node_id
            && self.placement.is_live(holder)
        {
            return Err(LogError::NotLeader(partition));
        }
        let (state, producers) = self
            .store
            .acquire_leadership_with_producers(partition, self.node_id, current.leader_epoch)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))?;
        tracing::info!(%partition, epoch = state.leader_epoch, high_watermark = state.high_watermark, producers = producers.len(), "took leadership");
        let writer = self.writers.insert(
            partition,
            PartitionWriter::new(
                state.leader_epoch,
                state.high_watermark,
                state.log_start_offset,
                ProducerTable::from_committed(producers),
            ),
        );
        self.signals.notify(partition);
        Ok(writer)
    }

    /// The writer of `partition` if this agent leads it and accepts produces.
    fn usable_writer(&self, partition: TopicPartition) -> Result<Option<Writer>, LogError> {
        let Some(writer) = self.writers.get(&partition) else {
            return Ok(None);
        };
        let locked = state::lock(&writer);
        if locked.draining || locked.removed {
            return Err(LogError::NotLeader(partition));
        }
        drop(locked);
        Ok(Some(writer))
    }
}
