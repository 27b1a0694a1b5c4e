//! Kademlia's iterative node lookup as a pure, round-based state machine:
//! it decides whom to ask next and when the answer is final; the caller
//! sends the find-node RPCs and feeds back their answers. No I/O, no
//! clocks (a timeout is the caller reporting [`Lookup::on_failure`]).
//!
//! A round is one call of [`Lookup::next_round`] that returns peers: they
//! are queried in parallel, and the caller reports every answer or
//! failure before asking for the next round. A round normally asks the
//! [`ALPHA`] closest unqueried candidates among the `width` closest
//! known. As in the Kademlia paper, a round that brought nothing closer
//! than the closest candidate already seen means the lookup has stopped
//! converging, so the next round asks *all* the unqueried candidates among
//! the `width` closest at once. The lookup is done when the `width`
//! closest candidates not known to have failed have all answered.
//!
//! Everything is bounded so that liars and dead networks cannot keep a
//! lookup going: at most [`MAX_ROUNDS`] rounds, at most `width` ×
//! [`UNQUERIED_PER_WIDTH`] unqueried candidates kept (the farthest are
//! dropped), at most [`MAX_CONTACTS_PER_ANSWER`] contacts read from one
//! answer. Queried candidates are never dropped; there are at most
//! `MAX_ROUNDS` × `width` of them.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use super::keyspace::Key;
use super::routing::K;

/// Kademlia's parallelism: peers asked per round while converging.
pub const ALPHA: usize = 3;
/// Hard limit on rounds: far beyond the handful a working network needs
/// (at most 6 measured over 4,000 nodes), so only a lying or collapsing
/// network ever reaches it.
pub const MAX_ROUNDS: usize = 64;
/// Unqueried candidates kept, per unit of `width`.
pub const UNQUERIED_PER_WIDTH: usize = 8;
/// Contacts read from one answer; an honest peer sends at most `k`, the
/// rest of an oversized answer is ignored.
pub const MAX_CONTACTS_PER_ANSWER: usize = 2 * K;

/// Whether the node running the lookup takes part in its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalNode {
    /// It is never a candidate, even when a peer names it: a joining
    /// node looking up its own id wants neighbours, not itself.
    Excluded,
    /// It is a candidate that has already answered (its own routing
    /// table supplied the seeds), so it counts in the result without an
    /// RPC: finding the replicas of a key it may hold itself.
    Included,
}

/// How far the lookup has got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupStatus {
    /// Some of the `width` closest candidates have not answered yet.
    Running,
    /// The `width` closest candidates not known to have failed have all
    /// answered (or fewer exist, and all of them have).
    Converged,
    /// [`MAX_ROUNDS`] rounds were spent and every RPC is settled: the
    /// result is the best found, not a proven one.
    RoundLimit,
}

/// Cost of a lookup so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LookupStats {
    /// Rounds started (calls of `next_round` that returned peers).
    pub rounds: usize,
    /// Find-node RPCs asked for.
    pub rpcs: usize,
    /// RPCs reported failed.
    pub failures: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Unqueried,
    InFlight,
    Answered,
}

#[derive(Debug, Clone)]
struct Candidate {
    key: Key,
    state: State,
}

/// One iterative lookup of the nodes XOR-closest to a target.
#[derive(Debug, Clone)]
pub struct Lookup {
    target: Key,
    width: usize,
    alpha: usize,
    /// Keyed by distance to the target, so iteration is closest first.
    candidates: BTreeMap<Key, Candidate>,
    /// Never re-added: a peer that failed once is not retried.
    failed: BTreeSet<Key>,
    excluded: Option<Key>,
    unqueried: usize,
    in_flight: usize,
    /// Distance of the closest candidate ever seen.
    best_seen: Option<Key>,
    /// `best_seen` when the last round was started.
    best_before_round: Option<Key>,
    stats: LookupStats,
}

impl Lookup {
    /// A lookup of `target` starting from `seeds` (usually the local
    /// table's closest to it), converging on the `width` closest nodes
    /// (`k` normally, [`ALPHA`] peers per round). `width` and `alpha` are
    /// at least 1.
    pub fn new(target: Key, seeds: Vec<Key>, width: usize, alpha: usize) -> Self {
        let mut lookup = Self {
            target,
            width: width.max(1),
            alpha: alpha.max(1),
            candidates: BTreeMap::new(),
            failed: BTreeSet::new(),
            excluded: None,
            unqueried: 0,
            in_flight: 0,
            best_seen: None,
            best_before_round: None,
            stats: LookupStats::default(),
        };
        for seed in seeds {
            lookup.add(seed);
        }
        lookup.trim();
        lookup
    }

    /// Say which node runs the lookup and whether it counts (see
    /// [`LocalNode`]). Without this, the local node is a candidate only if
    /// it was seeded or named by a peer, and would then be queried.
    pub fn with_local(mut self, local: Key, role: LocalNode) -> Self {
        self.forget(&local);
        match role {
            LocalNode::Excluded => self.excluded = Some(local),
            LocalNode::Included => {
                let distance = self.target.distance(&local);
                self.candidates.insert(
                    distance,
                    Candidate {
                        key: local,
                        state: State::Answered,
                    },
                );
                self.see(distance);
            }
        }
        self
    }

    /// The key looked up.
    pub fn target(&self) -> Key {
        self.target
    }

    /// The peers to query in parallel now: the [`ALPHA`] closest unqueried
    /// among the `width` closest candidates, or all of those if the last
    /// round found nothing closer. Empty when nothing is left to ask, an
    /// earlier round is still in flight with nothing else to ask, or the
    /// round limit is reached. A non-empty answer counts as one round.
    pub fn next_round(&mut self) -> Vec<Key> {
        if self.stats.rounds >= MAX_ROUNDS {
            return Vec::new();
        }
        let stalled = self.stats.rounds > 0 && self.best_seen == self.best_before_round;
        let fan_out = if stalled { self.width } else { self.alpha };
        let picks: Vec<Key> = self
            .candidates
            .iter()
            .take(self.width)
            .filter(|(_, c)| c.state == State::Unqueried)
            .take(fan_out)
            .map(|(distance, _)| *distance)
            .collect();
        if picks.is_empty() {
            return Vec::new();
        }
        self.stats.rounds += 1;
        self.stats.rpcs += picks.len();
        self.best_before_round = self.best_seen;
        picks
            .into_iter()
            .filter_map(|distance| self.mark_in_flight(&distance))
            .collect()
    }

    /// `from` answered its find-node with `contacts`. Answers from peers
    /// not currently queried are ignored, so that nobody can inject
    /// candidates unasked.
    pub fn on_response(&mut self, from: Key, contacts: Vec<Key>) {
        let distance = self.target.distance(&from);
        match self.candidates.get_mut(&distance) {
            Some(candidate) if candidate.state == State::InFlight => {
                candidate.state = State::Answered;
                self.in_flight -= 1;
            }
            _ => return,
        }
        for contact in contacts.into_iter().take(MAX_CONTACTS_PER_ANSWER) {
            self.add(contact);
        }
        self.trim();
    }

    /// `from` did not answer (or is known to be down): it leaves the
    /// candidates for good and never counts in the result.
    pub fn on_failure(&mut self, from: Key) {
        if let Some(State::InFlight) = self.forget(&from) {
            self.stats.failures += 1;
        }
        self.failed.insert(from);
    }

    /// Where the lookup stands.
    pub fn status(&self) -> LookupStatus {
        let settled = self
            .candidates
            .values()
            .take(self.width)
            .all(|c| c.state == State::Answered);
        if settled {
            LookupStatus::Converged
        } else if self.stats.rounds >= MAX_ROUNDS && self.in_flight == 0 {
            LookupStatus::RoundLimit
        } else {
            LookupStatus::Running
        }
    }

    /// Whether the result is final (converged, or the round limit hit).
    pub fn is_done(&self) -> bool {
        self.status() != LookupStatus::Running
    }

    /// The `n` closest candidates that answered, closest first.
    pub fn closest(&self, n: usize) -> Vec<Key> {
        self.candidates
            .values()
            .filter(|c| c.state == State::Answered)
            .take(n)
            .map(|c| c.key)
            .collect()
    }

    /// Rounds and RPCs spent so far.
    pub fn stats(&self) -> LookupStats {
        self.stats
    }

    /// Number of RPCs asked for and not yet answered or failed.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Number of candidates held, whatever their state (bounded).
    pub fn candidate_count(&self) -> usize {
        self.candidates.len()
    }

    fn add(&mut self, key: Key) {
        if self.failed.contains(&key) || self.excluded == Some(key) {
            return;
        }
        let distance = self.target.distance(&key);
        if let Entry::Vacant(slot) = self.candidates.entry(distance) {
            slot.insert(Candidate {
                key,
                state: State::Unqueried,
            });
            self.unqueried += 1;
            self.see(distance);
        }
    }

    fn see(&mut self, distance: Key) {
        self.best_seen = Some(self.best_seen.map_or(distance, |best| best.min(distance)));
    }

    fn mark_in_flight(&mut self, distance: &Key) -> Option<Key> {
        let candidate = self.candidates.get_mut(distance)?;
        candidate.state = State::InFlight;
        self.unqueried -= 1;
        self.in_flight += 1;
        Some(candidate.key)
    }

    /// Remove `key` from the candidates, returning the state it was in.
    fn forget(&mut self, key: &Key) -> Option<State> {
        let candidate = self.candidates.remove(&self.target.distance(key))?;
        match candidate.state {
            State::Unqueried => self.unqueried -= 1,
            State::InFlight => self.in_flight -= 1,
            State::Answered => {}
        }
        Some(candidate.state)
    }

    /// Drop the farthest unqueried candidates beyond the cap.
    fn trim(&mut self) {
        let cap = self.width.saturating_mul(UNQUERIED_PER_WIDTH);
        let excess = self.unqueried.saturating_sub(cap);
        if excess == 0 {
            return;
        }
        let dropped: Vec<Key> = self
            .candidates
            .iter()
            .rev()
            .filter(|(_, c)| c.state == State::Unqueried)
            .take(excess)
            .map(|(distance, _)| *distance)
            .collect();
        for distance in dropped {
            self.candidates.remove(&distance);
        }
        self.unqueried -= excess;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A key at distance `d` (a small number) from the zero target.
    fn at(d: u16) -> Key {
        let mut out = [0u8; 32];
        out[30..].copy_from_slice(&d.to_be_bytes());
        Key(out)
    }

    fn target() -> Key {
        Key::default()
    }

    /// Answer every peer of the round with `reply(peer)`.
    fn answer_round(lookup: &mut Lookup, reply: impl Fn(Key) -> Vec<Key>) -> Vec<Key> {
        let round = lookup.next_round();
        for peer in &round {
            lookup.on_response(*peer, reply(*peer));
        }
        round
    }

    #[test]
    fn the_first_round_asks_the_alpha_closest_seeds() {
        let seeds = (1..=10).map(at).rev().collect();
        let mut lookup = Lookup::new(target(), seeds, K, ALPHA);
        assert_eq!(lookup.next_round(), vec![at(1), at(2), at(3)]);
        assert_eq!(lookup.stats().rounds, 1);
        assert_eq!(lookup.stats().rpcs, 3);
        // The round is still in flight: only the rest is offered.
        assert_eq!(lookup.in_flight(), 3);
    }

    #[test]
    fn a_round_without_progress_asks_all_the_width_closest_left() {
        let seeds = (1..=30).map(at).collect();
        let mut lookup = Lookup::new(target(), seeds, 10, ALPHA);
        // Nobody knows anything new: the first round finds nothing closer.
        answer_round(&mut lookup, |_| Vec::new());
        let burst = lookup.next_round();
        assert_eq!(burst, (4..=10).map(at).collect::<Vec<_>>());
        for peer in burst {
            lookup.on_response(peer, Vec::new());
        }
        assert_eq!(lookup.status(), LookupStatus::Converged);
        assert_eq!(lookup.closest(3), vec![at(1), at(2), at(3)]);
        assert_eq!(lookup.closest(100).len(), 10);
        assert_eq!(
            lookup.stats(),
            LookupStats {
                rounds: 2,
                rpcs: 10,
                failures: 0
            }
        );
        assert!(lookup.next_round().is_empty());
    }

    #[test]
    fn progress_keeps_the_rounds_at_alpha() {
        let seeds = (900..910).map(at).collect();
        let mut lookup = Lookup::new(target(), seeds, 10, ALPHA);
        answer_round(&mut lookup, |peer| vec![at(peer.0[31] as u16)]);
        assert_eq!(lookup.next_round().len(), ALPHA);
    }

    #[test]
    fn failed_peers_leave_the_result_and_are_not_readded() {
        let seeds = vec![at(1), at(2), at(3), at(4)];
        let mut lookup = Lookup::new(target(), seeds, 3, ALPHA);
        let round = lookup.next_round();
        lookup.on_failure(round[0]);
        lookup.on_response(round[1], vec![at(1)]);
        lookup.on_response(round[2], vec![at(1)]);
        assert!(!lookup.is_done());
        answer_round(&mut lookup, |_| vec![at(1)]);
        assert_eq!(lookup.status(), LookupStatus::Converged);
        assert_eq!(lookup.closest(3), vec![at(2), at(3), at(4)]);
        assert_eq!(lookup.stats().failures, 1);
    }

    #[test]
    fn unsolicited_answers_are_ignored() {
        let mut lookup = Lookup::new(target(), vec![at(50)], K, ALPHA);
        lookup.on_response(at(50), vec![at(1)]);
        lookup.on_response(at(7), vec![at(1)]);
        assert_eq!(lookup.candidate_count(), 1);
        assert!(lookup.closest(1).is_empty());
    }

    #[test]
    fn when_every_peer_fails_the_lookup_ends_empty() {
        let seeds = (1..=40).map(at).collect();
        let mut lookup = Lookup::new(target(), seeds, K, ALPHA);
        while !lookup.is_done() {
            let round = lookup.next_round();
            assert!(!round.is_empty());
            round.into_iter().for_each(|peer| lookup.on_failure(peer));
        }
        assert!(lookup.closest(K).is_empty());
        assert_eq!(lookup.stats().failures, 40);
    }

    #[test]
    fn liars_cannot_keep_a_lookup_going() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let seeds = (0..K).map(|_| Key(rng.random())).collect();
        let mut lookup = Lookup::new(Key(rng.random()), seeds, K, ALPHA);
        let mut batches = 0;
        while !lookup.is_done() {
            batches += 1;
            assert!(batches <= MAX_ROUNDS, "next_round must run dry");
            let round = lookup.next_round();
            for peer in round {
                let lies = (0..100).map(|_| Key(rng.random())).collect();
                lookup.on_response(peer, lies);
            }
            assert!(lookup.candidate_count() <= K * UNQUERIED_PER_WIDTH + MAX_ROUNDS * K);
        }
        assert!(lookup.stats().rounds <= MAX_ROUNDS);
        assert_eq!(lookup.closest(K).len(), K);
    }

    #[test]
    fn the_local_node_counts_only_when_included() {
        let seeds = vec![at(2), at(3), at(4)];
        let mut lookup =
            Lookup::new(target(), seeds.clone(), 3, ALPHA).with_local(at(1), LocalNode::Included);
        let round = answer_round(&mut lookup, |_| vec![at(1)]);
        assert_eq!(round, vec![at(2), at(3)]);
        assert!(lookup.is_done());
        assert_eq!(lookup.closest(3), vec![at(1), at(2), at(3)]);

        let mut lookup =
            Lookup::new(target(), seeds, 3, ALPHA).with_local(at(1), LocalNode::Excluded);
        answer_round(&mut lookup, |_| vec![at(1)]);
        assert_eq!(lookup.closest(3), vec![at(2), at(3), at(4)]);
    }

    #[test]
    fn the_target_itself_is_a_result() {
        let mut lookup = Lookup::new(target(), vec![at(5)], 2, ALPHA);
        answer_round(&mut lookup, |_| vec![target()]);
        answer_round(&mut lookup, |_| vec![at(5)]);
        assert_eq!(lookup.closest(2), vec![target(), at(5)]);
        assert!(lookup.is_done());
    }

    /// Run `lookup` against a network whose every node knows all others.
    fn run_complete(lookup: &mut Lookup, nodes: &[Key]) {
        let target = lookup.target();
        while !lookup.is_done() {
            let round = lookup.next_round();
            assert!(
                !round.is_empty(),
                "a settled round always has work or is done"
            );
            for peer in round {
                let others = nodes.iter().filter(|n| **n != peer).map(|n| (*n, *n));
                let answer = crate::keyspace::closest(&target, others, K);
                lookup.on_response(peer, answer);
            }
        }
    }

    proptest! {
        #[test]
        fn on_a_complete_network_the_lookup_finds_the_true_closest(
            nodes in proptest::collection::btree_set(any::<[u8; 32]>(), 1..150),
            target in any::<[u8; 32]>(),
            target_is_a_node in any::<bool>(),
            start in any::<prop::sample::Index>(),
            width in prop_oneof![Just(3usize), Just(K)],
        ) {
            let nodes: Vec<Key> = nodes.into_iter().map(Key).collect();
            let start = nodes[start.index(nodes.len())];
            let target = match target_is_a_node {
                true => nodes[nodes.len() / 2],
                false => Key(target),
            };
            let others = nodes.iter().filter(|n| **n != start).map(|n| (*n, *n));
            let seeds = crate::keyspace::closest(&target, others, K);
            let mut lookup = Lookup::new(target, seeds, width, ALPHA)
                .with_local(start, LocalNode::Included);
            run_complete(&mut lookup, &nodes);
            prop_assert_eq!(lookup.status(), LookupStatus::Converged);
            let truth = crate::keyspace::closest(&target, nodes.iter().map(|n| (*n, *n)), width);
            prop_assert_eq!(lookup.closest(width), truth);
            prop_assert!(lookup.stats().rounds <= 3);
        }
    }
}
