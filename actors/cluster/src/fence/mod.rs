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
    /// How long a member must be absent before its partitions move (the
    /// DHT's Down grace). A break shorter than this minus the lease
    /// cannot have let any partition move away from this node.
    move_grace: Duration,
    /// Whether the lease was ever held with another node answering (a
    /// node that starts alone and then meets its peers was cut off from
    /// nothing).
    held_with_others: bool,
    /// The last break: the hold it ended and when the lease ran out.
    broke: Option<Break>,
    /// The probation of the current hold, until when.
    probation_until: Option<Instant>,
    /// Other nodes of the cluster (node ids).
    cluster: BTreeSet<String>,
    /// Per node id: when the latest ping it answered was sent.
    answered: BTreeMap<String, Instant>,
    /// Since when the lease has been held without a break.
    held_since: Option<Instant>,
    /// When the lease runs out as the answers stand, kept up to date by
    /// [`Lease::answered`] and [`Lease::observe`]: every acknowledgement
    /// asks, so it is not worked out again per ask.
    expiry: Expiry,
}

/// When the lease runs out, as the answers stand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expiry {
    /// A cluster of one needs no answer.
    Alone,
    /// At this instant.
    At(Instant),
    /// Fewer answers than needed.
    Short,
}

/// A break in the lease (module doc).
#[derive(Debug, Clone, Copy)]
struct Break {
    /// Start of the hold that ended.
    since: Instant,
    /// When the lease ran out.
    at: Instant,
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
    /// A lease of `lease` length, for a cluster whose partitions move
    /// away from an absent member after `move_grace`. At `now` this node
    /// knows no other node, so it holds the lease (a cluster of one is
    /// its own majority).
    pub fn new(lease: Duration, move_grace: Duration, now: Instant) -> Self {
        Self {
            lease,
            move_grace,
            held_with_others: false,
            broke: None,
            probation_until: None,
            cluster: BTreeSet::new(),
            answered: BTreeMap::new(),
            held_since: Some(now),
            expiry: Expiry::Alone,
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
    /// latest send time of an answered ping, plus the lease.
    fn expiry(&self) -> Expiry {
        let need = self.need();
        if need == 0 {
            return Expiry::Alone;
        }
        let mut sent: Vec<Instant> = self
            .cluster
            .iter()
            .filter_map(|id| self.answered.get(id).copied())
            .collect();
        sent.sort_unstable_by(|a, b| b.cmp(a));
        sent.get(need - 1)
            .map_or(Expiry::Short, |t| Expiry::At(*t + self.lease))
    }

    /// The expiry as an instant at `now`: `None` with fewer answers than
    /// needed; far in the future for a cluster of one.
    fn until(&self, now: Instant) -> Option<Instant> {
        match self.expiry {
            Expiry::Alone => Some(now + ALONE),
            Expiry::At(until) => Some(until),
            Expiry::Short => None,
        }
    }

    /// Where the lease stands at `now`, noting breaks (moments when it
    /// was not held).
    ///
    /// A break long enough that some partition may have moved away from
    /// this node meanwhile (docs/dht.md, "The fence": a move needs the
    /// member lease-less for the Down grace, so a break of at most the
    /// grace minus the lease cannot have allowed one) starts a new hold
    /// ([`Lease::held_since`] moves) with a probation of one lease. A
    /// shorter break (a ping round lost to load) resumes the old hold: the
    /// node refused to acknowledge while it lasted, and nothing else
    /// follows from it.
    pub fn standing(&mut self, now: Instant) -> Standing {
        match self.until(now) {
            Some(until) if now < until => {
                let since = match self.held_since {
                    Some(since) => since,
                    None => self.resume(now),
                };
                self.held_since = Some(since);
                self.held_with_others |= self.need() > 0;
                if let Some(end) = self.probation_until {
                    if now < end {
                        return Standing::Probation { until: end };
                    }
                    self.probation_until = None;
                }
                Standing::Held { until, since }
            }
            ran_out => {
                // A hold of a node alone (before it met its peers) ends in
                // no break: it was cut off from nothing.
                if let Some(since) = self.held_since.take().filter(|_| self.held_with_others) {
                    let at = ran_out.map_or(now, |until| until.min(now));
                    self.broke = Some(Break { since, at });
                }
                Standing::Lost {
                    need: self.need(),
                    have: self.answered_within(now),
                    cluster: self.cluster.len() + 1,
                }
            }
        }
    }

    /// The start of the hold that begins at `now`, after a break.
    fn resume(&mut self, now: Instant) -> Instant {
        let Some(broke) = self.broke.take() else {
            return now;
        };
        let harmless = self.move_grace.saturating_sub(self.lease);
        if now.saturating_duration_since(broke.at) <= harmless {
            return broke.since;
        }
        if self.held_with_others {
            self.probation_until = Some(now + self.lease);
        }
        now
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
        self.expiry = self.expiry();
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
        self.expiry = self.expiry();
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
    /// A fence with a lease of `lease` in a cluster whose partitions
    /// move after `move_grace`, held at `now` (module doc).
    pub fn new(lease: Duration, move_grace: Duration, now: Instant) -> Self {
        Self(Arc::new(Mutex::new(Lease::new(lease, move_grace, now))))
    }

    /// A fence for a node that is never fenced: the lease of a cluster
    /// of one (a coordinator or handler built without the node's fence,
    /// in tests of one part).
    pub fn alone(now: Instant) -> Self {
        Self::new(Duration::from_secs(1), Duration::ZERO, now)
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
