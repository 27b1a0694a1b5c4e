//! Per-sender rate limit on authentic gossip datagrams.
//!
//! A holder of the gossip key can send authentic datagrams as fast as it
//! likes, and chitchat parses and merges every one under its state lock:
//! the work one sender address can cause must be bounded. An honest peer
//! sends a node about 15 datagrams a second (a Syn, and the SynAck and Ack
//! of exchanges either side starts, per 200 ms round), so each sender
//! address gets a token bucket well above that; the excess is dropped
//! (`rate_limited`) before chitchat sees it. Only authentic datagrams are
//! counted, so an outsider spoofing a member's address cannot use up that
//! member's allowance. (The attack test's forgers, gossiping every 10 ms,
//! stay under it: the limit is for floods faster than chitchat's own.)
//!
//! Pure: the caller passes the time. Senders are bounded (least recently
//! heard forgotten first).

use std::net::SocketAddr;
use std::num::NonZeroUsize;

use lru::LruCache;

/// One sender's bucket.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// Token buckets of the most recently heard senders.
pub struct SenderRate {
    per_sec: f64,
    burst: f64,
    buckets: LruCache<SocketAddr, Bucket>,
}

impl SenderRate {
    /// `per_sec` datagrams a second per sender, up to `burst` at once, for
    /// at most `max_senders` senders.
    pub fn new(per_sec: u32, burst: u32, max_senders: usize) -> Self {
        let cap = NonZeroUsize::new(max_senders.max(1)).unwrap_or(NonZeroUsize::MIN);
        Self {
            per_sec: f64::from(per_sec),
            burst: f64::from(burst.max(1)),
            buckets: LruCache::new(cap),
        }
    }

    /// Whether `from` may send one more datagram at `now_ms`.
    pub fn admit(&mut self, from: SocketAddr, now_ms: u64) -> bool {
        let (per_sec, burst) = (self.per_sec, self.burst);
        let bucket = self.buckets.get_or_insert_mut(from, || Bucket {
            tokens: burst,
            at_ms: now_ms,
        });
        let elapsed_s = now_ms.saturating_sub(bucket.at_ms) as f64 / 1_000.0;
        bucket.tokens = (bucket.tokens + elapsed_s * per_sec).min(burst);
        bucket.at_ms = bucket.at_ms.max(now_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        ([127, 0, 0, 1], port).into()
    }

    #[test]
    fn a_burst_then_the_sustained_rate() {
        let mut r = SenderRate::new(100, 20, 8);
        let admitted = (0..50).filter(|_| r.admit(addr(1), 0)).count();
        assert_eq!(admitted, 20);
        // 100 ms later: 10 more.
        let admitted = (0..50).filter(|_| r.admit(addr(1), 100)).count();
        assert_eq!(admitted, 10);
        // Another sender has its own bucket.
        assert!(r.admit(addr(2), 100));
    }

    #[test]
    fn an_honest_peer_is_never_limited() {
        // 15 datagrams a second, in bursts of 3 every 200 ms, for a minute.
        let mut r = SenderRate::new(100, 200, 8);
        for round in 0..300u64 {
            for _ in 0..3 {
                assert!(r.admit(addr(1), round * 200));
            }
        }
    }

    #[test]
    fn senders_are_bounded_and_time_going_back_is_harmless() {
        let mut r = SenderRate::new(1, 1, 2);
        assert!(r.admit(addr(1), 1_000));
        assert!(!r.admit(addr(1), 500));
        assert!(r.admit(addr(2), 1_000));
        assert!(r.admit(addr(3), 1_000));
        // addr(1) was forgotten: a new bucket.
        assert!(r.admit(addr(1), 1_000));
    }
}
