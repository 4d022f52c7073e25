//! Topic lookups for the request path, cached: every produce and fetch names
//! its topics, and reading them from metadata each time costs a transaction
//! per request.
//!
//! # Freshness
//!
//! An entry is served for at most [`TopicCache::MAX_AGE`] after it was read;
//! the balancer replaces the whole cache with the topic list it reads on every
//! tick ([`TopicCache::replace_all`]), and this agent's own admin requests
//! invalidate what they change. A stale entry can only make a request fail
//! with a retriable error (a partition index past a stale count is looked up
//! again before it is refused; a deleted topic's id fails in metadata), never
//! write to the wrong place: every write is fenced in metadata by partition
//! epoch, under the topic's id.
//!
//! Unknown topics are not cached, so a topic created elsewhere is seen at once.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::Duration;

use fjord_metadata::{MetadataError, MetadataStore, TopicId, TopicMeta};
use tokio::time::Instant;

#[derive(Debug, Default)]
struct Entries {
    by_name: HashMap<String, (TopicMeta, Instant)>,
    by_id: HashMap<TopicId, (TopicMeta, Instant)>,
}

/// Topics by name and id, read from metadata and kept for a short while.
#[derive(Debug)]
pub struct TopicCache {
    store: MetadataStore,
    entries: RwLock<Entries>,
}

impl TopicCache {
    /// How long an entry is served before it is read again.
    pub const MAX_AGE: Duration = Duration::from_secs(2);

    /// An empty cache over `store`.
    pub fn new(store: MetadataStore) -> Self {
        Self {
            store,
            entries: RwLock::default(),
        }
    }

    fn fresh(read_at: Instant) -> bool {
        read_at.elapsed() < Self::MAX_AGE
    }

    fn remember(&self, topic: &TopicMeta) {
        let now = Instant::now();
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        entries
            .by_name
            .insert(topic.name.clone(), (topic.clone(), now));
        entries.by_id.insert(topic.id, (topic.clone(), now));
    }

    /// The topic named `name`.
    pub async fn describe(&self, name: &str) -> Result<TopicMeta, MetadataError> {
        let cached = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_name
            .get(name)
            .filter(|(_, at)| Self::fresh(*at))
            .map(|(topic, _)| topic.clone());
        match cached {
            Some(topic) => Ok(topic),
            None => self.describe_fresh(name).await,
        }
    }

    /// The topic named `name`, read from metadata now.
    pub async fn describe_fresh(&self, name: &str) -> Result<TopicMeta, MetadataError> {
        match self.store.describe_topic(name).await {
            Ok(topic) => {
                self.remember(&topic);
                Ok(topic)
            }
            Err(error) => {
                if matches!(error, MetadataError::UnknownTopic { .. }) {
                    self.invalidate(name);
                }
                Err(error)
            }
        }
    }

    /// The topic named `name` if it has partition `partition`: a partition
    /// past the cached count is looked up again (partitions may have been
    /// added). `Ok(None)` when the topic exists without that partition.
    pub async fn with_partition(
        &self,
        name: &str,
        partition: i32,
    ) -> Result<Option<TopicMeta>, MetadataError> {
        let topic = self.describe(name).await?;
        if partition >= 0 && partition < topic.partition_count {
            return Ok(Some(topic));
        }
        let topic = self.describe_fresh(name).await?;
        Ok((partition >= 0 && partition < topic.partition_count).then_some(topic))
    }

    /// The topic with id `id`.
    pub async fn by_id(&self, id: TopicId) -> Result<TopicMeta, MetadataError> {
        let cached = self
            .entries
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_id
            .get(&id)
            .filter(|(_, at)| Self::fresh(*at))
            .map(|(topic, _)| topic.clone());
        if let Some(topic) = cached {
            return Ok(topic);
        }
        let topic = self.store.topic_by_id(id).await?;
        self.remember(&topic);
        Ok(topic)
    }

    /// Forgets `name` (this agent changed or deleted it).
    pub fn invalidate(&self, name: &str) {
        let mut entries = self.entries.write().unwrap_or_else(|e| e.into_inner());
        if let Some((topic, _)) = entries.by_name.remove(name) {
            entries.by_id.remove(&topic.id);
        }
    }

    /// Replaces every entry with `topics`, read from metadata just now.
    pub fn replace_all(&self, topics: &[TopicMeta]) {
        let now = Instant::now();
        let mut fresh = Entries::default();
        for topic in topics {
            fresh
                .by_name
                .insert(topic.name.clone(), (topic.clone(), now));
            fresh.by_id.insert(topic.id, (topic.clone(), now));
        }
        *self.entries.write().unwrap_or_else(|e| e.into_inner()) = fresh;
    }
}
