//! REST Proxy consumer instances (API v2), kept in metadata so that any agent
//! serves any instance URL.
//!
//! Every call of an instance:
//!
//! 1. loads its record ([`RestConsumer`]); one unused for longer than its
//!    `consumer.instance.timeout.ms` is deleted there and then (and by a
//!    sweep each agent runs now and then), and answered "not found";
//! 2. works on a copy: a subscription is a member of the server-side consumer
//!    protocol (`crate::ops::group`) whose member id is made once, when the
//!    instance is created; each read is a poll (the heartbeat, then records
//!    from the instance's positions); commits are fenced by the member epoch;
//! 3. stores the copy by compare-and-set on the version it loaded. When
//!    another call stored first, the call is redone from the new state, and
//!    the records a lost read found are not answered: the winner's positions
//!    are where the redo reads from, so nothing is skipped.
//!
//! The member's session lapses when the client stops reading (its partitions
//! go to the other members), but the instance stays: its next read finds the
//! coordinator does not know the member any more (`UNKNOWN_MEMBER_ID`,
//! `FENCED_MEMBER_EPOCH`) and joins again with the same member id, at the
//! group's committed offsets.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::records::Record;

use super::{Api, RestError};
use crate::core::{Core, RestConsumer};
use crate::ops::Failure;
use crate::ops::group::{self, GroupCursor, Join, Poll};
use crate::ops::partition_read::{self, Start};

/// Confluent's default `consumer.instance.timeout.ms`.
pub(crate) const DEFAULT_INSTANCE_TIMEOUT_MS: i64 = 300_000;
/// How often an agent sweeps expired instances (besides expiring them when
/// they are called).
pub(crate) const SWEEP_INTERVAL_MS: i64 = 60_000;
/// How many times a call is redone when other calls of the instance keep
/// storing first.
const MAX_ATTEMPTS: usize = 16;
/// A read-only call records the instance's use when the last one is older.
const TOUCH_AFTER_MS: i64 = 1_000;
/// The longest one poll of a read waits before heartbeating again, so a
/// member without partitions learns its assignment within a read.
const POLL_SLICE: Duration = Duration::from_millis(500);

/// Records read, with their topic and partition.
pub(crate) type Fetched = Vec<(String, i32, Record)>;

/// How a read is bounded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadLimits {
    /// How long to wait for records.
    pub(crate) wait: Duration,
    /// About how many bytes of batches to read.
    pub(crate) max_bytes: usize,
    /// The most records answered.
    pub(crate) max_records: usize,
}

/// Where an instance seeks a partition to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seek {
    /// This offset.
    Offset(i64),
    /// The log start.
    Beginning,
    /// The high watermark.
    End,
    /// The first record at or after this time (ms since the epoch).
    Timestamp(i64),
}

fn failure(failure: Failure) -> RestError {
    RestError::failure(Api::V2, failure)
}

fn kafka(error: &crate::core::KafkaError) -> RestError {
    RestError::kafka(Api::V2, error)
}

/// Whether a group call failed because the coordinator no longer knows the
/// member (its session lapsed) or fenced it: the instance then joins again,
/// with the member id made when it was created.
fn member_lost(failure: &Failure) -> bool {
    matches!(
        failure,
        Failure::Kafka(e) if matches!(
            e.error,
            ResponseError::UnknownMemberId | ResponseError::FencedMemberEpoch
        )
    )
}

/// Where partitions without a committed offset start.
pub(crate) fn reset_of(consumer: &RestConsumer) -> Start {
    match consumer.auto_offset_reset.as_str() {
        "earliest" => Start::Earliest,
        _ => Start::Latest,
    }
}

fn is_subscribed(consumer: &RestConsumer) -> bool {
    !consumer.topics.is_empty() || consumer.pattern.is_some()
}

fn is_member(consumer: &RestConsumer) -> bool {
    consumer.member_epoch > 0
}

fn cursor_of(consumer: &RestConsumer) -> GroupCursor {
    GroupCursor(
        consumer
            .positions
            .iter()
            .map(|(t, p, o)| ((t.clone(), *p), *o))
            .collect(),
    )
}

fn positions_of(cursor: &GroupCursor) -> Vec<(String, i32, i64)> {
    cursor
        .0
        .iter()
        .map(|((t, p), o)| (t.clone(), *p, *o))
        .collect()
}

fn expired(consumer: &RestConsumer, now: i64) -> bool {
    consumer.instance_timeout_ms > 0
        && now.saturating_sub(consumer.last_used_ms) > consumer.instance_timeout_ms
}

/// Creates an instance (replacing an expired one of the same name); `false`
/// when the name is taken.
pub(crate) async fn create(
    core: &Arc<dyn Core>,
    consumer: &RestConsumer,
) -> Result<bool, RestError> {
    if core
        .create_rest_consumer(consumer)
        .await
        .map_err(|e| kafka(&e))?
    {
        return Ok(true);
    }
    // Taken; by an instance that expired, it is deleted now and the name freed.
    match load(core, &consumer.group, &consumer.instance).await {
        Ok(_) => Ok(false),
        Err(error) if error.error_code == 40403 => core
            .create_rest_consumer(consumer)
            .await
            .map_err(|e| kafka(&e)),
        Err(error) => Err(error),
    }
}

/// The instance, unless it does not exist or expired (then deleted here).
pub(crate) async fn load(
    core: &Arc<dyn Core>,
    group: &str,
    instance: &str,
) -> Result<RestConsumer, RestError> {
    let consumer = core
        .rest_consumer(group, instance)
        .await
        .map_err(|e| kafka(&e))?
        .ok_or_else(RestError::instance_not_found)?;
    if expired(&consumer, core.now_millis()) {
        expire(core, &consumer).await?;
        return Err(RestError::instance_not_found());
    }
    Ok(consumer)
}

/// Deletes an expired instance (at the version loaded) and takes its member
/// out of the group. Nothing is committed: its partitions may have moved on.
async fn expire(core: &Arc<dyn Core>, consumer: &RestConsumer) -> Result<(), RestError> {
    let deleted = core
        .delete_rest_consumer(&consumer.group, &consumer.instance, consumer.version)
        .await
        .map_err(|e| kafka(&e))?;
    if deleted {
        tracing::debug!(group = %consumer.group, instance = %consumer.instance, "rest consumer instance expired");
        if is_member(consumer) {
            let _ = group::leave(core, &consumer.group, &consumer.member_id, None).await;
        }
    }
    Ok(())
}

/// Deletes every expired instance.
pub(crate) async fn sweep(core: &Arc<dyn Core>) -> Result<(), RestError> {
    let now = core.now_millis();
    for consumer in core.list_rest_consumers().await.map_err(|e| kafka(&e))? {
        if expired(&consumer, now) {
            expire(core, &consumer).await?;
        }
    }
    Ok(())
}

/// The instance, for a call that changes nothing (its use is recorded now
/// and then).
pub(crate) async fn view(
    core: &Arc<dyn Core>,
    group: &str,
    instance: &str,
) -> Result<RestConsumer, RestError> {
    let consumer = load(core, group, instance).await?;
    let now = core.now_millis();
    if now.saturating_sub(consumer.last_used_ms) >= TOUCH_AFTER_MS {
        let touched = RestConsumer {
            last_used_ms: now,
            ..consumer.clone()
        };
        // A call that stored meanwhile recorded a use as well.
        let _ = core.store_rest_consumer(&touched).await;
    }
    Ok(consumer)
}

/// Runs `op` on the instance and stores the state it returns, redoing it from
/// the new state when another call stored first.
pub(crate) async fn update<T, F, Fut>(
    core: &Arc<dyn Core>,
    group: &str,
    instance: &str,
    mut op: F,
) -> Result<T, RestError>
where
    F: FnMut(RestConsumer) -> Fut,
    Fut: Future<Output = Result<(RestConsumer, T), RestError>>,
{
    for _ in 0..MAX_ATTEMPTS {
        let loaded = load(core, group, instance).await?;
        let version = loaded.version;
        let (mut next, value) = op(loaded).await?;
        debug_assert_eq!(next.version, version, "an op keeps the version it loaded");
        next.version = version;
        next.last_used_ms = core.now_millis();
        if core
            .store_rest_consumer(&next)
            .await
            .map_err(|e| kafka(&e))?
            .is_some()
        {
            return Ok(value);
        }
        tracing::debug!(
            group,
            instance,
            "a concurrent call of the rest consumer stored first; redoing"
        );
    }
    Err(RestError::illegal_state(
        "concurrent calls of this consumer instance kept conflicting; retry",
    ))
}

/// Joins (or joins again) the instance's group with its member id, at the
/// group's committed offsets.
async fn join(core: &Arc<dyn Core>, consumer: &mut RestConsumer) -> Result<(), RestError> {
    let joined = group::join(
        core,
        Join {
            group: consumer.group.clone(),
            member_id: Some(consumer.member_id.clone()),
            instance_id: None,
            topics: (!consumer.topics.is_empty()).then(|| consumer.topics.clone()),
            pattern: consumer.pattern.clone(),
            assignor: None,
            session_timeout_ms: Some(consumer.session_timeout_ms),
            rebalance_timeout_ms: None,
            reset: reset_of(consumer),
        },
    )
    .await
    .map_err(failure)?;
    consumer.member_id = joined.member_id;
    consumer.member_epoch = joined.member_epoch;
    consumer.positions = positions_of(&joined.cursor);
    Ok(())
}

/// A heartbeat without a read: the member's epoch and assignment brought up
/// to date (joining again if its membership lapsed).
async fn heartbeat(core: &Arc<dyn Core>, consumer: &mut RestConsumer) -> Result<(), RestError> {
    if !is_member(consumer) {
        return join(core, consumer).await;
    }
    let polled = group::poll(
        core,
        Poll {
            group: consumer.group.clone(),
            member_id: consumer.member_id.clone(),
            member_epoch: consumer.member_epoch,
            cursor: cursor_of(consumer),
            max_records: 0,
            max_bytes: 1,
            wait: Duration::ZERO,
            auto_commit: false,
            reset: reset_of(consumer),
        },
    )
    .await;
    match polled {
        Ok(polled) => {
            consumer.member_epoch = polled.member_epoch;
            consumer.positions = positions_of(&polled.cursor);
            Ok(())
        }
        Err(lost) if member_lost(&lost) => join(core, consumer).await,
        Err(other) => Err(failure(other)),
    }
}

/// Takes the instance out of its group: commits its positions first when it
/// auto-commits (as a Kafka consumer's `close` does), then leaves. Failures
/// are not the caller's: a member whose session lapsed is out already.
async fn leave(core: &Arc<dyn Core>, consumer: &mut RestConsumer) {
    if is_member(consumer) {
        if consumer.auto_commit && !consumer.positions.is_empty() {
            let _ = group::commit(
                core,
                &consumer.group,
                &consumer.member_id,
                consumer.member_epoch,
                consumer.positions.clone(),
            )
            .await;
        }
        let _ = group::leave(core, &consumer.group, &consumer.member_id, None).await;
    }
    consumer.member_epoch = 0;
    consumer.positions.clear();
}

/// Subscribes to `topics` or `pattern` (replacing a subscription: the member
/// leaves and joins again) and joins the group.
pub(crate) async fn subscribe(
    core: &Arc<dyn Core>,
    group: &str,
    instance: &str,
    topics: Vec<String>,
    pattern: Option<String>,
) -> Result<(), RestError> {
    update(core, group, instance, |mut consumer| {
        let (topics, pattern) = (topics.clone(), pattern.clone());
        async move {
            if !consumer.assigned.is_empty() {
                return Err(RestError::illegal_state(
                    "Subscription to topics, partitions and pattern are mutually exclusive",
                ));
            }
            if is_member(&consumer) {
                leave(core, &mut consumer).await;
            }
            consumer.topics = topics;
            consumer.pattern = pattern;
            join(core, &mut consumer).await?;
            Ok((consumer, ()))
        }
    })
    .await
}

/// Unsubscribes (and drops a manual assignment), leaving the group.
pub(crate) async fn unsubscribe(
    core: &Arc<dyn Core>,
    group: &str,
    instance: &str,
) -> Result<(), RestError> {
    update(core, group, instance, |mut consumer| async move {
        leave(core, &mut consumer).await;
        consumer.topics.clear();
        consumer.pattern = None;
        consumer.assigned.clear();
        Ok((consumer, ()))
    })
    .await
}

/// Assigns partitions by hand (no group membership); they start at the
/// group's committed offsets, or the reset policy's.
pub(crate) async fn assign(
    core: &Arc<dyn Core>,
    group: &str,
    instance: &str,
    partitions: Vec<(String, i32)>,
) -> Result<(), RestError> {
    update(core, group, instance, |mut consumer| {
        let partitions = partitions.clone();
        async move {
            if is_subscribed(&consumer) {
                return Err(RestError::illegal_state(
                    "Subscription to topics, partitions and pattern are mutually exclusive",
                ));
            }
            for (topic, partition) in &partitions {
                let info = core.topic(topic).await.map_err(|e| kafka(&e))?;
                if *partition < 0 || *partition >= info.partition_count {
                    return Err(RestError::partition_not_found(Api::V2));
                }
            }
            let known: BTreeMap<(String, i32), i64> = consumer
                .positions
                .iter()
                .map(|(t, p, o)| ((t.clone(), *p), *o))
                .collect();
            let fresh: Vec<(String, i32)> = partitions
                .iter()
                .filter(|tp| !known.contains_key(*tp))
                .cloned()
                .collect();
            let committed = if fresh.is_empty() {
                Vec::new()
            } else {
                core.committed_offsets(group, &fresh)
                    .await
                    .map_err(|e| kafka(&e))?
            };
            let mut positions = Vec::with_capacity(partitions.len());
            for (topic, partition) in &partitions {
                let offset = match known.get(&(topic.clone(), *partition)) {
                    Some(offset) => *offset,
                    None => {
                        let index = fresh
                            .iter()
                            .position(|tp| tp.0 == *topic && tp.1 == *partition);
                        match index.and_then(|i| committed.get(i).copied().flatten()) {
                            Some(offset) => offset,
                            None => partition_read::resolve(
                                core,
                                topic,
                                *partition,
                                reset_of(&consumer),
                            )
                            .await
                            .map_err(failure)?,
                        }
                    }
                };
                positions.push((topic.clone(), *partition, offset));
            }
            positions.sort();
            positions.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
            consumer.assigned = partitions;
            consumer.positions = positions;
            Ok((consumer, ()))
        }
    })
    .await
}

/// Moves positions; a partition the instance does not own is refused.
pub(crate) async fn seek(
    core: &Arc<dyn Core>,
    group: &str,
    instance: &str,
    seeks: Vec<(String, i32, Seek)>,
) -> Result<(), RestError> {
    update(core, group, instance, |mut consumer| {
        let seeks = seeks.clone();
        async move {
            for (topic, partition, seek) in seeks {
                let Some(slot) = consumer
                    .positions
                    .iter()
                    .position(|(t, p, _)| *t == topic && *p == partition)
                else {
                    return Err(RestError::illegal_state(format!(
                        "No current assignment for partition {topic}-{partition}"
                    )));
                };
                let start = match seek {
                    Seek::Offset(offset) if offset < 0 => {
                        return Err(RestError::unprocessable(
                            Api::V2,
                            422,
                            format!("offset {offset} is negative"),
                        ));
                    }
                    Seek::Offset(offset) => Start::Offset(offset),
                    Seek::Beginning => Start::Earliest,
                    Seek::End => Start::Latest,
                    Seek::Timestamp(at) => Start::Timestamp(at),
                };
                let offset = partition_read::resolve(core, &topic, partition, start)
                    .await
                    .map_err(failure)?;
                consumer.positions[slot].2 = offset;
            }
            Ok((consumer, ()))
        }
    })
    .await
}

/// Commits `offsets` (the next offsets to read), or the instance's positions
/// when none are given.
pub(crate) async fn commit(
    core: &Arc<dyn Core>,
    group: &str,
    instance: &str,
    offsets: Option<Vec<(String, i32, i64)>>,
) -> Result<(), RestError> {
    update(core, group, instance, |mut consumer| {
        let offsets = offsets.clone();
        async move {
            let offsets = offsets.unwrap_or_else(|| consumer.positions.clone());
            if offsets.is_empty() {
                return Ok((consumer, ()));
            }
            if !is_member(&consumer) {
                // Not a member (manual assignment): a commit without a generation.
                group::commit(core, group, "", -1, offsets)
                    .await
                    .map_err(failure)?;
                return Ok((consumer, ()));
            }
            let first = group::commit(
                core,
                group,
                &consumer.member_id,
                consumer.member_epoch,
                offsets.clone(),
            )
            .await;
            match first {
                Ok(()) => {}
                // The coordinator moved the member on since its last read: a
                // heartbeat brings the epoch up to date.
                Err(Failure::Kafka(e)) if e.error == ResponseError::StaleMemberEpoch => {
                    heartbeat(core, &mut consumer).await?;
                    group::commit(
                        core,
                        group,
                        &consumer.member_id,
                        consumer.member_epoch,
                        offsets,
                    )
                    .await
                    .map_err(failure)?;
                }
                Err(lost) if member_lost(&lost) => {
                    // Its partitions may be another member's now: nothing is
                    // committed, and the next read joins again.
                    consumer.member_epoch = 0;
                    consumer.positions.clear();
                    return Err(RestError::illegal_state(
                        "the commit failed: the consumer's group membership lapsed and its \
                         partitions may have been reassigned",
                    ));
                }
                Err(other) => return Err(failure(other)),
            }
            Ok((consumer, ()))
        }
    })
    .await
}

/// Reads records: the poll of a member (its heartbeat, with the auto-commit of
/// what the previous read answered), or a read of the partitions assigned by
/// hand. `check` refuses an instance whose format the client does not take,
/// before anything is read; `render` makes the answer before the instance's
/// new positions are stored, so records it cannot render are not skipped.
pub(crate) async fn read<T>(
    core: &Arc<dyn Core>,
    group: &str,
    instance: &str,
    limits: ReadLimits,
    check: impl Fn(&RestConsumer) -> Result<(), RestError>,
    render: impl Fn(&RestConsumer, Fetched) -> Result<T, RestError>,
) -> Result<T, RestError> {
    let start = tokio::time::Instant::now();
    let deadline = start.checked_add(limits.wait).unwrap_or(start);
    update(core, group, instance, |mut consumer| {
        let (check, render) = (&check, &render);
        async move {
            check(&consumer)?;
            let records = if !consumer.assigned.is_empty() {
                read_assigned(core, &mut consumer, limits, deadline).await?
            } else if is_subscribed(&consumer) {
                poll(core, &mut consumer, limits, deadline).await?
            } else {
                return Err(RestError::illegal_state(
                    "Consumer is not subscribed to any topics or assigned any partitions",
                ));
            };
            let answer = render(&consumer, records)?;
            Ok((consumer, answer))
        }
    })
    .await
}

fn satisfied(consumer: &RestConsumer, records: &Fetched, bytes: usize) -> bool {
    if consumer.fetch_min_bytes > 0 {
        bytes >= usize::try_from(consumer.fetch_min_bytes).unwrap_or(usize::MAX)
    } else {
        !records.is_empty()
    }
}

fn size_of(record: &Record) -> usize {
    record.key.as_ref().map_or(0, |k| k.len()) + record.value.as_ref().map_or(0, |v| v.len())
}

/// A member's read: polls (heartbeat and read) in slices until enough records
/// came or the deadline passed; joins again when the membership lapsed.
async fn poll(
    core: &Arc<dyn Core>,
    consumer: &mut RestConsumer,
    limits: ReadLimits,
    deadline: tokio::time::Instant,
) -> Result<Fetched, RestError> {
    if !is_member(consumer) {
        join(core, consumer).await?;
    }
    let mut records: Fetched = Vec::new();
    let mut bytes = 0usize;
    let mut first = true;
    loop {
        let now = tokio::time::Instant::now();
        let wait = deadline.saturating_duration_since(now).min(POLL_SLICE);
        let before = cursor_of(consumer);
        let polled = group::poll(
            core,
            Poll {
                group: consumer.group.clone(),
                member_id: consumer.member_id.clone(),
                member_epoch: consumer.member_epoch,
                cursor: before.clone(),
                max_records: limits.max_records.saturating_sub(records.len()).max(1),
                max_bytes: limits.max_bytes.saturating_sub(bytes).max(1),
                wait,
                // What earlier reads answered counts as processed once the
                // client reads again (Kafka's auto-commit, at least once).
                auto_commit: first && consumer.auto_commit,
                reset: reset_of(consumer),
            },
        )
        .await;
        match polled {
            Ok(polled) => {
                // A partition taken away by a later heartbeat of this read
                // goes with its position committed (Kafka commits on
                // revocation), or its next owner would read again what this
                // instance answered.
                let leaving: Vec<(String, i32, i64)> = polled
                    .revoked
                    .iter()
                    .filter_map(|(t, p)| {
                        before.0.get(&(t.clone(), *p)).map(|o| (t.clone(), *p, *o))
                    })
                    .collect();
                if !first && consumer.auto_commit && !leaving.is_empty() {
                    group::commit(
                        core,
                        &consumer.group,
                        &polled.member_id,
                        polled.member_epoch,
                        leaving,
                    )
                    .await
                    .map_err(failure)?;
                }
                consumer.member_epoch = polled.member_epoch;
                consumer.positions = positions_of(&polled.cursor);
                for (topic, partition, record) in polled.records {
                    bytes += size_of(&record);
                    records.push((topic, partition, record));
                }
            }
            Err(lost) if member_lost(&lost) => {
                tracing::debug!(group = %consumer.group, instance = %consumer.instance, "rest consumer joins its group again");
                join(core, consumer).await?;
            }
            Err(other) => return Err(failure(other)),
        }
        first = false;
        let full = records.len() >= limits.max_records || bytes >= limits.max_bytes;
        if full || satisfied(consumer, &records, bytes) || tokio::time::Instant::now() >= deadline {
            return Ok(records);
        }
    }
}

/// A read of partitions assigned by hand, from the instance's positions,
/// waiting for a commit to one of them until the deadline.
async fn read_assigned(
    core: &Arc<dyn Core>,
    consumer: &mut RestConsumer,
    limits: ReadLimits,
    deadline: tokio::time::Instant,
) -> Result<Fetched, RestError> {
    let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for (topic, partition, _) in &consumer.positions {
        by_topic.entry(topic.clone()).or_default().push(*partition);
    }
    let mut records: Fetched = Vec::new();
    let mut bytes = 0usize;
    loop {
        let waiting = tokio::time::Instant::now() < deadline;
        let mut watches = Vec::new();
        if waiting {
            for (topic, partitions) in &by_topic {
                watches.push(core.watch(topic, partitions).await.map_err(|e| kafka(&e))?);
            }
        }
        for slot in 0..consumer.positions.len() {
            if records.len() >= limits.max_records || bytes >= limits.max_bytes {
                break;
            }
            let (topic, partition, offset) = consumer.positions[slot].clone();
            let read = partition_read::read(
                core,
                &topic,
                partition,
                offset,
                limits.max_records - records.len(),
                limits.max_bytes.saturating_sub(bytes).max(1),
                Duration::ZERO,
            )
            .await
            .map_err(failure)?;
            consumer.positions[slot].2 = offset.max(read.next_offset);
            for record in read.records {
                bytes += size_of(&record);
                records.push((topic.clone(), partition, record));
            }
        }
        if satisfied(consumer, &records, bytes)
            || records.len() >= limits.max_records
            || bytes >= limits.max_bytes
            || !waiting
            || watches.is_empty()
        {
            return Ok(records);
        }
        if tokio::time::timeout_at(deadline, futures::future::select_all(watches))
            .await
            .is_err()
        {
            return Ok(records);
        }
    }
}

/// Deletes the instance: commits its positions when it auto-commits, leaves
/// its group, and removes its record.
pub(crate) async fn delete(
    core: &Arc<dyn Core>,
    group: &str,
    instance: &str,
) -> Result<(), RestError> {
    for _ in 0..MAX_ATTEMPTS {
        let mut consumer = load(core, group, instance).await?;
        let version = consumer.version;
        leave(core, &mut consumer).await;
        if core
            .delete_rest_consumer(group, instance, version)
            .await
            .map_err(|e| kafka(&e))?
        {
            return Ok(());
        }
    }
    Err(RestError::illegal_state(
        "concurrent calls of this consumer instance kept conflicting; retry",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_expire_after_their_timeout_only() {
        let consumer = RestConsumer {
            last_used_ms: 1_000,
            instance_timeout_ms: 300_000,
            ..RestConsumer::default()
        };
        assert!(!expired(&consumer, 301_000));
        assert!(expired(&consumer, 301_001));
        let never = RestConsumer {
            instance_timeout_ms: 0,
            ..consumer
        };
        assert!(!expired(&never, i64::MAX));
    }

    #[test]
    fn positions_and_cursors_convert_both_ways() {
        let consumer = RestConsumer {
            positions: vec![("a".into(), 0, 5), ("a".into(), 2, 0), ("b".into(), 1, 9)],
            ..RestConsumer::default()
        };
        assert_eq!(positions_of(&cursor_of(&consumer)), consumer.positions);
    }
}
