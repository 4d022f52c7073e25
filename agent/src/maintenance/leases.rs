//! Job leases: which job shards this agent runs, held in metadata.
//!
//! The jobs' work is spread over [`JOB_SHARDS`] shards: a partition's
//! retention by [`shard_of_partition`], a deleted topic and a garbage object
//! by [`shard_of`] their ids, bucket-wide work (object compaction, the orphan
//! sweep) on shard 0. Before each pass a job calls [`JobLeases::refresh`],
//! which brings metadata in line with this agent's cluster view, as the
//! balancer does for coordinator shards:
//!
//! - a shard placed here (over the live agents with the jobs role) is taken
//!   when nobody holds it or its holder is not live — at the epoch read, so
//!   of two agents deciding on the same state only one takes it;
//! - a shard placed here but held by another live agent is left to it: that
//!   agent gives it up once its own view places the shard elsewhere;
//! - a shard held here and placed elsewhere is released.
//!
//! The pass then runs the shards this agent holds in metadata, so two agents
//! whose views disagree for a while do not both run a shard: the first to
//! take it keeps it until its view moves it. A shard's jobs write nothing
//! under its epoch (every step is replay-safe, [`fjord_metadata`]'s `jobs`
//! module says why), so a pass that outlives its lease repeats work at worst.
//! At a graceful stop the agent releases what it holds
//! ([`JobLeases::release_all`]); a crashed agent's shards are taken once the
//! others see it dead.

use std::collections::BTreeMap;
use std::sync::Arc;

use fjord_metadata::{JOB_SHARDS, JobLease, MetadataError, MetadataStore, TopicPartition};

use crate::cluster::ClusterView;

/// The job shard of an id (a topic id, a segment id), the same on every
/// agent and build.
pub fn shard_of(id: &[u8]) -> u32 {
    crc32c::crc32c(id) % JOB_SHARDS
}

/// The job shard of a partition.
pub fn shard_of_partition(partition: TopicPartition) -> u32 {
    let mut id = [0u8; 20];
    id[..16].copy_from_slice(partition.topic_id.0.as_bytes());
    id[16..].copy_from_slice(&partition.partition.to_be_bytes());
    shard_of(&id)
}

/// The shard that runs bucket-wide work (object compaction, the orphan sweep).
pub const BUCKET_SHARD: u32 = 0;

/// This agent's leases on job shards.
#[derive(Debug)]
pub struct JobLeases {
    store: MetadataStore,
    view: Arc<ClusterView>,
    /// The leases this agent took and has not given up, by shard.
    held: std::sync::Mutex<BTreeMap<u32, JobLease>>,
}

/// The job shards held at one refresh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeldShards(Vec<bool>);

impl HeldShards {
    /// Whether the shard is held.
    pub fn holds(&self, shard: u32) -> bool {
        self.0.get(shard as usize).copied().unwrap_or(false)
    }

    /// Whether the shard of `partition` is held.
    pub fn holds_partition(&self, partition: TopicPartition) -> bool {
        self.holds(shard_of_partition(partition))
    }

    /// How many shards are held.
    pub fn count(&self) -> usize {
        self.0.iter().filter(|held| **held).count()
    }
}

impl JobLeases {
    /// Leases for the agent `view` is of.
    pub fn new(store: MetadataStore, view: Arc<ClusterView>) -> Arc<Self> {
        Arc::new(Self {
            store,
            view,
            held: std::sync::Mutex::default(),
        })
    }

    fn me(&self) -> i32 {
        self.view.me().node_id
    }

    fn held(&self) -> std::sync::MutexGuard<'_, BTreeMap<u32, JobLease>> {
        self.held.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the shards placed here that nobody live holds, gives up those
    /// placed elsewhere, and returns the shards this agent holds now.
    pub async fn refresh(&self) -> Result<HeldShards, MetadataError> {
        let me = self.me();
        let states = self.store.job_shards().await?;
        let mut held = vec![false; states.len()];
        for (index, state) in states.iter().enumerate() {
            let Ok(shard) = u32::try_from(index) else {
                continue;
            };
            let placed_here = self.view.owns_job_shard(shard, JOB_SHARDS);
            let mine = state.holder == Some(me);
            if mine {
                let lease = JobLease {
                    shard,
                    epoch: state.epoch,
                };
                if placed_here {
                    self.held().insert(shard, lease);
                    held[index] = true;
                } else {
                    self.held().remove(&shard);
                    self.store.release_job_shard(lease, me).await?;
                    tracing::debug!(shard, "job shard released: placed elsewhere");
                }
                continue;
            }
            self.held().remove(&shard);
            let free = state.holder.is_none_or(|holder| !self.view.is_live(holder));
            if placed_here
                && free
                && let Some(lease) = self.store.acquire_job_shard(shard, me, state.epoch).await?
            {
                tracing::debug!(shard, epoch = lease.epoch, previous = ?state.holder, "job shard taken");
                self.held().insert(shard, lease);
                held[index] = true;
            }
        }
        Ok(HeldShards(held))
    }

    /// Gives up every shard this agent holds (a graceful stop), so the others
    /// take them at their next pass without waiting to see it dead.
    pub async fn release_all(&self) {
        let leases: Vec<JobLease> = std::mem::take(&mut *self.held()).into_values().collect();
        let me = self.me();
        for lease in leases {
            if let Err(error) = self.store.release_job_shard(lease, me).await {
                tracing::warn!(shard = lease.shard, %error, "releasing a job shard failed; others take it once this agent is gone");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::LiveAgent;

    fn agent(node_id: i32) -> LiveAgent {
        LiveAgent {
            node_id,
            host: "127.0.0.1".into(),
            port: 9000,
        }
    }

    fn view(node_id: i32, live: &[i32]) -> Arc<ClusterView> {
        let view = Arc::new(ClusterView::new(agent(node_id)));
        view.set_live(live.iter().copied().map(agent).collect());
        view
    }

    /// Asserts no shard is held by both and returns how many each holds.
    fn split(a: &HeldShards, b: &HeldShards) -> (usize, usize) {
        for shard in 0..JOB_SHARDS {
            assert!(
                !(a.holds(shard) && b.holds(shard)),
                "shard {shard} held by both"
            );
        }
        (a.count(), b.count())
    }

    #[tokio::test]
    async fn two_agents_never_hold_a_shard_at_once_whatever_their_views() {
        let store = fjord_metadata::open("memory://").await.unwrap();
        let view_a = view(1, &[1, 2]);
        let view_b = view(2, &[1, 2]);
        let a = JobLeases::new(store.clone(), view_a.clone());
        let b = JobLeases::new(store.clone(), view_b.clone());

        // Views that agree: the shards are split as placed.
        let (held_a, held_b) = (a.refresh().await.unwrap(), b.refresh().await.unwrap());
        let (count_a, count_b) = split(&held_a, &held_b);
        assert_eq!(count_a + count_b, JOB_SHARDS as usize);
        assert!(count_a > 0 && count_b > 0, "{count_a} / {count_b}");

        // B stops seeing A and takes A's shards; A, which still sees B
        // alive, leaves them to it instead of taking them back.
        view_b.set_live(vec![agent(2)]);
        let held_b = b.refresh().await.unwrap();
        let held_a = a.refresh().await.unwrap();
        assert_eq!(split(&held_a, &held_b), (0, JOB_SHARDS as usize));

        // B sees A again: it gives A's shards back, and A takes them.
        view_b.set_live(vec![agent(1), agent(2)]);
        let held_b = b.refresh().await.unwrap();
        let held_a = a.refresh().await.unwrap();
        assert_eq!(split(&held_a, &held_b), (count_a, count_b));
        assert_eq!(held_a, a.refresh().await.unwrap(), "stable");

        // A stops gracefully: B takes everything at its next refresh.
        view_a.leave();
        a.release_all().await;
        view_b.set_live(vec![agent(2)]);
        let held_b = b.refresh().await.unwrap();
        assert_eq!(held_b.count(), JOB_SHARDS as usize);
        let shards = store.job_shards().await.unwrap();
        assert!(shards.iter().all(|s| s.holder == Some(2)));
    }

    #[tokio::test]
    async fn a_dead_holders_shards_are_taken_and_a_leaving_agent_gives_its_own_up() {
        let store = fjord_metadata::open("memory://").await.unwrap();
        let a = JobLeases::new(store.clone(), view(1, &[1]));
        assert_eq!(a.refresh().await.unwrap().count(), JOB_SHARDS as usize);
        // A dies without releasing; B, seeing only itself, takes every shard
        // under a new epoch.
        let view_b = view(2, &[2]);
        let b = JobLeases::new(store.clone(), view_b.clone());
        assert_eq!(b.refresh().await.unwrap().count(), JOB_SHARDS as usize);
        assert!(
            store
                .job_shards()
                .await
                .unwrap()
                .iter()
                .all(|s| s.holder == Some(2) && s.epoch == 2)
        );
        // A comes back (same node id) while B holds them: it takes nothing.
        let view_a = view(1, &[1, 2]);
        let a = JobLeases::new(store.clone(), view_a);
        let held_a = a.refresh().await.unwrap();
        view_b.set_live(vec![agent(1), agent(2)]);
        let held_b = b.refresh().await.unwrap();
        let (_, count_b) = split(&held_a, &held_b);
        assert_eq!(held_a.count(), 0);
        // B, leaving, holds nothing once it refreshed.
        view_b.leave();
        assert_eq!(b.refresh().await.unwrap().count(), 0);
        assert!(count_b > 0);
        assert!(
            store
                .job_shards()
                .await
                .unwrap()
                .iter()
                .all(|s| s.holder != Some(2))
        );
        // And A takes what it is placed now.
        assert!(a.refresh().await.unwrap().count() > 0);
    }

    #[test]
    fn partitions_spread_over_the_shards() {
        let topic = fjord_metadata::TopicId(uuid::Uuid::from_u128(7));
        let shards: std::collections::BTreeSet<u32> = (0..1024)
            .map(|p| shard_of_partition(TopicPartition::new(topic, p)))
            .collect();
        assert_eq!(shards.len(), JOB_SHARDS as usize);
        assert!(shards.iter().all(|s| *s < JOB_SHARDS));
    }
}
