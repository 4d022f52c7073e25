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
//! agent with the highest hash weight that still has room, so every agent holds
//! ⌊partitions ÷ agents⌋ or ⌈partitions ÷ agents⌉ of the topic. Every agent
//! with the same view computes the same placement, each topic is spread evenly
//! (plain rendezvous hashing leaves an agent without any of a 6-partition topic
//! one time in four), and when an agent joins or leaves, few partitions besides
//! its own share move. Coordinator shards are placed the same way, as one more
//! "topic".
//!
//! An agent starts with every registered agent in its view (as the balancer
//! first judges them: alive until their counters stop), so nothing it does
//! before its first balancing — committing its WAL, early requests — takes a
//! partition away from a live agent.
//!
//! # The balancer
//!
//! Every agent runs [`run_balancer`]. For each partition:
//!
//! - it should lead and does not: it takes leadership (epoch + 1) once nobody
//!   live holds it — at once when the holder is dead or has released it;
//! - it leads and should not (an agent joined): it stops accepting produces
//!   for it, lets what it accepted commit, then releases it in metadata, so the
//!   next leader starts from everything acknowledged;
//! - it leads in memory but metadata names a newer epoch (it was paused past
//!   its lease and others took over): it drops the partition, failing pending
//!   producers with a retriable `NOT_LEADER_OR_FOLLOWER`.
//!
//! Coordinator shards placed elsewhere, or taken by another agent meanwhile,
//! are unloaded the same way ([`GroupCoordinator::release_shards`]).
//!
//! # Graceful shutdown
//!
//! When its shutdown token is cancelled the balancer hands everything off
//! ([`hand_off_everything`]): the agent leaves its own view (it places nothing
//! on itself, `Metadata` names only the others, produces are refused with
//! `NOT_LEADER_OR_FOLLOWER`), every partition is drained and released as above,
//! and every coordinator shard is released. The agent then deregisters, and the
//! others take the released partitions at their next balance tick, without
//! waiting for a lease to lapse.
//!
//! Correctness never rests on these views agreeing: every commit is fenced by
//! the partition's epoch, so two agents that both believe they lead can never
//! both write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fjord_metadata::{AgentRecord, MetadataStore, TopicPartition};
use tokio_util::sync::CancellationToken;

use crate::groups::GroupCoordinator;
use crate::log::PartitionLogs;

/// Timings of membership and balancing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterSettings {
    /// An agent whose heartbeat has not moved for this long is dead.
    pub lease_timeout: Duration,
    /// How often placement is checked.
    pub balance_interval: Duration,
    /// How long a graceful shutdown waits for the partitions it leads to
    /// commit what they accepted before it gives them up.
    pub hand_off_timeout: Duration,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            lease_timeout: Duration::from_millis(2_000),
            balance_interval: Duration::from_millis(250),
            hand_off_timeout: Duration::from_secs(20),
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
///
/// Item by item, the owner is the node of highest weight that still has room:
/// every node ends with ⌊count ÷ nodes⌋ or ⌈count ÷ nodes⌉ items (a cap of
/// ⌈count ÷ nodes⌉ alone can leave a node with nothing: 6 items over 4 nodes
/// as 2, 2, 2, 0).
pub fn placement(namespace: &[u8], count: u32, nodes: &[i32]) -> Vec<i32> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let node_count = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
    let floor = count / node_count;
    // How many nodes may hold one item more than the floor.
    let mut larger_left = count % node_count;
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
        let has_room = |node: &i32| {
            let held = load.get(node).copied().unwrap_or(0);
            held < floor || (held == floor && larger_left > 0)
        };
        // Some node always has room: the loads sum to less than `count`.
        let owner = ranked
            .iter()
            .map(|(_, node)| *node)
            .find(has_room)
            .unwrap_or(ranked[0].1);
        let held = load.entry(owner).or_default();
        if *held == floor {
            larger_left = larger_left.saturating_sub(1);
        }
        *held += 1;
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
    /// Every agent judged live, this one included.
    live: RwLock<Vec<LiveAgent>>,
    /// Shutting down: this agent places nothing on itself, advertises only the
    /// others, and leads nothing (see [`ClusterView::leave`]).
    leaving: AtomicBool,
    /// Placements computed for the current live set, by (namespace, count).
    placements: Mutex<HashMap<PlacementKey, Arc<Vec<i32>>>>,
}

impl ClusterView {
    /// A view in which this agent is alone (until the balancer learns more).
    pub fn new(me: LiveAgent) -> Self {
        Self {
            live: RwLock::new(vec![me.clone()]),
            me,
            leaving: AtomicBool::new(false),
            placements: Mutex::default(),
        }
    }

    /// This agent.
    pub fn me(&self) -> &LiveAgent {
        &self.me
    }

    /// The live agents clients are told about, by node id: this agent among
    /// them unless it is leaving and others are live.
    pub fn live(&self) -> Vec<LiveAgent> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        if self.is_leaving() && live.len() > 1 {
            return live
                .iter()
                .filter(|a| a.node_id != self.me.node_id)
                .cloned()
                .collect();
        }
        live.clone()
    }

    /// Replaces the live set.
    pub fn set_live(&self, mut live: Vec<LiveAgent>) {
        if !live.iter().any(|a| a.node_id == self.me.node_id) {
            live.push(self.me.clone());
        }
        live.sort_by_key(|a| a.node_id);
        live.dedup_by_key(|a| a.node_id);
        let mut current = self.live.write().unwrap_or_else(|e| e.into_inner());
        if *current != live {
            *current = live;
            self.clear_placements();
        }
    }

    fn clear_placements(&self) {
        self.placements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// From now on this agent places nothing on itself: every partition and
    /// coordinator shard belongs to the other live agents, requests for them
    /// are refused (`NOT_LEADER_OR_FOLLOWER`, `NOT_COORDINATOR`), and
    /// `Metadata` sends clients to the others. Graceful shutdown starts here.
    pub fn leave(&self) {
        self.leaving.store(true, Ordering::SeqCst);
        self.clear_placements();
    }

    /// Whether [`ClusterView::leave`] was called.
    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::SeqCst)
    }

    /// Whether `node_id` is live in this view (this agent is not once it is
    /// leaving).
    pub fn is_live(&self, node_id: i32) -> bool {
        if node_id == self.me.node_id && self.is_leaving() {
            return false;
        }
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

    /// Whether this agent should lead `partition` (never while leaving).
    pub fn owns(&self, partition: TopicPartition, partition_count: i32) -> bool {
        !self.is_leaving() && self.owner(partition, partition_count) == self.me.node_id
    }

    /// The live agent that should hold coordinator shard `index` of `shards`.
    pub fn shard_owner(&self, index: u32, shards: u32) -> i32 {
        self.placement(COORDINATOR_SHARD_NAMESPACE, shards)
            .get(index as usize)
            .copied()
            .unwrap_or(self.me.node_id)
    }

    /// Whether this agent should hold coordinator shard `index` (never while
    /// leaving).
    pub fn owns_shard(&self, index: u32, shards: u32) -> bool {
        !self.is_leaving() && self.shard_owner(index, shards) == self.me.node_id
    }
}

/// Heartbeat counters as this agent last saw them move, by its own clock.
///
/// Another agent is dead once its counter has not moved for the lease timeout
/// *while this agent's own counter kept moving*: at least
/// [`OWN_BEATS_TO_JUDGE`] of this agent's heartbeats committed since the
/// other's counter last moved. When nobody's counter moves — the metadata store
/// stalled (a slow fsync; with SQLite, a paused process holding the write
/// lock), or this agent itself was stalled and has not heartbeaten since —
/// silence says nothing about the others, and nobody is judged dead.
#[derive(Debug, Default)]
pub struct Liveness {
    seen: HashMap<i32, Seen>,
    /// This agent's counter as last observed.
    own: u64,
}

/// One agent's counter as last seen moving.
#[derive(Debug, Clone, Copy)]
struct Seen {
    heartbeat: u64,
    moved_at: tokio::time::Instant,
    /// This agent's own counter then.
    own_then: u64,
}

/// How many of its own heartbeats an agent must see committed, after another
/// agent's counter last moved, before it may judge that agent dead.
pub const OWN_BEATS_TO_JUDGE: u64 = 2;

impl Liveness {
    /// Records `agents` as observed at `now`; returns those alive: this agent,
    /// and every other whose counter moved (or which was first seen) within
    /// `lease_timeout`, or since which this agent's own counter has not moved
    /// [`OWN_BEATS_TO_JUDGE`] times.
    pub fn observe(
        &mut self,
        agents: &[AgentRecord],
        me: i32,
        now: tokio::time::Instant,
        lease_timeout: Duration,
    ) -> Vec<AgentRecord> {
        if let Some(own) = agents.iter().find(|a| a.node_id == me) {
            self.own = own.heartbeat;
        }
        let own = self.own;
        self.seen
            .retain(|node, _| agents.iter().any(|a| a.node_id == *node));
        let mut live = Vec::new();
        for agent in agents {
            let entry = self.seen.entry(agent.node_id).or_insert(Seen {
                heartbeat: agent.heartbeat,
                moved_at: now,
                own_then: own,
            });
            if entry.heartbeat != agent.heartbeat {
                *entry = Seen {
                    heartbeat: agent.heartbeat,
                    moved_at: now,
                    own_then: own,
                };
            }
            if agent.node_id == me || !Self::silent(entry, own, now, lease_timeout) {
                live.push(agent.clone());
            }
        }
        live
    }

    fn silent(seen: &Seen, own: u64, now: tokio::time::Instant, for_at_least: Duration) -> bool {
        now.duration_since(seen.moved_at) >= for_at_least
            && own.saturating_sub(seen.own_then) >= OWN_BEATS_TO_JUDGE
    }

    /// Agents whose counters have not moved for `for_at_least` while this
    /// agent's did (registrations that may be removed).
    pub fn dead_for(&self, now: tokio::time::Instant, for_at_least: Duration) -> Vec<i32> {
        self.seen
            .iter()
            .filter(|(_, seen)| Self::silent(seen, self.own, now, for_at_least))
            .map(|(node, _)| *node)
            .collect()
    }
}

/// What a graceful hand-off at shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandOffReport {
    /// Partitions this agent stopped leading: released in metadata once
    /// everything they accepted was committed (or dropped, their pending
    /// producers failed, when a commit found another leader).
    pub partitions: usize,
    /// Partitions still led when the hand-off timed out (their pending
    /// producers get a retriable error; the next leader takes them with a new
    /// epoch once this agent is gone).
    pub partitions_left: usize,
    /// Coordinator shards released.
    pub shards: usize,
    /// How long it took.
    pub took: Duration,
}

/// Keeps `view` current and moves partition leadership and coordinator shards
/// to match it, until `shutdown`; then hands every partition and shard off (see
/// the module docs) and returns what it did.
pub async fn run_balancer(
    store: MetadataStore,
    logs: Arc<PartitionLogs>,
    groups: Arc<GroupCoordinator>,
    view: Arc<ClusterView>,
    settings: ClusterSettings,
    shutdown: CancellationToken,
) -> HandOffReport {
    let mut liveness = Liveness::default();
    let mut tick = tokio::time::interval(settings.balance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        if let Err(error) = balance_once(&store, &logs, &view, &mut liveness, settings).await {
            tracing::warn!(%error, "balancing failed; retrying");
        }
        groups.release_shards(false).await;
    }
    hand_off_everything(&logs, &groups, &view, settings.hand_off_timeout).await
}

/// Graceful shutdown: this agent leaves the view (it places nothing on itself
/// and refuses new produces), then every partition it leads is drained —
/// produces refused with `NOT_LEADER_OR_FOLLOWER` while what was accepted
/// commits and its producers are answered — and released in metadata, and
/// every coordinator shard is released. Gives up on the partitions still led
/// after `timeout` (a bucket that does not answer).
pub async fn hand_off_everything(
    logs: &PartitionLogs,
    groups: &GroupCoordinator,
    view: &ClusterView,
    timeout: Duration,
) -> HandOffReport {
    let started = tokio::time::Instant::now();
    let deadline = started + timeout;
    view.leave();
    let mut changes = logs.commits();
    let mut released = 0;
    loop {
        changes.borrow_and_update();
        let led = logs.led_partitions();
        for partition in &led {
            logs.hand_off(*partition).await;
        }
        let left = logs.led_partitions().len();
        released += led.len().saturating_sub(left);
        if left == 0 {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!(
                partitions = left,
                "handing partitions off timed out; the others take them over once this agent is gone"
            );
            break;
        }
        // A commit (or a reset) lets a drained partition go.
        let _ = tokio::time::timeout(HAND_OFF_POLL, changes.changed()).await;
    }
    let shards = groups.release_shards(true).await;
    HandOffReport {
        partitions: released,
        partitions_left: logs.led_partitions().len(),
        shards,
        took: started.elapsed(),
    }
}

/// How often a hand-off looks again when no commit woke it.
const HAND_OFF_POLL: Duration = Duration::from_millis(50);

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

    #[test]
    fn every_node_gets_its_fair_share_of_every_topic() {
        for topic in 0..300u32 {
            let ns = topic.to_be_bytes();
            for count in [1u32, 5, 6, 7, 12, 16, 64] {
                for nodes in 1..=6i32 {
                    let ids: Vec<i32> = (1..=nodes).collect();
                    let owners = placement(&ns, count, &ids);
                    assert_eq!(owners.len(), count as usize);
                    let n = u32::try_from(nodes).unwrap();
                    for node in &ids {
                        let held =
                            u32::try_from(owners.iter().filter(|o| *o == node).count()).unwrap();
                        assert!(
                            held == count / n || held == count.div_ceil(n),
                            "{count} items over {nodes} nodes: node {node} holds {held} ({owners:?})"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn coordinator_shards_are_spread_evenly() {
        for nodes in 1..=5i32 {
            let ids: Vec<i32> = (10..10 + nodes).collect();
            let owners = placement(COORDINATOR_SHARD_NAMESPACE, 16, &ids);
            let loads: Vec<usize> = ids
                .iter()
                .map(|id| owners.iter().filter(|o| *o == id).count())
                .collect();
            let (min, max) = (
                loads.iter().min().copied().unwrap(),
                loads.iter().max().copied().unwrap(),
            );
            assert!(max - min <= 1, "{nodes} agents: shard loads {loads:?}");
        }
    }

    #[test]
    fn a_leaving_agent_places_nothing_on_itself() {
        let agent = |node_id| LiveAgent {
            node_id,
            host: "h".into(),
            port: 1,
        };
        let view = ClusterView::new(agent(1));
        view.set_live(vec![agent(1), agent(2), agent(3)]);
        let tp = |p| TopicPartition::new(fjord_metadata::TopicId(uuid::Uuid::nil()), p);
        let before: Vec<i32> = (0..12).map(|p| view.owner(tp(p), 12)).collect();
        assert!(before.contains(&1));
        view.leave();
        assert!(view.is_leaving());
        let after: Vec<i32> = (0..12).map(|p| view.owner(tp(p), 12)).collect();
        assert!(!after.contains(&1), "{after:?}");
        assert!((0..12).all(|p| !view.owns(tp(p), 12)));
        assert!((0..16).all(|s| !view.owns_shard(s, 16)));
        assert!(!view.is_live(1) && view.is_live(2));
        assert_eq!(
            view.live().iter().map(|a| a.node_id).collect::<Vec<_>>(),
            vec![2, 3]
        );
        // Alone, it still names itself (nobody else could answer) but leads nothing.
        let alone = ClusterView::new(agent(1));
        alone.leave();
        assert_eq!(alone.live(), vec![agent(1)]);
        assert!(!alone.owns(tp(0), 1));
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
        let ids = |live: &[AgentRecord]| live.iter().map(|a| a.node_id).collect::<Vec<_>>();
        let live = liveness.observe(&[record(1, 5), record(2, 9)], 1, start, lease);
        assert_eq!(live.len(), 2, "first seen counts as alive");
        let later = start + Duration::from_millis(1_500);
        liveness.observe(&[record(1, 7), record(2, 10)], 1, later, lease);
        let much_later = start + Duration::from_millis(3_000);
        let live = liveness.observe(&[record(1, 9), record(2, 10)], 1, much_later, lease);
        // Node 2 moved 1.5 s ago: alive. Node 1 is this agent: always alive.
        assert_eq!(ids(&live), vec![1, 2]);
        let dead = liveness.observe(&[record(1, 11), record(2, 10)], 1, later + lease, lease);
        assert_eq!(ids(&dead), vec![1]);
        let long_dead = liveness.dead_for(much_later, lease);
        assert!(long_dead.is_empty(), "node 2 moved 1.5 s before");
        assert_eq!(liveness.dead_for(later + lease, lease), vec![2]);
    }

    #[tokio::test(start_paused = true)]
    async fn nobody_is_judged_dead_while_the_observers_own_counter_stands_still() {
        // The metadata store stalled (or this agent did): no counter moves,
        // this agent's included, for longer than the lease.
        let lease = Duration::from_secs(2);
        let mut liveness = Liveness::default();
        let start = tokio::time::Instant::now();
        liveness.observe(&[record(1, 5), record(2, 9)], 1, start, lease);
        let stalled = start + Duration::from_secs(10);
        let live = liveness.observe(&[record(1, 5), record(2, 9)], 1, stalled, lease);
        assert_eq!(live.len(), 2, "{live:?}");
        assert!(liveness.dead_for(stalled, lease).is_empty());
        // One own beat is not enough to tell.
        let live = liveness.observe(&[record(1, 6), record(2, 9)], 1, stalled, lease);
        assert_eq!(live.len(), 2);
        // Once this agent's heartbeats commit again and the other's do not,
        // the other is dead.
        let live = liveness.observe(&[record(1, 7), record(2, 9)], 1, stalled, lease);
        assert_eq!(live.iter().map(|a| a.node_id).collect::<Vec<_>>(), vec![1]);
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
