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

/// Most name prefixes that can be pinned to zones.
pub const MAX_PINS: usize = 8;
/// Longest pinned prefix, in bytes.
pub const MAX_PIN_PREFIX_BYTES: usize = 64;

/// A pinned name prefix, kept inline so that [`Partitioning`] stays
/// `Copy` (it is passed by value all over the DHT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PinPrefix {
    len: u8,
    bytes: [u8; MAX_PIN_PREFIX_BYTES],
}

impl PinPrefix {
    const EMPTY: Self = Self {
        len: 0,
        bytes: [0; MAX_PIN_PREFIX_BYTES],
    };

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

/// How the keyspace is cut: the top `bits` of a key name its *base*
/// partition. Each pinned prefix (docs/dht.md, "Zones") adds a *class*
/// of as many partitions again: a file whose name starts with pin `i`
/// lives in partition `base + (i + 1) × 2^bits`, which has the base
/// partition's id (so the same XOR neighbourhood) but its own replica set
/// drawn from the pin's zones, its own digests and its own store keys.
/// Pinned files therefore never share a partition — nor an anti-entropy
/// exchange — with files that may live anywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partitioning {
    bits: u8,
    pins: u8,
    prefixes: [PinPrefix; MAX_PINS],
}

impl Partitioning {
    /// `bits` in 1..=16 (2 to 65,536 partitions), nothing pinned.
    pub fn new(bits: u8) -> Option<Self> {
        (1..=MAX_PARTITION_BITS).contains(&bits).then_some(Self {
            bits,
            pins: 0,
            prefixes: [PinPrefix::EMPTY; MAX_PINS],
        })
    }

    /// The same cut with `prefixes` pinned (class `i + 1` is
    /// `prefixes[i]`). `None` when there are more than [`MAX_PINS`], one
    /// is empty, longer than [`MAX_PIN_PREFIX_BYTES`] or repeated, or the
    /// classes would not fit the `u16` partition numbers.
    pub fn with_pins(self, prefixes: &[&str]) -> Option<Self> {
        let fits = u64::from(self.base_count()) * (prefixes.len() as u64 + 1) <= 1 << 16;
        if prefixes.len() > MAX_PINS || !fits {
            return None;
        }
        let mut out = Self::new(self.bits)?;
        for (i, prefix) in prefixes.iter().enumerate() {
            let bytes = prefix.as_bytes();
            if bytes.is_empty()
                || bytes.len() > MAX_PIN_PREFIX_BYTES
                || prefixes[..i].contains(prefix)
            {
                return None;
            }
            out.prefixes[i].len = bytes.len() as u8;
            out.prefixes[i].bytes[..bytes.len()].copy_from_slice(bytes);
        }
        out.pins = prefixes.len() as u8;
        Some(out)
    }

    /// Bits used.
    pub fn bits(&self) -> u8 {
        self.bits
    }

    /// Number of base partitions (2^bits).
    pub fn base_count(&self) -> u32 {
        1u32 << self.bits
    }

    /// Number of partitions, pinned classes included.
    pub fn count(&self) -> u32 {
        self.base_count() * (u32::from(self.pins) + 1)
    }

    /// The base partition holding `key`.
    pub fn partition_of(&self, key: &Key) -> Partition {
        let top = u16::from_be_bytes([key.0[0], key.0[1]]);
        Partition(top >> (16 - u32::from(self.bits)))
    }

    /// The partition holding the file `name` whose key is `key`: its base
    /// partition in the class of the longest pinned prefix it starts with.
    pub fn partition_of_name(&self, name: &str, key: &Key) -> Partition {
        let base = self.partition_of(key);
        let class = self.prefixes[..usize::from(self.pins)]
            .iter()
            .enumerate()
            .filter(|(_, p)| name.as_bytes().starts_with(p.as_bytes()))
            .max_by_key(|(_, p)| p.len)
            .map_or(0, |(i, _)| i + 1);
        // Fits: `with_pins` checked base_count × (pins + 1) ≤ 2^16.
        Partition(base.0 + (class as u32 * self.base_count()) as u16)
    }

    /// The pin class of a partition: 0 for files that may live anywhere,
    /// `i + 1` for those under pinned prefix `i`.
    pub fn class_of(&self, partition: Partition) -> usize {
        (u32::from(partition.0) / self.base_count()) as usize
    }

    /// The prefix pinned as class `class` (1-based), if any.
    pub fn pin_prefix(&self, class: usize) -> Option<&str> {
        let pin = self.prefixes[..usize::from(self.pins)].get(class.checked_sub(1)?)?;
        std::str::from_utf8(pin.as_bytes()).ok()
    }

    /// The partition's id: its base number in the top bits, zeros below.
    /// Its replica set is the members closest to this point.
    pub fn partition_id(&self, partition: Partition) -> Key {
        let base = u32::from(partition.0) % self.base_count();
        let top = (base << (16 - u32::from(self.bits))) as u16;
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

    proptest! {
        #[test]
        fn a_pinned_name_lands_in_its_class_beside_its_base_partition(
            name in "[a-z/]{0,12}",
            bits in 1u8..=12,
        ) {
            let p = Partitioning::new(bits).unwrap().with_pins(&["eu/", "eu/de/", "ap"]).unwrap();
            let key = Key::hash(name.as_bytes());
            let part = p.partition_of_name(&name, &key);
            prop_assert!(p.contains(part));
            prop_assert_eq!(p.partition_id(part), p.partition_id(p.partition_of(&key)));
            let want = if name.starts_with("eu/de/") { 2 }
                else if name.starts_with("eu/") { 1 }
                else if name.starts_with("ap") { 3 }
                else { 0 };
            prop_assert_eq!(p.class_of(part), want);
        }
    }

    #[test]
    fn pins_are_bounded_and_distinct() {
        let p = Partitioning::new(10).unwrap();
        assert_eq!(p.with_pins(&["eu/"]).unwrap().count(), 2048);
        assert_eq!(p.with_pins(&["eu/"]).unwrap().pin_prefix(1), Some("eu/"));
        assert_eq!(p.with_pins(&["eu/"]).unwrap().pin_prefix(2), None);
        assert_eq!(p.pin_prefix(0), None);
        assert!(p.with_pins(&["a", "a"]).is_none());
        assert!(p.with_pins(&[""]).is_none());
        assert!(p.with_pins(&[&"x".repeat(65)]).is_none());
        assert!(p
            .with_pins(&["a", "b", "c", "d", "e", "f", "g", "h", "i"])
            .is_none());
        assert!(Partitioning::new(16).unwrap().with_pins(&["a"]).is_none());
        assert!(Partitioning::new(15).unwrap().with_pins(&["a"]).is_some());
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
