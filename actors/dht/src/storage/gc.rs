//! Garbage collection of a partition in the store: unreferenced chunks
//! past their grace time, and tombstones every replica is known to hold.

use super::{DhtStore, SWEEP_PAGE};
use crate::keyspace::Partition;
use hypha_store::{StoreError, Tree, WriteBatch};

/// What one garbage-collection pass over a partition removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sweep {
    /// Unreferenced chunks deleted.
    pub chunks: usize,
    /// Expired tombstones deleted.
    pub tombstones: usize,
}

impl DhtStore {
    /// Collect a partition's garbage: chunks no live manifest here refers
    /// to, last written more than `chunk_grace_ms` ago (uploads in flight
    /// write chunks before their manifest), and tombstones older than
    /// `tombstone_grace_ms` written before `tombstones_confirmed_ms` — the
    /// time by which anti-entropy confirmed that every replica held what
    /// this one held (so every replica has those tombstones).
    pub async fn sweep(
        &self,
        partition: Partition,
        now_ms: u64,
        chunk_grace_ms: u64,
        tombstone_grace_ms: u64,
        tombstones_confirmed_ms: u64,
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
                } else if now_ms.saturating_sub(m.modified.unix_ms()) > tombstone_grace_ms
                    && m.modified.unix_ms() < tombstones_confirmed_ms
                {
                    self.delete_manifest(index, &m).await?;
                    sweep.tombstones += 1;
                }
            }
        }
        sweep.chunks = self
            .sweep_chunks(partition, &referenced, now_ms, chunk_grace_ms)
            .await?;
        Ok(sweep)
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
