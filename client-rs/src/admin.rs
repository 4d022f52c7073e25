//! [`Admin`]: create, describe, list and delete topics (`/v1/topics`).

use std::collections::BTreeMap;

use hyper::Method;
use serde::{Deserialize, Serialize};

use crate::client::{Client, encode};
use crate::error::Result;

/// A partition's offsets and leader.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PartitionInfo {
    /// Its index.
    pub partition: i32,
    /// The first offset still stored.
    pub log_start_offset: i64,
    /// The offset after the last committed record.
    pub high_watermark: i64,
    /// The node id of its leader (`-1`: none right now).
    pub leader: i32,
}

/// A topic, its partitions and its configs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TopicDescription {
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// Its partitions, in order.
    pub partitions: Vec<PartitionInfo>,
    /// Its configs (those set, and defaults the agent reports).
    pub configs: BTreeMap<String, String>,
}

/// A topic in a list.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TopicSummary {
    /// Its name.
    pub name: String,
    /// Its id.
    pub id: String,
    /// Its partition count.
    pub partitions: i32,
}

#[derive(Debug, Serialize)]
struct NewTopic<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    partitions: Option<i32>,
    configs: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
struct TopicList {
    topics: Vec<TopicSummary>,
}

/// Topic administration ([`Client::admin`]).
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    /// Creates `name` with `partitions` (`None`: the agents' default) and
    /// `configs` (Kafka's topic configs, e.g. `("retention.ms", "60000")`).
    /// A topic that exists already is `409 TOPIC_ALREADY_EXISTS`.
    pub async fn create_topic<K, V>(
        &self,
        name: &str,
        partitions: Option<i32>,
        configs: impl IntoIterator<Item = (K, V)>,
    ) -> Result<TopicDescription>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let body = NewTopic {
            name,
            partitions,
            configs: configs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        };
        self.client
            .call_json(Method::POST, "/v1/topics", Some(&body))
            .await
    }

    /// The topic `name`: partitions with offsets and leaders, and configs.
    /// An unknown topic is `404 UNKNOWN_TOPIC_OR_PARTITION`.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription> {
        self.client
            .call_json::<(), _>(Method::GET, &format!("/v1/topics/{}", encode(name)), None)
            .await
    }

    /// One partition's offsets and leader.
    pub async fn describe_partition(&self, topic: &str, partition: i32) -> Result<PartitionInfo> {
        self.client
            .call_json::<(), _>(
                Method::GET,
                &format!("/v1/topics/{}/partitions/{partition}", encode(topic)),
                None,
            )
            .await
    }

    /// Every topic.
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>> {
        let list: TopicList = self
            .client
            .call_json::<(), _>(Method::GET, "/v1/topics", None)
            .await?;
        Ok(list.topics)
    }

    /// Deletes the topic `name`.
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.client
            .call(
                Method::DELETE,
                &format!("/v1/topics/{}", encode(name)),
                None,
            )
            .await
            .map(|_| ())
    }
}
