//! `ConsumerGroupDescribe` (v0–1, KIP-848): groups of the server-side consumer
//! protocol with their epochs, members, assignments and targets. A classic or
//! unknown group is `GROUP_ID_NOT_FOUND`, as in Kafka.
//!
//! With an authorizer, as Kafka's: each group needs `DESCRIBE` (else
//! `GROUP_AUTHORIZATION_FAILED`), and a group whose members are assigned a
//! topic the client may not `DESCRIBE` is `TOPIC_AUTHORIZATION_FAILED`.
//! Authorized operations are reported when asked for.

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment, DescribedGroup, Member, TopicPartitions,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::Broker;
use crate::kafka::errors::{authorization_error, group_error_code};
use crate::security::authorizer::Session;
use fjord_metadata::{AclOperation, ResourceType};

/// `member_type` of a consumer-protocol member (v1).
const CONSUMER_MEMBER: i8 = 1;

fn assignment(parts: Vec<(fjord_metadata::TopicId, String, Vec<i32>)>) -> Assignment {
    let mut assignment = Assignment::default();
    assignment.topic_partitions = parts
        .into_iter()
        .map(|(id, name, partitions)| {
            let mut entry = TopicPartitions::default();
            entry.topic_id = id.0;
            entry.topic_name = TopicName(StrBytes::from_string(name));
            entry.partitions = partitions;
            entry
        })
        .collect();
    assignment
}

pub(crate) async fn handle(
    broker: &Broker,
    request: ConsumerGroupDescribeRequest,
    version: i16,
    access: &Session<'_>,
) -> ConsumerGroupDescribeResponse {
    let mut response = ConsumerGroupDescribeResponse::default();
    for group_id in request.group_ids {
        let mut described = DescribedGroup::default();
        described.group_id = group_id.clone();
        // Kafka's value for "not requested".
        described.authorized_operations = i32::MIN;
        if let Err(denied) = access.group(AclOperation::Describe, group_id.0.as_str()) {
            described.error_code = authorization_error(&denied).code();
            described.error_message = Some(StrBytes::from_string(denied.to_string()));
            response.groups.push(described);
            continue;
        }
        if request.include_authorized_operations {
            described.authorized_operations =
                access.authorized_operations(ResourceType::Group, group_id.0.as_str());
        }
        match broker.groups.consumer_describe(group_id.0.as_str()).await {
            Ok(group) => {
                let hidden = group
                    .members
                    .iter()
                    .flat_map(|m| m.assignment.iter().chain(&m.target_assignment))
                    .find_map(|(_, topic, _)| access.topic(AclOperation::Describe, topic).err());
                if let Some(denied) = hidden {
                    described.error_code = authorization_error(&denied).code();
                    described.error_message = Some(StrBytes::from_string(denied.to_string()));
                    response.groups.push(described);
                    continue;
                }
                described.group_state = StrBytes::from_static_str(group.state);
                described.group_epoch = group.group_epoch;
                described.assignment_epoch = group.assignment_epoch;
                described.assignor_name = StrBytes::from_string(group.assignor);
                described.members = group
                    .members
                    .into_iter()
                    .map(|m| {
                        let mut member = Member::default();
                        member.member_id = StrBytes::from_string(m.member_id);
                        member.instance_id = m.instance_id.map(StrBytes::from_string);
                        member.rack_id = m.rack_id.map(StrBytes::from_string);
                        member.member_epoch = m.member_epoch;
                        member.client_id = StrBytes::from_string(m.client_id);
                        member.client_host = StrBytes::from_string(m.client_host);
                        member.subscribed_topic_names = m
                            .subscribed_topic_names
                            .into_iter()
                            .map(|n| TopicName(StrBytes::from_string(n)))
                            .collect();
                        member.subscribed_topic_regex =
                            m.subscribed_topic_regex.map(StrBytes::from_string);
                        member.assignment = assignment(m.assignment);
                        member.target_assignment = assignment(m.target_assignment);
                        if version >= 1 {
                            member.member_type = CONSUMER_MEMBER;
                        }
                        member
                    })
                    .collect();
            }
            Err(error) => {
                described.error_code = group_error_code(Some(&error));
                described.error_message = Some(StrBytes::from_string(error.to_string()));
            }
        }
        response.groups.push(described);
    }
    response
}
