//! [`GroupConsumer`]: a member of a consumer group through the HTTP gateway
//! (`/v1/groups/…`). The coordinator assigns partitions (the server-side
//! consumer protocol, as Kafka consumers with `group.protocol=consumer`);
//! this client keeps only the member id, its epoch and the gateway's opaque
//! cursor, so every call may go to another agent.
//!
//! Each [`GroupConsumer::poll`] is the member's heartbeat: poll more often
//! than the session timeout. What a poll gives up (revoked) is the member's
//! until its next poll, so a [`CommitPolicy::Manual`] application commits
//! what it processed of those partitions in between ([`GroupConsumer::commit`]
//! includes them). A member whose session lapsed or whose epoch was fenced
//! loses every partition ([`AssignmentEvent::Lost`]) and joins again by
//! itself on its next poll.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use hyper::Method;
use serde::{Deserialize, Serialize};

use crate::client::{Client, encode};
use crate::error::{Error, Result};
use crate::records::{ConsumedRecord, WireReadRecord};

/// When a member's positions are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommitPolicy {
    /// Each poll commits the positions of the records the polls before it
    /// returned, under the member's epoch (Kafka's auto-commit: records
    /// count as processed once the application asks for more; at least
    /// once).
    #[default]
    Auto,
    /// Only [`GroupConsumer::commit`] commits.
    Manual,
}

/// Where partitions without a committed offset start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// At their log start offset.
    #[default]
    Earliest,
    /// At their high watermark.
    Latest,
}

/// What a member subscribes to and how it consumes.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// Topic names, or …
    pub topics: Vec<String>,
    /// … a regular expression (RE2 syntax, whole names).
    pub pattern: Option<String>,
    /// How long the member may go without polling (at least the agents'
    /// `group-min-session-timeout-ms`).
    pub session_timeout: Duration,
    /// A static member's `group.instance.id`.
    pub instance_id: Option<String>,
    /// `uniform` (default) or `range`.
    pub assignor: Option<String>,
    /// When positions are committed.
    pub commit: CommitPolicy,
    /// Where partitions without a committed offset start.
    pub reset: OffsetReset,
    /// The most records one poll returns.
    pub max_records: usize,
    /// How long a poll waits for a record when there is none.
    pub wait: Duration,
}

impl GroupConfig {
    /// Subscribes to `topics`, with the defaults: a 30 s session, auto
    /// commit, earliest, 500 records and 1 s waits per poll.
    pub fn topics(topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            topics: topics.into_iter().map(Into::into).collect(),
            pattern: None,
            session_timeout: Duration::from_secs(30),
            instance_id: None,
            assignor: None,
            commit: CommitPolicy::Auto,
            reset: OffsetReset::Earliest,
            max_records: 500,
            wait: Duration::from_secs(1),
        }
    }

    /// Subscribes to the topics whose whole name matches `pattern`.
    pub fn pattern(pattern: impl Into<String>) -> Self {
        Self {
            pattern: Some(pattern.into()),
            ..Self::topics(Vec::<String>::new())
        }
    }
}

/// A change of the member's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssignmentEvent {
    /// Partitions the member now consumes.
    Assigned(Vec<(String, i32)>),
    /// Partitions the member gives up at its next poll (commit what was
    /// processed of them before it, with [`CommitPolicy::Manual`]).
    Revoked(Vec<(String, i32)>),
    /// Partitions the member lost without giving them up (its session lapsed
    /// or its epoch was fenced): another member may already consume them.
    Lost(Vec<(String, i32)>),
}

/// A record with its topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Its topic.
    pub topic: String,
    /// The record.
    pub record: ConsumedRecord,
}

/// What one poll gave.
#[derive(Debug, Clone, Default)]
pub struct Polled {
    /// Changes of the member's partitions, in order.
    pub events: Vec<AssignmentEvent>,
    /// Records, in offset order within each partition.
    pub records: Vec<GroupRecord>,
}

#[derive(Debug, Serialize)]
struct JoinBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    member_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topics: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pattern: Option<&'a str>,
    session_timeout_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    assignor: Option<&'a str>,
    auto_offset_reset: &'static str,
}

#[derive(Debug, Serialize)]
struct PollBody<'a> {
    member_epoch: i32,
    cursor: &'a str,
    max_records: usize,
    wait_ms: u64,
    auto_commit: bool,
    auto_offset_reset: &'static str,
    encoding: &'static str,
}

#[derive(Debug, Serialize)]
struct CommitBody<'a> {
    member_epoch: i32,
    offsets: Vec<CommitOffset<'a>>,
}

#[derive(Debug, Serialize)]
struct CommitOffset<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
}

#[derive(Debug, Deserialize)]
struct WireTopicPartition {
    topic: String,
    partition: i32,
}

#[derive(Debug, Deserialize)]
struct WireGroupRecord {
    topic: String,
    #[serde(flatten)]
    record: WireReadRecord,
}

#[derive(Debug, Deserialize)]
struct WirePolled {
    member_id: String,
    member_epoch: i32,
    cursor: String,
    assignment: Vec<WireTopicPartition>,
    assigned: Vec<WireTopicPartition>,
    revoked: Vec<WireTopicPartition>,
    records: Vec<WireGroupRecord>,
}

fn pairs(list: Vec<WireTopicPartition>) -> Vec<(String, i32)> {
    list.into_iter()
        .map(|tp| (tp.topic, tp.partition))
        .collect()
}

/// A member of a consumer group ([`Client::group_consumer`]).
#[derive(Debug)]
pub struct GroupConsumer {
    client: Client,
    group: String,
    config: GroupConfig,
    member_id: String,
    member_epoch: i32,
    cursor: String,
    assignment: BTreeSet<(String, i32)>,
    /// The position after the last record returned, per partition owned (or
    /// given up by the last poll).
    consumed: BTreeMap<(String, i32), i64>,
    /// Given up by the last poll: committed with the rest until the next.
    revoked: BTreeSet<(String, i32)>,
    /// Events of a join not yet returned by a poll.
    pending: Vec<AssignmentEvent>,
}

impl Client {
    /// Joins `group` as a new member.
    pub async fn group_consumer(
        &self,
        group: impl Into<String>,
        config: GroupConfig,
    ) -> Result<GroupConsumer> {
        if config.topics.is_empty() == config.pattern.is_none() {
            return Err(Error::InvalidArgument(
                "subscribe to topics or to a pattern".into(),
            ));
        }
        let mut consumer = GroupConsumer {
            client: self.clone(),
            group: group.into(),
            config,
            member_id: String::new(),
            member_epoch: 0,
            cursor: String::new(),
            assignment: BTreeSet::new(),
            consumed: BTreeMap::new(),
            revoked: BTreeSet::new(),
            pending: Vec::new(),
        };
        consumer.join(None).await?;
        Ok(consumer)
    }
}

impl GroupConsumer {
    fn reset(&self) -> &'static str {
        match self.config.reset {
            OffsetReset::Earliest => "earliest",
            OffsetReset::Latest => "latest",
        }
    }

    fn base(&self) -> String {
        format!("/v1/groups/{}/members", encode(&self.group))
    }

    async fn join(&mut self, member_id: Option<String>) -> Result<()> {
        let body = JoinBody {
            member_id: member_id.as_deref(),
            topics: (!self.config.topics.is_empty()).then_some(self.config.topics.as_slice()),
            pattern: self.config.pattern.as_deref(),
            session_timeout_ms: self.config.session_timeout.as_millis() as u64,
            instance_id: self.config.instance_id.as_deref(),
            assignor: self.config.assignor.as_deref(),
            auto_offset_reset: self.reset(),
        };
        let joined: WirePolled = self
            .client
            .call_json(Method::POST, &self.base(), Some(&body))
            .await?;
        self.apply(joined)?;
        Ok(())
    }

    /// Takes an answer in; returns its records.
    fn apply(&mut self, answer: WirePolled) -> Result<Vec<GroupRecord>> {
        self.member_id = answer.member_id;
        self.member_epoch = answer.member_epoch;
        self.cursor = answer.cursor;
        // What the previous poll gave up is gone now.
        for tp in std::mem::take(&mut self.revoked) {
            self.consumed.remove(&tp);
        }
        let assigned = pairs(answer.assigned);
        let revoked = pairs(answer.revoked);
        if !revoked.is_empty() {
            self.pending.push(AssignmentEvent::Revoked(revoked.clone()));
            self.revoked = revoked.into_iter().collect();
        }
        if !assigned.is_empty() {
            self.pending.push(AssignmentEvent::Assigned(assigned));
        }
        self.assignment = pairs(answer.assignment).into_iter().collect();
        let mut records = Vec::with_capacity(answer.records.len());
        for record in answer.records {
            let decoded = record.record.decode()?;
            self.consumed.insert(
                (record.topic.clone(), decoded.partition),
                decoded.offset + 1,
            );
            records.push(GroupRecord {
                topic: record.topic,
                record: decoded,
            });
        }
        Ok(records)
    }

    /// The member's heartbeat and read (see the module docs).
    pub async fn poll(&mut self) -> Result<Polled> {
        let body = PollBody {
            member_epoch: self.member_epoch,
            cursor: &self.cursor,
            max_records: self.config.max_records.max(1),
            wait_ms: self.config.wait.as_millis() as u64,
            auto_commit: self.config.commit == CommitPolicy::Auto,
            auto_offset_reset: self.reset(),
            encoding: "base64",
        };
        let path = format!("{}/{}/poll", self.base(), encode(&self.member_id));
        match self
            .client
            .call_json::<_, WirePolled>(Method::POST, &path, Some(&body))
            .await
        {
            Ok(answer) => {
                let records = self.apply(answer)?;
                Ok(Polled {
                    events: std::mem::take(&mut self.pending),
                    records,
                })
            }
            Err(error)
                if matches!(
                    error.code(),
                    Some("UNKNOWN_MEMBER_ID" | "FENCED_MEMBER_EPOCH")
                ) =>
            {
                // Everything is lost; join again (a fenced member keeps its id).
                let lost: Vec<(String, i32)> =
                    std::mem::take(&mut self.assignment).into_iter().collect();
                self.consumed.clear();
                self.revoked.clear();
                self.cursor.clear();
                let keep_id = error.code() == Some("FENCED_MEMBER_EPOCH");
                let id = keep_id.then(|| self.member_id.clone());
                self.join(id).await?;
                let mut events = vec![AssignmentEvent::Lost(lost)];
                events.append(&mut self.pending);
                Ok(Polled {
                    events,
                    records: Vec::new(),
                })
            }
            Err(error) => Err(error),
        }
    }

    /// Commits the positions after every record returned, of the partitions
    /// owned and those the last poll gave up, under the member's epoch.
    pub async fn commit(&mut self) -> Result<()> {
        let offsets: Vec<CommitOffset<'_>> = self
            .consumed
            .iter()
            .filter(|(tp, _)| self.assignment.contains(*tp) || self.revoked.contains(*tp))
            .map(|((topic, partition), offset)| CommitOffset {
                topic,
                partition: *partition,
                offset: *offset,
            })
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        let body = CommitBody {
            member_epoch: self.member_epoch,
            offsets,
        };
        let path = format!("{}/{}/commit", self.base(), encode(&self.member_id));
        let body = serde_json::to_vec(&body).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.client
            .call(
                Method::POST,
                &path,
                Some(("application/json", bytes::Bytes::from(body))),
            )
            .await?;
        Ok(())
    }

    /// Leaves the group (committing first with [`CommitPolicy::Auto`]): its
    /// partitions go to the other members at once.
    pub async fn close(mut self) -> Result<()> {
        if self.config.commit == CommitPolicy::Auto {
            self.commit().await?;
        }
        let path = format!("{}/{}", self.base(), encode(&self.member_id));
        self.client.call(Method::DELETE, &path, None).await?;
        Ok(())
    }

    /// The partitions the member owns.
    pub fn assignment(&self) -> Vec<(String, i32)> {
        self.assignment.iter().cloned().collect()
    }

    /// Its member id.
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// Its epoch.
    pub fn member_epoch(&self) -> i32 {
        self.member_epoch
    }
}
