//! The metadata domain, written once over [`Database`]: every public method is one
//! serializable transaction, retried on conflict by [`Database::run`].
//!
//! Atomicity and fencing, per operation:
//!
//! - [`MetadataStore::create_topic`], [`delete_topic`](MetadataStore::delete_topic),
//!   [`create_partitions`](MetadataStore::create_partitions): the topic record, its
//!   name mapping and its partition states change together.
//! - [`MetadataStore::commit_segment`]: for every chunk, checks that the partition's
//!   leader epoch equals the chunk's and that the chunk starts at the high
//!   watermark, then writes the index entries (and a time-index point where a
//!   chunk raises the partition's running maximum timestamp), advances the high
//!   watermarks and records the segment — all or nothing. It is idempotent on the segment id: a
//!   retry after a lost reply finds the segment record and writes nothing.
//! - [`MetadataStore::acquire_leadership`]: bumps the epoch, so every later commit
//!   made under the old epoch is [`MetadataError::Fenced`];
//!   [`acquire_leadership_with_producers`](MetadataStore::acquire_leadership_with_producers)
//!   also reads the producer states, in the same transaction.
//! - [`MetadataStore::all_partition_states`]: every topic and its partition
//!   states, from one snapshot.
//! - [`MetadataStore::delete_records`]: reads the partition's bounds and moves its
//!   log start offset forward in the same transaction; it never moves backwards.
//! - [`MetadataStore::epoch_end_offset`]: reads the partition's state and the tail
//!   of its index from one snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use fjord_common::{Clock, IdGenerator};
use uuid::Uuid;

use crate::MetadataError;
use crate::codec::{self, Versioned};
use crate::keys::Keyspace;
use crate::kv::{Database, RangeOptions, Transaction, decode_counter};
use crate::model::*;

/// Kafka's longest topic name.
const MAX_TOPIC_NAME_LEN: usize = 249;

/// Most partitions one topic may have (a guard against typos such as 1e9, and
/// against one `CreateTopics` transaction outgrowing the backend's limits).
pub const MAX_PARTITIONS_PER_TOPIC: i32 = 10_000;

/// The oldest segment (by the time in its id) a commit accepts. The orphan
/// sweep deletes only objects well past it (the agent's bound adds a margin for
/// clock skew), so it never deletes an object a commit may still reference.
pub const MAX_COMMIT_AGE_MS: i64 = 3_600_000;

/// The metadata domain over a transactional key-value backend.
#[derive(Debug, Clone)]
pub struct MetadataStore {
    db: Database,
    keys: Keyspace,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
}

pub(crate) async fn read<T: Versioned>(
    txn: &Transaction,
    key: &[u8],
) -> Result<Option<T>, MetadataError> {
    match txn.get(key).await? {
        Some(bytes) => Ok(Some(codec::decode(&bytes)?)),
        None => Ok(None),
    }
}

pub(crate) fn write<T: Versioned>(txn: &Transaction, key: &[u8], value: &T) {
    txn.set(key, &codec::encode(value));
}

/// Length of a topic-name value written before it was versioned: the raw id.
const UNVERSIONED_TOPIC_ID_LEN: usize = 16;

/// Decodes a topic-name mapping: a [`TopicNameRecord`], or the raw 16-byte id
/// that builds before versioning wrote (a versioned value is never 16 bytes long:
/// a version byte, a length byte and the 16 id bytes).
fn decode_topic_name(bytes: &[u8]) -> Result<TopicId, MetadataError> {
    if bytes.len() == UNVERSIONED_TOPIC_ID_LEN {
        let id = Uuid::from_slice(bytes).map_err(|e| MetadataError::Corrupt {
            what: TopicNameRecord::WHAT,
            detail: e.to_string(),
        })?;
        return Ok(TopicId(id));
    }
    Ok(codec::decode::<TopicNameRecord>(bytes)?.topic_id)
}

/// Decodes the cluster id: a [`ClusterIdRecord`], or the raw UTF-8 id that
/// builds before versioning wrote (a UUID string, whose first byte is an ASCII
/// hex digit, never the version byte).
fn decode_cluster_id(bytes: &[u8]) -> Result<String, MetadataError> {
    if bytes.first() == Some(&ClusterIdRecord::VERSION) {
        return Ok(codec::decode::<ClusterIdRecord>(bytes)?.cluster_id);
    }
    String::from_utf8(bytes.to_vec()).map_err(|e| MetadataError::Corrupt {
        what: ClusterIdRecord::WHAT,
        detail: e.to_string(),
    })
}

fn validate_topic_name(name: &str) -> Result<(), MetadataError> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(MetadataError::invalid(format!(
            "topic name {name:?} is not allowed"
        )));
    }
    if name.len() > MAX_TOPIC_NAME_LEN {
        return Err(MetadataError::invalid(format!(
            "topic name is {} characters long, the limit is {MAX_TOPIC_NAME_LEN}",
            name.len()
        )));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(MetadataError::invalid(format!(
            "topic name {name:?} contains {bad:?}; allowed are ASCII letters, digits, '.', '_' and '-'"
        )));
    }
    Ok(())
}

fn validate_partition_count(count: i32) -> Result<(), MetadataError> {
    if !(1..=MAX_PARTITIONS_PER_TOPIC).contains(&count) {
        return Err(MetadataError::invalid(format!(
            "partition count {count} is outside 1..={MAX_PARTITIONS_PER_TOPIC}"
        )));
    }
    Ok(())
}

fn validate_chunks(commit: &SegmentCommit) -> Result<(), MetadataError> {
    if commit.chunks.is_empty() {
        return Err(MetadataError::invalid(
            "a segment commit needs at least one chunk",
        ));
    }
    let mut seen = BTreeSet::new();
    for chunk in &commit.chunks {
        if !seen.insert(chunk.partition) {
            return Err(MetadataError::invalid(format!(
                "partition {} appears twice in segment {}",
                chunk.partition, commit.segment_id
            )));
        }
        let span = chunk.last_offset.checked_sub(chunk.base_offset);
        let valid_span = span.is_some_and(|span| {
            span >= 0 && chunk.record_count >= 1 && i64::from(chunk.record_count) <= span + 1
        });
        if chunk.base_offset < 0 || !valid_span {
            return Err(MetadataError::invalid(format!(
                "chunk for {} has offsets {}..={} and {} records",
                chunk.partition, chunk.base_offset, chunk.last_offset, chunk.record_count
            )));
        }
        let end = chunk.byte_offset.checked_add(chunk.byte_length);
        if end.is_none_or(|end| end > commit.object_size) {
            return Err(MetadataError::invalid(format!(
                "chunk for {} (bytes {}+{}) lies outside the {}-byte object",
                chunk.partition, chunk.byte_offset, chunk.byte_length, commit.object_size
            )));
        }
    }
    for aborted in &commit.aborted {
        if !seen.contains(&aborted.partition) {
            return Err(MetadataError::invalid(format!(
                "an aborted transaction of {}, which segment {} has no chunk for",
                aborted.partition, commit.segment_id
            )));
        }
    }
    for producer in &commit.producers {
        if !seen.contains(&producer.partition) {
            return Err(MetadataError::invalid(format!(
                "producer {} state for {}, which segment {} has no chunk for",
                producer.producer_id, producer.partition, commit.segment_id
            )));
        }
    }
    Ok(())
}

impl MetadataStore {
    /// A store over `db`, in the keyspace of cluster `cluster`.
    pub fn new(
        db: Database,
        cluster: &str,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
    ) -> Self {
        Self {
            db,
            keys: Keyspace::new(cluster),
            clock,
            ids,
        }
    }

    /// The underlying database (for tools and tests that work at the key-value
    /// level).
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The key layout.
    pub fn keyspace(&self) -> &Keyspace {
        &self.keys
    }

    /// The store clock's time, for informational timestamps in records.
    pub(crate) fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    // ----- topics -----

    /// Creates a topic with its partitions (each leaderless at epoch 0, empty).
    /// Fails with [`MetadataError::TopicAlreadyExists`] if the name is taken.
    pub async fn create_topic(&self, spec: NewTopic) -> Result<TopicMeta, MetadataError> {
        validate_topic_name(&spec.name)?;
        validate_partition_count(spec.partition_count)?;
        // Generated once, outside the body: a retry after a maybe-committed attempt
        // recognises its own topic by id.
        let topic = TopicMeta {
            id: TopicId(self.ids.uuid()),
            name: spec.name,
            partition_count: spec.partition_count,
            configs: spec.configs,
            created_at_ms: self.clock.now_millis(),
        };
        let keys = &self.keys;
        self.db
            .run(|txn, _attempt| {
                let topic = topic.clone();
                async move {
                    let name_key = keys.topic_name(&topic.name);
                    if let Some(existing) = txn.get(&name_key).await? {
                        // The same id: an earlier attempt of this call committed.
                        if decode_topic_name(&existing)? == topic.id {
                            return Ok(topic);
                        }
                        return Err(MetadataError::TopicAlreadyExists { name: topic.name });
                    }
                    write(&txn, &name_key, &TopicNameRecord { topic_id: topic.id });
                    write(&txn, &keys.topic(topic.id), &topic);
                    let empty = PartitionState::empty();
                    for partition in 0..topic.partition_count {
                        let tp = TopicPartition::new(topic.id, partition);
                        write(&txn, &keys.partition(tp), &empty);
                    }
                    Ok(topic)
                }
            })
            .await
    }

    async fn topic_in(
        keys: &Keyspace,
        txn: &Transaction,
        name: &str,
    ) -> Result<TopicMeta, MetadataError> {
        let unknown = || MetadataError::UnknownTopic {
            topic: name.to_owned(),
        };
        let id_bytes = txn.get(&keys.topic_name(name)).await?.ok_or_else(unknown)?;
        let id = decode_topic_name(&id_bytes)?;
        read(txn, &keys.topic(id)).await?.ok_or_else(unknown)
    }

    /// The topic named `name`.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicMeta, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move { Self::topic_in(keys, &txn, name).await })
            .await
    }

    /// The topic with id `topic_id`.
    pub async fn topic_by_id(&self, topic_id: TopicId) -> Result<TopicMeta, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                read(&txn, &keys.topic(topic_id)).await?.ok_or_else(|| {
                    MetadataError::UnknownTopic {
                        topic: topic_id.to_string(),
                    }
                })
            })
            .await
    }

    /// Every topic, ordered by id.
    pub async fn list_topics(&self) -> Result<Vec<TopicMeta>, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                let pairs = txn
                    .get_prefix(&keys.topics(), RangeOptions::default())
                    .await?;
                pairs
                    .iter()
                    .map(|pair| codec::decode::<TopicMeta>(&pair.value))
                    .collect()
            })
            .await
    }

    /// Deletes a topic: its name is free at once, its partitions are gone, and it is
    /// recorded as deleted so the garbage collector can release its index entries
    /// and objects.
    pub async fn delete_topic(&self, name: &str) -> Result<TopicMeta, MetadataError> {
        let keys = &self.keys;
        let deleted_at_ms = self.clock.now_millis();
        self.db
            .run(|txn, _| async move {
                let topic = Self::topic_in(keys, &txn, name).await?;
                txn.clear(&keys.topic_name(name));
                txn.clear(&keys.topic(topic.id));
                txn.clear_prefix(&keys.partitions_of(topic.id));
                txn.clear_prefix(&keys.producer_states_of_topic(topic.id));
                txn.clear_prefix(&keys.aborted_transactions_of_topic(topic.id));
                txn.clear_prefix(&keys.leader_placements_of_topic(topic.id));
                // The time index goes with the topic; its index entries stay for
                // the garbage collector (see DeletedTopic).
                txn.clear_prefix(&keys.time_index_of_topic(topic.id));
                let record = DeletedTopic {
                    topic: topic.clone(),
                    deleted_at_ms,
                };
                write(&txn, &keys.deleted_topic(topic.id), &record);
                Ok(topic)
            })
            .await
    }

    /// Raises a topic's partition count to `new_count` (Kafka never lowers it).
    pub async fn create_partitions(
        &self,
        name: &str,
        new_count: i32,
    ) -> Result<TopicMeta, MetadataError> {
        validate_partition_count(new_count)?;
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                let mut topic = Self::topic_in(keys, &txn, name).await?;
                if new_count < topic.partition_count {
                    return Err(MetadataError::invalid(format!(
                        "topic {name} has {} partitions; the count can only grow",
                        topic.partition_count
                    )));
                }
                let empty = PartitionState::empty();
                for partition in topic.partition_count..new_count {
                    write(
                        &txn,
                        &keys.partition(TopicPartition::new(topic.id, partition)),
                        &empty,
                    );
                }
                topic.partition_count = new_count;
                write(&txn, &keys.topic(topic.id), &topic);
                Ok(topic)
            })
            .await
    }

    /// Sets (`Some`) or removes (`None`) topic configs.
    pub async fn update_topic_configs(
        &self,
        name: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<TopicMeta, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                let mut topic = Self::topic_in(keys, &txn, name).await?;
                for (config, value) in changes {
                    match value {
                        Some(value) => topic.configs.insert(config.clone(), value.clone()),
                        None => topic.configs.remove(config),
                    };
                }
                write(&txn, &keys.topic(topic.id), &topic);
                Ok(topic)
            })
            .await
    }

    // ----- partitions and leadership -----

    pub(crate) async fn partition_in(
        keys: &Keyspace,
        txn: &Transaction,
        partition: TopicPartition,
    ) -> Result<PartitionState, MetadataError> {
        read(txn, &keys.partition(partition))
            .await?
            .ok_or(MetadataError::UnknownPartition { partition })
    }

    /// A partition's leader, epoch and log bounds.
    pub async fn partition_state(
        &self,
        partition: TopicPartition,
    ) -> Result<PartitionState, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move { Self::partition_in(keys, &txn, partition).await })
            .await
    }

    /// Every partition state of a topic, by partition index.
    pub async fn partition_states(
        &self,
        topic_id: TopicId,
    ) -> Result<Vec<PartitionState>, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                let pairs = txn
                    .get_prefix(&keys.partitions_of(topic_id), RangeOptions::default())
                    .await?;
                pairs
                    .iter()
                    .map(|pair| codec::decode::<PartitionState>(&pair.value))
                    .collect()
            })
            .await
    }

    /// Every topic, ordered by id, with its partition states by partition index,
    /// from one snapshot (two range reads, however many topics): what a balancer
    /// polls. A topic is never seen half created or half deleted.
    pub async fn all_partition_states(
        &self,
    ) -> Result<Vec<(TopicMeta, Vec<PartitionState>)>, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                let topics = txn
                    .get_prefix(&keys.topics(), RangeOptions::default())
                    .await?;
                let partitions = txn
                    .get_prefix(&keys.all_partitions(), RangeOptions::default())
                    .await?;
                let mut states: BTreeMap<TopicId, Vec<PartitionState>> = BTreeMap::new();
                for pair in &partitions {
                    let partition =
                        keys.partition_of(&pair.key)
                            .ok_or_else(|| MetadataError::Corrupt {
                                what: PartitionState::WHAT,
                                detail: "malformed partition key".into(),
                            })?;
                    states
                        .entry(partition.topic_id)
                        .or_default()
                        .push(codec::decode(&pair.value)?);
                }
                topics
                    .iter()
                    .map(|pair| {
                        let topic: TopicMeta = codec::decode(&pair.value)?;
                        let partitions = states.remove(&topic.id).unwrap_or_default();
                        Ok((topic, partitions))
                    })
                    .collect()
            })
            .await
    }

    /// Makes `node_id` the partition's leader under a new epoch (the old one plus
    /// one) and returns the new state. Every commit made under an older epoch fails
    /// from now on. The caller reads the committed high watermark from the result
    /// and serves from it.
    pub async fn acquire_leadership(
        &self,
        partition: TopicPartition,
        node_id: i32,
    ) -> Result<PartitionState, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move { Self::acquire_in(keys, &txn, partition, node_id).await })
            .await
    }

    /// [`MetadataStore::acquire_leadership`] and
    /// [`MetadataStore::producer_states`] in one transaction: a takeover reads
    /// the state it serves from (high watermark, producer states) from the
    /// snapshot its epoch was taken in, in one round trip.
    ///
    /// Only if the partition is still at `seen_epoch`, the epoch the caller
    /// judged it by (its holder dead, or gone): once another agent took it in
    /// between, the takeover is [`MetadataError::Fenced`] instead of fencing
    /// that agent, which may have acknowledged `acks=1` batches it has not
    /// committed yet.
    pub async fn acquire_leadership_with_producers(
        &self,
        partition: TopicPartition,
        node_id: i32,
        seen_epoch: i32,
    ) -> Result<(PartitionState, Vec<(i64, ProducerState)>), MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                let current = Self::partition_in(keys, &txn, partition).await?;
                if current.leader_epoch != seen_epoch {
                    return Err(MetadataError::Fenced {
                        partition,
                        current_epoch: current.leader_epoch,
                        attempted_epoch: seen_epoch,
                    });
                }
                let state = Self::acquire_in(keys, &txn, partition, node_id).await?;
                let producers = crate::producers::producer_states_in(keys, &txn, partition).await?;
                Ok((state, producers))
            })
            .await
    }

    async fn acquire_in(
        keys: &Keyspace,
        txn: &Transaction,
        partition: TopicPartition,
        node_id: i32,
    ) -> Result<PartitionState, MetadataError> {
        let mut state = Self::partition_in(keys, txn, partition).await?;
        state.leader = Some(node_id);
        state.leader_epoch = state.leader_epoch.checked_add(1).ok_or_else(|| {
            MetadataError::invalid(format!("leader epoch of {partition} overflowed"))
        })?;
        write(txn, &keys.partition(partition), &state);
        Ok(state)
    }

    /// Gives up `node_id`'s leadership of `partition` if it still holds it under
    /// `epoch` (a graceful hand-off: the leader has committed everything it
    /// accepted). The epoch stays; the next leader takes `epoch + 1`. Returns
    /// whether leadership was released.
    pub async fn release_leadership(
        &self,
        partition: TopicPartition,
        node_id: i32,
        epoch: i32,
    ) -> Result<bool, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                let mut state = Self::partition_in(keys, &txn, partition).await?;
                if state.leader != Some(node_id) || state.leader_epoch != epoch {
                    return Ok(false);
                }
                state.leader = None;
                write(&txn, &keys.partition(partition), &state);
                Ok(true)
            })
            .await
    }

    // ----- the segment index -----

    /// Commits one segment object to the index: see the module docs for the checks.
    ///
    /// What an error means for the caller:
    ///
    /// - [`MetadataError::Fenced`], [`MetadataError::OffsetMismatch`],
    ///   [`MetadataError::UnknownPartition`] (its topic was deleted meanwhile):
    ///   nothing was written and the error names the partition; the caller may
    ///   commit the remaining chunks under the same segment id.
    /// - [`ErrorKind::MaybeCommitted`](crate::ErrorKind::MaybeCommitted): the
    ///   retries ran out after an attempt whose outcome is unknown. Calling again
    ///   with the same commit settles it: a commit that had applied answers
    ///   `replayed` and writes nothing.
    /// - [`ErrorKind::Retryable`](crate::ErrorKind::Retryable): nothing was
    ///   written; the same commit may be retried.
    pub async fn commit_segment(
        &self,
        commit: &SegmentCommit,
    ) -> Result<SegmentCommitOutcome, MetadataError> {
        validate_chunks(commit)?;
        let keys = &self.keys;
        let committed_at_ms = self.clock.now_millis();
        self.db
            .run(|txn, _attempt| async move {
                let segment_key = keys.segment(commit.segment_id);
                let expected: Vec<(TopicPartition, i64)> = commit
                    .chunks
                    .iter()
                    .map(|chunk| (chunk.partition, chunk.last_offset + 1))
                    .collect();
                // The segment's marker and every partition's state in one read
                // (one round trip on backends that pay one per read).
                let mut reads = Vec::with_capacity(commit.chunks.len() + 1);
                reads.push(segment_key.clone());
                reads.extend(commit.chunks.iter().map(|c| keys.partition(c.partition)));
                let mut values = txn.get_many(&reads).await?.into_iter();
                if values.next().flatten().is_some() {
                    return Ok(SegmentCommitOutcome {
                        high_watermarks: expected,
                        replayed: true,
                    });
                }
                // Past this age the orphan sweep may have taken the object.
                let born = i64::try_from(commit.segment_id.0.timestamp_ms()).unwrap_or(i64::MAX);
                let age_ms = committed_at_ms.saturating_sub(born);
                if age_ms > MAX_COMMIT_AGE_MS {
                    return Err(MetadataError::SegmentTooOld {
                        segment_id: commit.segment_id,
                        age_ms,
                        max_age_ms: MAX_COMMIT_AGE_MS,
                    });
                }
                let mut states: std::collections::HashMap<TopicPartition, PartitionState> =
                    std::collections::HashMap::new();
                for (chunk, value) in commit.chunks.iter().zip(values) {
                    if let Some(bytes) = value
                        && !states.contains_key(&chunk.partition)
                    {
                        states.insert(chunk.partition, codec::decode(&bytes)?);
                    }
                }
                for chunk in &commit.chunks {
                    let state = states.get_mut(&chunk.partition).ok_or(
                        MetadataError::UnknownPartition {
                            partition: chunk.partition,
                        },
                    )?;
                    if state.leader_epoch != chunk.leader_epoch {
                        return Err(MetadataError::Fenced {
                            partition: chunk.partition,
                            current_epoch: state.leader_epoch,
                            attempted_epoch: chunk.leader_epoch,
                        });
                    }
                    if state.high_watermark != chunk.base_offset {
                        return Err(MetadataError::OffsetMismatch {
                            partition: chunk.partition,
                            high_watermark: state.high_watermark,
                            base_offset: chunk.base_offset,
                        });
                    }
                    let entry = IndexEntry {
                        base_offset: chunk.base_offset,
                        last_offset: chunk.last_offset,
                        record_count: chunk.record_count,
                        max_timestamp: chunk.max_timestamp,
                        leader_epoch: chunk.leader_epoch,
                        segment_id: commit.segment_id,
                        object_key: commit.object_key.clone(),
                        byte_offset: chunk.byte_offset,
                        byte_length: chunk.byte_length,
                        object_size: commit.object_size,
                    };
                    write(
                        &txn,
                        &keys.index_entry(chunk.partition, chunk.last_offset),
                        &entry,
                    );
                    crate::time_index::record_chunk(keys, &txn, state, chunk);
                    state.high_watermark = chunk.last_offset + 1;
                }
                for producer in &commit.producers {
                    write(
                        &txn,
                        &keys.producer_state(producer.partition, producer.producer_id),
                        &producer.state,
                    );
                    // The partition's open transactions follow its producers'
                    // states, so its last stable offset is the committed log's.
                    if let Some(state) = states.get_mut(&producer.partition) {
                        let open = &mut state.open_transactions;
                        open.retain(|t| t.producer_id != producer.producer_id);
                        if let Some(first_offset) = producer.state.txn_first_offset {
                            open.push(OpenTransaction {
                                producer_id: producer.producer_id,
                                first_offset,
                            });
                        }
                    }
                }
                for aborted in &commit.aborted {
                    write(
                        &txn,
                        &keys.aborted_transaction(aborted.partition, aborted.last_offset),
                        &AbortedTransaction {
                            producer_id: aborted.producer_id,
                            first_offset: aborted.first_offset,
                            last_offset: aborted.last_offset,
                        },
                    );
                }
                for chunk in &commit.chunks {
                    if let Some(state) = states.get(&chunk.partition) {
                        write(&txn, &keys.partition(chunk.partition), state);
                    }
                }
                let live_chunks = u32::try_from(commit.chunks.len()).map_err(|_| {
                    MetadataError::invalid("a segment may reference at most u32::MAX chunks")
                })?;
                let record = SegmentRecord {
                    object_key: commit.object_key.clone(),
                    object_size: commit.object_size,
                    live_chunks,
                    committed_at_ms,
                };
                write(&txn, &segment_key, &record);
                Ok(SegmentCommitOutcome {
                    high_watermarks: expected,
                    replayed: false,
                })
            })
            .await
    }

    /// The index entries of `partition` from the one covering `offset` on, at most
    /// `limit`, with the partition's state from the same snapshot.
    pub async fn lookup(
        &self,
        partition: TopicPartition,
        offset: i64,
        limit: usize,
    ) -> Result<IndexLookup, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                let state = Self::partition_in(keys, &txn, partition).await?;
                let begin = keys.index_entry(partition, offset.max(state.log_start_offset));
                let end = crate::kv::strinc(&keys.index_of(partition));
                let pairs = txn
                    .get_range(&begin, &end, RangeOptions::first(limit))
                    .await?;
                let entries = pairs
                    .iter()
                    .map(|pair| codec::decode::<IndexEntry>(&pair.value))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(IndexLookup { state, entries })
            })
            .await
    }

    /// A committed segment's record.
    pub async fn segment_record(
        &self,
        segment_id: SegmentId,
    ) -> Result<Option<SegmentRecord>, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move { read(&txn, &keys.segment(segment_id)).await })
            .await
    }

    // ----- agents -----

    /// Registers an agent process and allocates its node id.
    pub async fn register_agent(
        &self,
        instance: Uuid,
        advertised_address: &str,
        gateway_address: Option<&str>,
        roles: AgentRoles,
    ) -> Result<AgentRecord, MetadataError> {
        let keys = &self.keys;
        let registered_at_ms = self.clock.now_millis();
        self.db
            .run(|txn, attempt| async move {
                if attempt.maybe_committed {
                    // Find our own registration from the attempt that may have applied.
                    let pairs = txn
                        .get_prefix(&keys.agents(), RangeOptions::default())
                        .await?;
                    for pair in pairs {
                        let record: AgentRecord = codec::decode(&pair.value)?;
                        if record.instance == instance {
                            return Ok(record);
                        }
                    }
                }
                let counter_key = keys.node_id_counter();
                let previous = decode_counter(txn.get(&counter_key).await?.as_deref());
                let node_id = i32::try_from(previous)
                    .map_err(|_| MetadataError::invalid("agent node ids are exhausted"))?;
                txn.set(&counter_key, &(previous + 1).to_le_bytes());
                let record = AgentRecord {
                    node_id,
                    instance,
                    advertised_address: advertised_address.to_owned(),
                    heartbeat: 0,
                    registered_at_ms,
                    roles,
                    gateway_address: gateway_address.map(str::to_owned),
                };
                write(&txn, &keys.agent(node_id), &record);
                Ok(record)
            })
            .await
    }

    /// Registers a restarted agent under the node id it had (its data directory
    /// remembers it), with a new instance, address and roles; the heartbeat counter
    /// carries on. `None` if that registration is gone (it was judged dead and
    /// removed): the caller registers afresh.
    pub async fn reregister_agent(
        &self,
        node_id: i32,
        instance: Uuid,
        advertised_address: &str,
        gateway_address: Option<&str>,
        roles: AgentRoles,
    ) -> Result<Option<AgentRecord>, MetadataError> {
        let keys = &self.keys;
        let registered_at_ms = self.clock.now_millis();
        self.db
            .run(|txn, _| async move {
                let Some(mut record): Option<AgentRecord> =
                    read(&txn, &keys.agent(node_id)).await?
                else {
                    return Ok(None);
                };
                record.instance = instance;
                record.advertised_address = advertised_address.to_owned();
                record.heartbeat += 1;
                record.registered_at_ms = registered_at_ms;
                record.roles = roles;
                record.gateway_address = gateway_address.map(str::to_owned);
                write(&txn, &keys.agent(node_id), &record);
                Ok(Some(record))
            })
            .await
    }

    /// Bumps an agent's heartbeat counter and returns it. Fails with
    /// [`MetadataError::UnknownAgent`] once the registration is gone (the agent was
    /// declared dead and must register again).
    pub async fn heartbeat(&self, node_id: i32) -> Result<u64, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                let mut record: AgentRecord = read(&txn, &keys.agent(node_id))
                    .await?
                    .ok_or(MetadataError::UnknownAgent { node_id })?;
                record.heartbeat += 1;
                write(&txn, &keys.agent(node_id), &record);
                Ok(record.heartbeat)
            })
            .await
    }

    /// Every registered agent, by node id.
    pub async fn list_agents(&self) -> Result<Vec<AgentRecord>, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                let pairs = txn
                    .get_prefix(&keys.agents(), RangeOptions::default())
                    .await?;
                pairs
                    .iter()
                    .map(|pair| codec::decode::<AgentRecord>(&pair.value))
                    .collect()
            })
            .await
    }

    /// Removes an agent's registration.
    pub async fn deregister_agent(&self, node_id: i32) -> Result<(), MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                txn.clear(&keys.agent(node_id));
                Ok(())
            })
            .await
    }

    // ----- cluster -----

    /// The cluster's id, created (as a random UUID) on first use.
    pub async fn cluster_id(&self) -> Result<String, MetadataError> {
        let keys = &self.keys;
        let candidate = self.ids.uuid().to_string();
        self.db
            .run(|txn, _| {
                let candidate = candidate.clone();
                async move {
                    if let Some(existing) = txn.get(&keys.cluster_id()).await? {
                        return decode_cluster_id(&existing);
                    }
                    let record = ClusterIdRecord {
                        cluster_id: candidate,
                    };
                    write(&txn, &keys.cluster_id(), &record);
                    Ok(record.cluster_id)
                }
            })
            .await
    }

    // ----- producers -----

    /// Allocates a producer id, unique in the cluster.
    pub async fn allocate_producer_id(&self) -> Result<i64, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                let key = keys.producer_id_counter();
                let next = decode_counter(txn.get(&key).await?.as_deref());
                txn.set(&key, &(next + 1).to_le_bytes());
                Ok(next)
            })
            .await
    }
}

// ----- log start offsets and leader epochs (Kafka's DeleteRecords and
// OffsetForLeaderEpoch) -----

/// The `offset` of [`MetadataStore::delete_records`] that means "up to the high
/// watermark" (Kafka's `DeleteRecords` uses -1 for it).
pub const DELETE_UP_TO_HIGH_WATERMARK: i64 = -1;

/// Index entries read per range read while walking an index backwards.
const EPOCH_SCAN_PAGE: usize = 256;

impl MetadataStore {
    /// Moves the log start offset of `partition` forward to `offset` (or to the
    /// high watermark for [`DELETE_UP_TO_HIGH_WATERMARK`]) and returns the log
    /// start offset afterwards. An offset at or below the current log start moves
    /// nothing (the log start never moves backwards); an offset beyond the high
    /// watermark, or a negative one other than -1, is
    /// [`MetadataError::OffsetOutOfRange`] and writes nothing.
    ///
    /// Reads below the new log start fail from then on; the index entries that
    /// only hold such offsets stay until the retention job releases them
    /// ([`MetadataStore::release_prefix`]), which makes their objects garbage,
    /// and the time-index points of chunks below it stay (timestamp searches
    /// clamp to the log start, see [`MetadataStore::lookup_by_timestamp`]).
    pub async fn delete_records(
        &self,
        partition: TopicPartition,
        offset: i64,
    ) -> Result<i64, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                let mut state = Self::partition_in(keys, &txn, partition).await?;
                let target = if offset == DELETE_UP_TO_HIGH_WATERMARK {
                    state.high_watermark
                } else {
                    offset
                };
                if target < 0 || target > state.high_watermark {
                    return Err(MetadataError::OffsetOutOfRange {
                        partition,
                        offset,
                        log_start_offset: state.log_start_offset,
                        high_watermark: state.high_watermark,
                    });
                }
                if target > state.log_start_offset {
                    state.log_start_offset = target;
                    write(&txn, &keys.partition(partition), &state);
                }
                Ok(state.log_start_offset)
            })
            .await
    }

    /// Where the records of `leader_epoch` end in `partition`, as Kafka's leader
    /// epoch cache answers it:
    ///
    /// - a negative epoch, or one newer than the current: no answer;
    /// - the current epoch: the high watermark;
    /// - an older epoch: the first offset written under a later epoch, reported
    ///   with the largest epoch the log holds at or below the one asked for (or
    ///   the one asked for, when the log holds none at or below it, with the
    ///   answer at least the log start offset).
    ///
    /// The index is walked backwards from its end, so asking about recent epochs
    /// (what consumers do after a leader change) reads few entries.
    pub async fn epoch_end_offset(
        &self,
        partition: TopicPartition,
        leader_epoch: i32,
    ) -> Result<EpochEndLookup, MetadataError> {
        let keys = &self.keys;
        self.db
            .run(|txn, _| async move {
                let state = Self::partition_in(keys, &txn, partition).await?;
                if leader_epoch < 0 || leader_epoch > state.leader_epoch {
                    return Ok(EpochEndLookup { state, end: None });
                }
                if leader_epoch == state.leader_epoch {
                    let end = EpochEnd {
                        leader_epoch,
                        end_offset: state.high_watermark,
                    };
                    return Ok(EpochEndLookup {
                        state,
                        end: Some(end),
                    });
                }
                // Epochs never decrease along the log. Walking back from the end,
                // every entry of a later epoch moves the end offset down to its
                // first offset; the first entry at or below the epoch asked for
                // stops the walk and names the epoch to report. With no entry of a
                // later epoch, the later (current) epoch starts at the high
                // watermark.
                let begin = keys.index_entry(partition, state.log_start_offset);
                let mut end_key = crate::kv::strinc(&keys.index_of(partition));
                let mut end_offset = state.high_watermark;
                let mut floor_epoch = None;
                'pages: loop {
                    let pairs = txn
                        .get_range(&begin, &end_key, RangeOptions::last(EPOCH_SCAN_PAGE))
                        .await?;
                    for pair in &pairs {
                        let entry: IndexEntry = codec::decode(&pair.value)?;
                        if entry.leader_epoch <= leader_epoch {
                            floor_epoch = Some(entry.leader_epoch);
                            break 'pages;
                        }
                        end_offset = entry.base_offset;
                    }
                    match pairs.last() {
                        Some(last) if pairs.len() == EPOCH_SCAN_PAGE => end_key = last.key.clone(),
                        _ => break,
                    }
                }
                let end = EpochEnd {
                    leader_epoch: floor_epoch.unwrap_or(leader_epoch),
                    end_offset: end_offset.max(state.log_start_offset),
                };
                Ok(EpochEndLookup {
                    state,
                    end: Some(end),
                })
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use fjord_common::{ManualClock, SequentialIds};

    use super::*;
    use crate::kv::RetryPolicy;
    use crate::kv::memory::MemoryBackend;

    fn store() -> (MetadataStore, Database) {
        let db = Database::new(Arc::new(MemoryBackend::new()), RetryPolicy::default(), 1);
        let store = MetadataStore::new(
            db.clone(),
            "test",
            Arc::new(ManualClock::new(1_700_000_000_000)),
            Arc::new(SequentialIds::default()),
        );
        (store, db)
    }

    async fn raw(db: &Database, key: Vec<u8>) -> Option<Vec<u8>> {
        db.run(|txn, _| {
            let key = key.clone();
            async move { txn.get(&key).await }
        })
        .await
        .unwrap()
    }

    async fn set_raw(db: &Database, key: Vec<u8>, value: Vec<u8>) {
        db.run(|txn, _| {
            let (key, value) = (key.clone(), value.clone());
            async move {
                txn.set(&key, &value);
                Ok::<_, crate::kv::KvError>(())
            }
        })
        .await
        .unwrap();
    }

    #[test]
    fn topic_name_and_cluster_id_encodings_are_pinned() {
        let record = TopicNameRecord {
            topic_id: TopicId(Uuid::from_u128(0x0102)),
        };
        let mut expected = vec![1, 16];
        expected.extend_from_slice(&0x0102u128.to_be_bytes());
        assert_eq!(codec::encode(&record), expected);
        assert_eq!(decode_topic_name(&expected).unwrap(), record.topic_id);

        let record = ClusterIdRecord {
            cluster_id: "abc".into(),
        };
        assert_eq!(codec::encode(&record), [1, 3, b'a', b'b', b'c']);
        assert_eq!(decode_cluster_id(&codec::encode(&record)).unwrap(), "abc");

        // Damage is an error, never a panic or a wrong id.
        for bad in [&[][..], &[1][..], &[1, 16, 0][..], &[9; 17][..]] {
            let error = decode_topic_name(bad).unwrap_err();
            assert_eq!(error.kind(), crate::ErrorKind::Corrupt, "{bad:?}");
        }
        let error = decode_cluster_id(&[0xff, 0xfe]).unwrap_err();
        assert_eq!(error.kind(), crate::ErrorKind::Corrupt);
    }

    #[tokio::test]
    async fn topic_names_and_the_cluster_id_are_written_versioned() {
        let (store, db) = store();
        let topic = store
            .create_topic(NewTopic::new("orders", 2))
            .await
            .unwrap();
        let value = raw(&db, store.keys.topic_name("orders")).await.unwrap();
        assert_eq!(value[0], TopicNameRecord::VERSION);
        let record: TopicNameRecord = codec::decode(&value).unwrap();
        assert_eq!(record.topic_id, topic.id);
        assert_eq!(store.describe_topic("orders").await.unwrap().id, topic.id);

        let cluster_id = store.cluster_id().await.unwrap();
        let value = raw(&db, store.keys.cluster_id()).await.unwrap();
        let record: ClusterIdRecord = codec::decode(&value).unwrap();
        assert_eq!(record.cluster_id, cluster_id);
        assert_eq!(store.cluster_id().await.unwrap(), cluster_id);
    }

    #[tokio::test]
    async fn values_written_before_versioning_are_still_read() {
        let (store, db) = store();
        let topic = store
            .create_topic(NewTopic::new("legacy", 1))
            .await
            .unwrap();
        // As builds before versioning wrote them: the raw id, the raw UTF-8 id.
        let name_key = store.keys.topic_name("legacy");
        set_raw(&db, name_key, topic.id.0.as_bytes().to_vec()).await;
        let cluster_id = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
        set_raw(&db, store.keys.cluster_id(), cluster_id.as_bytes().to_vec()).await;

        assert_eq!(store.describe_topic("legacy").await.unwrap().id, topic.id);
        assert_eq!(store.cluster_id().await.unwrap(), cluster_id);
        // Creating the topic again still finds the old mapping.
        let error = store
            .create_topic(NewTopic::new("legacy", 1))
            .await
            .unwrap_err();
        assert!(
            matches!(error, MetadataError::TopicAlreadyExists { .. }),
            "{error}"
        );
    }
}
