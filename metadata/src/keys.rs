//! The metadata key layout: the only module that builds keys.
//!
//! Every key is a tuple (FoundationDB tuple encoding, which orders integers
//! numerically and strings lexicographically) under the keyspace's root subspace:
//!
//! | key | value |
//! |---|---|
//! | `("topic_name", name)` | `TopicNameRecord` (the topic id) |
//! | `("topic", topic_id)` | [`TopicMeta`](crate::TopicMeta) |
//! | `("partition", topic_id, partition)` | [`PartitionState`](crate::PartitionState) |
//! | `("index", topic_id, partition, last_offset)` | [`IndexEntry`](crate::IndexEntry) |
//! | `("time_index", topic_id, partition, running_max_timestamp)` | `TimeIndexPoint` (the chunk that raised the partition's running maximum timestamp to this one) |
//! | `("producer", topic_id, partition, producer_id)` | [`ProducerState`](crate::ProducerState) |
//! | `("segment", segment_id)` | [`SegmentRecord`](crate::SegmentRecord) |
//! | `("deleted_topic", topic_id)` | [`DeletedTopic`](crate::DeletedTopic) |
//! | `("garbage", segment_id)` | [`GarbageObject`](crate::GarbageObject): an object no index entry references, deleted after a grace period |
//! | `("compacting", segment_id)` | [`CompactionOutput`](crate::CompactionOutput): a compaction's new object, registered before its upload and until its index swap |
//! | `("agent", node_id)` | [`AgentRecord`](crate::AgentRecord) |
//! | `("group_offset", group, topic, partition)` | [`CommittedOffset`](crate::CommittedOffset) |
//! | `("job_shard", shard)` | [`JobShardState`](crate::JobShardState): the agent running the jobs of a shard |
//! | `("coordinator_shard", shard)` | [`CoordinatorShardState`](crate::CoordinatorShardState) |
//! | `("group", shard, group)` | a group's header (a [`GroupRecord`](crate::GroupRecord) without its members) |
//! | `("group_member", shard, group, member_id)` | [`GroupMemberRecord`](crate::GroupMemberRecord) |
//! | `("consumer_member", shard, group, member_id)` | [`ConsumerMemberRecord`](crate::ConsumerMemberRecord) (server-side consumer protocol) |
//! | `("counter", name)` | 8-byte little-endian counter (unversioned, see below) |
//! | `("cluster", "id")` | `ClusterIdRecord` (the cluster id) |
//! | `("aborted_txn", topic_id, partition, last_offset)` | [`AbortedTransaction`](crate::AbortedTransaction): a transaction its abort marker at `last_offset` ended, for `read_committed` fetches |
//! | `("txn", shard, transactional_id)` | [`TransactionRecord`](crate::TransactionRecord): a transactional id's producer, epoch and current transaction, under its coordinator shard |
//! | `("txn_offset", group, producer_id, topic, partition)` | [`CommittedOffset`](crate::CommittedOffset): an offset committed in a transaction (`TxnOffsetCommit`), moved to `group_offset` when the transaction commits |
//! | `("rest_consumer", group, instance)` | [`RestConsumerRecord`](crate::rest_consumers::RestConsumerRecord): a REST Proxy (v2) consumer instance, written by compare-and-set on its version |
//! | `("leader_placement", topic_id, partition)` | [`LeaderPlacement`](crate::LeaderPlacement): the agent an operator placed the partition's leader on (`AlterPartitionReassignments`) |
//! | `("scram", user, mechanism)` | [`ScramCredential`](crate::ScramCredential): a user's salt, iterations, stored key and server key for one SCRAM mechanism |
//! | `("acl", resource_type, pattern_type, resource_name, principal, host, operation, permission)` | [`AclBinding`](crate::AclBinding): one ACL binding, the whole binding in the key (Kafka's codes for the enums), so creating it twice stores it once; every change bumps the `("counter", "acl_version")` counter |
//! | `("log_compaction", topic_id, partition)` | [`LogCompactionState`](crate::LogCompactionState): log compaction's cleaner checkpoint (the first dirty offset) and the earliest delete horizon still pending in the cleaned part |
//!
//! Every value is a versioned record ([`codec`](crate::codec)) except the
//! counters: they keep the format of the backend's atomic `ADD`
//! ([`Transaction::atomic_add`](crate::kv::Transaction::atomic_add),
//! [`decode_counter`](crate::kv::decode_counter)), which FoundationDB applies to
//! the raw bytes as a little-endian integer (a version byte would be added to), so
//! a counter can be bumped without a read as well as read and rewritten. That
//! format is fixed: 8 bytes, little-endian, two's complement.
//! The topic-name and cluster-id values were raw (a 16-byte id, UTF-8) before
//! they were versioned; readers still accept that form.
//!
//! Group keys carry the group's coordinator shard, so the coordinator that takes a
//! shard over loads its groups with one range read; members are stored one per
//! key, so a large group never outgrows a value.
//!
//! Index entries are keyed by their *last* offset, so the entry covering offset `o`
//! is the first at or after `("index", t, p, o)`: one forward range read.
//!
//! Time-index points are keyed by the running maximum timestamp a chunk raised
//! its partition to. The running maximum only grows, so points ordered by
//! timestamp are also ordered by offset, and the first chunk whose running
//! maximum reaches `ts` is the point at or after `("time_index", t, p, ts)`: one
//! forward range read, whatever the order of the timestamps in the log.

use foundationdb_tuple::Subspace;
use uuid::Uuid;

use crate::model::{SegmentId, TopicId, TopicPartition};

/// Names of the counters under `("counter", name)`.
const NODE_ID_COUNTER: &str = "node_id";
const PRODUCER_ID_COUNTER: &str = "producer_id";
const ACL_VERSION_COUNTER: &str = "acl_version";

/// Builds every metadata key under one root, so several clusters can share a
/// backend under different roots.
#[derive(Debug, Clone)]
pub struct Keyspace {
    root: Subspace,
}

impl Keyspace {
    /// The keyspace of cluster `cluster` (root `("fjord", cluster)`).
    pub fn new(cluster: &str) -> Self {
        Self {
            root: Subspace::all().subspace(&("fjord", cluster)),
        }
    }

    /// `[begin, end)` of every key of this keyspace.
    pub fn range(&self) -> (Vec<u8>, Vec<u8>) {
        self.root.range()
    }

    /// Where a topic name maps to its id.
    pub fn topic_name(&self, name: &str) -> Vec<u8> {
        self.root.pack(&("topic_name", name))
    }

    /// A topic's record.
    pub fn topic(&self, topic_id: TopicId) -> Vec<u8> {
        self.root.pack(&("topic", topic_id.0))
    }

    /// The prefix of every topic record.
    pub fn topics(&self) -> Vec<u8> {
        self.root.pack(&("topic",))
    }

    /// A partition's state.
    pub fn partition(&self, partition: TopicPartition) -> Vec<u8> {
        self.root
            .pack(&("partition", partition.topic_id.0, partition.partition))
    }

    /// The prefix of every partition state.
    pub fn all_partitions(&self) -> Vec<u8> {
        self.root.pack(&("partition",))
    }

    /// The partition of a [`Keyspace::partition`] key.
    pub fn partition_of(&self, key: &[u8]) -> Option<TopicPartition> {
        let (_, topic_id, partition): (String, Uuid, i32) = self.root.unpack(key).ok()?;
        Some(TopicPartition::new(TopicId(topic_id), partition))
    }

    /// The prefix of a topic's partition states.
    pub fn partitions_of(&self, topic_id: TopicId) -> Vec<u8> {
        self.root.pack(&("partition", topic_id.0))
    }

    /// A segment-index entry, keyed by its last offset.
    pub fn index_entry(&self, partition: TopicPartition, last_offset: i64) -> Vec<u8> {
        self.root.pack(&(
            "index",
            partition.topic_id.0,
            partition.partition,
            last_offset,
        ))
    }

    /// The prefix of a partition's index.
    pub fn index_of(&self, partition: TopicPartition) -> Vec<u8> {
        self.root
            .pack(&("index", partition.topic_id.0, partition.partition))
    }

    /// A time-index point: the chunk that raised the partition's running maximum
    /// timestamp to `running_max_timestamp`.
    pub fn time_index_point(
        &self,
        partition: TopicPartition,
        running_max_timestamp: i64,
    ) -> Vec<u8> {
        self.root.pack(&(
            "time_index",
            partition.topic_id.0,
            partition.partition,
            running_max_timestamp,
        ))
    }

    /// The prefix of a partition's time index.
    pub fn time_index_of(&self, partition: TopicPartition) -> Vec<u8> {
        self.root
            .pack(&("time_index", partition.topic_id.0, partition.partition))
    }

    /// The prefix of a topic's time indexes.
    pub fn time_index_of_topic(&self, topic_id: TopicId) -> Vec<u8> {
        self.root.pack(&("time_index", topic_id.0))
    }

    /// The running maximum timestamp in a [`Keyspace::time_index_point`] key.
    pub fn time_index_timestamp(&self, key: &[u8]) -> Option<i64> {
        let (_, _, _, timestamp): (String, Uuid, i32, i64) = self.root.unpack(key).ok()?;
        Some(timestamp)
    }

    /// An idempotent producer's state on a partition.
    pub fn producer_state(&self, partition: TopicPartition, producer_id: i64) -> Vec<u8> {
        self.root.pack(&(
            "producer",
            partition.topic_id.0,
            partition.partition,
            producer_id,
        ))
    }

    /// The prefix of a partition's producer states.
    pub fn producer_states_of(&self, partition: TopicPartition) -> Vec<u8> {
        self.root
            .pack(&("producer", partition.topic_id.0, partition.partition))
    }

    /// The prefix of a topic's producer states.
    pub fn producer_states_of_topic(&self, topic_id: TopicId) -> Vec<u8> {
        self.root.pack(&("producer", topic_id.0))
    }

    /// The producer id in a [`Keyspace::producer_state`] key.
    pub fn producer_state_id(&self, key: &[u8]) -> Option<i64> {
        let (_, _, _, producer_id): (String, Uuid, i32, i64) = self.root.unpack(key).ok()?;
        Some(producer_id)
    }

    /// A segment's record.
    pub fn segment(&self, segment_id: SegmentId) -> Vec<u8> {
        self.root
            .pack(&("segment", segment_id.0.to_bytes().to_vec()))
    }

    /// A deleted topic awaiting cleanup.
    pub fn deleted_topic(&self, topic_id: TopicId) -> Vec<u8> {
        self.root.pack(&("deleted_topic", topic_id.0))
    }

    /// The prefix of every deleted topic.
    pub fn deleted_topics(&self) -> Vec<u8> {
        self.root.pack(&("deleted_topic",))
    }

    /// The prefix of a topic's index (every partition's).
    pub fn index_of_topic(&self, topic_id: TopicId) -> Vec<u8> {
        self.root.pack(&("index", topic_id.0))
    }

    /// An object no index entry references, awaiting deletion.
    pub fn garbage_object(&self, segment_id: SegmentId) -> Vec<u8> {
        self.root
            .pack(&("garbage", segment_id.0.to_bytes().to_vec()))
    }

    /// The prefix of every garbage object.
    pub fn garbage_objects(&self) -> Vec<u8> {
        self.root.pack(&("garbage",))
    }

    /// The prefix of every segment record.
    pub fn segments(&self) -> Vec<u8> {
        self.root.pack(&("segment",))
    }

    /// A compaction output registered before its upload.
    pub fn compaction_output(&self, segment_id: SegmentId) -> Vec<u8> {
        self.root
            .pack(&("compacting", segment_id.0.to_bytes().to_vec()))
    }

    /// The prefix of every registered compaction output.
    pub fn compaction_outputs(&self) -> Vec<u8> {
        self.root.pack(&("compacting",))
    }

    /// The segment id in a segment-record, garbage or compaction-output key.
    pub fn segment_id_of(&self, key: &[u8]) -> Option<SegmentId> {
        let (_, bytes): (String, Vec<u8>) = self.root.unpack(key).ok()?;
        let bytes: [u8; 16] = bytes.try_into().ok()?;
        Some(SegmentId(ulid::Ulid::from_bytes(bytes)))
    }

    /// An agent's registration.
    pub fn agent(&self, node_id: i32) -> Vec<u8> {
        self.root.pack(&("agent", node_id))
    }

    /// The prefix of every agent registration.
    pub fn agents(&self) -> Vec<u8> {
        self.root.pack(&("agent",))
    }

    /// A group's committed offset for one partition.
    pub fn group_offset(&self, group: &str, topic: &str, partition: i32) -> Vec<u8> {
        self.root.pack(&("group_offset", group, topic, partition))
    }

    /// The prefix of a group's committed offsets.
    pub fn group_offsets(&self, group: &str) -> Vec<u8> {
        self.root.pack(&("group_offset", group))
    }

    /// The cluster's id (a UUID string, created by the first agent).
    pub fn cluster_id(&self) -> Vec<u8> {
        self.root.pack(&("cluster", "id"))
    }

    /// The counter that allocates agent node ids.
    pub fn node_id_counter(&self) -> Vec<u8> {
        self.root.pack(&("counter", NODE_ID_COUNTER))
    }

    /// The counter that allocates producer ids.
    pub fn producer_id_counter(&self) -> Vec<u8> {
        self.root.pack(&("counter", PRODUCER_ID_COUNTER))
    }

    /// Decodes the topic and partition from a group-offset key.
    pub fn group_offset_partition(&self, key: &[u8]) -> Option<(String, i32)> {
        self.root
            .unpack::<(String, String, String, i32)>(key)
            .ok()
            .map(|(_, _, topic, partition)| (topic, partition))
    }

    /// Decodes the last offset from an index-entry key.
    pub fn index_entry_last_offset(&self, key: &[u8]) -> Option<i64> {
        self.root
            .unpack::<(String, Uuid, i32, i64)>(key)
            .ok()
            .map(|(_, _, _, last_offset)| last_offset)
    }
}

// ----- job shards -----

impl Keyspace {
    /// A job shard's holder.
    pub fn job_shard(&self, shard: u32) -> Vec<u8> {
        self.root.pack(&("job_shard", shard))
    }

    /// The prefix of every job shard.
    pub fn job_shards(&self) -> Vec<u8> {
        self.root.pack(&("job_shard",))
    }

    /// The shard in a job-shard key.
    pub fn job_shard_index(&self, key: &[u8]) -> Option<u32> {
        self.root
            .unpack::<(String, u32)>(key)
            .ok()
            .map(|(_, shard)| shard)
    }
}

// ----- consumer groups -----

impl Keyspace {
    /// A coordinator shard's leadership.
    pub fn coordinator_shard(&self, shard: u32) -> Vec<u8> {
        self.root.pack(&("coordinator_shard", shard))
    }

    /// A group's header.
    pub fn group(&self, shard: u32, group: &str) -> Vec<u8> {
        self.root.pack(&("group", shard, group))
    }

    /// The prefix of every group header of a shard.
    pub fn groups_of_shard(&self, shard: u32) -> Vec<u8> {
        self.root.pack(&("group", shard))
    }

    /// The prefix of every group header.
    pub fn groups(&self) -> Vec<u8> {
        self.root.pack(&("group",))
    }

    /// One member of a group.
    pub fn group_member(&self, shard: u32, group: &str, member_id: &str) -> Vec<u8> {
        self.root.pack(&("group_member", shard, group, member_id))
    }

    /// The prefix of a group's members.
    pub fn group_members(&self, shard: u32, group: &str) -> Vec<u8> {
        self.root.pack(&("group_member", shard, group))
    }

    /// One member of a consumer-protocol (KIP-848) group.
    pub fn consumer_member(&self, shard: u32, group: &str, member_id: &str) -> Vec<u8> {
        self.root
            .pack(&("consumer_member", shard, group, member_id))
    }

    /// The prefix of a consumer-protocol group's members.
    pub fn consumer_members(&self, shard: u32, group: &str) -> Vec<u8> {
        self.root.pack(&("consumer_member", shard, group))
    }

    /// Decodes the group id from a group-header key.
    pub fn group_id_of(&self, key: &[u8]) -> Option<String> {
        self.root
            .unpack::<(String, u32, String)>(key)
            .ok()
            .map(|(_, _, group)| group)
    }
}

// ----- REST Proxy consumer instances -----

impl Keyspace {
    /// A REST Proxy consumer instance.
    pub fn rest_consumer(&self, group: &str, instance: &str) -> Vec<u8> {
        self.root.pack(&("rest_consumer", group, instance))
    }

    /// The prefix of a group's REST Proxy consumer instances.
    pub fn rest_consumers_of(&self, group: &str) -> Vec<u8> {
        self.root.pack(&("rest_consumer", group))
    }

    /// The prefix of every REST Proxy consumer instance.
    pub fn rest_consumers(&self) -> Vec<u8> {
        self.root.pack(&("rest_consumer",))
    }

    // ----- transactions -----

    /// An aborted transaction of a partition, keyed by its abort marker's offset.
    pub fn aborted_transaction(&self, partition: TopicPartition, last_offset: i64) -> Vec<u8> {
        self.root.pack(&(
            "aborted_txn",
            partition.topic_id.0,
            partition.partition,
            last_offset,
        ))
    }

    /// The prefix of a partition's aborted transactions.
    pub fn aborted_transactions_of(&self, partition: TopicPartition) -> Vec<u8> {
        self.root
            .pack(&("aborted_txn", partition.topic_id.0, partition.partition))
    }

    /// The prefix of a topic's aborted transactions.
    pub fn aborted_transactions_of_topic(&self, topic_id: TopicId) -> Vec<u8> {
        self.root.pack(&("aborted_txn", topic_id.0))
    }

    /// A transactional id's transaction, under its coordinator shard.
    pub fn transaction(&self, shard: u32, transactional_id: &str) -> Vec<u8> {
        self.root.pack(&("txn", shard, transactional_id))
    }

    /// The prefix of a coordinator shard's transactions.
    pub fn transactions_of_shard(&self, shard: u32) -> Vec<u8> {
        self.root.pack(&("txn", shard))
    }

    /// An offset committed inside a transaction (`TxnOffsetCommit`), pending
    /// until the transaction ends.
    pub fn pending_txn_offset(
        &self,
        group: &str,
        producer_id: i64,
        topic: &str,
        partition: i32,
    ) -> Vec<u8> {
        self.root
            .pack(&("txn_offset", group, producer_id, topic, partition))
    }

    /// The prefix of a group's pending transactional offsets.
    pub fn pending_txn_offsets_of_group(&self, group: &str) -> Vec<u8> {
        self.root.pack(&("txn_offset", group))
    }

    /// The prefix of one producer's pending transactional offsets in a group.
    pub fn pending_txn_offsets(&self, group: &str, producer_id: i64) -> Vec<u8> {
        self.root.pack(&("txn_offset", group, producer_id))
    }

    /// `(producer_id, topic, partition)` of a [`Keyspace::pending_txn_offset`] key.
    pub fn pending_txn_offset_of(&self, key: &[u8]) -> Option<(i64, String, i32)> {
        let (_, _, producer_id, topic, partition): (String, String, i64, String, i32) =
            self.root.unpack(key).ok()?;
        Some((producer_id, topic, partition))
    }
}

// ----- log compaction -----

impl Keyspace {
    /// Log compaction's state of a partition (`cleanup.policy=compact`).
    pub fn log_compaction(&self, partition: TopicPartition) -> Vec<u8> {
        self.root
            .pack(&("log_compaction", partition.topic_id.0, partition.partition))
    }

    /// The prefix of a topic's log compaction states.
    pub fn log_compactions_of_topic(&self, topic_id: TopicId) -> Vec<u8> {
        self.root.pack(&("log_compaction", topic_id.0))
    }

    /// The partition index of a [`Keyspace::log_compaction`] key.
    pub fn partition_of_log_compaction(&self, key: &[u8]) -> Option<i32> {
        let (_, _, partition): (String, Uuid, i32) = self.root.unpack(key).ok()?;
        Some(partition)
    }
}

// ----- SCRAM credentials -----

impl Keyspace {
    /// A user's credential for one SCRAM mechanism.
    pub fn scram_credential(&self, user: &str, mechanism: &str) -> Vec<u8> {
        self.root.pack(&("scram", user, mechanism))
    }

    /// The prefix of a user's credentials (the tuple encoding ends a string,
    /// so `alice` does not prefix `alice2`'s).
    pub fn scram_credentials_of(&self, user: &str) -> Vec<u8> {
        self.root.pack(&("scram", user))
    }

    /// The prefix of every SCRAM credential.
    pub fn scram_credentials(&self) -> Vec<u8> {
        self.root.pack(&("scram",))
    }

    /// The user and mechanism of a [`Keyspace::scram_credential`] key.
    pub fn scram_credential_of(&self, key: &[u8]) -> Option<(String, String)> {
        let (_, user, mechanism): (String, String, String) = self.root.unpack(key).ok()?;
        Some((user, mechanism))
    }
}

// ----- leader placements -----

impl Keyspace {
    /// The agent an operator placed a partition's leader on.
    pub fn leader_placement(&self, partition: TopicPartition) -> Vec<u8> {
        self.root.pack(&(
            "leader_placement",
            partition.topic_id.0,
            partition.partition,
        ))
    }

    /// The prefix of every leader placement.
    pub fn leader_placements(&self) -> Vec<u8> {
        self.root.pack(&("leader_placement",))
    }

    /// The prefix of a topic's leader placements.
    pub fn leader_placements_of_topic(&self, topic_id: TopicId) -> Vec<u8> {
        self.root.pack(&("leader_placement", topic_id.0))
    }

    /// The partition of a [`Keyspace::leader_placement`] key.
    pub fn partition_of_leader_placement(&self, key: &[u8]) -> Option<TopicPartition> {
        let (_, topic_id, partition): (String, Uuid, i32) = self.root.unpack(key).ok()?;
        Some(TopicPartition::new(TopicId(topic_id), partition))
    }
}

// ----- ACLs -----

impl Keyspace {
    /// One ACL binding: the whole binding is the key.
    pub fn acl(&self, binding: &crate::AclBinding) -> Vec<u8> {
        self.root.pack(&(
            "acl",
            i16::from(binding.resource_type.code()),
            i16::from(binding.pattern_type.code()),
            binding.resource_name.as_str(),
            binding.principal.as_str(),
            binding.host.as_str(),
            i16::from(binding.operation.code()),
            i16::from(binding.permission.code()),
        ))
    }

    /// The prefix of every ACL binding.
    pub fn acls(&self) -> Vec<u8> {
        self.root.pack(&("acl",))
    }

    /// The prefix of the ACL bindings of one resource type.
    pub fn acls_of_type(&self, resource_type: crate::ResourceType) -> Vec<u8> {
        self.root.pack(&("acl", i16::from(resource_type.code())))
    }

    /// The counter every change to the ACL bindings bumps.
    pub fn acl_version_counter(&self) -> Vec<u8> {
        self.root.pack(&("counter", ACL_VERSION_COUNTER))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::strinc;

    #[test]
    fn index_keys_order_by_offset_within_a_partition() {
        let keys = Keyspace::new("test");
        let tp = TopicPartition::new(TopicId(Uuid::from_u128(7)), 3);
        let offsets = [-1i64, 0, 9, 10, 255, 256, 70_000, i64::MAX];
        let encoded: Vec<Vec<u8>> = offsets.iter().map(|o| keys.index_entry(tp, *o)).collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
        let prefix = keys.index_of(tp);
        assert!(
            encoded
                .iter()
                .all(|k| k.starts_with(&prefix) && *k < strinc(&prefix))
        );
        assert_eq!(keys.index_entry_last_offset(&encoded[4]), Some(255));
        let other = TopicPartition::new(tp.topic_id, 30);
        assert!(!keys.index_entry(other, 0).starts_with(&prefix));
    }

    #[test]
    fn partition_keys_decode_and_nest_under_every_partition() {
        let keys = Keyspace::new("test");
        let tp = TopicPartition::new(TopicId(Uuid::from_u128(9)), 4);
        let key = keys.partition(tp);
        assert!(key.starts_with(&keys.all_partitions()));
        assert!(key.starts_with(&keys.partitions_of(tp.topic_id)));
        assert_eq!(keys.partition_of(&key), Some(tp));
        assert_eq!(keys.partition_of(&keys.topic(tp.topic_id)), None);
        assert!(!keys.topic(tp.topic_id).starts_with(&keys.all_partitions()));
    }

    #[test]
    fn time_index_keys_order_by_timestamp_within_a_partition() {
        let keys = Keyspace::new("test");
        let tp = TopicPartition::new(TopicId(Uuid::from_u128(7)), 3);
        let timestamps = [i64::MIN, -1, 0, 1, 1_700_000_000_000, i64::MAX];
        let encoded: Vec<Vec<u8>> = timestamps
            .iter()
            .map(|t| keys.time_index_point(tp, *t))
            .collect();
        let mut sorted = encoded.clone();
        sorted.sort();
        assert_eq!(encoded, sorted);
        let prefix = keys.time_index_of(tp);
        assert!(encoded.iter().all(|k| k.starts_with(&prefix)));
        assert!(prefix.starts_with(&keys.time_index_of_topic(tp.topic_id)));
        assert_eq!(keys.time_index_timestamp(&encoded[1]), Some(-1));
        // Neither the index nor another partition share the prefix.
        assert!(!keys.index_entry(tp, 0).starts_with(&prefix));
        let other = TopicPartition::new(tp.topic_id, 30);
        assert!(!keys.time_index_point(other, 0).starts_with(&prefix));
    }

    #[test]
    fn group_keys_nest_under_their_shard_and_decode() {
        let keys = Keyspace::new("test");
        let shard_prefix = keys.groups_of_shard(3);
        let group = keys.group(3, "orders-app");
        assert!(group.starts_with(&shard_prefix) && group.starts_with(&keys.groups()));
        assert!(!keys.group(4, "orders-app").starts_with(&shard_prefix));
        assert_eq!(keys.group_id_of(&group).as_deref(), Some("orders-app"));
        // A group whose name extends another's is not under the other's members.
        let members = keys.group_members(3, "a");
        assert!(keys.group_member(3, "a", "m-1").starts_with(&members));
        assert!(!keys.group_member(3, "ab", "m-1").starts_with(&members));
    }
}
