//! Who is alive, as this agent sees it: the live set ([`ClusterView`]), judged
//! from heartbeat counters timed by this agent's own clock ([`Liveness`]).
//!
//! Each agent bumps a heartbeat counter in its registration. An observer judges
//! another agent alive while the counter keeps moving, timed by the observer's
//! own clock: no two hosts' clocks are ever compared. An agent is judged dead
//! once its counter has not moved for the lease timeout while the observer's
//! own counter kept moving (a stalled metadata store says nothing about
//! anyone).
//!
//! An agent starts with every registered agent in its view (as the balancer
//! first judges them: alive until their counters stop), so nothing it does
//! before its first balancing — committing its WAL, early requests — takes a
//! partition away from a live agent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use fjord_metadata::{AgentRecord, AgentRoles, TopicPartition};

use super::Placement;
use super::placement::{COORDINATOR_SHARD_NAMESPACE, placement};

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

/// Which agents a placement spreads over: those that serve clients, or those
/// that run jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Over {
    Serving,
    Jobs,
}

/// A placement's agents, namespace and item count.
type PlacementKey = (Over, Vec<u8>, u32);

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
    /// The roles of agents that do not do everything (`--roles`), this one
    /// included; an agent not named does both.
    roles: RwLock<HashMap<i32, AgentRoles>>,
    /// The agents operators placed partitions' leaders on
    /// (`AlterPartitionReassignments`), as metadata last said.
    leader_placements: RwLock<HashMap<TopicPartition, i32>>,
}

impl ClusterView {
    /// A view in which this agent is alone (until the balancer learns more).
    pub fn new(me: LiveAgent) -> Self {
        Self {
            live: RwLock::new(vec![me.clone()]),
            me,
            leaving: AtomicBool::new(false),
            placements: Mutex::default(),
            roles: RwLock::default(),
            leader_placements: RwLock::default(),
        }
    }

    /// This view, for an agent with `roles`.
    pub fn with_roles(self, roles: AgentRoles) -> Self {
        let node_id = self.me.node_id;
        self.set_roles([(node_id, roles)]);
        self
    }

    /// Records the roles of agents (from their registrations).
    pub fn set_roles(&self, roles: impl IntoIterator<Item = (i32, AgentRoles)>) {
        let mut current = self.roles.write().unwrap_or_else(|e| e.into_inner());
        let mut changed = false;
        for (node_id, roles) in roles {
            let before = if roles == AgentRoles::ALL {
                current.remove(&node_id)
            } else {
                current.insert(node_id, roles)
            };
            changed |= before.unwrap_or(AgentRoles::ALL) != roles;
        }
        drop(current);
        if changed {
            self.clear_placements();
        }
    }

    /// The roles of `node_id` as this view knows them.
    pub fn roles_of(&self, node_id: i32) -> AgentRoles {
        self.roles
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&node_id)
            .copied()
            .unwrap_or(AgentRoles::ALL)
    }

    /// This agent.
    pub fn me(&self) -> &LiveAgent {
        &self.me
    }

    /// The live agents clients are told about, by node id: the serving ones,
    /// this agent among them unless it is leaving and others are live.
    pub fn live(&self) -> Vec<LiveAgent> {
        self.live_in_role(|roles| roles.serve)
    }

    /// The Kafka address (`host:port`) of live agent `node_id`, if it is live.
    pub fn kafka_address(&self, node_id: i32) -> Option<String> {
        self.live()
            .into_iter()
            .find(|agent| agent.node_id == node_id)
            .map(|agent| format!("{}:{}", agent.host, agent.port))
    }

    /// The live agents whose roles pass `role` (this one unless it is leaving
    /// and others are live).
    fn live_in_role(&self, role: impl Fn(AgentRoles) -> bool) -> Vec<LiveAgent> {
        let live: Vec<LiveAgent> = self
            .live
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|a| role(self.roles_of(a.node_id)))
            .cloned()
            .collect();
        if self.is_leaving() && live.len() > 1 {
            return live
                .into_iter()
                .filter(|a| a.node_id != self.me.node_id)
                .collect();
        }
        live
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

    /// The owners of items `0..count` of `namespace` among the serving agents
    /// of this view.
    pub fn placement(&self, namespace: &[u8], count: u32) -> Arc<Vec<i32>> {
        self.placement_over(Over::Serving, namespace, count)
    }

    fn placement_over(&self, over: Over, namespace: &[u8], count: u32) -> Arc<Vec<i32>> {
        let key = (over, namespace.to_vec(), count);
        if let Some(found) = self
            .placements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return found.clone();
        }
        let nodes: Vec<i32> = match over {
            Over::Jobs => self.live_in_role(|roles| roles.jobs),
            Over::Serving => self.live(),
        }
        .iter()
        .map(|a| a.node_id)
        .collect();
        let computed = Arc::new(placement(namespace, count, &nodes));
        self.placements
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, computed.clone());
        computed
    }

    /// Replaces the leader placements operators chose (read from metadata).
    pub fn set_leader_placements(&self, placements: HashMap<TopicPartition, i32>) {
        *self
            .leader_placements
            .write()
            .unwrap_or_else(|e| e.into_inner()) = placements;
    }

    /// The agent an operator placed `partition`'s leader on, live or not.
    pub fn leader_placement(&self, partition: TopicPartition) -> Option<i32> {
        self.leader_placements
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&partition)
            .copied()
    }

    /// The live agent that should lead `partition` of a topic with
    /// `partition_count` partitions: the one an operator placed it on while
    /// that one is live and serves, else the hashed placement's.
    pub fn owner(&self, partition: TopicPartition, partition_count: i32) -> i32 {
        if let Some(chosen) = self.leader_placement(partition)
            && self.is_live(chosen)
            && self.roles_of(chosen).serve
        {
            return chosen;
        }
        self.hashed_owner(partition, partition_count)
    }

    /// The live agent the shared hashing places `partition` on, whatever an
    /// operator chose.
    fn hashed_owner(&self, partition: TopicPartition, partition_count: i32) -> i32 {
        let count = u32::try_from(partition_count).unwrap_or(0);
        let index = usize::try_from(partition.partition).unwrap_or(usize::MAX);
        self.placement(partition.topic_id.0.as_bytes(), count)
            .get(index)
            .copied()
            .unwrap_or(self.me.node_id)
    }

    /// Whether this agent should lead `partition` (never while leaving, nor
    /// when it does not serve).
    pub fn owns(&self, partition: TopicPartition, partition_count: i32) -> bool {
        !self.is_leaving()
            && self.roles_of(self.me.node_id).serve
            && self.owner(partition, partition_count) == self.me.node_id
    }

    /// Whether this agent runs the jobs (retention, garbage collection) of
    /// `partition`: placed over the live agents with the jobs role as
    /// partitions are over the serving ones.
    pub fn owns_job(&self, partition: TopicPartition, partition_count: i32) -> bool {
        self.owns_job_item(
            partition.topic_id.0.as_bytes(),
            u32::try_from(partition_count).unwrap_or(0),
            partition.partition,
        )
    }

    /// Whether this agent runs the jobs of shard `index` of `shards` (work not
    /// tied to a partition: deleted topics, garbage, the orphan sweep).
    pub fn owns_job_shard(&self, index: u32, shards: u32) -> bool {
        self.owns_job_item(
            COORDINATOR_SHARD_NAMESPACE,
            shards,
            i32::try_from(index).unwrap_or(i32::MAX),
        )
    }

    fn owns_job_item(&self, namespace: &[u8], count: u32, index: i32) -> bool {
        if self.is_leaving() || !self.roles_of(self.me.node_id).jobs {
            return false;
        }
        let index = usize::try_from(index).unwrap_or(usize::MAX);
        self.placement_over(Over::Jobs, namespace, count)
            .get(index)
            .is_none_or(|owner| *owner == self.me.node_id)
    }

    /// The live agent that should hold coordinator shard `index` of `shards`.
    pub fn shard_owner(&self, index: u32, shards: u32) -> i32 {
        self.placement(COORDINATOR_SHARD_NAMESPACE, shards)
            .get(index as usize)
            .copied()
            .unwrap_or(self.me.node_id)
    }

    /// Whether this agent should hold coordinator shard `index` (never while
    /// leaving, nor when it does not serve).
    pub fn owns_shard(&self, index: u32, shards: u32) -> bool {
        !self.is_leaving()
            && self.roles_of(self.me.node_id).serve
            && self.shard_owner(index, shards) == self.me.node_id
    }
}

/// Heartbeat counters as this agent last saw them move, by its own clock.
///
/// Another agent is dead once its counter has not moved for the lease timeout
/// *while this agent's own counter kept moving*: at least
/// [`OWN_BEATS_TO_JUDGE`] of this agent's heartbeats committed since the
impl Placement for ClusterView {
    fn owns(&self, partition: TopicPartition, partition_count: i32) -> bool {
        ClusterView::owns(self, partition, partition_count)
    }

    fn is_live(&self, node_id: i32) -> bool {
        ClusterView::is_live(self, node_id)
    }

    fn node_id(&self) -> i32 {
        self.me.node_id
    }
}

/// Heartbeat counters as this agent last saw them move, by its own clock.
///
/// Another agent is dead once its counter has not moved for the lease timeout
/// *while this agent's own counter kept moving*: in at least
/// [`OWN_BEATS_TO_JUDGE`] of this agent's observations since the other's
/// counter last moved, this agent's own counter had moved since the
/// observation before. When nobody's counter moves — the metadata store
/// stalled (a slow fsync; with SQLite, a paused process holding the write
/// lock), or this agent itself was stalled and has not heartbeaten since —
/// silence says nothing about the others, and nobody is judged dead.
///
/// Observations, not the counter's increments, are counted: a heartbeat whose
/// reply was lost is retried and may add several increments at once, which
/// says nothing about how much time passed. And each observation is dated by
/// when its read returned (the caller passes that time): a read retried for
/// seconds must not date what it saw to when it began, or a counter seen
/// moving then would look silent since.
#[derive(Debug, Default)]
pub struct Liveness {
    seen: HashMap<i32, Seen>,
    /// This agent's counter as last observed.
    own: u64,
    /// Observations in which this agent's own counter had moved.
    own_moves: u64,
}

/// One agent's counter as last seen moving.
#[derive(Debug, Clone, Copy)]
struct Seen {
    heartbeat: u64,
    moved_at: tokio::time::Instant,
    /// [`Liveness::own_moves`] then.
    own_moves_then: u64,
}

/// In how many observations an agent must see its own counter moved, after
/// another agent's counter last moved, before it may judge that agent dead.
pub const OWN_BEATS_TO_JUDGE: u64 = 2;

impl Liveness {
    /// Records `agents` as read at `now`; returns those alive: this agent, and
    /// every other whose counter moved (or which was first seen) within
    /// `lease_timeout`, or since which this agent has not seen its own counter
    /// move in [`OWN_BEATS_TO_JUDGE`] observations.
    pub fn observe(
        &mut self,
        agents: &[AgentRecord],
        me: i32,
        now: tokio::time::Instant,
        lease_timeout: Duration,
    ) -> Vec<AgentRecord> {
        if let Some(own) = agents.iter().find(|a| a.node_id == me) {
            if own.heartbeat != self.own {
                self.own_moves += 1;
            }
            self.own = own.heartbeat;
        }
        let own_moves = self.own_moves;
        self.seen
            .retain(|node, _| agents.iter().any(|a| a.node_id == *node));
        let mut live = Vec::new();
        for agent in agents {
            let entry = self.seen.entry(agent.node_id).or_insert(Seen {
                heartbeat: agent.heartbeat,
                moved_at: now,
                own_moves_then: own_moves,
            });
            if entry.heartbeat != agent.heartbeat {
                *entry = Seen {
                    heartbeat: agent.heartbeat,
                    moved_at: now,
                    own_moves_then: own_moves,
                };
            }
            if agent.node_id == me || !Self::silent(entry, own_moves, now, lease_timeout) {
                live.push(agent.clone());
            }
        }
        live
    }

    fn silent(
        seen: &Seen,
        own_moves: u64,
        now: tokio::time::Instant,
        for_at_least: Duration,
    ) -> bool {
        now.duration_since(seen.moved_at) >= for_at_least
            && own_moves.saturating_sub(seen.own_moves_then) >= OWN_BEATS_TO_JUDGE
    }

    /// Agents whose counters have not moved for `for_at_least` while this
    /// agent's did (registrations that may be removed).
    pub fn dead_for(&self, now: tokio::time::Instant, for_at_least: Duration) -> Vec<i32> {
        self.seen
            .iter()
            .filter(|(_, seen)| Self::silent(seen, self.own_moves, now, for_at_least))
            .map(|(node, _)| *node)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

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

    #[test]
    fn partitions_go_to_serving_agents_and_jobs_to_jobs_agents() {
        let agent = |node_id| LiveAgent {
            node_id,
            host: "h".into(),
            port: 1,
        };
        let serve = AgentRoles {
            serve: true,
            jobs: false,
        };
        let jobs = AgentRoles {
            serve: false,
            jobs: true,
        };
        let tp = |p| TopicPartition::new(fjord_metadata::TopicId(uuid::Uuid::nil()), p);
        // Agent 1 serves only, 2 runs jobs only, 3 does both; seen from each.
        let views: Vec<ClusterView> = [(1, serve), (2, jobs), (3, AgentRoles::ALL)]
            .into_iter()
            .map(|(id, roles)| {
                let view = ClusterView::new(agent(id)).with_roles(roles);
                view.set_roles([(1, serve), (2, jobs)]);
                view.set_live(vec![agent(1), agent(2), agent(3)]);
                view
            })
            .collect();
        for view in &views {
            let ids: Vec<i32> = view.live().iter().map(|a| a.node_id).collect();
            assert_eq!(ids, vec![1, 3], "clients are told of serving agents only");
        }
        for p in 0..24 {
            let leaders: Vec<usize> = (0..3).filter(|&i| views[i].owns(tp(p), 24)).collect();
            let runners: Vec<usize> = (0..3).filter(|&i| views[i].owns_job(tp(p), 24)).collect();
            assert!(
                leaders == [0] || leaders == [2],
                "partition {p}: {leaders:?}"
            );
            assert!(
                runners == [1] || runners == [2],
                "partition {p} jobs: {runners:?}"
            );
        }
        for shard in 0..16 {
            assert!(!views[1].owns_shard(shard, 16), "a jobs agent coordinates");
            assert!(
                !views[0].owns_job_shard(shard, 16),
                "a serving agent runs jobs"
            );
        }
        // Both kinds are used.
        assert!((0..24).any(|p| views[0].owns(tp(p), 24)));
        assert!((0..24).any(|p| views[1].owns_job(tp(p), 24)));
        // A jobs agent alone leads nothing and runs every job.
        let alone = ClusterView::new(agent(2)).with_roles(jobs);
        assert!(alone.live().is_empty());
        assert!((0..4).all(|p| !alone.owns(tp(p), 4) && alone.owns_job(tp(p), 4)));
    }

    fn record(node_id: i32, heartbeat: u64) -> AgentRecord {
        AgentRecord {
            node_id,
            instance: uuid::Uuid::nil(),
            advertised_address: format!("127.0.0.1:{}", 9000 + node_id),
            heartbeat,
            registered_at_ms: 0,
            roles: fjord_metadata::AgentRoles::ALL,
            gateway_address: None,
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

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_own_increments_is_one_observation_not_many() {
        // This agent's heartbeat lost its replies and was retried: its counter
        // jumped by a hundred in one go. That is one sign of time passing, not
        // a hundred, so the silent other agent is not judged dead on it.
        let lease = Duration::from_secs(2);
        let mut liveness = Liveness::default();
        let start = tokio::time::Instant::now();
        let ids = |live: &[AgentRecord]| live.iter().map(|a| a.node_id).collect::<Vec<_>>();
        liveness.observe(&[record(1, 5), record(2, 9)], 1, start, lease);
        let later = start + Duration::from_secs(3);
        let live = liveness.observe(&[record(1, 105), record(2, 9)], 1, later, lease);
        assert_eq!(ids(&live), vec![1, 2], "one observation of own progress");
        let then = later + Duration::from_millis(500);
        let live = liveness.observe(&[record(1, 106), record(2, 9)], 1, then, lease);
        assert_eq!(ids(&live), vec![1], "a second one, and still silent");
    }
}
