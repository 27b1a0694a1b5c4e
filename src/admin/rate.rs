//! Request rate limits (GCRA, via `governor`): per credential, and failed
//! authentications per source address.
//!
//! Credential keys are principals ([`crate::auth::Principal::key`]): a
//! token id, a static token's hash prefix, or `anonymous` for open reads.
//! Only authorised requests reach that limiter, so the key set is bounded
//! by the credentials actually in use. Failure keys are source addresses
//! (an IPv6 source by its /64, which one host usually holds whole). Idle
//! keys are dropped once a table grows.

use std::net::{IpAddr, Ipv6Addr};
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

/// Most sources whose failures are remembered at once; past this, idle
/// entries are dropped first, then new sources are not tracked.
const MAX_FAILURE_SOURCES: usize = 65_536;

/// Failed authentications allowed per source address: `burst` at once,
/// then one each `60_000 / per_min` ms (GCRA over a theoretical arrival
/// time per source). Pure: time is passed in.
///
/// A source over its allowance is answered 429 on every route that needs a
/// credential *before* its credential is looked at, so guessing runs at
/// most at this rate from one source; requests that authenticate never
/// use up the allowance, and other sources are not affected.
#[derive(Debug)]
pub(crate) struct FailureLimit {
    interval_ms: u64,
    burst: u64,
    next_ms: std::collections::HashMap<IpAddr, u64>,
}

impl FailureLimit {
    /// `per_min` 0 turns the limit off.
    pub(crate) fn new(per_min: u32, burst: u32) -> Self {
        Self {
            interval_ms: if per_min == 0 {
                0
            } else {
                60_000 / u64::from(per_min)
            },
            burst: u64::from(burst.max(1)),
            next_ms: std::collections::HashMap::new(),
        }
    }

    /// `Err(wait)` if `source` has used up its failures at `now_ms`.
    pub(crate) fn blocked(&self, source: IpAddr, now_ms: u64) -> Result<(), Duration> {
        if self.interval_ms == 0 {
            return Ok(());
        }
        let Some(&tat) = self.next_ms.get(&source_key(source)) else {
            return Ok(());
        };
        // GCRA: one more failure is allowed while it would end no later
        // than a full burst from now.
        let allowed_from = tat.saturating_sub((self.burst - 1) * self.interval_ms);
        if allowed_from <= now_ms {
            Ok(())
        } else {
            Err(Duration::from_millis(allowed_from - now_ms))
        }
    }

    /// Record one failure of `source` at `now_ms`.
    pub(crate) fn failed(&mut self, source: IpAddr, now_ms: u64) {
        if self.interval_ms == 0 {
            return;
        }
        if self.next_ms.len() >= MAX_FAILURE_SOURCES {
            self.next_ms.retain(|_, tat| *tat > now_ms);
        }
        let key = source_key(source);
        if self.next_ms.len() >= MAX_FAILURE_SOURCES && !self.next_ms.contains_key(&key) {
            return;
        }
        let tat = self.next_ms.entry(key).or_insert(now_ms);
        *tat = (*tat).max(now_ms) + self.interval_ms;
    }
}

/// The key of a source: the address, an IPv6 one by its /64 (one host
/// usually holds a whole /64), an IPv4-mapped one as IPv4.
fn source_key(source: IpAddr) -> IpAddr {
    match source {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
        v4 => v4,
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

    #[test]
    fn a_source_is_blocked_after_its_burst_of_failures_then_refills() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let mut limit = FailureLimit::new(6, 3); // one every 10 s
        for _ in 0..3 {
            assert!(limit.blocked(ip, 0).is_ok());
            limit.failed(ip, 0);
        }
        assert_eq!(limit.blocked(ip, 0), Err(Duration::from_secs(10)));
        assert!(
            limit.blocked(other, 0).is_ok(),
            "another source is not affected"
        );
        assert!(limit.blocked(ip, 9_999).is_err());
        assert!(limit.blocked(ip, 10_000).is_ok(), "one failure refilled");
        limit.failed(ip, 10_000);
        assert!(limit.blocked(ip, 10_000).is_err());
    }

    #[test]
    fn ipv6_sources_share_their_64_and_zero_turns_it_off() {
        let mut limit = FailureLimit::new(1, 1);
        limit.failed("2001:db8::1".parse().unwrap(), 0);
        assert!(limit.blocked("2001:db8::ffff".parse().unwrap(), 0).is_err());
        assert!(limit.blocked("2001:db8:0:1::1".parse().unwrap(), 0).is_ok());
        let mut off = FailureLimit::new(0, 0);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        (0..100).for_each(|_| off.failed(ip, 0));
        assert!(off.blocked(ip, 0).is_ok());
    }
}
