//! Compressing a large batch while it waits for its flush.
//!
//! A flush's build used to compress every chunk after the flush was taken:
//! zstd was about half of the time between an `acks=all` batch's arrival and
//! its answer over a fast bucket (`docs/write-path.md`). A batch of at least
//! [`AHEAD_MIN_BYTES`] that its producer did not compress is instead copied
//! with its offsets and epoch assigned and compressed on the blocking pool as
//! soon as it is appended, while earlier flushes upload and the flusher waits
//! for more; the build then copies its frame. Smaller batches are compressed
//! together at the build (one frame per run compresses better than many small
//! ones), as before.
//!
//! Memory: until its flush commits, such a batch is held as received, as
//! assigned and compressed (about 2.6 times its size for records that zstd
//! shrinks to 0.6); `--max-unflushed-bytes` counts the batch as received.
//!
//! The assigned offsets and epoch are fixed once the batch is appended: a
//! failed flush gives its batches back at the same offsets under the same
//! epoch, and a new epoch fails them. The build still checks the epoch and,
//! should it differ, copies and compresses the batch itself.

use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use fjord_storage::CompressedPiece;

use crate::records;

/// Batches at least this long are compressed ahead.
pub(crate) const AHEAD_MIN_BYTES: usize = 64 * 1024;

/// A batch's copy with its offsets and epoch assigned, compressed ahead once
/// (whoever comes first: the blocking task spawned at append or the build).
#[derive(Debug)]
pub(crate) struct Ahead {
    epoch: i32,
    piece: OnceLock<CompressedPiece>,
}

impl Ahead {
    /// For a batch appended under `epoch`, if it is worth compressing ahead.
    pub(crate) fn for_batch(batch: &[u8], epoch: i32) -> Option<Arc<Self>> {
        (batch.len() >= AHEAD_MIN_BYTES && !records::is_producer_compressed(batch)).then(|| {
            Arc::new(Self {
                epoch,
                piece: OnceLock::new(),
            })
        })
    }

    /// The epoch the batch was appended under.
    pub(crate) fn epoch(&self) -> i32 {
        self.epoch
    }

    /// `batch` (appended at `base_offset`) assigned and compressed at `level`:
    /// computed by the first caller; others block until it is there, so call it
    /// off the async workers.
    pub(crate) fn piece(&self, batch: &[u8], base_offset: i64, level: i32) -> &CompressedPiece {
        self.piece.get_or_init(|| {
            let mut assigned = BytesMut::with_capacity(batch.len());
            records::put_assigned(&mut assigned, batch, base_offset, self.epoch);
            CompressedPiece::new(assigned.freeze(), level)
        })
    }
}

/// Compresses `batches` (each with its [`Ahead`] and base offset) on the
/// blocking pool, without waiting for it.
pub(crate) fn spawn(batches: Vec<(Arc<Ahead>, Bytes, i64)>, level: i32) {
    if batches.is_empty() {
        return;
    }
    drop(tokio::task::spawn_blocking(move || {
        for (ahead, batch, base_offset) in batches {
            ahead.piece(&batch, base_offset, level);
        }
    }));
}
