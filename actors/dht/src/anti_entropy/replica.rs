//! The exchange protocol over a node's store: a partition's snapshot read
//! from its durable digests, bucket entries fetched ahead of the pure
//! protocol (which reads them synchronously), and the responder's answer.
//! Shared by the DHT handler (responder) and the exchange runner
//! (initiator).

use std::collections::HashMap;

use super::buckets::Entry;
use super::exchange::{answer, AeAnswer, AeRequest, BucketSource, Snapshot};
use crate::keyspace::Partition;
use crate::storage::DhtStore;
use hypha_store::StoreError;

/// Entries of the buckets fetched so far.
#[derive(Debug, Default)]
pub struct FetchedBuckets {
    buckets: HashMap<u32, Vec<Entry>>,
}

impl FetchedBuckets {
    /// Fetch the buckets of `wanted` not fetched yet.
    pub async fn fetch(
        &mut self,
        store: &DhtStore,
        partition: Partition,
        wanted: &[u32],
    ) -> Result<(), StoreError> {
        for &bucket in wanted {
            if let std::collections::hash_map::Entry::Vacant(slot) = self.buckets.entry(bucket) {
                slot.insert(store.bucket_entries(partition, bucket).await?);
            }
        }
        Ok(())
    }
}

impl BucketSource for FetchedBuckets {
    fn entries(&self, bucket: u32) -> Vec<Entry> {
        self.buckets.get(&bucket).cloned().unwrap_or_default()
    }
}

/// The partition's snapshot as stored now.
pub async fn snapshot(store: &DhtStore, partition: Partition) -> Result<Snapshot, StoreError> {
    Ok(Snapshot::of(store.bucket_digests(partition).await?))
}

/// The partition a request is about.
pub fn partition_of(request: &AeRequest) -> u16 {
    match request {
        AeRequest::Compare { partition, .. }
        | AeRequest::Descend { partition, .. }
        | AeRequest::Reconcile { partition, .. } => *partition,
    }
}

/// Answer one exchange step from the store (the responder's side). Each
/// step reads the digests afresh: the responder keeps no session.
pub async fn respond(
    store: &DhtStore,
    partition: Partition,
    request: &AeRequest,
) -> Result<AeAnswer, StoreError> {
    let own = snapshot(store, partition).await?;
    let mut source = FetchedBuckets::default();
    if let AeRequest::Reconcile { buckets, .. } = request {
        let wanted: Vec<u32> = buckets
            .iter()
            .map(|b| b.bucket)
            .filter(|b| *b < own.digests.buckets())
            .take(super::exchange::MAX_RECONCILE_BUCKETS)
            .collect();
        source.fetch(store, partition, &wanted).await?;
    }
    Ok(answer(&own, &source, request))
}
