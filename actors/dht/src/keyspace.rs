//! The DHT's keyspace: 256-bit BLAKE3 keys, the XOR metric, fixed
//! partitions (the top `bits` of a key) and replica placement (the R
//! members XOR-closest to a partition's id). Pure: no I/O, no clocks.
//!
//! Partitions are fixed so that every replica of a partition holds the
//! same key set, whatever joins or leaves: that is what lets anti-entropy
//! compare replicas with Merkle trees (a Kademlia responsibility range
//! would shift on every membership change).

use std::cmp::Ordering;
use std::fmt;

/// Length of a key in bytes.
pub const KEY_BYTES: usize = 32;
/// Largest supported partition bit count (partitions fit a `u16`).
pub const MAX_PARTITION_BITS: u8 = 16;

/// A point in the 256-bit keyspace: a node id, a file name's hash, a
/// chunk hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Key(pub [u8; KEY_BYTES]);

impl Key {
    /// BLAKE3 of `bytes`.
    pub fn hash(bytes: &[u8]) -> Self {
        Self(*blake3::hash(bytes).as_bytes())
    }

    /// XOR distance to `other`, as a big-endian 256-bit number.
    pub fn distance(&self, other: &Key) -> Key {
        let mut out = [0u8; KEY_BYTES];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = self.0[i] ^ other.0[i];
        }
        Key(out)
    }

    /// Which of `a` and `b` is closer to `self` (XOR metric).
    pub fn cmp_distance(&self, a: &Key, b: &Key) -> Ordering {
        self.distance(a).cmp(&self.distance(b))
    }

    /// Number of leading zero bits (256 for the zero key).
    pub fn leading_zeros(&self) -> u32 {
        let mut zeros = 0;
        for byte in self.0 {
            if byte == 0 {
                zeros += 8;
            } else {
                return zeros + byte.leading_zeros();
            }
        }
        zeros
    }

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse 64 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; KEY_BYTES];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", hex::encode(&self.0[..4]))
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// How the keyspace is cut: the top `bits` of a key name its partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partitioning {
    bits: u8,
}

impl Partitioning {
    /// `bits` in 1..=16 (2 to 65,536 partitions).
    pub fn new(bits: u8) -> Option<Self> {
        (1..=MAX_PARTITION_BITS)
            .contains(&bits)
            .then_some(Self { bits })
    }

    /// Bits used.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Number of partitions.
    pub fn count(&self) -> u32 {
        1u32 << self.bits
    }

    /// The partition holding `key`.
    pub fn partition_of(&self, key: &Key) -> Partition {
        let top = u16::from_be_bytes([key.0[0], key.0[1]]);
        Partition(top >> (16 - u32::from(self.bits)))
    }

    /// The partition's id: its number in the top bits, zeros below. Its
    /// replica set is the members closest to this point.
    pub fn partition_id(&self, partition: Partition) -> Key {
        let top = (u32::from(partition.0) << (16 - u32::from(self.bits))) as u16;
        let mut out = [0u8; KEY_BYTES];
        out[..2].copy_from_slice(&top.to_be_bytes());
        Key(out)
    }

    /// Whether `partition` exists under this partitioning.
    pub fn contains(&self, partition: Partition) -> bool {
        u32::from(partition.0) < self.count()
    }
}

/// A partition number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Partition(pub u16);

impl Partition {
    /// Big-endian bytes: the prefix of every storage key in the partition.
    pub fn to_be_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }
}

/// The `r` candidates XOR-closest to `target`, closest first. Ties (equal
/// keys) keep a stable order by the candidates' own ordering.
pub fn closest<T: Clone + Ord>(
    target: &Key,
    candidates: impl IntoIterator<Item = (Key, T)>,
    r: usize,
) -> Vec<T> {
    let mut all: Vec<(Key, T)> = candidates
        .into_iter()
        .map(|(key, item)| (target.distance(&key), item))
        .collect();
    all.sort();
    all.into_iter().take(r).map(|(_, item)| item).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    proptest! {
        #[test]
        fn xor_is_a_metric(a in any::<[u8; 32]>(), b in any::<[u8; 32]>(), c in any::<[u8; 32]>()) {
            let (a, b, c) = (key(a), key(b), key(c));
            prop_assert_eq!(a.distance(&a), Key::default());
            prop_assert_eq!(a.distance(&b), b.distance(&a));
            // XOR satisfies the triangle inequality: d(a,c) <= d(a,b) ^ d(b,c) <= d(a,b) + d(b,c);
            // the unidirectional property: distinct keys are at distinct distances.
            if b != c {
                prop_assert_ne!(a.distance(&b), a.distance(&c));
            }
        }

        #[test]
        fn a_key_lies_in_the_partition_of_its_id(k in any::<[u8; 32]>(), bits in 1u8..=16) {
            let p = Partitioning::new(bits).unwrap();
            let k = key(k);
            let part = p.partition_of(&k);
            prop_assert!(p.contains(part));
            let id = p.partition_id(part);
            prop_assert_eq!(p.partition_of(&id), part);
            // Everything in the partition shares the id's top bits.
            prop_assert!(k.distance(&id).leading_zeros() >= u32::from(bits));
        }

        #[test]
        fn closest_returns_the_true_nearest(
            target in any::<[u8; 32]>(),
            nodes in proptest::collection::btree_set(any::<[u8; 32]>(), 0..40),
            r in 1usize..6,
        ) {
            let target = key(target);
            let got = closest(&target, nodes.iter().map(|n| (key(*n), key(*n))), r);
            let mut brute: Vec<Key> = nodes.iter().map(|n| key(*n)).collect();
            brute.sort_by(|a, b| target.cmp_distance(a, b));
            brute.truncate(r);
            prop_assert_eq!(got, brute);
        }
    }

    #[test]
    fn partitions_cover_the_space_in_order() {
        let p = Partitioning::new(10).unwrap();
        assert_eq!(p.count(), 1024);
        assert_eq!(p.partition_of(&Key([0xff; 32])), Partition(1023));
        assert_eq!(p.partition_of(&Key::default()), Partition(0));
        assert_eq!(p.partition_id(Partition(1)).0[..2], [0x00, 0x40]);
        assert!(Partitioning::new(0).is_none());
        assert!(Partitioning::new(17).is_none());
    }
}
