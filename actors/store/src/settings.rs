//! The store's settings, as the `[storage]` section of the node's config
//! file spells them.

use std::path::PathBuf;

use serde::Deserialize;

use crate::writer::DiskReserve;

/// Local storage settings (`[storage]`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Writes that add data are refused (507) below this much free disk.
    pub min_free_bytes: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            min_free_bytes: 128 << 20,
        }
    }
}

impl StorageSettings {
    /// The free-space reserve the writer keeps on the file system holding
    /// `data_dir`.
    pub fn reserve(&self, data_dir: PathBuf) -> DiskReserve {
        DiskReserve {
            path: Some(data_dir),
            min_free_bytes: self.min_free_bytes,
        }
    }
}
