//! Time as a node reads it, passed in rather than read from the system:
//! the wall clock (Unix milliseconds, for records and timestamps that
//! other nodes compare) and the monotonic clock (for deadlines, leases and
//! timeouts). Production uses [`SystemClock`]; tests use [`ManualClock`]
//! and move it by hand, so pure decisions can be checked at any instant
//! without sleeping.
//!
//! The monotonic reading is tokio's [`Instant`], so that code under
//! `tokio::time::pause()` sees the paused time through the system clock
//! too. Sleeps and timers stay with tokio (and its paused time in tests);
//! what is injected is every *reading* of the time a decision depends on.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

/// A source of the current time.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// Milliseconds since the Unix epoch. May step (NTP, an operator).
    fn wall_ms(&self) -> u64;
    /// A monotonic instant: never steps back.
    fn now(&self) -> Instant;
}

/// The clock a node's actors share: cheap to clone.
#[derive(Clone, Debug)]
pub struct SharedClock(Arc<dyn Clock>);

impl SharedClock {
    /// Wrap a clock.
    pub fn new(clock: impl Clock) -> Self {
        Self(Arc::new(clock))
    }

    /// The system's clocks.
    pub fn system() -> Self {
        Self::new(SystemClock)
    }

    /// Milliseconds since the Unix epoch.
    pub fn wall_ms(&self) -> u64 {
        self.0.wall_ms()
    }

    /// A monotonic instant.
    pub fn now(&self) -> Instant {
        self.0.now()
    }
}

impl Default for SharedClock {
    fn default() -> Self {
        Self::system()
    }
}

/// The operating system's wall clock and tokio's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall_ms(&self) -> u64 {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX)
    }

    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to: both readings advance together
/// by [`ManualClock::advance`]; the wall clock can also be stepped alone
/// (as NTP does) by [`ManualClock::set_wall_ms`].
#[derive(Debug)]
pub struct ManualClock {
    wall_ms: AtomicU64,
    base: Instant,
    elapsed_ms: AtomicU64,
}

impl ManualClock {
    /// A clock reading `wall_ms` on the wall and a fixed monotonic origin.
    pub fn new(wall_ms: u64) -> Arc<Self> {
        Arc::new(Self {
            wall_ms: AtomicU64::new(wall_ms),
            base: Instant::now(),
            elapsed_ms: AtomicU64::new(0),
        })
    }

    /// Move both clocks forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.wall_ms.fetch_add(ms, Ordering::SeqCst);
        self.elapsed_ms.fetch_add(ms, Ordering::SeqCst);
    }

    /// Step the wall clock alone (forward or back).
    pub fn set_wall_ms(&self, wall_ms: u64) {
        self.wall_ms.store(wall_ms, Ordering::SeqCst);
    }
}

impl Clock for Arc<ManualClock> {
    fn wall_ms(&self) -> u64 {
        self.wall_ms.load(Ordering::SeqCst)
    }

    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.elapsed_ms.load(Ordering::SeqCst))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let manual = ManualClock::new(1_000);
        let clock = SharedClock::new(manual.clone());
        let start = clock.now();
        assert_eq!((clock.wall_ms(), clock.now()), (1_000, start));
        manual.advance(Duration::from_millis(250));
        assert_eq!(clock.wall_ms(), 1_250);
        assert_eq!(clock.now() - start, Duration::from_millis(250));
        manual.set_wall_ms(500);
        assert_eq!(clock.wall_ms(), 500, "the wall clock may step back");
        assert_eq!(
            clock.now() - start,
            Duration::from_millis(250),
            "monotonic did not"
        );
    }

    #[test]
    fn the_system_clock_reads_the_epoch() {
        let clock = SharedClock::system();
        // After 2020-01-01: a clock that reads 0 would be a bug here.
        assert!(clock.wall_ms() > 1_577_836_800_000);
    }
}
