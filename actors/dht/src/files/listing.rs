//! Merging listings gathered from every live member into one sorted page.
//! Each member answers the names it holds after the cursor, up to a limit;
//! a member whose answer was cut short may hold more names after its last
//! one, so the merged page can only be trusted up to the smallest such
//! last name (the horizon). Versions of one name from several replicas are
//! resolved by last-writer-wins, tombstones hide the name, and filters
//! apply to the winning version only. Pure.

use std::collections::BTreeMap;

use crate::wire::FileSummary;

/// One member's answer.
#[derive(Debug, Clone)]
pub struct NodePage {
    /// Entries in name order.
    pub entries: Vec<FileSummary>,
    /// Cut short: names after the last entry may exist on that member.
    pub more: bool,
}

/// What to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Names start with this.
    pub prefix: String,
    /// Cursor: names strictly after this.
    pub after: String,
    /// Page size.
    pub limit: usize,
    /// Every one of these labels must match.
    pub labels: BTreeMap<String, String>,
    /// Smallest size, inclusive.
    pub min_size: Option<u64>,
    /// Largest size, inclusive.
    pub max_size: Option<u64>,
    /// Modified at or after (Unix ms).
    pub modified_after_ms: Option<u64>,
    /// Modified before (Unix ms).
    pub modified_before_ms: Option<u64>,
}

impl ListQuery {
    /// Whether a live file passes the filters.
    pub fn matches(&self, f: &FileSummary) -> bool {
        let modified = f.modified.unix_ms();
        self.labels.iter().all(|(k, v)| f.labels.get(k) == Some(v))
            && self.min_size.is_none_or(|min| f.size >= min)
            && self.max_size.is_none_or(|max| f.size <= max)
            && self.modified_after_ms.is_none_or(|t| modified >= t)
            && self.modified_before_ms.is_none_or(|t| modified < t)
    }
}

/// A merged page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Live files in name order.
    pub entries: Vec<FileSummary>,
    /// Where the next page starts, if there may be one.
    pub next_cursor: Option<String>,
}

/// Merge members' answers into one page.
pub fn merge(pages: Vec<NodePage>, query: &ListQuery) -> Page {
    let horizon: Option<String> = pages
        .iter()
        .filter(|p| p.more)
        .filter_map(|p| p.entries.last().map(|e| e.name.clone()))
        .min();
    let mut newest: BTreeMap<String, FileSummary> = BTreeMap::new();
    for entry in pages.into_iter().flat_map(|p| p.entries) {
        if horizon.as_ref().is_some_and(|h| &entry.name > h) {
            continue;
        }
        match newest.get(&entry.name) {
            Some(seen) if seen.version() >= entry.version() => {}
            _ => {
                newest.insert(entry.name.clone(), entry);
            }
        }
    }
    let mut entries = Vec::new();
    let mut last_examined = None;
    for (name, entry) in newest {
        if entries.len() == query.limit {
            return Page {
                next_cursor: last_examined,
                entries,
            };
        }
        last_examined = Some(name);
        if entry.state == crate::manifest::FileState::Live && query.matches(&entry) {
            entries.push(entry);
        }
    }
    Page {
        entries,
        next_cursor: horizon,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Timestamp;
    use crate::manifest::FileState;
    use proptest::prelude::*;

    fn file(name: &str, modified: u64, state: FileState) -> FileSummary {
        FileSummary {
            name: name.into(),
            size: modified,
            root: [0; 32],
            created: Timestamp(0),
            modified: Timestamp(modified),
            writer: [0; 32],
            content_type: String::new(),
            labels: BTreeMap::new(),
            state,
        }
    }

    fn query(limit: usize) -> ListQuery {
        ListQuery {
            limit,
            ..ListQuery::default()
        }
    }

    #[test]
    fn newest_version_wins_and_tombstones_hide() {
        let a = NodePage {
            entries: vec![file("a", 1, FileState::Live), file("b", 5, FileState::Live)],
            more: false,
        };
        let b = NodePage {
            entries: vec![
                file("a", 2, FileState::Live),
                file("b", 6, FileState::Tombstone),
            ],
            more: false,
        };
        let page = merge(vec![a, b], &query(10));
        assert_eq!(page.entries, vec![file("a", 2, FileState::Live)]);
        assert_eq!(page.next_cursor, None);
    }

    #[test]
    fn a_cut_short_member_bounds_the_page() {
        let a = NodePage {
            entries: vec![file("a", 1, FileState::Live), file("c", 1, FileState::Live)],
            more: true,
        };
        let b = NodePage {
            entries: vec![file("b", 1, FileState::Live), file("d", 1, FileState::Live)],
            more: false,
        };
        let page = merge(vec![a, b], &query(10));
        let names: Vec<_> = page.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(page.next_cursor.as_deref(), Some("c"));
    }

    proptest! {
        /// Paging through a cluster's members, page by page, yields every
        /// live name exactly once, in order, whatever the page size.
        #[test]
        fn paging_visits_every_live_name_once(
            names in proptest::collection::btree_map("[a-e]{1,3}", (0u64..4, any::<bool>()), 0..40),
            holders in proptest::collection::vec(proptest::collection::vec(any::<bool>(), 3), 40),
            limit in 1usize..7,
        ) {
            // Three members, each holding a subset of the names (every name on ≥1).
            let all: Vec<(String, u64, bool)> = names.iter().map(|(n, (v, live))| (n.clone(), *v, *live)).collect();
            let member_names = |m: usize| -> Vec<FileSummary> {
                all.iter().enumerate()
                    .filter(|(i, _)| holders[*i][m] || m == 0 && !holders[*i].iter().any(|h| *h))
                    .map(|(_, (n, v, live))| file(n, *v, if *live { FileState::Live } else { FileState::Tombstone }))
                    .collect()
            };
            let mut seen = Vec::new();
            let mut cursor = String::new();
            for _ in 0..200 {
                let pages = (0..3).map(|m| {
                    let held: Vec<_> = member_names(m).into_iter().filter(|f| f.name > cursor).collect();
                    let more = held.len() > limit;
                    NodePage { entries: held.into_iter().take(limit).collect(), more }
                }).collect();
                let page = merge(pages, &query(limit));
                prop_assert!(page.entries.len() <= limit);
                seen.extend(page.entries.into_iter().map(|e| e.name));
                match page.next_cursor {
                    Some(c) => { prop_assert!(c > cursor); cursor = c; }
                    None => break,
                }
            }
            let expected: Vec<String> = all.iter().filter(|(_, _, live)| *live).map(|(n, _, _)| n.clone()).collect();
            prop_assert_eq!(seen, expected);
        }
    }
}
