//! Object storage through the `object_store` crate, with cross-cutting behaviour
//! added as decorators.
//!
//! Each decorator wraps an `Arc<dyn ObjectStore>` and is itself an
//! [`ObjectStore`], so they stack in any order and business code sees a single
//! `Arc<dyn ObjectStore>`:
//!
//! ```text
//! RetryingObjectStore ─▶ [HedgingObjectStore] ─▶ LimitStore ─▶ InstrumentedObjectStore ─▶ backend
//!                                                              (LocalFileSystem, InMemory, S3)
//! tests:       ... ─▶ FaultInjectingObjectStore ─▶ backend
//! benchmarks:  ... ─▶ LatencyInjectingObjectStore ─▶ backend
//! ```
//!
//! [`open_store`] builds that stack for a URL (`file://`, `memory://`, `s3://`).
//!
//! - [`InstrumentedObjectStore`]: request counts, bytes and latencies per
//!   operation, in an [`ObjectStoreMetrics`] (benchmarks report requests per GiB
//!   from it).
//! - [`FaultInjectingObjectStore`]: scripted or seeded-random errors, "applied but
//!   reported failed" writes, broken or short GET bodies and hanging requests.
//! - [`RetryingObjectStore`]: bounded retries of transient failures with
//!   exponential backoff and full jitter, a per-attempt timeout, and GET bodies
//!   that resume after a break.
//! - [`HedgingObjectStore`]: a second identical PUT (overwrite mode) or GET
//!   when the first is slow, the first answer wins (opt-in, [`HedgeOptions`]).
//! - `object_store`'s own `LimitStore`: the concurrency limit.
//! - [`LatencyInjectingObjectStore`]: S3 Standard / S3 Express One Zone latency
//!   profiles for benchmarks.
//!
//! On top of any store, [`read_footer`] and [`read_chunk`] read segment objects
//! with ranged GETs (tail, then chunk) and turn every failure into a
//! [`StorageError`](crate::StorageError) whose kind says whether to retry.
//!
//! Invariants: decorators never change what a successful call returns (except
//! the fault injector, on purpose); nothing here lists the bucket to find state.

#[cfg(feature = "s3")]
mod aws_profile;
mod fault;
mod hedge;
mod instrumented;
mod latency;
mod retry;
mod url;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore};

use crate::error::{ErrorRepr, Part, Result};
use crate::paths::ObjectKey;
use crate::segment::{
    ChunkEntry, DEFAULT_TAIL_READ_LEN, SegmentFooter, TailDecode, decode_chunk_with_entry,
};

pub use fault::{Fault, FaultInjectingObjectStore, Operation, Trigger, parse_fault_spec};
pub use hedge::{HedgeOptions, HedgeStats, HedgingObjectStore};
pub use instrumented::{
    InstrumentedObjectStore, LatencySnapshot, MetricsSnapshot, ObjectStoreMetrics,
};
pub use latency::{LatencyInjectingObjectStore, LatencyProfile, LogNormal};
pub use retry::{RetryOptions, RetryingObjectStore};
pub use url::{OpenedStore, S3Options, StoreOptions, decorate, open_backend, open_store};

impl From<&ObjectKey> for Path {
    fn from(key: &ObjectKey) -> Self {
        // Keys are built from validated, URL-safe segments, so this never needs to
        // escape anything.
        Path::from(key.as_str())
    }
}

/// Fetches and decodes a segment's footer: one suffix GET of
/// [`DEFAULT_TAIL_READ_LEN`] bytes, and a second only if the footer is longer.
pub async fn read_footer(store: &dyn ObjectStore, key: &ObjectKey) -> Result<SegmentFooter> {
    let mut tail_len = DEFAULT_TAIL_READ_LEN;
    // The second decode has the whole footer unless the object changed between
    // the GETs, which immutable objects never do.
    for _ in 0..2 {
        let (tail, object_len) = get_suffix(store, key, tail_len).await?;
        match SegmentFooter::decode_tail(&tail, object_len)? {
            TailDecode::Footer(footer) => return Ok(footer),
            TailDecode::NeedLongerTail { tail_len: needed } => tail_len = needed,
        }
    }
    Err(ErrorRepr::malformed(
        Part::Footer,
        format!("footer of {key} still longer than {tail_len} tail bytes on a second read"),
    )
    .into())
}

/// Fetches one chunk with a ranged GET and returns its verified record batches.
pub async fn read_chunk(
    store: &dyn ObjectStore,
    key: &ObjectKey,
    entry: &ChunkEntry,
) -> Result<Bytes> {
    let range = entry.byte_range();
    let bytes = store
        .get_opts(
            &Path::from(key),
            GetOptions {
                range: Some(GetRange::Bounded(range.clone())),
                ..GetOptions::default()
            },
        )
        .await
        .map_err(|source| object_store_error("GET", key, source))?
        .bytes()
        .await
        .map_err(|source| object_store_error("GET", key, source))?;
    if bytes.len() as u64 != entry.byte_length {
        return Err(ErrorRepr::ShortRead {
            key: key.to_string(),
            range,
            received: bytes.len() as u64,
        }
        .into());
    }
    decode_chunk_with_entry(entry, bytes)
}

/// The last `len` bytes of an object (all of it if shorter), with its length.
async fn get_suffix(store: &dyn ObjectStore, key: &ObjectKey, len: u64) -> Result<(Bytes, u64)> {
    let result = store
        .get_opts(
            &Path::from(key),
            GetOptions {
                range: Some(GetRange::Suffix(len)),
                ..GetOptions::default()
            },
        )
        .await
        .map_err(|source| object_store_error("GET", key, source))?;
    let object_len = result.meta.size;
    let range = result.range.clone();
    let bytes = result
        .bytes()
        .await
        .map_err(|source| object_store_error("GET", key, source))?;
    let expected = range.end.saturating_sub(range.start);
    if bytes.len() as u64 != expected || range.end != object_len {
        return Err(ErrorRepr::ShortRead {
            key: key.to_string(),
            range,
            received: bytes.len() as u64,
        }
        .into());
    }
    Ok((bytes, object_len))
}

fn object_store_error(
    operation: &'static str,
    key: &ObjectKey,
    source: object_store::Error,
) -> ErrorRepr {
    ErrorRepr::ObjectStore {
        operation,
        key: key.to_string(),
        source,
    }
}
