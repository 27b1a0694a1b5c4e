//! Backups of a cluster's files (docs/backup.md): the snapshot index and
//! its root hash ([`index`]), the pure decisions of backup, verify,
//! restore, retention and the schedule ([`plan`]), the backup directory
//! on disk ([`dir`]), where a backup reads the cluster from ([`source`]:
//! a node's admin API, or the node's own coordinator), taking a snapshot
//! ([`create`]) and the node's scheduled backups ([`schedule`]). The
//! client commands (`hypha backup …`) drive them over the admin API
//! (`src/commands/backup.rs`); the node serves the reads (`/v1/backup/…`,
//! `src/admin/routes/backup.rs`).

pub mod create;
pub mod dir;
pub mod index;
pub mod plan;
pub mod schedule;
pub mod source;

use std::path::PathBuf;

use thiserror::Error;

/// Why a backup directory operation failed.
#[derive(Debug, Error)]
pub enum BackupError {
    /// A file of the backup could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The directory exists, is not empty and holds no backup.
    #[error("{} is not a hypha backup directory (no HYPHA-BACKUP marker) and is not empty", .0.display())]
    NotABackup(PathBuf),
    /// A chunk's bytes do not match its name.
    #[error("{}: chunk bytes do not match their hash", .0.display())]
    Corrupt(PathBuf),
    /// A snapshot index does not parse.
    #[error("{}: not a snapshot index: {source}", path.display())]
    Index {
        /// The index file.
        path: PathBuf,
        /// What the parser said.
        source: serde_json::Error,
    },
    /// A snapshot index of another format.
    #[error("snapshot format {0} is not supported")]
    Format(u32),
    /// An index could not be encoded.
    #[error("encoding the index: {0}")]
    Encode(serde_json::Error),
    /// No snapshot of that id.
    #[error("no snapshot {0}")]
    NoSnapshot(String),
    /// The backup holds no complete snapshot.
    #[error("the backup holds no complete snapshot")]
    Empty,
    /// Reading the cluster failed.
    #[error("reading the cluster: {0}")]
    Source(#[from] source::SourceError),
    /// The source reports no partitions.
    #[error("the node reports no partitions")]
    NoPartitions,
    /// A chunk arrived with bytes that do not match its hash.
    #[error("chunk {0} arrived with bytes that do not match its hash")]
    ChunkMismatch(index::Hash32),
    /// A small file's inline content is unusable.
    #[error("{name}: inline content {reason}")]
    Inline {
        /// The file.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A blocking disk job could not run to its end.
    #[error("disk task: {0}")]
    Task(String),
}
