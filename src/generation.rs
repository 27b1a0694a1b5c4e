//! The node's generation (boot count), which must never go backwards: a
//! restarted node is a new cluster member `(id, generation)`, and peers
//! tell its incarnations apart by it (docs/membership.md). It is kept in
//! two places: `<data-dir>/generation` (decimal, written atomically) and
//! the store's `meta` tree. The file is the one a store rollback cannot
//! take back — sled silently drops the tail of a damaged log, and
//! `hypha store quarantine` replaces the store with an empty one — so each
//! start takes the larger of the two plus one, and writes the file before
//! the store and before the node announces itself. A data directory
//! without the file (written by an older Hypha) falls back to the store.

use std::path::Path;

use hypha_store::{KvEngine, StoreError, Tree, WriteBatch};
use thiserror::Error;

/// File name of the generation inside the data directory.
pub const GENERATION_FILE: &str = "generation";
/// Key of the generation in the store's `meta` tree.
pub(crate) const GENERATION_KEY: &[u8] = b"generation";

/// The generation could not be read or recorded.
#[derive(Debug, Error)]
pub enum GenerationError {
    /// Reading or writing the file failed.
    #[error("generation file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file exists but does not hold a number.
    #[error("generation file {path} is corrupt ({reason}); it must hold the node's boot count, at least the last one its peers saw")]
    Corrupt {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The store could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// This start's generation from the recorded ones (None: never recorded
/// there): one more than the larger.
pub fn next(file: Option<u64>, store: Option<u64>) -> u64 {
    file.unwrap_or(0).max(store.unwrap_or(0)).saturating_add(1)
}

/// Count this start: read both records, write the next generation to the
/// file, then to the store (flushed). Blocks.
pub fn bump(data_dir: &Path, engine: &dyn KvEngine) -> Result<u64, GenerationError> {
    let stored = engine
        .get(Tree::Meta, GENERATION_KEY)?
        .map(|bytes| decode(&bytes))
        .transpose()?;
    let generation = next(read_file(data_dir)?, stored);
    write_file(data_dir, generation)?;
    let batch = WriteBatch::new().put(
        Tree::Meta,
        GENERATION_KEY,
        generation.to_be_bytes().to_vec(),
    );
    engine.apply(&batch)?;
    engine.flush()?;
    Ok(generation)
}

/// The generation as the store holds it (u64 big-endian).
pub(crate) fn decode(bytes: &[u8]) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corruption("generation is not 8 bytes".into()))?;
    Ok(u64::from_be_bytes(arr))
}

/// The file's generation; None when there is no file.
pub fn read_file(data_dir: &Path) -> Result<Option<u64>, GenerationError> {
    let path = data_dir.join(GENERATION_FILE);
    let shown = || path.display().to_string();
    match std::fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|err: std::num::ParseIntError| GenerationError::Corrupt {
                path: shown(),
                reason: err.to_string(),
            }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(GenerationError::Io {
            path: shown(),
            source,
        }),
    }
}

fn write_file(data_dir: &Path, generation: u64) -> Result<(), GenerationError> {
    crate::durable_file::write(
        data_dir,
        GENERATION_FILE,
        format!("{generation}\n").as_bytes(),
    )
    .map_err(|source| GenerationError::Io {
        path: data_dir.join(GENERATION_FILE).display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypha_store::SledEngine;

    #[test]
    fn the_larger_record_wins_and_none_counts_as_zero() {
        assert_eq!(next(None, None), 1);
        assert_eq!(next(Some(7), Some(3)), 8);
        assert_eq!(next(Some(3), Some(7)), 8);
        assert_eq!(next(None, Some(4)), 5, "an older data directory");
        assert_eq!(next(Some(u64::MAX), None), u64::MAX);
    }

    fn set_stored(engine: &SledEngine, generation: u64) {
        let batch = WriteBatch::new().put(
            Tree::Meta,
            GENERATION_KEY,
            generation.to_be_bytes().to_vec(),
        );
        engine.apply(&batch).unwrap();
    }

    #[test]
    fn a_store_rolled_back_still_yields_a_larger_generation() {
        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(&dir.path().join("db")).unwrap();
        for want in 1..=3 {
            assert_eq!(bump(dir.path(), &engine).unwrap(), want);
        }
        // The store lost its last starts (sled dropped the tail of a
        // damaged log): the file remembers.
        set_stored(&engine, 1);
        assert_eq!(bump(dir.path(), &engine).unwrap(), 4);
        assert_eq!(read_file(dir.path()).unwrap(), Some(4));
        let stored = engine.get(Tree::Meta, GENERATION_KEY).unwrap().unwrap();
        assert_eq!(decode(&stored).unwrap(), 4, "the store follows");
    }

    #[test]
    fn an_empty_store_keeps_counting_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(GENERATION_FILE), "41\n").unwrap();
        let engine = SledEngine::open(&dir.path().join("db")).unwrap();
        assert_eq!(bump(dir.path(), &engine).unwrap(), 42);
    }

    #[test]
    fn without_the_file_the_store_is_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(&dir.path().join("db")).unwrap();
        set_stored(&engine, 9);
        assert_eq!(bump(dir.path(), &engine).unwrap(), 10);
        assert_eq!(read_file(dir.path()).unwrap(), Some(10));
    }

    #[test]
    fn a_corrupt_file_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(GENERATION_FILE), "seven").unwrap();
        let engine = SledEngine::open(&dir.path().join("db")).unwrap();
        assert!(matches!(
            bump(dir.path(), &engine),
            Err(GenerationError::Corrupt { .. })
        ));
    }
}
