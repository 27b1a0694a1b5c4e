//! Who holds what: a partition's replica set is the R owners XOR-closest
//! to the partition id. Owners are the members that are Up or Suspect, plus
//! members absent for less than a grace period: declared Down, or Joining
//! while they hold their node's place — a restarted node's new generation
//! replaces the old one in the view at once but is Joining until it has
//! linked again, and in that window its partitions must not move to the
//! next closest node (a write acknowledged there is missed by a read from
//! the replicas the rest of the cluster sees; found by the chaos harness).
//! So a crash or a restart does not move a partition at once, and writes
//! to a partition that lost W of its R replicas fail instead of quietly
//! landing elsewhere. After the grace the set moves to the next closest
//! owners; anti-entropy re-replicates. Joining members that never held a
//! place (new nodes) and Left members are not owners: the former start
//! owning once linked, the latter handed off before leaving.
//!
//! Zones (docs/dht.md, "Zones"): owners are taken in [`zones::spread_order`],
//! so a partition's R replicas sit in R distinct zones when the cluster
//! has that many; a partition in a pinned class (a pinned name prefix,
//! [`Partitioning::with_pins`]) draws only from owners in the pin's zones.
//!
//! Built from the full membership view, so placement is local (one hop);
//! the routing table beside it serves find-node for partial views. Pure:
//! the router actor rebuilds it on every view change and grace expiry.

pub mod zones;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::admission::RoleHistory;
use super::keyspace::{Key, Partition, Partitioning};
use super::manifest::name_key;
use super::routing::{RoutingTable, K};
use hypha_cluster::membership::{ClusterView, MemberKey, MemberState};
pub use zones::ZoneSet;
use zones::UNLABELLED;

/// The placement a node uses now.
#[derive(Debug, Clone)]
pub struct Placement {
    me: MemberKey,
    partitioning: Partitioning,
    replicas: usize,
    owners: Vec<(Key, MemberKey)>,
    /// Owners plus members absent past the grace (not Left): where each
    /// partition's replicas would be if nobody had gone ([`Placement::replicas`]).
    home: Vec<(Key, MemberKey)>,
    /// At most this many of a partition's home replicas may be replaced
    /// (W − 1): the rest must remain to hand the data on.
    max_replaced: usize,
    live: Vec<MemberKey>,
    /// Each known member's zone label ([`UNLABELLED`] if none or not yet
    /// heard).
    zones: BTreeMap<MemberKey, String>,
    /// Zones of each pinned class (index = class − 1).
    pins: Arc<Vec<ZoneSet>>,
    routing: RoutingTable<MemberKey>,
    settled: bool,
    /// How long partitions this node stopped being near stay writable
    /// here (the Down grace; [`crate::admission`]).
    write_grace_ms: u64,
    history: RoleHistory,
}

/// Facts placement is built from besides the view.
#[derive(Debug, Clone)]
pub struct PlacementRules {
    /// Partitioning of the keyspace.
    pub partitioning: Partitioning,
    /// Replicas per partition (R).
    pub replicas: usize,
    /// How long an absent member (Down, or Joining in its node's place)
    /// still owns its partitions.
    pub down_grace_ms: u64,
    /// Replicas that acknowledge a write (W): a partition moves away from
    /// absent members only while R − W + 1 of its home replicas remain.
    pub write_quorum: usize,
    /// The zones of each pinned prefix, in the order of the prefixes in
    /// `partitioning` (class `i + 1` is `pins[i]`).
    pub pins: Arc<Vec<ZoneSet>>,
}

/// How spread a partition's replicas are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spread {
    /// Distinct zones among its replicas.
    pub zones: usize,
    /// Distinct zones it could have: min(R, zones among the owners it may
    /// draw from).
    pub possible: usize,
}

impl Spread {
    /// Whether the replicas are in as many zones as the cluster allows.
    pub fn is_full(&self) -> bool {
        self.zones >= self.possible
    }
}

/// A node id (hex) as a key; malformed ids are not placed.
pub fn member_point(member: &MemberKey) -> Option<Key> {
    Key::from_hex(&member.node_id)
}

impl Placement {
    /// Only this node (before the first view).
    pub fn alone(me: MemberKey, rules: PlacementRules) -> Self {
        let point = member_point(&me).unwrap_or_default();
        Self {
            owners: vec![(point, me.clone())],
            home: vec![(point, me.clone())],
            max_replaced: rules.write_quorum.saturating_sub(1),
            live: vec![me.clone()],
            zones: BTreeMap::new(),
            pins: rules.pins.clone(),
            routing: RoutingTable::new(point, K),
            me,
            partitioning: rules.partitioning,
            replicas: rules.replicas,
            settled: false,
            write_grace_ms: rules.down_grace_ms,
            history: RoleHistory::default(),
        }
    }

    /// Mark whether this node's view has settled since it started
    /// ([`crate::router`]): until it has, replica sets may leave out
    /// members it has not linked to yet, and files are not served.
    pub fn with_settled(mut self, settled: bool) -> Self {
        self.settled = settled;
        self
    }

    /// Whether the view this placement was built from has settled.
    pub fn settled(&self) -> bool {
        self.settled
    }

    /// Carry the memory of which partitions were near this node over from
    /// the placement this one replaces, at `now_ms`
    /// ([`crate::admission`]).
    pub fn with_history(mut self, previous: &Placement, now_ms: u64) -> Self {
        self.history = previous
            .history
            .advance(previous, &self, now_ms, self.write_grace_ms);
        self
    }

    /// Partitions that stopped being near this node within the grace.
    pub fn history(&self) -> &RoleHistory {
        &self.history
    }

    /// How long a partition stays writable here after it stopped being
    /// near.
    pub fn write_grace_ms(&self) -> u64 {
        self.write_grace_ms
    }

    /// This node's place among the owners of `partition` in replica order
    /// (1 = first; within R means a replica); `None` if this node may not
    /// hold it (a malformed id, or outside a pinned class's zones).
    pub fn rank_of_me(&self, partition: Partition) -> Option<usize> {
        let order = self.ordered(partition, self.owners.iter());
        order.iter().position(|k| k == &self.me).map(|i| i + 1)
    }

    /// `candidates` that may hold `partition`, in replica order
    /// ([`zones::spread_order`]).
    fn ordered<'a>(
        &self,
        partition: Partition,
        candidates: impl Iterator<Item = &'a (Key, MemberKey)>,
    ) -> Vec<MemberKey> {
        let target = self.partitioning.partition_id(partition);
        let pin = self.pin_of(partition);
        let eligible = candidates.filter_map(|(point, key)| {
            let zone = self.zone_of(key);
            let allowed = pin.is_none_or(|zones| zones.allows(zone));
            // Zones are borrowed: this runs on every file request.
            allowed.then(|| (*point, key.clone(), zone))
        });
        zones::spread_order(&target, eligible)
    }

    /// The zones `partition` is pinned to, if it is in a pinned class.
    pub fn pin_of(&self, partition: Partition) -> Option<&ZoneSet> {
        let class = self.partitioning.class_of(partition);
        self.pins.get(class.checked_sub(1)?)
    }

    /// A member's zone label ([`UNLABELLED`] if it has none).
    pub fn zone_of(&self, member: &MemberKey) -> &str {
        self.zones.get(member).map_or(UNLABELLED, String::as_str)
    }

    /// How spread the replicas of `partition` are.
    pub fn spread(&self, partition: Partition) -> Spread {
        let replicas = self.replicas(partition);
        let possible = zones::distinct(
            self.ordered(partition, self.owners.iter())
                .iter()
                .map(|m| self.zone_of(m)),
        );
        Spread {
            zones: zones::distinct(replicas.iter().map(|m| self.zone_of(m))),
            possible: possible.min(self.replicas),
        }
    }

    /// Why a write to `partition` cannot meet its pin: fewer than
    /// `write_quorum` live owners in the pinned zones. `None` for an
    /// unpinned partition or one that can.
    pub fn pin_shortfall(&self, partition: Partition, write_quorum: usize) -> Option<String> {
        let zones = self.pin_of(partition)?;
        let live = self
            .ordered(partition, self.owners.iter())
            .iter()
            .filter(|m| self.is_live(m))
            .count();
        (live < write_quorum).then(|| {
            let prefix = self
                .partitioning
                .pin_prefix(self.partitioning.class_of(partition))
                .unwrap_or_default();
            format!(
                "names under {prefix:?} are pinned to zones [{zones}]: {live} live node(s) \
                 there, {write_quorum} needed for a write"
            )
        })
    }

    /// Build from a view. `absent_since_ms` holds when this node first saw
    /// each absent member so (Down, or Joining in its node's place — see
    /// the module doc; a Joining member not in it owns nothing), `now_ms`
    /// the current time.
    pub fn build(
        me: MemberKey,
        view: &ClusterView,
        rules: PlacementRules,
        absent_since_ms: &BTreeMap<MemberKey, u64>,
        now_ms: u64,
    ) -> Self {
        let down_grace_ms = rules.down_grace_ms;
        let mut placement = Self::alone(me, rules);
        let mut by_node: BTreeMap<&str, (u8, &MemberKey)> = BTreeMap::new();
        let mut gone: BTreeMap<&str, &MemberKey> = BTreeMap::new();
        for m in &view.members {
            if let Some(zone) = m.info.as_ref().and_then(|i| i.zone()) {
                placement.zones.insert(m.key.clone(), zone.to_owned());
            }
            let rank = match (m.is_self, m.state) {
                (true, _) | (_, MemberState::Up) | (_, MemberState::Suspect) => 2,
                (_, MemberState::Down | MemberState::Joining) => {
                    let since = match (m.state, absent_since_ms.get(&m.key)) {
                        (_, Some(since)) => *since,
                        (MemberState::Down, None) => now_ms,
                        _ => continue,
                    };
                    if now_ms.saturating_sub(since) < down_grace_ms {
                        1
                    } else {
                        gone.entry(m.key.node_id.as_str()).or_insert(&m.key);
                        continue;
                    }
                }
                (_, MemberState::Left) => continue,
            };
            // Per node id: a live generation beats a graced Down one; among
            // equals, the newest generation.
            let entry = by_node
                .entry(m.key.node_id.as_str())
                .or_insert((rank, &m.key));
            if (rank, m.key.generation) > (entry.0, entry.1.generation) {
                *entry = (rank, &m.key);
            }
            if rank == 2 && !m.is_self {
                if let Some(point) = member_point(&m.key) {
                    placement.routing.insert(point, m.key.clone());
                }
            }
            if m.state == MemberState::Up && !m.is_self {
                placement.live.push(m.key.clone());
            }
        }
        placement.owners = by_node
            .values()
            .filter_map(|(_, key)| member_point(key).map(|p| (p, (*key).clone())))
            .collect();
        if !placement.owners.iter().any(|(_, k)| k == &placement.me) {
            if let Some(point) = member_point(&placement.me) {
                placement.owners.push((point, placement.me.clone()));
            }
        }
        let gone = gone
            .into_iter()
            .filter(|(node, _)| !by_node.contains_key(node))
            .filter_map(|(_, key)| member_point(key).map(|p| (p, key.clone())));
        placement.home = placement.owners.iter().cloned().chain(gone).collect();
        placement
    }

    /// Whether some generation of `node_id` owns partitions here.
    pub fn owns_node(&self, node_id: &str) -> bool {
        self.owners.iter().any(|(_, k)| k.node_id == node_id)
    }

    /// This node.
    pub fn me(&self) -> &MemberKey {
        &self.me
    }

    /// The replica set of a partition, closest first: the R owners
    /// closest to it, unless that would replace more than W − 1 of its
    /// *home* replicas (the R closest of every member not Left, however
    /// long absent); then the home set, absent members and all, and the
    /// partition refuses writes and quorum reads until enough of them
    /// are back. Moving it anyway lost acknowledged writes: when two of
    /// three replicas are cut off, they may have acknowledged a write
    /// (in the lease's tail, docs/dht.md "The fence") that the one left
    /// never saw, and a new set built around that one served reads
    /// without it (`partition-halves`, seed 1).
    pub fn replicas(&self, partition: Partition) -> Vec<MemberKey> {
        let mut near = self.ordered(partition, self.owners.iter());
        near.truncate(self.replicas);
        if self.home.len() == self.owners.len() {
            return near;
        }
        let mut home = self.ordered(partition, self.home.iter());
        home.truncate(self.replicas);
        let replaced = home.iter().filter(|m| !near.contains(m)).count();
        if replaced > self.max_replaced {
            home
        } else {
            near
        }
    }

    /// The replica set `partition` would have without `member` (where a
    /// leaving node hands its partitions off to).
    pub fn replicas_without(&self, partition: Partition, member: &MemberKey) -> Vec<MemberKey> {
        let owners = self.owners.iter().filter(|(_, k)| k != member);
        let mut set = self.ordered(partition, owners);
        set.truncate(self.replicas);
        set
    }

    /// Replicas per partition (R) when enough owners exist.
    pub fn replica_count(&self) -> usize {
        self.replicas
    }

    /// The partitioning in use.
    pub fn partitioning(&self) -> Partitioning {
        self.partitioning
    }

    /// The partition of a file name and its replica set.
    pub fn replicas_of_name(&self, name: &str) -> (Partition, Vec<MemberKey>) {
        let partition = self.partitioning.partition_of_name(name, &name_key(name));
        (partition, self.replicas(partition))
    }

    /// Members that are Up (and this node): where listings are gathered.
    pub fn live(&self) -> &[MemberKey] {
        &self.live
    }

    /// Whether a member is Up (or is this node).
    pub fn is_live(&self, member: &MemberKey) -> bool {
        self.live.contains(member)
    }

    /// The routing table (find-node answers).
    pub fn routing(&self) -> &RoutingTable<MemberKey> {
        &self.routing
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use hypha_cluster::membership::MemberSnapshot;

    /// Whether `member` is a replica of any of the first 16 partitions.
    fn holds(p: &Placement, member: &MemberKey) -> bool {
        (0..16).any(|i| p.replicas(Partition(i)).contains(member))
    }

    fn member(i: u8, generation: u64, state: MemberState) -> MemberSnapshot {
        let key = MemberKey::new(hex::encode([i; 32]), generation);
        snapshot(key, i == 0, state)
    }

    /// A member as a view shows it, linked and heard just now.
    pub(crate) fn snapshot(key: MemberKey, is_self: bool, state: MemberState) -> MemberSnapshot {
        MemberSnapshot {
            key,
            is_self,
            state,
            incarnation: 0,
            linked: true,
            last_heard_ms: 0,
            info: None,
            load: None,
        }
    }

    fn rules() -> PlacementRules {
        PlacementRules {
            partitioning: Partitioning::new(4).unwrap(),
            replicas: 3,
            down_grace_ms: 1_000,
            write_quorum: 2,
            pins: Default::default(),
        }
    }

    fn view(members: Vec<MemberSnapshot>) -> ClusterView {
        ClusterView {
            members,
            isolated: false,
        }
    }

    #[test]
    fn replicas_are_the_closest_owners_and_agree_across_nodes() {
        let v = view((0..6).map(|i| member(i * 40, 1, MemberState::Up)).collect());
        let me = v.members[0].key.clone();
        let p = Placement::build(me, &v, rules(), &BTreeMap::new(), 0);
        for part in 0..16 {
            let r = p.replicas(Partition(part));
            assert_eq!(r.len(), 3);
            let target = rules().partitioning.partition_id(Partition(part));
            let mut all: Vec<_> = v.members.iter().map(|m| m.key.clone()).collect();
            all.sort_by(|a, b| {
                target.cmp_distance(&member_point(a).unwrap(), &member_point(b).unwrap())
            });
            assert_eq!(r, all[..3].to_vec());
        }
    }

    #[test]
    fn a_down_member_owns_its_partitions_until_the_grace_ends() {
        let mut members: Vec<_> = (0..5).map(|i| member(i * 50, 1, MemberState::Up)).collect();
        members[2].state = MemberState::Down;
        let down = members[2].key.clone();
        let v = view(members);
        let me = v.members[0].key.clone();
        let since = BTreeMap::from([(down.clone(), 10_000)]);
        let during = Placement::build(me.clone(), &v, rules(), &since, 10_500);
        let after = Placement::build(me, &v, rules(), &since, 11_001);
        assert!(holds(&during, &down));
        assert!(!holds(&after, &down));
        assert!(!during.is_live(&down));
        assert!(during.routing().closest(&member_point(&down).unwrap(), 1)[0].1 != down);
    }

    #[test]
    fn a_partition_that_lost_more_than_w_minus_1_replicas_does_not_move() {
        // Five nodes; two go Down together (the minority of a 2 | 3
        // split, as the majority sees it) and stay past the grace.
        let mut members: Vec<_> = (0..5).map(|i| member(i * 50, 1, MemberState::Up)).collect();
        members[1].state = MemberState::Down;
        members[2].state = MemberState::Down;
        let (a, b) = (members[1].key.clone(), members[2].key.clone());
        let v = view(members);
        let me = v.members[0].key.clone();
        let since = BTreeMap::from([(a.clone(), 10_000), (b.clone(), 10_000)]);
        let after = Placement::build(me, &v, rules(), &since, 20_000);
        let mut kept = 0;
        let mut moved = 0;
        for part in 0..16 {
            let set = after.replicas(Partition(part));
            let gone = set.iter().filter(|m| **m == a || **m == b).count();
            match gone {
                // Both were replicas: they may hold a write the third
                // never saw, so the set stays (and refuses writes).
                2 => kept += 1,
                // One gone replica (W − 1) is replaced; a set never keeps
                // just one of them.
                1 => panic!("partition {part}: one of two gone replicas kept"),
                _ => moved += 1,
            }
        }
        assert!(kept > 0 && moved > 0, "kept {kept}, moved {moved}");
        // A partition that lost one of three still moves (the two left
        // hold every acknowledged write between them).
        let mut one: Vec<_> = (0..5).map(|i| member(i * 50, 1, MemberState::Up)).collect();
        one[1].state = MemberState::Down;
        let v = view(one);
        let since = BTreeMap::from([(a.clone(), 10_000)]);
        let p = Placement::build(v.members[0].key.clone(), &v, rules(), &since, 20_000);
        assert!(!holds(&p, &a));
    }

    #[test]
    fn a_restarting_node_keeps_its_place_while_it_links_again() {
        let mut members: Vec<_> = (0..5).map(|i| member(i * 50, 1, MemberState::Up)).collect();
        // Its new generation replaced the old one in the view; not linked yet.
        members[2] = member(100, 2, MemberState::Joining);
        let restarting = members[2].key.clone();
        members.push(member(250, 1, MemberState::Joining));
        let newcomer = members[5].key.clone();
        let v = view(members);
        let me = v.members[0].key.clone();
        let since = BTreeMap::from([(restarting.clone(), 10_000)]);
        let during = Placement::build(me.clone(), &v, rules(), &since, 10_500);
        let after = Placement::build(me, &v, rules(), &since, 11_001);
        assert!(holds(&during, &restarting), "its partitions stay put");
        assert!(!during.is_live(&restarting));
        assert!(!holds(&during, &newcomer), "a new node owns once linked");
        assert!(during.owns_node(&restarting.node_id));
        assert!(!holds(&after, &restarting), "the grace bounds the wait");
    }

    #[test]
    fn a_restarted_node_takes_its_own_place_back() {
        let mut members: Vec<_> = (0..4).map(|i| member(i * 60, 1, MemberState::Up)).collect();
        members[1].state = MemberState::Down;
        members.push(member(60, 2, MemberState::Up));
        let v = view(members);
        let p = Placement::build(v.members[0].key.clone(), &v, rules(), &BTreeMap::new(), 0);
        let all: Vec<MemberKey> = (0..16).flat_map(|i| p.replicas(Partition(i))).collect();
        assert!(all.iter().any(|k| k.generation == 2));
        assert!(!all
            .iter()
            .any(|k| k.node_id == hex::encode([60u8; 32]) && k.generation == 1));
    }

    fn zoned(i: u8, zone: &str) -> MemberSnapshot {
        let mut m = member(i, 1, MemberState::Up);
        m.info = Some(hypha_cluster::membership::info::NodeInfo {
            version: 1,
            name: format!("n{i}"),
            cluster_addr: "127.0.0.1:1".parse().unwrap(),
            http_addr: "127.0.0.1:2".parse().unwrap(),
            bulk_addr: None,
            capacity: Default::default(),
            labels: BTreeMap::from([("zone".into(), zone.into())]),
        });
        m
    }

    /// Six nodes in three zones (two each), `eu/` pinned to `eu-*`,
    /// `ap/` to `ap-*` (no node there).
    fn six_in_three_zones() -> (ClusterView, PlacementRules) {
        let zones = ["eu-1", "eu-2", "us-1"];
        let members = (0..6u8).map(|i| zoned(i * 40 + 1, zones[usize::from(i % 3)]));
        let mut rules = rules();
        rules.partitioning = rules.partitioning.with_pins(&["eu/", "ap/"]).unwrap();
        rules.pins = Arc::new(vec![
            ZoneSet::new(&["eu-*".into()]).unwrap(),
            ZoneSet::new(&["ap-*".into()]).unwrap(),
        ]);
        (view(members.collect()), rules)
    }

    #[test]
    fn replicas_sit_in_distinct_zones_and_pins_keep_to_theirs() {
        let (v, rules) = six_in_three_zones();
        let me = v.members[0].key.clone();
        let p = Placement::build(me, &v, rules.clone(), &BTreeMap::new(), 0);
        let base = rules.partitioning.base_count() as u16;
        for part in 0..base {
            let set = p.replicas(Partition(part));
            let zones: Vec<&str> = set.iter().map(|m| p.zone_of(m)).collect();
            assert_eq!(
                zones::distinct(zones.iter().copied()),
                3,
                "{part}: {zones:?}"
            );
            assert!(p.spread(Partition(part)).is_full());
            assert_eq!(p.pin_shortfall(Partition(part), 2), None);
            // The pinned twin: same neighbourhood, only eu zones, as
            // spread as two zones allow.
            let eu = Partition(part + base);
            let set = p.replicas(eu);
            assert_eq!(set.len(), 3);
            assert!(set.iter().all(|m| p.zone_of(m).starts_with("eu-")));
            assert_eq!(
                p.spread(eu),
                Spread {
                    zones: 2,
                    possible: 2
                }
            );
            // Nobody may hold `ap/`: writes get the reason.
            let ap = Partition(part + 2 * base);
            assert!(p.replicas(ap).is_empty());
            let why = p.pin_shortfall(ap, 2).expect("a shortfall");
            assert!(why.contains("\"ap/\"") && why.contains("ap-*"), "{why}");
        }
        let us = v
            .members
            .iter()
            .find(|m| m.info.as_ref().unwrap().zone() == Some("us-1"));
        let us = Placement::build(us.unwrap().key.clone(), &v, rules, &BTreeMap::new(), 0);
        assert_eq!(us.rank_of_me(Partition(base)), None, "outside the pin");
    }

    #[test]
    fn a_cluster_without_zones_places_by_distance_alone() {
        let v = view((0..6).map(|i| member(i * 40, 1, MemberState::Up)).collect());
        let me = v.members[0].key.clone();
        let p = Placement::build(me, &v, rules(), &BTreeMap::new(), 0);
        for part in 0..16 {
            let target = rules().partitioning.partition_id(Partition(part));
            let all = v
                .members
                .iter()
                .map(|m| (member_point(&m.key).unwrap(), m.key.clone()));
            let plain = crate::keyspace::closest(&target, all, 3);
            assert_eq!(p.replicas(Partition(part)), plain);
            assert_eq!(
                p.spread(Partition(part)),
                Spread {
                    zones: 1,
                    possible: 1
                }
            );
        }
    }

    #[test]
    fn losing_a_zone_keeps_two_zones_per_partition_after_the_grace() {
        let (mut v, rules) = six_in_three_zones();
        let mut since = BTreeMap::new();
        for m in v.members.iter_mut() {
            if m.info.as_ref().unwrap().zone() == Some("us-1") {
                m.state = MemberState::Down;
                since.insert(m.key.clone(), 0);
            }
        }
        let me = v.members[0].key.clone();
        let p = Placement::build(me, &v, rules, &since, 10_000);
        for part in 0..16 {
            let set = p.replicas(Partition(part));
            assert_eq!(set.len(), 3);
            assert!(set.iter().all(|m| p.zone_of(m) != "us-1"), "{part}");
            assert_eq!(
                p.spread(Partition(part)),
                Spread {
                    zones: 2,
                    possible: 2
                }
            );
        }
    }
}
