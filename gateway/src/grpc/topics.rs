//! `fjord.v1.Topics`: list, create, describe and delete topics.

use tonic::{Request, Response, Status};

use super::proto::topics_server::{Topics, TopicsServer};
use super::proto::{
    self, CreateTopicRequest, DeleteTopicRequest, DeleteTopicResponse, DescribeTopicRequest,
    ListTopicsRequest, ListTopicsResponse,
};
use super::status::status;
use crate::core::{NewTopicRequest, TopicInfo};
use crate::ops::Failure;
use crate::routes::State;

/// The service's full name.
pub(super) const NAME: &str = "fjord.v1.Topics";

/// The service over `state`.
pub(super) fn service(state: State) -> TopicsServer<TopicsService> {
    TopicsServer::new(TopicsService { state })
}

#[derive(Debug, Clone)]
pub(super) struct TopicsService {
    state: State,
}

fn grpc(error: crate::core::KafkaError) -> Status {
    status(Failure::Kafka(error))
}

fn topic_of(info: TopicInfo, partitions: Vec<proto::Partition>) -> proto::Topic {
    proto::Topic {
        name: info.name,
        id: info.id,
        partition_count: info.partition_count,
        configs: info.configs.into_iter().collect(),
        partitions,
    }
}

impl TopicsService {
    /// `info` with every partition's offsets and leader.
    async fn described(&self, info: TopicInfo) -> Result<proto::Topic, Status> {
        let partitions = crate::ops::partitions_of(&self.state.core, &info)
            .await
            .map_err(grpc)?;
        let partitions = partitions
            .into_iter()
            .map(|p| proto::Partition {
                partition: p.partition,
                log_start_offset: p.log_start_offset,
                high_watermark: p.high_watermark,
                leader: p.leader,
            })
            .collect();
        Ok(topic_of(info, partitions))
    }
}

#[tonic::async_trait]
impl Topics for TopicsService {
    async fn list_topics(
        &self,
        _request: Request<ListTopicsRequest>,
    ) -> Result<Response<ListTopicsResponse>, Status> {
        let topics = self.state.core.list_topics().await.map_err(grpc)?;
        Ok(Response::new(ListTopicsResponse {
            topics: topics
                .into_iter()
                .map(|t| topic_of(t, Vec::new()))
                .collect(),
        }))
    }

    async fn create_topic(
        &self,
        request: Request<CreateTopicRequest>,
    ) -> Result<Response<proto::Topic>, Status> {
        let request = request.into_inner();
        let created = self
            .state
            .core
            .create_topic(NewTopicRequest {
                name: request.name,
                partitions: request.partitions,
                configs: request.configs.into_iter().collect(),
            })
            .await
            .map_err(grpc)?;
        Ok(Response::new(self.described(created).await?))
    }

    async fn describe_topic(
        &self,
        request: Request<DescribeTopicRequest>,
    ) -> Result<Response<proto::Topic>, Status> {
        let info = self
            .state
            .core
            .topic(&request.into_inner().name)
            .await
            .map_err(grpc)?;
        Ok(Response::new(self.described(info).await?))
    }

    async fn delete_topic(
        &self,
        request: Request<DeleteTopicRequest>,
    ) -> Result<Response<DeleteTopicResponse>, Status> {
        self.state
            .core
            .delete_topic(&request.into_inner().name)
            .await
            .map_err(grpc)?;
        Ok(Response::new(DeleteTopicResponse {}))
    }
}
