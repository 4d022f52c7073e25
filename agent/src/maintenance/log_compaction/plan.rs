//! Whether a partition is due for a clean, and which part of it (Kafka's
//! `LogCleanerManager.cleanableOffsets` and `grabFilthiestCompactedLog`),
//! from its topic's configs and its index entries.
//!
//! The log splits into a *clean* part (below the cleaner checkpoint), a
//! *dirty* part, and an uncleanable head that starts at the first index
//! entry that is
//!
//! - part of the active segment: a record in it is newer than `segment.ms`
//!   (Fjord has no segment to roll: its chunks are immutable once
//!   committed; the youngest `segment.ms` of data plays the active segment's
//!   part, measured, as Kafka's time-based roll is, on record timestamps);
//! - younger than `min.compaction.lag.ms` (by its largest timestamp, as
//!   Kafka's lag is measured on the segment's largest timestamp);
//! - reaching the last stable offset (an open transaction's data is never
//!   compacted).
//!
//! A clean is due when the dirty part holds more than
//! `min.cleanable.dirty.ratio` of the cleanable bytes, when its oldest data
//! is older than `max.compaction.lag.ms`, or when a delete horizon recorded
//! by an earlier clean has passed (KIP-534: tombstones then go even if
//! nothing new was written).

use std::collections::BTreeMap;

use fjord_metadata::{IndexEntry, LogCompactionState, PartitionState};

use crate::configs::topic;

/// A compacted topic's settings that a clean reads.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopicRules {
    /// `delete.retention.ms`.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms`.
    pub min_lag_ms: i64,
    /// `max.compaction.lag.ms`.
    pub max_lag_ms: i64,
    /// `min.cleanable.dirty.ratio`.
    pub min_dirty_ratio: f64,
    /// `segment.ms`.
    pub segment_ms: i64,
    /// Whether the policy also deletes (`compact,delete`): retention then
    /// expires index entries by their largest timestamp, so a clean does not
    /// merge entries (object compaction merges them when they are not about
    /// to expire).
    pub deletes: bool,
}

impl TopicRules {
    /// The rules of a topic with `configs`, `None` unless its
    /// `cleanup.policy` includes `compact`.
    pub fn of(configs: &BTreeMap<String, String>) -> Option<Self> {
        let policy = topic::effective(configs, "cleanup.policy")?;
        let has = |wanted: &str| policy.split(',').any(|item| item.trim() == wanted);
        if !has("compact") {
            return None;
        }
        let long = |name: &str, fallback: i64| {
            topic::effective(configs, name)
                .and_then(|value| value.trim().parse::<i64>().ok())
                .unwrap_or(fallback)
        };
        let ratio = topic::effective(configs, "min.cleanable.dirty.ratio")
            .and_then(|value| value.trim().parse::<f64>().ok())
            .filter(|ratio| ratio.is_finite())
            .unwrap_or(0.5);
        Some(Self {
            delete_retention_ms: long("delete.retention.ms", 86_400_000).max(0),
            min_lag_ms: long("min.compaction.lag.ms", 0).max(0),
            max_lag_ms: long("max.compaction.lag.ms", i64::MAX).max(1),
            min_dirty_ratio: ratio,
            segment_ms: long("segment.ms", 604_800_000).max(1),
            deletes: has("delete"),
        })
    }
}

/// What a partition's index says about its cleanable part.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Survey {
    /// Stored bytes of the entries below the checkpoint.
    pub clean_bytes: u64,
    /// Stored bytes of the dirty entries.
    pub dirty_bytes: u64,
    /// Records of the dirty entries (sizes the key map).
    pub dirty_records: u64,
    /// The smallest largest-timestamp of a dirty entry.
    pub oldest_dirty_timestamp: Option<i64>,
    /// The first offset not cleanable (an entry boundary).
    pub first_uncleanable: i64,
}

/// A clean to run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// The partition's log start.
    pub log_start: i64,
    /// The first dirty offset.
    pub first_dirty: i64,
    /// The first offset not cleanable.
    pub first_uncleanable: i64,
    /// Records in the dirty part.
    pub dirty_records: u64,
    /// The dirty part's share of the cleanable bytes.
    pub dirty_ratio: f64,
    /// The topic's rules.
    pub rules: TopicRules,
}

/// Accumulates a [`Survey`] over a partition's entries, in offset order.
#[derive(Debug)]
pub struct Surveyor {
    first_dirty: i64,
    /// Entries with a record newer than this are the active segment or
    /// within the minimum lag.
    newest_cleanable: i64,
    last_stable: i64,
    survey: Survey,
    done: bool,
}

impl Surveyor {
    /// A survey of a partition in `state`, cleaned up to `first_dirty`, at
    /// `now_ms`.
    pub fn new(state: &PartitionState, first_dirty: i64, rules: &TopicRules, now_ms: i64) -> Self {
        let lag = rules.segment_ms.max(rules.min_lag_ms);
        Self {
            first_dirty,
            newest_cleanable: now_ms.saturating_sub(lag),
            last_stable: state.last_stable_offset(),
            survey: Survey {
                first_uncleanable: state.last_stable_offset(),
                ..Survey::default()
            },
            done: false,
        }
    }

    /// Takes the next entry; `false` once the uncleanable head is reached
    /// (later entries are not looked at).
    pub fn add(&mut self, entry: &IndexEntry) -> bool {
        if self.done {
            return false;
        }
        if entry.last_offset >= self.last_stable || entry.max_timestamp > self.newest_cleanable {
            self.survey.first_uncleanable = entry.base_offset;
            self.done = true;
            return false;
        }
        if entry.last_offset < self.first_dirty {
            self.survey.clean_bytes += entry.byte_length;
        } else {
            self.survey.dirty_bytes += entry.byte_length;
            self.survey.dirty_records += u64::from(entry.record_count);
            self.survey.oldest_dirty_timestamp = Some(
                self.survey
                    .oldest_dirty_timestamp
                    .map_or(entry.max_timestamp, |t| t.min(entry.max_timestamp)),
            );
        }
        true
    }

    /// The survey.
    pub fn finish(self) -> Survey {
        self.survey
    }
}

/// The clean due for a partition, if one is.
pub fn plan(
    state: &PartitionState,
    compaction: Option<&LogCompactionState>,
    survey: &Survey,
    rules: TopicRules,
    now_ms: i64,
) -> Option<Plan> {
    let first_dirty = first_dirty(state, compaction);
    let total = survey.clean_bytes + survey.dirty_bytes;
    // Bytes are far below 2^52: the ratio is exact enough.
    let dirty_ratio = if total == 0 {
        0.0
    } else {
        survey.dirty_bytes as f64 / total as f64
    };
    let overdue = survey
        .oldest_dirty_timestamp
        .is_some_and(|oldest| oldest < now_ms.saturating_sub(rules.max_lag_ms));
    let dirty = survey.dirty_bytes > 0 && first_dirty < survey.first_uncleanable;
    let horizon_due = compaction
        .and_then(|c| c.delete_horizon_ms)
        .is_some_and(|horizon| horizon <= now_ms);
    let due = (dirty && (dirty_ratio > rules.min_dirty_ratio || overdue)) || horizon_due;
    due.then_some(Plan {
        log_start: state.log_start_offset,
        first_dirty,
        first_uncleanable: survey.first_uncleanable,
        dirty_records: survey.dirty_records,
        dirty_ratio,
        rules,
    })
}

/// Where the dirty part starts: the checkpoint, or the log start if it is
/// further.
pub fn first_dirty(state: &PartitionState, compaction: Option<&LogCompactionState>) -> i64 {
    compaction
        .map_or(0, |c| c.first_dirty_offset)
        .max(state.log_start_offset)
        .min(state.high_watermark)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fjord_metadata::SegmentId;

    const NOW: i64 = 1_800_000_000_000;

    fn rules() -> TopicRules {
        TopicRules {
            delete_retention_ms: 1_000,
            min_lag_ms: 0,
            max_lag_ms: i64::MAX,
            min_dirty_ratio: 0.5,
            segment_ms: 100,
            deletes: false,
        }
    }

    fn state(high_watermark: i64) -> PartitionState {
        let mut state = fjord_metadata::PartitionState {
            leader: Some(1),
            leader_epoch: 1,
            log_start_offset: 0,
            high_watermark,
            max_timestamp: None,
            time_indexed_from: 0,
            open_transactions: Vec::new(),
        };
        state.high_watermark = high_watermark;
        state
    }

    fn entry(base: i64, last: i64, max_timestamp: i64) -> IndexEntry {
        IndexEntry {
            base_offset: base,
            last_offset: last,
            record_count: u32::try_from(last - base + 1).unwrap(),
            max_timestamp,
            leader_epoch: 1,
            segment_id: SegmentId(fjord_common::IdGenerator::ulid(
                &fjord_common::RandomIds::new(),
                1,
            )),
            object_key: String::new(),
            byte_offset: 0,
            byte_length: 100,
            object_size: 100,
        }
    }

    fn survey(
        state: &PartitionState,
        first_dirty: i64,
        rules: &TopicRules,
        entries: &[IndexEntry],
    ) -> Survey {
        let mut surveyor = Surveyor::new(state, first_dirty, rules, NOW);
        for entry in entries {
            if !surveyor.add(entry) {
                break;
            }
        }
        surveyor.finish()
    }

    #[test]
    fn topic_rules_need_compact_in_the_policy() {
        let configs = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(TopicRules::of(&configs(&[])).is_none());
        let both = TopicRules::of(&configs(&[
            ("cleanup.policy", "compact, delete"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("segment.ms", "100"),
        ]))
        .unwrap();
        assert_eq!(both.min_dirty_ratio, 0.01);
        assert_eq!(both.segment_ms, 100);
        assert_eq!(both.delete_retention_ms, 86_400_000);
        assert_eq!(both.max_lag_ms, i64::MAX);
        assert!(both.deletes);
    }

    #[test]
    fn the_active_segment_and_the_lag_are_left_alone() {
        let rules = rules();
        let entries = [
            entry(0, 9, NOW - 10_000),
            entry(10, 19, NOW - 5_000),
            entry(20, 29, NOW - 50),
            entry(30, 39, NOW - 10_000),
        ];
        let found = survey(&state(40), 0, &rules, &entries);
        assert_eq!(found.first_uncleanable, 20);
        assert_eq!((found.dirty_bytes, found.dirty_records), (200, 20));
        let lagging = TopicRules {
            min_lag_ms: 6_000,
            ..rules
        };
        assert_eq!(
            survey(&state(40), 0, &lagging, &entries).first_uncleanable,
            10
        );
        // Everything old: up to the high watermark.
        let old = [entry(0, 9, NOW - 10_000)];
        assert_eq!(survey(&state(10), 0, &rules, &old).first_uncleanable, 10);
    }

    #[test]
    fn an_open_transaction_stops_the_cleanable_part() {
        let mut open = state(40);
        open.open_transactions = vec![fjord_metadata::OpenTransaction {
            producer_id: 3,
            first_offset: 15,
        }];
        let entries = [entry(0, 9, NOW - 10_000), entry(10, 19, NOW - 10_000)];
        assert_eq!(survey(&open, 0, &rules(), &entries).first_uncleanable, 10);
    }

    #[test]
    fn a_clean_is_due_by_ratio_lag_or_horizon() {
        let rules = rules();
        let entries = [entry(0, 9, NOW - 10_000), entry(10, 19, NOW - 10_000)];
        let partition = state(20);
        let checkpoint = |first_dirty_offset, delete_horizon_ms| LogCompactionState {
            first_dirty_offset,
            delete_horizon_ms,
            cleaned_at_ms: 0,
        };
        // Never cleaned: all dirty.
        let all = survey(&partition, 0, &rules, &entries);
        let due = plan(&partition, None, &all, rules, NOW).unwrap();
        assert_eq!((due.first_dirty, due.first_uncleanable), (0, 20));
        assert_eq!(due.dirty_ratio, 1.0);
        // Half dirty: not above 0.5.
        let cleaned = checkpoint(10, None);
        let half = survey(&partition, 10, &rules, &entries);
        assert!(plan(&partition, Some(&cleaned), &half, rules, NOW).is_none());
        // ... unless overdue by max.compaction.lag.ms.
        let overdue = TopicRules {
            max_lag_ms: 1_000,
            ..rules
        };
        assert!(plan(&partition, Some(&cleaned), &half, overdue, NOW).is_some());
        // Nothing dirty: only a passed horizon makes it due.
        let clean = checkpoint(20, Some(NOW + 1));
        let none = survey(&partition, 20, &rules, &entries);
        assert!(plan(&partition, Some(&clean), &none, rules, NOW).is_none());
        let passed = checkpoint(20, Some(NOW));
        let due = plan(&partition, Some(&passed), &none, rules, NOW).unwrap();
        assert_eq!(due.first_dirty, 20);
    }
}
