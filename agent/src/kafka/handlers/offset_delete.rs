//! `OffsetDelete` (v0): deletes committed offsets of partitions the group does
//! not consume (any, for an empty group).

use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

use crate::Broker;
use crate::kafka::errors::group_error_code;

pub(crate) async fn handle(broker: &Broker, request: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let mut response = OffsetDeleteResponse::default();
    let partitions: Vec<(String, i32)> = request
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|p| (topic.name.0.to_string(), p.partition_index))
        })
        .collect();
    let errors = match broker
        .groups
        .delete_offsets(request.group_id.0.as_str(), partitions)
        .await
    {
        Ok(errors) => errors,
        Err(error) => {
            response.error_code = group_error_code(Some(&error));
            return response;
        }
    };
    let mut errors = errors.into_iter();
    for topic in request.topics {
        let mut topic_answer = OffsetDeleteResponseTopic::default();
        topic_answer.name = topic.name;
        for partition in topic.partitions {
            let mut answer = OffsetDeleteResponsePartition::default();
            answer.partition_index = partition.partition_index;
            answer.error_code = group_error_code(errors.next().flatten().as_ref());
            topic_answer.partitions.push(answer);
        }
        response.topics.push(topic_answer);
    }
    response
}
