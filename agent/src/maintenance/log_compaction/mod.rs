//! Log compaction: `cleanup.policy=compact` (and `compact,delete`) keeps the
//! latest record of each key, as Kafka's log cleaner does, over Fjord's
//! index of immutable chunks.
//!
//! # Parts
//!
//! | module | what |
//! |---|---|
//! | [`plan`] | which part of a partition is cleanable, and whether a clean is due (dirty ratio, `max.compaction.lag.ms`, a passed delete horizon) |
//! | [`offset_map`] | the key map: key digests → last offset, in `--log-compaction-buffer-bytes` |
//! | [`batch`] | stored v2 batches: parse, decompress (bounded), rewrite keeping offsets and producer fields |
//! | [`cleaner`] | the keep/drop rules per record and batch, and the layout of the output chunks |
//!
//! # A clean of one partition
//!
//! 1. **Plan** ([`plan`]): read the partition's state, cleaner checkpoint and
//!    active producers ([`MetadataStore::log_compaction_view`]) and walk its
//!    index entries: the *clean* part lies below the checkpoint, the *dirty*
//!    part from it to the uncleanable head (the active segment, the
//!    compaction lag, the last stable offset).
//! 2. **Map**: read the dirty chunks (ranged GETs) and put every key with
//!    its last offset into the key map, batch by batch, until the dirty part
//!    ends or the map is full; the map's end is the last offset mapped.
//! 3. **Clean**: read every chunk from the log start through the one holding
//!    the map's end and keep what [`cleaner`]'s rules keep. The entries are
//!    taken in *units* of about `unit_bytes` of input; each unit that changed
//!    anything is written as a new object of this partition (the object
//!    compaction writer: zstd chunks and a footer), registered, uploaded and
//!    swapped in for the unit's entries in one metadata transaction that is
//!    refused if those entries changed meanwhile
//!    ([`MetadataStore::swap_log_compacted`]). The old objects become garbage
//!    with their last reference and are deleted after the grace period, so a
//!    reader holding an old entry still reads it.
//! 4. **Checkpoint**: if every unit applied, the checkpoint moves to the
//!    map's end + 1 and the earliest pending delete horizon is recorded
//!    ([`MetadataStore::record_log_compaction`]). When the map filled before
//!    the dirty part ended, the rest is cleaned by a later pass.
//!
//! Offsets never move: a batch keeps its base and last offsets whatever it
//! loses, and the entries that replace a unit tile its offsets exactly, each
//! within one leader epoch and with the largest timestamp of the entries it
//! replaces (the time index is keyed by it). Consumers see gaps, as Kafka's
//! do. A leader's memory tail cache still serves the batches it holds as
//! they were committed (`docs/compaction.md`, *Reads*).
//!
//! # Scheduling
//!
//! Every `--log-compaction-interval-ms`, each agent with the jobs role cleans
//! the compacted partitions of the job shards it holds
//! ([`super::leases::shard_of_partition`], as retention), filthiest first.
//! Two agents whose views disagree may clean a partition at once: the swap
//! takes one unit from each at most once, and the checkpoint only moves
//! forward.
//!
//! Memory: the key map (at most `--log-compaction-buffer-bytes`), the unit
//! being built (about `unit_bytes` out), four chunks read
//! ahead, and one batch's records decompressed.

pub mod batch;
pub mod cleaner;
pub mod offset_map;
pub mod plan;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fjord_common::{Clock, IdGenerator};
use fjord_metadata::{
    ActiveProducer, CompactedInput, CompactionSwap, IndexEntry, LogCompactionState,
    MAX_COMMIT_AGE_MS, MetadataStore, PartitionSwap, SegmentId, TopicPartition,
};
use fjord_storage::{ChunkMeta, ObjectKeys, SegmentWriter, WriterOptions};
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio_util::sync::CancellationToken;

use super::leases::{self, BUCKET_SHARD, JobLeases};
use cleaner::{AbortedIndex, Cleaned, Mapped, Rules, Transactions, Unit, UnitBuilder};
use offset_map::OffsetMap;
use plan::{Plan, Surveyor, TopicRules};

/// Index entries read per metadata transaction.
const ENTRY_PAGE: usize = 500;
/// Chunks read ahead.
const FETCH_CONCURRENCY: usize = 4;
/// The most aborted transactions one clean reads.
const MAX_ABORTED: usize = 100_000;
/// Stale compaction registrations expired per pass.
const EXPIRE_BATCH: usize = 100;

/// Log compaction's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogCompactionSettings {
    /// How often a pass runs (zero: never); Kafka's `log.cleaner.backoff.ms`.
    pub interval: Duration,
    /// The key map's memory (Kafka's `log.cleaner.dedupe.buffer.size`).
    pub buffer_bytes: u64,
    /// The most bytes of batches an output chunk holds (closed at the end
    /// of the input entry that reaches it).
    pub max_chunk_bytes: u64,
    /// Stored bytes of input entries replaced by one output object.
    pub unit_bytes: u64,
    /// The zstd level of the output chunks.
    pub zstd_level: i32,
}

impl Default for LogCompactionSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            buffer_bytes: 128 << 20,
            max_chunk_bytes: 16 << 20,
            unit_bytes: 64 << 20,
            zstd_level: fjord_storage::DEFAULT_ZSTD_LEVEL,
        }
    }
}

/// What log compaction did (one clean, or a pass: the sum of its cleans).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogCompactionReport {
    /// Partitions cleaned.
    pub partitions_cleaned: usize,
    /// Cleans that failed (retried next pass).
    pub cleans_failed: usize,
    /// Cleans whose key map filled before the dirty part ended.
    pub maps_filled: usize,
    /// Stored bytes read (dirty chunks twice: to map, then to clean).
    pub bytes_read: u64,
    /// Stored bytes of the entries cleaned.
    pub bytes_cleaned: u64,
    /// Records read while cleaning.
    pub records_read: u64,
    /// Records kept.
    pub records_kept: u64,
    /// Objects written.
    pub objects_written: usize,
    /// Their bytes.
    pub bytes_written: u64,
    /// Index entries replaced.
    pub entries_replaced: usize,
    /// Units left as they were: nothing to drop.
    pub units_unchanged: usize,
    /// Units not swapped in: their entries changed meanwhile.
    pub units_skipped: usize,
}

impl LogCompactionReport {
    fn add(&mut self, other: &LogCompactionReport) {
        self.partitions_cleaned += other.partitions_cleaned;
        self.cleans_failed += other.cleans_failed;
        self.maps_filled += other.maps_filled;
        self.bytes_read += other.bytes_read;
        self.bytes_cleaned += other.bytes_cleaned;
        self.records_read += other.records_read;
        self.records_kept += other.records_kept;
        self.objects_written += other.objects_written;
        self.bytes_written += other.bytes_written;
        self.entries_replaced += other.entries_replaced;
        self.units_unchanged += other.units_unchanged;
        self.units_skipped += other.units_skipped;
    }
}

/// The log compaction job of one agent.
#[derive(Debug, Clone)]
pub struct LogCompaction {
    store: MetadataStore,
    objects: Arc<dyn ObjectStore>,
    keys: ObjectKeys,
    leases: Arc<JobLeases>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    settings: LogCompactionSettings,
}

/// A partition due for a clean.
#[derive(Debug, Clone)]
struct Due {
    partition: TopicPartition,
    plan: Plan,
    previous: Option<LogCompactionState>,
    producers: Vec<ActiveProducer>,
}

/// What the clean phase carries from chunk to chunk.
#[derive(Debug, Default)]
struct CleanState {
    txns: Transactions,
    pending_horizon: Option<i64>,
    records_read: u64,
    records_kept: u64,
}

/// The pieces of a clean that do not change from chunk to chunk, shared
/// with the blocking pool.
#[derive(Debug)]
struct Context {
    map: OffsetMap,
    map_end: i64,
    aborted: AbortedIndex,
    producers: HashMap<i64, ActiveProducer>,
    now_ms: i64,
    delete_retention_ms: i64,
}

impl LogCompaction {
    /// The job over these components.
    pub fn new(
        store: MetadataStore,
        objects: Arc<dyn ObjectStore>,
        keys: ObjectKeys,
        leases: Arc<JobLeases>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        settings: LogCompactionSettings,
    ) -> Self {
        Self {
            store,
            objects,
            keys,
            leases,
            clock,
            ids,
            settings,
        }
    }

    /// Runs a pass every interval until `shutdown` (never, if the interval is
    /// zero).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let interval = self.settings.interval;
        let job = &self;
        super::run_every("log compaction", interval, shutdown, || async move {
            Some(job.pass().await)
        })
        .await
    }

    /// One pass: every compacted partition of the job shards this agent holds
    /// that is due, filthiest first. A partition's failure is logged and
    /// retried next pass.
    pub async fn pass(&self) -> anyhow::Result<LogCompactionReport> {
        let held = self.leases.refresh().await?;
        let mut report = LogCompactionReport::default();
        if held.holds(BUCKET_SHARD) {
            // Outputs of cleans that died between registration and swap (also
            // expired by object compaction, which may be off).
            self.store
                .expire_compaction_outputs(self.clock.now_millis(), MAX_COMMIT_AGE_MS, EXPIRE_BATCH)
                .await?;
        }
        for deleted in self.store.deleted_topics().await? {
            if held.holds(leases::shard_of(deleted.topic.id.0.as_bytes())) {
                self.store.forget_log_compaction(deleted.topic.id).await?;
            }
        }
        let mut due = Vec::new();
        for topic in self.store.list_topics().await? {
            let Some(rules) = TopicRules::of(&topic.configs) else {
                continue;
            };
            for index in 0..topic.partition_count {
                let partition = TopicPartition::new(topic.id, index);
                if !held.holds_partition(partition) {
                    continue;
                }
                match self.due(partition, rules).await {
                    Ok(Some(found)) => due.push(found),
                    Ok(None) => {}
                    Err(error) => {
                        tracing::warn!(%partition, %error, "planning a log compaction failed; retrying next pass");
                    }
                }
            }
        }
        due.sort_by(|a, b| b.plan.dirty_ratio.total_cmp(&a.plan.dirty_ratio));
        for found in due {
            let partition = found.partition;
            match self.clean(found).await {
                Ok(clean) => report.add(&clean),
                Err(error) => {
                    report.cleans_failed += 1;
                    tracing::warn!(%partition, error = %format!("{error:#}"), "log compaction of a partition failed; retrying next pass");
                }
            }
        }
        Ok(report)
    }

    /// The clean due for `partition`, if one is.
    async fn due(
        &self,
        partition: TopicPartition,
        rules: TopicRules,
    ) -> anyhow::Result<Option<Due>> {
        let view = self.store.log_compaction_view(partition).await?;
        let now = self.clock.now_millis();
        let first_dirty = plan::first_dirty(&view.state, view.compaction.as_ref());
        let horizon_due = view
            .compaction
            .and_then(|c| c.delete_horizon_ms)
            .is_some_and(|horizon| horizon <= now);
        if first_dirty >= view.state.high_watermark && !horizon_due {
            // Nothing written since the last clean: no need to walk the index.
            return Ok(None);
        }
        let mut surveyor = Surveyor::new(&view.state, first_dirty, &rules, now);
        let mut offset = view.state.log_start_offset;
        'pages: loop {
            let lookup = self.store.lookup(partition, offset, ENTRY_PAGE).await?;
            let full = lookup.entries.len() == ENTRY_PAGE;
            for entry in &lookup.entries {
                if entry.base_offset >= lookup.state.high_watermark || !surveyor.add(entry) {
                    break 'pages;
                }
                offset = entry.last_offset + 1;
            }
            if !full {
                break;
            }
        }
        let survey = surveyor.finish();
        Ok(
            plan::plan(&view.state, view.compaction.as_ref(), &survey, rules, now).map(|plan| {
                Due {
                    partition,
                    plan,
                    previous: view.compaction,
                    producers: view.producers,
                }
            }),
        )
    }

    /// The entries of `partition` from the one covering `from` on, page by
    /// page, as long as `keep` says so.
    fn entries(
        &self,
        partition: TopicPartition,
        from: i64,
        keep: impl Fn(&IndexEntry) -> bool + Send + Sync + 'static,
    ) -> impl futures::Stream<Item = anyhow::Result<IndexEntry>> + Send + '_ {
        let keep = Arc::new(keep);
        futures::stream::unfold(Some(from), move |next| {
            let keep = keep.clone();
            async move {
                let offset = next?;
                let page = match self.store.lookup(partition, offset, ENTRY_PAGE).await {
                    Ok(page) => page,
                    Err(error) => return Some((vec![Err(error.into())], None)),
                };
                let full = page.entries.len() == ENTRY_PAGE;
                let mut out = Vec::with_capacity(page.entries.len());
                let mut next = None;
                for entry in page.entries {
                    if !keep(&entry) {
                        return Some((out, None));
                    }
                    next = Some(entry.last_offset + 1);
                    out.push(Ok(entry));
                }
                Some((out, if full { next } else { None }))
            }
        })
        .flat_map(futures::stream::iter)
    }

    /// The batches of an entry's chunk (one ranged GET), checked against the
    /// entry.
    async fn read_chunk(
        &self,
        partition: TopicPartition,
        entry: IndexEntry,
    ) -> anyhow::Result<(IndexEntry, Bytes)> {
        let range = entry.byte_offset..entry.byte_offset.saturating_add(entry.byte_length);
        let bytes = self
            .objects
            .get_range(&Path::from(entry.object_key.as_str()), range)
            .await?;
        let decoded = tokio::task::spawn_blocking(move || fjord_storage::decode_chunk(bytes))
            .await
            .map_err(|e| anyhow::anyhow!("decoding a chunk: {e}"))??;
        let expected = ChunkMeta {
            topic_id: partition.topic_id.0,
            partition: partition.partition,
            first_offset: entry.base_offset,
            last_offset: entry.last_offset,
            record_count: entry.record_count,
            max_timestamp: entry.max_timestamp,
        };
        if decoded.meta != expected {
            anyhow::bail!(
                "the chunk of {} at {} in {} is not the one its entry describes",
                partition,
                entry.byte_offset,
                entry.object_key
            );
        }
        Ok((entry, decoded.batches))
    }

    /// One clean of a partition (see the module docs).
    async fn clean(&self, due: Due) -> anyhow::Result<LogCompactionReport> {
        let Due {
            partition,
            plan,
            previous,
            producers,
        } = due;
        let mut report = LogCompactionReport {
            partitions_cleaned: 1,
            ..LogCompactionReport::default()
        };
        let now_ms = self.clock.now_millis();
        let seed =
            u64::try_from(self.ids.ulid(now_ms).random() & u128::from(u64::MAX)).unwrap_or(0);
        let aborted = self
            .store
            .aborted_transactions(
                partition,
                plan.log_start,
                plan.first_uncleanable,
                MAX_ABORTED,
            )
            .await?;
        if aborted.len() >= MAX_ABORTED {
            anyhow::bail!("more than {MAX_ABORTED} aborted transactions to clean at once");
        }
        // 2. Map the dirty part.
        let context = Context {
            map: OffsetMap::new(self.settings.buffer_bytes, plan.dirty_records, seed),
            map_end: plan.first_dirty - 1,
            aborted: AbortedIndex::new(&aborted),
            producers: producers.into_iter().map(|p| (p.producer_id, p)).collect(),
            now_ms,
            delete_retention_ms: plan.rules.delete_retention_ms,
        };
        let (context, map_filled) = self
            .map_dirty(partition, &plan, context, &mut report)
            .await?;
        if map_filled {
            report.maps_filled += 1;
            if context.map_end < plan.first_dirty {
                anyhow::bail!(
                    "the key map ({} bytes) cannot hold the keys of one batch at offset {}",
                    context.map.bytes(),
                    plan.first_dirty
                );
            }
        }
        // 3. Clean from the log start through the entry holding the map's end.
        let map_end = context.map_end;
        let context = Arc::new(context);
        let mut entries = std::pin::pin!(
            self.entries(partition, plan.log_start, move |e| e.base_offset <= map_end)
                .map(|entry| async move { self.read_chunk(partition, entry?).await })
                .buffered(FETCH_CONCURRENCY)
        );
        let mut state = CleanState::default();
        // compact,delete: an output chunk per input entry, each with its own
        // largest timestamp for retention.
        let max_chunk_bytes = if plan.rules.deletes {
            0
        } else {
            self.settings.max_chunk_bytes
        };
        let mut builder = UnitBuilder::new(max_chunk_bytes);
        let mut applied = true;
        while let Some(chunk) = entries.next().await {
            let (entry, bytes) = chunk?;
            report.bytes_read += entry.byte_length;
            report.bytes_cleaned += entry.byte_length;
            let shared = context.clone();
            let (returned, cleaned) = blocking(move || {
                let mut state = state;
                let rules = Rules {
                    map: &shared.map,
                    map_end: shared.map_end,
                    now_ms: shared.now_ms,
                    delete_retention_ms: shared.delete_retention_ms,
                    aborted: &shared.aborted,
                    producers: &shared.producers,
                };
                let mut cleaned: Vec<(batch::StoredBatch, Cleaned)> = Vec::new();
                for stored in batch::split_batches(&bytes)? {
                    let outcome = cleaner::clean_batch(&stored, &rules, &mut state.txns)?;
                    state.records_read += u64::from(outcome.records_in);
                    state.records_kept += u64::from(outcome.records_out);
                    if let Some(horizon) = outcome.pending_horizon {
                        state.pending_horizon =
                            Some(state.pending_horizon.map_or(horizon, |h| h.min(horizon)));
                    }
                    cleaned.push((stored, outcome));
                }
                Ok((state, cleaned))
            })
            .await?;
            state = returned;
            builder.add(entry, cleaned)?;
            if builder.input_bytes() >= self.settings.unit_bytes {
                let unit =
                    std::mem::replace(&mut builder, UnitBuilder::new(max_chunk_bytes)).finish()?;
                applied &= self.write_unit(partition, unit, &mut report).await?;
            }
        }
        if !builder.is_empty() {
            applied &= self
                .write_unit(partition, builder.finish()?, &mut report)
                .await?;
        }
        report.records_read += state.records_read;
        report.records_kept += state.records_kept;
        // 4. The checkpoint, once everything applied.
        if applied {
            let first_dirty_offset =
                (map_end + 1).max(previous.map_or(0, |p| p.first_dirty_offset));
            self.store
                .record_log_compaction(
                    partition,
                    LogCompactionState {
                        first_dirty_offset,
                        delete_horizon_ms: state.pending_horizon,
                        cleaned_at_ms: self.clock.now_millis(),
                    },
                )
                .await?;
        }
        Ok(report)
    }

    /// Step 2: puts the keys of the dirty part into the map until the part
    /// ends or the map is full (`true`).
    async fn map_dirty(
        &self,
        partition: TopicPartition,
        plan: &Plan,
        mut context: Context,
        report: &mut LogCompactionReport,
    ) -> anyhow::Result<(Context, bool)> {
        let first_uncleanable = plan.first_uncleanable;
        let mut dirty = std::pin::pin!(
            self.entries(partition, plan.first_dirty, move |e| {
                e.last_offset < first_uncleanable
            })
            .map(|entry| async move { self.read_chunk(partition, entry?).await })
            .buffered(FETCH_CONCURRENCY)
        );
        while let Some(chunk) = dirty.next().await {
            let (entry, bytes) = chunk?;
            report.bytes_read += entry.byte_length;
            let first_dirty = plan.first_dirty;
            let (returned, mapped) = blocking(move || {
                let mut context = context;
                let batches = batch::split_batches(&bytes)?;
                let mapped = cleaner::map_batches(
                    &batches,
                    &mut context.map,
                    first_dirty,
                    &context.aborted,
                )?;
                Ok((context, mapped))
            })
            .await?;
            context = returned;
            match mapped {
                Mapped::Whole => context.map_end = entry.last_offset,
                Mapped::Until(through) => {
                    if let Some(through) = through {
                        context.map_end = context.map_end.max(through);
                    }
                    return Ok((context, true));
                }
            }
        }
        Ok((context, false))
    }

    /// Writes a unit that changed something as an object of its own and swaps
    /// it in; `false` if its entries changed meanwhile (the unit is dropped).
    async fn write_unit(
        &self,
        partition: TopicPartition,
        unit: Unit,
        report: &mut LogCompactionReport,
    ) -> anyhow::Result<bool> {
        if !unit.changed {
            report.units_unchanged += 1;
            return Ok(true);
        }
        let segment_id = SegmentId(self.ids.ulid(self.clock.now_millis()));
        let key = self.keys.segment(segment_id.0);
        let level = self.settings.zstd_level;
        let (encoded, epochs, inputs) = blocking(move || {
            let mut writer = SegmentWriter::new(segment_id.0, WriterOptions::zstd(level))?;
            let mut epochs = HashMap::new();
            for chunk in &unit.chunks {
                let meta = ChunkMeta {
                    topic_id: partition.topic_id.0,
                    partition: partition.partition,
                    first_offset: chunk.first_offset,
                    last_offset: chunk.last_offset,
                    record_count: chunk.record_count,
                    max_timestamp: chunk.max_timestamp,
                };
                let hint = crate::records::chunk_hint(chunk.batches.iter().map(|b| &b[..]));
                writer.add_chunk_with_hint(meta, chunk.concatenated(), hint)?;
                epochs.insert(chunk.first_offset, chunk.leader_epoch);
            }
            Ok((writer.finish()?, epochs, unit.inputs))
        })
        .await?;
        let object_size = encoded.bytes.len() as u64;
        let object_key = key.as_str().to_owned();
        self.store
            .register_compaction_output(segment_id, &object_key, self.clock.now_millis())
            .await?;
        self.objects
            .put(&Path::from(object_key.as_str()), encoded.bytes.into())
            .await?;
        let mut outputs = Vec::with_capacity(encoded.footer.entries().len());
        for footer in encoded.footer.entries() {
            let leader_epoch = epochs
                .get(&footer.meta.first_offset)
                .copied()
                .ok_or_else(|| anyhow::anyhow!("an output chunk lost its epoch"))?;
            outputs.push(IndexEntry {
                base_offset: footer.meta.first_offset,
                last_offset: footer.meta.last_offset,
                record_count: footer.meta.record_count,
                max_timestamp: footer.meta.max_timestamp,
                leader_epoch,
                segment_id,
                object_key: object_key.clone(),
                byte_offset: footer.byte_offset,
                byte_length: footer.byte_length,
                object_size,
            });
        }
        let swap = CompactionSwap {
            segment_id,
            object_key,
            object_size,
            partitions: vec![PartitionSwap {
                partition,
                inputs: inputs
                    .iter()
                    .map(|entry| CompactedInput {
                        last_offset: entry.last_offset,
                        segment_id: entry.segment_id,
                        byte_offset: entry.byte_offset,
                    })
                    .collect(),
                outputs,
            }],
        };
        let outcome = self
            .store
            .swap_log_compacted(&swap, self.clock.now_millis())
            .await?;
        report.objects_written += 1;
        report.bytes_written += object_size;
        report.entries_replaced += outcome.entries_removed;
        if outcome.swapped.contains(&partition) || outcome.replayed {
            Ok(true)
        } else {
            report.units_skipped += 1;
            Ok(false)
        }
    }
}

/// Runs CPU work (decompression, filtering, compression) on the blocking
/// pool; a panic there is resumed here.
async fn blocking<T, F>(work: F) -> anyhow::Result<T>
where
    F: FnOnce() -> anyhow::Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(cancelled) => anyhow::anyhow!("log compaction work cancelled: {cancelled}"),
        })?
}
