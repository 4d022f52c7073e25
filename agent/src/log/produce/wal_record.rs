//! What the WAL holds for the write path, and how far it may be truncated.
//!
//! A WAL record is one append to one partition:
//!
//! ```text
//! topic id: 16 bytes | partition: i32 BE | batches (offsets and epoch assigned)
//! ```
//!
//! [`WalTracker`] counts, per WAL sequence number, the batches of that record
//! not yet *resolved* — committed, or dropped with their partition. The WAL is
//! truncated only through the sequence before the lowest unresolved one, so a
//! batch acknowledged with `acks=1` stays on disk until it is committed or its
//! partition is gone, whatever order flushes resolve in.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use fjord_metadata::{TopicId, TopicPartition};

use crate::records;

/// Bytes of a record's payload for `batches` (before they are copied in).
pub(crate) fn payload_len<'a>(batches: impl IntoIterator<Item = &'a Bytes>) -> usize {
    20 + batches.into_iter().map(Bytes::len).sum::<usize>()
}

/// One WAL record: the partition, then its batches with their assigned offsets
/// (`(batch as received, base offset)`) and `epoch`.
pub(crate) fn payload(partition: TopicPartition, batches: &[(Bytes, i64)], epoch: i32) -> Bytes {
    let mut out = BytesMut::with_capacity(payload_len(batches.iter().map(|(b, _)| b)));
    out.put_slice(partition.topic_id.0.as_bytes());
    out.put_i32(partition.partition);
    for (batch, base_offset) in batches {
        records::put_assigned(&mut out, batch, *base_offset, epoch);
    }
    out.freeze()
}

/// The partition and batches of a WAL record; `None` if it is malformed.
pub(crate) fn parse(mut payload: Bytes) -> Option<(TopicPartition, Bytes)> {
    if payload.len() < 20 {
        return None;
    }
    let topic = uuid::Uuid::from_slice(&payload[..16]).ok()?;
    payload.advance(16);
    let partition = payload.get_i32();
    Some((TopicPartition::new(TopicId(topic), partition), payload))
}

/// Unresolved batches per WAL sequence number.
#[derive(Debug, Default)]
pub(crate) struct WalTracker {
    outstanding: BTreeMap<u64, u32>,
    /// The highest sequence registered.
    highest: u64,
    /// Truncated through here already.
    truncated: u64,
}

impl WalTracker {
    /// A tracker for a WAL whose next record gets `next_sequence`.
    pub(crate) fn new(next_sequence: u64) -> Self {
        Self {
            outstanding: BTreeMap::new(),
            highest: next_sequence.saturating_sub(1),
            truncated: 0,
        }
    }

    /// Record `sequence` holds `batches` unresolved batches.
    pub(crate) fn register(&mut self, sequence: u64, batches: u32) {
        self.highest = self.highest.max(sequence);
        if batches > 0 {
            *self.outstanding.entry(sequence).or_default() += batches;
        }
    }

    /// One batch of record `sequence` is committed or dropped.
    pub(crate) fn resolve(&mut self, sequence: u64) {
        if let Some(count) = self.outstanding.get_mut(&sequence) {
            *count -= 1;
            if *count == 0 {
                self.outstanding.remove(&sequence);
            }
        }
    }

    /// The sequence the WAL may be truncated through now, if it moved on since
    /// the last truncation (which the caller then performs).
    pub(crate) fn advance(&mut self) -> Option<u64> {
        let safe = match self.outstanding.keys().next() {
            Some(lowest) => lowest - 1,
            None => self.highest,
        };
        (safe > self.truncated).then(|| {
            self.truncated = safe;
            safe
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_stops_before_the_lowest_unresolved_record() {
        let mut tracker = WalTracker::new(1);
        tracker.register(1, 1);
        tracker.register(2, 2);
        tracker.register(3, 1);
        // Record 3 commits first (another partition): nothing may go yet.
        tracker.resolve(3);
        assert_eq!(tracker.advance(), None);
        tracker.resolve(1);
        assert_eq!(tracker.advance(), Some(1));
        tracker.resolve(2);
        assert_eq!(tracker.advance(), None, "one batch of record 2 is left");
        tracker.resolve(2);
        assert_eq!(tracker.advance(), Some(3));
        assert_eq!(tracker.advance(), None);
    }

    #[test]
    fn payloads_round_trip() {
        let partition = TopicPartition::new(TopicId(uuid::Uuid::from_u128(7)), 3);
        assert!(parse(Bytes::from_static(b"short")).is_none());
        let record = payload(partition, &[], 1);
        let (parsed, batches) = parse(record).unwrap_or_else(|| unreachable!());
        assert_eq!(parsed, partition);
        assert!(batches.is_empty());
    }
}
