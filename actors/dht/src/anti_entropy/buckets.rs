//! Per-partition bucket digests: every entry (a name's key, the version
//! stored for it, live or tombstone) hashes to 32 bytes and falls in one
//! of B buckets by its key; a bucket's digest is the XOR of its entries'
//! hashes, so a write updates it in O(1) — XOR the old entry out and the
//! new one in — whatever the partition holds (Riak's tictac AAE). Two
//! replicas with the same entries have the same digests, bucket by bucket.

use serde::{Deserialize, Serialize};

use crate::manifest::{FileState, Manifest};

/// Buckets per partition by default.
pub const DEFAULT_BUCKETS: u32 = 1024;
/// Most buckets a partition may be split into (the tree is built over
/// them at every exchange).
pub const MAX_BUCKETS: u32 = 1 << 16;

/// One entry of a partition, as anti-entropy compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Entry {
    /// BLAKE3 of the file name.
    pub key: [u8; 32],
    /// The version stored for it (last writer wins on this pair).
    pub version: Version,
    /// Live or tombstone.
    pub state: EntryState,
}

/// A manifest's version: (modified HLC, writer node), compared in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    /// HLC of the write.
    pub modified: u64,
    /// The node that wrote it.
    pub writer: [u8; 32],
}

/// Whether an entry is a file or its deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntryState {
    /// A file.
    Live,
    /// A deletion, kept so that older versions do not come back.
    Tombstone,
}

impl Entry {
    /// The entry a stored manifest stands for.
    pub fn of(manifest: &Manifest) -> Self {
        Self {
            key: crate::manifest::name_key(&manifest.name).0,
            version: Version {
                modified: manifest.modified.0,
                writer: manifest.writer,
            },
            state: match manifest.state {
                FileState::Live => EntryState::Live,
                FileState::Tombstone => EntryState::Tombstone,
            },
        }
    }

    /// What the bucket digest is made of.
    pub fn hash(&self) -> [u8; 32] {
        let mut h = blake3::Hasher::new_derive_key("hypha anti-entropy entry v1");
        h.update(&self.key);
        h.update(&self.version.modified.to_be_bytes());
        h.update(&self.version.writer);
        h.update(&[match self.state {
            EntryState::Live => 0,
            EntryState::Tombstone => 1,
        }]);
        *h.finalize().as_bytes()
    }

    /// The first 8 bytes of [`Entry::hash`]: what replicas swap to find
    /// which entries of a differing bucket the other lacks.
    pub fn print(&self) -> Print {
        let hash = self.hash();
        let mut out = [0u8; 8];
        out.copy_from_slice(&hash[..8]);
        out
    }
}

/// An entry's short fingerprint.
pub type Print = [u8; 8];

/// Which of `buckets` (a power of two) `key` falls in. Uses key bytes
/// 8..12, clear of the top bits that choose the partition.
pub fn bucket_of(key: &[u8; 32], buckets: u32) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&key[8..12]);
    u32::from_be_bytes(b) & (buckets - 1)
}

/// A bucket count that is not a power of two in 2..=MAX_BUCKETS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bucket count {0} must be a power of two from 2 to {MAX_BUCKETS}")]
pub struct BadBucketCount(pub u32);

/// A partition's bucket digests and entry counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketDigests {
    digests: Vec<[u8; 32]>,
    counts: Vec<u32>,
    entries: u64,
}

impl BucketDigests {
    /// Empty digests over `buckets` buckets.
    pub fn new(buckets: u32) -> Result<Self, BadBucketCount> {
        if !(2..=MAX_BUCKETS).contains(&buckets) || !buckets.is_power_of_two() {
            return Err(BadBucketCount(buckets));
        }
        Ok(Self {
            digests: vec![[0; 32]; buckets as usize],
            counts: vec![0; buckets as usize],
            entries: 0,
        })
    }

    /// Digests of `entries` (a rebuild from the stored entries).
    pub fn of<'a>(
        buckets: u32,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Result<Self, BadBucketCount> {
        let mut out = Self::new(buckets)?;
        for entry in entries {
            out.insert(entry);
        }
        Ok(out)
    }

    /// Digests from stored rows of (bucket, XOR, count); buckets without
    /// a row are empty. Rows for buckets out of range are ignored.
    pub fn from_rows(
        buckets: u32,
        rows: impl IntoIterator<Item = (u32, [u8; 32], u32)>,
    ) -> Result<Self, BadBucketCount> {
        let mut out = Self::new(buckets)?;
        for (bucket, digest, count) in rows {
            let Some(slot) = out.digests.get_mut(bucket as usize) else {
                continue;
            };
            *slot = digest;
            out.counts[bucket as usize] = count;
            out.entries = out.entries.saturating_add(u64::from(count));
        }
        Ok(out)
    }

    /// Number of buckets.
    pub fn buckets(&self) -> u32 {
        self.digests.len() as u32
    }

    /// Entries counted.
    pub fn entries(&self) -> u64 {
        self.entries
    }

    /// The digests, bucket by bucket (the tree's leaves).
    pub fn digests(&self) -> &[[u8; 32]] {
        &self.digests
    }

    /// Entries in `bucket`.
    pub fn count(&self, bucket: u32) -> u32 {
        self.counts.get(bucket as usize).copied().unwrap_or(0)
    }

    /// The bucket `entry` falls in.
    pub fn bucket(&self, entry: &Entry) -> u32 {
        bucket_of(&entry.key, self.buckets())
    }

    fn toggle(&mut self, entry: &Entry) -> usize {
        let b = self.bucket(entry) as usize;
        let hash = entry.hash();
        for (d, h) in self.digests[b].iter_mut().zip(hash) {
            *d ^= h;
        }
        b
    }

    /// Count `entry` in (it must not be counted already).
    pub fn insert(&mut self, entry: &Entry) {
        let b = self.toggle(entry);
        self.counts[b] = self.counts[b].saturating_add(1);
        self.entries = self.entries.saturating_add(1);
    }

    /// Count `entry` out (it must be counted).
    pub fn remove(&mut self, entry: &Entry) {
        let b = self.toggle(entry);
        self.counts[b] = self.counts[b].saturating_sub(1);
        self.entries = self.entries.saturating_sub(1);
    }

    /// A write replaced `old` (if any) with `new`.
    pub fn replace(&mut self, old: Option<&Entry>, new: &Entry) {
        if let Some(old) = old {
            self.remove(old);
        }
        self.insert(new);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;

    pub fn entry(seed: u64, modified: u64) -> Entry {
        Entry {
            key: *blake3::hash(&seed.to_be_bytes()).as_bytes(),
            version: Version {
                modified,
                writer: [7; 32],
            },
            state: EntryState::Live,
        }
    }

    #[test]
    fn bucket_counts_must_be_powers_of_two() {
        assert!(BucketDigests::new(1024).is_ok());
        for bad in [0, 1, 3, 1000, MAX_BUCKETS * 2] {
            assert_eq!(BucketDigests::new(bad), Err(BadBucketCount(bad)));
        }
    }

    #[test]
    fn versions_compare_by_time_then_writer() {
        let v = |modified, w| Version {
            modified,
            writer: [w; 32],
        };
        assert!(v(2, 0) > v(1, 9));
        assert!(v(1, 2) > v(1, 1));
    }

    proptest! {
        /// Digests depend on the set of entries, not on the order or the
        /// path of updates that led to it.
        #[test]
        fn digests_are_a_function_of_the_entry_set(
            seeds in proptest::collection::btree_set(0u64..10_000, 0..200),
            updates in proptest::collection::vec((0u64..10_000, 1u64..5), 0..100),
        ) {
            let mut live: std::collections::BTreeMap<u64, Entry> =
                seeds.iter().map(|&s| (s, entry(s, 1))).collect();
            let mut incremental = BucketDigests::of(64, live.values()).unwrap();
            for (seed, modified) in updates {
                let new = entry(seed, modified);
                let old = live.insert(seed, new);
                incremental.replace(old.as_ref(), &new);
            }
            let rebuilt = BucketDigests::of(64, live.values()).unwrap();
            prop_assert_eq!(&incremental, &rebuilt);
            prop_assert_eq!(incremental.entries(), live.len() as u64);
        }
    }
}
