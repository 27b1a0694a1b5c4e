//! Answers to DHT requests, from the local store and routing table. Used
//! by the service actor for peers' requests and directly (no encoding) by
//! this node's own coordinator when it is one of the replicas.

use std::future::Future;
use std::sync::Arc;

use hypha_core::rpc;
use tokio::sync::watch;

use crate::admission::{admit_write, Admit};
use crate::anti_entropy::caught_up::CaughtUp;
use crate::anti_entropy::replica;
use crate::digest::blake3_of;
use crate::keyspace::{Key, Partition};
use crate::placement::Placement;
use crate::storage::{ChunkRead, DhtStore};
use crate::wire::{
    Contact, DhtWire, ErrorCode, FileSummary, Request, Response, Standing, WireError,
    LIST_BYTES_BUDGET, MAX_CONTACTS,
};
use hypha_cluster::fence::Fence;
use hypha_core::clock::SharedClock;
use hypha_store::StoreError;

/// What a write request stores (the label of refusals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WriteKind {
    Chunk,
    Manifest,
}

impl WriteKind {
    fn label(self) -> &'static str {
        match self {
            WriteKind::Chunk => "chunk",
            WriteKind::Manifest => "manifest",
        }
    }
}

/// A node's request handler.
#[derive(Clone)]
pub struct DhtHandler {
    store: DhtStore,
    placement: watch::Receiver<Arc<Placement>>,
    caught_up: CaughtUp,
    clock: SharedClock,
    fence: Fence,
}

fn store_error(err: StoreError) -> WireError {
    let code = match err {
        StoreError::DiskFull => ErrorCode::DiskFull,
        StoreError::Unavailable(_) => ErrorCode::Unavailable,
        _ => ErrorCode::Storage,
    };
    WireError::new(code, err.to_string())
}

impl DhtHandler {
    /// Over a node's store and placement; `caught_up` is kept by the
    /// node's exchange actor.
    pub fn new(
        store: DhtStore,
        placement: watch::Receiver<Arc<Placement>>,
        caught_up: CaughtUp,
    ) -> Self {
        let clock = SharedClock::system();
        Self {
            store,
            placement,
            caught_up,
            // Alone, always held: see `with_fence`.
            fence: Fence::alone(clock.now()),
            clock,
        }
    }

    /// The same handler, reading the time from `clock`.
    pub fn with_clock(self, clock: SharedClock) -> Self {
        Self { clock, ..self }
    }

    /// The same handler, acknowledging writes and answering as a
    /// caught-up replica only while `fence` holds the node's majority
    /// lease (docs/dht.md, "The fence").
    pub fn with_fence(self, fence: Fence) -> Self {
        Self { fence, ..self }
    }

    /// What this node is to the partition of `name`, as of now.
    fn standing(&self, name: &str) -> Standing {
        let placement = self.placement.borrow().clone();
        let (partition, replicas) = placement.replicas_of_name(name);
        if !replicas.contains(placement.me()) {
            Standing::NotReplica
        } else if self.caught_up.contains(partition.0) && self.fence.held(self.clock.now()) {
            Standing::Serving
        } else {
            Standing::CatchingUp
        }
    }

    /// Refuse a write to a partition this node has no business holding
    /// ([`crate::admission`]), before any byte of it is hashed or stored.
    fn admit(&self, partition: Partition, kind: WriteKind) -> Result<(), WireError> {
        // Without the lease this node may be on the minority side, where
        // a replica set the majority has moved away from could take a
        // write no quorum read will find: refuse it (the coordinator
        // counts it as a replica that did not acknowledge).
        if !self.fence.held(self.clock.now()) {
            metrics::counter!("hypha_dht_writes_refused_total", "kind" => kind.label())
                .increment(1);
            return Err(WireError::new(
                ErrorCode::Unavailable,
                "no majority lease: this node cannot confirm a majority of the cluster",
            ));
        }
        let placement = self.placement.borrow().clone();
        match admit_write(partition, &placement, self.clock.wall_ms()) {
            Admit::Refuse(refusal) => {
                metrics::counter!("hypha_dht_writes_refused_total", "kind" => kind.label())
                    .increment(1);
                tracing::debug!(kind = kind.label(), "write refused: {refusal}");
                Err(WireError::new(ErrorCode::NotReplica, refusal.to_string()))
            }
            Admit::Replica | Admit::Near { .. } | Admit::Recent { .. } => Ok(()),
        }
    }

    fn partition(&self, raw: u16) -> Result<Partition, WireError> {
        let partition = Partition(raw);
        if self.store.partitioning().contains(partition) {
            Ok(partition)
        } else {
            Err(WireError::new(
                ErrorCode::BadRequest,
                format!(
                    "no partition {raw} with {} bits",
                    self.store.partitioning().bits()
                ),
            ))
        }
    }

    /// Answer one request (never panics; failures are `Response::Error`).
    pub async fn handle(&self, request: Request) -> Response {
        match self.answer(request).await {
            Ok(response) => response,
            Err(err) => Response::Error(err),
        }
    }

    async fn answer(&self, request: Request) -> Result<Response, WireError> {
        match request {
            Request::FindNode { target, count } => Ok(self.find_node(target, count)),
            Request::StoreChunk {
                partition,
                hash,
                data,
            } => {
                let partition = self.partition(partition)?;
                self.admit(partition, WriteKind::Chunk)?;
                let (found, data) = blake3_of(data)
                    .await
                    .map_err(|e| WireError::new(ErrorCode::Unavailable, e.to_string()))?;
                if found != hash {
                    metrics::counter!("hypha_dht_verification_failures_total", "where" => "incoming")
                        .increment(1);
                    return Err(WireError::new(
                        ErrorCode::HashMismatch,
                        "chunk bytes do not match their hash",
                    ));
                }
                self.store
                    .put_chunk(partition, &hash, data, self.clock.wall_ms())
                    .await
                    .map_err(store_error)?;
                metrics::counter!("hypha_dht_chunks_stored_total").increment(1);
                Ok(Response::ChunkStored)
            }
            Request::GetChunk { partition, hash } => {
                let partition = self.partition(partition)?;
                match self
                    .store
                    .get_chunk(partition, &hash)
                    .await
                    .map_err(store_error)?
                {
                    ChunkRead::Found(bytes) => Ok(Response::Chunk(Some(bytes))),
                    // A corrupt local copy is as good as none: the reader
                    // fetches elsewhere and repairs this one.
                    ChunkRead::Missing | ChunkRead::Corrupt => Ok(Response::Chunk(None)),
                }
            }
            Request::HasChunks { partition, hashes } => {
                let partition = self.partition(partition)?;
                let has = self
                    .store
                    .has_chunks(partition, &hashes)
                    .await
                    .map_err(store_error)?;
                Ok(Response::Has(has))
            }
            Request::PutManifest { manifest } => {
                self.admit(
                    manifest.partition(&self.store.partitioning()),
                    WriteKind::Manifest,
                )?;
                let outcome = self
                    .store
                    .put_manifest(&manifest)
                    .await
                    .map_err(store_error)?;
                Ok(Response::ManifestPut(outcome))
            }
            Request::GetManifest { name } => {
                let m = self.store.get_manifest(&name).await.map_err(store_error)?;
                Ok(Response::Manifest(m))
            }
            Request::ReadManifest { name } => {
                // Standing before the read: a partition that caught up
                // meanwhile only adds to what the read finds.
                let standing = self.standing(&name);
                let manifest = self.store.get_manifest(&name).await.map_err(store_error)?;
                Ok(Response::ReplicaManifest { manifest, standing })
            }
            Request::ListNames(list) => {
                let limit = usize::try_from(list.limit).unwrap_or(usize::MAX);
                let found = self
                    .store
                    .list_names(&list.prefix, &list.after, limit)
                    .await
                    .map_err(store_error)?;
                let full = found.len() >= limit;
                let (entries, cut) = within_budget(found.iter().map(FileSummary::of), |f| {
                    f.name.len() + f.content_type.len() + labels_bytes(&f.labels) + 128
                });
                Ok(Response::Files {
                    entries,
                    more: full || cut,
                })
            }
            Request::ListPartition {
                partition,
                after,
                limit,
            } => {
                let partition = self.partition(partition)?;
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                let names = self
                    .store
                    .list_partition(partition, &after, limit)
                    .await
                    .map_err(store_error)?;
                let full = names.len() >= limit;
                let (entries, cut) =
                    within_budget(names.into_iter(), |(k, n)| k.len() + n.len() + 16);
                Ok(Response::Names {
                    entries,
                    more: full || cut,
                })
            }
            Request::Exchange { request, .. } => {
                let partition = self.partition(replica::partition_of(&request))?;
                let answer = replica::respond(&self.store, partition, &request)
                    .await
                    .map_err(store_error)?;
                Ok(Response::Exchange(answer))
            }
            Request::ManifestsByKey { partition, keys } => {
                let partition = self.partition(partition)?;
                self.manifests_by_key(partition, &keys).await
            }
        }
    }

    async fn manifests_by_key(
        &self,
        partition: Partition,
        keys: &[[u8; 32]],
    ) -> Result<Response, WireError> {
        let mut manifests = Vec::new();
        let mut used = 0;
        let mut handled = 0u32;
        for key in keys {
            let found = self
                .store
                .manifest_by_key(partition, key)
                .await
                .map_err(store_error)?;
            if let Some(m) = found {
                used += manifest_bytes(&m);
                if used > LIST_BYTES_BUDGET && handled > 0 {
                    break;
                }
                manifests.push(m);
            }
            handled += 1;
        }
        Ok(Response::Manifests { handled, manifests })
    }

    fn find_node(&self, target: [u8; 32], count: u16) -> Response {
        let count = usize::from(count).min(MAX_CONTACTS);
        let placement = self.placement.borrow().clone();
        let contacts = placement
            .routing()
            .closest(&Key(target), count)
            .into_iter()
            .map(|(key, member)| Contact {
                id: key.0,
                link: member.link_name(),
            })
            .collect();
        Response::Nodes(contacts)
    }
}

impl rpc::Handler for DhtHandler {
    type Protocol = DhtWire;

    fn answer(&self, request: Request) -> impl Future<Output = Response> + Send {
        self.handle(request)
    }
}

/// A manifest's encoded size, about.
fn manifest_bytes(m: &crate::manifest::Manifest) -> usize {
    m.name.len()
        + m.content_type.len()
        + labels_bytes(&m.labels)
        + m.inline.len()
        + m.chunks.len() * 40
        + 160
}

fn labels_bytes(labels: &std::collections::BTreeMap<String, String>) -> usize {
    labels.iter().map(|(k, v)| k.len() + v.len() + 4).sum()
}

/// Take items while their estimated size fits the listing budget; the
/// flag says whether any were left out.
fn within_budget<T>(items: impl Iterator<Item = T>, size: impl Fn(&T) -> usize) -> (Vec<T>, bool) {
    let mut used = 0;
    let mut out = Vec::new();
    for item in items {
        used += size(&item);
        if used > LIST_BYTES_BUDGET && !out.is_empty() {
            return (out, true);
        }
        out.push(item);
    }
    (out, false)
}

#[cfg(test)]
mod tests;
