//! The read path: committed data only — a read never sees past the high
//! watermark, and the same offset always returns the same batch, whichever
//! agent serves it.
//!
//! | module | job |
//! |---|---|
//! | [`read`] | batches from an offset: this leader's memory tail, else the index in metadata, then the disk cache or a ranged GET |
//! | [`timestamp_index`] | the first record at or after a timestamp, and the largest timestamp (`ListOffsets`) |
//! | [`long_poll`] | per-partition wake-ups for reads that wait for data |
//! | `compacted` | dropping this leader's memory tail of a partition once log compaction cleaned it |

mod compacted;
pub mod long_poll;
pub mod read;
pub mod timestamp_index;

pub use long_poll::PartitionWatch;
pub use read::ReadResult;
pub use timestamp_index::{TimestampHit, TimestampQuery};
