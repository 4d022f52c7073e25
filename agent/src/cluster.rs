//! Many agents: who is alive, who should lead which partition, and the loop that
//! moves leadership to match.
//!
//! # Liveness
//!
//! Each agent bumps a heartbeat counter in its registration. An observer judges
//! another agent alive while the counter keeps moving, timed by the observer's
//! own clock ([`Liveness`]): no two hosts' clocks are ever compared. An agent is
//! judged dead once its counter has not moved for the lease timeout.
//!
//! # Placement
//!
//! The agents that should lead a topic's partitions are chosen by rendezvous
//! hashing with bounded load ([`placement`]): partition by partition, the live
//! agent with the highest hash weight that holds fewer than ⌈partitions ÷
//! agents⌉ of the topic. Every agent with the same view computes the same
//! placement, each topic is spread evenly (plain rendezvous hashing leaves an
//! agent without any of a 6-partition topic one time in four), and when an agent
//! joins or leaves, few partitions besides its own share move. Coordinator
//! shards are placed the same way, as one more "topic".
//!
//! # The balancer
//!
//! Every agent runs [`run_balancer`]. For each partition:
//!
//! - it should lead and does not: it takes leadership (epoch + 1) once nobody
//!   live holds it — at once when the holder is dead or has released it;
//! - it leads and should not (an agent joined, or this one is stopping): it stops
//!   accepting produces for it, lets what it accepted commit, then releases it
//!   in metadata, so the next leader starts from everything acknowledged;
//! - it leads in memory but metadata names a newer epoch (it was paused past
//!   its lease and others took over): it drops the partition, failing pending
//!   producers with a retriable `NOT_LEADER_OR_FOLLOWER`.
//!
//! Correctness never rests on these views agreeing: every commit is fenced by
//! the partition's epoch, so two agents that both believe they lead can never
//! both write.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fjord_metadata::{AgentRecord, MetadataStore, TopicPartition};
use tokio_util::sync::CancellationToken;

use crate::log::PartitionLogs;

/// Timings of membership and balancing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterSettings {
    /// An agent whose heartbeat has not moved for this long is dead.
    pub lease_timeout: Duration,
    /// How often placement is checked.
    pub balance_interval: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            lease_timeout: Duration::from_millis(2_000),
            balance_interval: Duration::from_millis(250),
        }
    }
}

/// A live agent as clients see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveAgent {
    /// Its node id.
    pub node_id: i32,
    /// The host its Kafka listener is advertised on.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl LiveAgent {
    /// From a registration; `None` if its address is not `host:port`.
    pub fn from_record(record: &AgentRecord) -> Option<Self> {
        let (host, port) = record.advertised_address.rsplit_once(':')?;
        Some(Self {
            node_id: record.node_id,
            host: host.to_owned(),
            port: port.parse().ok()?,
        })
    }
}

/// SplitMix64's finalizer: stable across processes and versions (unlike `std`'s
/// hasher), and well spread (CRC alone is linear, so it would favour some nodes).
pub fn rendezvous_owner(key: &[u8], nodes: impl IntoIterator<Item = i32>) -> Option<i32> {
    let key_hash = u64::from(crc32c::crc32c(key)) << 32;
    nodes.into_iter().max_by_key(|node| {
        // Ties (vanishingly rare) go to the larger node id, the same everywhere.
        (mix(key_hash | u64::from(node.cast_unsigned())), *node)
    })
}

/// SplitMix64's output function: mixes a key's CRC-32C with a node id into a
/// well-spread weight (CRC alone is linear, so it would favour some nodes), the
/// same in every process and version (unlike `std`'s hasher).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The owners of items `0..count` of `namespace` (a topic's partitions, or the
/// coordinator shards) among `nodes`: rendezvous hashing with bounded load.
pub fn placement(namespace: &[u8], count: u32, nodes: &[i32]) -> Vec<i32> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let cap = count
        .div_ceil(u32::try_from(nodes.len()).unwrap_or(u32::MAX))
        .max(1);
    let mut load: HashMap<i32, u32> = HashMap::new();
    let mut owners = Vec::with_capacity(count as usize);
    for index in 0..count {
        let mut key = namespace.to_vec();
        key.extend_from_slice(&index.to_be_bytes());
        let key_hash = u64::from(crc32c::crc32c(&key)) << 32;
        let mut ranked: Vec<(u64, i32)> = nodes
            .iter()
            .map(|node| (mix(key_hash | u64::from(node.cast_unsigned())), *node))
            .collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        let owner = ranked
            .iter()
            .map(|(_, node)| *node)
            .find(|node| load.get(node).copied().unwrap_or(0) < cap)
            .unwrap_or(ranked[0].1);
        *load.entry(owner).or_default() += 1;
        owners.push(owner);
    }
    owners
}

/// The namespace coordinator shards are placed under.
pub const COORDINATOR_SHARD_NAMESPACE: &[u8] = b"group-coordinator-shards";

/// A placement's namespace and item count.
type PlacementKey = (Vec<u8>, u32);

/// This agent's view of the cluster, shared by the balancer (which updates it)
/// and the request handlers (which read it).
#[derive(Debug)]
pub struct ClusterView {
    me: LiveAgent,
    live: RwLock<Vec<LiveAgent>>,
    /// Placements computed for the current live set, by (namespace, count).
    placements: Mutex<HashMap<PlacementKey, Arc<Vec<i32>>>>,
}

impl ClusterView {
    /// A view in which this agent is alone (until the balancer learns more).
    pub fn new(me: LiveAgent) -> Self {
        Self {
            live: RwLock::new(vec![me.clone()]),
            me,
            placements: Mutex::default(),
        }
    }

    /// This agent.
    pub fn me(&self) -> &LiveAgent {
        &self.me
    }

    /// The live agents, by node id (this agent always among them).
    pub fn live(&self) -> Vec<LiveAgent> {
        self.live.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the live set.
    pub fn set_live(&self, mut live: Vec<LiveAgent>) {
        if !live.iter().any(|a| a.node_id == self.me.node_id) {
            live.push(self.me.clone());
        }
        live.sort_by_key(|a| a.node_id);
        let mut current = self.live.write().unwrap_or_else(|e| e.into_inner());
        if *current != live {
            *current = live;
            self.placements
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clear();
        }
    }

    /// Whether `node_id` is live in this view.
    pub fn is_live(&self, node_id: i32) -> bool {
        self.live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|a| a.node_id == node_id)
    }

    /// The owners of items `0..count` of `namespace` in this view.
    pub fn placement(&self, namespace: &[u8], count: u32) -> Arc<Vec<i32>> {
        let key = (namespace.to_vec(), count);
        if let Some(found) = self
            .placements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return found.clone();
        }
        let nodes: Vec<i32> = self.live().iter().map(|a| a.node_id).collect();
        let computed = Arc::new(placement(namespace, count, &nodes));
        self.placements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, computed.clone());
        computed
    }

    /// The live agent that should lead `partition` of a topic with
    /// `partition_count` partitions.
    pub fn owner(&self, partition: TopicPartition, partition_count: i32) -> i32 {
        let count = u32::try_from(partition_count).unwrap_or(0);
        let index = usize::try_from(partition.partition).unwrap_or(usize::MAX);
        self.placement(partition.topic_id.0.as_bytes(), count)
            .get(index)
            .copied()
            .unwrap_or(self.me.node_id)
    }

    /// Whether this agent should lead `partition`.
    pub fn owns(&self, partition: TopicPartition, partition_count: i32) -> bool {
        self.owner(partition, partition_count) == self.me.node_id
    }

    /// The live agent that should hold coordinator shard `index` of `shards`.
    pub fn shard_owner(&self, index: u32, shards: u32) -> i32 {
        self.placement(COORDINATOR_SHARD_NAMESPACE, shards)
            .get(index as usize)
            .copied()
            .unwrap_or(self.me.node_id)
    }
}

/// Heartbeat counters as this agent last saw them move, by its own clock.
#[derive(Debug, Default)]
pub struct Liveness {
    seen: HashMap<i32, (u64, tokio::time::Instant)>,
}

impl Liveness {
    /// Records `agents` as observed at `now`; returns those alive: this agent,
    /// and every other whose counter moved (or which was first seen) within
    /// `lease_timeout`.
    pub fn observe(
        &mut self,
        agents: &[AgentRecord],
        me: i32,
        now: tokio::time::Instant,
        lease_timeout: Duration,
    ) -> Vec<AgentRecord> {
        let mut live = Vec::new();
        self.seen
            .retain(|node, _| agents.iter().any(|a| a.node_id == *node));
        for agent in agents {
            let entry = self
                .seen
                .entry(agent.node_id)
                .or_insert((agent.heartbeat, now));
            if entry.0 != agent.heartbeat {
                *entry = (agent.heartbeat, now);
            }
            if agent.node_id == me || now.duration_since(entry.1) < lease_timeout {
                live.push(agent.clone());
            }
        }
        live
    }

    /// Agents whose counters have not moved for `for_at_least` (registrations
    /// that may be removed).
    pub fn dead_for(&self, now: tokio::time::Instant, for_at_least: Duration) -> Vec<i32> {
        self.seen
            .iter()
            .filter(|(_, (_, moved))| now.duration_since(*moved) >= for_at_least)
            .map(|(node, _)| *node)
            .collect()
    }
}

/// Keeps `view` current and moves partition leadership to match it, until
/// `shutdown`; then hands every partition off (see the module docs).
pub async fn run_balancer(
    store: MetadataStore,
    logs: Arc<PartitionLogs>,
    view: Arc<ClusterView>,
    settings: ClusterSettings,
    shutdown: CancellationToken,
) {
    let mut liveness = Liveness::default();
    let mut tick = tokio::time::interval(settings.balance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(error) = balance_once(&store, &logs, &view, &mut liveness, settings).await {
            tracing::warn!(%error, "balancing failed; retrying");
        }
    }
}

async fn balance_once(
    store: &MetadataStore,
    logs: &Arc<PartitionLogs>,
    view: &ClusterView,
    liveness: &mut Liveness,
    settings: ClusterSettings,
) -> Result<(), fjord_metadata::MetadataError> {
    let me = view.me().node_id;
    let now = tokio::time::Instant::now();
    let agents = store.list_agents().await?;
    let live = liveness.observe(&agents, me, now, settings.lease_timeout);
    view.set_live(live.iter().filter_map(LiveAgent::from_record).collect());
    // Registrations dead for a long time are removed, so restarts do not pile
    // up; an agent that comes back finds its registration gone and stops.
    for node in liveness.dead_for(now, settings.lease_timeout * 30) {
        if node != me {
            tracing::info!(
                node_id = node,
                "removing the registration of a long-dead agent"
            );
            store.deregister_agent(node).await?;
        }
    }
    for topic in store.list_topics().await? {
        let states = store.partition_states(topic.id).await?;
        for (index, state) in states.iter().enumerate() {
            let Ok(index) = i32::try_from(index) else {
                continue;
            };
            let partition = TopicPartition::new(topic.id, index);
            let leads = logs.leads(partition);
            if let Some(epoch) = leads
                && state.leader_epoch > epoch
            {
                tracing::warn!(%partition, epoch, current = state.leader_epoch, "lost leadership");
                logs.lost(partition, epoch);
                continue;
            }
            if view.owns(partition, topic.partition_count) {
                let held_by_live_other = state
                    .leader
                    .is_some_and(|leader| leader != me && view.is_live(leader));
                if leads.is_none()
                    && !held_by_live_other
                    && let Err(error) = logs.take_over(partition).await
                {
                    tracing::warn!(%partition, %error, "taking leadership failed");
                }
            } else if leads.is_some() {
                logs.hand_off(partition).await;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bounded_placement_spreads_every_topic_evenly() {
        let mut moved = 0;
        for topic in 0..500u32 {
            let ns = topic.to_be_bytes();
            let three = placement(&ns, 6, &[1, 2, 3]);
            for node in [1, 2, 3] {
                assert_eq!(three.iter().filter(|n| **n == node).count(), 2, "{three:?}");
            }
            let four = placement(&ns, 6, &[1, 2, 3, 4]);
            for node in [1, 2, 3, 4] {
                assert!(four.iter().filter(|n| **n == node).count() <= 2, "{four:?}");
            }
            moved += three.iter().zip(&four).filter(|(a, b)| a != b).count();
            // Everyone computes the same, whatever order the nodes come in.
            assert_eq!(three, placement(&ns, 6, &[3, 1, 2]));
        }
        // A fourth agent takes its share (at most 2 of 6) plus some reshuffling.
        assert!(moved < 500 * 3, "{moved} moves over 500 topics");
    }

    fn record(node_id: i32, heartbeat: u64) -> AgentRecord {
        AgentRecord {
            node_id,
            instance: uuid::Uuid::nil(),
            advertised_address: format!("127.0.0.1:{}", 9000 + node_id),
            heartbeat,
            registered_at_ms: 0,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn agents_die_when_their_counter_stops_by_the_observers_clock() {
        let lease = Duration::from_secs(2);
        let mut liveness = Liveness::default();
        let start = tokio::time::Instant::now();
        let live = liveness.observe(&[record(1, 5), record(2, 9)], 1, start, lease);
        assert_eq!(live.len(), 2, "first seen counts as alive");
        let later = start + Duration::from_millis(1_500);
        liveness.observe(&[record(1, 5), record(2, 10)], 1, later, lease);
        let much_later = start + Duration::from_millis(3_000);
        let live = liveness.observe(&[record(1, 5), record(2, 10)], 1, much_later, lease);
        // Node 2 moved 1.5 s ago: alive. Node 1 is this agent: always alive.
        assert_eq!(
            live.iter().map(|a| a.node_id).collect::<Vec<_>>(),
            vec![1, 2]
        );
        let dead = liveness.observe(&[record(1, 5), record(2, 10)], 1, later + lease, lease);
        assert_eq!(dead.iter().map(|a| a.node_id).collect::<Vec<_>>(), vec![1]);
        let mut long_dead = liveness.dead_for(much_later, lease);
        long_dead.sort_unstable();
        assert_eq!(long_dead, vec![1], "node 2 moved 1.5 s before");
        let mut long_dead = liveness.dead_for(later + lease, lease);
        long_dead.sort_unstable();
        assert_eq!(long_dead, vec![1, 2]);
    }

    #[test]
    fn the_view_always_includes_this_agent() {
        let me = LiveAgent {
            node_id: 7,
            host: "h".into(),
            port: 1,
        };
        let view = ClusterView::new(me.clone());
        let tp = TopicPartition::new(fjord_metadata::TopicId(uuid::Uuid::nil()), 0);
        assert!(view.owns(tp, 1));
        view.set_live(vec![]);
        assert_eq!(view.live(), vec![me]);
    }
}
