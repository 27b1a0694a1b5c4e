//! Partition snapshots for backups: merging the manifest pages that the
//! replicas of one partition return for one cursor into the live files of
//! that page. Each replica answers the names it holds after the cursor
//! (index order: BLAKE3 of the name), up to a limit; a replica whose
//! answer was cut short may hold more names after its last one, so the
//! merged page is trusted only up to the smallest such last key (the
//! horizon), which becomes the next cursor. Versions of one name are
//! resolved by last-writer-wins and tombstones hide the name. Pure.

use std::collections::BTreeMap;

use crate::manifest::Manifest;

/// One replica's answer for a page of a partition.
#[derive(Debug, Clone, Default)]
pub struct ReplicaPage {
    /// Manifests (and tombstones) with their name keys, in key order.
    pub entries: Vec<([u8; 32], Manifest)>,
    /// The last name key the replica listed (even if its manifest was
    /// gone by the time it was fetched).
    pub last_key: Option<[u8; 32]>,
    /// Cut short: keys after `last_key` may exist on that replica.
    pub more: bool,
}

/// A merged page of a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPage {
    /// Live files (newest version each), in key order.
    pub manifests: Vec<Manifest>,
    /// Name key to continue after, if the partition may hold more.
    pub next_key: Option<[u8; 32]>,
}

/// Merge replicas' answers for one page.
pub fn merge(pages: Vec<ReplicaPage>) -> PartitionPage {
    let horizon: Option<[u8; 32]> = pages
        .iter()
        .filter(|p| p.more)
        .filter_map(|p| p.last_key)
        .min();
    let mut newest: BTreeMap<[u8; 32], Manifest> = BTreeMap::new();
    for (key, m) in pages.into_iter().flat_map(|p| p.entries) {
        if horizon.is_some_and(|h| key > h) {
            continue;
        }
        match newest.get(&key) {
            Some(seen) if seen.version() >= m.version() => {}
            _ => {
                newest.insert(key, m);
            }
        }
    }
    PartitionPage {
        manifests: newest.into_values().filter(Manifest::is_live).collect(),
        next_key: horizon,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{name_key, tests::sample, FileState};
    use proptest::prelude::*;

    fn entry(name: &str, modified: u64, live: bool) -> ([u8; 32], Manifest) {
        let mut m = sample(name, modified, 1);
        if !live {
            m.state = FileState::Tombstone;
        }
        (name_key(name).0, m)
    }

    fn page(mut entries: Vec<([u8; 32], Manifest)>, limit: usize) -> ReplicaPage {
        entries.sort_by_key(|(k, _)| *k);
        let more = entries.len() > limit;
        entries.truncate(limit);
        ReplicaPage {
            last_key: entries.last().map(|(k, _)| *k),
            entries,
            more,
        }
    }

    #[test]
    fn newest_version_wins_and_tombstones_hide() {
        let a = page(vec![entry("a", 1, true), entry("b", 5, true)], 10);
        let b = page(vec![entry("a", 2, true), entry("b", 6, false)], 10);
        let merged = merge(vec![a, b]);
        assert_eq!(merged.manifests.len(), 1);
        assert_eq!(merged.manifests[0].name, "a");
        assert_eq!(merged.manifests[0].modified.0, 2);
        assert_eq!(merged.next_key, None);
    }

    proptest! {
        /// Paging through a partition's replicas, each holding a subset of
        /// the versions, yields every live name exactly once at its newest
        /// version among the replicas, whatever the page size.
        #[test]
        fn paging_sees_every_live_name_once_at_its_newest(
            names in proptest::collection::btree_map("[a-h]{1,3}", (1u64..5, any::<bool>()), 0..30),
            holders in proptest::collection::vec((any::<bool>(), any::<bool>(), 0u64..2), 30),
            limit in 1usize..6,
        ) {
            // Replica 0 holds every name at its newest version; the others
            // some names, possibly older.
            let all: Vec<(String, u64, bool)> = names.iter().map(|(n, (v, l))| (n.clone(), *v, *l)).collect();
            let held = |r: usize| -> Vec<([u8; 32], Manifest)> {
                all.iter().enumerate().filter_map(|(i, (n, v, l))| {
                    let (h1, h2, older) = holders[i];
                    match r {
                        0 => Some(entry(n, *v, *l)),
                        1 if h1 => Some(entry(n, v - older.min(v - 1), true)),
                        2 if h2 => Some(entry(n, *v, *l)),
                        _ => None,
                    }
                }).collect()
            };
            let mut seen: Vec<String> = Vec::new();
            let mut after: Option<[u8; 32]> = None;
            for _ in 0..200 {
                let pages = (0..3).map(|r| {
                    let rest = held(r).into_iter().filter(|(k, _)| after.is_none_or(|a| *k > a)).collect();
                    page(rest, limit)
                }).collect();
                let merged = merge(pages);
                for m in &merged.manifests {
                    let newest = all.iter().find(|(n, _, _)| *n == m.name).map(|(_, v, _)| *v);
                    prop_assert_eq!(Some(m.modified.0), newest);
                }
                seen.extend(merged.manifests.into_iter().map(|m| m.name));
                match merged.next_key {
                    Some(k) => { prop_assert!(after.is_none_or(|a| k > a)); after = Some(k); }
                    None => break,
                }
            }
            let mut expected: Vec<String> = all.iter().filter(|(_, _, l)| *l).map(|(n, _, _)| n.clone()).collect();
            expected.sort_by_key(|n| name_key(n).0);
            prop_assert_eq!(seen, expected);
        }
    }
}
