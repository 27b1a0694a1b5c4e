//! Zone rules of placement: the order in which a partition's candidates
//! become its replicas, so that the R replicas sit in R distinct zones
//! whenever the cluster has that many (and are as spread as it allows
//! when it has fewer), and the zone sets a pinned prefix may live in
//! (docs/dht.md, "Zones"). Pure: no I/O, no clocks.

use std::collections::BTreeMap;
use std::fmt;

use crate::keyspace::Key;

/// The zone of a node without a `zone` label: such nodes count as one
/// zone of their own, so a cluster with no labels places exactly as by
/// distance alone.
pub const UNLABELLED: &str = "";

/// Most zone patterns one pin may list.
pub const MAX_PIN_ZONES: usize = 16;

/// The zones a pinned prefix may live in: exact names (`eu-1`) or
/// prefixes ending in `*` (`eu-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneSet {
    patterns: Vec<String>,
}

impl ZoneSet {
    /// From patterns; `Err` names the first that is not a valid zone
    /// label (`*` may only end one).
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        if patterns.is_empty() || patterns.len() > MAX_PIN_ZONES {
            return Err(format!("1 to {MAX_PIN_ZONES} zone patterns are needed"));
        }
        for pattern in patterns {
            let name = pattern.strip_suffix('*').unwrap_or(pattern);
            let valid = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
            if !valid || name.len() > 64 || pattern.is_empty() {
                return Err(format!(
                    "{pattern:?} is not a zone name or `prefix*` pattern"
                ));
            }
        }
        Ok(Self {
            patterns: patterns.to_vec(),
        })
    }

    /// Whether a node in `zone` may hold the pinned files. An unlabelled
    /// node is never in a pinned zone.
    pub fn allows(&self, zone: &str) -> bool {
        zone != UNLABELLED
            && self.patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => zone.starts_with(prefix),
                None => zone == p,
            })
    }
}

impl fmt::Display for ZoneSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.patterns.join(", "))
    }
}

/// Every candidate in replica order for `target`: each zone's closest
/// member first (zones in the order of that member's XOR distance), then
/// each zone's second closest, and so on — the sort key is (place within
/// its own zone, distance). The first R are the replica set: with at
/// least R zones, R members in R distinct zones, each the closest of its
/// zone; with fewer, every zone before any zone twice. Deterministic and
/// local, like plain XOR placement, which it equals when every candidate
/// is in one zone.
pub fn spread_order<T: Clone + Ord, Z: Ord>(
    target: &Key,
    candidates: impl IntoIterator<Item = (Key, T, Z)>,
) -> Vec<T> {
    let mut by_distance: Vec<(Key, T, Z)> = candidates
        .into_iter()
        .map(|(point, item, zone)| (target.distance(&point), item, zone))
        .collect();
    by_distance.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    let mut seen: BTreeMap<Z, usize> = BTreeMap::new();
    let mut ranked: Vec<(usize, Key, T)> = by_distance
        .into_iter()
        .map(|(distance, item, zone)| {
            let place = seen.entry(zone).or_insert(0);
            *place += 1;
            (*place, distance, item)
        })
        .collect();
    ranked.sort_by(|a, b| (a.0, &a.1, &a.2).cmp(&(b.0, &b.1, &b.2)));
    ranked.into_iter().map(|(_, _, item)| item).collect()
}

/// Distinct zones among `zones`.
pub fn distinct<'a>(zones: impl IntoIterator<Item = &'a str>) -> usize {
    let mut all: Vec<&str> = zones.into_iter().collect();
    all.sort_unstable();
    all.dedup();
    all.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn zone_set(p: &[&str]) -> ZoneSet {
        ZoneSet::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn distinct_counts_zones_once() {
        assert_eq!(distinct(["a", "b", "a", UNLABELLED]), 3);
        assert_eq!(distinct([]), 0);
    }

    #[test]
    fn zone_sets_match_names_and_prefixes() {
        let eu = zone_set(&["eu-*", "ch"]);
        assert!(eu.allows("eu-1") && eu.allows("eu-") && eu.allows("ch"));
        assert!(!eu.allows("us-1") && !eu.allows("chx") && !eu.allows(UNLABELLED));
        assert!(ZoneSet::new(&[]).is_err());
        assert!(ZoneSet::new(&["a*b".into()]).is_err());
        assert!(ZoneSet::new(&["".into()]).is_err());
        assert!(zone_set(&["*"]).allows("anything"));
        assert_eq!(eu.to_string(), "eu-*, ch");
    }

    proptest! {
        /// The first R of the order are in min(R, zones) distinct zones,
        /// each zone's members come closest first, and with one zone the
        /// order is plain XOR distance.
        #[test]
        fn the_first_r_are_as_spread_as_the_zones_allow(
            target in any::<[u8; 32]>(),
            nodes in proptest::collection::btree_map(any::<[u8; 32]>(), 0u8..5, 0..30),
            r in 1usize..6,
        ) {
            let target = Key(target);
            let candidates = nodes.iter().map(|(k, z)| (Key(*k), Key(*k), format!("z{z}")));
            let order = spread_order(&target, candidates);
            prop_assert_eq!(order.len(), nodes.len());
            let zone = |k: &Key| nodes[&k.0];
            let zones = nodes.values().collect::<std::collections::BTreeSet<_>>().len();
            let first: Vec<Key> = order.iter().take(r).copied().collect();
            let mut in_first: Vec<u8> = first.iter().map(zone).collect();
            in_first.sort_unstable();
            in_first.dedup();
            prop_assert_eq!(in_first.len(), r.min(zones));
            // Each zone's members appear closest first.
            for z in 0u8..5 {
                let mine: Vec<Key> = order.iter().filter(|k| zone(k) == z).copied().collect();
                let mut sorted = mine.clone();
                sorted.sort_by(|a, b| target.cmp_distance(a, b));
                prop_assert_eq!(mine, sorted);
            }
            // One zone: plain distance order.
            let single = spread_order(&target, nodes.keys().map(|k| (Key(*k), Key(*k), UNLABELLED.to_owned())));
            let mut plain: Vec<Key> = nodes.keys().map(|k| Key(*k)).collect();
            plain.sort_by(|a, b| target.cmp_distance(a, b));
            prop_assert_eq!(single, plain);
        }
    }
}
