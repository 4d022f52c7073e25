//! The HTTP gateway's view of this agent: [`GatewayCore`] implements
//! [`fjord_gateway::Core`] over the same [`Broker`] the Kafka handlers use.
//!
//! - A produce to a partition this agent owns is appended here, as a Kafka
//!   produce is; one owned elsewhere is forwarded to that agent's Kafka
//!   listener ([`forward`]). Either way the leader's write path decides.
//! - A read of a partition another agent leads is forwarded to it as a Kafka
//!   `Fetch` ([`forward`]): the leader serves it from its memory and ends a
//!   wait at its commit. When it cannot, committed data is read here (the
//!   index is in metadata). Tails wake on this agent's commits; on a partition
//!   another agent leads, when the one poller of that partition on this agent
//!   sees its high watermark move ([`crate::log::fetch::long_poll`]).
//! - A produce with an `expected_offset` precondition, which a Kafka
//!   `Produce` cannot carry, goes to the leader's gateway
//!   ([`forward_gateway`]).
//! - A group member's heartbeat, commit and offset fetch go to the group's
//!   coordinator as the Kafka requests a consumer sends ([`groups`]).
//! - Errors become Kafka codes through [`crate::kafka::errors`], the one
//!   mapping the Kafka listener uses.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use fjord_common::Clock;
use fjord_gateway::{
    Acks, Append, Core, GroupAssignment, GroupHeartbeat, KafkaError, NewTopicRequest,
    PartitionInfo, ProduceError, ReadBatches, TopicInfo,
};
use fjord_metadata::{MetadataError, TopicMeta, TopicPartition};
use kafka_protocol::error::ResponseError;

use crate::Broker;
use crate::kafka::errors::{log_error, metadata_error};
use crate::log::{LogError, TimestampQuery};

pub(crate) mod forward;
mod forward_gateway;
mod groups;
mod rest_consumers;

/// The broker core as the gateway sees it.
#[derive(Debug)]
pub struct GatewayCore {
    broker: Arc<Broker>,
    clock: Arc<dyn Clock>,
    forwarder: Arc<forward::Forwarder>,
    gateway_forwarder: forward_gateway::GatewayForwarder,
}

impl GatewayCore {
    /// Over `broker`, with `clock` stamping records produced without a timestamp.
    pub fn new(broker: Arc<Broker>, clock: Arc<dyn Clock>) -> Self {
        Self {
            broker,
            clock,
            forwarder: Arc::new(forward::Forwarder::default()),
            gateway_forwarder: forward_gateway::GatewayForwarder::default(),
        }
    }

    /// A topic's metadata (through the topic cache).
    async fn meta(&self, name: &str) -> Result<TopicMeta, KafkaError> {
        self.broker
            .logs
            .topics()
            .describe(name)
            .await
            .map_err(|e| of_metadata(&e))
    }

    /// The partition `index` of `topic`, if it exists (a partition past the
    /// cached count is looked up again: partitions may have been added).
    async fn partition_of(
        &self,
        topic: &str,
        index: i32,
    ) -> Result<(TopicMeta, TopicPartition), KafkaError> {
        let meta = self
            .broker
            .logs
            .topics()
            .with_partition(topic, index)
            .await
            .map_err(|e| of_metadata(&e))?
            .ok_or_else(|| {
                KafkaError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("topic {topic} has no partition {index}"),
                )
            })?;
        let tp = TopicPartition::new(meta.id, index);
        Ok((meta, tp))
    }
}

impl GatewayCore {
    /// The Kafka listener of live agent `node_id`.
    fn kafka_address(&self, node_id: i32) -> Option<String> {
        self.broker.cluster.kafka_address(node_id)
    }

    /// A produce to a partition `owner` leads, forwarded there: as a Kafka
    /// `Produce` to its listener, or to its gateway for what a Kafka
    /// `Produce` cannot carry (`expected_offset`). A produce forwarded here
    /// is not forwarded again: the agents disagree on the leader only while
    /// leadership moves, and the client retries.
    async fn forward(
        &self,
        topic: &str,
        partition: i32,
        owner: i32,
        batch: Bytes,
        append: Append,
    ) -> Result<i64, ProduceError> {
        let not_leader = |why: &str| {
            ProduceError::Kafka(KafkaError::new(
                ResponseError::NotLeaderOrFollower,
                format!("{why} for {topic}/{partition}"),
            ))
        };
        if append.forwarded {
            return Err(not_leader("this agent is not the leader either"));
        }
        if append.expected_offset.is_some() {
            let agents = self
                .broker
                .store
                .list_agents()
                .await
                .map_err(|e| of_metadata(&e))?;
            let address = agents
                .into_iter()
                .find(|agent| agent.node_id == owner)
                .and_then(|agent| agent.gateway_address)
                .ok_or_else(|| not_leader("no leader with a gateway"))?;
            return self
                .gateway_forwarder
                .produce(&address, topic, partition, batch, append)
                .await;
        }
        let address = self
            .kafka_address(owner)
            .ok_or_else(|| not_leader("no live leader"))?;
        let Append { acks, timeout, .. } = append;
        let forwarded_acks = if acks == Acks::Leader { 1 } else { -1 };
        if acks == Acks::None {
            // Not waited for, as acks=0 is not: forwarded in the background.
            let forwarder = self.forwarder.clone();
            let topic = topic.to_owned();
            tokio::spawn(async move {
                if let Err(error) = forwarder
                    .produce(&address, &topic, partition, batch, 1, timeout)
                    .await
                {
                    tracing::debug!(%error, "an acks=0 produce forwarded over HTTP failed");
                }
            });
            return Ok(-1);
        }
        Ok(self
            .forwarder
            .produce(&address, topic, partition, batch, forwarded_acks, timeout)
            .await?)
    }
}

fn of_metadata(error: &MetadataError) -> KafkaError {
    KafkaError::new(metadata_error(error), error.to_string())
}

fn of_log(error: &LogError) -> KafkaError {
    KafkaError::new(log_error(error), error.to_string())
}

fn info_of(meta: TopicMeta) -> TopicInfo {
    TopicInfo {
        name: meta.name,
        id: meta.id.0.to_string(),
        partition_count: meta.partition_count,
        configs: meta.configs,
    }
}

#[async_trait]
impl Core for GatewayCore {
    async fn group_heartbeat(
        &self,
        request: GroupHeartbeat,
    ) -> Result<GroupAssignment, KafkaError> {
        self.heartbeat_group(request).await
    }

    async fn commit_offsets(
        &self,
        group: &str,
        member_id: &str,
        member_epoch: i32,
        offsets: &[(String, i32, i64)],
    ) -> Result<(), KafkaError> {
        self.commit_group_offsets(group, member_id, member_epoch, offsets)
            .await
    }

    async fn committed_offsets(
        &self,
        group: &str,
        partitions: &[(String, i32)],
    ) -> Result<Vec<Option<i64>>, KafkaError> {
        self.committed_group_offsets(group, partitions).await
    }

    fn readiness(&self) -> Result<(), String> {
        if self.broker.cluster.is_leaving() {
            return Err("this agent is shutting down".into());
        }
        if !self.broker.cluster.roles_of(self.broker.node_id).serve {
            return Err("this agent does not serve clients (--roles)".into());
        }
        Ok(())
    }

    fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    async fn topic(&self, name: &str) -> Result<TopicInfo, KafkaError> {
        self.meta(name).await.map(info_of)
    }

    async fn list_topics(&self) -> Result<Vec<TopicInfo>, KafkaError> {
        let topics = self
            .broker
            .store
            .list_topics()
            .await
            .map_err(|e| of_metadata(&e))?;
        Ok(topics.into_iter().map(info_of).collect())
    }

    async fn create_topic(&self, request: NewTopicRequest) -> Result<TopicInfo, KafkaError> {
        let partitions = request
            .partitions
            .unwrap_or(self.broker.settings.default_partitions);
        let spec = crate::topic_spec::new_topic(
            request.name,
            partitions,
            request
                .configs
                .iter()
                .map(|(name, value)| (name.as_str(), Some(value.as_str()))),
        )
        .map_err(|(error, message)| KafkaError::new(error, message))?;
        let created = self
            .broker
            .store
            .create_topic(spec)
            .await
            .map_err(|error| {
                KafkaError::new(crate::topic_spec::creation_error(&error), error.to_string())
            })?;
        Ok(info_of(created))
    }

    async fn delete_topic(&self, name: &str) -> Result<(), KafkaError> {
        let deleted = self
            .broker
            .store
            .delete_topic(name)
            .await
            .map_err(|e| of_metadata(&e))?;
        self.broker.logs.topics().invalidate(&deleted.name);
        Ok(())
    }

    async fn new_producer(&self) -> Result<(i64, i16), KafkaError> {
        let id = self
            .broker
            .store
            .allocate_producer_id()
            .await
            .map_err(|e| of_metadata(&e))?;
        Ok((id, 0))
    }

    async fn partition(&self, topic: &str, partition: i32) -> Result<PartitionInfo, KafkaError> {
        let (meta, tp) = self.partition_of(topic, partition).await?;
        let (log_start_offset, high_watermark) = match self.broker.logs.offsets(tp).await {
            Ok(offsets) => offsets,
            // The topic was deleted since this agent's topic cache read it.
            Err(LogError::UnknownPartition(_)) => {
                self.broker.logs.topics().invalidate(topic);
                return Err(KafkaError::new(
                    ResponseError::UnknownTopicOrPartition,
                    format!("unknown topic {topic}"),
                ));
            }
            Err(error) => return Err(of_log(&error)),
        };
        Ok(PartitionInfo {
            partition,
            log_start_offset,
            high_watermark,
            leader: self.broker.cluster.owner(tp, meta.partition_count),
        })
    }

    async fn produce(
        &self,
        topic: &str,
        partition: i32,
        batch: Bytes,
        append: Append,
    ) -> Result<i64, ProduceError> {
        let (meta, tp) = self.partition_of(topic, partition).await?;
        let owner = self.broker.cluster.owner(tp, meta.partition_count);
        if owner != self.broker.node_id {
            return self.forward(topic, partition, owner, batch, append).await;
        }
        let Append {
            acks,
            timeout,
            expected_offset,
            ..
        } = append;
        let durability = match acks {
            Acks::None => crate::log::Acks::None,
            Acks::Leader => crate::log::Acks::Leader,
            Acks::All => crate::log::Acks::All,
        };
        let appended = match self
            .broker
            .logs
            .append_at(tp, &batch, durability, expected_offset)
            .await
        {
            Ok(appended) => appended,
            Err(LogError::OffsetMismatch { expected, actual }) => {
                return Err(ProduceError::OffsetMismatch { expected, actual });
            }
            Err(error) => return Err(of_log(&error).into()),
        };
        if acks == Acks::None {
            return Ok(-1);
        }
        match tokio::time::timeout(timeout, appended.durable).await {
            Ok(Ok(base_offset)) => Ok(base_offset),
            Ok(Err(error)) => Err(of_log(&error).into()),
            Err(_) => Err(KafkaError::new(
                ResponseError::RequestTimedOut,
                format!("not durable within timeout_ms ({timeout:?})"),
            )
            .into()),
        }
    }

    async fn read(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        max_bytes: usize,
        wait: Duration,
    ) -> Result<ReadBatches, KafkaError> {
        let (meta, tp) = self.partition_of(topic, partition).await?;
        let owner = self.broker.cluster.owner(tp, meta.partition_count);
        // Led elsewhere: read from the leader, as a Kafka consumer does (its
        // memory, and a wait that ends at its commit). When it cannot answer
        // (leadership moving, unreachable, too many forwarded reads), the
        // committed data is read here, through the index and the bucket.
        if owner != self.broker.node_id
            && let Some(address) = self.kafka_address(owner)
        {
            match self
                .forwarder
                .fetch(&address, topic, partition, offset, max_bytes, wait)
                .await
            {
                Some(Ok(read)) => return Ok(read),
                Some(Err(error)) if !error.error.is_retriable() => return Err(error),
                Some(Err(error)) => {
                    tracing::debug!(%error, "a forwarded read failed; reading here");
                }
                None => {}
            }
        }
        let start = tokio::time::Instant::now();
        let deadline = start.checked_add(wait).unwrap_or(start);
        loop {
            // Subscribed before the read, so a commit in between is not missed.
            let mut watch = self.broker.logs.watch(&[tp]);
            let read = self
                .broker
                .logs
                .read(tp, offset, max_bytes)
                .await
                .map_err(|e| of_log(&e))?;
            let answer = ReadBatches {
                records: read.records,
                high_watermark: read.high_watermark,
                log_start_offset: read.log_start_offset,
            };
            if !answer.records.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(answer);
            }
            // Commits here wake the watch; for a partition led elsewhere, the
            // one poller of that partition on this agent does. Nothing by the
            // deadline: nothing new to read.
            if tokio::time::timeout_at(deadline, watch.changed())
                .await
                .is_err()
            {
                return Ok(answer);
            }
        }
    }

    async fn watch(
        &self,
        topic: &str,
        partitions: &[i32],
    ) -> Result<futures::future::BoxFuture<'static, ()>, KafkaError> {
        let meta = self.meta(topic).await?;
        let tps: Vec<TopicPartition> = partitions
            .iter()
            .filter(|p| **p >= 0 && **p < meta.partition_count)
            .map(|p| TopicPartition::new(meta.id, *p))
            .collect();
        let mut watch = self.broker.logs.watch(&tps);
        Ok(Box::pin(async move { watch.changed().await }))
    }

    async fn offset_for_timestamp(
        &self,
        topic: &str,
        partition: i32,
        timestamp_ms: i64,
    ) -> Result<Option<i64>, KafkaError> {
        let (_, tp) = self.partition_of(topic, partition).await?;
        let hit = self
            .broker
            .logs
            .find_by_timestamp(tp, TimestampQuery::AtLeast(timestamp_ms))
            .await
            .map_err(|e| of_log(&e))?;
        Ok(hit.map(|hit| hit.offset))
    }

    fn cluster_id(&self) -> String {
        self.broker.cluster_id.clone()
    }

    fn unique_id(&self) -> String {
        self.broker.groups.new_member_id()
    }

    async fn list_groups(&self) -> Result<Vec<fjord_gateway::core::GroupSummary>, KafkaError> {
        self.group_summaries().await
    }

    async fn describe_group(
        &self,
        group: &str,
    ) -> Result<Option<fjord_gateway::core::GroupSummary>, KafkaError> {
        self.group_summary(group).await
    }

    async fn create_rest_consumer(
        &self,
        consumer: &fjord_gateway::core::RestConsumer,
    ) -> Result<bool, KafkaError> {
        self.create_rest_instance(consumer).await
    }

    async fn rest_consumer(
        &self,
        group: &str,
        instance: &str,
    ) -> Result<Option<fjord_gateway::core::RestConsumer>, KafkaError> {
        self.rest_instance(group, instance).await
    }

    async fn store_rest_consumer(
        &self,
        consumer: &fjord_gateway::core::RestConsumer,
    ) -> Result<Option<u64>, KafkaError> {
        self.store_rest_instance(consumer).await
    }

    async fn delete_rest_consumer(
        &self,
        group: &str,
        instance: &str,
        version: u64,
    ) -> Result<bool, KafkaError> {
        self.delete_rest_instance(group, instance, version).await
    }

    async fn list_rest_consumers(
        &self,
    ) -> Result<Vec<fjord_gateway::core::RestConsumer>, KafkaError> {
        self.rest_instances().await
    }
}
