//! The coordinator's requests and answers, in domain terms: the handlers
//! translate between these and the Kafka messages of each API version.

use bytes::Bytes;
use fjord_metadata::{OffsetCommit, TopicId, TopicPartitionSet};

use super::GroupError;

/// A `JoinGroup`.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// The group.
    pub group_id: String,
    /// The member id; empty on a member's first join.
    pub member_id: String,
    /// The static instance id (`group.instance.id`), for static members.
    pub group_instance_id: Option<String>,
    /// The client id of the request.
    pub client_id: String,
    /// The address the request came from.
    pub client_host: String,
    /// How long the member may go without a heartbeat.
    pub session_timeout_ms: i32,
    /// How long the coordinator waits for the member to rejoin in a rebalance.
    pub rebalance_timeout_ms: i32,
    /// The protocol type (`consumer`).
    pub protocol_type: String,
    /// The protocols the member supports with its metadata for each, preferred
    /// first.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a first join gets `MEMBER_ID_REQUIRED` and a member id.
    pub require_known_member_id: bool,
    /// JoinGroup v9+: the client understands `skip_assignment`.
    pub supports_skip_assignment: bool,
}

/// One member as the leader sees it in its `JoinGroup` response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinedMember {
    /// Its member id.
    pub member_id: String,
    /// Its static instance id.
    pub group_instance_id: Option<String>,
    /// Its metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// The answer to a `JoinGroup`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JoinResponse {
    /// Why the join failed, if it did.
    pub error: Option<GroupError>,
    /// The generation joined.
    pub generation: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The protocol chosen for the generation.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// JoinGroup v9+: the leader must not compute a new assignment.
    pub skip_assignment: bool,
    /// The member's id.
    pub member_id: String,
    /// The members with their metadata: filled for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResponse {
    /// A failed join (with the member id the client should use, if any).
    pub fn failed(error: GroupError, member_id: impl Into<String>) -> Self {
        Self {
            error: Some(error),
            generation: -1,
            member_id: member_id.into(),
            ..Self::default()
        }
    }
}

/// A `SyncGroup`.
#[derive(Debug, Clone)]
pub struct SyncRequest {
    /// The group.
    pub group_id: String,
    /// The generation the member joined.
    pub generation: i32,
    /// The member id.
    pub member_id: String,
    /// The static instance id.
    pub group_instance_id: Option<String>,
    /// SyncGroup v5+: the protocol type the member expects.
    pub protocol_type: Option<String>,
    /// SyncGroup v5+: the protocol the member expects.
    pub protocol_name: Option<String>,
    /// From the leader: every member's assignment.
    pub assignments: Vec<(String, Bytes)>,
}

/// The answer to a `SyncGroup`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncResponse {
    /// Why the sync failed, if it did.
    pub error: Option<GroupError>,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The generation's protocol.
    pub protocol_name: Option<String>,
    /// The member's assignment.
    pub assignment: Bytes,
}

impl SyncResponse {
    /// A failed sync.
    pub fn failed(error: GroupError) -> Self {
        Self {
            error: Some(error),
            ..Self::default()
        }
    }
}

/// A `Heartbeat`.
#[derive(Debug, Clone)]
pub struct HeartbeatRequest {
    /// The group.
    pub group_id: String,
    /// The generation the member is in.
    pub generation: i32,
    /// The member id.
    pub member_id: String,
    /// The static instance id.
    pub group_instance_id: Option<String>,
}

/// One member leaving in a `LeaveGroup`.
#[derive(Debug, Clone)]
pub struct LeavingMember {
    /// The member id (may be empty for a static member named by instance id).
    pub member_id: String,
    /// The static instance id.
    pub group_instance_id: Option<String>,
}

/// An `OffsetCommit` for the partitions that passed the handler's checks.
#[derive(Debug, Clone)]
pub struct CommitRequest {
    /// The group.
    pub group_id: String,
    /// The committing member's generation; negative for a "simple" commit from a
    /// consumer that does not use group management.
    pub generation: i32,
    /// The member id (empty for a simple commit).
    pub member_id: String,
    /// The static instance id.
    pub group_instance_id: Option<String>,
    /// What to commit.
    pub offsets: Vec<OffsetCommit>,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// Its member id.
    pub member_id: String,
    /// Its static instance id.
    pub group_instance_id: Option<String>,
    /// Its client id.
    pub client_id: String,
    /// The address it connected from.
    pub client_host: String,
    /// Its metadata for the chosen protocol (in `Stable` only).
    pub metadata: Bytes,
    /// Its assignment (in `Stable` only).
    pub assignment: Bytes,
}

/// A `DescribeGroups` answer for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group.
    pub group_id: String,
    /// Its state, as Kafka names it (`Stable`, `Empty`, `Dead`, ...).
    pub state: &'static str,
    /// Its protocol type (empty if none).
    pub protocol_type: String,
    /// The generation's protocol, in `Stable` (empty otherwise).
    pub protocol_name: String,
    /// Its generation.
    pub generation: i32,
    /// Its members.
    pub members: Vec<MemberDescription>,
}

impl GroupDescription {
    /// How Kafka describes a group that does not exist.
    pub fn dead(group_id: impl Into<String>) -> Self {
        Self {
            group_id: group_id.into(),
            state: "Dead",
            protocol_type: String::new(),
            protocol_name: String::new(),
            generation: -1,
            members: Vec::new(),
        }
    }
}

/// A `ListGroups` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group.
    pub group_id: String,
    /// Its protocol type (empty if none).
    pub protocol_type: String,
    /// Its state, as Kafka names it.
    pub state: &'static str,
    /// `classic` or `consumer` (the server-side protocol).
    pub group_type: &'static str,
}

/// A `ConsumerGroupHeartbeat` (KIP-848), or a poll of an HTTP or gRPC member.
/// `None` fields are unchanged since the member's last heartbeat.
#[derive(Debug, Clone, Default)]
pub struct ConsumerHeartbeatRequest {
    /// The group.
    pub group_id: String,
    /// The member id: generated by the client (empty on a v0 join: the
    /// coordinator generates one).
    pub member_id: String,
    /// 0 to join, -1 to leave, -2 for a static member leaving temporarily,
    /// otherwise the member's current epoch.
    pub member_epoch: i32,
    /// `group.instance.id`, for static members.
    pub instance_id: Option<String>,
    /// The member's rack.
    pub rack_id: Option<String>,
    /// How long the member may take to revoke partitions; -1: unchanged.
    pub rebalance_timeout_ms: i32,
    /// The topic names subscribed to.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// A regular expression subscribed to (empty: none).
    pub subscribed_topic_regex: Option<String>,
    /// The server-side assignor asked for.
    pub server_assignor: Option<String>,
    /// The partitions the member owns.
    pub owned: Option<TopicPartitionSet>,
    /// The client id of the request.
    pub client_id: String,
    /// The address the request came from.
    pub client_host: String,
    /// The member's own session timeout (HTTP and gRPC members); `None`: the
    /// group's `group.consumer.session.timeout.ms`.
    pub session_timeout_ms: Option<i32>,
}

/// The answer to a [`ConsumerHeartbeatRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerHeartbeatResponse {
    /// The member id.
    pub member_id: String,
    /// The member's epoch now.
    pub member_epoch: i32,
    /// How often the member should heartbeat.
    pub heartbeat_interval_ms: i32,
    /// The partitions the member now owns, when they changed (or on a full
    /// request); the member revokes whatever it owns that is not in it.
    pub assignment: Option<TopicPartitionSet>,
}

/// One member in a `ConsumerGroupDescribe`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerMemberDescription {
    /// Its member id.
    pub member_id: String,
    /// Its static instance id.
    pub instance_id: Option<String>,
    /// Its rack.
    pub rack_id: Option<String>,
    /// Its epoch.
    pub member_epoch: i32,
    /// Its client id.
    pub client_id: String,
    /// The address it connected from.
    pub client_host: String,
    /// The topic names it subscribes to.
    pub subscribed_topic_names: Vec<String>,
    /// The regular expression it subscribes with.
    pub subscribed_topic_regex: Option<String>,
    /// What it owns: (topic id, name, partitions).
    pub assignment: Vec<(TopicId, String, Vec<i32>)>,
    /// Its target.
    pub target_assignment: Vec<(TopicId, String, Vec<i32>)>,
}

/// A `ConsumerGroupDescribe` answer for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    /// The group.
    pub group_id: String,
    /// `Empty`, `Assigning`, `Reconciling` or `Stable`.
    pub state: &'static str,
    /// The group epoch.
    pub group_epoch: i32,
    /// The epoch of the target assignment.
    pub assignment_epoch: i32,
    /// The assignor in use.
    pub assignor: String,
    /// Its members.
    pub members: Vec<ConsumerMemberDescription>,
}
