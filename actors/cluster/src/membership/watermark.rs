//! How far this node's gossip has counted, kept outside the membership actor
//! so that a restarted instance can start above it.
//!
//! A restarted membership actor keeps its member key (the generation names
//! the process, not the actor), so peers already hold a heartbeat and a
//! `max_version` for it. chitchat accepts only a higher heartbeat and only
//! versions above the one it holds: a fresh instance, counting from 1,
//! would look silent to every peer until it had counted past its old self,
//! and its peers would keep it Joining for as long. Each incarnation records
//! its counters here every tick; the next one starts above them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Headroom over the last recorded counters. Between two ticks (50 ms) a
/// node's heartbeat grows by a few (one per gossip round and per message
/// received) and its version by the keys it set; the margin covers an actor
/// stalled for minutes, and costs nothing: both counters are u64.
pub const RESUME_MARGIN: u64 = 100_000;

/// The counters of the last gossip instance, shared by every incarnation of
/// one node's membership actor.
#[derive(Debug, Default)]
pub struct GossipWatermark {
    heartbeat: AtomicU64,
    max_version: AtomicU64,
}

/// Where a restarted instance starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    /// The heartbeat to announce first.
    pub heartbeat: u64,
    /// The version the first key written is numbered after.
    pub max_version: u64,
}

impl GossipWatermark {
    /// Record the current instance's counters; they never go down.
    pub fn record(&self, heartbeat: u64, max_version: u64) {
        self.heartbeat.fetch_max(heartbeat, Ordering::Relaxed);
        self.max_version.fetch_max(max_version, Ordering::Relaxed);
    }

    /// Where the next instance starts, or `None` for the node's first one
    /// (no peer can hold counters for a member key nobody has gossiped).
    pub fn resume(&self) -> Option<Resume> {
        let heartbeat = self.heartbeat.load(Ordering::Relaxed);
        if heartbeat == 0 {
            return None;
        }
        Some(Resume {
            heartbeat: heartbeat.saturating_add(RESUME_MARGIN),
            max_version: self
                .max_version
                .load(Ordering::Relaxed)
                .saturating_add(RESUME_MARGIN),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_first_instance_starts_from_scratch() {
        assert_eq!(GossipWatermark::default().resume(), None);
    }

    #[test]
    fn a_restarted_instance_starts_above_everything_recorded() {
        let mark = GossipWatermark::default();
        mark.record(500, 40);
        // A late record from an instance that is going away cannot lower it.
        mark.record(20, 3);
        assert_eq!(
            mark.resume(),
            Some(Resume {
                heartbeat: 500 + RESUME_MARGIN,
                max_version: 40 + RESUME_MARGIN,
            })
        );
    }
}
