//! Reads of every partition of a topic, each from its own position, kept in
//! an opaque [`Cursor`]: a read with a cursor goes on from there, on any
//! agent (the cursor is the whole state). Partitions the cursor does not name
//! (all of them at first; those added since) start at the read's [`Start`].
//!
//! Within a partition records come in offset order; partitions interleave.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::records::Record;

use super::Failure;
use super::partition_read::{self, Start};
use crate::core::Core;

/// Every partition's next offset, as one opaque string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Cursor(pub(crate) BTreeMap<i32, i64>);

impl Cursor {
    const PREFIX: &'static str = "v1:";

    /// The opaque form: base64url of `v1:partition=offset,…`.
    pub(crate) fn encode(&self) -> String {
        let body: Vec<String> = self.0.iter().map(|(p, o)| format!("{p}={o}")).collect();
        super::opaque(Self::PREFIX, &body.join(","))
    }

    /// From the opaque form; `None` when it is not one.
    pub(crate) fn decode(text: &str) -> Option<Self> {
        let body = super::opaque_body(Self::PREFIX, text)?;
        let mut positions = BTreeMap::new();
        for part in body.split(',').filter(|p| !p.is_empty()) {
            let (p, o) = part.split_once('=')?;
            let (p, o) = (p.parse::<i32>().ok()?, o.parse::<i64>().ok()?);
            if p < 0 || o < 0 || positions.insert(p, o).is_some() {
                return None;
            }
        }
        Some(Self(positions))
    }

    /// Moved past `record` of `partition`.
    pub(crate) fn advance(&mut self, partition: i32, record: &Record) {
        self.0.insert(partition, record.offset + 1);
    }
}

/// The refusal of a cursor the gateway did not make.
pub(crate) fn bad_cursor() -> Failure {
    Failure::BadRequest("the cursor is not one this API gave".into())
}

/// What one read of a topic needs.
#[derive(Debug, Clone)]
pub(crate) struct TopicRead {
    /// The topic.
    pub(crate) topic: String,
    /// Where partitions the cursor does not name start (never an offset).
    pub(crate) start: Start,
    /// The most records one pass returns.
    pub(crate) max_records: usize,
    /// About the most bytes one pass reads (at least one batch).
    pub(crate) max_bytes: usize,
}

/// Fills in the positions of the partitions `cursor` does not name, and drops
/// those of partitions that do not exist.
pub(crate) async fn positions(
    core: &Arc<dyn Core>,
    read: &TopicRead,
    cursor: &mut Cursor,
) -> Result<(), Failure> {
    let info = core.topic(&read.topic).await?;
    cursor.0.retain(|p, _| *p < info.partition_count);
    for partition in 0..info.partition_count {
        if let std::collections::btree_map::Entry::Vacant(entry) = cursor.0.entry(partition) {
            entry.insert(partition_read::resolve(core, &read.topic, partition, read.start).await?);
        }
    }
    Ok(())
}

/// A subscription to the commits of every partition of the topic: take it
/// before a pass, so a commit during the pass is not missed.
pub(crate) async fn watch_all(
    core: &Arc<dyn Core>,
    topic: &str,
) -> Result<futures::future::BoxFuture<'static, ()>, Failure> {
    let info = core.topic(topic).await?;
    let partitions: Vec<i32> = (0..info.partition_count).collect();
    Ok(core.watch(topic, &partitions).await?)
}

/// One pass over every partition, without waiting: the records found (at
/// most `max_records`, about `max_bytes`) with their partitions, `cursor`
/// moved past them.
pub(crate) async fn read_once(
    core: &Arc<dyn Core>,
    read: &TopicRead,
    cursor: &mut Cursor,
) -> Result<Vec<(i32, Record)>, Failure> {
    positions(core, read, cursor).await?;
    let mut records = Vec::new();
    let mut bytes = 0usize;
    let partitions: Vec<(i32, i64)> = cursor.0.iter().map(|(p, o)| (*p, *o)).collect();
    for (partition, offset) in partitions {
        if records.len() >= read.max_records || (bytes > 0 && bytes >= read.max_bytes) {
            break;
        }
        let budget = read.max_bytes.saturating_sub(bytes).max(1);
        let found = core
            .read(&read.topic, partition, offset, budget, Duration::ZERO)
            .await?;
        bytes += found.records.len();
        let decoded =
            crate::records::decode_records(found.records, offset, read.max_records - records.len())
                .map_err(partition_read::undecodable)?;
        cursor.0.insert(partition, offset.max(decoded.next_offset));
        records.extend(decoded.records.into_iter().map(|r| (partition, r)));
    }
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_what_they_did_not_make() {
        let cursor = Cursor([(0, 5), (3, 0), (7, 1_000_000)].into_iter().collect());
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(
            Cursor::decode(&Cursor::default().encode()),
            Some(Cursor::default())
        );
        // Garbage, nothing, a negative offset, another prefix, a partition twice.
        for bad in ["!!!", "", "djE6MD0tMQ", "eDox", "djE6MD0xLDA9Mg"] {
            assert_eq!(Cursor::decode(bad), None, "{bad:?}");
        }
    }
}
