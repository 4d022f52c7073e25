//! Forgetting idle idempotent producers (`producer.id.expiration.ms`): the
//! leader of each partition drops them from its table and from metadata, in a
//! transaction fenced by its epoch (the job that calls this is
//! [`crate::maintenance::producer_expiry`]).

use crate::log::PartitionLogs;
use crate::log::state;

impl PartitionLogs {
    /// Forgets, in every partition this agent leads, the idempotent producers
    /// whose last batch's timestamp is older than the expiration. A partition
    /// with batches accepted and not committed is left for the next check (a
    /// batch in flight carries its producer's state to its commit). Returns how
    /// many producers were forgotten.
    pub async fn expire_producers(&self) -> usize {
        let expiration =
            i64::try_from(self.settings.producer_id_expiration.as_millis()).unwrap_or(i64::MAX);
        let older_than = self.clock.now_millis().saturating_sub(expiration);
        let mut expired = 0;
        for (partition, writer) in self.writers.all() {
            let epoch = {
                let locked = state::lock(&writer);
                if locked.removed || locked.draining || !locked.is_idle() {
                    continue;
                }
                if locked.producers.idle_since(older_than).is_empty() {
                    continue;
                }
                locked.epoch
            };
            match self
                .store
                .expire_producer_states(partition, epoch, older_than)
                .await
            {
                Ok(removed) => {
                    let mut locked = state::lock(&writer);
                    if locked.epoch == epoch {
                        // A producer that wrote since keeps its newer state.
                        let still_idle: Vec<i64> = locked
                            .producers
                            .idle_since(older_than)
                            .into_iter()
                            .filter(|id| removed.contains(id))
                            .collect();
                        locked.producers.forget(&still_idle);
                        expired += still_idle.len();
                    }
                }
                Err(error) => {
                    tracing::warn!(%partition, %error, "expiring idle producers failed");
                }
            }
        }
        expired
    }
}
