//! When a node exchanges what, with whom — pure, so that the rules are
//! unit-tested without time or a network:
//!
//! - every partition this node replicates is exchanged with each other
//!   replica on a jittered period, **at once** when its replica set changes,
//!   soon again after a repair (to confirm equal roots), and after a
//!   back-off when the peer failed;
//! - a partition this node holds but no longer replicates (a node joined
//!   closer to it, or this node is leaving) is **handed off**: pushed to
//!   the current replicas and dropped here only once all of them confirm
//!   equal roots;
//! - a partition is **confirmed** when every other replica answered equal
//!   roots: the earliest of those exchanges' start times is when every
//!   replica held what this one held (the collector's tombstone bound);
//! - **time to convergence** runs from a replica-set change (or a found
//!   divergence) until the partition is confirmed;
//! - a partition is **caught up** once this node, since it became one of
//!   its replicas, has pulled everything from each live co-replica (an
//!   exchange it started found equal roots or repaired every difference).
//!   It stays so while the node remains a replica, whoever else joins or
//!   leaves the set: what it holds only grows. Quorum reads count a
//!   replica's answer only for partitions it has caught up on. Nothing is
//!   caught up from a placement built before the node's view settled: a
//!   (re)started node first sees only itself, where every partition has no
//!   co-replica to pull from, and the latch would then have held once its
//!   peers appeared — with a store that may be empty (quarantined) or
//!   rolled back.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use hypha_cluster::membership::MemberKey;

/// Whether the placement the schedule follows was built from a settled
/// view ([`crate::router::Settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViewState {
    /// Settled: replica sets name the peers this node will pull from.
    Settled,
    /// Not yet: sets may leave out peers not heard from since the start.
    Unsettled,
}

/// Timing of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleSettings {
    /// Mean time between two exchanges of a partition with one replica.
    pub period_ms: u64,
    /// After a repair, the confirming exchange comes this soon.
    pub recheck_ms: u64,
    /// After a failure (peer unreachable, refused), retry this late.
    pub retry_ms: u64,
}

/// What this node is to a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// One of its replicas.
    Replica,
    /// It holds data of the partition but is no longer a replica.
    HandingOff,
}

/// How one exchange with one peer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerResult {
    /// Equal entry count and root.
    Equal,
    /// Differences found and repaired (equality not yet confirmed).
    Repaired,
    /// The peer could not be reached or the exchange failed.
    Failed,
}

/// This node's record of one other replica of a partition.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PeerStatus {
    /// When the last exchange with it started (Unix ms).
    pub last_ms: Option<u64>,
    /// How it ended.
    pub last: Option<PeerResult>,
    /// Start of the last exchange that found equal roots, since the
    /// replica set last changed.
    pub equal_ms: Option<u64>,
    /// Buckets that differed at the last exchange.
    pub differing_buckets: usize,
    /// Start of the first exchange, since this node became a replica, that
    /// left it holding everything the peer held (equal, or fully repaired).
    pub pulled_ms: Option<u64>,
    /// When the next exchange is due.
    #[serde(skip)]
    pub next_ms: u64,
}

/// One partition's schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartitionStatus {
    /// Partition.
    pub partition: u16,
    /// What this node is to it.
    pub role: Role,
    /// Its replica set, closest first.
    pub replicas: Vec<MemberKey>,
    /// The other replicas, by member.
    #[serde(skip)]
    pub peers: BTreeMap<MemberKey, PeerStatus>,
    /// Since when it is known to differ (or its set changed); None when
    /// confirmed since.
    pub diverged_since_ms: Option<u64>,
    /// When every replica last held what this one held.
    pub confirmed_ms: Option<u64>,
    /// Whether this node has caught up on the partition (module doc).
    pub caught_up: bool,
    /// Whether catching up needs every peer, live or not: set after a
    /// break in the node's majority lease ([`Schedule::restart_catch_up`]),
    /// cleared once caught up.
    #[serde(skip)]
    pub strict: bool,
    /// When the next hand-off attempt (or lone-replica check) is due.
    #[serde(skip)]
    pub next_ms: u64,
}

impl PartitionStatus {
    fn new(partition: u16, role: Role, now_ms: u64) -> Self {
        Self {
            partition,
            role,
            replicas: Vec::new(),
            peers: BTreeMap::new(),
            diverged_since_ms: Some(now_ms),
            confirmed_ms: None,
            caught_up: false,
            strict: false,
            next_ms: now_ms,
        }
    }

    /// The latest exchange with any peer.
    pub fn last_exchange_ms(&self) -> Option<u64> {
        self.peers.values().filter_map(|p| p.last_ms).max()
    }

    /// Buckets that differed at the last exchanges, summed over peers.
    pub fn divergence(&self) -> usize {
        self.peers.values().map(|p| p.differing_buckets).sum()
    }
}

/// Work the schedule hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Task {
    /// Exchange `partition` with `peer`.
    Exchange {
        /// Partition.
        partition: u16,
        /// The other replica.
        peer: MemberKey,
    },
    /// Push `partition` to its replicas, drop it here once all confirm.
    HandOff {
        /// Partition.
        partition: u16,
        /// Its current replicas (all live).
        replicas: Vec<MemberKey>,
    },
}

/// How an exchange with one peer went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exchanged {
    /// Its result.
    pub result: PeerResult,
    /// Whether a repair left nothing behind (no entry skipped, no bucket
    /// deferred): this node then holds all the peer held at the start.
    pub complete: Completeness,
    /// Buckets that differed.
    pub differing_buckets: usize,
    /// When it started (Unix ms).
    pub started_ms: u64,
}

/// Whether an exchange repaired every difference it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completeness {
    /// Everything found was repaired (or nothing differed).
    Complete,
    /// Some entries or buckets were left for the next exchange.
    Partial,
}

/// What recording a result changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// The partition is now confirmed as of this time.
    pub confirmed_ms: Option<u64>,
    /// It converged this long after it diverged.
    pub converged_after_ms: Option<u64>,
}

/// A node's anti-entropy schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    me: MemberKey,
    settings: ScheduleSettings,
    parts: BTreeMap<u16, PartitionStatus>,
    /// Where the next [`Schedule::due`] starts looking. A node that cannot
    /// keep up with its period (more exchanges due than it can run) then
    /// serves every partition in turn; from partition 0 each time, the
    /// lowest partitions took every free slot and hand-offs and exchanges
    /// of the highest waited for minutes (found by the chaos harness).
    cursor: u16,
    /// Exchanges started before this (wall ms) do not count toward a
    /// catch-up: set when the node's majority lease came back after a
    /// break ([`Schedule::restart_catch_up`]).
    catch_up_from_ms: u64,
}

impl Schedule {
    /// For node `me`.
    pub fn new(me: MemberKey, settings: ScheduleSettings) -> Self {
        Self {
            me,
            settings,
            parts: BTreeMap::new(),
            cursor: 0,
            catch_up_from_ms: 0,
        }
    }

    /// Take a new placement: `sets[p]` is partition p's replica set.
    /// Partitions whose set changed are due at once; partitions no longer
    /// replicated here turn to hand-off. Returns the partitions whose
    /// confirmation no longer holds.
    pub fn place(&mut self, sets: &[Vec<MemberKey>], now_ms: u64) -> Vec<u16> {
        let mut unconfirmed = Vec::new();
        for (p, set) in sets.iter().enumerate() {
            let Ok(p) = u16::try_from(p) else { break };
            let mine = set.contains(&self.me);
            let known = self.parts.get(&p);
            let same = known.is_some_and(|s| s.replicas == *set);
            if same {
                continue;
            }
            let role = if mine {
                Role::Replica
            } else {
                Role::HandingOff
            };
            match self.parts.get_mut(&p) {
                Some(status) => {
                    // Staying a replica keeps what was pulled; becoming one
                    // (again) or ceasing to be one starts the catch-up over.
                    if !(mine && status.role == Role::Replica) {
                        status.caught_up = false;
                        status.peers.values_mut().for_each(|r| r.pulled_ms = None);
                    }
                    status.role = role;
                    status.replicas = set.clone();
                    status.next_ms = now_ms;
                    status.confirmed_ms = None;
                    status.diverged_since_ms = Some(now_ms);
                }
                // Not held and not a replica: nothing to do.
                None if !mine => continue,
                None => {
                    let mut status = PartitionStatus::new(p, role, now_ms);
                    status.replicas = set.clone();
                    self.parts.insert(p, status);
                }
            }
            unconfirmed.push(p);
            self.reset_peers(p, now_ms);
        }
        unconfirmed
    }

    /// Peers follow the replica set; every peer's record starts over.
    fn reset_peers(&mut self, partition: u16, now_ms: u64) {
        let me = self.me.clone();
        let Some(status) = self.parts.get_mut(&partition) else {
            return;
        };
        let others: BTreeSet<MemberKey> = status
            .replicas
            .iter()
            .filter(|m| **m != me)
            .cloned()
            .collect();
        status.peers.retain(|k, _| others.contains(k));
        for peer in others {
            let record = status.peers.entry(peer).or_default();
            record.equal_ms = None;
            record.next_ms = now_ms;
        }
    }

    /// A partition found held here that this node does not replicate
    /// (after a restart, or data that arrived late): hand it off to `set`.
    pub fn held(&mut self, partition: u16, set: &[MemberKey], now_ms: u64) {
        if set.contains(&self.me) || self.parts.contains_key(&partition) {
            return;
        }
        let mut status = PartitionStatus::new(partition, Role::HandingOff, now_ms);
        status.replicas = set.to_vec();
        self.parts.insert(partition, status);
    }

    /// Whether `partition` is replicated or handed off here.
    pub fn knows(&self, partition: u16) -> bool {
        self.parts.contains_key(&partition)
    }

    /// Whether `partition` is being handed off.
    pub fn handing_off(&self, partition: u16) -> bool {
        self.parts
            .get(&partition)
            .is_some_and(|s| s.role == Role::HandingOff)
    }

    /// Tasks due at `now_ms`, at most `max`, skipping partitions in
    /// `busy`. Replicas that are not live are skipped (a Down member in its
    /// grace cannot answer); a partition with no other replica is
    /// confirmed on the spot (returned in the second list).
    pub fn due(
        &mut self,
        now_ms: u64,
        is_live: &dyn Fn(&MemberKey) -> bool,
        busy: &BTreeSet<u16>,
        max: usize,
    ) -> (Vec<Task>, Vec<u16>) {
        let mut tasks = Vec::new();
        let mut lone = Vec::new();
        let period = self.settings.period_ms;
        let retry = self.settings.retry_ms;
        let order: Vec<u16> = self
            .parts
            .range(self.cursor..)
            .chain(self.parts.range(..self.cursor))
            .map(|(p, _)| *p)
            .collect();
        for partition in order {
            if tasks.len() >= max {
                self.cursor = partition;
                break;
            }
            let Some(status) = self.parts.get_mut(&partition) else {
                continue;
            };
            if busy.contains(&partition) {
                continue;
            }
            match status.role {
                Role::HandingOff => {
                    if status.next_ms > now_ms {
                        continue;
                    }
                    let live = status.replicas.iter().all(is_live);
                    if live && !status.replicas.is_empty() {
                        tasks.push(Task::HandOff {
                            partition: status.partition,
                            replicas: status.replicas.clone(),
                        });
                    }
                    status.next_ms = now_ms + retry;
                }
                Role::Replica if status.peers.is_empty() => {
                    if status.next_ms <= now_ms {
                        status.confirmed_ms = Some(now_ms);
                        status.diverged_since_ms = None;
                        status.next_ms = now_ms + period;
                        lone.push(status.partition);
                    }
                }
                Role::Replica => {
                    for (peer, record) in &mut status.peers {
                        if record.next_ms > now_ms {
                            continue;
                        }
                        if !is_live(peer) {
                            record.next_ms = now_ms + retry;
                            continue;
                        }
                        // Until the result comes back the partition is busy.
                        record.next_ms = now_ms + period;
                        tasks.push(Task::Exchange {
                            partition: status.partition,
                            peer: peer.clone(),
                        });
                    }
                }
            }
        }
        (tasks, lone)
    }

    /// Record an exchange of `partition` with `peer`; `jitter_ms`
    /// (0..period) spreads the next one.
    pub fn exchanged(
        &mut self,
        partition: u16,
        peer: &MemberKey,
        exchange: Exchanged,
        now_ms: u64,
        jitter_ms: u64,
    ) -> Recorded {
        let Exchanged {
            result,
            complete,
            differing_buckets,
            started_ms,
        } = exchange;
        let settings = self.settings;
        let Some(status) = self.parts.get_mut(&partition) else {
            return Recorded::default();
        };
        let Some(record) = status.peers.get_mut(peer) else {
            // The replica set moved on while the exchange ran.
            return Recorded::default();
        };
        record.last_ms = Some(started_ms);
        record.last = Some(result);
        let pulled_all = match result {
            PeerResult::Equal => true,
            PeerResult::Repaired => complete == Completeness::Complete,
            PeerResult::Failed => false,
        };
        if pulled_all && started_ms >= self.catch_up_from_ms {
            record.pulled_ms.get_or_insert(started_ms);
        }
        record.differing_buckets = differing_buckets;
        record.next_ms = match result {
            PeerResult::Equal => {
                now_ms + settings.period_ms / 2 + jitter_ms % settings.period_ms.max(1)
            }
            PeerResult::Repaired => now_ms + settings.recheck_ms,
            PeerResult::Failed => now_ms + settings.retry_ms,
        };
        match result {
            PeerResult::Equal => record.equal_ms = Some(started_ms),
            PeerResult::Repaired | PeerResult::Failed => {
                record.equal_ms = None;
                if result == PeerResult::Repaired {
                    status.diverged_since_ms.get_or_insert(started_ms);
                }
            }
        }
        let all_equal: Option<u64> = status
            .peers
            .values()
            .map(|p| p.equal_ms)
            .try_fold(u64::MAX, |min, at| at.map(|at| min.min(at)));
        let mut recorded = Recorded::default();
        if let Some(at) = all_equal {
            status.confirmed_ms = Some(at);
            recorded.confirmed_ms = Some(at);
            if let Some(since) = status.diverged_since_ms.take() {
                recorded.converged_after_ms = Some(now_ms.saturating_sub(since));
            }
        }
        recorded
    }

    /// Start every partition's catch-up over at `now_ms`: the node's
    /// majority lease came back after a break, and while it was away the
    /// majority may have acknowledged writes this node never saw
    /// (docs/dht.md, "The fence"). Exchanges already running started
    /// before the break ended and do not count; every partition is due
    /// at once. And the catch-up is strict: a peer that is not live is
    /// waited for too (until it answers, or the replica set moves on
    /// without it). While this node was cut off its partitions may have
    /// moved to other nodes and back, and a co-replica that was on the
    /// majority side may be the only one here that holds what was
    /// acknowledged meanwhile; if it is cut off again before this node
    /// pulled from it, the lenient rule made this node and another
    /// lagging replica a quorum of two that had both missed the write
    /// (found by `partition-halves`).
    pub fn restart_catch_up(&mut self, now_ms: u64) {
        self.catch_up_from_ms = now_ms;
        for status in self.parts.values_mut() {
            status.caught_up = false;
            status.strict = true;
            status.next_ms = now_ms;
            for record in status.peers.values_mut() {
                record.pulled_ms = None;
                record.next_ms = now_ms;
            }
        }
    }

    /// A hand-off attempt ended: `done` when nothing of the partition is
    /// left here.
    pub fn handed_off(&mut self, partition: u16, done: bool, now_ms: u64) {
        if done && self.handing_off(partition) {
            self.parts.remove(&partition);
        } else {
            self.retry_later(partition, now_ms);
        }
    }

    /// Work on `partition` failed before it could report: try again after
    /// `retry_ms`.
    pub fn retry_later(&mut self, partition: u16, now_ms: u64) {
        if let Some(status) = self.parts.get_mut(&partition) {
            status.next_ms = now_ms + self.settings.retry_ms;
        }
    }

    /// The partitions this node has caught up on (module doc), latching
    /// those that just did: every live peer has been pulled from. A peer
    /// that is not live is not waited for (it may be gone for good), so a
    /// replica whose co-replicas are all down counts as caught up — but
    /// only once the view has settled; before, nothing is.
    pub fn caught_up(
        &mut self,
        view: ViewState,
        is_live: &dyn Fn(&MemberKey) -> bool,
    ) -> BTreeSet<u16> {
        let mut out = BTreeSet::new();
        if view == ViewState::Unsettled {
            return out;
        }
        for status in self.parts.values_mut() {
            if status.role != Role::Replica {
                continue;
            }
            if !status.caught_up {
                let strict = status.strict;
                status.caught_up = status.peers.iter().all(|(peer, record)| {
                    record.pulled_ms.is_some() || (!strict && !is_live(peer))
                });
                status.strict &= !status.caught_up;
            }
            if status.caught_up {
                out.insert(status.partition);
            }
        }
        out
    }

    /// Every partition this node replicates or hands off.
    pub fn status(&self) -> impl Iterator<Item = &PartitionStatus> {
        self.parts.values()
    }

    /// Partitions this node leads (it is the first live member of the
    /// replica set, so that a cluster-wide sum counts each once) that have
    /// fewer than `replicas` live replicas confirmed equal.
    pub fn under_replicated(&self, replicas: usize, is_live: &dyn Fn(&MemberKey) -> bool) -> usize {
        self.parts
            .values()
            .filter(|s| s.role == Role::Replica)
            .filter(|s| s.replicas.iter().find(|m| is_live(m)) == Some(&self.me))
            .filter(|s| {
                let equal = s
                    .peers
                    .iter()
                    .filter(|(k, p)| is_live(k) && p.equal_ms.is_some())
                    .count();
                1 + equal < replicas
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(i: u8) -> MemberKey {
        MemberKey::new(hex::encode([i; 32]), 1)
    }

    fn settings() -> ScheduleSettings {
        ScheduleSettings {
            period_ms: 60_000,
            recheck_ms: 1_000,
            retry_ms: 5_000,
        }
    }

    fn ex(result: PeerResult, differing_buckets: usize, started_ms: u64) -> Exchanged {
        Exchanged {
            result,
            complete: Completeness::Complete,
            differing_buckets,
            started_ms,
        }
    }

    fn all_live(_: &MemberKey) -> bool {
        true
    }

    fn exchanges(tasks: &[Task]) -> Vec<(u16, MemberKey)> {
        tasks
            .iter()
            .filter_map(|t| match t {
                Task::Exchange { partition, peer } => Some((*partition, peer.clone())),
                Task::HandOff { .. } => None,
            })
            .collect()
    }

    #[test]
    fn a_changed_set_is_exchanged_at_once_and_confirmed_by_every_peer() {
        let mut s = Schedule::new(member(0), settings());
        let sets = vec![vec![member(0), member(1), member(2)], vec![member(3)]];
        assert_eq!(s.place(&sets, 1_000), vec![0]);
        let (tasks, lone) = s.due(1_000, &all_live, &BTreeSet::new(), 10);
        assert_eq!(exchanges(&tasks), vec![(0, member(1)), (0, member(2))]);
        assert!(lone.is_empty());
        // Nothing more is due until results come back or the period ends.
        assert!(s.due(1_500, &all_live, &BTreeSet::new(), 10).0.is_empty());
        let r = s.exchanged(0, &member(1), ex(PeerResult::Equal, 0, 1_000), 1_100, 0);
        assert_eq!(r.confirmed_ms, None, "one peer is not yet known equal");
        let r = s.exchanged(0, &member(2), ex(PeerResult::Repaired, 3, 1_000), 1_200, 0);
        assert_eq!(r, Recorded::default());
        // The repair is confirmed soon, not a period later.
        let (tasks, _) = s.due(2_200, &all_live, &BTreeSet::new(), 10);
        assert_eq!(exchanges(&tasks), vec![(0, member(2))]);
        let r = s.exchanged(0, &member(2), ex(PeerResult::Equal, 0, 2_200), 2_300, 0);
        assert_eq!(r.confirmed_ms, Some(1_000), "the earliest equal start");
        assert_eq!(r.converged_after_ms, Some(1_300));
        // The replica set moves: the confirmation no longer holds.
        let moved = vec![vec![member(0), member(1), member(4)], vec![member(3)]];
        assert_eq!(s.place(&moved, 5_000), vec![0]);
        let (tasks, _) = s.due(5_000, &all_live, &BTreeSet::new(), 10);
        assert_eq!(exchanges(&tasks), vec![(0, member(1)), (0, member(4))]);
        assert!(
            s.exchanged(0, &member(2), ex(PeerResult::Equal, 0, 5_000), 5_000, 0)
                == Recorded::default()
        );
    }

    #[test]
    fn a_new_replica_catches_up_by_pulling_from_every_live_peer() {
        let mut s = Schedule::new(member(0), settings());
        let sets = vec![vec![member(0), member(1), member(2)], vec![member(0)]];
        s.place(&sets, 1_000);
        // A lone replica has no one to pull from.
        assert_eq!(
            s.caught_up(ViewState::Settled, &all_live),
            BTreeSet::from([1])
        );
        s.exchanged(0, &member(1), ex(PeerResult::Equal, 0, 1_000), 1_100, 0);
        let partial = Exchanged {
            complete: Completeness::Partial,
            ..ex(PeerResult::Repaired, 4, 1_000)
        };
        s.exchanged(0, &member(2), partial, 1_200, 0);
        assert!(
            !s.caught_up(ViewState::Settled, &all_live).contains(&0),
            "member 2 left entries"
        );
        s.exchanged(0, &member(2), ex(PeerResult::Failed, 0, 2_000), 2_100, 0);
        assert!(!s.caught_up(ViewState::Settled, &all_live).contains(&0));
        s.exchanged(0, &member(2), ex(PeerResult::Repaired, 4, 3_000), 3_100, 0);
        assert!(s.caught_up(ViewState::Settled, &all_live).contains(&0));
        // Another member joins the set: what was pulled is still here.
        let joined = vec![vec![member(0), member(1), member(4)], vec![member(0)]];
        s.place(&joined, 4_000);
        assert!(s.caught_up(ViewState::Settled, &all_live).contains(&0));
        // This node leaves the set and comes back: it starts over.
        s.place(
            &[vec![member(1), member(2), member(4)], vec![member(0)]],
            5_000,
        );
        assert!(!s.caught_up(ViewState::Settled, &all_live).contains(&0));
        s.place(&joined, 6_000);
        assert!(!s.caught_up(ViewState::Settled, &all_live).contains(&0));
        // A peer that is not live is not waited for.
        let only_1 = |m: &MemberKey| *m == member(1);
        s.exchanged(0, &member(1), ex(PeerResult::Equal, 0, 6_000), 6_100, 0);
        assert!(s.caught_up(ViewState::Settled, &only_1).contains(&0));
    }

    #[test]
    fn a_restarted_node_catches_up_only_from_its_settled_view() {
        let me = member(0);
        let alone = vec![vec![me.clone()]];
        let full = vec![vec![me.clone(), member(1), member(2)]];
        // The first placement after a start holds only this node; its view
        // has not settled, so no partition counts as caught up, however
        // lone it looks.
        let mut s = Schedule::new(me.clone(), settings());
        s.place(&alone, 0);
        assert!(s.caught_up(ViewState::Unsettled, &all_live).is_empty());
        s.place(&full, 500);
        assert!(
            !s.caught_up(ViewState::Settled, &all_live).contains(&0),
            "its peers have not been pulled from"
        );
        s.exchanged(0, &member(1), ex(PeerResult::Repaired, 5, 600), 700, 0);
        assert!(!s.caught_up(ViewState::Settled, &all_live).contains(&0));
        s.exchanged(0, &member(2), ex(PeerResult::Equal, 0, 600), 800, 0);
        assert!(s.caught_up(ViewState::Settled, &all_live).contains(&0));
        // What the gate prevents: the lone latch holding once peers appear.
        let mut ungated = Schedule::new(me, settings());
        ungated.place(&alone, 0);
        assert!(ungated
            .caught_up(ViewState::Settled, &all_live)
            .contains(&0));
        ungated.place(&full, 500);
        assert!(ungated
            .caught_up(ViewState::Settled, &all_live)
            .contains(&0));
    }

    #[test]
    fn a_lease_break_starts_every_catch_up_over() {
        let mut s = Schedule::new(member(0), settings());
        let sets = vec![vec![member(0), member(1), member(2)]];
        s.place(&sets, 1_000);
        s.exchanged(0, &member(1), ex(PeerResult::Equal, 0, 1_000), 1_100, 0);
        s.exchanged(0, &member(2), ex(PeerResult::Equal, 0, 1_000), 1_100, 0);
        assert!(s.caught_up(ViewState::Settled, &all_live).contains(&0));
        // The lease came back at 9 s: nothing is caught up, and every
        // peer is due at once.
        s.restart_catch_up(9_000);
        assert!(!s.caught_up(ViewState::Settled, &all_live).contains(&0));
        let (tasks, _) = s.due(9_000, &all_live, &BTreeSet::new(), 10);
        assert_eq!(exchanges(&tasks), vec![(0, member(1)), (0, member(2))]);
        // An exchange that started before the lease came back (it ran
        // during the break, on the minority side) does not count.
        s.exchanged(0, &member(1), ex(PeerResult::Equal, 0, 8_500), 9_100, 0);
        s.exchanged(0, &member(2), ex(PeerResult::Equal, 0, 9_000), 9_100, 0);
        assert!(!s.caught_up(ViewState::Settled, &all_live).contains(&0));
        s.exchanged(0, &member(1), ex(PeerResult::Equal, 0, 9_200), 9_300, 0);
        assert!(s.caught_up(ViewState::Settled, &all_live).contains(&0));
    }

    #[test]
    fn after_a_lease_break_a_peer_that_is_not_live_is_waited_for() {
        let mut s = Schedule::new(member(0), settings());
        let sets = vec![vec![member(0), member(1), member(2)]];
        s.place(&sets, 1_000);
        s.restart_catch_up(2_000);
        // Member 2 was on the majority side and holds what was written
        // there; it is cut off again before this node pulled from it.
        let only_1 = |m: &MemberKey| *m == member(1);
        s.exchanged(0, &member(1), ex(PeerResult::Equal, 0, 2_000), 2_100, 0);
        assert!(
            !s.caught_up(ViewState::Settled, &only_1).contains(&0),
            "member 1 may have missed the same writes"
        );
        // The set moves on without member 2 (its Down grace ended): the
        // newcomer is pulled from, and then it is caught up.
        s.place(&[vec![member(0), member(1), member(3)]], 9_000);
        s.exchanged(0, &member(3), ex(PeerResult::Repaired, 2, 9_000), 9_100, 0);
        assert!(s.caught_up(ViewState::Settled, &all_live).contains(&0));
        // Once caught up, the usual rule is back: a later restart of the
        // exchange's view does not wait for members that are down.
        s.place(&[vec![member(0), member(1), member(4)]], 10_000);
        let not_4 = |m: &MemberKey| *m != member(4);
        assert!(s.caught_up(ViewState::Settled, &not_4).contains(&0));
    }

    #[test]
    fn a_node_that_cannot_keep_up_serves_every_partition_in_turn() {
        let mut s = Schedule::new(member(0), settings());
        let pair = vec![member(0), member(1)];
        s.place(&[pair.clone(), pair.clone(), pair], 0);
        s.held(3, &[member(1)], 0);
        // One free slot per period: the lowest partition is due again each
        // time, and must not take the slot from the others.
        let period = settings().period_ms;
        let served: Vec<u16> = (0..4)
            .flat_map(|i| s.due(i * period, &all_live, &BTreeSet::new(), 1).0)
            .map(|t| match t {
                Task::Exchange { partition, .. } | Task::HandOff { partition, .. } => partition,
            })
            .collect();
        assert_eq!(served, vec![0, 1, 2, 3]);
    }

    #[test]
    fn down_replicas_wait_and_lone_partitions_confirm_themselves() {
        let mut s = Schedule::new(member(0), settings());
        s.place(&[vec![member(0), member(1)], vec![member(0)]], 0);
        let down = |m: &MemberKey| *m != member(1);
        let (tasks, lone) = s.due(0, &down, &BTreeSet::new(), 10);
        assert!(tasks.is_empty());
        assert_eq!(lone, vec![1]);
        // Both: one has its second replica Down, one has no second replica.
        assert_eq!(s.under_replicated(2, &down), 2);
        // Busy partitions are skipped.
        let busy = BTreeSet::from([0]);
        assert!(s.due(10_000, &all_live, &busy, 10).0.is_empty());
        let (tasks, _) = s.due(10_000, &all_live, &BTreeSet::new(), 10);
        assert_eq!(exchanges(&tasks), vec![(0, member(1))]);
        s.exchanged(0, &member(1), ex(PeerResult::Equal, 0, 10_000), 10_010, 0);
        assert_eq!(s.under_replicated(2, &all_live), 1);
    }

    #[test]
    fn a_partition_that_moved_away_is_handed_off_until_done() {
        let mut s = Schedule::new(member(0), settings());
        s.place(&[vec![member(0), member(1)]], 0);
        // A closer node joins: this node is no longer a replica.
        s.place(&[vec![member(5), member(1)]], 100);
        assert!(s.handing_off(0));
        let only_1 = |m: &MemberKey| *m == member(1);
        let (tasks, _) = s.due(100, &only_1, &BTreeSet::new(), 10);
        assert!(tasks.is_empty(), "waits until every new replica is live");
        let (tasks, _) = s.due(5_100, &all_live, &BTreeSet::new(), 10);
        assert_eq!(
            tasks,
            vec![Task::HandOff {
                partition: 0,
                replicas: vec![member(5), member(1)]
            }]
        );
        s.handed_off(0, false, 5_200);
        assert!(s.handing_off(0));
        s.handed_off(0, true, 10_200);
        assert_eq!(s.status().count(), 0);
        // Data found later (a restart) is handed off too; replicas ignore it.
        s.held(3, &[member(1)], 20_000);
        s.held(4, &[member(0)], 20_000);
        assert!(s.handing_off(3));
        assert!(!s.handing_off(4));
    }
}
