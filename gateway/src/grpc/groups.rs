//! `fjord.v1.Groups`: group consumption over gRPC, on the operations the HTTP
//! routes use ([`crate::ops::group`]): join, poll, commit, leave, and
//! `Subscribe`, a member as a stream with credit flow control.

use std::collections::VecDeque;
use std::pin::Pin;
use std::time::Duration;

use futures::Stream;
use tonic::{Request, Response, Status, Streaming};

use super::proto::groups_server::{Groups, GroupsServer};
use super::proto::{
    self, CommitRequest, CommitResponse, JoinRequest, LeaveRequest, LeaveResponse, MemberState,
    PollRequest, PollResponse, SubscribeRequest, SubscribeResponse, SubscribedRecord,
    subscribe_request, subscribe_response,
};
use super::records::{consumed, shutting_down, start_of};
use super::status::{bad_request, status};
use crate::ops::Failure;
use crate::ops::group::{self, GroupCursor, Join, Poll, Polled, Streamed, bad_cursor};
use crate::routes::State;

/// The service's full name.
pub(super) const NAME: &str = "fjord.v1.Groups";

/// The most records one pass of a subscription reads.
const SUBSCRIBE_BATCH: usize = 500;

/// The service over `state`.
pub(super) fn service(state: State) -> GroupsServer<GroupsService> {
    let limit = state.settings.max_body_bytes;
    GroupsServer::new(GroupsService { state })
        .max_decoding_message_size(limit)
        .max_encoding_message_size(usize::MAX)
}

#[derive(Debug, Clone)]
pub(super) struct GroupsService {
    state: State,
}

type Answers<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn pairs(list: &[(String, i32)]) -> Vec<proto::TopicPartition> {
    list.iter()
        .map(|(topic, partition)| proto::TopicPartition {
            topic: topic.clone(),
            partition: *partition,
        })
        .collect()
}

fn cursor_of(text: &str) -> Result<GroupCursor, Status> {
    if text.is_empty() {
        return Ok(GroupCursor::default());
    }
    GroupCursor::decode(text).ok_or_else(|| status(bad_cursor()))
}

fn join_of(request: JoinRequest) -> Result<Join, Failure> {
    if request.group.is_empty() {
        return Err(Failure::BadRequest("the group is empty".into()));
    }
    let timeout = |ms: Option<u32>| ms.map(|ms| i32::try_from(ms).unwrap_or(i32::MAX));
    Ok(Join {
        group: request.group,
        member_id: request.member_id.filter(|m| !m.is_empty()),
        instance_id: request.instance_id,
        topics: (!request.topics.is_empty()).then_some(request.topics),
        pattern: request.pattern,
        assignor: request.assignor,
        session_timeout_ms: timeout(request.session_timeout_ms),
        rebalance_timeout_ms: timeout(request.rebalance_timeout_ms),
        reset: start_of(request.reset, None)?,
    })
}

fn member_state(polled: &Polled) -> MemberState {
    MemberState {
        member_id: polled.member_id.clone(),
        member_epoch: polled.member_epoch,
        cursor: polled.cursor.encode(),
        assignment: pairs(&polled.cursor.0.keys().cloned().collect::<Vec<_>>()),
        assigned: pairs(&polled.assigned),
        revoked: pairs(&polled.revoked),
    }
}

fn poll_response(polled: Polled) -> PollResponse {
    let state = member_state(&polled);
    PollResponse {
        member_id: state.member_id,
        member_epoch: state.member_epoch,
        heartbeat_interval_ms: u32::try_from(polled.heartbeat_interval_ms).unwrap_or(0),
        cursor: state.cursor,
        assignment: state.assignment,
        assigned: state.assigned,
        revoked: state.revoked,
        records: polled
            .records
            .into_iter()
            .map(|(topic, partition, record)| proto::GroupRecord {
                topic,
                record: Some(consumed(partition, record)),
            })
            .collect(),
    }
}

#[tonic::async_trait]
impl Groups for GroupsService {
    async fn join(&self, request: Request<JoinRequest>) -> Result<Response<PollResponse>, Status> {
        let join = join_of(request.into_inner()).map_err(status)?;
        let joined = group::join(&self.state.core, join).await.map_err(status)?;
        Ok(Response::new(poll_response(joined)))
    }

    async fn poll(&self, request: Request<PollRequest>) -> Result<Response<PollResponse>, Status> {
        let request = request.into_inner();
        let settings = &self.state.settings;
        let polled = group::poll(
            &self.state.core,
            Poll {
                group: request.group,
                member_id: request.member_id,
                member_epoch: request.member_epoch,
                cursor: cursor_of(&request.cursor)?,
                max_records: request
                    .max_records
                    .map_or(500, |n| n as usize)
                    .clamp(1, settings.max_records),
                max_bytes: request.max_bytes.map_or(1024 * 1024, |n| n as usize).max(1),
                wait: Duration::from_millis(u64::from(request.wait_ms.unwrap_or(0)))
                    .min(settings.max_wait),
                auto_commit: request.auto_commit,
                reset: start_of(request.reset, None).map_err(status)?,
            },
        )
        .await
        .map_err(status)?;
        Ok(Response::new(poll_response(polled)))
    }

    async fn commit(
        &self,
        request: Request<CommitRequest>,
    ) -> Result<Response<CommitResponse>, Status> {
        let request = request.into_inner();
        let offsets: Vec<(String, i32, i64)> = match (request.cursor.is_empty(), request.offsets) {
            (false, offsets) if offsets.is_empty() => cursor_of(&request.cursor)?
                .0
                .into_iter()
                .map(|((t, p), o)| (t, p, o))
                .collect(),
            (true, offsets) => offsets
                .into_iter()
                .map(|o| (o.topic, o.partition, o.offset))
                .collect(),
            (false, _) => return Err(bad_request("give a cursor or offsets, not both")),
        };
        group::commit(
            &self.state.core,
            &request.group,
            &request.member_id,
            request.member_epoch,
            offsets,
        )
        .await
        .map_err(status)?;
        Ok(Response::new(CommitResponse {}))
    }

    async fn leave(
        &self,
        request: Request<LeaveRequest>,
    ) -> Result<Response<LeaveResponse>, Status> {
        let request = request.into_inner();
        group::leave(&self.state.core, &request.group, &request.member_id, None)
            .await
            .map_err(status)?;
        Ok(Response::new(LeaveResponse {}))
    }

    type SubscribeStream = Answers<SubscribeResponse>;

    async fn subscribe(
        &self,
        request: Request<Streaming<SubscribeRequest>>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .and_then(|m| m.message)
            .ok_or_else(|| bad_request("the first message of a subscription is `start`"))?;
        let subscribe_request::Message::Start(start) = first else {
            return Err(bad_request(
                "the first message of a subscription is `start`",
            ));
        };
        let join = start
            .join
            .ok_or_else(|| bad_request("`start` needs `join` (with the group)"))?;
        let join = join_of(join).map_err(status)?;
        let group_id = join.group.clone();
        let polled = if start.member_id.is_empty() {
            group::join(&self.state.core, join).await
        } else {
            // A member going on from its last cursor, on any agent.
            group::poll(
                &self.state.core,
                Poll {
                    group: group_id.clone(),
                    member_id: start.member_id,
                    member_epoch: start.member_epoch,
                    cursor: cursor_of(&start.cursor)?,
                    max_records: 0,
                    max_bytes: 1,
                    wait: Duration::ZERO,
                    auto_commit: false,
                    reset: join.reset,
                },
            )
            .await
        }
        .map_err(status)?;
        let member = Subscription {
            state: self.state.clone(),
            inbound,
            member: Streamed::new(group_id, &polled, start.auto_commit),
            credits: start.credits as usize,
            auto_commit: start.auto_commit,
            pending: VecDeque::from([Ok(SubscribeResponse {
                event: Some(subscribe_response::Event::Member(member_state(&polled))),
            })]),
            ended: false,
        };
        Ok(Response::new(subscription(member)))
    }
}

/// A subscribed member between messages.
struct Subscription {
    state: State,
    inbound: Streaming<SubscribeRequest>,
    member: Streamed,
    credits: usize,
    auto_commit: bool,
    pending: VecDeque<Result<SubscribeResponse, Status>>,
    ended: bool,
}

impl Subscription {
    fn end(&mut self, answer: Status) {
        self.pending.push_back(Err(answer));
        self.ended = true;
    }

    /// One heartbeat, reading up to the credits (none: a heartbeat only).
    async fn pass(&mut self) {
        let want = self.credits.min(SUBSCRIBE_BATCH);
        let wait = self.member.heartbeat.min(Duration::from_secs(1));
        let pass = match self.member.pass(&self.state.core, want, wait).await {
            Ok(pass) => pass,
            Err(failure) => return self.end(status(failure)),
        };
        if let Some(changed) = &pass.changed {
            self.pending.push_back(Ok(SubscribeResponse {
                event: Some(subscribe_response::Event::Member(member_state(changed))),
            }));
        }
        self.credits = self.credits.saturating_sub(pass.records.len());
        for (topic, partition, record, cursor) in pass.records {
            self.pending.push_back(Ok(SubscribeResponse {
                event: Some(subscribe_response::Event::Record(SubscribedRecord {
                    record: Some(proto::GroupRecord {
                        topic,
                        record: Some(consumed(partition, record)),
                    }),
                    cursor: cursor.encode(),
                })),
            }));
        }
    }

    async fn commit(&mut self, cursor: &GroupCursor, answer: bool) {
        match self.member.commit(&self.state.core, cursor).await {
            Ok(()) if answer => self.pending.push_back(Ok(SubscribeResponse {
                event: Some(subscribe_response::Event::Committed(CommitResponse {})),
            })),
            Ok(()) => {}
            Err(failure) => self.end(status(failure)),
        }
    }
}

/// The stream of a subscription: reads while there are credits, heartbeats
/// every heartbeat interval otherwise, and handles the client's messages.
fn subscription(member: Subscription) -> Answers<SubscribeResponse> {
    Box::pin(futures::stream::unfold(member, |mut m| async move {
        loop {
            if let Some(next) = m.pending.pop_front() {
                return Some((next, m));
            }
            if m.ended {
                return None;
            }
            if m.credits > 0 {
                let shutdown = m.state.shutdown.clone();
                let stopped = tokio::select! {
                    () = m.pass() => false,
                    () = shutdown.cancelled() => true,
                };
                if stopped {
                    m.end(shutting_down());
                }
                continue;
            }
            let message = tokio::select! {
                message = m.inbound.message() => message,
                () = tokio::time::sleep(m.member.heartbeat) => {
                    m.pass().await;
                    continue;
                }
                () = m.state.shutdown.cancelled() => {
                    m.end(shutting_down());
                    continue;
                }
            };
            match message {
                Ok(Some(SubscribeRequest {
                    message: Some(subscribe_request::Message::Credits(n)),
                })) => {
                    m.credits = m.credits.saturating_add(n as usize);
                    if m.auto_commit && !m.member.cursor.0.is_empty() {
                        // Asking for more: every record sent so far counts as
                        // processed (messages are read only once the credits
                        // ran out, so all of them were sent).
                        let cursor = m.member.cursor.clone();
                        m.commit(&cursor, false).await;
                    }
                }
                Ok(Some(SubscribeRequest {
                    message: Some(subscribe_request::Message::CommitCursor(cursor)),
                })) => match GroupCursor::decode(&cursor) {
                    Some(cursor) => m.commit(&cursor, true).await,
                    None => m.end(status(bad_cursor())),
                },
                Ok(Some(_)) => m.end(bad_request(
                    "after `start`, send `credits` or `commit_cursor`",
                )),
                // The client closed its side: the member leaves.
                Ok(None) => {
                    let _ = group::leave(&m.state.core, &m.member.group, &m.member.member_id, None)
                        .await;
                    return None;
                }
                Err(error) => m.end(error),
            }
        }
    }))
}
