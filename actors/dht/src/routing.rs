//! The Kademlia routing table: the contacts this node knows, in 256
//! k-buckets by XOR distance from its own id. Pure: no I/O, no clocks.
//!
//! Bucket `i` holds contacts whose distance from the owner has `i`
//! leading zero bits, that is, contacts sharing exactly the first `i` bits
//! of the owner's id. A bucket keeps at most `k` contacts, least recently
//! seen first. A full bucket refuses newcomers: Kademlia prefers
//! long-lived contacts, and here the membership layer, not a ping, decides
//! who is dead and removes it (a Down node is evicted at once), which
//! frees the slot for the next contact heard of.
//!
//! The table is generic over its contact payload (an address, a member
//! key) so that the lookup and the simulation can use it bare.

use super::keyspace::Key;

/// Default bucket size: Kademlia's `k`.
pub const K: usize = 20;

/// Number of buckets: one per possible shared-prefix length.
const BUCKETS: usize = 256;

/// What [`RoutingTable::insert`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// The contact was new and its bucket had room.
    Inserted,
    /// The contact was known: its payload was replaced and it moved to the
    /// most-recently-seen end of its bucket.
    Updated,
    /// The contact was new but its bucket already holds `k` contacts; the
    /// old ones were kept.
    BucketFull,
    /// The key is the owner's own id, which is never a contact.
    IsOwner,
}

/// One k-bucket: contacts, least recently seen first.
#[derive(Debug, Clone)]
struct Bucket<T> {
    entries: Vec<(Key, T)>,
}

impl<T> Bucket<T> {
    fn new() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    fn position(&self, key: &Key) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }
}

/// A node's Kademlia routing table.
#[derive(Debug, Clone)]
pub struct RoutingTable<T> {
    owner: Key,
    k: usize,
    buckets: Vec<Bucket<T>>,
    len: usize,
}

impl<T> RoutingTable<T> {
    /// An empty table for the node `owner`, with buckets of `k` contacts
    /// (at least 1: a zero-sized bucket could never route).
    pub fn new(owner: Key, k: usize) -> Self {
        Self {
            owner,
            k: k.max(1),
            buckets: (0..BUCKETS).map(|_| Bucket::new()).collect(),
            len: 0,
        }
    }

    /// The id of the node this table belongs to.
    pub fn owner(&self) -> Key {
        self.owner
    }

    /// The bucket size.
    pub fn k(&self) -> usize {
        self.k
    }

    /// The bucket `key` belongs in, or `None` for the owner itself.
    pub fn bucket_index(&self, key: &Key) -> Option<usize> {
        let zeros = self.owner.distance(key).leading_zeros() as usize;
        (zeros < BUCKETS).then_some(zeros)
    }

    /// Record that `key` was heard from, with its current payload.
    pub fn insert(&mut self, key: Key, contact: T) -> InsertOutcome {
        let Some(index) = self.bucket_index(&key) else {
            return InsertOutcome::IsOwner;
        };
        let k = self.k;
        let bucket = &mut self.buckets[index];
        if let Some(at) = bucket.position(&key) {
            bucket.entries.remove(at);
            bucket.entries.push((key, contact));
            return InsertOutcome::Updated;
        }
        if bucket.entries.len() >= k {
            return InsertOutcome::BucketFull;
        }
        bucket.entries.push((key, contact));
        self.len += 1;
        InsertOutcome::Inserted
    }

    /// Forget `key` (a Down member), returning its payload if it was known.
    pub fn remove(&mut self, key: &Key) -> Option<T> {
        let index = self.bucket_index(key)?;
        let bucket = &mut self.buckets[index];
        let at = bucket.position(key)?;
        self.len -= 1;
        Some(bucket.entries.remove(at).1)
    }

    /// The payload known for `key`.
    pub fn get(&self, key: &Key) -> Option<&T> {
        let bucket = &self.buckets[self.bucket_index(key)?];
        bucket.position(key).map(|at| &bucket.entries[at].1)
    }

    /// Whether `key` is a known contact.
    pub fn contains(&self, key: &Key) -> bool {
        self.get(key).is_some()
    }

    /// Number of contacts.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no contact is known.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every contact, bucket by bucket (farthest bucket first), least
    /// recently seen first within a bucket.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &T)> {
        self.buckets
            .iter()
            .flat_map(|bucket| bucket.entries.iter().map(|(key, contact)| (key, contact)))
    }

    /// The contacts of bucket `index` (0..=255), least recently seen first.
    pub fn bucket(&self, index: usize) -> impl Iterator<Item = (&Key, &T)> {
        self.buckets
            .get(index)
            .into_iter()
            .flat_map(|bucket| bucket.entries.iter().map(|(key, contact)| (key, contact)))
    }

    /// Number of contacts in each bucket, by index (for tests and metrics).
    pub fn bucket_sizes(&self) -> Vec<usize> {
        self.buckets.iter().map(|b| b.entries.len()).collect()
    }

    /// Keep only the contacts for which `keep` is true (to resync with a
    /// membership view).
    pub fn retain(&mut self, mut keep: impl FnMut(&Key, &T) -> bool) {
        for bucket in &mut self.buckets {
            bucket.entries.retain(|(key, contact)| keep(key, contact));
        }
        self.len = self.buckets.iter().map(|b| b.entries.len()).sum();
    }
}

impl<T: Clone> RoutingTable<T> {
    /// The `n` known contacts XOR-closest to `target`, closest first. Exact
    /// over the whole table, yet it sorts only the buckets it returns
    /// from: whole buckets are ordered by distance from `target` without
    /// looking at their contents (see `buckets_by_distance`).
    pub fn closest(&self, target: &Key, n: usize) -> Vec<(Key, T)> {
        let mut out = Vec::with_capacity(n.min(self.len));
        for index in self.buckets_by_distance(target) {
            let room = n.saturating_sub(out.len());
            if room == 0 {
                break;
            }
            let mut entries: Vec<(Key, &(Key, T))> = self.buckets[index]
                .entries
                .iter()
                .map(|entry| (target.distance(&entry.0), entry))
                .collect();
            entries.sort_unstable_by_key(|(distance, _)| *distance);
            out.extend(entries.into_iter().take(room).map(|(_, e)| e.clone()));
        }
        out
    }
}

impl<T> RoutingTable<T> {
    /// Bucket indices in order of their contents' distance from `target`:
    /// every contact of a bucket is closer to `target` than every contact
    /// of the buckets after it.
    ///
    /// Why: with `d` the distance from the owner to the target, a contact
    /// in bucket `i` agrees with `d` on bits `0..i` of its own distance to
    /// the target and disagrees on bit `i`, while every contact of a bucket
    /// above `i` agrees on bit `i` too. So if bit `i` of `d` is 1, bucket
    /// `i` is closer than all buckets above it; if it is 0, farther. That
    /// gives: the buckets whose bit of `d` is 1, upwards, then those whose
    /// bit is 0, downwards.
    ///
    /// Buckets above the deepest non-empty one are skipped: they are empty
    /// and there are ~240 of them in any real table.
    fn buckets_by_distance(&self, target: &Key) -> impl Iterator<Item = usize> + '_ {
        let d = self.owner.distance(target);
        let used = self
            .buckets
            .iter()
            .rposition(|b| !b.entries.is_empty())
            .map_or(0, |deepest| deepest + 1);
        let bit_set = move |i: &usize| d.0[i / 8] & (0x80 >> (i % 8)) != 0;
        let nearer = (0..used).filter(move |i| bit_set(i));
        let farther = (0..used).rev().filter(move |i| !bit_set(i));
        nearer
            .chain(farther)
            .filter(|i| !self.buckets[*i].entries.is_empty())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// A key sharing exactly `prefix` leading bits with `owner` (so it
    /// lands in bucket `prefix`), with `tail` filling the bits below.
    fn key_in_bucket(owner: &Key, prefix: usize, tail: [u8; 32]) -> Key {
        let mut out = [0u8; 32];
        for bit in 0..256 {
            let (byte, mask) = (bit / 8, 0x80u8 >> (bit % 8));
            let source = match bit.cmp(&prefix) {
                std::cmp::Ordering::Less => owner.0[byte] & mask,
                std::cmp::Ordering::Equal => !owner.0[byte] & mask,
                std::cmp::Ordering::Greater => tail[byte] & mask,
            };
            out[byte] |= source;
        }
        Key(out)
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(Key, u32),
        Remove(Key),
    }

    /// Keys spread over a few buckets, near and far, with many collisions
    /// so that buckets fill up and removals hit known keys.
    fn op(owner: Key) -> impl Strategy<Value = Op> {
        let key = (
            prop_oneof![0usize..4, 250usize..256, Just(255usize)],
            any::<u8>(),
        )
            .prop_map(move |(prefix, seed)| key_in_bucket(&owner, prefix, [seed; 32]));
        prop_oneof![
            3 => (key.clone(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            1 => key.prop_map(Op::Remove),
            1 => Just(Op::Insert(owner, 0)),
        ]
    }

    fn scenario() -> impl Strategy<Value = (Key, usize, Vec<Op>)> {
        (any::<[u8; 32]>(), 1usize..5).prop_flat_map(|(owner, k)| {
            let owner = Key(owner);
            (
                Just(owner),
                Just(k),
                proptest::collection::vec(op(owner), 0..120),
            )
        })
    }

    fn check_invariants(table: &RoutingTable<u32>) -> Result<(), TestCaseError> {
        let mut seen = BTreeSet::new();
        for (index, size) in table.bucket_sizes().into_iter().enumerate() {
            prop_assert!(size <= table.k());
            for (key, _) in table.bucket(index) {
                let zeros = table.owner().distance(key).leading_zeros() as usize;
                prop_assert_eq!(zeros, index);
                prop_assert!(seen.insert(*key), "duplicate {:?}", key);
            }
        }
        prop_assert!(!seen.contains(&table.owner()));
        prop_assert_eq!(seen.len(), table.len());
        prop_assert_eq!(table.iter().count(), table.len());
        Ok(())
    }

    fn apply(table: &mut RoutingTable<u32>, op: &Op) -> Result<(), TestCaseError> {
        match op {
            Op::Insert(key, value) => {
                let known = table.contains(key);
                let index = table.bucket_index(key);
                let room = index.map(|i| table.bucket_sizes()[i] < table.k());
                let outcome = table.insert(*key, *value);
                let expected = match (index, known, room) {
                    (None, _, _) => InsertOutcome::IsOwner,
                    (Some(_), true, _) => InsertOutcome::Updated,
                    (Some(_), false, Some(true)) => InsertOutcome::Inserted,
                    (Some(_), false, _) => InsertOutcome::BucketFull,
                };
                prop_assert_eq!(outcome, expected);
                let stored = table.get(key).copied();
                match outcome {
                    InsertOutcome::Inserted | InsertOutcome::Updated => {
                        prop_assert_eq!(stored, Some(*value));
                        let last = table.bucket(index.unwrap()).last().map(|(k, _)| *k);
                        prop_assert_eq!(last, Some(*key));
                    }
                    InsertOutcome::BucketFull | InsertOutcome::IsOwner => {
                        prop_assert_eq!(stored, None)
                    }
                }
            }
            Op::Remove(key) => {
                let before = table.get(key).copied();
                prop_assert_eq!(table.remove(key), before);
                prop_assert!(!table.contains(key));
            }
        }
        Ok(())
    }

    proptest! {
        #[test]
        fn invariants_hold_after_any_sequence(
            (owner, k, ops) in scenario(),
            targets in proptest::collection::vec(any::<[u8; 32]>(), 1..4),
            n in 0usize..30,
        ) {
            let mut table = RoutingTable::new(owner, k);
            for op in &ops {
                apply(&mut table, op)?;
                check_invariants(&table)?;
            }
            let all: Vec<Key> = table.iter().map(|(key, _)| *key).collect();
            let near_owner = key_in_bucket(&owner, 254, [7; 32]);
            for target in targets.into_iter().map(Key).chain([owner, near_owner]) {
                let mut brute = all.clone();
                brute.sort_by(|a, b| target.cmp_distance(a, b));
                brute.truncate(n);
                let got: Vec<Key> = table.closest(&target, n).into_iter().map(|(k, _)| k).collect();
                prop_assert_eq!(got, brute);
            }
        }

        #[test]
        fn retain_keeps_exactly_the_chosen(
            (owner, k, ops) in scenario(),
            modulus in 1u32..4,
        ) {
            let mut table = RoutingTable::new(owner, k);
            for op in &ops {
                apply(&mut table, op)?;
            }
            let expected: BTreeSet<Key> = table
                .iter()
                .filter(|(_, v)| **v % modulus == 0)
                .map(|(key, _)| *key)
                .collect();
            table.retain(|_, v| v % modulus == 0);
            check_invariants(&table)?;
            let kept: BTreeSet<Key> = table.iter().map(|(key, _)| *key).collect();
            prop_assert_eq!(kept, expected);
        }
    }

    #[test]
    fn a_full_bucket_keeps_its_old_contacts_until_one_is_removed() {
        let owner = Key([0; 32]);
        let mut table = RoutingTable::new(owner, 2);
        let far = |seed| key_in_bucket(&owner, 0, [seed; 32]);
        assert_eq!(table.insert(far(1), 1), InsertOutcome::Inserted);
        assert_eq!(table.insert(far(2), 2), InsertOutcome::Inserted);
        assert_eq!(table.insert(far(3), 3), InsertOutcome::BucketFull);
        assert!(!table.contains(&far(3)));
        assert_eq!(table.remove(&far(1)), Some(1));
        assert_eq!(table.insert(far(3), 3), InsertOutcome::Inserted);
        assert_eq!(table.bucket_sizes()[0], 2);
    }

    #[test]
    fn an_update_moves_the_contact_to_the_recent_end() {
        let owner = Key([0; 32]);
        let mut table = RoutingTable::new(owner, K);
        let a = key_in_bucket(&owner, 3, [1; 32]);
        let b = key_in_bucket(&owner, 3, [2; 32]);
        table.insert(a, "old");
        table.insert(b, "b");
        assert_eq!(table.insert(a, "new"), InsertOutcome::Updated);
        let order: Vec<(Key, &str)> = table.bucket(3).map(|(k, v)| (*k, *v)).collect();
        assert_eq!(order, vec![(b, "b"), (a, "new")]);
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn the_owner_is_never_a_contact() {
        let owner = Key([9; 32]);
        let mut table = RoutingTable::new(owner, K);
        assert_eq!(table.insert(owner, ()), InsertOutcome::IsOwner);
        assert!(table.is_empty());
        assert_eq!(table.remove(&owner), None);
        assert_eq!(table.bucket_index(&owner), None);
    }
}
