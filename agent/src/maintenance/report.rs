//! What the bucket holds and what the jobs still owe, from metadata (and,
//! when asked, a listing of the bucket): the numbers behind retention,
//! compaction and garbage collection. `fjord storage-report` prints them.

use std::collections::BTreeSet;
use std::fmt;

use fjord_metadata::{MetadataStore, SegmentId, TopicMeta, TopicPartition};
use serde::Serialize;

use super::compaction::CompactionSettings;
use super::orphans::SweepReport;

/// Index entries and segment records read per metadata transaction.
const PAGE: usize = 1_000;
/// Garbage records read at most.
const GARBAGE_LIMIT: usize = 100_000;

/// One partition's share of the bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionStorage {
    /// The topic's name.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// Its log start offset.
    pub log_start_offset: i64,
    /// Its high watermark.
    pub high_watermark: i64,
    /// Index entries from the log start on.
    pub index_entries: usize,
    /// Their chunks' bytes in the bucket.
    pub bytes: u64,
    /// The objects they lie in.
    pub objects: usize,
}

/// The whole report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StorageReport {
    /// Every partition of every topic.
    pub partitions: Vec<PartitionStorage>,
    /// Objects an index entry references (segment records).
    pub objects: usize,
    /// Their bytes.
    pub object_bytes: u64,
    /// Index entries of every partition.
    pub index_entries: usize,
    /// Objects small enough to compact and old enough to be due.
    pub compaction_backlog_objects: usize,
    /// Their bytes.
    pub compaction_backlog_bytes: u64,
    /// How long the oldest of them has been due, in milliseconds (0: none).
    pub compaction_lag_ms: i64,
    /// Compaction outputs registered and not swapped in yet.
    pub compaction_outputs_registered: usize,
    /// Objects no entry references, awaiting deletion.
    pub garbage_objects: usize,
    /// Their bytes.
    pub garbage_bytes: u64,
    /// How long ago the oldest of them was freed, in milliseconds (0: none).
    pub garbage_oldest_ms: i64,
    /// Deleted topics whose entries are still being released.
    pub deleted_topics_pending: usize,
    /// Orphans found by listing the bucket (objects, bytes), when asked.
    pub orphans: Option<(usize, u64)>,
    /// Job shards held, by the node id holding them (`-1`: nobody).
    pub job_shards: std::collections::BTreeMap<i32, usize>,
}

/// Partition `index` of `topic`'s share of the bucket: its index entries
/// from the log start on, read a page at a time.
pub async fn partition_storage(
    store: &MetadataStore,
    topic: &TopicMeta,
    index: i32,
) -> Result<PartitionStorage, fjord_metadata::MetadataError> {
    let partition = TopicPartition::new(topic.id, index);
    let mut row = PartitionStorage {
        topic: topic.name.clone(),
        partition: index,
        log_start_offset: 0,
        high_watermark: 0,
        index_entries: 0,
        bytes: 0,
        objects: 0,
    };
    let mut objects: BTreeSet<SegmentId> = BTreeSet::new();
    let mut offset = 0;
    loop {
        let lookup = store.lookup(partition, offset, PAGE).await?;
        row.log_start_offset = lookup.state.log_start_offset;
        row.high_watermark = lookup.state.high_watermark;
        let full = lookup.entries.len() == PAGE;
        for entry in &lookup.entries {
            row.index_entries += 1;
            row.bytes += entry.byte_length;
            objects.insert(entry.segment_id);
            offset = entry.last_offset + 1;
        }
        if !full {
            break;
        }
    }
    row.objects = objects.len();
    Ok(row)
}

/// Builds the report at `now_ms`, with `settings` saying what compaction
/// takes. `orphans` is a dry-run sweep's findings, if one was made.
pub async fn storage_report(
    store: &MetadataStore,
    settings: &CompactionSettings,
    now_ms: i64,
    orphans: Option<&SweepReport>,
) -> Result<StorageReport, fjord_metadata::MetadataError> {
    let mut report = StorageReport {
        orphans: orphans.map(|sweep| (sweep.orphans.len(), sweep.orphan_bytes)),
        ..StorageReport::default()
    };
    for topic in store.list_topics().await? {
        for index in 0..topic.partition_count {
            let row = partition_storage(store, &topic, index).await?;
            report.index_entries += row.index_entries;
            report.partitions.push(row);
        }
    }
    let min_age = i64::try_from(settings.min_age.as_millis()).unwrap_or(i64::MAX);
    let mut after = None;
    loop {
        let page = store.segment_records(after, PAGE).await?;
        let full = page.len() == PAGE;
        for (id, record) in &page {
            after = Some(*id);
            report.objects += 1;
            report.object_bytes += record.object_size;
            let age = now_ms.saturating_sub(i64::try_from(id.0.timestamp_ms()).unwrap_or(0));
            if record.object_size < settings.small_object_bytes && age >= min_age {
                report.compaction_backlog_objects += 1;
                report.compaction_backlog_bytes += record.object_size;
                report.compaction_lag_ms = report.compaction_lag_ms.max(age - min_age);
            }
        }
        if !full {
            break;
        }
    }
    report.compaction_outputs_registered = store.compaction_outputs().await?.len();
    for garbage in store.garbage_objects(GARBAGE_LIMIT).await? {
        report.garbage_objects += 1;
        report.garbage_bytes += garbage.object_size;
        report.garbage_oldest_ms = report
            .garbage_oldest_ms
            .max(now_ms.saturating_sub(garbage.freed_at_ms));
    }
    report.deleted_topics_pending = store.deleted_topics().await?.len();
    for shard in store.job_shards().await? {
        *report
            .job_shards
            .entry(shard.holder.unwrap_or(-1))
            .or_default() += 1;
    }
    Ok(report)
}

impl fmt::Display for StorageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<32} {:>9} {:>14} {:>14} {:>9} {:>14} {:>8}",
            "TOPIC", "PARTITION", "LOG-START", "HIGH-WATERMARK", "ENTRIES", "BYTES", "OBJECTS"
        )?;
        for row in &self.partitions {
            writeln!(
                f,
                "{:<32} {:>9} {:>14} {:>14} {:>9} {:>14} {:>8}",
                row.topic,
                row.partition,
                row.log_start_offset,
                row.high_watermark,
                row.index_entries,
                row.bytes,
                row.objects
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "objects referenced: {} ({} bytes), index entries: {}",
            self.objects, self.object_bytes, self.index_entries
        )?;
        writeln!(
            f,
            "compaction backlog: {} objects ({} bytes), lag {} ms, outputs registered: {}",
            self.compaction_backlog_objects,
            self.compaction_backlog_bytes,
            self.compaction_lag_ms,
            self.compaction_outputs_registered
        )?;
        writeln!(
            f,
            "garbage: {} objects ({} bytes), oldest freed {} ms ago; deleted topics pending: {}",
            self.garbage_objects,
            self.garbage_bytes,
            self.garbage_oldest_ms,
            self.deleted_topics_pending
        )?;
        let holders: Vec<String> = self
            .job_shards
            .iter()
            .map(|(holder, count)| match holder {
                -1 => format!("{count} held by nobody"),
                node => format!("{count} by node {node}"),
            })
            .collect();
        writeln!(f, "job shards: {}", holders.join(", "))?;
        match self.orphans {
            Some((count, bytes)) => writeln!(f, "orphans found: {count} ({bytes} bytes)"),
            None => writeln!(f, "orphans: not looked for (--orphans lists the bucket)"),
        }
    }
}
