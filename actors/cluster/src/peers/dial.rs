//! Which peers to dial and when (pure): one side dials by a deterministic
//! rule, failed dials back off exponentially with jitter, and a linked peer
//! that misses consecutive pings is treated as hung.

use std::time::Duration;

use tokio::time::Instant;

use crate::membership::MemberKey;

/// Dial timing.
#[derive(Debug, Clone, Copy)]
pub struct DialPolicy {
    /// First retry delay.
    pub base: Duration,
    /// Longest retry delay.
    pub max: Duration,
    /// How long a dial may take to become a ready session.
    pub handshake_timeout: Duration,
}

impl Default for DialPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(5),
        }
    }
}

/// Of two members, the one with the smaller link name dials, so that a
/// pair never races two sessions against each other.
pub fn we_dial(me: &MemberKey, peer: &MemberKey) -> bool {
    me.link_name() < peer.link_name()
}

/// Delay before dial attempt number `failures + 1`; `jitter` in [0, 1)
/// spreads it over [½, 1½) of the exponential value.
pub fn backoff(policy: &DialPolicy, failures: u32, jitter: f64) -> Duration {
    let exp = policy
        .base
        .saturating_mul(1u32.checked_shl(failures.min(16)).unwrap_or(u32::MAX))
        .min(policy.max);
    exp.mul_f64(0.5 + jitter.clamp(0.0, 1.0))
}

/// Dial bookkeeping of one peer.
#[derive(Debug, Clone)]
pub struct DialState {
    /// Consecutive failed attempts.
    pub failures: u32,
    /// Not before.
    pub next_at: Instant,
    /// When the attempt in flight started.
    pub in_flight_since: Option<Instant>,
}

impl DialState {
    /// A peer we may dial now.
    pub fn new(now: Instant) -> Self {
        Self {
            failures: 0,
            next_at: now,
            in_flight_since: None,
        }
    }

    /// Should we start an attempt now?
    pub fn due(&mut self, now: Instant, policy: &DialPolicy) -> bool {
        if let Some(since) = self.in_flight_since {
            if now < since + policy.handshake_timeout {
                return false;
            }
            // The attempt never became a session: count it as failed.
            self.in_flight_since = None;
            self.failures = self.failures.saturating_add(1);
        }
        now >= self.next_at
    }

    /// An attempt starts.
    pub fn started(&mut self, now: Instant) {
        self.in_flight_since = Some(now);
    }

    /// The attempt (or the session) failed.
    pub fn failed(&mut self, now: Instant, policy: &DialPolicy, jitter: f64) {
        self.in_flight_since = None;
        self.next_at = now + backoff(policy, self.failures, jitter);
        self.failures = self.failures.saturating_add(1);
    }

    /// A session is ready.
    pub fn linked(&mut self, now: Instant) {
        *self = Self::new(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_side_dials() {
        let a = MemberKey::new("aa", 1);
        let b = MemberKey::new("bb", 1);
        assert!(we_dial(&a, &b) ^ we_dial(&b, &a));
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let p = DialPolicy::default();
        assert_eq!(backoff(&p, 0, 0.5), Duration::from_millis(200));
        assert_eq!(backoff(&p, 1, 0.5), Duration::from_millis(400));
        assert_eq!(backoff(&p, 30, 0.5), Duration::from_secs(5));
        assert_eq!(backoff(&p, 0, 0.0), Duration::from_millis(100));
        assert!(backoff(&p, 30, 0.999) < Duration::from_millis(7_500));
    }

    #[test]
    fn an_attempt_that_never_links_is_retried_after_the_handshake_timeout() {
        let p = DialPolicy::default();
        let t0 = Instant::now();
        let mut d = DialState::new(t0);
        assert!(d.due(t0, &p));
        d.started(t0);
        assert!(!d.due(t0 + Duration::from_secs(1), &p));
        assert!(d.due(t0 + p.handshake_timeout, &p));
        assert_eq!(d.failures, 1);
        d.failed(t0, &p, 0.5);
        assert!(!d.due(t0, &p));
        d.linked(t0);
        assert_eq!(d.failures, 0);
    }
}
