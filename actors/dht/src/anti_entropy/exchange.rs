//! One exchange between two replicas of a partition, as requests (from the
//! initiator) and answers (from the responder) with no I/O:
//!
//! 1. `Compare`: the initiator's (entry count, root). Equal → `Same`: one
//!    round trip for identical replicas. Else the responder answers with
//!    its tree nodes `step` levels below the root.
//! 2. `Descend`: for each node that differs, its descendants `step` levels
//!    further down (`step` = 2 costs the same bytes as a binary descent,
//!    in half the round trips), until the differing buckets are known.
//! 3. `Reconcile`: the initiator's 8-byte entry prints for those buckets;
//!    the responder answers with its entries whose prints the initiator
//!    lacks, and the prints of the initiator's entries it lacks.
//!
//! The [`Outcome`] says which entries to pull and which to push; moving
//! the manifests (and chunks) is the caller's job, and last writer wins
//! decides on both sides, tombstones included, so a repair never brings a
//! deleted file back. The responder answers each request from its current
//! digests: writes during an exchange are fine — what one exchange misses,
//! the next finds.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::buckets::{BucketDigests, Entry, Print};
use super::tree::DigestTree;

/// Version of the exchange messages.
pub const AE_WIRE_VERSION: u16 = 1;
/// Most levels one `Descend` may cover.
pub const MAX_STEP: u8 = 8;
/// Most buckets one `Reconcile` may carry.
pub const MAX_RECONCILE_BUCKETS: usize = 256;
/// Most prints one `Reconcile` carries (128 KiB).
pub const MAX_RECONCILE_PRINTS: usize = 16_384;
/// Most entries one `Delta` carries (~600 KiB: under the 1 MiB message cap).
pub const MAX_DELTA_ENTRIES: usize = 8_192;

/// A request from the initiator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AeRequest {
    /// The initiator's summary; answered `Same` or with the first nodes.
    Compare {
        /// Partition.
        partition: u16,
        /// Bucket count (both sides must use the same).
        buckets: u32,
        /// Entries the initiator holds.
        entries: u64,
        /// Its tree root.
        root: [u8; 32],
        /// Levels per `Descend`.
        step: u8,
    },
    /// The nodes `down` levels below each of `parents` of `level`.
    Descend {
        /// Partition.
        partition: u16,
        /// Level of the parents.
        level: u8,
        /// How far below them.
        down: u8,
        /// Parent indices within `level`.
        parents: Vec<u32>,
    },
    /// The initiator's prints for buckets that differ.
    Reconcile {
        /// Partition.
        partition: u16,
        /// Buckets and prints.
        buckets: Vec<BucketPrints>,
    },
}

/// A bucket's entry prints, sorted, 8 bytes each.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketPrints {
    /// Bucket.
    pub bucket: u32,
    /// Concatenated prints.
    #[serde(with = "serde_bytes")]
    pub prints: Vec<u8>,
}

/// The responder's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AeAnswer {
    /// Same entry count and root: nothing to do.
    Same,
    /// For each parent asked, in order, its descendants: 32 bytes each.
    Nodes {
        /// Level of these nodes.
        level: u8,
        /// Concatenated hashes.
        #[serde(with = "serde_bytes")]
        hashes: Vec<u8>,
    },
    /// What a `Reconcile` found, for its first `handled` buckets (the rest
    /// did not fit one answer: ask again).
    Delta {
        /// Buckets answered, from the first.
        handled: u32,
        /// The responder's entries whose prints the initiator lacks.
        theirs: Vec<Entry>,
        /// Prints of the initiator's entries the responder lacks.
        #[serde(with = "serde_bytes")]
        wanted: Vec<u8>,
    },
    /// The request cannot be answered (another bucket count, out of range).
    Refused(String),
}

/// A replica's view of one partition at the time of a message.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The bucket digests.
    pub digests: BucketDigests,
    /// The tree over them.
    pub tree: DigestTree,
}

impl Snapshot {
    /// The snapshot of `digests`.
    pub fn of(digests: BucketDigests) -> Self {
        let tree = DigestTree::build(&digests);
        Self { digests, tree }
    }
}

/// A replica's entries, by bucket.
pub trait BucketSource {
    /// The entries of `bucket`.
    fn entries(&self, bucket: u32) -> Vec<Entry>;
}

fn sorted_prints(entries: &[Entry]) -> Vec<Print> {
    let mut prints: Vec<Print> = entries.iter().map(Entry::print).collect();
    prints.sort_unstable();
    prints
}

fn split_prints(bytes: &[u8]) -> BTreeSet<Print> {
    bytes
        .chunks_exact(8)
        .filter_map(|c| <Print>::try_from(c).ok())
        .collect()
}

/// Answer `request` from `own` (the responder's side).
pub fn answer(own: &Snapshot, source: &dyn BucketSource, request: &AeRequest) -> AeAnswer {
    match request {
        AeRequest::Compare {
            buckets,
            entries,
            root,
            step,
            ..
        } => {
            if *buckets != own.digests.buckets() {
                return AeAnswer::Refused(format!(
                    "bucket count {buckets} differs from {}",
                    own.digests.buckets()
                ));
            }
            if *entries == own.digests.entries() && *root == own.tree.root() {
                return AeAnswer::Same;
            }
            nodes(own, 0, (*step).clamp(1, MAX_STEP), &[0])
        }
        AeRequest::Descend {
            level,
            down,
            parents,
            ..
        } => nodes(own, *level, *down, parents),
        AeRequest::Reconcile { buckets, .. } => reconcile(own, source, buckets),
    }
}

fn nodes(own: &Snapshot, level: u8, down: u8, parents: &[u32]) -> AeAnswer {
    let depth = own.tree.depth();
    if down == 0 || down > MAX_STEP || level >= depth {
        return AeAnswer::Refused(format!("no level {level} + {down} below the root"));
    }
    let down = down.min(depth - level);
    let width = 1u64 << level;
    if parents.len() as u64 > width || parents.iter().any(|&p| u64::from(p) >= width) {
        return AeAnswer::Refused(format!("parents out of range for level {level}"));
    }
    let mut hashes = Vec::with_capacity(parents.len() * (32 << down));
    for &p in parents {
        for node in own.tree.descendants(level, p, down) {
            hashes.extend_from_slice(node);
        }
    }
    AeAnswer::Nodes {
        level: level + down,
        hashes,
    }
}

fn reconcile(own: &Snapshot, source: &dyn BucketSource, buckets: &[BucketPrints]) -> AeAnswer {
    let prints: usize = buckets.iter().map(|b| b.prints.len() / 8).sum();
    if buckets.len() > MAX_RECONCILE_BUCKETS
        || prints > MAX_RECONCILE_PRINTS
        || buckets.iter().any(|b| b.bucket >= own.digests.buckets())
    {
        return AeAnswer::Refused("reconcile: too many buckets or prints, or out of range".into());
    }
    let mut theirs = Vec::new();
    let mut wanted = Vec::new();
    let mut handled = 0;
    for b in buckets {
        let initiator = split_prints(&b.prints);
        let mine = source.entries(b.bucket);
        let missing: Vec<Entry> = mine
            .iter()
            .filter(|e| !initiator.contains(&e.print()))
            .copied()
            .collect();
        if handled > 0 && theirs.len() + missing.len() > MAX_DELTA_ENTRIES {
            break;
        }
        let my_prints: BTreeSet<Print> = mine.iter().map(Entry::print).collect();
        theirs.extend(missing);
        for p in initiator.difference(&my_prints) {
            wanted.extend_from_slice(p);
        }
        handled += 1;
    }
    AeAnswer::Delta {
        handled,
        theirs,
        wanted,
    }
}

/// Why an exchange stopped early.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ExchangeError {
    /// The responder refused a request.
    #[error("refused: {0}")]
    Refused(String),
    /// An answer that does not fit the request.
    #[error("unexpected answer: {0}")]
    Unexpected(String),
}

/// What an exchange found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The responder's entries that are newer than (or missing on) the
    /// initiator: fetch their manifests.
    pub pull: Vec<Entry>,
    /// The initiator's entries that are newer than (or missing on) the
    /// responder: send their manifests.
    pub push: Vec<Entry>,
    /// Buckets whose digests differed.
    pub differing_buckets: usize,
    /// Requests sent.
    pub round_trips: u32,
    /// Differing buckets left for the next exchange (the entry cap hit).
    pub deferred_buckets: usize,
    /// Buckets whose digests differed but whose entries matched: a write
    /// landed during the exchange, or (about 3·10⁻¹⁶ per bucket) two
    /// entries share a print.
    pub unresolved_buckets: usize,
}

/// What the initiator does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send this request and hand its answer to [`Initiator::on_answer`].
    Ask(AeRequest),
    /// Finished.
    Done(Outcome),
}

enum State {
    Descending {
        level: u8,
        down: u8,
        parents: Vec<u32>,
    },
    Reconciling(Batches),
}

/// The reconcile phase: buckets still to ask about, and the last batch.
struct Batches {
    pending: Vec<u32>,
    sent: Vec<u32>,
    mine: BTreeMap<[u8; 32], Entry>,
    sent_prints: BTreeMap<Print, Entry>,
}

/// The initiator's side of one exchange.
pub struct Initiator {
    partition: u16,
    own: Snapshot,
    step: u8,
    max_entries: usize,
    state: State,
    outcome: Outcome,
}

impl Initiator {
    /// An exchange of `partition` from `own`, descending `step` levels per
    /// round trip, stopping after about `max_entries` entries to repair;
    /// the first request to send.
    pub fn start(partition: u16, own: Snapshot, step: u8, max_entries: usize) -> (Self, AeRequest) {
        let step = step.clamp(1, MAX_STEP);
        let request = AeRequest::Compare {
            partition,
            buckets: own.digests.buckets(),
            entries: own.digests.entries(),
            root: own.tree.root(),
            step,
        };
        let down = step.min(own.tree.depth());
        let initiator = Self {
            partition,
            own,
            step,
            max_entries: max_entries.max(1),
            state: State::Descending {
                level: 0,
                down,
                parents: vec![0],
            },
            outcome: Outcome {
                round_trips: 1,
                ..Outcome::default()
            },
        };
        (initiator, request)
    }

    /// The buckets whose entries [`on_answer`](Self::on_answer) may read
    /// from its source when given `answer`, so that a caller whose entries
    /// live behind I/O can fetch them first: the differing buckets once
    /// the descent reaches them, the buckets not yet reconciled after.
    pub fn reads(&self, answer: &AeAnswer) -> Vec<u32> {
        match (&self.state, answer) {
            (
                State::Descending {
                    level,
                    down,
                    parents,
                },
                AeAnswer::Nodes { level: at, hashes },
            ) if *at == self.own.tree.depth() => self
                .differing(*level, *down, parents, *at, hashes)
                .unwrap_or_default(),
            (State::Reconciling(b), AeAnswer::Delta { .. }) => {
                b.pending.iter().chain(b.sent.iter()).copied().collect()
            }
            _ => Vec::new(),
        }
    }

    /// The nodes of level `at` (children of `parents`, `down` levels below
    /// `level`) whose hashes differ from ours.
    fn differing(
        &self,
        level: u8,
        down: u8,
        parents: &[u32],
        at: u8,
        hashes: &[u8],
    ) -> Result<Vec<u32>, ExchangeError> {
        let width = 1usize << down;
        if at != level + down || hashes.len() != parents.len() * width * 32 {
            return Err(ExchangeError::Unexpected(format!(
                "{} bytes of level {at} for {} parents of level {level}",
                hashes.len(),
                parents.len()
            )));
        }
        let mut differing = Vec::new();
        for (i, theirs) in hashes.chunks_exact(32).enumerate() {
            let index = (parents[i / width] as usize * width + i % width) as u32;
            if self.own.tree.node(at, index).as_ref().map(|h| &h[..]) != Some(theirs) {
                differing.push(index);
            }
        }
        Ok(differing)
    }

    /// Take the answer to the last request.
    pub fn on_answer(
        &mut self,
        answer: AeAnswer,
        source: &dyn BucketSource,
    ) -> Result<Next, ExchangeError> {
        let reconciling = matches!(self.state, State::Reconciling(_));
        let comparing = matches!(self.state, State::Descending { level: 0, .. });
        let next = match answer {
            AeAnswer::Refused(why) => return Err(ExchangeError::Refused(why)),
            AeAnswer::Same if comparing => None,
            AeAnswer::Nodes { level, hashes } if !reconciling => {
                self.descended(level, &hashes, source)?
            }
            AeAnswer::Delta {
                handled,
                theirs,
                wanted,
            } if reconciling => {
                self.reconciled(handled, theirs, &wanted)?;
                self.next_reconcile(source)
            }
            other => return Err(ExchangeError::Unexpected(format!("{other:?}"))),
        };
        Ok(match next {
            Some(request) => {
                self.outcome.round_trips += 1;
                Next::Ask(request)
            }
            None => Next::Done(std::mem::take(&mut self.outcome)),
        })
    }

    fn descended(
        &mut self,
        at: u8,
        hashes: &[u8],
        source: &dyn BucketSource,
    ) -> Result<Option<AeRequest>, ExchangeError> {
        let State::Descending {
            level,
            down,
            parents,
        } = &self.state
        else {
            return Err(ExchangeError::Unexpected("nodes while reconciling".into()));
        };
        let mut differing = self.differing(*level, *down, parents, at, hashes)?;
        let depth = self.own.tree.depth();
        if at < depth && !differing.is_empty() {
            let down = self.step.min(depth - at);
            self.state = State::Descending {
                level: at,
                down,
                parents: differing.clone(),
            };
            return Ok(Some(AeRequest::Descend {
                partition: self.partition,
                level: at,
                down,
                parents: differing,
            }));
        }
        self.outcome.differing_buckets = differing.len();
        differing.reverse();
        self.state = State::Reconciling(Batches {
            pending: differing,
            sent: Vec::new(),
            mine: BTreeMap::new(),
            sent_prints: BTreeMap::new(),
        });
        Ok(self.next_reconcile(source))
    }

    fn next_reconcile(&mut self, source: &dyn BucketSource) -> Option<AeRequest> {
        let State::Reconciling(Batches {
            pending,
            sent,
            mine,
            sent_prints,
        }) = &mut self.state
        else {
            return None;
        };
        let found = self.outcome.pull.len() + self.outcome.push.len();
        if found >= self.max_entries {
            self.outcome.deferred_buckets = pending.len();
            return None;
        }
        mine.clear();
        sent_prints.clear();
        sent.clear();
        let mut buckets = Vec::new();
        let mut prints_sent = 0;
        // Every differing bucket holds at least one difference: ask for
        // no more buckets than there is room for under the cap.
        let room = MAX_RECONCILE_BUCKETS.min(self.max_entries - found);
        while buckets.len() < room {
            let Some(&bucket) = pending.last() else { break };
            let own = source.entries(bucket);
            if !buckets.is_empty() && prints_sent + own.len() > MAX_RECONCILE_PRINTS {
                break;
            }
            pending.pop();
            sent.push(bucket);
            prints_sent += own.len();
            let prints = sorted_prints(&own);
            for e in own {
                mine.insert(e.key, e);
                sent_prints.insert(e.print(), e);
            }
            buckets.push(BucketPrints {
                bucket,
                prints: prints.concat(),
            });
        }
        if buckets.is_empty() {
            return None;
        }
        Some(AeRequest::Reconcile {
            partition: self.partition,
            buckets,
        })
    }

    fn reconciled(
        &mut self,
        handled: u32,
        theirs: Vec<Entry>,
        wanted: &[u8],
    ) -> Result<(), ExchangeError> {
        let State::Reconciling(batches) = &mut self.state else {
            return Ok(());
        };
        let Batches {
            pending,
            sent,
            mine,
            sent_prints,
        } = batches;
        let handled = handled as usize;
        if handled == 0 || handled > sent.len() {
            return Err(ExchangeError::Unexpected(format!(
                "{handled} of {} buckets answered",
                sent.len()
            )));
        }
        // Buckets the answer had no room for go back in the queue.
        pending.extend(sent.drain(handled..).rev());
        let mut touched: BTreeSet<u32> =
            theirs.iter().map(|t| self.own.digests.bucket(t)).collect();
        for print in split_prints(wanted) {
            if let Some(m) = sent_prints.get(&print) {
                touched.insert(self.own.digests.bucket(m));
            }
        }
        self.outcome.unresolved_buckets += sent.iter().filter(|b| !touched.contains(b)).count();
        let rank = |e: &Entry| (e.version, e.state);
        let sent_prints = &*sent_prints;
        let mut their_keys: BTreeMap<[u8; 32], Entry> = BTreeMap::new();
        for t in theirs {
            their_keys.insert(t.key, t);
            if mine.get(&t.key).is_none_or(|m| rank(m) < rank(&t)) {
                self.outcome.pull.push(t);
            }
        }
        for print in split_prints(wanted) {
            let Some(m) = sent_prints.get(&print) else {
                continue;
            };
            if their_keys.get(&m.key).is_none_or(|t| rank(t) < rank(m)) {
                self.outcome.push.push(*m);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::anti_entropy::buckets::{EntryState, Version};
    use hypha_core::codec;

    /// A replica of one partition in memory.
    #[derive(Clone)]
    struct Replica {
        entries: BTreeMap<[u8; 32], Entry>,
        by_bucket: HashMap<u32, Vec<Entry>>,
        digests: BucketDigests,
    }

    impl Replica {
        fn new(buckets: u32, entries: impl IntoIterator<Item = Entry>) -> Self {
            let mut r = Self {
                entries: BTreeMap::new(),
                by_bucket: HashMap::new(),
                digests: BucketDigests::new(buckets).unwrap(),
            };
            for e in entries {
                r.apply(e);
            }
            r.index();
            r
        }

        /// Last writer wins, as a manifest write does.
        fn apply(&mut self, e: Entry) {
            let old = self.entries.get(&e.key).copied();
            if old.is_some_and(|o| (o.version, o.state) >= (e.version, e.state)) {
                return;
            }
            self.entries.insert(e.key, e);
            self.digests.replace(old.as_ref(), &e);
        }

        fn index(&mut self) {
            self.by_bucket.clear();
            for e in self.entries.values() {
                let b = self.digests.bucket(e);
                self.by_bucket.entry(b).or_default().push(*e);
            }
        }

        fn snapshot(&self) -> Snapshot {
            Snapshot::of(self.digests.clone())
        }
    }

    impl BucketSource for Replica {
        fn entries(&self, bucket: u32) -> Vec<Entry> {
            self.by_bucket.get(&bucket).cloned().unwrap_or_default()
        }
    }

    /// A source that notes which buckets were read.
    struct Recording<'a> {
        replica: &'a Replica,
        read: std::cell::RefCell<BTreeSet<u32>>,
    }

    impl BucketSource for Recording<'_> {
        fn entries(&self, bucket: u32) -> Vec<Entry> {
            self.read.borrow_mut().insert(bucket);
            self.replica.entries(bucket)
        }
    }

    fn wire_len<T: Serialize>(message: &T) -> usize {
        2 + codec::encode(message).unwrap().len()
    }

    /// One exchange from `a` to `b`, repairs applied both ways; the
    /// outcome and the protocol bytes (requests and answers, not the
    /// manifests moved).
    fn exchange(a: &mut Replica, b: &mut Replica, step: u8, max: usize) -> (Outcome, usize) {
        let theirs = b.snapshot();
        let (mut initiator, mut request) = Initiator::start(9, a.snapshot(), step, max);
        let mut bytes = 0;
        let outcome = loop {
            let reply = answer(&theirs, &*b, &request);
            bytes += wire_len(&request) + wire_len(&reply);
            // What the answer makes the initiator read was announced by
            // `reads` (callers fetch those buckets from disk first).
            let announced: BTreeSet<u32> = initiator.reads(&reply).into_iter().collect();
            let source = Recording {
                replica: &*a,
                read: std::cell::RefCell::new(BTreeSet::new()),
            };
            let next = initiator.on_answer(reply, &source).unwrap();
            assert!(source.read.borrow().is_subset(&announced));
            match next {
                Next::Ask(next) => request = next,
                Next::Done(outcome) => break outcome,
            }
        };
        for e in &outcome.pull {
            a.apply(*e);
        }
        for e in &outcome.push {
            b.apply(*e);
        }
        a.index();
        b.index();
        (outcome, bytes)
    }

    fn entry(seed: u64, modified: u64, state: EntryState) -> Entry {
        Entry {
            key: *blake3::hash(&seed.to_be_bytes()).as_bytes(),
            version: Version {
                modified,
                writer: [(seed % 7) as u8; 32],
            },
            state,
        }
    }

    /// How replica B differs from A for one key.
    #[derive(Debug, Clone, Copy)]
    enum Diff {
        OnlyA,
        OnlyB,
        NewerA,
        NewerB,
        DeletedA,
        DeletedB,
    }

    fn diverged(n: u64, diffs: &[(u64, Diff)], buckets: u32) -> (Replica, Replica) {
        let base: Vec<Entry> = (0..n).map(|s| entry(s, 10, EntryState::Live)).collect();
        let (mut a, mut b) = (base.clone(), base);
        for &(seed, diff) in diffs {
            let seed = n + seed;
            let live = |m| entry(seed, m, EntryState::Live);
            let gone = |m| entry(seed, m, EntryState::Tombstone);
            let (on_a, on_b) = match diff {
                Diff::OnlyA => (Some(live(10)), None),
                Diff::OnlyB => (None, Some(live(10))),
                Diff::NewerA => (Some(live(20)), Some(live(10))),
                Diff::NewerB => (Some(live(10)), Some(live(20))),
                Diff::DeletedA => (Some(gone(20)), Some(live(10))),
                Diff::DeletedB => (Some(live(10)), Some(gone(20))),
            };
            a.extend(on_a);
            b.extend(on_b);
        }
        (Replica::new(buckets, a), Replica::new(buckets, b))
    }

    fn any_diff() -> impl Strategy<Value = Diff> {
        prop_oneof![
            Just(Diff::OnlyA),
            Just(Diff::OnlyB),
            Just(Diff::NewerA),
            Just(Diff::NewerB),
            Just(Diff::DeletedA),
            Just(Diff::DeletedB),
        ]
    }

    #[test]
    fn identical_replicas_cost_one_round_trip() {
        let (mut a, mut b) = diverged(500, &[], 1024);
        let (outcome, bytes) = exchange(&mut a, &mut b, 2, usize::MAX);
        assert_eq!(outcome.round_trips, 1);
        assert!(outcome.pull.is_empty() && outcome.push.is_empty());
        assert!(bytes < 64, "{bytes} bytes");
    }

    #[test]
    fn a_newer_tombstone_wins_and_nothing_is_resurrected() {
        let (mut a, mut b) = diverged(50, &[(0, Diff::DeletedA), (1, Diff::DeletedB)], 64);
        exchange(&mut a, &mut b, 2, usize::MAX);
        for r in [&a, &b] {
            let gone = r
                .entries
                .values()
                .filter(|e| e.state == EntryState::Tombstone)
                .count();
            assert_eq!(gone, 2);
        }
    }

    #[test]
    fn a_capped_exchange_defers_and_the_next_one_finishes() {
        let diffs: Vec<(u64, Diff)> = (0..300).map(|i| (i, Diff::OnlyA)).collect();
        let (mut a, mut b) = diverged(1_000, &diffs, 256);
        let (first, _) = exchange(&mut a, &mut b, 2, 50);
        assert!(first.deferred_buckets > 0, "{}", first.differing_buckets);
        assert!(first.push.len() < 300);
        let mut rounds = 1;
        while a.digests != b.digests {
            exchange(&mut a, &mut b, 2, 50);
            rounds += 1;
            assert!(rounds < 20, "does not converge");
        }
        assert_eq!(a.entries, b.entries);
    }

    #[test]
    fn a_new_replica_is_filled_within_the_answer_cap() {
        let mut full = Replica::new(1024, (0..30_000).map(|s| entry(s, 1, EntryState::Live)));
        let mut empty = Replica::new(1024, []);
        let (outcome, _) = exchange(&mut empty, &mut full, 2, usize::MAX);
        assert_eq!(outcome.pull.len(), 30_000);
        assert!(outcome.round_trips > 6, "several Delta answers");
        assert_eq!(empty.digests, full.digests);
    }

    #[test]
    fn malformed_requests_are_refused_not_panicked_on() {
        let r = Replica::new(64, (0..100).map(|s| entry(s, 1, EntryState::Live)));
        let snap = r.snapshot();
        let bad = [
            AeRequest::Descend {
                partition: 0,
                level: 9,
                down: 1,
                parents: vec![0],
            },
            AeRequest::Descend {
                partition: 0,
                level: 2,
                down: 0,
                parents: vec![0],
            },
            AeRequest::Descend {
                partition: 0,
                level: 2,
                down: 2,
                parents: vec![4],
            },
            AeRequest::Reconcile {
                partition: 0,
                buckets: vec![BucketPrints {
                    bucket: 64,
                    prints: vec![],
                }],
            },
            AeRequest::Compare {
                partition: 0,
                buckets: 32,
                entries: 0,
                root: [0; 32],
                step: 2,
            },
        ];
        for request in bad {
            assert!(
                matches!(answer(&snap, &r, &request), AeAnswer::Refused(_)),
                "{request:?}"
            );
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// After one exchange both replicas hold the same entries (the
        /// newest version of every key) and the same digests.
        #[test]
        fn one_exchange_makes_replicas_equal(
            n in 0u64..600,
            diffs in proptest::collection::vec((0u64..400, any_diff()), 0..120),
            step in 1u8..5,
        ) {
            let mut seen = BTreeSet::new();
            let diffs: Vec<_> = diffs.into_iter().filter(|(s, _)| seen.insert(*s)).collect();
            let (mut a, mut b) = diverged(n, &diffs, 64);
            let (outcome, _) = exchange(&mut a, &mut b, step, usize::MAX);
            prop_assert_eq!(outcome.deferred_buckets, 0);
            prop_assert_eq!(&a.entries, &b.entries);
            prop_assert_eq!(&a.digests, &b.digests);
            prop_assert_eq!(a.snapshot().tree.root(), b.snapshot().tree.root());
            prop_assert_eq!(a.entries.len() as u64, n + diffs.len() as u64);
        }
    }

    /// The cost bound of issue 5: for n = 100,000 entries and d
    /// differences, protocol bytes ≤ 3 × 2·32·d·log2(n/d).
    #[test]
    fn exchange_bytes_stay_within_three_times_the_merkle_bound() {
        let n = 100_000u64;
        for d in [1u64, 100, 1_000] {
            let diffs: Vec<(u64, Diff)> = (0..d)
                .map(|i| {
                    (
                        i,
                        if i % 2 == 0 {
                            Diff::OnlyA
                        } else {
                            Diff::NewerB
                        },
                    )
                })
                .collect();
            // `diverged` adds the d keys beside n - d shared ones.
            let (mut a, mut b) = diverged(n - d, &diffs, 1024);
            let (outcome, bytes) = exchange(&mut a, &mut b, 2, usize::MAX);
            let bound = 2.0 * 32.0 * d as f64 * (n as f64 / d as f64).log2();
            let ratio = bytes as f64 / bound;
            println!(
                "n={n} d={d}: {bytes} bytes in {} round trips, {} buckets differ; \
                 bound 2·32·d·log2(n/d) = {bound:.0}; ratio {ratio:.2} (limit 3)",
                outcome.round_trips, outcome.differing_buckets
            );
            assert_eq!(a.digests, b.digests);
            assert!(ratio <= 3.0, "d={d}: ratio {ratio:.2}");
        }
    }
}
