//! Consumer instances of the Confluent REST Proxy API (v2) that the HTTP
//! gateway serves: one record per `(group, instance)`, so that any agent
//! serves any instance URL. Each call of the instance loads its record, does
//! its work (heartbeats, reads, commits through the group's coordinator) and
//! stores the record back.
//!
//! Two agents may serve calls of one instance at once (a client that retries
//! on another agent, or that sends calls in parallel). Writes are therefore a
//! compare-and-set on the record's `version`: a store names the version it
//! read and fails with [`RestConsumerWrite::Conflict`] when another store came
//! first, so neither silently overwrites the other; the loser reloads and
//! redoes its call.
//!
//! Atomicity, per operation (each is one transaction):
//!
//! - [`MetadataStore::create_rest_consumer`]: writes the record at version 1
//!   unless one exists (instance names are unique in their group).
//! - [`MetadataStore::store_rest_consumer`]: reads the stored version and
//!   writes `version + 1` only if it is the caller's. A retry of a commit whose
//!   reply was lost finds its own `write_id` at `version + 1` and reports the
//!   store as done, not as a conflict (idempotent).
//! - [`MetadataStore::delete_rest_consumer`]: removes the record only at the
//!   caller's version.
//!
//! What this module never decides: what an instance means (its group
//! membership, its positions). Those are the gateway's; here they are fields.

use serde::{Deserialize, Serialize};

use crate::MetadataError;
use crate::codec::{self, Versioned};
use crate::kv::RangeOptions;
use crate::store::{MetadataStore, read, write};

/// A REST Proxy consumer instance, as stored at
/// [`Keyspace::rest_consumer`](crate::keys::Keyspace::rest_consumer).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestConsumerRecord {
    /// The consumer group.
    pub group: String,
    /// The instance name (unique in the group).
    pub instance: String,
    /// Bumped by every store; a store names the version it read.
    pub version: u64,
    /// Made fresh by the writer for each store: a retried store recognises its
    /// own earlier write by it.
    pub write_id: String,
    /// The embedded format records are read in (`binary`, `json`).
    pub format: String,
    /// `auto.offset.reset`: `earliest`, `latest` or `none`.
    pub auto_offset_reset: String,
    /// `auto.commit.enable`.
    pub auto_commit: bool,
    /// `fetch.min.bytes` (-1: none).
    pub fetch_min_bytes: i32,
    /// `consumer.request.timeout.ms`: how long a read waits by default.
    pub request_timeout_ms: i32,
    /// The session timeout of the instance's group membership.
    pub session_timeout_ms: i32,
    /// `consumer.instance.timeout.ms`: the instance is deleted after this long
    /// without a call.
    pub instance_timeout_ms: i64,
    /// The topics subscribed to.
    pub subscribed_topics: Vec<String>,
    /// The pattern subscribed with, if any.
    pub subscribed_pattern: Option<String>,
    /// Partitions assigned by hand (`POST .../assignments`), `(topic, partition)`.
    pub assigned: Vec<(String, i32)>,
    /// The instance's member id in its group (empty when not a member).
    pub member_id: String,
    /// Its member epoch (0 when not a member).
    pub member_epoch: i32,
    /// The next offset of every partition it owns: `(topic, partition, offset)`.
    pub positions: Vec<(String, i32, i64)>,
    /// When it was created (ms since the epoch, the writer's clock).
    pub created_at_ms: i64,
    /// When it was last called (ms since the epoch, the writer's clock).
    pub last_used_ms: i64,
}

impl Versioned for RestConsumerRecord {
    const WHAT: &'static str = "rest consumer instance";
    const VERSION: u8 = 1;
}

/// The outcome of [`MetadataStore::store_rest_consumer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestConsumerWrite {
    /// Stored at this version.
    Stored {
        /// The record's version now.
        version: u64,
    },
    /// Another store came first (or the instance was deleted): nothing was
    /// written.
    Conflict {
        /// The stored version (`None`: no record).
        current: Option<u64>,
    },
}

fn validate(group: &str, instance: &str) -> Result<(), MetadataError> {
    if group.is_empty() || instance.is_empty() {
        return Err(MetadataError::invalid(
            "a rest consumer instance needs a group and a name",
        ));
    }
    Ok(())
}

impl MetadataStore {
    /// Creates `record` at version 1; `false` (and nothing written) when the
    /// group already has an instance of that name.
    pub async fn create_rest_consumer(
        &self,
        record: &RestConsumerRecord,
    ) -> Result<bool, MetadataError> {
        validate(&record.group, &record.instance)?;
        let keys = self.keyspace();
        let key = keys.rest_consumer(&record.group, &record.instance);
        self.database()
            .run(|txn, attempt| {
                let key = key.clone();
                async move {
                    if let Some(existing) = read::<RestConsumerRecord>(&txn, &key).await? {
                        // A retry whose first attempt committed finds its own record.
                        return Ok(attempt.maybe_committed
                            && existing.version == 1
                            && existing.write_id == record.write_id);
                    }
                    let created = RestConsumerRecord {
                        version: 1,
                        ..record.clone()
                    };
                    write(&txn, &key, &created);
                    Ok(true)
                }
            })
            .await
    }

    /// The instance `instance` of `group`, if it exists.
    pub async fn rest_consumer(
        &self,
        group: &str,
        instance: &str,
    ) -> Result<Option<RestConsumerRecord>, MetadataError> {
        let key = self.keyspace().rest_consumer(group, instance);
        self.database()
            .run(|txn, _| {
                let key = key.clone();
                async move { read::<RestConsumerRecord>(&txn, &key).await }
            })
            .await
    }

    /// Stores `record` at `record.version + 1` if the stored version is
    /// `record.version` (compare-and-set); otherwise writes nothing and answers
    /// [`RestConsumerWrite::Conflict`].
    pub async fn store_rest_consumer(
        &self,
        record: &RestConsumerRecord,
    ) -> Result<RestConsumerWrite, MetadataError> {
        validate(&record.group, &record.instance)?;
        let key = self
            .keyspace()
            .rest_consumer(&record.group, &record.instance);
        let next = record.version.checked_add(1).ok_or_else(|| {
            MetadataError::invalid(format!(
                "rest consumer {}/{} is at the last version",
                record.group, record.instance
            ))
        })?;
        self.database()
            .run(|txn, _| {
                let key = key.clone();
                async move {
                    let stored = read::<RestConsumerRecord>(&txn, &key).await?;
                    match stored {
                        Some(stored) if stored.version == record.version => {
                            let updated = RestConsumerRecord {
                                version: next,
                                ..record.clone()
                            };
                            write(&txn, &key, &updated);
                            Ok(RestConsumerWrite::Stored { version: next })
                        }
                        // An earlier attempt of this store committed.
                        Some(stored)
                            if stored.version == next && stored.write_id == record.write_id =>
                        {
                            Ok(RestConsumerWrite::Stored { version: next })
                        }
                        Some(stored) => Ok(RestConsumerWrite::Conflict {
                            current: Some(stored.version),
                        }),
                        None => Ok(RestConsumerWrite::Conflict { current: None }),
                    }
                }
            })
            .await
    }

    /// Deletes the instance if it is stored at `version`; whether it was.
    pub async fn delete_rest_consumer(
        &self,
        group: &str,
        instance: &str,
        version: u64,
    ) -> Result<bool, MetadataError> {
        let key = self.keyspace().rest_consumer(group, instance);
        self.database()
            .run(|txn, _| {
                let key = key.clone();
                async move {
                    match read::<RestConsumerRecord>(&txn, &key).await? {
                        Some(stored) if stored.version == version => {
                            txn.clear(&key);
                            Ok(true)
                        }
                        _ => Ok(false),
                    }
                }
            })
            .await
    }

    /// Every stored instance (of `group` only, when given), ordered by group
    /// then name.
    pub async fn list_rest_consumers(
        &self,
        group: Option<&str>,
    ) -> Result<Vec<RestConsumerRecord>, MetadataError> {
        let keys = self.keyspace();
        let prefix = match group {
            Some(group) => keys.rest_consumers_of(group),
            None => keys.rest_consumers(),
        };
        self.database()
            .run(|txn, _| {
                let prefix = prefix.clone();
                async move {
                    let pairs = txn.get_prefix(&prefix, RangeOptions::default()).await?;
                    pairs
                        .iter()
                        .map(|pair| codec::decode::<RestConsumerRecord>(&pair.value))
                        .collect::<Result<Vec<_>, _>>()
                }
            })
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_truncations_fail_cleanly() {
        let record = RestConsumerRecord {
            group: "g".into(),
            instance: "i".into(),
            version: 7,
            write_id: "w".into(),
            format: "binary".into(),
            auto_offset_reset: "earliest".into(),
            auto_commit: true,
            fetch_min_bytes: -1,
            request_timeout_ms: 1_000,
            session_timeout_ms: 6_000,
            instance_timeout_ms: 300_000,
            subscribed_topics: vec!["t".into()],
            subscribed_pattern: None,
            assigned: vec![("u".into(), 3)],
            member_id: "m".into(),
            member_epoch: 4,
            positions: vec![("t".into(), 0, 12)],
            created_at_ms: 1,
            last_used_ms: 2,
        };
        let bytes = codec::encode(&record);
        assert_eq!(bytes[0], RestConsumerRecord::VERSION);
        assert_eq!(codec::decode::<RestConsumerRecord>(&bytes).unwrap(), record);
        for len in 0..bytes.len() {
            let _ = codec::decode::<RestConsumerRecord>(&bytes[..len]);
        }
    }
}
