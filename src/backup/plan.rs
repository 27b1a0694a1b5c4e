//! The decisions of backup, verify, restore, pruning and the schedule,
//! apart from any I/O: which chunks a backup must still write, what is
//! wrong with a snapshot given what its chunks look like on disk, whether
//! a restore uploads a file or skips it, which snapshots and chunks
//! retention removes, when the next scheduled backup is due. Pure.

use std::collections::BTreeSet;
use std::fmt;

use super::index::{root_of, ChunkEntry, FileEntry, Hash32, Snapshot};

/// The chunks of `files` not yet in the backup, each once, in file order:
/// what makes a second backup into the same directory incremental.
pub fn chunks_to_write(files: &[FileEntry], present: impl Fn(&Hash32) -> bool) -> Vec<ChunkEntry> {
    let mut seen = BTreeSet::new();
    files
        .iter()
        .flat_map(|f| f.chunks.iter().copied())
        .filter(|c| seen.insert(c.hash) && !present(&c.hash))
        .collect()
}

/// What a chunk file of the backup looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkState {
    /// Present, its bytes hash to its name and have the expected length.
    Good,
    /// No such file.
    Missing,
    /// Its bytes hash to something else, or have another length.
    Corrupt,
}

/// A problem `hypha backup verify` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The recorded root is not the root of the files.
    Root {
        /// Recorded.
        recorded: Hash32,
        /// Recomputed.
        computed: Hash32,
    },
    /// A file's chunk lengths do not add up to its size.
    Size {
        /// The file.
        name: String,
    },
    /// A referenced chunk is not in the backup.
    MissingChunk {
        /// The chunk.
        hash: Hash32,
        /// A file that needs it.
        name: String,
    },
    /// A referenced chunk's bytes fail verification.
    CorruptChunk {
        /// The chunk.
        hash: Hash32,
        /// A file that needs it.
        name: String,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Root { recorded, computed } => {
                write!(f, "index root {recorded} recorded, {computed} computed")
            }
            Problem::Size { name } => write!(f, "{name}: chunk lengths do not add up to its size"),
            Problem::MissingChunk { hash, name } => {
                write!(f, "chunk {hash} missing (needed by {name})")
            }
            Problem::CorruptChunk { hash, name } => {
                write!(f, "chunk {hash} corrupt (needed by {name})")
            }
        }
    }
}

/// Every problem of `snapshot`, given the state of each of its chunks
/// (asked once per distinct chunk).
pub fn problems(
    snapshot: &Snapshot,
    mut state: impl FnMut(&ChunkEntry) -> ChunkState,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let computed = root_of(&snapshot.files);
    if computed != snapshot.root {
        out.push(Problem::Root {
            recorded: snapshot.root,
            computed,
        });
    }
    let mut checked = BTreeSet::new();
    for f in &snapshot.files {
        if !f.sizes_add_up() {
            out.push(Problem::Size {
                name: f.name.clone(),
            });
        }
        for c in &f.chunks {
            if !checked.insert(c.hash) {
                continue;
            }
            match state(c) {
                ChunkState::Good => {}
                ChunkState::Missing => out.push(Problem::MissingChunk {
                    hash: c.hash,
                    name: f.name.clone(),
                }),
                ChunkState::Corrupt => out.push(Problem::CorruptChunk {
                    hash: c.hash,
                    name: f.name.clone(),
                }),
            }
        }
    }
    out
}

/// What a restore does with one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreStep {
    /// The cluster already holds this content: nothing to do (what makes
    /// a rerun after an interrupted restore cheap).
    Skip,
    /// Upload it.
    Upload,
}

/// The step for `file`, given the root of the cluster's live file of the
/// same name (`None`: no such file).
pub fn restore_step(file: &FileEntry, in_cluster: Option<Hash32>) -> RestoreStep {
    if in_cluster == Some(file.root) {
        RestoreStep::Skip
    } else {
        RestoreStep::Upload
    }
}

/// The files of a snapshot a restore with `prefix` covers.
pub fn under_prefix<'a>(
    files: &'a [FileEntry],
    prefix: &'a str,
) -> impl Iterator<Item = &'a FileEntry> {
    files.iter().filter(move |f| f.name.starts_with(prefix))
}

/// What retention removes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Prune {
    /// Snapshot ids to delete (oldest first).
    pub snapshots: Vec<String>,
    /// Chunks no kept snapshot references.
    pub chunks: Vec<Hash32>,
}

/// Keep the newest `keep` snapshots (ids sort by time; at least one is
/// always kept); remove the others and every chunk in `present` that no
/// kept snapshot references. `snapshots` are (id, chunks referenced).
pub fn prune(snapshots: &[(String, BTreeSet<Hash32>)], keep: usize, present: &[Hash32]) -> Prune {
    let mut ids: Vec<&(String, BTreeSet<Hash32>)> = snapshots.iter().collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    let cut = ids.len().saturating_sub(keep.max(1));
    let (gone, kept) = ids.split_at(cut);
    let referenced: BTreeSet<Hash32> = kept.iter().flat_map(|(_, c)| c.iter().copied()).collect();
    Prune {
        snapshots: gone.iter().map(|(id, _)| id.clone()).collect(),
        chunks: present
            .iter()
            .filter(|h| !referenced.contains(h))
            .copied()
            .collect(),
    }
}

/// Longest wait before a failed scheduled backup is tried again (less
/// when the interval is shorter): a node that failed its run at start,
/// before its view settled, must not wait a whole interval.
pub const RETRY_AFTER_FAILURE_MS: u64 = 60_000;

/// How a scheduled run ended, for [`next_due`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LastRun {
    /// No run known: neither this incarnation's nor a snapshot in the
    /// directory.
    None,
    /// A complete snapshot that started at this time (Unix ms): from this
    /// incarnation, or the newest in the directory after a restart.
    Succeeded {
        /// Its start.
        started_ms: u64,
    },
    /// A run that failed when it ended at this time.
    Failed {
        /// Its end.
        finished_ms: u64,
    },
}

/// When the next scheduled backup is due (Unix ms): one interval after
/// the last successful one started; soon after a failure; at once when
/// there was none. A run that took longer than the interval makes the
/// next one due as soon as it ended (runs never overlap: [`should_start`]).
pub fn next_due(last: LastRun, interval_ms: u64, now_ms: u64) -> u64 {
    match last {
        LastRun::None => now_ms,
        LastRun::Succeeded { started_ms } => started_ms.saturating_add(interval_ms),
        LastRun::Failed { finished_ms } => {
            finished_ms.saturating_add(interval_ms.min(RETRY_AFTER_FAILURE_MS))
        }
    }
}

/// Whether a scheduled backup starts now: it is due and none is running.
pub fn should_start(now_ms: u64, due_ms: u64, running: bool) -> bool {
    !running && now_ms >= due_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::index::tests::file;
    use proptest::prelude::*;

    #[test]
    fn only_new_chunks_are_written_each_once() {
        let files = vec![
            file("a", &[(b"1", 1), (b"2", 1)]),
            file("b", &[(b"2", 1), (b"3", 1)]),
        ];
        let present = Hash32::of(b"1");
        let todo = chunks_to_write(&files, |h| *h == present);
        let hashes: Vec<Hash32> = todo.iter().map(|c| c.hash).collect();
        assert_eq!(hashes, [Hash32::of(b"2"), Hash32::of(b"3")]);
    }

    #[test]
    fn problems_name_the_bad_chunks_and_the_root() {
        let mut snap = Snapshot::new(
            "1".into(),
            0,
            0,
            String::new(),
            1,
            vec![file("a", &[(b"1", 1), (b"2", 1)]), file("b", &[(b"1", 1)])],
        );
        let bad = Hash32::of(b"2");
        let mut asked = 0;
        let found = problems(&snap, |c| {
            asked += 1;
            if c.hash == bad {
                ChunkState::Corrupt
            } else {
                ChunkState::Good
            }
        });
        assert_eq!(asked, 2, "each chunk once");
        assert_eq!(
            found,
            [Problem::CorruptChunk {
                hash: bad,
                name: "a".into()
            }]
        );
        snap.files[1].size = 7;
        let found = problems(&snap, |_| ChunkState::Missing);
        assert!(matches!(found[0], Problem::Root { .. }));
        assert!(found.contains(&Problem::Size { name: "b".into() }));
        assert_eq!(found.len(), 4, "{found:?}");
    }

    #[test]
    fn restore_skips_only_identical_content() {
        let f = file("a", &[(b"1", 1)]);
        assert_eq!(restore_step(&f, Some(f.root)), RestoreStep::Skip);
        assert_eq!(restore_step(&f, None), RestoreStep::Upload);
        assert_eq!(
            restore_step(&f, Some(Hash32::of(b"other"))),
            RestoreStep::Upload
        );
        let files = vec![file("x/1", &[]), file("y/1", &[])];
        assert_eq!(under_prefix(&files, "x/").count(), 1);
    }

    #[test]
    fn the_schedule_runs_one_at_a_time_an_interval_apart() {
        let day = 86_400_000;
        assert_eq!(next_due(LastRun::None, day, 5), 5, "at once");
        assert_eq!(
            next_due(LastRun::Succeeded { started_ms: 100 }, day, 200),
            100 + day
        );
        assert_eq!(
            next_due(LastRun::Failed { finished_ms: 100 }, day, 200),
            100 + RETRY_AFTER_FAILURE_MS
        );
        assert_eq!(
            next_due(LastRun::Failed { finished_ms: 100 }, 1_000, 200),
            1_100
        );
        assert!(should_start(10, 10, false));
        assert!(!should_start(10, 10, true), "single flight");
        assert!(!should_start(9, 10, false));
        // A run longer than the interval: due when it ends.
        let due = next_due(LastRun::Succeeded { started_ms: 0 }, 1_000, 0);
        assert!(should_start(5_000, due, false));
    }

    proptest! {
        /// Pruning keeps the newest `keep` snapshots, every chunk they
        /// reference stays, and every chunk removed is unreferenced by them.
        #[test]
        fn pruning_never_removes_a_kept_chunk(
            sets in proptest::collection::vec(proptest::collection::btree_set(0u8..20, 0..8), 0..8),
            keep in 0usize..5,
        ) {
            let snaps: Vec<(String, BTreeSet<Hash32>)> = sets.iter().enumerate()
                .map(|(i, s)| (format!("{i:03}"), s.iter().map(|b| Hash32::of(&[*b])).collect()))
                .collect();
            let present: Vec<Hash32> = (0u8..20).map(|b| Hash32::of(&[b])).collect();
            let p = prune(&snaps, keep, &present);
            let kept: Vec<&(String, BTreeSet<Hash32>)> = snaps.iter().filter(|(id, _)| !p.snapshots.contains(id)).collect();
            prop_assert_eq!(kept.len(), snaps.len().min(keep.max(1)));
            // The kept ones are the newest.
            for (id, _) in &kept {
                prop_assert!(p.snapshots.iter().all(|g| g < id));
            }
            for (_, chunks) in &kept {
                for c in chunks {
                    prop_assert!(!p.chunks.contains(c));
                }
            }
            for c in &p.chunks {
                prop_assert!(kept.iter().all(|(_, s)| !s.contains(c)));
            }
        }
    }
}
