//! A hybrid logical clock: 48 bits of Unix milliseconds and 16 bits of a
//! logical counter in one `u64`, so that timestamps order like wall time
//! when clocks agree and still strictly increase on one node when its
//! wall clock stalls or steps back. Manifest versions are (HLC, writer
//! node id): last writer wins by that pair.
//!
//! Lock-free (one atomic): every file write takes a timestamp. The wall
//! clock is the node's injected [`SharedClock`], so tests can step it.

use std::sync::atomic::{AtomicU64, Ordering};

use hypha_core::clock::SharedClock;
use serde::{Deserialize, Serialize};

/// Bits of the logical counter.
const LOGICAL_BITS: u32 = 16;

/// A timestamp.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub fn unix_ms(self) -> u64 {
        self.0 >> LOGICAL_BITS
    }

    /// The first timestamp of a wall-clock millisecond.
    pub fn from_unix_ms(ms: u64) -> Self {
        Timestamp(ms << LOGICAL_BITS)
    }
}

/// A node's hybrid logical clock.
#[derive(Debug)]
pub struct Hlc {
    last: AtomicU64,
    clock: SharedClock,
}

impl Hlc {
    /// A clock that has seen nothing, reading the wall time from `clock`.
    pub fn new(clock: SharedClock) -> Self {
        Self {
            last: AtomicU64::new(0),
            clock,
        }
    }

    /// A new timestamp, greater than every one issued or observed before.
    pub fn now(&self) -> Timestamp {
        self.tick(self.clock.wall_ms())
    }

    /// `now` against an explicit wall clock (tests).
    pub fn tick(&self, wall_ms: u64) -> Timestamp {
        let physical = Timestamp::from_unix_ms(wall_ms).0;
        let previous = self
            .last
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |last| {
                Some(physical.max(last.saturating_add(1)))
            })
            .unwrap_or_else(|last| last);
        Timestamp(physical.max(previous.saturating_add(1)))
    }

    /// Move past a timestamp seen from another node, so that this node's
    /// next write orders after it.
    pub fn observe(&self, seen: Timestamp) {
        self.last.fetch_max(seen.0, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictly_increases_when_the_wall_clock_steps_back() {
        let clock = Hlc::new(SharedClock::system());
        let a = clock.tick(1_000);
        let b = clock.tick(1_000);
        let c = clock.tick(900);
        assert!(a < b && b < c);
        assert_eq!(c.unix_ms(), 1_000);
        let d = clock.tick(2_000);
        assert_eq!(d, Timestamp::from_unix_ms(2_000));
    }

    #[test]
    fn observing_a_later_clock_orders_the_next_write_after_it() {
        let clock = Hlc::new(SharedClock::system());
        clock.observe(Timestamp::from_unix_ms(5_000));
        assert!(clock.tick(1_000) > Timestamp::from_unix_ms(5_000));
    }

    #[test]
    fn now_reads_the_injected_wall_clock() {
        let manual = hypha_core::clock::ManualClock::new(7_000);
        let clock = Hlc::new(SharedClock::new(manual.clone()));
        assert_eq!(clock.now(), Timestamp::from_unix_ms(7_000));
        manual.set_wall_ms(3_000);
        let after = clock.now();
        assert!(after > Timestamp::from_unix_ms(7_000), "never back");
        assert_eq!(after.unix_ms(), 7_000);
    }
}
