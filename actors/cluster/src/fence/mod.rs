//! The majority lease: whether this node may acknowledge writes and count
//! in quorum reads now. A node holds the lease while a majority of the
//! cluster's nodes (itself included) answered one of its node-link pings
//! sent within the last `lease_ms`; a node that cannot show that stops
//! acknowledging anything, and the DHT moves a partition away from a
//! member only after a grace longer than the lease (docs/dht.md, "The
//! fence", has the invariant and the argument).
//!
//! [`Lease`] is the rule, pure: pings answered (with the time each was
//! *sent*, so a slow answer never stretches the lease), the nodes of the
//! cluster, and the time, passed in. [`Fence`] shares one per node between
//! the peers actor that feeds it and the DHT that asks it.
//!
//! The cluster (the denominator of the majority) is every node id this
//! node knows that has not left gracefully. A node that stops being in the
//! view (chitchat forgets dead nodes after `dead_node_grace_ms`) is
//! forgotten only while the lease is held: a minority cut off for longer
//! than that must not shrink the cluster to itself and call that a
//! majority.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// What a node knows of one other node, for the lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// In the view, in any state but Left (Down members still count).
    Member,
    /// Left gracefully (handed its partitions off): no longer counted.
    Left,
}

/// The lease rule (module doc).
#[derive(Debug, Clone)]
pub struct Lease {
    lease: Duration,
    /// Whether the lease was ever held with another node answering: a
    /// break after that means this node may have been cut off, and the
    /// next hold starts with a probation.
    held_with_others: bool,
    /// Whether the current hold follows such a break.
    after_break: bool,
    /// Other nodes of the cluster (node ids).
    cluster: BTreeSet<String>,
    /// Per node id: when the latest ping it answered was sent.
    answered: BTreeMap<String, Instant>,
    /// Since when the lease has been held without a break.
    held_since: Option<Instant>,
}

/// The lease as of one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// Held again after a break, but not yet acknowledging: for one
    /// lease length after a break the node waits, so that the refutation
    /// of the Down verdicts it may have drawn while cut off reaches the
    /// nodes that moved its partitions before it acknowledges in its old
    /// replica sets again (docs/dht.md, "The fence").
    Probation {
        /// When the probation ends.
        until: Instant,
    },
    /// Held until the given instant (exclusive), held without a break
    /// since the other.
    Held {
        /// When it runs out unless renewed.
        until: Instant,
        /// Start of the current unbroken hold.
        since: Instant,
    },
    /// Not held: fewer than `need` of the `cluster` other nodes answered
    /// a ping sent within the lease.
    Lost {
        /// Other nodes' answers needed.
        need: usize,
        /// Other nodes that answered within the lease.
        have: usize,
        /// Nodes in the cluster, this one included.
        cluster: usize,
    },
}

impl Standing {
    /// Whether the lease is held.
    pub fn held(&self) -> bool {
        matches!(self, Standing::Held { .. })
    }
}

impl Lease {
    /// A lease of `lease` length. At `now` this node knows no other node,
    /// so it holds the lease (a cluster of one is its own majority).
    pub fn new(lease: Duration, now: Instant) -> Self {
        Self {
            lease,
            held_with_others: false,
            after_break: false,
            cluster: BTreeSet::new(),
            answered: BTreeMap::new(),
            held_since: Some(now),
        }
    }

    /// The lease length.
    pub fn length(&self) -> Duration {
        self.lease
    }

    /// Answers needed from other nodes: a strict majority of the cluster
    /// (this node included) minus this node. With n others the cluster
    /// has n + 1 nodes, a strict majority is ⌊(n + 1) / 2⌋ + 1 of them,
    /// and so ⌈n / 2⌉ answers.
    fn need(&self) -> usize {
        self.cluster.len().div_ceil(2)
    }

    /// When the lease, as the answers stand, runs out: the `need`-th
    /// latest send time of an answered ping, plus the lease. `None` with
    /// fewer answers than needed; far in the future for a cluster of one.
    fn until(&self, now: Instant) -> Option<Instant> {
        let need = self.need();
        if need == 0 {
            return Some(now + ALONE);
        }
        let mut sent: Vec<Instant> = self
            .cluster
            .iter()
            .filter_map(|id| self.answered.get(id).copied())
            .collect();
        sent.sort_unstable_by(|a, b| b.cmp(a));
        sent.get(need - 1).map(|t| *t + self.lease)
    }

    /// Where the lease stands at `now`, noting a break (a moment when it
    /// was not held) so that [`Lease::held_since`] starts again.
    pub fn standing(&mut self, now: Instant) -> Standing {
        match self.until(now) {
            Some(until) if now < until => {
                let since = *self.held_since.get_or_insert(now);
                self.held_with_others |= self.need() > 0;
                let probation_end = since + self.lease;
                if self.after_break && now < probation_end {
                    return Standing::Probation {
                        until: probation_end,
                    };
                }
                Standing::Held { until, since }
            }
            _ => {
                self.held_since = None;
                self.after_break = self.held_with_others;
                Standing::Lost {
                    need: self.need(),
                    have: self.answered_within(now),
                    cluster: self.cluster.len() + 1,
                }
            }
        }
    }

    fn answered_within(&self, now: Instant) -> usize {
        self.cluster
            .iter()
            .filter_map(|id| self.answered.get(id))
            .filter(|sent| now < **sent + self.lease)
            .count()
    }

    /// Start of the current unbroken hold, as of the last
    /// [`Lease::standing`] or update.
    pub fn held_since(&self) -> Option<Instant> {
        self.held_since
    }

    /// `node_id` answered a ping sent at `sent`. The standing is taken
    /// first at `now`, so that a lease that ran out before this answer
    /// counts as broken.
    pub fn answered(&mut self, node_id: &str, sent: Instant, now: Instant) {
        self.standing(now);
        let latest = self.answered.entry(node_id.to_owned()).or_insert(sent);
        if sent > *latest {
            *latest = sent;
        }
        self.standing(now);
    }

    /// The nodes this node now knows, with their presence, at `now`.
    /// New ones join the cluster; Left ones leave it; ones no longer in
    /// the view leave it only while the lease is held (module doc).
    pub fn observe<'a>(
        &mut self,
        nodes: impl IntoIterator<Item = (&'a str, Presence)>,
        now: Instant,
    ) {
        let held = self.standing(now).held();
        let mut seen = BTreeSet::new();
        for (id, presence) in nodes {
            match presence {
                Presence::Member => {
                    seen.insert(id.to_owned());
                }
                Presence::Left => {
                    self.cluster.remove(id);
                    self.answered.remove(id);
                }
            }
        }
        if held {
            self.cluster.retain(|id| seen.contains(id));
            self.answered.retain(|id, _| seen.contains(id));
        }
        self.cluster.extend(seen);
        self.standing(now);
    }
}

/// How far ahead a cluster of one holds its lease (it needs no answer;
/// any later instant would do).
const ALONE: Duration = Duration::from_secs(24 * 3600);

/// One node's lease, shared: the peers actor reports answered pings and
/// the nodes it knows; the DHT asks before acknowledging (cheap to clone;
/// one per node, never process-global).
#[derive(Debug, Clone)]
pub struct Fence(Arc<Mutex<Lease>>);

impl Fence {
    /// A fence with a lease of `lease`, held at `now` (module doc).
    pub fn new(lease: Duration, now: Instant) -> Self {
        Self(Arc::new(Mutex::new(Lease::new(lease, now))))
    }

    fn with<T>(&self, f: impl FnOnce(&mut Lease) -> T) -> T {
        // A panic while holding the lock cannot leave the lease half
        // updated in a way that matters (every update is one field), so
        // a poisoned lock is used as it is.
        let mut lease = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut lease)
    }

    /// Where the lease stands at `now`.
    pub fn standing(&self, now: Instant) -> Standing {
        self.with(|l| l.standing(now))
    }

    /// Whether the lease is held at `now`.
    pub fn held(&self, now: Instant) -> bool {
        self.standing(now).held()
    }

    /// See [`Lease::answered`].
    pub fn answered(&self, node_id: &str, sent: Instant, now: Instant) {
        self.with(|l| l.answered(node_id, sent, now));
    }

    /// See [`Lease::observe`].
    pub fn observe<'a>(&self, nodes: impl IntoIterator<Item = (&'a str, Presence)>, now: Instant) {
        self.with(|l| l.observe(nodes, now));
    }

    /// The lease length.
    pub fn length(&self) -> Duration {
        self.with(|l| l.length())
    }
}

#[cfg(test)]
mod tests;
