//! A backup directory on disk: `chunks/<2 hex>/<64 hex>` (raw chunk
//! bytes, content-addressed), `snapshots/<id>.json` (one index each) and a
//! `HYPHA-BACKUP` marker naming the format. Every file is written to a
//! temporary name, synced and renamed, so a killed backup leaves no torn
//! chunk and no half snapshot: only complete snapshots are ever listed.
//! The thin I/O layer under [`super::plan`].

use std::io::Write;
use std::path::{Path, PathBuf};

use super::index::{Hash32, Snapshot, SNAPSHOT_FORMAT};
use super::plan::{self, Prune};
use super::BackupError;

/// The marker file at the top of a backup directory.
pub const MARKER: &str = "HYPHA-BACKUP";
/// Suffix of temporary files (never read; removed on the next write of
/// the same name or by `prune`).
const TMP_SUFFIX: &str = ".tmp";

/// A backup directory.
#[derive(Debug, Clone)]
pub struct BackupDir {
    root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Write `bytes` to `path` atomically: a temporary file beside it,
/// synced, then renamed over it.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), BackupError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!("{TMP_SUFFIX}{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let mut file = std::fs::File::create(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io(path))
}

impl BackupDir {
    /// Open `root` for writing, creating it (and its layout) if needed. A
    /// non-empty directory without the marker is refused: it is not a
    /// backup, and writing into it would mix files.
    pub fn create(root: &Path) -> Result<Self, BackupError> {
        std::fs::create_dir_all(root).map_err(io(root))?;
        let marker = root.join(MARKER);
        if !marker.exists() {
            let empty = std::fs::read_dir(root).map_err(io(root))?.next().is_none();
            if !empty {
                return Err(BackupError::NotABackup(root.to_owned()));
            }
            write_atomic(
                &marker,
                format!("hypha backup, format {SNAPSHOT_FORMAT}\n").as_bytes(),
            )?;
        }
        for sub in ["chunks", "snapshots"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// Open an existing backup directory for reading.
    pub fn open(root: &Path) -> Result<Self, BackupError> {
        if !root.join(MARKER).exists() {
            return Err(BackupError::NotABackup(root.to_owned()));
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// Where chunk `hash` lives.
    pub fn chunk_path(&self, hash: &Hash32) -> PathBuf {
        let hex = hash.to_hex();
        self.root.join("chunks").join(&hex[..2]).join(hex)
    }

    /// Whether chunk `hash` is stored (its bytes are not checked here).
    pub fn has_chunk(&self, hash: &Hash32) -> bool {
        self.chunk_path(hash).is_file()
    }

    /// Store a chunk whose bytes were verified against `hash`.
    pub fn write_chunk(&self, hash: &Hash32, bytes: &[u8]) -> Result<(), BackupError> {
        let path = self.chunk_path(hash);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io(dir))?;
        }
        write_atomic(&path, bytes)
    }

    /// A chunk's bytes, or `None` if absent; `Corrupt` if they do not hash
    /// to `hash` or are not `len` bytes long.
    pub fn read_chunk(&self, hash: &Hash32, len: u32) -> Result<Option<Vec<u8>>, BackupError> {
        let path = self.chunk_path(hash);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path)(e)),
        };
        if bytes.len() != len as usize || Hash32::of(&bytes) != *hash {
            return Err(BackupError::Corrupt(path));
        }
        Ok(Some(bytes))
    }

    /// Every chunk stored (by file name; temporary files are left out).
    pub fn chunks(&self) -> Result<Vec<Hash32>, BackupError> {
        let top = self.root.join("chunks");
        let mut out = Vec::new();
        for sub in std::fs::read_dir(&top).map_err(io(&top))? {
            let sub = sub.map_err(io(&top))?.path();
            if !sub.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&sub).map_err(io(&sub))? {
                let name = f.map_err(io(&sub))?.file_name();
                if let Some(h) = name.to_str().and_then(Hash32::parse) {
                    out.push(h);
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Remove a chunk (retention).
    pub fn remove_chunk(&self, hash: &Hash32) -> Result<(), BackupError> {
        let path = self.chunk_path(hash);
        std::fs::remove_file(&path).map_err(io(&path))
    }

    fn snapshot_path(&self, id: &str) -> PathBuf {
        self.root.join("snapshots").join(format!("{id}.json"))
    }

    /// Write a snapshot (last, after all its chunks); the bytes written.
    pub fn write_snapshot(&self, snapshot: &Snapshot) -> Result<u64, BackupError> {
        let bytes = serde_json::to_vec_pretty(snapshot).map_err(BackupError::Encode)?;
        write_atomic(&self.snapshot_path(&snapshot.id), &bytes)?;
        let dir = self.root.join("snapshots");
        // The rename is durable once the directory is.
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&dir))?;
        Ok(bytes.len() as u64)
    }

    /// Ids of the complete snapshots, oldest first.
    pub fn snapshot_ids(&self) -> Result<Vec<String>, BackupError> {
        let dir = self.root.join("snapshots");
        let mut ids = Vec::new();
        for f in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let name = f.map_err(io(&dir))?.file_name();
            if let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) {
                ids.push(id.to_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Load snapshot `id`.
    pub fn snapshot(&self, id: &str) -> Result<Snapshot, BackupError> {
        let path = self.snapshot_path(id);
        let bytes = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BackupError::NoSnapshot(id.to_owned()))
            }
            other => other.map_err(io(&path))?,
        };
        let snapshot: Snapshot =
            serde_json::from_slice(&bytes).map_err(|source| BackupError::Index {
                path: path.clone(),
                source,
            })?;
        if snapshot.format != SNAPSHOT_FORMAT {
            return Err(BackupError::Format(snapshot.format));
        }
        Ok(snapshot)
    }

    /// The snapshot `id`, or the newest if `None`.
    pub fn snapshot_or_latest(&self, id: Option<&str>) -> Result<Snapshot, BackupError> {
        match id {
            Some(id) => self.snapshot(id),
            None => {
                let ids = self.snapshot_ids()?;
                let latest = ids.last().ok_or(BackupError::Empty)?;
                self.snapshot(latest)
            }
        }
    }

    /// Remove snapshot `id` (retention).
    pub fn remove_snapshot(&self, id: &str) -> Result<(), BackupError> {
        let path = self.snapshot_path(id);
        std::fs::remove_file(&path).map_err(io(&path))
    }
}

impl BackupDir {
    /// Retention: keep the newest `keep` snapshots, remove the others and
    /// then every chunk no kept snapshot references ([`plan::prune`]).
    /// Snapshots go first, so a chunk is never missing from a snapshot
    /// still listed. An index that does not load stops the pruning before
    /// anything is removed (its chunks are unknown). What was removed.
    /// Not to run while another backup writes into the directory.
    pub fn prune(&self, keep: usize) -> Result<Prune, BackupError> {
        let mut snapshots = Vec::new();
        for id in self.snapshot_ids()? {
            let chunks = self.snapshot(&id)?.chunk_set();
            snapshots.push((id, chunks));
        }
        let decided = plan::prune(&snapshots, keep, &self.chunks()?);
        for id in &decided.snapshots {
            self.remove_snapshot(id)?;
        }
        for hash in &decided.chunks {
            self.remove_chunk(hash)?;
        }
        Ok(decided)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::index::tests::file;

    #[test]
    fn chunks_and_snapshots_round_trip_and_corruption_is_caught() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = BackupDir::create(&tmp.path().join("b")).unwrap();
        let h = Hash32::of(b"hello");
        assert!(!dir.has_chunk(&h));
        dir.write_chunk(&h, b"hello").unwrap();
        assert!(dir.has_chunk(&h));
        assert_eq!(dir.read_chunk(&h, 5).unwrap().unwrap(), b"hello");
        assert!(matches!(
            dir.read_chunk(&h, 4),
            Err(BackupError::Corrupt(_))
        ));
        std::fs::write(dir.chunk_path(&h), b"hellO").unwrap();
        assert!(matches!(
            dir.read_chunk(&h, 5),
            Err(BackupError::Corrupt(_))
        ));
        assert_eq!(dir.chunks().unwrap(), [h]);
        assert!(dir.read_chunk(&Hash32::of(b"x"), 1).unwrap().is_none());

        assert!(matches!(
            dir.snapshot_or_latest(None),
            Err(BackupError::Empty)
        ));
        for id in ["0000000000002", "0000000000001"] {
            let s = Snapshot::new(id.into(), 0, 0, String::new(), 1, vec![file(id, &[])]);
            dir.write_snapshot(&s).unwrap();
        }
        let latest = dir.snapshot_or_latest(None).unwrap();
        assert_eq!(latest.id, "0000000000002");
        assert_eq!(dir.snapshot_ids().unwrap().len(), 2);
        let reopened = BackupDir::open(&tmp.path().join("b")).unwrap();
        assert_eq!(
            reopened.snapshot("0000000000001").unwrap().files[0].name,
            "0000000000001"
        );
    }

    #[test]
    fn pruning_keeps_the_newest_and_their_chunks_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = BackupDir::create(tmp.path()).unwrap();
        for (i, id) in ["0000000000001", "0000000000002", "0000000000003"]
            .iter()
            .enumerate()
        {
            let own = format!("only-{i}");
            for bytes in [own.as_bytes(), b"shared"] {
                dir.write_chunk(&Hash32::of(bytes), bytes).unwrap();
            }
            let f = file(id, &[(own.as_bytes(), 6), (b"shared", 6)]);
            let s = Snapshot::new((*id).into(), 0, 0, String::new(), 1, vec![f]);
            dir.write_snapshot(&s).unwrap();
        }
        let pruned = dir.prune(2).unwrap();
        assert_eq!(pruned.snapshots, ["0000000000001"]);
        assert_eq!(pruned.chunks, [Hash32::of(b"only-0")]);
        assert_eq!(
            dir.snapshot_ids().unwrap(),
            ["0000000000002", "0000000000003"]
        );
        assert_eq!(dir.chunks().unwrap().len(), 3);
        assert!(dir.has_chunk(&Hash32::of(b"shared")));
        assert_eq!(dir.prune(2).unwrap(), Prune::default(), "nothing more");
    }

    #[test]
    fn a_directory_that_is_not_a_backup_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("precious.txt"), b"x").unwrap();
        assert!(matches!(
            BackupDir::create(tmp.path()),
            Err(BackupError::NotABackup(_))
        ));
        assert!(matches!(
            BackupDir::open(tmp.path()),
            Err(BackupError::NotABackup(_))
        ));
    }
}
