//! The bytes/s limit on what a node's exchanges move (chunks and
//! manifests), so that repairing a replica after a node loss does not
//! starve client traffic. A token bucket with one second of burst; a
//! transfer larger than the bucket runs into debt and the next one waits
//! it out, so the long-run rate holds whatever the transfer sizes.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hypha_core::clock::SharedClock;
use tokio::time::Instant;

/// The pure bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate_bytes_per_s: f64,
    burst_bytes: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket refilled at `rate_bytes_per_s` (0: unlimited).
    pub fn new(rate_bytes_per_s: u64, now: Instant) -> Self {
        let rate = rate_bytes_per_s as f64;
        Self {
            rate_bytes_per_s: rate,
            burst_bytes: rate,
            tokens: rate,
            last: now,
        }
    }

    /// Take `bytes`: how long to wait before moving them.
    pub fn take(&mut self, bytes: u64, now: Instant) -> Duration {
        if self.rate_bytes_per_s <= 0.0 {
            return Duration::ZERO;
        }
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate_bytes_per_s).min(self.burst_bytes);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate_bytes_per_s)
        }
    }
}

/// The bucket shared by a node's exchanges.
#[derive(Debug, Clone)]
pub struct Throttle {
    bucket: Arc<Mutex<TokenBucket>>,
    clock: SharedClock,
}

impl Throttle {
    /// At most `rate_bytes_per_s` on average (0: unlimited), timed by
    /// `clock`.
    pub fn new(rate_bytes_per_s: u64, clock: SharedClock) -> Self {
        let bucket = TokenBucket::new(rate_bytes_per_s, clock.now());
        Self {
            bucket: Arc::new(Mutex::new(bucket)),
            clock,
        }
    }

    /// Wait until `bytes` may move.
    pub async fn acquire(&self, bytes: u64) {
        let now = self.clock.now();
        let wait = match self.bucket.lock() {
            Ok(mut bucket) => bucket.take(bytes, now),
            // A panic while holding the lock cannot leave the bucket
            // inconsistent in a way that matters more than not throttling.
            Err(poisoned) => poisoned.into_inner().take(bytes, now),
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_long_run_rate_holds_whatever_the_sizes() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1_000, start);
        // The burst passes at once; the rest waits at the rate.
        assert_eq!(bucket.take(1_000, start), Duration::ZERO);
        assert_eq!(bucket.take(500, start), Duration::from_millis(500));
        // A big transfer runs into debt that the next one waits out.
        let later = start + Duration::from_millis(500);
        assert_eq!(bucket.take(3_000, later), Duration::from_secs(3));
        let after = later + Duration::from_secs(3);
        assert_eq!(bucket.take(0, after), Duration::ZERO);
        assert_eq!(
            TokenBucket::new(0, start).take(u64::MAX, start),
            Duration::ZERO
        );
    }

    #[tokio::test(start_paused = true)]
    async fn acquire_waits_for_the_debt() {
        let throttle = Throttle::new(1_000, SharedClock::system());
        let start = Instant::now();
        throttle.acquire(1_000).await;
        assert_eq!(start.elapsed(), Duration::ZERO);
        throttle.acquire(2_000).await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
