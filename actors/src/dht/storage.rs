//! How the DHT lays its data out in the store, and the reads and writes it
//! makes there. Everything goes through [`StoreClient`] (the store actor
//! owns sled); this module only builds keys, batches and records.
//!
//! Layout (all keys of a partition share its two-byte prefix, so a
//! partition is one range scan):
//! - `dht_chunks`: partition ‖ hash → chunk bytes
//! - `dht_chunk_times`: partition ‖ hash → last write (Unix ms), for GC
//! - `dht_manifests`: name → version ‖ manifest
//! - `dht_partition_index`: partition ‖ BLAKE3(name) → name
//! - `ae_entries`: partition ‖ bucket ‖ BLAKE3(name) → entry hash ‖ entry
//! - `ae_digests`: partition ‖ bucket → XOR of entry hashes ‖ count
//!
//! The two anti-entropy trees are kept by the store itself, with every
//! manifest write and tombstone removal (a [`DigestOp`] in the same batch),
//! so a partition's digests are always one range scan away.

use super::anti_entropy::buckets::{
    bucket_of, BucketDigests, Entry, EntryState, Version, DEFAULT_BUCKETS,
};
use super::digest::blake3_of;
use super::keyspace::{Partition, Partitioning};
use super::manifest::{name_key, Manifest};
use super::wire::PutOutcome;
use crate::store::{
    Condition, DigestOp, StoreClient, StoreError, Tree, WriteBatch, DIGEST_ROW_BYTES,
};

/// Result of reading a chunk from the local store.
#[derive(Debug, PartialEq, Eq)]
pub enum ChunkRead {
    /// Verified bytes.
    Found(Vec<u8>),
    /// Not stored here.
    Missing,
    /// Stored, but the bytes do not hash to the key: never returned.
    Corrupt,
}

/// What one garbage-collection pass over a partition removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Unreferenced chunks deleted.
    pub chunks: usize,
    /// Expired tombstones deleted.
    pub tombstones: usize,
}

/// The DHT's view of a node's store.
#[derive(Clone, Debug)]
pub struct DhtStore {
    store: StoreClient,
    partitioning: Partitioning,
}

/// Store key of a chunk.
pub fn chunk_key(partition: Partition, hash: &[u8; 32]) -> Vec<u8> {
    let mut key = Vec::with_capacity(34);
    key.extend_from_slice(&partition.to_be_bytes());
    key.extend_from_slice(hash);
    key
}

/// Store key of a name in the partition index.
pub fn index_key(partitioning: &Partitioning, name: &str) -> Vec<u8> {
    let key = name_key(name);
    let partition = partitioning.partition_of(&key);
    let mut out = Vec::with_capacity(34);
    out.extend_from_slice(&partition.to_be_bytes());
    out.extend_from_slice(&key.0);
    out
}

/// Scan page size of internal sweeps.
const SWEEP_PAGE: usize = 512;

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
fn ae_digest_op(partition: Partition, key: &[u8; 32], entry: Option<&Entry>) -> DigestOp {
    let row = ae_row_key(partition, bucket_of(key, AE_BUCKETS));
    let mut entry_key = row.clone();
    entry_key.extend_from_slice(key);
    DigestOp {
        entries: Tree::AeEntries,
        key: entry_key,
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
    /// Over `store`.
    pub fn new(store: StoreClient, partitioning: Partitioning) -> Self {
        Self {
            store,
            partitioning,
        }
    }

    /// The partitioning in use.
    pub fn partitioning(&self) -> Partitioning {
        self.partitioning
    }

    /// Store a chunk whose hash the caller has verified; durable on `Ok`.
    /// The time entry goes first: a crash between the two leaves a time
    /// without a chunk (collected), never a chunk GC cannot see.
    pub async fn put_chunk(
        &self,
        partition: Partition,
        hash: &[u8; 32],
        data: Vec<u8>,
        now_ms: u64,
    ) -> Result<(), StoreError> {
        let key = chunk_key(partition, hash);
        let batch = WriteBatch::new()
            .put(
                Tree::DhtChunkTimes,
                key.clone(),
                now_ms.to_be_bytes().to_vec(),
            )
            .put(Tree::DhtChunks, key, data);
        self.store.write(batch).await
    }

    /// Read and verify a chunk.
    pub async fn get_chunk(
        &self,
        partition: Partition,
        hash: &[u8; 32],
    ) -> Result<ChunkRead, StoreError> {
        let key = chunk_key(partition, hash);
        let Some(bytes) = self.store.get(Tree::DhtChunks, &key).await? else {
            return Ok(ChunkRead::Missing);
        };
        let Ok((found, bytes)) = blake3_of(bytes).await else {
            return Err(StoreError::Io("chunk verification was cancelled".into()));
        };
        if &found != hash {
            metrics::counter!("hypha_dht_verification_failures_total", "where" => "local_store")
                .increment(1);
            tracing::warn!(chunk = %hex::encode(hash), "stored chunk fails verification");
            return Ok(ChunkRead::Corrupt);
        }
        Ok(ChunkRead::Found(bytes))
    }

    /// Which chunks are stored (by their time entries: cheap).
    pub async fn has_chunks(
        &self,
        partition: Partition,
        hashes: &[[u8; 32]],
    ) -> Result<Vec<bool>, StoreError> {
        let mut out = Vec::with_capacity(hashes.len());
        for hash in hashes {
            let key = chunk_key(partition, hash);
            out.push(self.store.get(Tree::DhtChunkTimes, &key).await?.is_some());
        }
        Ok(out)
    }

    /// Store a manifest unless a newer version is stored; durable either way.
    pub async fn put_manifest(&self, manifest: &Manifest) -> Result<PutOutcome, StoreError> {
        let stored = manifest
            .to_stored()
            .map_err(|e| StoreError::Io(format!("manifest does not encode: {e}")))?;
        let entry = Entry::of(manifest);
        let batch = WriteBatch::new()
            .put(
                Tree::DhtPartitionIndex,
                index_key(&self.partitioning, &manifest.name),
                manifest.name.as_bytes().to_vec(),
            )
            .put(
                Tree::DhtManifests,
                manifest.name.as_bytes().to_vec(),
                stored,
            )
            .require(Condition::NotNewer {
                tree: Tree::DhtManifests,
                key: manifest.name.as_bytes().to_vec(),
                version: manifest.version().to_vec(),
            })
            .digest(ae_digest_op(
                manifest.partition(&self.partitioning),
                &entry.key,
                Some(&entry),
            ));
        // A delete must pass on a full disk: it is how space is freed.
        let batch = if manifest.is_live() {
            batch
        } else {
            batch.recovery()
        };
        match self.store.write(batch).await {
            Ok(()) => Ok(PutOutcome::Stored),
            Err(StoreError::ConditionFailed(_)) => Ok(PutOutcome::Superseded),
            Err(err) => Err(err),
        }
    }

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
        let prefix = ae_row_key(partition, bucket);
        let mut out = Vec::new();
        let mut after = prefix.clone();
        loop {
            let page = self
                .store
                .scan_after(Tree::AeEntries, &prefix, &after, SWEEP_PAGE)
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            out.extend(page.iter().filter_map(|(k, v)| ae_entry_from(k, v)));
            if page.len() < SWEEP_PAGE {
                break;
            }
        }
        Ok(out)
    }

    /// Read a manifest. A stored manifest that does not decode is reported
    /// as corruption (and counted), not returned. One whose inline content
    /// does not match its hash is reported as absent, so that the reader
    /// repairs it with a good copy.
    pub async fn get_manifest(&self, name: &str) -> Result<Option<Manifest>, StoreError> {
        let Some(bytes) = self.store.get(Tree::DhtManifests, name.as_bytes()).await? else {
            return Ok(None);
        };
        let manifest = decode_stored(name, &bytes)?;
        if !manifest.inline_verified() {
            metrics::counter!("hypha_dht_verification_failures_total", "where" => "local_store")
                .increment(1);
            tracing::warn!(
                name,
                "inline content does not match its hash; reported absent"
            );
            return Ok(None);
        }
        Ok(Some(manifest))
    }

    /// Manifests with names starting with `prefix`, strictly after `after`.
    pub async fn list_names(
        &self,
        prefix: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<Manifest>, StoreError> {
        let entries = self
            .store
            .scan_after(
                Tree::DhtManifests,
                prefix.as_bytes(),
                after.as_bytes(),
                limit,
            )
            .await?;
        let mut out = Vec::with_capacity(entries.len());
        for (key, value) in entries {
            let name = String::from_utf8_lossy(&key).into_owned();
            match decode_stored(&name, &value) {
                Ok(m) => out.push(m),
                // One bad record must not hide the rest of the listing.
                Err(err) => tracing::error!(%name, "skipping undecodable manifest: {err}"),
            }
        }
        Ok(out)
    }

    /// (index key, name) pairs of a partition after `after`.
    pub async fn list_partition(
        &self,
        partition: Partition,
        after: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, String)>, StoreError> {
        let entries = self
            .store
            .scan_after(
                Tree::DhtPartitionIndex,
                &partition.to_be_bytes(),
                after,
                limit,
            )
            .await?;
        Ok(entries
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
            .collect())
    }

    /// Collect a partition's garbage: chunks no live manifest here refers
    /// to, last written more than `chunk_grace_ms` ago (uploads in flight
    /// write chunks before their manifest), and tombstones older than
    /// `tombstone_grace_ms`.
    pub async fn sweep(
        &self,
        partition: Partition,
        now_ms: u64,
        chunk_grace_ms: u64,
        tombstone_grace_ms: u64,
    ) -> Result<Sweep, StoreError> {
        let mut referenced = std::collections::HashSet::new();
        let mut sweep = Sweep::default();
        let mut after = Vec::new();
        loop {
            let page = self.list_partition(partition, &after, SWEEP_PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            for (index, name) in &page {
                let Some(m) = self.get_manifest(name).await? else {
                    // An index entry whose manifest write never landed.
                    self.store
                        .write(WriteBatch::new().delete(Tree::DhtPartitionIndex, index.clone()))
                        .await?;
                    continue;
                };
                if m.is_live() {
                    referenced.extend(m.chunks.iter().map(|c| c.hash));
                } else if now_ms.saturating_sub(m.modified.unix_ms()) > tombstone_grace_ms {
                    self.delete_tombstone(index, &m).await?;
                    sweep.tombstones += 1;
                }
            }
        }
        sweep.chunks = self
            .sweep_chunks(partition, &referenced, now_ms, chunk_grace_ms)
            .await?;
        Ok(sweep)
    }

    async fn delete_tombstone(&self, index: &[u8], m: &Manifest) -> Result<(), StoreError> {
        // Only if still this exact tombstone (a newer write may have landed).
        let batch = WriteBatch::new()
            .delete(Tree::DhtManifests, m.name.as_bytes().to_vec())
            .delete(Tree::DhtPartitionIndex, index.to_vec())
            .require(Condition::NotNewer {
                tree: Tree::DhtManifests,
                key: m.name.as_bytes().to_vec(),
                version: m.version().to_vec(),
            })
            .digest(ae_digest_op(
                m.partition(&self.partitioning),
                &name_key(&m.name).0,
                None,
            ));
        match self.store.write(batch).await {
            Ok(()) | Err(StoreError::ConditionFailed(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    async fn sweep_chunks(
        &self,
        partition: Partition,
        referenced: &std::collections::HashSet<[u8; 32]>,
        now_ms: u64,
        grace_ms: u64,
    ) -> Result<usize, StoreError> {
        let prefix = partition.to_be_bytes();
        let mut after = Vec::new();
        let mut deleted = 0;
        loop {
            let page = self
                .store
                .scan_after(Tree::DhtChunkTimes, &prefix, &after, SWEEP_PAGE)
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            let mut batch = WriteBatch::new();
            for (key, time) in page {
                let hash: Option<[u8; 32]> = key.get(2..).and_then(|h| h.try_into().ok());
                let written_ms = time
                    .as_slice()
                    .try_into()
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                let unreferenced = hash.is_none_or(|h| !referenced.contains(&h));
                if unreferenced && now_ms.saturating_sub(written_ms) > grace_ms {
                    batch = batch
                        .delete(Tree::DhtChunks, key.clone())
                        .delete(Tree::DhtChunkTimes, key);
                    deleted += 1;
                }
            }
            if !batch.is_empty() {
                self.store.write(batch).await?;
            }
        }
        Ok(deleted)
    }
}

fn decode_stored(name: &str, bytes: &[u8]) -> Result<Manifest, StoreError> {
    Manifest::from_stored(bytes).map_err(|e| {
        metrics::counter!("hypha_dht_verification_failures_total", "where" => "manifest")
            .increment(1);
        StoreError::Corruption(format!("manifest of {name:?}: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use ractor::Actor;

    use super::*;
    use crate::dht::manifest::tests::sample;
    use crate::dht::manifest::FileState;
    use crate::store::{DiskReserve, SledEngine, Store, StoreArgs};

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
            engine,
            reserve: DiskReserve {
                path: None,
                min_free_bytes: 0,
            },
        };
        let (actor, handle) = Actor::spawn(
            Some(crate::actor_name(node, crate::store::ROLE)),
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

        // Collecting the tombstone takes its entry out of the digests.
        let index = index_key(&store.partitioning, &gone.name);
        store.delete_tombstone(&index, &gone).await.expect("delete");
        newest.remove(&gone.name);
        assert_digests_match(&store, &newest).await.expect("reads");
        actor.stop(None);
        let _ = handle.await;
    }
}
