//! The partitions this node replicates and has caught up on: since it
//! became one of a partition's replicas it has pulled everything each of
//! its live co-replicas held (an exchange that found equal roots, or one
//! that repaired every difference). Written by the exchange actor, read by
//! the request handler: a quorum read counts this node's answer only for a
//! partition in this set, so that a replica that has just joined a replica
//! set — or restarted — cannot stand in for one that took a write it has
//! not seen (docs/dht.md, "Which answers a quorum read counts"). In memory
//! only: after a restart of the node or of its exchange actor nothing is
//! caught up until the first round of exchanges.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

/// Caught-up partitions, shared between the exchange actor and the handler.
#[derive(Debug, Clone, Default)]
pub struct CaughtUp(Arc<RwLock<BTreeSet<u16>>>);

impl CaughtUp {
    /// Whether `partition` is caught up here.
    pub fn contains(&self, partition: u16) -> bool {
        self.0
            .read()
            .map(|s| s.contains(&partition))
            .unwrap_or(false)
    }

    /// Replace the set.
    pub fn replace(&self, partitions: BTreeSet<u16>) {
        if let Ok(mut set) = self.0.write() {
            *set = partitions;
        }
    }
}
