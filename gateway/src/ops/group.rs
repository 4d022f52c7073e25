//! Group consumption for members that do not speak Kafka (HTTP, gRPC): each
//! member is a member of the server-side consumer protocol (KIP-848) whose
//! heartbeat is its poll, and whose whole state between polls is an opaque
//! [`GroupCursor`] it carries. So any agent serves any poll, and a member
//! that stops polling loses its partitions when its session times out.
//!
//! A poll:
//!
//! 1. heartbeats, reporting the cursor's partitions as owned: a member acks a
//!    revocation by polling with the cursor that no longer has them (a member
//!    whose last answer was lost polls again with its previous epoch and
//!    cursor, which the coordinator accepts);
//! 2. with `auto_commit`, commits the cursor's positions under the epoch just
//!    answered: the records of the previous poll count as processed once the
//!    member comes back for more (Kafka's auto-commit, at least once), and a
//!    revoked partition's position is committed before the member lets it go;
//! 3. applies a new assignment to the cursor: revoked partitions leave it,
//!    new ones start at the group's committed offset (or the reset policy);
//! 4. reads records from the cursor's partitions, waiting up to `wait` when
//!    there are none.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::records::Record;

use super::Failure;
use super::partition_read::{self, Start};
use crate::core::{Core, GroupAssignment, GroupHeartbeat};

/// A member's positions: the next offset of every partition it owns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct GroupCursor(pub(crate) BTreeMap<(String, i32), i64>);

impl GroupCursor {
    const PREFIX: &'static str = "g1:";

    /// The opaque form: base64url of `g1:topic/partition=offset,…` (topic
    /// names never hold `/`, `=` or `,`).
    pub(crate) fn encode(&self) -> String {
        let body: Vec<String> = self
            .0
            .iter()
            .map(|((t, p), o)| format!("{t}/{p}={o}"))
            .collect();
        super::opaque(Self::PREFIX, &body.join(","))
    }

    /// From the opaque form; `None` when it is not one.
    pub(crate) fn decode(text: &str) -> Option<Self> {
        let body = super::opaque_body(Self::PREFIX, text)?;
        let mut positions = BTreeMap::new();
        for part in body.split(',').filter(|p| !p.is_empty()) {
            let (tp, o) = part.rsplit_once('=')?;
            let (t, p) = tp.rsplit_once('/')?;
            let (p, o) = (p.parse::<i32>().ok()?, o.parse::<i64>().ok()?);
            if t.is_empty() || p < 0 || o < 0 || positions.insert((t.to_owned(), p), o).is_some() {
                return None;
            }
        }
        Some(Self(positions))
    }

    /// The partitions it holds, by topic.
    fn owned(&self) -> Vec<(String, Vec<i32>)> {
        let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in self.0.keys() {
            by_topic.entry(topic.clone()).or_default().push(*partition);
        }
        by_topic.into_iter().collect()
    }
}

/// The refusal of a cursor the gateway did not make.
pub(crate) fn bad_cursor() -> Failure {
    Failure::BadRequest("the cursor is not one this API gave".into())
}

/// A join.
#[derive(Debug, Clone)]
pub(crate) struct Join {
    pub(crate) group: String,
    /// The member id the client chose, if any.
    pub(crate) member_id: Option<String>,
    pub(crate) instance_id: Option<String>,
    pub(crate) topics: Option<Vec<String>>,
    pub(crate) pattern: Option<String>,
    pub(crate) assignor: Option<String>,
    pub(crate) session_timeout_ms: Option<i32>,
    pub(crate) rebalance_timeout_ms: Option<i32>,
    /// Where partitions without a committed offset start.
    pub(crate) reset: Start,
}

/// A poll.
#[derive(Debug, Clone)]
pub(crate) struct Poll {
    pub(crate) group: String,
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    pub(crate) cursor: GroupCursor,
    pub(crate) max_records: usize,
    pub(crate) max_bytes: usize,
    pub(crate) wait: Duration,
    pub(crate) auto_commit: bool,
    pub(crate) reset: Start,
}

/// What a join or poll answers.
#[derive(Debug, Clone)]
pub(crate) struct Polled {
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    pub(crate) heartbeat_interval_ms: i32,
    pub(crate) cursor: GroupCursor,
    /// Partitions the member gained in this call.
    pub(crate) assigned: Vec<(String, i32)>,
    /// Partitions the member lost in this call.
    pub(crate) revoked: Vec<(String, i32)>,
    /// The records read, with their topic and partition.
    pub(crate) records: Vec<(String, i32, Record)>,
}

/// Joins a group: the member's id, epoch and first assignment, with a cursor
/// at the group's committed offsets.
pub(crate) async fn join(core: &Arc<dyn Core>, join: Join) -> Result<Polled, Failure> {
    if join.topics.is_none() && join.pattern.is_none() {
        return Err(Failure::BadRequest(
            "give topics or a pattern to subscribe to".into(),
        ));
    }
    let answer = core
        .group_heartbeat(GroupHeartbeat {
            group: join.group.clone(),
            member_id: join.member_id.unwrap_or_default(),
            member_epoch: 0,
            instance_id: join.instance_id,
            topics: join.topics,
            pattern: join.pattern,
            assignor: join.assignor,
            owned: Some(Vec::new()),
            session_timeout_ms: join.session_timeout_ms,
            rebalance_timeout_ms: join.rebalance_timeout_ms.unwrap_or(60_000),
        })
        .await?;
    let mut cursor = GroupCursor::default();
    let (assigned, revoked) = apply(core, &join.group, &answer, &mut cursor, join.reset).await?;
    Ok(Polled {
        member_id: answer.member_id,
        member_epoch: answer.member_epoch,
        heartbeat_interval_ms: answer.heartbeat_interval_ms,
        cursor,
        assigned,
        revoked,
        records: Vec::new(),
    })
}

/// Applies an assignment to the cursor: partitions outside it leave, new ones
/// start at the committed offset (or `reset`). Returns (assigned, revoked).
async fn apply(
    core: &Arc<dyn Core>,
    group: &str,
    answer: &GroupAssignment,
    cursor: &mut GroupCursor,
    reset: Start,
) -> Result<(Vec<(String, i32)>, Vec<(String, i32)>), Failure> {
    let Some(assignment) = &answer.assignment else {
        return Ok((Vec::new(), Vec::new()));
    };
    let target: BTreeSet<(String, i32)> = assignment
        .iter()
        .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
        .collect();
    let revoked: Vec<(String, i32)> = cursor
        .0
        .keys()
        .filter(|tp| !target.contains(*tp))
        .cloned()
        .collect();
    for tp in &revoked {
        cursor.0.remove(tp);
    }
    let added: Vec<(String, i32)> = target
        .iter()
        .filter(|tp| !cursor.0.contains_key(*tp))
        .cloned()
        .collect();
    if !added.is_empty() {
        let committed = core.committed_offsets(group, &added).await?;
        for ((topic, partition), offset) in added.iter().zip(committed) {
            let position = match offset {
                Some(offset) if offset >= 0 => offset,
                _ => partition_read::resolve(core, topic, *partition, reset).await?,
            };
            cursor.0.insert((topic.clone(), *partition), position);
        }
    }
    Ok((added, revoked))
}

/// One poll (see the module docs).
pub(crate) async fn poll(core: &Arc<dyn Core>, poll: Poll) -> Result<Polled, Failure> {
    let mut cursor = poll.cursor;
    let answer = core
        .group_heartbeat(GroupHeartbeat {
            group: poll.group.clone(),
            member_id: poll.member_id.clone(),
            member_epoch: poll.member_epoch,
            owned: Some(cursor.owned()),
            rebalance_timeout_ms: -1,
            ..GroupHeartbeat::default()
        })
        .await?;
    if poll.auto_commit && answer.member_epoch > 0 && !cursor.0.is_empty() {
        // Every partition of the cursor is still the member's: those revoked
        // by this answer stay its own until its next poll acks them.
        let offsets: Vec<(String, i32, i64)> = cursor
            .0
            .iter()
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .collect();
        core.commit_offsets(
            &poll.group,
            &answer.member_id,
            answer.member_epoch,
            &offsets,
        )
        .await?;
    }
    let (assigned, revoked) = apply(core, &poll.group, &answer, &mut cursor, poll.reset).await?;
    let records = read(
        core,
        &mut cursor,
        poll.max_records,
        poll.max_bytes,
        poll.wait,
    )
    .await?;
    Ok(Polled {
        member_id: answer.member_id,
        member_epoch: answer.member_epoch,
        heartbeat_interval_ms: answer.heartbeat_interval_ms,
        cursor,
        assigned,
        revoked,
        records,
    })
}

/// Leaves the group (its partitions go to the others at once).
pub(crate) async fn leave(
    core: &Arc<dyn Core>,
    group: &str,
    member_id: &str,
    instance_id: Option<String>,
) -> Result<(), Failure> {
    core.group_heartbeat(GroupHeartbeat {
        group: group.to_owned(),
        member_id: member_id.to_owned(),
        member_epoch: -1,
        instance_id,
        rebalance_timeout_ms: -1,
        ..GroupHeartbeat::default()
    })
    .await?;
    Ok(())
}

/// Commits the cursor's positions (or `offsets`) under the member's epoch.
pub(crate) async fn commit(
    core: &Arc<dyn Core>,
    group: &str,
    member_id: &str,
    member_epoch: i32,
    offsets: Vec<(String, i32, i64)>,
) -> Result<(), Failure> {
    if offsets.iter().any(|(_, p, o)| *p < 0 || *o < 0) {
        return Err(Failure::BadRequest(
            "partitions and offsets are not negative".into(),
        ));
    }
    core.commit_offsets(group, member_id, member_epoch, &offsets)
        .await?;
    Ok(())
}

/// Reads the cursor's partitions (one pass; when nothing is found, waits up
/// to `wait` for a commit to one of them and reads again).
async fn read(
    core: &Arc<dyn Core>,
    cursor: &mut GroupCursor,
    max_records: usize,
    max_bytes: usize,
    wait: Duration,
) -> Result<Vec<(String, i32, Record)>, Failure> {
    let start = tokio::time::Instant::now();
    let deadline = start.checked_add(wait).unwrap_or(start);
    loop {
        let changed = if wait.is_zero() {
            None
        } else {
            let mut watches = Vec::new();
            for (topic, partitions) in cursor.owned() {
                watches.push(core.watch(&topic, &partitions).await?);
            }
            (!watches.is_empty()).then(|| futures::future::select_all(watches))
        };
        let records = read_once(core, cursor, max_records, max_bytes).await?;
        if !records.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(records);
        }
        match changed {
            Some(changed) => {
                if tokio::time::timeout_at(deadline, changed).await.is_err() {
                    return Ok(records);
                }
            }
            None => {
                // Nothing owned yet: wait out the poll (the next heartbeat may
                // bring partitions).
                tokio::time::sleep_until(deadline).await;
                return Ok(records);
            }
        }
    }
}

async fn read_once(
    core: &Arc<dyn Core>,
    cursor: &mut GroupCursor,
    max_records: usize,
    max_bytes: usize,
) -> Result<Vec<(String, i32, Record)>, Failure> {
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let positions: Vec<((String, i32), i64)> =
        cursor.0.iter().map(|(tp, o)| (tp.clone(), *o)).collect();
    for ((topic, partition), offset) in positions {
        if records.len() >= max_records || (bytes > 0 && bytes >= max_bytes) {
            break;
        }
        let budget = max_bytes.saturating_sub(bytes).max(1);
        let found = core
            .read(&topic, partition, offset, budget, Duration::ZERO)
            .await?;
        bytes += found.records.len();
        let decoded =
            crate::records::decode_records(found.records, offset, max_records - records.len())
                .map_err(partition_read::undecodable)?;
        cursor
            .0
            .insert((topic.clone(), partition), offset.max(decoded.next_offset));
        records.extend(
            decoded
                .records
                .into_iter()
                .map(|r| (topic.clone(), partition, r)),
        );
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    #[test]
    fn group_cursors_round_trip_and_refuse_what_they_did_not_make() {
        let cursor = GroupCursor(
            [
                (("orders".to_owned(), 0), 5),
                (("a.b-c_d".to_owned(), 11), 0),
            ]
            .into_iter()
            .collect(),
        );
        assert_eq!(GroupCursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(
            GroupCursor::decode(&GroupCursor::default().encode()),
            Some(GroupCursor::default())
        );
        let forged = |text: &str| URL_SAFE_NO_PAD.encode(text);
        for bad in [
            "!!!".to_owned(),
            String::new(),
            forged("g1:t/0=-1"),
            forged("g1:t/-1=0"),
            forged("g1:/0=1"),
            forged("g1:t/0=1,t/0=2"),
            forged("v1:0=1"),
        ] {
            assert_eq!(GroupCursor::decode(&bad), None, "{bad:?}");
        }
    }
}

/// A member streamed by the server (a gRPC `Subscribe`, an SSE stream): the
/// server polls for it, one pass at a time, and keeps its cursor.
#[derive(Debug, Clone)]
pub(crate) struct Streamed {
    pub(crate) group: String,
    pub(crate) member_id: String,
    pub(crate) member_epoch: i32,
    pub(crate) cursor: GroupCursor,
    /// How often it must heartbeat.
    pub(crate) heartbeat: Duration,
    /// Commit revoked partitions' positions before giving them up (Kafka's
    /// commit on revocation).
    pub(crate) commit_on_revoke: bool,
}

/// What one pass of a streamed member gave.
#[derive(Debug)]
pub(crate) struct Pass {
    /// The member's state, when its epoch or partitions changed.
    pub(crate) changed: Option<Polled>,
    /// Records, each with the cursor just after it.
    pub(crate) records: Vec<(String, i32, Record, GroupCursor)>,
}

impl Streamed {
    /// A streamed member from a join's or poll's answer.
    pub(crate) fn new(group: String, polled: &Polled, commit_on_revoke: bool) -> Self {
        Self {
            group,
            member_id: polled.member_id.clone(),
            member_epoch: polled.member_epoch,
            cursor: polled.cursor.clone(),
            heartbeat: heartbeat_of(polled.heartbeat_interval_ms),
            commit_on_revoke,
        }
    }

    /// One heartbeat, reading up to `max_records` (0: a heartbeat only),
    /// waiting for one up to `wait`.
    pub(crate) async fn pass(
        &mut self,
        core: &Arc<dyn Core>,
        max_records: usize,
        wait: Duration,
    ) -> Result<Pass, Failure> {
        let polled = poll(
            core,
            Poll {
                group: self.group.clone(),
                member_id: self.member_id.clone(),
                member_epoch: self.member_epoch,
                cursor: self.cursor.clone(),
                max_records,
                max_bytes: 1024 * 1024,
                wait: if max_records == 0 {
                    Duration::ZERO
                } else {
                    wait
                },
                auto_commit: false,
                reset: Start::Earliest,
            },
        )
        .await?;
        if self.commit_on_revoke && !polled.revoked.is_empty() {
            // Revoked partitions are the member's until its next heartbeat:
            // their positions, past every record sent, are committed now.
            let offsets: Vec<(String, i32, i64)> = polled
                .revoked
                .iter()
                .filter_map(|tp| self.cursor.0.get(tp).map(|o| (tp.0.clone(), tp.1, *o)))
                .collect();
            commit(
                core,
                &self.group,
                &self.member_id,
                polled.member_epoch,
                offsets,
            )
            .await?;
        }
        let changed = polled.member_epoch != self.member_epoch
            || !polled.assigned.is_empty()
            || !polled.revoked.is_empty();
        self.member_epoch = polled.member_epoch;
        self.heartbeat = heartbeat_of(polled.heartbeat_interval_ms);
        // The positions before the records (of the partitions owned now),
        // moved past each record as it goes out.
        let mut at = GroupCursor::default();
        for (tp, offset) in &polled.cursor.0 {
            at.0.insert(
                tp.clone(),
                self.cursor.0.get(tp).copied().unwrap_or(*offset),
            );
        }
        let state = changed.then(|| Polled {
            member_id: polled.member_id.clone(),
            member_epoch: polled.member_epoch,
            heartbeat_interval_ms: polled.heartbeat_interval_ms,
            cursor: at.clone(),
            assigned: polled.assigned.clone(),
            revoked: polled.revoked.clone(),
            records: Vec::new(),
        });
        let mut records = Vec::with_capacity(polled.records.len());
        for (topic, partition, record) in polled.records {
            at.0.insert((topic.clone(), partition), record.offset + 1);
            records.push((topic, partition, record, at.clone()));
        }
        self.cursor = polled.cursor;
        Ok(Pass {
            changed: state,
            records,
        })
    }

    /// Commits `cursor`'s positions under the member's epoch.
    pub(crate) async fn commit(
        &self,
        core: &Arc<dyn Core>,
        cursor: &GroupCursor,
    ) -> Result<(), Failure> {
        let offsets = cursor
            .0
            .iter()
            .map(|((t, p), o)| (t.clone(), *p, *o))
            .collect();
        commit(
            core,
            &self.group,
            &self.member_id,
            self.member_epoch,
            offsets,
        )
        .await
    }
}

fn heartbeat_of(interval_ms: i32) -> Duration {
    Duration::from_millis(u64::try_from(interval_ms.max(100)).unwrap_or(5_000))
}
