//! Finding records by timestamp, as Kafka's `ListOffsets` does, through the
//! partition's time index in metadata (keyed by the running maximum timestamp,
//! so non-monotonic timestamps are found exactly, however long the log).
//!
//! - [`TimestampQuery::AtLeast`]: the first record (by offset) whose timestamp is
//!   at least the one given. The time index names the first chunk whose running
//!   maximum reaches it; that chunk holds the record, and only it is read.
//! - [`TimestampQuery::Max`]: the first record holding the largest timestamp;
//!   the time index names the chunk where that maximum was first reached.
//!
//! When the log start cut or passed that chunk (`DeleteRecords`, retention),
//! the answer lies among the records kept: the search reads on from the log
//! start, page by page, skipping chunks whose largest timestamp cannot qualify.
//!
//! A search that finds an object gone (compaction moved its chunks, and the
//! garbage collector deleted it after the search looked at the index) runs
//! once more, as a fetch does.

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

/// Index entries read per page when a search reads on from the log start.
const PAGE: usize = 256;

impl PartitionLogs {
    /// Finds a committed record by timestamp among the records from the log
    /// start on (see the module docs). `None` when no record qualifies (or the
    /// log is empty).
    pub async fn find_by_timestamp(
        &self,
        partition: TopicPartition,
        query: TimestampQuery,
    ) -> Result<Option<TimestampHit>, LogError> {
        match self.search_by_timestamp(partition, query).await {
            // An object the index named is gone: compaction moved its chunks
            // and the garbage collector deleted it after this search's look
            // at the index. One more search reads where they are now.
            Err(LogError::Storage(error)) if error.kind() == fjord_storage::ErrorKind::NotFound => {
                self.search_by_timestamp(partition, query).await
            }
            found => found,
        }
    }

    /// One search: [`find_by_timestamp`](Self::find_by_timestamp) without
    /// the second look.
    async fn search_by_timestamp(
        &self,
        partition: TopicPartition,
        query: TimestampQuery,
    ) -> Result<Option<TimestampHit>, LogError> {
        let meta = |e| LogError::from_metadata(partition, e);
        match query {
            TimestampQuery::AtLeast(wanted) => {
                let lookup = self
                    .store
                    .lookup_by_timestamp(partition, wanted, 1)
                    .await
                    .map_err(meta)?;
                let state = lookup.state;
                let Some(first) = lookup.entries.first() else {
                    return Ok(None);
                };
                if !lookup.clamped {
                    // This chunk holds the first qualifying record, unless
                    // log compaction removed it: then it is further on.
                    if let Some(hit) = self
                        .first_matching(first, state.log_start_offset, wanted, false)
                        .await?
                    {
                        return Ok(Some(hit));
                    }
                    return self
                        .scan_from(
                            partition,
                            first.last_offset + 1,
                            state.log_start_offset,
                            wanted,
                            false,
                        )
                        .await;
                }
                self.scan_from(
                    partition,
                    first.base_offset,
                    state.log_start_offset,
                    wanted,
                    false,
                )
                .await
            }
            TimestampQuery::Max => {
                let lookup = self.store.max_timestamp(partition).await.map_err(meta)?;
                let log_start = lookup.state.log_start_offset;
                if let Some(max) = &lookup.max {
                    if let Some(hit) = self
                        .first_matching(&max.entry, log_start, max.timestamp, true)
                        .await?
                    {
                        return Ok(Some(hit));
                    }
                    // Log compaction removed the record holding the
                    // largest timestamp: look for the largest kept.
                } else if !lookup.below_log_start {
                    return Ok(None);
                }
                // The largest timestamp the log held was deleted: find the
                // largest kept, then its first record.
                let Some(largest) = self.largest_kept(partition, log_start).await? else {
                    return Ok(None);
                };
                self.scan_from(partition, log_start, log_start, largest, true)
                    .await
            }
        }
    }

    /// The first record of `entry`'s chunk from `log_start` on whose timestamp
    /// is at least `threshold` (equal to it when `exact`).
    async fn first_matching(
        &self,
        entry: &IndexEntry,
        log_start: i64,
        threshold: i64,
        exact: bool,
    ) -> Result<Option<TimestampHit>, LogError> {
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
        Ok(found.map(|(offset, timestamp)| TimestampHit {
            offset,
            timestamp,
            leader_epoch: entry.leader_epoch,
        }))
    }

    /// Reads on from `from`, page by page, for the first record from
    /// `log_start` on at or above `threshold` (equal to it when `exact`).
    async fn scan_from(
        &self,
        partition: TopicPartition,
        from: i64,
        log_start: i64,
        threshold: i64,
        exact: bool,
    ) -> Result<Option<TimestampHit>, LogError> {
        let mut pages = Pages::new(partition, from.max(log_start));
        while let Some(page) = pages.next(self).await? {
            for entry in page.iter().filter(|e| e.max_timestamp >= threshold) {
                if let Some(hit) = self
                    .first_matching(entry, log_start, threshold, exact)
                    .await?
                {
                    return Ok(Some(hit));
                }
            }
        }
        Ok(None)
    }

    /// The largest timestamp among the records from `log_start` on.
    async fn largest_kept(
        &self,
        partition: TopicPartition,
        log_start: i64,
    ) -> Result<Option<i64>, LogError> {
        let mut largest = None;
        let mut pages = Pages::new(partition, log_start);
        while let Some(page) = pages.next(self).await? {
            for entry in &page {
                // A chunk the log start cuts, or one log compaction cleaned
                // (fewer records than offsets), may owe its largest timestamp
                // to a deleted record: read the records kept.
                let cleaned =
                    i64::from(entry.record_count) < entry.last_offset - entry.base_offset + 1;
                let max = if entry.base_offset < log_start || cleaned {
                    self.records_from(entry, log_start, i64::MIN)
                        .await?
                        .iter()
                        .map(|(_, timestamp)| *timestamp)
                        .max()
                } else {
                    Some(entry.max_timestamp)
                };
                largest = largest.max(max);
            }
        }
        Ok(largest)
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
        for batch in records::parse_stored_batches(&bytes)? {
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

/// A partition's committed index entries, [`PAGE`] at a time, from an offset on.
#[derive(Debug)]
struct Pages {
    partition: TopicPartition,
    /// Where the next page starts; `None` once the last page was read.
    next: Option<i64>,
}

impl Pages {
    fn new(partition: TopicPartition, from: i64) -> Self {
        Self {
            partition,
            next: Some(from),
        }
    }

    /// The next page of entries below the high watermark, or `None` at the end.
    async fn next(&mut self, logs: &PartitionLogs) -> Result<Option<Vec<IndexEntry>>, LogError> {
        let Some(offset) = self.next else {
            return Ok(None);
        };
        let page = logs
            .store
            .lookup(self.partition, offset, PAGE)
            .await
            .map_err(|e| LogError::from_metadata(self.partition, e))?;
        let full = page.entries.len() == PAGE;
        let high_watermark = page.state.high_watermark;
        let entries: Vec<IndexEntry> = page
            .entries
            .into_iter()
            .filter(|e| e.base_offset < high_watermark)
            .collect();
        self.next = match entries.last() {
            Some(last) if full => Some(last.last_offset + 1),
            _ => None,
        };
        Ok((!entries.is_empty()).then_some(entries))
    }
}
