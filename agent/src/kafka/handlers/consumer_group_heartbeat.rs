//! `ConsumerGroupHeartbeat` (v0–1, KIP-848): a member of a server-side consumer
//! group joins, heartbeats its subscription and owned partitions, and learns
//! its epoch and assignment. From v1 the client generates its member id; a v0
//! join gets one from the coordinator.
//!
//! A member of the HTTP or gRPC gateway carries its own session timeout in a
//! tagged field Kafka does not define ([`SESSION_TIMEOUT_TAG`]), so its
//! heartbeat can be forwarded to the coordinator as this same request.
//!
//! With an authorizer, as Kafka's: `READ` on the group (else
//! `GROUP_AUTHORIZATION_FAILED`) and `DESCRIBE` on every subscribed topic
//! named (else `TOPIC_AUTHORIZATION_FAILED`). A regular-expression
//! subscription is resolved over every topic.

/// The tagged field holding a member's own session timeout (an `i32`, big
/// endian, in milliseconds). Kafka's tags are small; this one is far past
/// them.
pub(crate) const SESSION_TIMEOUT_TAG: i32 = 0x0F10_0001;

use fjord_metadata::TopicId;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::Broker;
use crate::groups::GroupError;
use crate::groups::types::ConsumerHeartbeatRequest;
use crate::kafka::errors::{authorization_error, group_error_code};
use crate::security::authorizer::Session;
use fjord_metadata::AclOperation;

pub(crate) async fn handle(
    broker: &Broker,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    context: &RequestContext,
    access: &Session<'_>,
) -> ConsumerGroupHeartbeatResponse {
    let mut response = ConsumerGroupHeartbeatResponse::default();
    let denied = access
        .group(AclOperation::Read, request.group_id.0.as_str())
        .and_then(|()| {
            request
                .subscribed_topic_names
                .iter()
                .flatten()
                .try_for_each(|topic| access.topic(AclOperation::Describe, topic.0.as_str()))
        });
    if let Err(denied) = denied {
        response.error_code = authorization_error(&denied).code();
        response.error_message = Some(StrBytes::from_string(denied.to_string()));
        return response;
    }
    let heartbeat = ConsumerHeartbeatRequest {
        group_id: request.group_id.0.to_string(),
        member_id: request.member_id.to_string(),
        member_epoch: request.member_epoch,
        instance_id: request.instance_id.map(|id| id.to_string()),
        rack_id: request.rack_id.map(|id| id.to_string()),
        rebalance_timeout_ms: request.rebalance_timeout_ms,
        subscribed_topic_names: request
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.0.to_string()).collect()),
        subscribed_topic_regex: if version >= 1 {
            request.subscribed_topic_regex.map(|r| r.to_string())
        } else {
            None
        },
        server_assignor: request.server_assignor.map(|a| a.to_string()),
        owned: request.topic_partitions.map(|topics| {
            topics
                .into_iter()
                .map(|t| (TopicId(t.topic_id), t.partitions))
                .collect()
        }),
        client_id: context.client_id.clone(),
        client_host: context.client_host.clone(),
        session_timeout_ms: request
            .unknown_tagged_fields
            .get(&SESSION_TIMEOUT_TAG)
            .and_then(|bytes| <[u8; 4]>::try_from(bytes.as_ref()).ok())
            .map(i32::from_be_bytes),
    };
    if version >= 1 && heartbeat.member_id.is_empty() {
        let error = GroupError::InvalidRequest("MemberId can't be empty".into());
        response.error_code = group_error_code(Some(&error));
        response.error_message = Some(StrBytes::from_string(error.to_string()));
        return response;
    }
    match broker.groups.consumer_heartbeat(heartbeat).await {
        Ok(answer) => {
            response.member_id = Some(StrBytes::from_string(answer.member_id));
            response.member_epoch = answer.member_epoch;
            response.heartbeat_interval_ms = answer.heartbeat_interval_ms;
            response.assignment = answer.assignment.map(|topics| {
                let mut assignment = Assignment::default();
                assignment.topic_partitions = topics
                    .into_iter()
                    .map(|(topic, partitions)| {
                        let mut entry = TopicPartitions::default();
                        entry.topic_id = topic.0;
                        entry.partitions = partitions;
                        entry
                    })
                    .collect();
                assignment
            });
        }
        Err(error) => {
            response.error_code = group_error_code(Some(&error));
            response.error_message = Some(StrBytes::from_string(error.to_string()));
        }
    }
    response
}
