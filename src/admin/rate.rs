//! Per-credential request rate limits (GCRA, via `governor`).
//!
//! Keys are principals ([`crate::auth::Principal::key`]): a token id, a
//! static token's hash prefix, or `anonymous` for open reads. Only
//! authorised requests reach the limiter, so the key set is bounded by the
//! credentials actually in use; idle keys are dropped once the table grows.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// Table size above which keys whose bucket is full again are dropped.
const RETAIN_ABOVE_KEYS: usize = 4_096;

/// Requests per second and burst allowed to each credential.
pub(crate) struct TokenRateLimit {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
}

impl TokenRateLimit {
    /// A limit of `per_s` requests a second with bursts of `burst`; 0 turns
    /// the limit off.
    pub(crate) fn new(per_s: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_s).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_s)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            limiter,
            clock: DefaultClock::default(),
        }
    }

    /// `Ok` if `key` may make a request now, else how long it should wait.
    pub(crate) fn check(&self, key: &str) -> Result<(), Duration> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        let outcome = limiter.check_key(&key.to_owned());
        if limiter.len() > RETAIN_ABOVE_KEYS {
            limiter.retain_recent();
        }
        outcome.map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_gets_its_own_burst() {
        let limit = TokenRateLimit::new(1, 3);
        for _ in 0..3 {
            assert!(limit.check("a").is_ok());
        }
        let wait = limit.check("a").unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert!(limit.check("b").is_ok(), "b has its own bucket");
    }

    #[test]
    fn zero_turns_the_limit_off() {
        let limit = TokenRateLimit::new(0, 0);
        assert!((0..10_000).all(|_| limit.check("a").is_ok()));
    }
}
