//! The server-side assignors of the consumer protocol (KIP-848): `uniform` and
//! `range`. Pure functions from the members' subscriptions (and, for
//! stickiness, the previous target) and the subscribed topics' partition counts
//! to a new target assignment.
//!
//! Both are total: every partition of a subscribed topic goes to exactly one
//! member subscribed to it, and a member subscribed to nothing gets nothing.

use std::collections::{BTreeMap, BTreeSet};

use fjord_metadata::TopicId;

use super::Assignment;

/// The assignors this coordinator offers, the default first (Kafka's
/// `group.consumer.assignors`).
pub(crate) const ASSIGNORS: [&str; 2] = ["uniform", "range"];

/// What an assignor sees of one member.
#[derive(Debug, Clone)]
pub(crate) struct MemberSpec<'a> {
    pub(crate) member_id: &'a str,
    /// The topics it subscribes to (that exist).
    pub(crate) topics: BTreeSet<TopicId>,
    /// Its part of the previous target, which `uniform` keeps where it can.
    pub(crate) previous: &'a Assignment,
}

/// Runs assignor `name` (one of [`ASSIGNORS`]; anything else is `uniform`).
pub(crate) fn assign(
    name: &str,
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    match name {
        "range" => range(members, partitions),
        _ => uniform(members, partitions),
    }
}

/// Kafka's `range`: per topic, the subscribed members in member-id order take
/// contiguous ranges of partitions, the first ones one more when the count does
/// not divide.
fn range(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), Assignment::new()))
        .collect();
    for (&topic, &count) in partitions {
        let mut subscribed: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(&topic))
            .map(|m| m.member_id)
            .collect();
        if subscribed.is_empty() || count <= 0 {
            continue;
        }
        subscribed.sort_unstable();
        let n = subscribed.len() as i32;
        let (per, extra) = (count / n, count % n);
        let mut next = 0;
        for (index, member) in subscribed.iter().enumerate() {
            let take = per + i32::from((index as i32) < extra);
            if take == 0 {
                continue;
            }
            let entry = result.entry((*member).to_owned()).or_default();
            entry.entry(topic).or_default().extend(next..next + take);
            next += take;
        }
    }
    result
}

/// Kafka's `uniform`: partitions spread as evenly as subscriptions allow,
/// keeping each member's previous partitions where that stays balanced.
///
/// First every member keeps previous partitions it still subscribes to, up to
/// its fair share rounded down; then the remaining partitions — those with the
/// fewest eligible members first — each go to the least loaded eligible member
/// (its previous owner on a tie).
fn uniform(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, Assignment> {
    let mut result: BTreeMap<String, Assignment> = members
        .iter()
        .map(|m| (m.member_id.to_owned(), Assignment::new()))
        .collect();
    let mut load: BTreeMap<&str, usize> = members.iter().map(|m| (m.member_id, 0)).collect();
    // Who may take each topic, and the fair share of every member: the sum over
    // its topics of the topic's partitions divided by its subscribers.
    let mut eligible: BTreeMap<TopicId, Vec<&str>> = BTreeMap::new();
    for member in members {
        for topic in &member.topics {
            if partitions.contains_key(topic) {
                eligible.entry(*topic).or_default().push(member.member_id);
            }
        }
    }
    let mut share: BTreeMap<&str, f64> = BTreeMap::new();
    for (topic, subscribers) in &eligible {
        let count = f64::from(partitions.get(topic).copied().unwrap_or(0).max(0));
        for member in subscribers {
            *share.entry(member).or_default() += count / subscribers.len() as f64;
        }
    }
    let mut previous_owner: BTreeMap<(TopicId, i32), &str> = BTreeMap::new();
    for member in members {
        for (topic, parts) in member.previous {
            for partition in parts {
                previous_owner.insert((*topic, *partition), member.member_id);
            }
        }
    }
    let mut taken: BTreeSet<(TopicId, i32)> = BTreeSet::new();
    // Sticky pass.
    for member in members {
        let cap = share.get(member.member_id).copied().unwrap_or(0.0).floor() as usize;
        for (topic, parts) in member.previous {
            let Some(&count) = partitions.get(topic) else {
                continue;
            };
            if !member.topics.contains(topic) {
                continue;
            }
            for &partition in parts {
                let current = load.get(member.member_id).copied().unwrap_or(0);
                if current >= cap || partition < 0 || partition >= count {
                    continue;
                }
                if !taken.insert((*topic, partition)) {
                    continue;
                }
                result
                    .entry(member.member_id.to_owned())
                    .or_default()
                    .entry(*topic)
                    .or_default()
                    .insert(partition);
                *load.entry(member.member_id).or_default() += 1;
            }
        }
    }
    // Balancing pass: the most constrained partitions first.
    let mut remaining: Vec<(usize, TopicId, i32)> = Vec::new();
    for (topic, subscribers) in &eligible {
        let count = partitions.get(topic).copied().unwrap_or(0);
        for partition in 0..count {
            if !taken.contains(&(*topic, partition)) {
                remaining.push((subscribers.len(), *topic, partition));
            }
        }
    }
    remaining.sort_unstable();
    for (_, topic, partition) in remaining {
        let Some(subscribers) = eligible.get(&topic) else {
            continue;
        };
        let previous = previous_owner.get(&(topic, partition)).copied();
        let least = subscribers
            .iter()
            .copied()
            .min_by_key(|member| {
                let tie = if Some(*member) == previous { 0 } else { 1 };
                (load.get(member).copied().unwrap_or(0), tie, *member)
            })
            .unwrap_or_default();
        if least.is_empty() {
            continue;
        }
        result
            .entry(least.to_owned())
            .or_default()
            .entry(topic)
            .or_default()
            .insert(partition);
        *load.entry(least).or_default() += 1;
    }
    rebalance_chains(
        &mut result,
        &eligible,
        partitions.values().map(|n| *n as usize).sum(),
    );
    result
}

/// With different subscriptions the greedy pass can leave a member two or
/// more partitions above another that could not take its partitions directly.
/// Moves partitions along chains (the loaded member gives one to a member
/// that gives one on, ...) until no member is two above one it reaches.
fn rebalance_chains(
    result: &mut BTreeMap<String, Assignment>,
    eligible: &BTreeMap<TopicId, Vec<&str>>,
    budget: usize,
) {
    for _ in 0..budget {
        let loads: BTreeMap<String, usize> = result
            .iter()
            .map(|(m, a)| (m.clone(), a.values().map(BTreeSet::len).sum()))
            .collect();
        let mut moved = false;
        let mut by_load: Vec<(&String, usize)> = loads.iter().map(|(m, l)| (m, *l)).collect();
        by_load.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        for (source, source_load) in by_load {
            // Breadth-first over "holds a partition the next one may take".
            let mut came_from: BTreeMap<String, (String, TopicId, i32)> = BTreeMap::new();
            let mut queue = std::collections::VecDeque::from([source.clone()]);
            let mut found = None;
            while let Some(member) = queue.pop_front() {
                if loads.get(&member).copied().unwrap_or(0) + 2 <= source_load {
                    found = Some(member);
                    break;
                }
                let Some(held) = result.get(&member) else {
                    continue;
                };
                for (topic, parts) in held {
                    let Some(partition) = parts.iter().next_back().copied() else {
                        continue;
                    };
                    for next in eligible.get(topic).into_iter().flatten() {
                        if *next != source.as_str() && !came_from.contains_key(*next) {
                            came_from
                                .insert((*next).to_owned(), (member.clone(), *topic, partition));
                            queue.push_back((*next).to_owned());
                        }
                    }
                }
            }
            let Some(mut to) = found else {
                continue;
            };
            while let Some((from, topic, partition)) = came_from.remove(&to) {
                if let Some(parts) = result.get_mut(&from).and_then(|a| a.get_mut(&topic)) {
                    parts.remove(&partition);
                }
                result
                    .entry(to.clone())
                    .or_default()
                    .entry(topic)
                    .or_default()
                    .insert(partition);
                if from == *source {
                    break;
                }
                to = from;
            }
            for assignment in result.values_mut() {
                assignment.retain(|_, parts| !parts.is_empty());
            }
            moved = true;
            break;
        }
        if !moved {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn topic(n: u128) -> TopicId {
        TopicId(Uuid::from_u128(n))
    }

    fn count(assignment: &Assignment) -> usize {
        assignment.values().map(BTreeSet::len).sum()
    }

    /// Every partition of every subscribed topic is assigned exactly once, to a
    /// subscriber.
    fn check_total(
        members: &[MemberSpec<'_>],
        partitions: &BTreeMap<TopicId, i32>,
        result: &BTreeMap<String, Assignment>,
    ) {
        let mut seen = BTreeSet::new();
        for (member, assignment) in result {
            let spec = members.iter().find(|m| m.member_id == member).unwrap();
            for (t, parts) in assignment {
                assert!(spec.topics.contains(t), "{member} got unsubscribed {t}");
                for p in parts {
                    assert!(seen.insert((*t, *p)), "{t}/{p} assigned twice");
                }
            }
        }
        for (t, n) in partitions {
            if members.iter().any(|m| m.topics.contains(t)) {
                for p in 0..*n {
                    assert!(seen.contains(&(*t, p)), "{t}/{p} unassigned");
                }
            }
        }
    }

    #[test]
    fn uniform_balances_and_sticks() {
        let empty = Assignment::new();
        let partitions = BTreeMap::from([(topic(1), 12)]);
        let names = ["a", "b", "c"];
        let specs: Vec<MemberSpec<'_>> = names
            .iter()
            .map(|n| MemberSpec {
                member_id: n,
                topics: BTreeSet::from([topic(1)]),
                previous: &empty,
            })
            .collect();
        let first = assign("uniform", &specs, &partitions);
        check_total(&specs, &partitions, &first);
        assert!(first.values().all(|a| count(a) == 4), "{first:?}");

        // A fourth member joins: each old member keeps 3 of its 4 partitions.
        let mut specs: Vec<MemberSpec<'_>> = names
            .iter()
            .map(|n| MemberSpec {
                member_id: n,
                topics: BTreeSet::from([topic(1)]),
                previous: &first[*n],
            })
            .collect();
        specs.push(MemberSpec {
            member_id: "d",
            topics: BTreeSet::from([topic(1)]),
            previous: &empty,
        });
        let second = assign("uniform", &specs, &partitions);
        check_total(&specs, &partitions, &second);
        assert!(second.values().all(|a| count(a) == 3), "{second:?}");
        for n in names {
            let kept = first[n][&topic(1)]
                .intersection(&second[n][&topic(1)])
                .count();
            assert_eq!(kept, 3, "{n} moved more than it had to");
        }
    }

    #[test]
    fn uniform_handles_different_subscriptions_and_seven_members_on_twelve_partitions() {
        let empty = Assignment::new();
        let partitions = BTreeMap::from([(topic(1), 4), (topic(2), 8)]);
        let specs = vec![
            MemberSpec {
                member_id: "a",
                topics: BTreeSet::from([topic(1)]),
                previous: &empty,
            },
            MemberSpec {
                member_id: "b",
                topics: BTreeSet::from([topic(1), topic(2)]),
                previous: &empty,
            },
            MemberSpec {
                member_id: "c",
                topics: BTreeSet::from([topic(2)]),
                previous: &empty,
            },
            MemberSpec {
                member_id: "z",
                topics: BTreeSet::new(),
                previous: &empty,
            },
        ];
        let result = assign("uniform", &specs, &partitions);
        check_total(&specs, &partitions, &result);
        assert_eq!(count(&result["z"]), 0);
        // b's topic-1 partitions move on to a so that c can hand b its extra.
        let loads: Vec<usize> = ["a", "b", "c"].iter().map(|m| count(&result[*m])).collect();
        assert_eq!(loads, vec![4, 4, 4]);

        let names: Vec<String> = (0..7).map(|i| format!("m{i}")).collect();
        let one = BTreeMap::from([(topic(1), 12)]);
        let specs: Vec<MemberSpec<'_>> = names
            .iter()
            .map(|n| MemberSpec {
                member_id: n,
                topics: BTreeSet::from([topic(1)]),
                previous: &empty,
            })
            .collect();
        let result = assign("uniform", &specs, &one);
        check_total(&specs, &one, &result);
        let loads: BTreeSet<usize> = result.values().map(count).collect();
        assert_eq!(loads, BTreeSet::from([1, 2]));
    }

    #[test]
    fn range_gives_contiguous_ranges_by_member_id() {
        let empty = Assignment::new();
        let partitions = BTreeMap::from([(topic(1), 5), (topic(2), 2)]);
        let specs: Vec<MemberSpec<'_>> = ["b", "a"]
            .iter()
            .map(|n| MemberSpec {
                member_id: n,
                topics: BTreeSet::from([topic(1), topic(2)]),
                previous: &empty,
            })
            .collect();
        let result = assign("range", &specs, &partitions);
        check_total(&specs, &partitions, &result);
        assert_eq!(result["a"][&topic(1)], BTreeSet::from([0, 1, 2]));
        assert_eq!(result["b"][&topic(1)], BTreeSet::from([3, 4]));
        assert_eq!(result["a"][&topic(2)], BTreeSet::from([0]));
        assert_eq!(result["b"][&topic(2)], BTreeSet::from([1]));
    }
}
