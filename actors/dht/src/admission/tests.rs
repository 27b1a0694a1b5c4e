use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::keyspace::Partitioning;
use crate::placement::PlacementRules;
use hypha_cluster::membership::{ClusterView, MemberKey, MemberSnapshot, MemberState};

const GRACE_MS: u64 = 1_000;

fn rules() -> PlacementRules {
    PlacementRules {
        partitioning: Partitioning::new(4).expect("bits"),
        replicas: 3,
        down_grace_ms: GRACE_MS,
        write_quorum: 2,
        pins: Default::default(),
    }
}

pub(crate) fn key(id: [u8; 32]) -> MemberKey {
    MemberKey::new(hex::encode(id), 1)
}

pub(crate) fn id(first: u8) -> [u8; 32] {
    let mut id = [0x55; 32];
    id[0] = first;
    id
}

fn snapshot(id: [u8; 32], is_self: bool, state: MemberState) -> MemberSnapshot {
    crate::placement::tests::snapshot(key(id), is_self, state)
}

/// `me` and `others`, all Up, as `me` sees them (16 partitions, R = 3).
pub(crate) fn placement_of(me: [u8; 32], others: &[[u8; 32]]) -> Placement {
    let mut members = vec![snapshot(me, true, MemberState::Up)];
    members.extend(others.iter().map(|o| snapshot(*o, false, MemberState::Up)));
    let view = ClusterView {
        members,
        isolated: false,
    };
    Placement::build(key(me), &view, rules(), &BTreeMap::new(), 0)
}

fn partitions() -> impl Iterator<Item = Partition> {
    (0..16).map(Partition)
}

fn refused(admit: Admit) -> bool {
    matches!(admit, Admit::Refuse(_))
}

#[test]
fn replicas_are_admitted_the_next_owner_too_and_far_partitions_refused() {
    let me = id(0x00);
    let others: Vec<[u8; 32]> = (1..8).map(|i| id(i * 0x20)).collect();
    let p = placement_of(me, &others);
    let mut far = 0;
    for partition in partitions() {
        let replica = p.replicas(partition).contains(&key(me));
        let rank = p.rank_of_me(partition).expect("an owner");
        let admit = admit_write(partition, &p, 0);
        match rank {
            1..=3 => assert!(replica && admit == Admit::Replica, "{partition:?}"),
            4 => assert_eq!(admit, Admit::Near { rank: 4 }),
            _ => {
                far += 1;
                let Admit::Refuse(refusal) = admit else {
                    panic!("{partition:?} at rank {rank} admitted: {admit:?}");
                };
                assert_eq!(refusal.within, 4);
                assert!(refusal.to_string().contains("not a replica of partition"));
            }
        }
    }
    assert!(far >= 8, "half the partitions are far from a node of 8");
}

#[test]
fn a_partition_pushed_away_by_joins_stays_writable_for_the_grace() {
    let me = id(0x08);
    let before = placement_of(me, &[id(0x80), id(0xc0), id(0xe0)]);
    // Four nodes join closer to partition 0, where this node was first.
    let joined = [
        id(0x00),
        id(0x01),
        id(0x02),
        id(0x03),
        id(0x80),
        id(0xc0),
        id(0xe0),
    ];
    let after = placement_of(me, &joined).with_history(&before, 10_000);
    let p0 = Partition(0);
    assert_eq!(before.rank_of_me(p0), Some(1));
    assert_eq!(after.rank_of_me(p0), Some(5), "behind the newcomers");
    assert_eq!(
        admit_write(p0, &after, 10_999),
        Admit::Recent { ago_ms: 999 }
    );
    assert!(refused(admit_write(p0, &after, 11_000)));
    // The memory forgets it once the grace has passed.
    let later = placement_of(me, &joined).with_history(&after, 11_000);
    assert_eq!(later.history().left_at_ms(p0), None);
}

#[test]
fn a_first_view_after_a_start_keeps_every_partition_writable_for_the_grace() {
    let me = id(0x00);
    let others: Vec<[u8; 32]> = (1..8).map(|i| id(i * 0x20)).collect();
    let alone = Placement::alone(key(me), rules());
    let first = placement_of(me, &others).with_history(&alone, 5_000);
    assert!(partitions().all(|p| !refused(admit_write(p, &first, 5_999))));
    assert!(partitions().any(|p| refused(admit_write(p, &first, 6_000))));
}

#[test]
fn a_node_with_no_owned_place_is_refused_everywhere() {
    let mut me = snapshot(id(0), true, MemberState::Up);
    me.key = MemberKey::new("not hex", 1);
    let view = ClusterView {
        members: vec![me.clone(), snapshot(id(0x80), false, MemberState::Up)],
        isolated: false,
    };
    let p = Placement::build(me.key, &view, rules(), &BTreeMap::new(), 0);
    assert!(partitions().all(|part| refused(admit_write(part, &p, 0))));
}

/// A member set: distinct ids, the first is this node.
fn members() -> impl Strategy<Value = Vec<[u8; 32]>> {
    proptest::collection::btree_set(any::<[u8; 32]>(), 2..12)
        .prop_map(|set| set.into_iter().collect())
}

fn state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Up),
        Just(MemberState::Suspect),
        Just(MemberState::Down),
        Just(MemberState::Joining),
        Just(MemberState::Left),
    ]
}

proptest! {
    /// Whatever the view, a node that is a replica in its own placement
    /// takes the write.
    #[test]
    fn a_replica_in_its_own_placement_is_never_refused(
        ids in members(),
        states in proptest::collection::vec(state(), 12),
        absent in proptest::collection::vec(proptest::option::of(0u64..3_000), 12),
        now_ms in 0u64..3_000,
    ) {
        let me = ids[0];
        let mut members = vec![snapshot(me, true, MemberState::Up)];
        let mut since = BTreeMap::new();
        for (i, other) in ids.iter().enumerate().skip(1) {
            members.push(snapshot(*other, false, states[i]));
            if let Some(at) = absent[i] {
                since.insert(key(*other), at.min(now_ms));
            }
        }
        let view = ClusterView { members, isolated: false };
        let p = Placement::build(key(me), &view, rules(), &since, now_ms);
        for partition in partitions() {
            let replica = p.replicas(partition).contains(&key(me));
            let admitted = admit_write(partition, &p, now_ms) == Admit::Replica;
            // A replica is admitted as one. The converse fails only for a
            // partition kept on its home set (more than W − 1 of its
            // replicas gone): a node among the R closest owners is
            // admitted without being in that set, which refuses nothing
            // a replica needs.
            prop_assert!(!replica || admitted);
            if !p.replicas(partition).iter().any(|m| !p.owns_node(&m.node_id)) {
                prop_assert_eq!(replica, admitted);
            }
        }
    }

    /// A sender whose view differs from the receiver's by one member (a
    /// join it has not seen, or a member whose Down grace it already saw
    /// end) only targets nodes that take the write.
    #[test]
    fn views_one_member_apart_never_refuse_a_target(
        ids in members(),
        extra in any::<[u8; 32]>(),
        sender_knows_extra in any::<bool>(),
    ) {
        prop_assume!(!ids.contains(&extra));
        let with: Vec<[u8; 32]> = ids.iter().copied().chain([extra]).collect();
        let (sender_view, receiver_view) = if sender_knows_extra {
            (&with, &ids)
        } else {
            (&ids, &with)
        };
        let sender = placement_of(sender_view[0], &sender_view[1..]);
        for partition in partitions() {
            for target in sender.replicas(partition) {
                let Some(pos) = receiver_view.iter().position(|i| key(*i) == target) else {
                    continue; // the extra member, judging by its own view
                };
                let mut order = receiver_view.to_vec();
                order.swap(0, pos);
                let receiver = placement_of(order[0], &order[1..]);
                prop_assert!(!refused(admit_write(partition, &receiver, 0)));
            }
        }
    }

    /// Through any sequence of placements, a partition that was near this
    /// node is admitted for the grace after it stopped being near, and
    /// the memory holds nothing older.
    #[test]
    fn the_memory_covers_every_partition_near_within_the_grace(
        pool in proptest::collection::btree_set(any::<[u8; 32]>(), 8..12),
        steps in proptest::collection::vec(
            (proptest::collection::vec(any::<bool>(), 12), 1u64..800),
            1..8,
        ),
    ) {
        let pool: Vec<[u8; 32]> = pool.into_iter().collect();
        let me = pool[0];
        let mut now_ms = 10_000;
        let mut current = Placement::alone(key(me), rules());
        // (placement, when it was replaced)
        let mut past: Vec<(Placement, u64)> = Vec::new();
        for (present, step_ms) in steps {
            now_ms += step_ms;
            let others: Vec<[u8; 32]> = pool[1..]
                .iter()
                .zip(&present)
                .filter(|(_, here)| **here)
                .map(|(o, _)| *o)
                .collect();
            let next = placement_of(me, &others).with_history(&current, now_ms);
            past.push((std::mem::replace(&mut current, next), now_ms));
            for partition in partitions() {
                let near_recently = past
                    .iter()
                    .any(|(p, until)| now_ms - until < GRACE_MS && is_near(p, partition));
                if near_recently {
                    prop_assert!(!refused(admit_write(partition, &current, now_ms)));
                }
                if let Some(at) = current.history().left_at_ms(partition) {
                    prop_assert!(now_ms - at < GRACE_MS);
                }
            }
            prop_assert!(current.history().len() <= 16);
        }
    }
}
