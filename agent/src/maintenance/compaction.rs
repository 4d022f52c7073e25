//! Object compaction: small segment objects merged into large ones.
//!
//! Every flush writes one object holding a chunk of each partition it
//! carried, so a busy cluster leaves many small objects, each partition's
//! data spread over all of them, and one index entry per partition per
//! flush. Compaction rewrites them: it reads small objects whole (one GET
//! each), keeps the chunks the index still points at, merges each
//! partition's consecutive chunks of one leader epoch into one chunk (the
//! stored payloads concatenated: no decompression, no recompression, see
//! [`fjord_storage::SegmentWriter::add_stored`]) and writes them into a large
//! object; a partition with much data in the run gets an object of its own.
//! Then, per output object (the protocol is `fjord_metadata`'s `compaction`
//! module):
//!
//! 1. register the output in metadata,
//! 2. upload it,
//! 3. swap the index entries over in one transaction, per partition only
//!    where its entries are still the ones read (retention, `DeleteRecords`
//!    or a topic deletion may have changed them meanwhile).
//!
//! The old objects become garbage with their last reference and are deleted
//! by the retention job's garbage collector after the grace period, so a
//! reader that found an old entry still reads it. A compactor that dies
//! between 1 and 3 leaves a registration that expires to garbage after
//! [`MAX_COMMIT_AGE_MS`] (and a swap that late is refused).
//!
//! An object larger than all the other candidates of a run together is left
//! out of it ([`worth_merging`]), so a byte is rewritten only when its object
//! at least doubles.
//!
//! What is not compacted: objects younger than `--object-compaction-min-age-ms`
//! (readers of the tail are served from memory and the disk cache anyway),
//! chunks below a partition's log start (retention frees them), and chunks
//! whose records expire by `retention.ms` within [`EXPIRY_HORIZON`]: effort on
//! data about to go is wasted.
//!
//! A second stage then walks each partition's index: its consecutive small
//! entries in large objects (a first-stage run gives each partition only a
//! few MiB when there are many partitions) are read with one ranged GET per
//! object and merged into chunks of up to `max_chunk_bytes`, in an object of
//! the partition's own when it has `partition_object_bytes` to merge, else in
//! one shared with other such partitions.
//!
//! One agent compacts for the whole cluster: the jobs agent holding job
//! shard 0 ([`super::leases::BUCKET_SHARD`], as for the orphan sweep). A run reads at most
//! `--object-compaction-run-bytes`, which bounds its memory to about twice
//! that.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_common::{Clock, IdGenerator};
use fjord_metadata::{
    CompactedInput, CompactionSwap, IndexEntry, MAX_COMMIT_AGE_MS, MetadataError, MetadataStore,
    PartitionState, PartitionSwap, SegmentId, SegmentRecord, TopicId, TopicPartition,
};
use fjord_storage::{
    ChunkMeta, ObjectKeys, SegmentFooter, SegmentWriter, StoredChunk, TailDecode, WriterOptions,
};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio_util::sync::CancellationToken;

use super::leases::{BUCKET_SHARD, JobLeases};
use super::retention::{self, RetentionSettings};
use crate::faults::crash_point;

/// Chunks whose records expire within this are not compacted.
pub const EXPIRY_HORIZON: Duration = Duration::from_secs(3_600);
/// Segment records read per metadata transaction while looking for small
/// objects.
const SCAN_PAGE: usize = 1_000;
/// Index entries checked per metadata transaction.
const CHECK_BATCH: usize = 1_000;
/// Objects fetched at once.
const FETCH_CONCURRENCY: usize = 8;
/// Index entries read per metadata transaction by the second stage.
const ENTRY_PAGE: usize = 1_000;
/// Stale registrations expired per pass.
const EXPIRE_BATCH: usize = 100;
/// The most chunks copied into one shared output (well below the format's
/// `MAX_CHUNKS`).
const SHARED_OUTPUT_CHUNKS: usize = 100_000;

/// Object compaction's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionSettings {
    /// How often a pass runs (zero: never).
    pub interval: Duration,
    /// Objects younger than this (by their segment id) are left alone.
    pub min_age: Duration,
    /// Objects smaller than this are compacted.
    pub small_object_bytes: u64,
    /// The most bytes of small objects one run reads.
    pub run_bytes: u64,
    /// The most bytes of batches one merged chunk holds.
    pub max_chunk_bytes: u64,
    /// A partition's small entries in large objects are merged once they
    /// hold this many stored bytes (the second stage).
    pub partition_merge_bytes: u64,
    /// A partition with at least this many stored bytes to merge gets an
    /// object of its own.
    pub partition_object_bytes: u64,
}

impl Default for CompactionSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(60),
            min_age: Duration::from_secs(300),
            small_object_bytes: 32 << 20,
            run_bytes: 128 << 20,
            max_chunk_bytes: 16 << 20,
            partition_merge_bytes: 4 << 20,
            partition_object_bytes: 64 << 20,
        }
    }
}

/// What compaction did (one run, or a pass: the sum of its runs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CompactionReport {
    /// Small objects read.
    pub objects_read: usize,
    /// Their bytes.
    pub bytes_read: u64,
    /// Objects written.
    pub objects_written: usize,
    /// Their bytes.
    pub bytes_written: u64,
    /// Index entries replaced.
    pub entries_removed: usize,
    /// Index entries written in their place.
    pub entries_written: usize,
    /// Old objects that lost their last reference (garbage now).
    pub objects_freed: usize,
    /// Partition ranges left alone because their entries changed meanwhile.
    pub ranges_skipped: usize,
    /// Registrations of outputs never swapped in, expired to garbage.
    pub outputs_expired: usize,
}

impl CompactionReport {
    fn add(&mut self, other: &CompactionReport) {
        self.objects_read += other.objects_read;
        self.bytes_read += other.bytes_read;
        self.objects_written += other.objects_written;
        self.bytes_written += other.bytes_written;
        self.entries_removed += other.entries_removed;
        self.entries_written += other.entries_written;
        self.objects_freed += other.objects_freed;
        self.ranges_skipped += other.ranges_skipped;
        self.outputs_expired += other.outputs_expired;
    }
}

/// The compaction job of one agent.
#[derive(Debug, Clone)]
pub struct Compaction {
    store: MetadataStore,
    objects: Arc<dyn ObjectStore>,
    keys: ObjectKeys,
    leases: Arc<JobLeases>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    settings: CompactionSettings,
    retention: RetentionSettings,
}

/// A small object picked for a run.
#[derive(Debug, Clone)]
struct Candidate {
    id: SegmentId,
    record: SegmentRecord,
}

/// A chunk still live, read from a small object.
#[derive(Debug, Clone)]
struct LiveChunk {
    partition: TopicPartition,
    /// Its index entry, as read.
    entry: IndexEntry,
    /// What the chunk must hold (from its object's footer, or its index
    /// entry).
    expected: ChunkMeta,
    /// The chunk, header included.
    bytes: Bytes,
}

/// Ranges of several partitions waiting to fill a shared output.
#[derive(Debug, Default)]
struct Shared {
    ranges: Vec<Range>,
    bytes: u64,
}

/// A partition's consecutive live chunks, replaced together.
#[derive(Debug, Clone)]
struct Range {
    partition: TopicPartition,
    chunks: Vec<LiveChunk>,
}

impl Range {
    fn stored_bytes(&self) -> u64 {
        self.chunks.iter().map(|c| c.bytes.len() as u64).sum()
    }
}

impl Compaction {
    /// The job over these components.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: MetadataStore,
        objects: Arc<dyn ObjectStore>,
        keys: ObjectKeys,
        leases: Arc<JobLeases>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        settings: CompactionSettings,
        retention: RetentionSettings,
    ) -> Self {
        Self {
            store,
            objects,
            keys,
            leases,
            clock,
            ids,
            settings,
            retention,
        }
    }

    /// Runs a pass every interval until `shutdown` (never, if the interval is
    /// zero), while this agent holds the bucket-wide job shard.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let interval = self.settings.interval;
        let job = &self;
        super::run_every("object compaction", interval, shutdown, || async move {
            match job.leases.refresh().await {
                Ok(held) if held.holds(BUCKET_SHARD) => Some(job.pass().await),
                Ok(_) => None,
                Err(error) => {
                    tracing::warn!(%error, "job leases not refreshed; compaction retries next interval");
                    None
                }
            }
        })
        .await
    }

    /// One pass: expires stale registrations, then runs until no two small
    /// objects old enough are left.
    pub async fn pass(&self) -> anyhow::Result<CompactionReport> {
        let mut report = CompactionReport {
            outputs_expired: self
                .store
                .expire_compaction_outputs(self.clock.now_millis(), MAX_COMMIT_AGE_MS, EXPIRE_BATCH)
                .await?,
            ..CompactionReport::default()
        };
        let mut after = None;
        loop {
            let (candidates, next) = self.candidates(after).await?;
            let candidates = worth_merging(candidates);
            if candidates.len() >= 2 {
                let run = self.run_once(&candidates).await?;
                report.add(&run);
            }
            match next {
                Some(next) => after = Some(next),
                None => break,
            }
        }
        self.consolidate(&mut report).await?;
        Ok(report)
    }

    /// The second stage: each partition's consecutive small entries in large
    /// objects (what the first stage wrote: a few MiB per partition per run)
    /// are merged into chunks of up to `max_chunk_bytes`, so a catch-up read
    /// of a partition takes few GETs and its index few entries. A partition
    /// with `partition_object_bytes` or more to merge gets an object of its
    /// own; the others share objects of up to the run's bytes.
    async fn consolidate(&self, report: &mut CompactionReport) -> anyhow::Result<()> {
        let mut shared = Shared::default();
        for topic in self.store.list_topics().await? {
            let retention_ms =
                retention::limits_of(&topic, &self.retention).and_then(|limits| limits.max_age_ms);
            for index in 0..topic.partition_count {
                let partition = TopicPartition::new(topic.id, index);
                // One partition's failure (deleted meanwhile, a metadata
                // hiccup) does not hold up the others.
                if let Err(error) = self
                    .consolidate_partition(partition, retention_ms, &mut shared, report)
                    .await
                {
                    tracing::warn!(%partition, %error, "consolidating a partition failed; retrying next pass");
                }
            }
        }
        if !shared.ranges.is_empty() {
            self.write(shared.ranges, report).await?;
        }
        Ok(())
    }

    /// Finds `partition`'s runs of consecutive mergeable entries (see
    /// [`Compaction::mergeable`]), reads those worth it, and writes them
    /// alone or adds them to `shared` (written once it holds the run's
    /// bytes).
    async fn consolidate_partition(
        &self,
        partition: TopicPartition,
        retention_ms: Option<i64>,
        shared: &mut Shared,
        report: &mut CompactionReport,
    ) -> anyhow::Result<()> {
        let mut offset = 0;
        let mut run: Vec<IndexEntry> = Vec::new();
        let mut runs: Vec<Vec<IndexEntry>> = Vec::new();
        let mut run_bytes = 0u64;
        loop {
            let lookup = self.store.lookup(partition, offset, ENTRY_PAGE).await?;
            let full = lookup.entries.len() == ENTRY_PAGE;
            for entry in lookup.entries {
                offset = entry.last_offset + 1;
                let follows = run
                    .last()
                    .is_none_or(|last| last.last_offset + 1 == entry.base_offset);
                let mergeable = self.mergeable(&entry, retention_ms);
                if !follows || !mergeable || run_bytes >= self.settings.run_bytes {
                    runs.extend(self.worth_rewriting(std::mem::take(&mut run)));
                    run_bytes = 0;
                    if !mergeable {
                        continue;
                    }
                }
                run_bytes += entry.byte_length;
                run.push(entry);
            }
            if !full {
                break;
            }
        }
        runs.extend(self.worth_rewriting(run));
        for run in runs {
            let ranges = self.fetch(partition, run, report).await?;
            let bytes: u64 = ranges.iter().map(Range::stored_bytes).sum();
            if bytes >= self.settings.partition_object_bytes {
                self.write(ranges, report).await?;
                continue;
            }
            shared.bytes += bytes;
            shared.ranges.extend(ranges);
            if shared.bytes >= self.settings.run_bytes {
                let ranges = std::mem::take(&mut shared.ranges);
                shared.bytes = 0;
                self.write(ranges, report).await?;
            }
        }
        Ok(())
    }

    /// `run` if rewriting it is worth it: without its leading entries when
    /// their object holds more of it than the rest together (an object
    /// written before is not rewritten to add a little), then only if it
    /// spans two objects or more and holds `partition_merge_bytes`.
    fn worth_rewriting(&self, mut run: Vec<IndexEntry>) -> Option<Vec<IndexEntry>> {
        let first_key = run.first()?.object_key.clone();
        let leading = run.iter().take_while(|e| e.object_key == first_key).count();
        let leading_bytes: u64 = run[..leading].iter().map(|e| e.byte_length).sum();
        let total: u64 = run.iter().map(|e| e.byte_length).sum();
        if leading_bytes > total - leading_bytes {
            run.drain(..leading);
        }
        let bytes: u64 = run.iter().map(|e| e.byte_length).sum();
        let objects: std::collections::BTreeSet<&str> =
            run.iter().map(|e| e.object_key.as_str()).collect();
        (objects.len() >= 2 && bytes >= self.settings.partition_merge_bytes).then_some(run)
    }

    /// Whether an entry may be merged by the second stage: small, in an
    /// object the first stage does not take, old enough, not about to expire.
    fn mergeable(&self, entry: &IndexEntry, retention_ms: Option<i64>) -> bool {
        let now = self.clock.now_millis();
        let born = i64::try_from(entry.segment_id.0.timestamp_ms()).unwrap_or(i64::MAX);
        let min_age = i64::try_from(self.settings.min_age.as_millis()).unwrap_or(i64::MAX);
        let horizon = i64::try_from(EXPIRY_HORIZON.as_millis()).unwrap_or(i64::MAX);
        entry.byte_length < self.settings.max_chunk_bytes / 4
            && entry.object_size >= self.settings.small_object_bytes
            && now.saturating_sub(born) >= min_age
            && retention_ms.is_none_or(|ms| {
                entry.max_timestamp.saturating_add(ms) >= now.saturating_add(horizon)
            })
    }

    /// Reads the chunks of `entries` (consecutive, one partition's): one
    /// ranged GET per object for the entries that lie side by side in it.
    async fn fetch(
        &self,
        partition: TopicPartition,
        entries: Vec<IndexEntry>,
        report: &mut CompactionReport,
    ) -> anyhow::Result<Vec<Range>> {
        let mut spans: Vec<(String, u64, u64, Vec<IndexEntry>)> = Vec::new();
        let mut by_object: BTreeMap<String, Vec<IndexEntry>> = BTreeMap::new();
        for entry in entries {
            by_object
                .entry(entry.object_key.clone())
                .or_default()
                .push(entry);
        }
        for (key, mut entries) in by_object {
            entries.sort_by_key(|e| e.byte_offset);
            for entry in entries {
                match spans.last_mut() {
                    Some((span_key, _, end, members))
                        if *span_key == key && *end == entry.byte_offset =>
                    {
                        *end += entry.byte_length;
                        members.push(entry);
                    }
                    _ => spans.push((
                        key.clone(),
                        entry.byte_offset,
                        entry.byte_offset + entry.byte_length,
                        vec![entry],
                    )),
                }
            }
        }
        let objects: std::collections::BTreeSet<&String> =
            spans.iter().map(|(key, ..)| key).collect();
        report.objects_read += objects.len();
        let fetched: Vec<(Bytes, u64, Vec<IndexEntry>)> = futures::stream::iter(spans)
            .map(|(key, start, end, members)| async move {
                let bytes = self
                    .objects
                    .get_range(&Path::from(key.as_str()), start..end)
                    .await?;
                Ok::<_, object_store::Error>((bytes, start, members))
            })
            .buffer_unordered(FETCH_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let mut live = Vec::new();
        for (bytes, start, members) in fetched {
            report.bytes_read += bytes.len() as u64;
            for entry in members {
                let from = usize::try_from(entry.byte_offset - start)?;
                let to = from + usize::try_from(entry.byte_length)?;
                let chunk = bytes
                    .get(from..to)
                    .map(|_| bytes.slice(from..to))
                    .ok_or_else(|| anyhow::anyhow!("a ranged GET returned too few bytes"))?;
                live.push(LiveChunk {
                    partition,
                    expected: ChunkMeta {
                        topic_id: partition.topic_id.0,
                        partition: partition.partition,
                        first_offset: entry.base_offset,
                        last_offset: entry.last_offset,
                        record_count: entry.record_count,
                        max_timestamp: entry.max_timestamp,
                    },
                    entry,
                    bytes: chunk,
                });
            }
        }
        Ok(ranges_of(live))
    }

    /// Small objects old enough to compact, oldest first, after `after`, up
    /// to the run's bytes; and where the next run continues (`None`: the scan
    /// reached objects too young or the end).
    async fn candidates(
        &self,
        mut after: Option<SegmentId>,
    ) -> Result<(Vec<Candidate>, Option<SegmentId>), MetadataError> {
        let now = self.clock.now_millis();
        let min_age = i64::try_from(self.settings.min_age.as_millis()).unwrap_or(i64::MAX);
        let mut picked = Vec::new();
        let mut bytes = 0u64;
        loop {
            let page = self.store.segment_records(after, SCAN_PAGE).await?;
            let full = page.len() == SCAN_PAGE;
            for (id, record) in page {
                after = Some(id);
                let born = i64::try_from(id.0.timestamp_ms()).unwrap_or(i64::MAX);
                if now.saturating_sub(born) < min_age {
                    return Ok((picked, None));
                }
                if record.object_size >= self.settings.small_object_bytes || record.live_chunks == 0
                {
                    continue;
                }
                bytes = bytes.saturating_add(record.object_size);
                picked.push(Candidate { id, record });
                if bytes >= self.settings.run_bytes {
                    return Ok((picked, after));
                }
            }
            if !full {
                return Ok((picked, None));
            }
        }
    }

    /// Compacts `candidates`.
    async fn run_once(&self, candidates: &[Candidate]) -> anyhow::Result<CompactionReport> {
        let mut report = CompactionReport::default();
        let fetched: Vec<(Candidate, Option<Bytes>)> = futures::stream::iter(candidates.to_vec())
            .map(|candidate| async move {
                let path = Path::from(candidate.record.object_key.as_str());
                let got = match self.objects.get(&path).await {
                    Ok(got) => got.bytes().await.map(Some),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(error) => Err(error),
                };
                got.map(|bytes| (candidate, bytes))
            })
            .buffer_unordered(FETCH_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<Result<_, _>>()?;
        let mut chunks = Vec::new();
        for (candidate, bytes) in fetched {
            let Some(bytes) = bytes else {
                // Freed and deleted since the scan.
                continue;
            };
            report.objects_read += 1;
            report.bytes_read += bytes.len() as u64;
            chunks.extend(chunks_of(&candidate, bytes)?);
        }
        let live = self.live(chunks).await?;
        let ranges = ranges_of(live);
        for output in self.outputs(ranges) {
            self.write(output, &mut report).await?;
        }
        Ok(report)
    }

    /// The chunks among `chunks` whose index entry still points at them,
    /// above the log start, and not about to expire.
    async fn live(
        &self,
        chunks: Vec<(SegmentId, fjord_storage::ChunkEntry, Bytes)>,
    ) -> anyhow::Result<Vec<LiveChunk>> {
        let now = self.clock.now_millis();
        let horizon = i64::try_from(EXPIRY_HORIZON.as_millis()).unwrap_or(i64::MAX);
        let mut retention_of: HashMap<TopicId, Option<i64>> = HashMap::new();
        let mut live = Vec::new();
        for batch in chunks.chunks(CHECK_BATCH) {
            let at: Vec<(TopicPartition, i64)> = batch
                .iter()
                .map(|(_, entry, _)| (partition_of(entry), entry.meta.last_offset))
                .collect();
            let (entries, states) = self.store.index_entries_at(&at).await?;
            for ((segment_id, footer_entry, bytes), current) in batch.iter().zip(entries) {
                let partition = partition_of(footer_entry);
                let Some(entry) = current else { continue };
                let Some(state) = states.get(&partition) else {
                    continue;
                };
                if entry.segment_id != *segment_id
                    || entry.byte_offset != footer_entry.byte_offset
                    || below_log_start(&entry, state)
                {
                    continue;
                }
                let retention_ms = match retention_of.get(&partition.topic_id) {
                    Some(ms) => *ms,
                    None => {
                        let ms = self.retention_ms(partition.topic_id).await;
                        retention_of.insert(partition.topic_id, ms);
                        ms
                    }
                };
                if let Some(ms) = retention_ms
                    && entry.max_timestamp.saturating_add(ms) < now.saturating_add(horizon)
                {
                    continue;
                }
                live.push(LiveChunk {
                    partition,
                    entry,
                    expected: footer_entry.meta,
                    bytes: bytes.clone(),
                });
            }
        }
        Ok(live)
    }

    /// A topic's `retention.ms` when its policy deletes (`None`: kept
    /// forever, or the topic is gone: then its chunks are not live anyway).
    async fn retention_ms(&self, topic_id: TopicId) -> Option<i64> {
        let meta = self.store.topic_by_id(topic_id).await.ok()?;
        retention::limits_of(&meta, &self.retention)?.max_age_ms
    }

    /// The output objects: each partition with enough data alone, the others
    /// together.
    fn outputs(&self, ranges: Vec<Range>) -> Vec<Vec<Range>> {
        let mut per_partition: BTreeMap<TopicPartition, Vec<Range>> = BTreeMap::new();
        for range in ranges {
            per_partition
                .entry(range.partition)
                .or_default()
                .push(range);
        }
        let mut outputs = Vec::new();
        let mut shared: Vec<Range> = Vec::new();
        let mut shared_chunks = 0;
        for (_, ranges) in per_partition {
            let bytes: u64 = ranges.iter().map(Range::stored_bytes).sum();
            if bytes >= self.settings.partition_object_bytes {
                outputs.push(ranges);
                continue;
            }
            // The run's input bounds the shared object's bytes; only its
            // chunk count needs a bound (a footer entry per chunk).
            let chunks: usize = ranges.iter().map(|r| r.chunks.len()).sum();
            if shared_chunks + chunks > SHARED_OUTPUT_CHUNKS && !shared.is_empty() {
                outputs.push(std::mem::take(&mut shared));
                shared_chunks = 0;
            }
            shared_chunks += chunks;
            shared.extend(ranges);
        }
        if !shared.is_empty() {
            outputs.push(shared);
        }
        outputs
    }

    /// Builds, registers, uploads and swaps in one output object.
    async fn write(&self, ranges: Vec<Range>, report: &mut CompactionReport) -> anyhow::Result<()> {
        let segment_id = SegmentId(self.ids.ulid(self.clock.now_millis()));
        let key = self.keys.segment(segment_id.0);
        let max_chunk = self.settings.max_chunk_bytes;
        let (encoded, swaps) =
            tokio::task::spawn_blocking(move || build(segment_id, ranges, max_chunk))
                .await
                .map_err(|e| match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(cancelled) => anyhow::anyhow!("building a compacted object: {cancelled}"),
                })??;
        let object_size = encoded.bytes.len() as u64;
        self.store
            .register_compaction_output(segment_id, key.as_str(), self.clock.now_millis())
            .await?;
        crash_point("compaction-registered");
        self.objects
            .put(&Path::from(key.as_str()), encoded.bytes.into())
            .await?;
        crash_point("compaction-uploaded");
        let object_key = key.into_string();
        let swap = CompactionSwap {
            segment_id,
            object_key: object_key.clone(),
            object_size,
            partitions: swaps
                .into_iter()
                .map(|(partition, inputs, outputs)| PartitionSwap {
                    partition,
                    inputs,
                    outputs: outputs
                        .into_iter()
                        .map(|(entry, epoch)| IndexEntry {
                            base_offset: entry.meta.first_offset,
                            last_offset: entry.meta.last_offset,
                            record_count: entry.meta.record_count,
                            max_timestamp: entry.meta.max_timestamp,
                            leader_epoch: epoch,
                            segment_id,
                            object_key: object_key.clone(),
                            byte_offset: entry.byte_offset,
                            byte_length: entry.byte_length,
                            object_size,
                        })
                        .collect(),
                })
                .collect(),
        };
        let outcome = self
            .store
            .swap_compacted(&swap, self.clock.now_millis())
            .await?;
        crash_point("compaction-swapped");
        report.objects_written += 1;
        report.bytes_written += object_size;
        report.entries_removed += outcome.entries_removed;
        report.entries_written += outcome.entries_written;
        report.objects_freed += outcome.objects_freed;
        report.ranges_skipped += outcome.skipped.len();
        Ok(())
    }
}

/// `candidates` without the objects that would be rewritten for little:
/// while the largest is larger than all the others together, it is left out.
/// So a byte is rewritten only when its object at least doubles, which bounds
/// what compaction writes per byte by log2(small object bytes / flush size)
/// even when data trickles in, and an output is never rewritten alone.
fn worth_merging(mut candidates: Vec<Candidate>) -> Vec<Candidate> {
    candidates.sort_by_key(|c| std::cmp::Reverse(c.record.object_size));
    let mut total: u64 = candidates.iter().map(|c| c.record.object_size).sum();
    while let Some(largest) = candidates.first() {
        let size = largest.record.object_size;
        if size <= total - size {
            break;
        }
        total -= size;
        candidates.remove(0);
    }
    candidates
}

/// What [`build`] returns for each range: the partition, the entries it
/// replaces, and the new chunks' footer entries with their epoch.
type RangeSwap = (
    TopicPartition,
    Vec<CompactedInput>,
    Vec<(fjord_storage::ChunkEntry, i32)>,
);

/// Encodes `ranges` into one object: each range's chunks merged into chunks
/// of one epoch and codec, of at most `max_chunk` bytes of batches.
fn build(
    segment_id: SegmentId,
    ranges: Vec<Range>,
    max_chunk: u64,
) -> anyhow::Result<(fjord_storage::EncodedSegment, Vec<RangeSwap>)> {
    let mut writer = SegmentWriter::new(segment_id.0, WriterOptions::uncompressed())?;
    // The epoch of each merged chunk, by (partition, first offset).
    let mut epochs: HashMap<(TopicPartition, i64), i32> = HashMap::new();
    let mut inputs: Vec<(TopicPartition, Vec<CompactedInput>, i64, i64)> = Vec::new();
    for range in ranges {
        let (Some(first), Some(last)) = (range.chunks.first(), range.chunks.last()) else {
            continue;
        };
        inputs.push((
            range.partition,
            range
                .chunks
                .iter()
                .map(|c| CompactedInput {
                    last_offset: c.entry.last_offset,
                    segment_id: c.entry.segment_id,
                    byte_offset: c.entry.byte_offset,
                })
                .collect(),
            first.entry.base_offset,
            last.entry.last_offset,
        ));
        let mut group: Vec<StoredChunk> = Vec::new();
        let mut group_epoch = first.entry.leader_epoch;
        let mut group_bytes = 0u64;
        for live in range.chunks {
            // Checked here, off the async workers: the payload's checksum,
            // and that the chunk is the one expected.
            let chunk = fjord_storage::stored_chunk(live.bytes)?;
            if chunk.meta != live.expected {
                anyhow::bail!(
                    "a chunk of segment {} at {} is not the one its entry describes",
                    live.entry.segment_id,
                    live.entry.byte_offset
                );
            }
            let joins = group.last().is_some_and(|previous: &StoredChunk| {
                previous.codec == chunk.codec
                    && group_epoch == live.entry.leader_epoch
                    && group_bytes + chunk.uncompressed_length <= max_chunk
            });
            if !joins && let Some(head) = group.first() {
                epochs.insert((range.partition, head.meta.first_offset), group_epoch);
                writer.add_stored(std::mem::take(&mut group))?;
                group_bytes = 0;
            }
            group_epoch = live.entry.leader_epoch;
            group_bytes += chunk.uncompressed_length;
            group.push(chunk);
        }
        if let Some(head) = group.first() {
            epochs.insert((range.partition, head.meta.first_offset), group_epoch);
            writer.add_stored(group)?;
        }
    }
    let encoded = writer.finish()?;
    let mut swaps = Vec::with_capacity(inputs.len());
    for (partition, range_inputs, first, last) in inputs {
        let outputs = encoded
            .footer
            .entries()
            .iter()
            .filter(|entry| {
                partition_of(entry) == partition
                    && entry.meta.first_offset >= first
                    && entry.meta.last_offset <= last
            })
            .map(|entry| {
                let epoch = epochs
                    .get(&(partition, entry.meta.first_offset))
                    .copied()
                    .unwrap_or(-1);
                (*entry, epoch)
            })
            .collect();
        swaps.push((partition, range_inputs, outputs));
    }
    Ok((encoded, swaps))
}

/// The chunks of a small object, each with its footer entry and bytes.
fn chunks_of(
    candidate: &Candidate,
    object: Bytes,
) -> anyhow::Result<Vec<(SegmentId, fjord_storage::ChunkEntry, Bytes)>> {
    let footer = match SegmentFooter::decode_tail(&object, object.len() as u64)? {
        TailDecode::Footer(footer) => footer,
        TailDecode::NeedLongerTail { .. } => {
            anyhow::bail!("segment {} is shorter than its footer says", candidate.id)
        }
    };
    if footer.segment_id() != candidate.id.0 {
        anyhow::bail!(
            "object {} holds segment {}",
            candidate.record.object_key,
            footer.segment_id()
        );
    }
    footer
        .entries()
        .iter()
        .map(|entry| {
            let range = entry.byte_range();
            let bytes = usize::try_from(range.start)
                .ok()
                .zip(usize::try_from(range.end).ok())
                .filter(|(start, end)| start <= end && *end <= object.len())
                .map(|(start, end)| object.slice(start..end))
                .ok_or_else(|| {
                    anyhow::anyhow!("a chunk of segment {} lies outside it", candidate.id)
                })?;
            Ok((candidate.id, *entry, bytes))
        })
        .collect()
}

/// Live chunks grouped by partition into ranges of consecutive offsets.
fn ranges_of(mut live: Vec<LiveChunk>) -> Vec<Range> {
    live.sort_by_key(|c| (c.partition, c.entry.base_offset));
    let mut ranges: Vec<Range> = Vec::new();
    for chunk in live {
        match ranges.last_mut() {
            Some(range)
                if range.partition == chunk.partition
                    && range.chunks.last().is_some_and(|last| {
                        last.entry.last_offset + 1 == chunk.entry.base_offset
                    }) =>
            {
                range.chunks.push(chunk);
            }
            _ => ranges.push(Range {
                partition: chunk.partition,
                chunks: vec![chunk],
            }),
        }
    }
    ranges
}

fn partition_of(entry: &fjord_storage::ChunkEntry) -> TopicPartition {
    TopicPartition::new(TopicId(entry.meta.topic_id), entry.meta.partition)
}

/// Whether the entry lies wholly below the partition's log start (retention
/// releases it).
fn below_log_start(entry: &IndexEntry, state: &PartitionState) -> bool {
    entry.last_offset < state.log_start_offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_storage::{Codec, EncodedSegment};

    const TOPIC: u128 = 7;

    fn partition() -> TopicPartition {
        TopicPartition::new(TopicId(uuid::Uuid::from_u128(TOPIC)), 0)
    }

    /// One small object per (first, last, compressible) chunk.
    fn object(first: i64, last: i64, compressible: bool) -> EncodedSegment {
        let id = fjord_common::RandomIds::new().ulid(1_700_000_000_000 + first);
        let mut writer = SegmentWriter::new(id, WriterOptions::zstd(3)).expect("options");
        let batches = if compressible {
            Bytes::from(format!("records {first}..{last} ").repeat(40))
        } else {
            Bytes::from(
                (0..200u32)
                    .map(|i| (i * 7919 % 251) as u8)
                    .collect::<Vec<_>>(),
            )
        };
        let meta = ChunkMeta {
            topic_id: uuid::Uuid::from_u128(TOPIC),
            partition: 0,
            first_offset: first,
            last_offset: last,
            record_count: u32::try_from(last - first + 1).expect("small"),
            max_timestamp: first,
        };
        writer.add_chunk(meta, batches).expect("chunk");
        writer.finish().expect("object")
    }

    fn live(object: &EncodedSegment, epoch: i32) -> LiveChunk {
        let footer = object.footer.entries()[0];
        let range = footer.byte_range();
        LiveChunk {
            partition: partition(),
            entry: IndexEntry {
                base_offset: footer.meta.first_offset,
                last_offset: footer.meta.last_offset,
                record_count: footer.meta.record_count,
                max_timestamp: footer.meta.max_timestamp,
                leader_epoch: epoch,
                segment_id: SegmentId(object.footer.segment_id()),
                object_key: String::new(),
                byte_offset: footer.byte_offset,
                byte_length: footer.byte_length,
                object_size: object.bytes.len() as u64,
            },
            expected: footer.meta,
            bytes: object.bytes.slice(range.start as usize..range.end as usize),
        }
    }

    /// The merged chunks of a build: (first, last, codec, epoch).
    fn built(chunks: Vec<LiveChunk>, max_chunk: u64) -> Vec<(i64, i64, Codec, i32)> {
        let out = SegmentId(fjord_common::RandomIds::new().ulid(1_700_000_001_000));
        let (encoded, swaps) = build(out, ranges_of(chunks), max_chunk).expect("a build");
        let decoded = fjord_storage::decode_segment(encoded.bytes).expect("a sound object");
        assert_eq!(swaps.len(), 1, "one consecutive range");
        let (_, inputs, outputs) = &swaps[0];
        assert_eq!(inputs.len(), 5);
        assert_eq!(outputs.len(), decoded.footer.entries().len());
        outputs
            .iter()
            .map(|(entry, epoch)| {
                (
                    entry.meta.first_offset,
                    entry.meta.last_offset,
                    entry.codec,
                    *epoch,
                )
            })
            .collect()
    }

    #[test]
    fn merged_chunks_keep_to_one_epoch_one_codec_and_the_size_bound() {
        let objects = [
            (object(0, 1, true), 1),
            (object(2, 3, true), 1),
            (object(4, 5, true), 2),
            (object(6, 6, false), 2),
            (object(7, 8, true), 2),
        ];
        assert_eq!(objects[3].0.footer.entries()[0].codec, Codec::None);
        // Given out of order: ranges sort them.
        let chunks: Vec<LiveChunk> = objects
            .iter()
            .rev()
            .map(|(object, epoch)| live(object, *epoch))
            .collect();
        assert_eq!(
            built(chunks.clone(), 1 << 20),
            vec![
                (0, 3, Codec::Zstd, 1),
                (4, 5, Codec::Zstd, 2),
                (6, 6, Codec::None, 2),
                (7, 8, Codec::Zstd, 2),
            ]
        );
        // A bound below two chunks' batches: none merges.
        let one = objects[0].0.footer.entries()[0].uncompressed_length;
        assert_eq!(built(chunks, one + 1).len(), 5);
    }

    #[test]
    fn an_object_larger_than_the_rest_together_is_left_out() {
        let candidate = |size: u64| Candidate {
            id: SegmentId(fjord_common::RandomIds::new().ulid(1_700_000_000_000)),
            record: SegmentRecord {
                object_key: String::new(),
                object_size: size,
                live_chunks: 1,
                committed_at_ms: 0,
            },
        };
        let sizes = |candidates: Vec<Candidate>| -> Vec<u64> {
            let mut sizes: Vec<u64> = candidates.iter().map(|c| c.record.object_size).collect();
            sizes.sort_unstable();
            sizes
        };
        // A 20 MB output and two small flushes: the flushes merge alone.
        let picked = worth_merging(vec![candidate(20), candidate(1), candidate(1)]);
        assert_eq!(sizes(picked), vec![1, 1]);
        // Enough small data: the output is merged with it.
        let picked = worth_merging(vec![candidate(20), candidate(12), candidate(9)]);
        assert_eq!(sizes(picked), vec![9, 12, 20]);
        // One object alone is never rewritten.
        assert!(worth_merging(vec![candidate(5)]).is_empty());
    }

    #[test]
    fn chunks_with_a_gap_between_them_are_separate_ranges() {
        let chunks = vec![live(&object(0, 1, true), 1), live(&object(5, 6, true), 1)];
        let ranges = ranges_of(chunks);
        assert_eq!(ranges.len(), 2);
    }
}
