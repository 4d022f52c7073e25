//! The orphan sweep: segment objects written but never committed (the
//! upload succeeded, the commit did not: a crash, a fenced leader, metadata
//! down for long) take space nobody accounts for.
//!
//! Deleting by listing alone would be a race with a commit still coming, so an
//! object goes only when all of these hold:
//!
//! - its key has Fjord's segment shape under this cluster's prefix;
//! - its segment id's time and the bucket's last-modified time are both older
//!   than [`ORPHAN_AGE`], which is [`MAX_COMMIT_AGE_MS`] plus an hour for
//!   clock skew between agents — and a commit of a segment older than
//!   [`MAX_COMMIT_AGE_MS`] is refused ([`fjord_metadata::MetadataError::SegmentTooOld`]),
//!   so no commit can still take it;
//! - metadata has neither its segment record (committed) nor a garbage
//!   record (freed, the garbage collector's business).

use std::time::Duration;

use fjord_metadata::{MAX_COMMIT_AGE_MS, MetadataStore, SegmentId};
use fjord_storage::ObjectKeys;
use futures::StreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

/// How old an object must be, by its id and by the bucket's clock, before it
/// may be an orphan.
pub const ORPHAN_AGE: Duration = Duration::from_millis(MAX_COMMIT_AGE_MS as u64 + 3_600_000);

/// Segment ids checked in metadata per transaction.
const CHECK_BATCH: usize = 500;

/// What a sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepReport {
    /// Objects listed under the segments prefix.
    pub listed: usize,
    /// Keys of the orphans found (deleted unless it was a dry run).
    pub orphans: Vec<String>,
    /// Their bytes.
    pub orphan_bytes: u64,
    /// Orphans deleted.
    pub deleted: usize,
}

/// Lists this cluster's segment objects, finds the orphans among those
/// listed (at most `limit` candidates per sweep) and deletes them unless
/// `dry_run`. `now_ms` is this agent's clock.
pub async fn sweep(
    store: &MetadataStore,
    objects: &dyn ObjectStore,
    keys: &ObjectKeys,
    now_ms: i64,
    limit: usize,
    dry_run: bool,
) -> anyhow::Result<SweepReport> {
    let age = i64::try_from(ORPHAN_AGE.as_millis()).unwrap_or(i64::MAX);
    let prefix = Path::from(keys.segments_prefix());
    let mut listing = objects.list(Some(&prefix));
    let mut report = SweepReport::default();
    let mut candidates: Vec<(SegmentId, String, u64)> = Vec::new();
    while let Some(meta) = listing.next().await {
        let meta = meta?;
        report.listed += 1;
        let key = meta.location.as_ref();
        let Some(id) = keys.segment_id_of(key) else {
            continue;
        };
        let born = i64::try_from(id.timestamp_ms()).unwrap_or(i64::MAX);
        let modified = meta.last_modified.timestamp_millis();
        if now_ms.saturating_sub(born) <= age || now_ms.saturating_sub(modified) <= age {
            continue;
        }
        candidates.push((SegmentId(id), key.to_owned(), meta.size));
        if candidates.len() >= limit {
            break;
        }
    }
    for batch in candidates.chunks(CHECK_BATCH) {
        let ids: Vec<SegmentId> = batch.iter().map(|(id, _, _)| *id).collect();
        let unknown = store.unknown_segments(&ids).await?;
        for (id, key, size) in batch {
            if !unknown.contains(id) {
                continue;
            }
            report.orphans.push(key.clone());
            report.orphan_bytes += size;
            if dry_run {
                continue;
            }
            match objects.delete(&Path::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => report.deleted += 1,
                Err(error) => {
                    tracing::warn!(%key, %error, "deleting an orphan failed; the next sweep tries again");
                }
            }
        }
    }
    Ok(report)
}
