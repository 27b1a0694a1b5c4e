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
    /// What an acknowledged write survives.
    pub durability: Durability,
}

/// What an acknowledged write survives (`storage.durability`).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Durability {
    /// The machine losing power: every acknowledgement follows an `fsync`
    /// of what it wrote (shared by the writes of one group commit).
    #[default]
    PowerLoss,
    /// Only the node process dying: sled's flush hands the writes to the
    /// operating system, whose cache a power cut loses (sled fsyncs its
    /// log every 500 ms, and never its large values). For disposable data
    /// or disks with power-loss protection; measured in docs/benchmarks.md.
    ProcessCrash,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            min_free_bytes: 128 << 20,
            durability: Durability::PowerLoss,
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
