//! The anti-entropy entries and per-bucket digests the DHT keeps in the
//! store beside its manifests: their key and value layout, the update
//! every manifest write carries ([`ae_digest_op`]), reads of digests and
//! entries, and the full rebuild that finds and fixes drift.

use super::{index_key_of, prefixed, DhtStore, SWEEP_PAGE};
use crate::anti_entropy::buckets::{
    bucket_of, BucketDigests, Entry, EntryState, Version, DEFAULT_BUCKETS,
};
use crate::keyspace::Partition;
use crate::manifest::Manifest;
use hypha_store::{
    Condition, DigestOp, RowRebuild, StoreError, Tree, WriteBatch, DIGEST_ROW_BYTES,
};

/// What a full rebuild of a partition's digests found and fixed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rebuild {
    /// Entries that did not match their manifest, rewritten.
    pub entries_fixed: usize,
    /// Entries without a manifest, removed.
    pub entries_removed: usize,
    /// Digest rows that did not match their entries, recomputed.
    pub rows_fixed: usize,
}

impl Rebuild {
    /// Whether anything was wrong.
    pub fn changed(&self) -> bool {
        self.entries_fixed + self.entries_removed + self.rows_fixed > 0
    }
}

/// Anti-entropy buckets per partition. Changing it needs a rebuild of the
/// digests on every node (and the same value cluster-wide).
pub const AE_BUCKETS: u32 = DEFAULT_BUCKETS;

/// Bytes of a stored anti-entropy entry after its hash: modified (8) ‖
/// writer (32) ‖ state (1).
const AE_ENTRY_BYTES: usize = 41;

fn ae_row_key(partition: Partition, bucket: u32) -> Vec<u8> {
    let mut key = Vec::with_capacity(6);
    key.extend_from_slice(&partition.to_be_bytes());
    key.extend_from_slice(&bucket.to_be_bytes());
    key
}

/// The store update that keeps the partition's digests in step with
/// `entry` being written (`Some`) or removed.
pub(super) fn ae_digest_op(
    partition: Partition,
    key: &[u8; 32],
    entry: Option<&Entry>,
) -> DigestOp {
    let row = ae_row_key(partition, bucket_of(key, AE_BUCKETS));
    DigestOp {
        entries: Tree::AeEntries,
        key: prefixed(&row, key),
        value: entry.map(ae_entry_value),
        digests: Tree::AeDigests,
        row,
    }
}

fn ae_entry_value(entry: &Entry) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + AE_ENTRY_BYTES);
    out.extend_from_slice(&entry.hash());
    out.extend_from_slice(&entry.version.modified.to_be_bytes());
    out.extend_from_slice(&entry.version.writer);
    out.push(match entry.state {
        EntryState::Live => 0,
        EntryState::Tombstone => 1,
    });
    out
}

/// An entry back from its store key and value (None if malformed).
fn ae_entry_from(key: &[u8], value: &[u8]) -> Option<Entry> {
    let name_key: [u8; 32] = key.get(6..38)?.try_into().ok()?;
    let body = value.get(32..32 + AE_ENTRY_BYTES)?;
    Some(Entry {
        key: name_key,
        version: Version {
            modified: u64::from_be_bytes(body[..8].try_into().ok()?),
            writer: body[8..40].try_into().ok()?,
        },
        state: match body[40] {
            0 => EntryState::Live,
            1 => EntryState::Tombstone,
            _ => return None,
        },
    })
}

impl DhtStore {
    /// The anti-entropy digests of `partition`, as stored.
    pub async fn bucket_digests(&self, partition: Partition) -> Result<BucketDigests, StoreError> {
        let rows = self
            .store
            .scan(
                Tree::AeDigests,
                &partition.to_be_bytes(),
                AE_BUCKETS as usize,
            )
            .await?;
        let rows = rows.iter().filter_map(|(key, value)| {
            let bucket = u32::from_be_bytes(key.get(2..6)?.try_into().ok()?);
            let digest: [u8; 32] = value.get(..32)?.try_into().ok()?;
            let count = u32::from_be_bytes(value.get(32..DIGEST_ROW_BYTES)?.try_into().ok()?);
            Some((bucket, digest, count))
        });
        BucketDigests::from_rows(AE_BUCKETS, rows)
            .map_err(|e| StoreError::Corruption(e.to_string()))
    }

    /// The anti-entropy entries of one bucket of `partition`.
    pub async fn bucket_entries(
        &self,
        partition: Partition,
        bucket: u32,
    ) -> Result<Vec<Entry>, StoreError> {
        let rows = self
            .scan_all(Tree::AeEntries, &ae_row_key(partition, bucket))
            .await?;
        Ok(rows
            .iter()
            .filter_map(|(k, v)| ae_entry_from(k, v))
            .collect())
    }

    /// Every anti-entropy entry of `partition` (one range scan, paged).
    pub async fn partition_entries(&self, partition: Partition) -> Result<Vec<Entry>, StoreError> {
        let rows = self
            .scan_all(Tree::AeEntries, &partition.to_be_bytes())
            .await?;
        Ok(rows
            .iter()
            .filter_map(|(k, v)| ae_entry_from(k, v))
            .collect())
    }

    /// Check a partition's digests against its manifests and fix what
    /// drifted: an entry missing or wrong (a crash between a manifest
    /// and its digest update, data from before digests existed, bit rot),
    /// an entry whose manifest is gone, a row that is not the XOR of its
    /// entries. Every fix is conditional — on the manifest not having
    /// moved on, on the name still being absent — and rows are recomputed
    /// inside the writer, so writes racing the rebuild are never undone.
    pub async fn rebuild_digests(&self, partition: Partition) -> Result<Rebuild, StoreError> {
        let mut rebuild = Rebuild::default();
        let mut seen = std::collections::HashSet::new();
        let mut after = Vec::new();
        loop {
            let page = self.list_partition(partition, &after, SWEEP_PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            for (_, name) in &page {
                let Some(m) = self.get_manifest(name).await? else {
                    continue;
                };
                let entry = Entry::of(&m);
                seen.insert(entry.key);
                if self.stored_entry(partition, &entry.key).await? != Some(entry) {
                    rebuild.entries_fixed +=
                        usize::from(self.rewrite_entry(partition, &m, &entry).await?);
                }
            }
        }
        for raw in self.entry_keys(partition).await? {
            let Some(key) = raw.get(6..38).and_then(|k| <[u8; 32]>::try_from(k).ok()) else {
                continue;
            };
            let placed =
                raw.get(..6) == Some(&ae_row_key(partition, bucket_of(&key, AE_BUCKETS))[..]);
            if placed && seen.contains(&key) {
                continue;
            }
            if self
                .remove_entry(partition, &raw, &key, seen.contains(&key))
                .await?
            {
                rebuild.entries_removed += 1;
            }
        }
        rebuild.rows_fixed = self.rebuild_rows(partition).await?;
        Ok(rebuild)
    }

    /// The store keys of every anti-entropy entry of `partition`,
    /// malformed ones included.
    async fn entry_keys(&self, partition: Partition) -> Result<Vec<Vec<u8>>, StoreError> {
        let rows = self
            .scan_all(Tree::AeEntries, &partition.to_be_bytes())
            .await?;
        Ok(rows.into_iter().map(|(k, _)| k).collect())
    }

    async fn stored_entry(
        &self,
        partition: Partition,
        key: &[u8; 32],
    ) -> Result<Option<Entry>, StoreError> {
        let entry_key = prefixed(&ae_row_key(partition, bucket_of(key, AE_BUCKETS)), key);
        let value = self.store.get(Tree::AeEntries, &entry_key).await?;
        Ok(value.and_then(|v| {
            // A value whose hash does not match its fields is rot.
            ae_entry_from(&entry_key, &v).filter(|e| v.get(..32) == Some(&e.hash()[..]))
        }))
    }

    async fn rewrite_entry(
        &self,
        partition: Partition,
        m: &Manifest,
        entry: &Entry,
    ) -> Result<bool, StoreError> {
        let batch = WriteBatch::new()
            .require(Condition::NotNewer {
                tree: Tree::DhtManifests,
                key: m.name.as_bytes().to_vec(),
                version: m.version().to_vec(),
            })
            .digest(ae_digest_op(partition, &entry.key, Some(entry)))
            .recovery();
        self.write_if(batch).await
    }

    /// Remove the entry stored at `raw`: one in the wrong bucket, or one
    /// whose name has no manifest (`named`: false) — then only while the
    /// name stays absent.
    async fn remove_entry(
        &self,
        partition: Partition,
        raw: &[u8],
        key: &[u8; 32],
        named: bool,
    ) -> Result<bool, StoreError> {
        let mut batch = WriteBatch::new().digest(DigestOp {
            entries: Tree::AeEntries,
            key: raw.to_vec(),
            value: None,
            digests: Tree::AeDigests,
            row: raw.get(..6).unwrap_or_default().to_vec(),
        });
        if !named {
            if self.manifest_by_key(partition, key).await?.is_some() {
                return Ok(false);
            }
            // The index entry is written with every manifest: while it is
            // absent, no manifest of this name landed since the check.
            batch = batch.require(Condition::Absent {
                tree: Tree::DhtPartitionIndex,
                key: index_key_of(partition, key),
            });
        }
        self.write_if(batch.recovery()).await
    }

    /// Recompute the rows that differ from the XOR of their entries.
    async fn rebuild_rows(&self, partition: Partition) -> Result<usize, StoreError> {
        let entries = self.partition_entries(partition).await?;
        let want = BucketDigests::of(AE_BUCKETS, &entries)
            .map_err(|e| StoreError::Corruption(e.to_string()))?;
        let got = self.bucket_digests(partition).await?;
        let mut batch = WriteBatch::new();
        let mut fixed = 0;
        for bucket in 0..AE_BUCKETS {
            let b = bucket as usize;
            if got.digests().get(b) != want.digests().get(b)
                || got.count(bucket) != want.count(bucket)
            {
                batch = batch.rebuild_row(RowRebuild {
                    entries: Tree::AeEntries,
                    digests: Tree::AeDigests,
                    row: ae_row_key(partition, bucket),
                });
                fixed += 1;
            }
        }
        if fixed > 0 {
            self.store.write(batch.recovery()).await?;
        }
        Ok(fixed)
    }

    /// Whether this node holds anything of `partition` (by its digests).
    pub async fn holds(&self, partition: Partition) -> Result<bool, StoreError> {
        let rows = self
            .store
            .scan(Tree::AeDigests, &partition.to_be_bytes(), 1)
            .await?;
        Ok(!rows.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use ractor::Actor;

    use super::super::index_key;
    use super::*;
    use crate::keyspace::Partitioning;
    use crate::manifest::name_key;
    use crate::manifest::tests::sample;
    use crate::manifest::FileState;
    use crate::wire::PutOutcome;
    use hypha_store::{DiskReserve, SledEngine, Store, StoreArgs, StoreClient};

    /// Every partition's stored digests equal the digests of the newest
    /// entry per name, and its entry index lists exactly those entries.
    async fn assert_digests_match(
        store: &DhtStore,
        newest: &BTreeMap<String, Manifest>,
    ) -> Result<(), StoreError> {
        let mut by_partition: BTreeMap<u16, Vec<Entry>> = BTreeMap::new();
        for m in newest.values() {
            let p = m.partition(&store.partitioning).0;
            by_partition.entry(p).or_default().push(Entry::of(m));
        }
        for (p, entries) in &by_partition {
            let want = BucketDigests::of(AE_BUCKETS, entries).expect("bucket count");
            let got = store.bucket_digests(Partition(*p)).await?;
            assert_eq!(got, want, "partition {p}");
            let mut listed = Vec::new();
            for bucket in 0..AE_BUCKETS {
                if got.count(bucket) > 0 {
                    listed.extend(store.bucket_entries(Partition(*p), bucket).await?);
                }
            }
            listed.sort();
            let mut want = entries.clone();
            want.sort();
            assert_eq!(listed, want, "partition {p}");
        }
        Ok(())
    }

    #[tokio::test]
    async fn manifest_writes_and_tombstone_removals_keep_the_digests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = Arc::new(SledEngine::open(dir.path()).expect("open"));
        let node = "ae-digest-test";
        let args = StoreArgs {
            engine: engine.clone(),
            reserve: DiskReserve {
                path: None,
                min_free_bytes: 0,
            },
        };
        let (actor, handle) = Actor::spawn(
            Some(hypha_core::actor_name(node, hypha_store::ROLE)),
            Store,
            args,
        )
        .await
        .expect("store starts");
        let store = DhtStore::new(
            StoreClient::new(node, Duration::from_secs(5)),
            Partitioning::new(2).expect("bits"),
        );
        let mut newest = BTreeMap::new();
        for i in 0..40u64 {
            let m = sample(&format!("f{}", i % 25), 10 + i, (i % 3) as u8);
            assert_eq!(store.put_manifest(&m).await, Ok(PutOutcome::Stored));
            newest.insert(m.name.clone(), m);
        }
        // An older version loses and changes nothing.
        let old = sample("f1", 1, 9);
        assert_eq!(store.put_manifest(&old).await, Ok(PutOutcome::Superseded));
        let mut gone = sample("f2", 1_000, 1);
        gone.state = FileState::Tombstone;
        assert_eq!(store.put_manifest(&gone).await, Ok(PutOutcome::Stored));
        newest.insert(gone.name.clone(), gone.clone());
        assert_digests_match(&store, &newest).await.expect("reads");

        // Drift behind the store's back — an entry lost (a crash between
        // a manifest and its digest), an orphan entry, a rotten row — is
        // found and fixed by a full rebuild; a second finds nothing.
        let f1 = &newest["f1"];
        let p1 = f1.partition(&store.partitioning);
        let f1_key = name_key("f1").0;
        let lost = prefixed(&ae_row_key(p1, bucket_of(&f1_key, AE_BUCKETS)), &f1_key);
        let orphan = prefixed(&ae_row_key(p1, 7), &[9; 32]);
        let drift = WriteBatch::new()
            .delete(Tree::AeEntries, lost)
            .put(Tree::AeEntries, orphan, vec![5; 32 + AE_ENTRY_BYTES])
            .put(
                Tree::AeDigests,
                ae_row_key(p1, 3),
                vec![1; DIGEST_ROW_BYTES],
            );
        hypha_store::KvEngine::apply(&*engine, &drift).expect("raw write");
        let mut fixed = Rebuild::default();
        for p in 0..4 {
            let r = store.rebuild_digests(Partition(p)).await.expect("rebuild");
            fixed.entries_fixed += r.entries_fixed;
            fixed.entries_removed += r.entries_removed;
            fixed.rows_fixed += r.rows_fixed;
        }
        assert_eq!((fixed.entries_fixed, fixed.entries_removed), (1, 1));
        assert!(fixed.rows_fixed >= 2, "{fixed:?}");
        assert_digests_match(&store, &newest).await.expect("reads");
        for p in 0..4 {
            let r = store.rebuild_digests(Partition(p)).await.expect("rebuild");
            assert!(!r.changed(), "{r:?}");
        }

        // Collecting the tombstone takes its entry out of the digests.
        let index = index_key(&store.partitioning, &gone.name);
        assert_eq!(store.delete_manifest(&index, &gone).await, Ok(true));
        newest.remove(&gone.name);
        assert_digests_match(&store, &newest).await.expect("reads");
        actor.stop(None);
        let _ = handle.await;
    }
}
