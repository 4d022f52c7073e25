//! Which live agent should hold which item: rendezvous hashing with bounded
//! load, a pure function of the item and the live set.
//!
//! The agents that should lead a topic's partitions are chosen item by item:
//! the live agent with the highest hash weight that still has room, so every
//! agent holds ⌊partitions ÷ agents⌋ or ⌈partitions ÷ agents⌉ of the topic.
//! Every agent with the same view computes the same placement, each topic is
//! spread evenly (plain rendezvous hashing leaves an agent without any of a
//! 6-partition topic one time in four), and when an agent joins or leaves, few
//! items besides its own share move. Coordinator shards are placed the same
//! way, as one more "topic" ([`COORDINATOR_SHARD_NAMESPACE`]).

use std::collections::HashMap;

/// SplitMix64's output function: mixes a key's CRC-32C with a node id into a
/// well-spread weight (CRC alone is linear, so it would favour some nodes), the
/// same in every process and version (unlike `std`'s hasher).
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The owners of items `0..count` of `namespace` (a topic's partitions, or the
/// coordinator shards) among `nodes`: rendezvous hashing with bounded load.
///
/// Item by item, the owner is the node of highest weight that still has room:
/// every node ends with ⌊count ÷ nodes⌋ or ⌈count ÷ nodes⌉ items (a cap of
/// ⌈count ÷ nodes⌉ alone can leave a node with nothing: 6 items over 4 nodes
/// as 2, 2, 2, 0).
pub fn placement(namespace: &[u8], count: u32, nodes: &[i32]) -> Vec<i32> {
    if nodes.is_empty() {
        return Vec::new();
    }
    let node_count = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
    let floor = count / node_count;
    // How many nodes may hold one item more than the floor.
    let mut larger_left = count % node_count;
    let mut load: HashMap<i32, u32> = HashMap::new();
    let mut owners = Vec::with_capacity(count as usize);
    for index in 0..count {
        let mut key = namespace.to_vec();
        key.extend_from_slice(&index.to_be_bytes());
        let key_hash = u64::from(crc32c::crc32c(&key)) << 32;
        let mut ranked: Vec<(u64, i32)> = nodes
            .iter()
            .map(|node| (mix(key_hash | u64::from(node.cast_unsigned())), *node))
            .collect();
        ranked.sort_unstable_by(|a, b| b.cmp(a));
        let has_room = |node: &i32| {
            let held = load.get(node).copied().unwrap_or(0);
            held < floor || (held == floor && larger_left > 0)
        };
        // Some node always has room: the loads sum to less than `count`.
        let owner = ranked
            .iter()
            .map(|(_, node)| *node)
            .find(has_room)
            .unwrap_or(ranked[0].1);
        let held = load.entry(owner).or_default();
        if *held == floor {
            larger_left = larger_left.saturating_sub(1);
        }
        *held += 1;
        owners.push(owner);
    }
    owners
}

pub const COORDINATOR_SHARD_NAMESPACE: &[u8] = b"group-coordinator-shards";

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn bounded_placement_spreads_every_topic_evenly() {
        let mut moved = 0;
        for topic in 0..500u32 {
            let ns = topic.to_be_bytes();
            let three = placement(&ns, 6, &[1, 2, 3]);
            for node in [1, 2, 3] {
                assert_eq!(three.iter().filter(|n| **n == node).count(), 2, "{three:?}");
            }
            let four = placement(&ns, 6, &[1, 2, 3, 4]);
            for node in [1, 2, 3, 4] {
                assert!(four.iter().filter(|n| **n == node).count() <= 2, "{four:?}");
            }
            moved += three.iter().zip(&four).filter(|(a, b)| a != b).count();
            // Everyone computes the same, whatever order the nodes come in.
            assert_eq!(three, placement(&ns, 6, &[3, 1, 2]));
        }
        // A fourth agent takes its share (at most 2 of 6) plus some reshuffling.
        assert!(moved < 500 * 3, "{moved} moves over 500 topics");
    }

    #[test]
    fn every_node_gets_its_fair_share_of_every_topic() {
        for topic in 0..300u32 {
            let ns = topic.to_be_bytes();
            for count in [1u32, 5, 6, 7, 12, 16, 64] {
                for nodes in 1..=6i32 {
                    let ids: Vec<i32> = (1..=nodes).collect();
                    let owners = placement(&ns, count, &ids);
                    assert_eq!(owners.len(), count as usize);
                    let n = u32::try_from(nodes).unwrap();
                    for node in &ids {
                        let held =
                            u32::try_from(owners.iter().filter(|o| *o == node).count()).unwrap();
                        assert!(
                            held == count / n || held == count.div_ceil(n),
                            "{count} items over {nodes} nodes: node {node} holds {held} ({owners:?})"
                        );
                    }
                }
            }
        }
    }
}
