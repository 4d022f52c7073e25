//! Wake-ups for reads that wait for data: one signal per partition, raised
//! when a commit of that partition lands here or its leadership changes, so a
//! long-polling fetch wakes for its own partitions only.
//!
//! Partitions this agent does not lead get no local signal (their commits
//! happen elsewhere): a wait that includes one also wakes every
//! [`OTHERS_POLL`] to read metadata again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use fjord_metadata::TopicPartition;
use futures::future::select_all;
use tokio::sync::watch;

use crate::log::PartitionLogs;

/// How often a wait that includes partitions led elsewhere looks again.
pub const OTHERS_POLL: Duration = Duration::from_millis(250);

/// Per-partition commit signals.
#[derive(Debug, Default)]
pub(crate) struct CommitSignals {
    senders: Mutex<HashMap<TopicPartition, watch::Sender<u64>>>,
}

impl CommitSignals {
    /// A receiver that changes at the next [`CommitSignals::notify`] of
    /// `partition`.
    pub(crate) fn subscribe(&self, partition: TopicPartition) -> watch::Receiver<u64> {
        let mut senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        // Signals nobody listens to are dropped as new ones are made.
        if senders.len() > 1024 {
            senders.retain(|_, sender| sender.receiver_count() > 0);
        }
        senders
            .entry(partition)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes whoever waits on `partition`.
    pub(crate) fn notify(&self, partition: TopicPartition) {
        let senders = self.senders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(sender) = senders.get(&partition) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }
}

/// A subscription to the commits of some partitions.
#[derive(Debug)]
pub struct PartitionWatch {
    receivers: Vec<watch::Receiver<u64>>,
    /// Some partition is led elsewhere (or nowhere): poll.
    poll: bool,
}

impl PartitionWatch {
    /// Resolves at the next commit or leadership change of a watched partition
    /// after the subscription (or after [`OTHERS_POLL`] when one of them is not
    /// led here).
    pub async fn changed(&mut self) {
        let poll = async {
            if self.poll {
                tokio::time::sleep(OTHERS_POLL).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        if self.receivers.is_empty() {
            poll.await;
            return;
        }
        let any = select_all(self.receivers.iter_mut().map(|r| Box::pin(r.changed())));
        tokio::select! {
            _ = any => {}
            _ = poll => {}
        }
    }
}

impl PartitionLogs {
    /// Subscribes to the commits of `partitions`: take it *before* reading, so
    /// a commit between the read and the wait is not missed.
    pub fn watch(&self, partitions: &[TopicPartition]) -> PartitionWatch {
        let receivers = partitions
            .iter()
            .map(|p| self.signals.subscribe(*p))
            .collect();
        let poll = partitions.iter().any(|p| self.writers.get(p).is_none());
        PartitionWatch { receivers, poll }
    }
}
