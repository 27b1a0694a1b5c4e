//! Store errors.

use thiserror::Error;

/// Why a store operation failed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum StoreError {
    /// The disk is full: writes are refused, reads keep working.
    #[error("disk full: write refused")]
    DiskFull,
    /// Any other I/O failure of the underlying database.
    #[error("storage I/O error: {0}")]
    Io(String),
    /// sled reported corruption.
    #[error("storage corruption: {0}")]
    Corruption(String),
    /// The store could not be opened because its files are damaged: sled's
    /// recovery panicked or reported corruption. Nothing short of moving
    /// the store aside (`hypha store quarantine`, docs/storage.md) lets the
    /// node start again.
    #[error("the store at {dir} is damaged: {cause}")]
    Damaged {
        /// The store's directory.
        dir: String,
        /// What sled said (its panic message or error).
        cause: String,
    },
    /// The data directory was written by a newer, incompatible Hypha.
    #[error("data format version {found} is not supported (this build reads up to {supported})")]
    UnsupportedFormat {
        /// Version found on disk.
        found: u32,
        /// Newest version this build understands.
        supported: u32,
    },
    /// A batch's precondition did not hold; nothing was written.
    #[error("precondition failed: {0}")]
    ConditionFailed(String),
    /// The store actor did not answer (restarting, overloaded, or gone).
    /// For a write the outcome is unknown.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

impl From<sled::Error> for StoreError {
    fn from(err: sled::Error) -> Self {
        match err {
            sled::Error::Io(io) if io.kind() == std::io::ErrorKind::StorageFull => {
                StoreError::DiskFull
            }
            sled::Error::Io(io) => StoreError::Io(io.to_string()),
            sled::Error::Corruption { at, .. } => StoreError::Corruption(format!("at {at:?}")),
            other => StoreError::Io(other.to_string()),
        }
    }
}
