//! Finding records by timestamp, as Kafka's `ListOffsets` does.

use fjord_metadata::{IndexEntry, TopicPartition};

use crate::log::{LogError, PartitionLogs};
use crate::records;

/// What [`PartitionLogs::find_by_timestamp`] looks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampQuery {
    /// The first record whose timestamp is at least this.
    AtLeast(i64),
    /// The first record holding the largest timestamp.
    Max,
}

/// A record found by timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampHit {
    /// Its offset.
    pub offset: i64,
    /// Its timestamp.
    pub timestamp: i64,
    /// The leader epoch it was written under.
    pub leader_epoch: i32,
}

impl PartitionLogs {
    /// Finds a committed record by timestamp, as Kafka's `ListOffsets` does,
    /// among the records from the log start on (reading at most `scan_limit`
    /// index entries):
    ///
    /// - [`TimestampQuery::AtLeast`]: the first record (by offset) whose timestamp
    ///   is at least the one given;
    /// - [`TimestampQuery::Max`]: the first record holding the largest timestamp.
    ///
    /// The index narrows the search to the chunks whose largest timestamp
    /// qualifies; only those are read and their records decoded. `None` when no
    /// record qualifies (or the log is empty).
    pub async fn find_by_timestamp(
        &self,
        partition: TopicPartition,
        query: TimestampQuery,
        scan_limit: usize,
    ) -> Result<Option<TimestampHit>, LogError> {
        let lookup = self
            .store
            .lookup(partition, 0, scan_limit)
            .await
            .map_err(|e| LogError::from_metadata(partition, e))?;
        let log_start = lookup.state.log_start_offset;
        let entries: Vec<&IndexEntry> = lookup
            .entries
            .iter()
            .filter(|e| e.base_offset < lookup.state.high_watermark)
            .collect();
        // Each chunk's largest timestamp from the log start on: the index's,
        // except in a chunk the log start cuts, where it may belong to a deleted
        // record and is read from the records kept.
        let mut maxima = Vec::with_capacity(entries.len());
        for entry in &entries {
            let max = if entry.base_offset < log_start {
                self.records_from(entry, log_start, i64::MIN)
                    .await?
                    .iter()
                    .map(|(_, timestamp)| *timestamp)
                    .max()
                    .unwrap_or(i64::MIN)
            } else {
                entry.max_timestamp
            };
            maxima.push(max);
        }
        // A record qualifies by its timestamp: at least the one wanted, or equal
        // to the largest of all.
        let (threshold, exact) = match query {
            TimestampQuery::AtLeast(wanted) => (wanted, false),
            TimestampQuery::Max => match maxima.iter().max() {
                Some(max) => (*max, true),
                None => return Ok(None),
            },
        };
        for (entry, max) in entries.into_iter().zip(maxima) {
            if max < threshold {
                continue;
            }
            let found = self
                .records_from(entry, log_start, threshold)
                .await?
                .into_iter()
                .find(|(_, timestamp)| {
                    if exact {
                        *timestamp == threshold
                    } else {
                        *timestamp >= threshold
                    }
                });
            if let Some((offset, timestamp)) = found {
                return Ok(Some(TimestampHit {
                    offset,
                    timestamp,
                    leader_epoch: entry.leader_epoch,
                }));
            }
        }
        Ok(None)
    }

    /// The `(offset, timestamp)` of the records of an index entry's chunk from
    /// `log_start` on, decoding only the batches whose largest timestamp reaches
    /// `min_batch_timestamp` (the others cannot hold what a search looks for).
    async fn records_from(
        &self,
        entry: &IndexEntry,
        log_start: i64,
        min_batch_timestamp: i64,
    ) -> Result<Vec<(i64, i64)>, LogError> {
        let bytes = self.read_chunk(entry).await?;
        let mut found = Vec::new();
        for batch in records::parse_batches(&bytes)? {
            let last_offset = batch.base_offset + i64::from(batch.last_offset_delta);
            if last_offset < log_start || batch.max_timestamp < min_batch_timestamp {
                continue;
            }
            found.extend(
                records::record_timestamps(&batch)?
                    .into_iter()
                    .filter(|(offset, _)| *offset >= log_start),
            );
        }
        Ok(found)
    }
}
