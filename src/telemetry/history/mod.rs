//! The node's own recent history, kept in memory for the console's
//! charts (`GET /v1/node/history`): every `telemetry.history_interval_ms`
//! the [`sampler`] reads the node's Prometheus text and appends one
//! [`Sample`] (request rate, p50/p99, file bytes, restarts, membership
//! changes, anti-entropy repairs, queue depth) to a ring of at most
//! [`CAPACITY`] samples.
//!
//! Bounded: a sample is 128 bytes, so the ring holds at most ~90 KiB
//! per node whatever the interval (720 samples: one hour at the
//! default 5 s). Nothing is written to disk; a restarted node starts an
//! empty history.
//!
//! The ring is owned by this handle, not by the sampler actor, so that a
//! restarted sampler keeps appending to it and the HTTP handlers read it
//! without a call into the tree. Each node has its own handle (several
//! nodes run in one test process); the metrics it reads, though, are the
//! process's ([`crate::telemetry`]), which is one node's outside tests.

pub mod exposition;
pub mod sample;
pub mod sampler;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

pub use exposition::Totals;
pub use sample::Sample;

/// Samples kept: one hour at the default interval.
pub const CAPACITY: usize = 720;
/// Default `telemetry.history_interval_ms`.
pub const DEFAULT_INTERVAL_MS: u64 = 5_000;

/// The ring of one node's samples; cheap to clone (one `Arc`).
#[derive(Debug, Clone)]
pub struct History(Arc<Mutex<Ring>>);

#[derive(Debug)]
struct Ring {
    interval_ms: u64,
    samples: VecDeque<Sample>,
    next_seq: u64,
}

/// What `GET /v1/node/history` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page {
    /// The sampling interval (ms).
    pub interval_ms: u64,
    /// Most samples kept.
    pub capacity: usize,
    /// `seq` the next sample will have: ask `since_seq` this next time.
    pub next_seq: u64,
    /// Kept samples with `seq ≥ since_seq`, oldest first.
    pub samples: Vec<Sample>,
}

impl History {
    /// An empty history sampled every `interval_ms`.
    pub fn new(interval_ms: u64) -> Self {
        Self(Arc::new(Mutex::new(Ring {
            interval_ms,
            samples: VecDeque::with_capacity(CAPACITY),
            next_seq: 0,
        })))
    }

    /// The sampling interval (ms).
    pub fn interval_ms(&self) -> u64 {
        self.ring().interval_ms
    }

    /// The `seq` the next sample gets.
    pub fn next_seq(&self) -> u64 {
        self.ring().next_seq
    }

    /// Append a sample (its `seq` is set here), dropping the oldest one
    /// past [`CAPACITY`].
    pub fn push(&self, mut sample: Sample) {
        let mut ring = self.ring();
        sample.seq = ring.next_seq;
        ring.next_seq += 1;
        if ring.samples.len() >= CAPACITY {
            ring.samples.pop_front();
        }
        ring.samples.push_back(sample);
    }

    /// The kept samples from `since_seq` on.
    pub fn page(&self, since_seq: u64) -> Page {
        let ring = self.ring();
        Page {
            interval_ms: ring.interval_ms,
            capacity: CAPACITY,
            next_seq: ring.next_seq,
            samples: ring
                .samples
                .iter()
                .filter(|s| s.seq >= since_seq)
                .cloned()
                .collect(),
        }
    }

    /// The ring. A panic while it was held (none of the code holding it
    /// can panic) would leave it consistent: every change is one push.
    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for History {
    fn default() -> Self {
        Self::new(DEFAULT_INTERVAL_MS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_unix_ms: u64) -> Sample {
        let zero = Totals::default();
        sample::between(&zero, &zero, 1, t_unix_ms, 0).unwrap()
    }

    #[test]
    fn the_ring_keeps_the_newest_capacity_samples() {
        let history = History::new(1_000);
        for t in 0..(CAPACITY as u64 + 5) {
            history.push(sample(t));
        }
        let page = history.page(0);
        assert_eq!(page.samples.len(), CAPACITY);
        assert_eq!(page.samples[0].seq, 5);
        assert_eq!(page.samples[0].t_unix_ms, 5);
        assert_eq!(page.next_seq, CAPACITY as u64 + 5);
        assert_eq!(page.interval_ms, 1_000);
        let tail = history.page(CAPACITY as u64 + 3);
        assert_eq!(
            tail.samples.iter().map(|s| s.seq).collect::<Vec<_>>(),
            vec![CAPACITY as u64 + 3, CAPACITY as u64 + 4]
        );
        assert!(history.page(u64::MAX).samples.is_empty());
    }

    #[test]
    fn the_stated_memory_bound_holds() {
        // The docs say 128 bytes a sample, ~90 KiB a ring.
        assert!(std::mem::size_of::<Sample>() <= 128);
        assert!(std::mem::size_of::<Sample>() * CAPACITY <= 90 * 1024);
    }
}
