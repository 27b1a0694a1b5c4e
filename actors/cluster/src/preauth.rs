//! Admission of connections that have not authenticated yet (pure): the
//! node-link port and the bulk port both count, per source address and in
//! all, the connections still in their TLS or cookie handshake, refuse
//! what goes over the caps, and give each one a deadline.
//!
//! Strangers (addresses that are no member's host) and members are
//! counted in separate pools, so that a flood from many stranger
//! addresses fills only the stranger pool and a member can still link.
//! The per-source cap applies to strangers only: on one host (loopback
//! tests, several nodes per machine) every member shares one address,
//! and a member's bulk pool opens several connections at once.
//! Authenticated connections are not counted here at all.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;
use tokio::time::Instant;

use crate::membership::ClusterView;

/// Limits on unauthenticated connections, per listening port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PreAuthLimits {
    /// TLS plus the cookie handshake must finish within this, from accept.
    pub deadline_ms: u64,
    /// Unauthenticated connections one stranger address may hold.
    pub max_per_source: usize,
    /// Unauthenticated connections in each pool (strangers, members).
    pub max_total: usize,
}

impl Default for PreAuthLimits {
    fn default() -> Self {
        Self {
            deadline_ms: 3_000,
            max_per_source: 8,
            max_total: 64,
        }
    }
}

impl PreAuthLimits {
    /// Every limit is at least 1 (0 would refuse every connection).
    pub fn is_usable(&self) -> bool {
        self.deadline_ms > 0 && self.max_per_source > 0 && self.max_total > 0
    }

    /// The deadline as a duration.
    pub fn deadline(&self) -> Duration {
        Duration::from_millis(self.deadline_ms)
    }
}

/// Which pool a source address draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceClass {
    /// The host of a known member (from the membership view).
    Member,
    /// Anyone else.
    Stranger,
}

/// Why a connection is refused at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Refusal {
    /// Its source address holds its share of handshakes already.
    #[error("too many unauthenticated connections from this address")]
    PerSource,
    /// Its pool is full.
    #[error("too many unauthenticated connections")]
    Total,
}

impl Refusal {
    /// The `reason` label of the refusal metrics.
    pub fn label(self) -> &'static str {
        match self {
            Refusal::PerSource => "per_source",
            Refusal::Total => "total",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    class: SourceClass,
    deadline: Instant,
}

/// The counters of one port.
#[derive(Debug)]
pub struct Admission {
    limits: PreAuthLimits,
    pending: HashMap<SocketAddr, Pending>,
    per_source: HashMap<IpAddr, usize>,
    members: usize,
    strangers: usize,
}

impl Admission {
    /// Nothing pending.
    pub fn new(limits: PreAuthLimits) -> Self {
        Self {
            limits,
            pending: HashMap::new(),
            per_source: HashMap::new(),
            members: 0,
            strangers: 0,
        }
    }

    /// Admit the connection from `peer` or say why not; its deadline.
    pub fn admit(
        &mut self,
        peer: SocketAddr,
        class: SourceClass,
        now: Instant,
    ) -> Result<Instant, Refusal> {
        // A reused address means the old connection is gone: recount it.
        self.release(peer);
        let from_source = self.per_source.get(&peer.ip()).copied().unwrap_or(0);
        if class == SourceClass::Stranger && from_source >= self.limits.max_per_source {
            return Err(Refusal::PerSource);
        }
        if *self.pool(class) >= self.limits.max_total {
            return Err(Refusal::Total);
        }
        *self.pool(class) += 1;
        *self.per_source.entry(peer.ip()).or_insert(0) += 1;
        let deadline = now + self.limits.deadline();
        self.pending.insert(peer, Pending { class, deadline });
        Ok(deadline)
    }

    /// The connection from `peer` authenticated or closed: it no longer
    /// counts. Whether it was pending.
    pub fn release(&mut self, peer: SocketAddr) -> bool {
        let Some(pending) = self.pending.remove(&peer) else {
            return false;
        };
        *self.pool(pending.class) -= 1;
        if let Some(n) = self.per_source.get_mut(&peer.ip()) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&peer.ip());
            }
        }
        true
    }

    /// Whether the connection from `peer` is admitted and not yet released.
    pub fn is_pending(&self, peer: SocketAddr) -> bool {
        self.pending.contains_key(&peer)
    }

    /// Release every connection past its deadline; their addresses.
    pub fn expire(&mut self, now: Instant) -> Vec<SocketAddr> {
        let expired: Vec<SocketAddr> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(addr, _)| *addr)
            .collect();
        for addr in &expired {
            self.release(*addr);
        }
        expired
    }

    /// Connections pending in all.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn pool(&mut self, class: SourceClass) -> &mut usize {
        match class {
            SourceClass::Member => &mut self.members,
            SourceClass::Stranger => &mut self.strangers,
        }
    }
}

/// The hosts of every member the view knows (node-link and bulk addresses).
pub fn member_hosts(view: &ClusterView) -> HashSet<IpAddr> {
    view.members
        .iter()
        .filter_map(|m| m.info.as_ref())
        .flat_map(|i| [Some(i.cluster_addr.ip()), i.bulk_addr.map(|a| a.ip())])
        .flatten()
        .collect()
}

/// The class of `source` given the members' hosts.
pub fn classify(source: IpAddr, members: &HashSet<IpAddr>) -> SourceClass {
    if members.contains(&source) {
        SourceClass::Member
    } else {
        SourceClass::Stranger
    }
}

/// Whether an accept error leaves the listener usable (a peer that reset
/// early, or out of descriptors until some close).
pub fn is_transient_accept_error(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || err.raw_os_error().is_some_and(|code| {
        code == nix::errno::Errno::EMFILE as i32 || code == nix::errno::Errno::ENFILE as i32
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(host: u8, port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, host], port))
    }

    fn limits() -> PreAuthLimits {
        PreAuthLimits {
            deadline_ms: 1_000,
            max_per_source: 2,
            max_total: 3,
        }
    }

    #[test]
    fn a_stranger_gets_its_share_and_no_more() {
        let now = Instant::now();
        let mut a = Admission::new(limits());
        assert!(a.admit(addr(2, 1), SourceClass::Stranger, now).is_ok());
        assert!(a.admit(addr(2, 2), SourceClass::Stranger, now).is_ok());
        assert_eq!(
            a.admit(addr(2, 3), SourceClass::Stranger, now),
            Err(Refusal::PerSource)
        );
        assert!(a.admit(addr(3, 1), SourceClass::Stranger, now).is_ok());
        assert_eq!(
            a.admit(addr(4, 1), SourceClass::Stranger, now),
            Err(Refusal::Total)
        );
        assert!(a.release(addr(2, 1)));
        assert!(!a.release(addr(2, 1)));
        assert!(a.admit(addr(4, 1), SourceClass::Stranger, now).is_ok());
    }

    #[test]
    fn strangers_filling_their_pool_leave_members_theirs() {
        let now = Instant::now();
        let mut a = Admission::new(limits());
        for host in 10..13 {
            a.admit(addr(host, 1), SourceClass::Stranger, now).unwrap();
        }
        assert_eq!(
            a.admit(addr(13, 1), SourceClass::Stranger, now),
            Err(Refusal::Total)
        );
        // Members share one host address and have no per-source cap.
        for port in 1..4 {
            a.admit(addr(1, port), SourceClass::Member, now).unwrap();
        }
        assert_eq!(
            a.admit(addr(1, 4), SourceClass::Member, now),
            Err(Refusal::Total)
        );
    }

    #[test]
    fn deadlines_release_what_never_authenticated() {
        let t0 = Instant::now();
        let mut a = Admission::new(limits());
        let d = a.admit(addr(2, 1), SourceClass::Stranger, t0).unwrap();
        assert_eq!(d, t0 + Duration::from_secs(1));
        let later = t0 + Duration::from_millis(500);
        a.admit(addr(2, 2), SourceClass::Stranger, later).unwrap();
        assert!(a.expire(t0 + Duration::from_millis(999)).is_empty());
        assert_eq!(a.expire(t0 + Duration::from_secs(1)), vec![addr(2, 1)]);
        assert!(a.is_pending(addr(2, 2)));
        assert_eq!(a.pending(), 1);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Admit(u8, u16, bool),
        Release(u8, u16),
        Expire(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (1u8..6, 0u16..8, any::<bool>()).prop_map(|(h, p, m)| Op::Admit(h, p, m)),
            (1u8..6, 0u16..8).prop_map(|(h, p)| Op::Release(h, p)),
            (0u64..2_000).prop_map(Op::Expire),
        ]
    }

    proptest! {
        /// Whatever happens, the caps hold and the counters match the
        /// pending set (nothing leaks, nothing double-counts).
        #[test]
        fn caps_hold_and_counters_match(ops in prop::collection::vec(op(), 0..200)) {
            let t0 = Instant::now();
            let mut now = t0;
            let l = limits();
            let mut a = Admission::new(l);
            for op in ops {
                match op {
                    Op::Admit(h, p, member) => {
                        let class = if member { SourceClass::Member } else { SourceClass::Stranger };
                        let _ = a.admit(addr(h, p), class, now);
                    }
                    Op::Release(h, p) => { a.release(addr(h, p)); }
                    Op::Expire(ms) => {
                        now += Duration::from_millis(ms);
                        for gone in a.expire(now) {
                            prop_assert!(!a.is_pending(gone));
                        }
                    }
                }
                let count = |c: SourceClass| a.pending.values().filter(|p| p.class == c).count();
                prop_assert_eq!(count(SourceClass::Member), a.members);
                prop_assert_eq!(count(SourceClass::Stranger), a.strangers);
                prop_assert!(a.members <= l.max_total && a.strangers <= l.max_total);
                for (ip, n) in &a.per_source {
                    let held = a.pending.iter().filter(|(k, _)| k.ip() == *ip).count();
                    prop_assert_eq!(held, *n);
                    let strangers = a.pending.iter()
                        .filter(|(k, p)| k.ip() == *ip && p.class == SourceClass::Stranger)
                        .count();
                    prop_assert!(strangers <= l.max_per_source);
                }
                prop_assert!(a.pending.values().all(|p| p.deadline > now));
            }
        }
    }
}
