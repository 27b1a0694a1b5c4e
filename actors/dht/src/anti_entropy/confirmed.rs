//! Per partition, the time by which anti-entropy last confirmed that every
//! replica holds what this node holds (equal roots with each of them).
//! Written by the exchange actor, read by the collector: a tombstone may
//! only be collected once every replica has it, which holds for every
//! tombstone written here before that time. In memory only: after a
//! restart nothing is confirmed until the next round of exchanges, which
//! errs toward keeping tombstones.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Confirmation times, shared between the exchange actor and the collector.
#[derive(Debug, Clone, Default)]
pub struct Confirmed(Arc<RwLock<HashMap<u16, u64>>>);

impl Confirmed {
    /// Unix ms by which `partition` was confirmed equal on every replica;
    /// 0 if never.
    pub fn get(&self, partition: u16) -> u64 {
        self.0
            .read()
            .map(|m| m.get(&partition).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// Record a confirmation (times only move forward).
    pub fn set(&self, partition: u16, at_ms: u64) {
        if let Ok(mut m) = self.0.write() {
            let slot = m.entry(partition).or_insert(0);
            *slot = (*slot).max(at_ms);
        }
    }

    /// Forget `partition` (no longer replicated here, or its replica set
    /// changed: the old confirmation says nothing about new replicas).
    pub fn clear(&self, partition: u16) {
        if let Ok(mut m) = self.0.write() {
            m.remove(&partition);
        }
    }
}
