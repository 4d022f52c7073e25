//! Wake-ups for reads that wait for data: one signal per partition, raised
//! when a commit of that partition lands here or its leadership changes, so a
//! long-polling fetch wakes for its own partitions only.
//!
//! Partitions this agent does not lead get no local signal from commits
//! (those happen elsewhere). For each such partition somebody waits on, one
//! poller reads its state in metadata every [`OTHERS_POLL`] and raises the
//! signal when the high watermark, the log start or the leadership moved; it
//! ends once nobody waits. However many reads wait on a partition here
//! (HTTP tails behind a load balancer land mostly on agents that do not lead
//! it), metadata sees one read per partition per interval. A wait still
//! looks again every [`FALLBACK_POLL`] in case a signal was missed.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fjord_metadata::{MetadataStore, TopicPartition};
use futures::future::select_all;
use tokio::sync::watch;

use crate::log::PartitionLogs;

/// How often the poller of a partition led elsewhere reads its state.
pub const OTHERS_POLL: Duration = Duration::from_millis(100);

/// How long a wait on a partition led elsewhere trusts its signal alone.
const FALLBACK_POLL: Duration = Duration::from_secs(10);

/// The signals and the pollers, under one lock: a poller decides to end, and
/// a new waiter decides whether one runs, in the same critical section.
#[derive(Debug, Default)]
struct Signals {
    senders: HashMap<TopicPartition, watch::Sender<u64>>,
    /// Partitions led elsewhere with a poller running.
    polled: HashSet<TopicPartition>,
}

/// Per-partition commit signals.
#[derive(Debug, Default, Clone)]
pub(crate) struct CommitSignals {
    inner: Arc<Mutex<Signals>>,
}

impl CommitSignals {
    fn lock(&self) -> std::sync::MutexGuard<'_, Signals> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A receiver that changes at the next [`CommitSignals::notify`] of
    /// `partition`.
    pub(crate) fn subscribe(&self, partition: TopicPartition) -> watch::Receiver<u64> {
        Self::subscribe_locked(&mut self.lock(), partition)
    }

    fn subscribe_locked(signals: &mut Signals, partition: TopicPartition) -> watch::Receiver<u64> {
        // Signals nobody listens to are dropped as new ones are made.
        if signals.senders.len() > 1024 {
            signals
                .senders
                .retain(|_, sender| sender.receiver_count() > 0);
        }
        signals
            .senders
            .entry(partition)
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// Wakes whoever waits on `partition`.
    pub(crate) fn notify(&self, partition: TopicPartition) {
        Self::notify_locked(&self.lock(), partition);
    }

    fn notify_locked(signals: &Signals, partition: TopicPartition) {
        if let Some(sender) = signals.senders.get(&partition) {
            sender.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    /// A receiver for `partition`, led elsewhere: starts its poller unless one
    /// runs.
    fn subscribe_remote(
        &self,
        partition: TopicPartition,
        store: &MetadataStore,
    ) -> watch::Receiver<u64> {
        let mut signals = self.lock();
        let receiver = Self::subscribe_locked(&mut signals, partition);
        if signals.polled.insert(partition) {
            tokio::spawn(self.clone().poll(partition, store.clone()));
        }
        receiver
    }

    /// Reads `partition`'s state every [`OTHERS_POLL`] and signals when it
    /// moved, until nobody waits on it.
    async fn poll(self, partition: TopicPartition, store: MetadataStore) {
        let mut last = None;
        loop {
            let state = store.partition_state(partition).await.ok().map(|s| {
                (
                    s.high_watermark,
                    s.log_start_offset,
                    s.leader,
                    s.leader_epoch,
                )
            });
            let waited_on = {
                let mut signals = self.lock();
                let waited_on = signals
                    .senders
                    .get(&partition)
                    .is_some_and(|sender| sender.receiver_count() > 0);
                if !waited_on {
                    signals.polled.remove(&partition);
                } else if state.is_some() && state != last {
                    // The first read signals too: a commit between a waiter's
                    // read and this poller's first look would otherwise go
                    // unseen.
                    Self::notify_locked(&signals, partition);
                }
                waited_on
            };
            if !waited_on {
                return;
            }
            if state.is_some() {
                last = state;
            }
            tokio::time::sleep(OTHERS_POLL).await;
        }
    }
}

/// A subscription to the commits of some partitions.
#[derive(Debug)]
pub struct PartitionWatch {
    receivers: Vec<watch::Receiver<u64>>,
    /// Some partition is led elsewhere (or nowhere): look again now and then.
    poll: bool,
}

impl PartitionWatch {
    /// Resolves at the next commit or leadership change of a watched partition
    /// after the subscription (for one led elsewhere: once its poller saw it,
    /// or after [`FALLBACK_POLL`]).
    pub async fn changed(&mut self) {
        let poll = async {
            if self.poll {
                tokio::time::sleep(FALLBACK_POLL).await;
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
        let mut poll = false;
        let receivers = partitions
            .iter()
            .map(|p| {
                if self.writers.get(p).is_some() {
                    self.signals.subscribe(*p)
                } else {
                    poll = true;
                    self.signals.subscribe_remote(*p, &self.store)
                }
            })
            .collect();
        PartitionWatch { receivers, poll }
    }
}
