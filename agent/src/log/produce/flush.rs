//! What a flush carries between its stages: the batches it took, per
//! partition ([`Flush`]), and the segment object they became ([`Uploaded`]).
//! A leaf: the flusher, the upload and the commit all use it.

use bytes::Bytes;
use fjord_metadata::{SegmentCommit, TopicPartition};

use crate::log::state::Pending;

/// One partition's share of a flush.
#[derive(Debug)]
pub(crate) struct Part {
    pub(crate) partition: TopicPartition,
    /// The epoch its batches were accepted under.
    pub(crate) epoch: i32,
    pub(crate) batches: Vec<Pending>,
}

/// What one flush took.
#[derive(Debug)]
pub(crate) struct Flush {
    pub(crate) parts: Vec<Part>,
}

/// A segment object uploaded and not yet committed.
#[derive(Debug)]
pub(crate) struct Uploaded {
    pub(crate) commit: SegmentCommit,
    /// Each partition's chunk (first and last offset, batches) for the tail cache.
    pub(crate) tail: Vec<(TopicPartition, i64, i64, Bytes)>,
    /// When the object was built and its PUT began (for the flush trace).
    pub(crate) built: tokio::time::Instant,
}
