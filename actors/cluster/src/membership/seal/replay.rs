//! The replay guard of sealed gossip: which (sender epoch, counter) pairs
//! this node has already accepted.
//!
//! Every sealed datagram carries the sender's epoch (16 random bytes drawn
//! when its gossip socket opens) and a counter that rises by one per
//! datagram. Per epoch the guard keeps the highest counter seen and a
//! bitmap of the [`WINDOW`] counters below it, as IPsec and WireGuard do:
//! a counter seen before, or older than the window, is refused. UDP may
//! reorder within the window without loss. The number of epochs is
//! bounded ([`ReplayGuard::new`]); the least recently heard is forgotten
//! first. A datagram of a forgotten epoch is then judged by its timestamp
//! alone (the envelope's freshness check), which bounds what a replay can
//! bring back to the last few minutes of authentic gossip.
//!
//! Pure: no I/O, no clock. Only authenticated datagrams reach it, so an
//! outsider cannot fill it.

use lru::LruCache;
use std::num::NonZeroUsize;

/// How many counters below the highest are remembered per epoch.
pub const WINDOW: u64 = 128;

/// Why a counter was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayVerdict {
    /// First sight: accepted and recorded.
    Fresh,
    /// Already accepted once.
    Duplicate,
    /// Older than the window: cannot be told from a replay.
    BelowWindow,
}

/// The sliding window of one sender epoch.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    /// Highest counter accepted.
    highest: u64,
    /// Bit `i` set: counter `highest - i` was accepted (bit 0 is `highest`).
    seen: u128,
}

impl Window {
    fn new(counter: u64) -> Self {
        Self {
            highest: counter,
            seen: 1,
        }
    }

    fn check_and_record(&mut self, counter: u64) -> ReplayVerdict {
        if counter > self.highest {
            let shift = counter - self.highest;
            self.seen = if shift >= WINDOW {
                0
            } else {
                self.seen << shift
            };
            self.seen |= 1;
            self.highest = counter;
            return ReplayVerdict::Fresh;
        }
        let age = self.highest - counter;
        if age >= WINDOW {
            return ReplayVerdict::BelowWindow;
        }
        let bit = 1u128 << age;
        if self.seen & bit != 0 {
            return ReplayVerdict::Duplicate;
        }
        self.seen |= bit;
        ReplayVerdict::Fresh
    }
}

/// Replay windows of the most recently heard sender epochs.
pub struct ReplayGuard {
    epochs: LruCache<[u8; 16], Window>,
}

impl ReplayGuard {
    /// A guard remembering at most `max_epochs` sender epochs (at least 1).
    pub fn new(max_epochs: usize) -> Self {
        let cap = NonZeroUsize::new(max_epochs.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            epochs: LruCache::new(cap),
        }
    }

    /// Judge `counter` of `epoch`, recording it when fresh.
    pub fn check_and_record(&mut self, epoch: [u8; 16], counter: u64) -> ReplayVerdict {
        match self.epochs.get_mut(&epoch) {
            Some(window) => window.check_and_record(counter),
            None => {
                self.epochs.put(epoch, Window::new(counter));
                ReplayVerdict::Fresh
            }
        }
    }

    /// Epochs currently remembered.
    pub fn len(&self) -> usize {
        self.epochs.len()
    }

    /// Whether no epoch is remembered.
    pub fn is_empty(&self) -> bool {
        self.epochs.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const E: [u8; 16] = [7; 16];

    #[test]
    fn a_counter_is_accepted_once() {
        let mut g = ReplayGuard::new(4);
        assert_eq!(g.check_and_record(E, 10), ReplayVerdict::Fresh);
        assert_eq!(g.check_and_record(E, 10), ReplayVerdict::Duplicate);
        assert_eq!(g.check_and_record(E, 11), ReplayVerdict::Fresh);
        assert_eq!(g.check_and_record(E, 10), ReplayVerdict::Duplicate);
    }

    #[test]
    fn reordering_inside_the_window_is_accepted() {
        let mut g = ReplayGuard::new(4);
        assert_eq!(g.check_and_record(E, 1_000), ReplayVerdict::Fresh);
        assert_eq!(g.check_and_record(E, 999), ReplayVerdict::Fresh);
        assert_eq!(
            g.check_and_record(E, 1_000 - WINDOW + 1),
            ReplayVerdict::Fresh
        );
        assert_eq!(
            g.check_and_record(E, 1_000 - WINDOW),
            ReplayVerdict::BelowWindow
        );
    }

    #[test]
    fn a_jump_past_the_window_forgets_the_old_bits() {
        let mut g = ReplayGuard::new(4);
        g.check_and_record(E, 1);
        assert_eq!(g.check_and_record(E, 1 + 10 * WINDOW), ReplayVerdict::Fresh);
        assert_eq!(g.check_and_record(E, 1), ReplayVerdict::BelowWindow);
        assert_eq!(g.check_and_record(E, 10 * WINDOW), ReplayVerdict::Fresh);
    }

    #[test]
    fn epochs_are_bounded_least_recent_first() {
        let mut g = ReplayGuard::new(2);
        g.check_and_record([1; 16], 5);
        g.check_and_record([2; 16], 5);
        g.check_and_record([1; 16], 6);
        g.check_and_record([3; 16], 5);
        assert_eq!(g.len(), 2);
        // [2] was forgotten: its counter is fresh again (the timestamp
        // check of the envelope is what bounds that).
        assert_eq!(g.check_and_record([2; 16], 5), ReplayVerdict::Fresh);
        assert_eq!(g.check_and_record([3; 16], 5), ReplayVerdict::Duplicate);
    }

    #[test]
    fn the_highest_counter_is_u64_max_without_overflow() {
        let mut g = ReplayGuard::new(1);
        assert_eq!(g.check_and_record(E, 0), ReplayVerdict::Fresh);
        assert_eq!(g.check_and_record(E, u64::MAX), ReplayVerdict::Fresh);
        assert_eq!(g.check_and_record(E, u64::MAX), ReplayVerdict::Duplicate);
        assert_eq!(g.check_and_record(E, 0), ReplayVerdict::BelowWindow);
    }

    proptest! {
        /// Against a model that remembers everything: the guard never
        /// accepts a counter twice, and refuses a new counter only when it
        /// is below the window of the highest seen.
        #[test]
        fn never_accepts_twice(counters in proptest::collection::vec(0u64..600, 1..400)) {
            let mut g = ReplayGuard::new(1);
            let mut accepted = HashSet::new();
            let mut highest = None::<u64>;
            for c in counters {
                let verdict = g.check_and_record(E, c);
                match verdict {
                    ReplayVerdict::Fresh => prop_assert!(accepted.insert(c), "{c} accepted twice"),
                    ReplayVerdict::Duplicate => prop_assert!(accepted.contains(&c)),
                    ReplayVerdict::BelowWindow => {
                        let h = highest.unwrap_or(0);
                        prop_assert!(h >= WINDOW && c <= h - WINDOW);
                    }
                }
                if verdict == ReplayVerdict::Fresh {
                    highest = Some(highest.map_or(c, |h| h.max(c)));
                }
            }
        }
    }
}
