//! What `GET /v1/dht/partitions` shows of one partition: the schedule's
//! record (replicas, last exchanges, divergence, confirmation) and the
//! node's own digests (entry count, root).

use serde::Serialize;

use super::replica::snapshot;
use super::schedule::{PartitionStatus, PeerResult, Role};
use crate::keyspace::Partition;
use crate::placement::Placement;
use crate::storage::DhtStore;
use hypha_cluster::membership::MemberKey;
use hypha_store::StoreError;

/// One replica as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplicaView {
    /// Node id (hex).
    pub node_id: String,
    /// Generation.
    pub generation: u64,
    /// This node.
    pub is_self: bool,
    /// Up (or this node).
    pub live: bool,
    /// Its zone label (`null` if it has none).
    pub zone: Option<String>,
    /// Start of the last exchange with it (Unix ms).
    pub last_exchange_ms: Option<u64>,
    /// How it ended.
    pub last_result: Option<PeerResult>,
    /// Start of the last exchange that found equal roots.
    pub equal_ms: Option<u64>,
}

/// One partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionView {
    /// Partition.
    pub partition: u16,
    /// What this node is to it.
    pub role: Role,
    /// Its replica set, closest first.
    pub replicas: Vec<ReplicaView>,
    /// Whether its replicas are in as many distinct zones as the cluster
    /// allows (min(R, zones it may draw from)); `false` flags a partition
    /// that is not spread.
    pub spread: bool,
    /// The pinned name prefix whose files it holds, if it is a pinned
    /// class (docs/dht.md, "Zones").
    pub pin: Option<String>,
    /// The zones a pinned partition may live in.
    pub pin_zones: Option<String>,
    /// Entries held here (files and tombstones).
    pub entries: u64,
    /// Root of this node's digest tree (hex).
    pub root: String,
    /// Latest exchange with any replica.
    pub last_exchange_ms: Option<u64>,
    /// Buckets that differed at the last exchanges.
    pub divergence: usize,
    /// Diverged (or set changed) since, unconfirmed.
    pub diverged_since_ms: Option<u64>,
    /// When every replica last held what this one held.
    pub confirmed_ms: Option<u64>,
    /// This node has pulled from every live co-replica since it became a
    /// replica: its answers count toward read quorums.
    pub caught_up: bool,
}

impl PartitionView {
    /// The view of a schedule record, with liveness and zones from the
    /// current `placement`.
    pub fn of(status: &PartitionStatus, me: &MemberKey, placement: &Placement) -> Self {
        let partition = Partition(status.partition);
        let partitioning = placement.partitioning();
        let replicas = status
            .replicas
            .iter()
            .map(|m| {
                let peer = status.peers.get(m);
                ReplicaView {
                    node_id: m.node_id.clone(),
                    generation: m.generation,
                    is_self: m == me,
                    live: placement.is_live(m),
                    zone: Some(placement.zone_of(m))
                        .filter(|z| !z.is_empty())
                        .map(str::to_owned),
                    last_exchange_ms: peer.and_then(|p| p.last_ms),
                    last_result: peer.and_then(|p| p.last),
                    equal_ms: peer.and_then(|p| p.equal_ms),
                }
            })
            .collect();
        Self {
            partition: status.partition,
            role: status.role,
            replicas,
            spread: placement.spread(partition).is_full(),
            pin: partitioning
                .pin_prefix(partitioning.class_of(partition))
                .map(str::to_owned),
            pin_zones: placement.pin_of(partition).map(|z| z.to_string()),
            entries: 0,
            root: String::new(),
            last_exchange_ms: status.last_exchange_ms(),
            divergence: status.divergence(),
            diverged_since_ms: status.diverged_since_ms,
            confirmed_ms: status.confirmed_ms,
            caught_up: status.caught_up,
        }
    }

    /// Fill in the entry count and root from the store.
    pub async fn fill(&mut self, store: &DhtStore) -> Result<(), StoreError> {
        let own = snapshot(store, Partition(self.partition)).await?;
        self.entries = own.digests.entries();
        self.root = hex::encode(own.tree.root());
        Ok(())
    }
}
