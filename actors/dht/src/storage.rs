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
//!
//! This module holds the key layout, chunks and manifests; the
//! anti-entropy entries and digests (reads and the full rebuild) are in
//! `digests`, garbage collection in `gc`.

use super::anti_entropy::buckets::Entry;
use super::digest::blake3_of;
use super::keyspace::{Partition, Partitioning};
use super::manifest::{name_key, Manifest};
use super::wire::PutOutcome;
use hypha_store::{Condition, StoreClient, StoreError, Tree, WriteBatch};

mod digests;
mod gc;

use digests::ae_digest_op;
pub use digests::{Rebuild, AE_BUCKETS};
pub use gc::Sweep;

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

/// The DHT's view of a node's store.
#[derive(Clone, Debug)]
pub struct DhtStore {
    store: StoreClient,
    partitioning: Partitioning,
}

/// `prefix` ‖ `key`: the layout of every partition-keyed tree.
fn prefixed(prefix: &[u8], key: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 32);
    out.extend_from_slice(prefix);
    out.extend_from_slice(key);
    out
}

/// Store key of a chunk.
pub fn chunk_key(partition: Partition, hash: &[u8; 32]) -> Vec<u8> {
    prefixed(&partition.to_be_bytes(), hash)
}

/// Store key of a name key in the partition index.
fn index_key_of(partition: Partition, key: &[u8; 32]) -> Vec<u8> {
    prefixed(&partition.to_be_bytes(), key)
}

/// Store key of a name in the partition index.
pub fn index_key(partitioning: &Partitioning, name: &str) -> Vec<u8> {
    let key = name_key(name);
    index_key_of(partitioning.partition_of_name(name, &key), &key.0)
}

/// Scan page size of internal sweeps.
const SWEEP_PAGE: usize = 512;

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

    /// Every (key, value) of `tree` under `prefix`, paged.
    async fn scan_all(
        &self,
        tree: Tree,
        prefix: &[u8],
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let mut out = Vec::new();
        let mut after = Vec::new();
        loop {
            let page = self
                .store
                .scan_after(tree, prefix, &after, SWEEP_PAGE)
                .await?;
            let Some((last, _)) = page.last() else { break };
            after = last.clone();
            let full = page.len() == SWEEP_PAGE;
            out.extend(page);
            if !full {
                break;
            }
        }
        Ok(out)
    }

    /// Write a conditional batch; whether its conditions held.
    async fn write_if(&self, batch: WriteBatch) -> Result<bool, StoreError> {
        match self.store.write(batch).await {
            Ok(()) => Ok(true),
            Err(StoreError::ConditionFailed(_)) => Ok(false),
            Err(err) => Err(err),
        }
    }

    /// The manifest (or tombstone) stored under a name key of `partition`.
    pub async fn manifest_by_key(
        &self,
        partition: Partition,
        key: &[u8; 32],
    ) -> Result<Option<Manifest>, StoreError> {
        let index = index_key_of(partition, key);
        let Some(name) = self.store.get(Tree::DhtPartitionIndex, &index).await? else {
            return Ok(None);
        };
        let name = String::from_utf8_lossy(&name).into_owned();
        let found = self.get_manifest(&name).await?;
        Ok(found.filter(|m| name_key(&m.name).0 == *key))
    }

    /// Remove these entries' manifests (hand-off: the partition now lives
    /// elsewhere and its new replicas confirmed they hold them). Each goes
    /// only if it is still that exact version, so a write that landed
    /// after the confirmation stays for the next hand-off round; the
    /// chunks become unreferenced and the collector reclaims them.
    /// Returns how many were removed.
    pub async fn drop_entries(
        &self,
        partition: Partition,
        entries: &[Entry],
    ) -> Result<usize, StoreError> {
        let mut dropped = 0;
        for entry in entries {
            let Some(m) = self.manifest_by_key(partition, &entry.key).await? else {
                continue;
            };
            if Entry::of(&m) != *entry {
                continue;
            }
            let index = index_key(&self.partitioning, &m.name);
            if self.delete_manifest(&index, &m).await? {
                dropped += 1;
            }
        }
        Ok(dropped)
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

    /// Delete `m` and its index and digest entries if it is still the
    /// stored version (a newer write may have landed); whether it was.
    async fn delete_manifest(&self, index: &[u8], m: &Manifest) -> Result<bool, StoreError> {
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
        // A removal frees space: it may use the recovery reserve.
        self.write_if(batch.recovery()).await
    }
}

fn decode_stored(name: &str, bytes: &[u8]) -> Result<Manifest, StoreError> {
    Manifest::from_stored(bytes).map_err(|e| {
        metrics::counter!("hypha_dht_verification_failures_total", "where" => "manifest")
            .increment(1);
        StoreError::Corruption(format!("manifest of {name:?}: {e}"))
    })
}
