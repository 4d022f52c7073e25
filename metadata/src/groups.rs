//! Consumer groups in metadata: coordinator-shard leadership, the durable part of
//! each group, and committed offsets.
//!
//! Groups are hashed onto [`COORDINATOR_SHARDS`] coordinator shards
//! ([`coordinator_shard_of`]). Each shard has a leader agent and an epoch, like a
//! partition ([`MetadataStore::acquire_coordinator_shard`] bumps the epoch). The
//! coordinator keeps the group state machine in memory and persists its durable
//! part here; every write below takes a [`ShardFence`] and is one transaction
//! that first checks the fence's epoch is still the shard's, so a stale
//! coordinator's write fails with [`MetadataError::CoordinatorFenced`] and writes
//! nothing.
//!
//! Atomicity, per operation:
//!
//! - [`MetadataStore::store_group`]: the group's header and its full member set
//!   are replaced together.
//! - [`MetadataStore::commit_offsets`]: all offsets or none; when a generation is
//!   given, the stored group must be at it ([`MetadataError::IllegalGeneration`]
//!   otherwise). A group that does not exist yet is created empty in the same
//!   transaction (as Kafka creates a group on a first offset commit).
//! - [`MetadataStore::delete_group`]: header, members and every offset go
//!   together.
//! - [`MetadataStore::delete_offsets`]: the named offsets go together.

use serde::{Deserialize, Serialize};

use crate::MetadataError;
use crate::codec::{self, Versioned};
use crate::keys::Keyspace;
use crate::kv::{RangeOptions, Transaction};
use crate::model::*;
use crate::store::{MetadataStore, read, write};

/// How many coordinator shards groups are hashed onto. Part of the stored layout:
/// changing it moves groups between shards, so it needs a migration.
pub const COORDINATOR_SHARDS: u32 = 16;

/// The coordinator shard of `group_id`: FNV-1a over its UTF-8 bytes, modulo
/// [`COORDINATOR_SHARDS`]. Stable across builds and platforms.
pub fn coordinator_shard_of(group_id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for byte in group_id.as_bytes() {
        hash ^= u32::from(*byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash % COORDINATOR_SHARDS
}

/// A group's header as stored: the group without its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct GroupHeader {
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    generation: i32,
    leader: Option<String>,
    phase: GroupPhase,
    updated_at_ms: i64,
    /// Version 2: set for a group of the server-side consumer protocol, whose
    /// members are stored under `consumer_member` keys.
    consumer: Option<ConsumerEpochs>,
}

/// The epochs of a consumer-protocol group, in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct ConsumerEpochs {
    group_epoch: i32,
    assignment_epoch: i32,
}

/// Version 1 of [`GroupHeader`]: classic groups only.
#[derive(Deserialize)]
#[cfg_attr(test, derive(Serialize))]
struct GroupHeaderV1 {
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    generation: i32,
    leader: Option<String>,
    phase: GroupPhase,
    updated_at_ms: i64,
}

impl Versioned for GroupHeader {
    const WHAT: &'static str = "group";
    const VERSION: u8 = 2;

    fn decode_older(version: u8, body: &[u8]) -> Option<Result<Self, postcard::Error>> {
        (version == 1).then(|| {
            postcard::from_bytes::<GroupHeaderV1>(body).map(|v1| GroupHeader {
                protocol_type: v1.protocol_type,
                protocol_name: v1.protocol_name,
                generation: v1.generation,
                leader: v1.leader,
                phase: v1.phase,
                updated_at_ms: v1.updated_at_ms,
                consumer: None,
            })
        })
    }
}

fn validate_shard(shard: u32) -> Result<(), MetadataError> {
    if shard >= COORDINATOR_SHARDS {
        return Err(MetadataError::invalid(format!(
            "coordinator shard {shard} is outside 0..{COORDINATOR_SHARDS}"
        )));
    }
    Ok(())
}

fn validate_group_id(group: &str) -> Result<(), MetadataError> {
    if group.is_empty() {
        return Err(MetadataError::invalid("the group id is empty"));
    }
    Ok(())
}

/// Checks that `fence` still holds its shard, and that `group` belongs to it.
pub(crate) async fn check_fence(
    keys: &Keyspace,
    txn: &Transaction,
    fence: ShardFence,
    group: &str,
) -> Result<(), MetadataError> {
    let owner = coordinator_shard_of(group);
    if owner != fence.shard {
        return Err(MetadataError::invalid(format!(
            "group {group:?} belongs to coordinator shard {owner}, not {}",
            fence.shard
        )));
    }
    check_shard_epoch(keys, txn, fence).await
}

/// Checks that `fence` still holds its shard.
pub(crate) async fn check_shard_epoch(
    keys: &Keyspace,
    txn: &Transaction,
    fence: ShardFence,
) -> Result<(), MetadataError> {
    let state: CoordinatorShardState = read(txn, &keys.coordinator_shard(fence.shard))
        .await?
        .unwrap_or(CoordinatorShardState {
            leader: None,
            epoch: 0,
        });
    if state.epoch != fence.epoch {
        return Err(MetadataError::CoordinatorFenced {
            shard: fence.shard,
            current_epoch: state.epoch,
            attempted_epoch: fence.epoch,
        });
    }
    Ok(())
}

async fn group_in(
    keys: &Keyspace,
    txn: &Transaction,
    group: &str,
) -> Result<Option<GroupRecord>, MetadataError> {
    let shard = coordinator_shard_of(group);
    let Some(header) = read::<GroupHeader>(txn, &keys.group(shard, group)).await? else {
        return Ok(None);
    };
    let pairs = txn
        .get_prefix(&keys.group_members(shard, group), RangeOptions::default())
        .await?;
    let members = pairs
        .iter()
        .map(|pair| codec::decode::<GroupMemberRecord>(&pair.value))
        .collect::<Result<Vec<_>, _>>()?;
    let consumer = match header.consumer {
        None => None,
        Some(epochs) => {
            let pairs = txn
                .get_prefix(
                    &keys.consumer_members(shard, group),
                    RangeOptions::default(),
                )
                .await?;
            let members = pairs
                .iter()
                .map(|pair| codec::decode::<ConsumerMemberRecord>(&pair.value))
                .collect::<Result<Vec<_>, _>>()?;
            Some(ConsumerGroupRecord {
                group_epoch: epochs.group_epoch,
                assignment_epoch: epochs.assignment_epoch,
                members,
            })
        }
    };
    Ok(Some(GroupRecord {
        group_id: group.to_owned(),
        protocol_type: header.protocol_type,
        protocol_name: header.protocol_name,
        generation: header.generation,
        leader: header.leader,
        phase: header.phase,
        members,
        consumer,
        updated_at_ms: header.updated_at_ms,
    }))
}

pub(crate) fn write_group(
    keys: &Keyspace,
    txn: &Transaction,
    record: &GroupRecord,
    updated_at_ms: i64,
) {
    let shard = coordinator_shard_of(&record.group_id);
    let header = GroupHeader {
        protocol_type: record.protocol_type.clone(),
        protocol_name: record.protocol_name.clone(),
        generation: record.generation,
        leader: record.leader.clone(),
        phase: record.phase,
        updated_at_ms,
        consumer: record.consumer.as_ref().map(|consumer| ConsumerEpochs {
            group_epoch: consumer.group_epoch,
            assignment_epoch: consumer.assignment_epoch,
        }),
    };
    write(txn, &keys.group(shard, &record.group_id), &header);
    txn.clear_prefix(&keys.group_members(shard, &record.group_id));
    txn.clear_prefix(&keys.consumer_members(shard, &record.group_id));
    for member in &record.members {
        write(
            txn,
            &keys.group_member(shard, &record.group_id, &member.member_id),
            member,
        );
    }
    for member in record.consumer.iter().flat_map(|c| &c.members) {
        write(
            txn,
            &keys.consumer_member(shard, &record.group_id, &member.member_id),
            member,
        );
    }
}

impl MetadataStore {
    /// A coordinator shard's leader and epoch (no leader at epoch 0 if never
    /// taken).
    pub async fn coordinator_shard(
        &self,
        shard: u32,
    ) -> Result<CoordinatorShardState, MetadataError> {
        validate_shard(shard)?;
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                Ok(read(&txn, &keys.coordinator_shard(shard)).await?.unwrap_or(
                    CoordinatorShardState {
                        leader: None,
                        epoch: 0,
                    },
                ))
            })
            .await
    }

    /// Makes `node_id` the coordinator of `shard` under a new epoch (the old one
    /// plus one) and returns the fence its group writes must carry. Every group
    /// write made under an older epoch fails from now on; the caller loads the
    /// shard's groups ([`MetadataStore::load_groups`]) after this returns, so it
    /// sees everything the previous coordinator wrote.
    pub async fn acquire_coordinator_shard(
        &self,
        shard: u32,
        node_id: i32,
    ) -> Result<ShardFence, MetadataError> {
        validate_shard(shard)?;
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let key = keys.coordinator_shard(shard);
                let mut state: CoordinatorShardState =
                    read(&txn, &key).await?.unwrap_or(CoordinatorShardState {
                        leader: None,
                        epoch: 0,
                    });
                state.leader = Some(node_id);
                state.epoch = state.epoch.checked_add(1).ok_or_else(|| {
                    MetadataError::invalid(format!("epoch of coordinator shard {shard} overflowed"))
                })?;
                write(&txn, &key, &state);
                Ok(ShardFence {
                    shard,
                    epoch: state.epoch,
                })
            })
            .await
    }

    /// Gives up `node_id`'s coordination of `shard` if it still holds it under
    /// `fence` (a graceful hand-off: the agent stops its group actors first).
    /// The epoch stays; the next coordinator takes `epoch + 1`. Returns whether
    /// the shard was released.
    pub async fn release_coordinator_shard(
        &self,
        fence: ShardFence,
        node_id: i32,
    ) -> Result<bool, MetadataError> {
        validate_shard(fence.shard)?;
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let key = keys.coordinator_shard(fence.shard);
                let Some(mut state) = read::<CoordinatorShardState>(&txn, &key).await? else {
                    return Ok(false);
                };
                if state.leader != Some(node_id) || state.epoch != fence.epoch {
                    return Ok(false);
                }
                state.leader = None;
                write(&txn, &key, &state);
                Ok(true)
            })
            .await
    }

    /// Every group of a coordinator shard, ordered by group id.
    pub async fn load_groups(&self, shard: u32) -> Result<Vec<GroupRecord>, MetadataError> {
        validate_shard(shard)?;
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let pairs = txn
                    .get_prefix(&keys.groups_of_shard(shard), RangeOptions::default())
                    .await?;
                let mut groups = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    let group =
                        keys.group_id_of(&pair.key)
                            .ok_or_else(|| MetadataError::Corrupt {
                                what: "group key",
                                detail: "not a (shard, group) tuple".into(),
                            })?;
                    if let Some(record) = group_in(keys, &txn, &group).await? {
                        groups.push(record);
                    }
                }
                Ok(groups)
            })
            .await
    }

    /// The ids of every stored group, of every shard, ordered by shard then id.
    pub async fn list_group_ids(&self) -> Result<Vec<String>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let pairs = txn
                    .get_prefix(&keys.groups(), RangeOptions::default())
                    .await?;
                pairs
                    .iter()
                    .map(|pair| {
                        keys.group_id_of(&pair.key)
                            .ok_or_else(|| MetadataError::Corrupt {
                                what: "group key",
                                detail: "not a (shard, group) tuple".into(),
                            })
                    })
                    .collect()
            })
            .await
    }

    /// One stored group, if it exists.
    pub async fn load_group(&self, group: &str) -> Result<Option<GroupRecord>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move { group_in(keys, &txn, group).await })
            .await
    }

    /// Replaces the stored group `record.group_id` (header and members) with
    /// `record`, if `fence` still holds the group's shard.
    pub async fn store_group(
        &self,
        fence: ShardFence,
        record: &GroupRecord,
    ) -> Result<(), MetadataError> {
        validate_group_id(&record.group_id)?;
        let keys = self.keyspace();
        let updated_at_ms = self.now_millis();
        self.database()
            .run(|txn, _| async move {
                check_fence(keys, &txn, fence, &record.group_id).await?;
                write_group(keys, &txn, record, updated_at_ms);
                Ok(())
            })
            .await
    }

    /// Deletes a group with its members and committed offsets, if `fence` still
    /// holds its shard. Returns whether a group was stored.
    pub async fn delete_group(
        &self,
        fence: ShardFence,
        group: &str,
    ) -> Result<bool, MetadataError> {
        validate_group_id(group)?;
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                check_fence(keys, &txn, fence, group).await?;
                let shard = fence.shard;
                let existed = txn.get(&keys.group(shard, group)).await?.is_some();
                txn.clear(&keys.group(shard, group));
                txn.clear_prefix(&keys.group_members(shard, group));
                txn.clear_prefix(&keys.consumer_members(shard, group));
                txn.clear_prefix(&keys.group_offsets(group));
                Ok(existed)
            })
            .await
    }

    /// Stores a group's committed offsets, all or nothing, if `fence` still holds
    /// the group's shard. With `generation`, the stored group must be at that
    /// generation (an offset commit of a group member); without, the commit is a
    /// "simple" one (a consumer that does not use group management). A group not
    /// stored yet is created empty.
    pub async fn commit_offsets(
        &self,
        fence: ShardFence,
        group: &str,
        generation: Option<i32>,
        offsets: &[OffsetCommit],
    ) -> Result<(), MetadataError> {
        validate_group_id(group)?;
        let keys = self.keyspace();
        let commit_timestamp_ms = self.now_millis();
        self.database()
            .run(|txn, _| async move {
                check_fence(keys, &txn, fence, group).await?;
                let header_key = keys.group(fence.shard, group);
                let header: Option<GroupHeader> = read(&txn, &header_key).await?;
                match (generation, &header) {
                    (Some(attempted), Some(header)) if header.generation == attempted => {}
                    (Some(attempted), header) => {
                        return Err(MetadataError::IllegalGeneration {
                            group: group.to_owned(),
                            current: header.as_ref().map(|h| h.generation),
                            attempted,
                        });
                    }
                    (None, Some(_)) => {}
                    (None, None) => {
                        write_group(keys, &txn, &GroupRecord::empty(group), commit_timestamp_ms)
                    }
                }
                for commit in offsets {
                    let value = CommittedOffset {
                        offset: commit.offset,
                        leader_epoch: commit.leader_epoch,
                        metadata: commit.metadata.clone(),
                        commit_timestamp_ms,
                    };
                    let key = keys.group_offset(group, &commit.topic, commit.partition);
                    write(&txn, &key, &value);
                }
                Ok(())
            })
            .await
    }

    /// A group's committed offsets, ordered by topic and partition.
    pub async fn fetch_offsets(&self, group: &str) -> Result<Vec<GroupOffset>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let prefix = keys.group_offsets(group);
                let pairs = txn.get_prefix(&prefix, RangeOptions::default()).await?;
                let mut offsets = Vec::with_capacity(pairs.len());
                for pair in pairs {
                    let (topic, partition) =
                        keys.group_offset_partition(&pair.key).ok_or_else(|| {
                            MetadataError::Corrupt {
                                what: "group offset key",
                                detail: "not a (group, topic, partition) tuple".into(),
                            }
                        })?;
                    offsets.push(GroupOffset {
                        topic,
                        partition,
                        committed: codec::decode(&pair.value)?,
                    });
                }
                Ok(offsets)
            })
            .await
    }

    /// Deletes some of a group's committed offsets (`(topic, partition)` pairs),
    /// together, if `fence` still holds the group's shard. Absent ones are
    /// ignored.
    pub async fn delete_offsets(
        &self,
        fence: ShardFence,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<(), MetadataError> {
        validate_group_id(group)?;
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                check_fence(keys, &txn, fence, group).await?;
                for (topic, partition) in partitions {
                    txn.clear(&keys.group_offset(group, topic, *partition));
                }
                Ok(())
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_stable_and_in_range() {
        // Pinned: the shard of a group is part of the stored layout.
        assert_eq!(coordinator_shard_of(""), 0x811c_9dc5 % COORDINATOR_SHARDS);
        assert_eq!(coordinator_shard_of("a"), 0xe40c_292c % COORDINATOR_SHARDS);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..1_000 {
            let shard = coordinator_shard_of(&format!("group-{i}"));
            assert!(shard < COORDINATOR_SHARDS);
            seen.insert(shard);
        }
        assert_eq!(
            seen.len() as u32,
            COORDINATOR_SHARDS,
            "groups spread over every shard"
        );
    }

    #[test]
    fn group_records_round_trip() {
        let header = GroupHeader {
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            generation: 7,
            leader: Some("m-1".into()),
            phase: GroupPhase::Stable,
            updated_at_ms: 5,
            consumer: Some(ConsumerEpochs {
                group_epoch: 3,
                assignment_epoch: 2,
            }),
        };
        assert_eq!(
            codec::decode::<GroupHeader>(&codec::encode(&header)).unwrap(),
            header
        );
        // A version-1 header (before consumer-protocol groups) still reads.
        let v1 = GroupHeaderV1 {
            protocol_type: Some("consumer".into()),
            protocol_name: Some("range".into()),
            generation: 7,
            leader: Some("m-1".into()),
            phase: GroupPhase::Stable,
            updated_at_ms: 5,
        };
        let bytes = postcard::to_extend(&v1, vec![1]).unwrap();
        assert_eq!(
            codec::decode::<GroupHeader>(&bytes).unwrap(),
            GroupHeader {
                consumer: None,
                ..header.clone()
            }
        );
        let member = GroupMemberRecord {
            member_id: "m-1".into(),
            group_instance_id: Some("i-1".into()),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 6_000,
            rebalance_timeout_ms: 30_000,
            protocols: vec![GroupProtocol {
                name: "range".into(),
                metadata: vec![0, 1, 2],
            }],
            assignment: vec![9, 9],
        };
        let bytes = codec::encode(&member);
        assert_eq!(codec::decode::<GroupMemberRecord>(&bytes).unwrap(), member);
        for len in 0..bytes.len() {
            let _ = codec::decode::<GroupMemberRecord>(&bytes[..len]);
        }
    }
}
