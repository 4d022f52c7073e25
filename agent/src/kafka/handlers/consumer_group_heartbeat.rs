//! `ConsumerGroupHeartbeat` (v0–1, KIP-848): a member of a server-side consumer
//! group joins, heartbeats its subscription and owned partitions, and learns
//! its epoch and assignment. From v1 the client generates its member id; a v0
//! join gets one from the coordinator.

use fjord_metadata::TopicId;
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse};
use kafka_protocol::protocol::StrBytes;

use super::RequestContext;
use crate::Broker;
use crate::groups::GroupError;
use crate::groups::types::ConsumerHeartbeatRequest;
use crate::kafka::errors::group_error_code;

pub(crate) async fn handle(
    broker: &Broker,
    request: ConsumerGroupHeartbeatRequest,
    version: i16,
    context: &RequestContext,
) -> ConsumerGroupHeartbeatResponse {
    let mut response = ConsumerGroupHeartbeatResponse::default();
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
        session_timeout_ms: None,
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
