//! Administration of groups: `DescribeGroups`, `ListGroups`, `DeleteGroups`
//! and `OffsetDelete`.

use fjord_metadata::COORDINATOR_SHARDS;

use super::GroupCoordinator;
use crate::groups::GroupError;
use crate::groups::actor::Command;
use crate::groups::types::{GroupDescription, GroupListing};

impl GroupCoordinator {
    /// `DescribeGroups` for one group (`Dead` if it does not exist).
    pub async fn describe(&self, group_id: &str) -> Result<GroupDescription, GroupError> {
        Self::validate_group_id(group_id)?;
        Ok(self
            .call(group_id, false, Command::Describe)
            .await?
            .unwrap_or_else(|| GroupDescription::dead(group_id)))
    }

    /// `ListGroups`: every group this agent coordinates (taking every shard, see
    /// the module docs).
    pub async fn list(&self) -> Result<Vec<GroupListing>, GroupError> {
        let mut listings = Vec::new();
        for index in 0..COORDINATOR_SHARDS {
            if !self.placed_here(index) {
                continue; // another agent lists it
            }
            let shard = self.shard_at(index).await?;
            listings.extend(
                shard
                    .running()
                    .iter()
                    .map(|h| h.listing.borrow().clone())
                    .filter(|l| l.state != "Dead"),
            );
        }
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(listings)
    }

    /// `DeleteGroups` for one group: only an empty group may be deleted.
    pub async fn delete(&self, group_id: &str) -> Result<(), GroupError> {
        Self::validate_group_id(group_id)?;
        self.call(group_id, false, Command::Delete)
            .await?
            .unwrap_or(Err(GroupError::GroupIdNotFound))
    }

    /// `OffsetDelete`: an error (or none) per partition.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<Vec<Option<GroupError>>, GroupError> {
        Self::validate_group_id(group_id)?;
        self.call(group_id, false, |reply| {
            Command::DeleteOffsets(partitions, reply)
        })
        .await?
        .unwrap_or(Err(GroupError::GroupIdNotFound))
    }
}
