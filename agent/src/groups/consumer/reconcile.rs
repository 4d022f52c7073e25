//! Moving one member from the partitions it owns towards its target
//! (Kafka's `CurrentAssignmentBuilder`), without ever letting two members own
//! a partition at once.
//!
//! - Partitions the member owns that its target gave away must be revoked
//!   first: the member keeps its epoch, is told its assignment without them,
//!   and stays `UnrevokedPartitions` until a heartbeat shows it no longer owns
//!   them.
//! - Only then does it move to the target's epoch, taking the target
//!   partitions no other member owns; the rest it gets once released
//!   (`UnreleasedPartitions`).

use std::collections::BTreeSet;

use fjord_metadata::{ConsumerMemberState, TopicId};

use super::Assignment;

/// A member's position in the reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    pub(crate) member_epoch: i32,
    pub(crate) state: ConsumerMemberState,
    pub(crate) assigned: Assignment,
    pub(crate) pending_revocation: Assignment,
}

/// The member's next position towards `target` (computed at `target_epoch`).
/// `owned` is what the member reported owning in this heartbeat (`None`: not
/// reported); `held_by_others` tells whether another member still owns a
/// partition (assigned or pending revocation).
pub(crate) fn next(
    current: &Position,
    target_epoch: i32,
    target: &Assignment,
    owned: Option<&Assignment>,
    held_by_others: impl Fn(TopicId, i32) -> bool,
) -> Position {
    match current.state {
        ConsumerMemberState::UnrevokedPartitions => {
            // Still waiting for the member to give up partitions.
            let revoked = owned.is_some_and(|owned| is_subset(owned, &current.assigned));
            if !revoked {
                return current.clone();
            }
        }
        ConsumerMemberState::Stable | ConsumerMemberState::UnreleasedPartitions => {
            if current.member_epoch == target_epoch && current.state == ConsumerMemberState::Stable
            {
                return current.clone();
            }
        }
    }
    let mut keep = Assignment::new();
    let mut revoke = Assignment::new();
    let mut add = Assignment::new();
    let mut unreleased = false;
    let topics: BTreeSet<TopicId> = current
        .assigned
        .keys()
        .chain(target.keys())
        .copied()
        .collect();
    for topic in topics {
        let empty = BTreeSet::new();
        let now = current.assigned.get(&topic).unwrap_or(&empty);
        let wanted = target.get(&topic).unwrap_or(&empty);
        for &partition in now {
            let side = if wanted.contains(&partition) {
                &mut keep
            } else {
                &mut revoke
            };
            side.entry(topic).or_default().insert(partition);
        }
        for &partition in wanted.difference(now) {
            if held_by_others(topic, partition) {
                unreleased = true;
            } else {
                add.entry(topic).or_default().insert(partition);
            }
        }
    }
    if !revoke.is_empty() {
        return Position {
            member_epoch: current.member_epoch,
            state: ConsumerMemberState::UnrevokedPartitions,
            assigned: keep,
            pending_revocation: revoke,
        };
    }
    for (topic, partitions) in add {
        keep.entry(topic).or_default().extend(partitions);
    }
    Position {
        member_epoch: target_epoch,
        state: if unreleased {
            ConsumerMemberState::UnreleasedPartitions
        } else {
            ConsumerMemberState::Stable
        },
        assigned: keep,
        pending_revocation: Assignment::new(),
    }
}

/// Whether every partition of `a` is in `b`.
pub(crate) fn is_subset(a: &Assignment, b: &Assignment) -> bool {
    a.iter().all(|(topic, partitions)| {
        partitions.is_empty()
            || b.get(topic)
                .is_some_and(|owned| partitions.is_subset(owned))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use uuid::Uuid;

    fn t() -> TopicId {
        TopicId(Uuid::from_u128(1))
    }

    fn parts(list: &[i32]) -> Assignment {
        if list.is_empty() {
            return Assignment::new();
        }
        BTreeMap::from([(t(), list.iter().copied().collect())])
    }

    fn at(epoch: i32, state: ConsumerMemberState, assigned: &[i32], pending: &[i32]) -> Position {
        Position {
            member_epoch: epoch,
            state,
            assigned: parts(assigned),
            pending_revocation: parts(pending),
        }
    }

    #[test]
    fn revocation_comes_before_the_new_epoch() {
        use ConsumerMemberState::*;
        let start = at(1, Stable, &[0, 1, 2], &[]);
        let step = next(&start, 2, &parts(&[0, 1]), None, |_, _| false);
        assert_eq!(step, at(1, UnrevokedPartitions, &[0, 1], &[2]));
        // Not acknowledged yet: nothing moves.
        let same = next(
            &step,
            2,
            &parts(&[0, 1]),
            Some(&parts(&[0, 1, 2])),
            |_, _| false,
        );
        assert_eq!(same, step);
        // Acknowledged: the member reaches epoch 2.
        let done = next(&step, 2, &parts(&[0, 1]), Some(&parts(&[0, 1])), |_, _| {
            false
        });
        assert_eq!(done, at(2, Stable, &[0, 1], &[]));
    }

    #[test]
    fn partitions_held_elsewhere_wait_until_released() {
        use ConsumerMemberState::*;
        let start = at(1, Stable, &[0], &[]);
        let held = |_: TopicId, p: i32| p == 3;
        let step = next(&start, 2, &parts(&[0, 3, 4]), None, held);
        assert_eq!(step, at(2, UnreleasedPartitions, &[0, 4], &[]));
        let done = next(&step, 2, &parts(&[0, 3, 4]), None, |_, _| false);
        assert_eq!(done, at(2, Stable, &[0, 3, 4], &[]));
        // A stable member at the target epoch stays as it is.
        assert_eq!(next(&done, 2, &parts(&[0, 3, 4]), None, held), done);
    }
}
