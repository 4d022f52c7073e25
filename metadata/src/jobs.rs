//! Job shards: which agent runs the background jobs (retention, object
//! compaction, garbage collection, the orphan sweep) of each shard.
//!
//! The jobs' work is spread over [`JOB_SHARDS`] shards (the agent maps
//! partitions, deleted topics and garbage objects onto them; bucket-wide work
//! such as compaction and the orphan sweep is shard 0's). Each shard has a holder and an epoch, like a
//! coordinator shard: an agent takes a shard with
//! [`MetadataStore::acquire_job_shard`], which succeeds only if the shard is
//! still at the epoch the agent read (so two agents deciding on the same
//! state cannot both take it), and gives it back with
//! [`MetadataStore::release_job_shard`].
//!
//! The jobs' own writes are not fenced by the epoch: every step they take
//! is one transaction that reads what it changes and is safe to repeat, so an
//! agent that lost a shard during a pass at worst repeats work its successor
//! also does. The lease keeps agents from doing the same work, and is what
//! the operator sees (`fjord storage-report`).

use serde::{Deserialize, Serialize};

use crate::MetadataError;
use crate::codec::{self, Versioned};
use crate::kv::{RangeOptions, strinc};
use crate::store::{MetadataStore, read, write};

/// Shards the jobs' work is spread over.
pub const JOB_SHARDS: u32 = 64;

/// Who runs a job shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobShardState {
    /// The agent (node id) holding the shard, if any.
    pub holder: Option<i32>,
    /// Bumped every time the shard is taken.
    pub epoch: i64,
}

impl Versioned for JobShardState {
    const WHAT: &'static str = "job shard";
    const VERSION: u8 = 1;
}

/// A holder's lease on a job shard: the shard and the epoch it took it at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct JobLease {
    /// The job shard.
    pub shard: u32,
    /// The epoch it was taken at.
    pub epoch: i64,
}

fn validate(shard: u32) -> Result<(), MetadataError> {
    if shard >= JOB_SHARDS {
        return Err(MetadataError::invalid(format!(
            "job shard {shard} is outside 0..{JOB_SHARDS}"
        )));
    }
    Ok(())
}

impl MetadataStore {
    /// Every job shard's state, indexed by shard (no holder at epoch 0 if
    /// never taken).
    pub async fn job_shards(&self) -> Result<Vec<JobShardState>, MetadataError> {
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let prefix = keys.job_shards();
                let pairs = txn
                    .get_range(&prefix, &strinc(&prefix), RangeOptions::default())
                    .await?;
                let mut shards = vec![JobShardState::default(); JOB_SHARDS as usize];
                for pair in &pairs {
                    let Some(shard) = keys.job_shard_index(&pair.key) else {
                        continue;
                    };
                    if let Some(slot) = shards.get_mut(shard as usize) {
                        *slot = codec::decode(&pair.value)?;
                    }
                }
                Ok(shards)
            })
            .await
    }

    /// Makes `node_id` the holder of `shard` under the next epoch, if the
    /// shard is still at `seen_epoch` (the epoch the caller decided on);
    /// `None` if it moved meanwhile (another agent took or released it).
    pub async fn acquire_job_shard(
        &self,
        shard: u32,
        node_id: i32,
        seen_epoch: i64,
    ) -> Result<Option<JobLease>, MetadataError> {
        validate(shard)?;
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let key = keys.job_shard(shard);
                let mut state: JobShardState = read(&txn, &key).await?.unwrap_or_default();
                if state.epoch != seen_epoch {
                    return Ok(None);
                }
                state.holder = Some(node_id);
                state.epoch = state.epoch.checked_add(1).ok_or_else(|| {
                    MetadataError::invalid(format!("epoch of job shard {shard} overflowed"))
                })?;
                write(&txn, &key, &state);
                Ok(Some(JobLease {
                    shard,
                    epoch: state.epoch,
                }))
            })
            .await
    }

    /// Gives up `node_id`'s hold on a shard if it still holds it under
    /// `lease`; whether it did. The epoch stays; the next holder takes the
    /// one after.
    pub async fn release_job_shard(
        &self,
        lease: JobLease,
        node_id: i32,
    ) -> Result<bool, MetadataError> {
        validate(lease.shard)?;
        let keys = self.keyspace();
        self.database()
            .run(|txn, _| async move {
                let key = keys.job_shard(lease.shard);
                let Some(mut state) = read::<JobShardState>(&txn, &key).await? else {
                    return Ok(false);
                };
                if state.holder != Some(node_id) || state.epoch != lease.epoch {
                    return Ok(false);
                }
                state.holder = None;
                write(&txn, &key, &state);
                Ok(true)
            })
            .await
    }
}
