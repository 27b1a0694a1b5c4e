//! The Merkle tree over a partition's bucket digests, built with rs_merkle
//! at exchange time (rs_merkle cannot update a leaf in place; over a
//! fixed, power-of-two number of buckets a rebuild is cheap and no odd
//! node is ever promoted). Levels count from the root (0) down to the
//! buckets ([`DigestTree::depth`]).

use rs_merkle::{Hasher, PartialTree};

use super::buckets::BucketDigests;

/// BLAKE3 as rs_merkle's hasher.
#[derive(Debug, Clone, Copy)]
pub struct Blake3;

impl Hasher for Blake3 {
    type Hash = [u8; 32];

    fn hash(data: &[u8]) -> [u8; 32] {
        *blake3::hash(data).as_bytes()
    }
}

/// Every node of the tree, level by level from the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestTree {
    levels: Vec<Vec<[u8; 32]>>,
}

impl DigestTree {
    /// The tree over `digests` (whose bucket count is a power of two ≥ 2).
    pub fn build(digests: &BucketDigests) -> Self {
        let leaves = digests.digests();
        // Not `PartialTree::from_leaves`: its depth for a power-of-two
        // leaf count is one too many (log2 + 1), which adds a layer that
        // repeats the root.
        let depth = leaves.len().trailing_zeros() as usize;
        let indexed: Vec<(usize, [u8; 32])> = leaves.iter().copied().enumerate().collect();
        let levels = match PartialTree::<Blake3>::build(vec![indexed], depth) {
            Ok(tree) => {
                let mut levels = tree.layer_nodes();
                levels.reverse();
                levels
            }
            // Only a leaf list of the wrong shape fails; BucketDigests
            // never has one. Fall back to the leaves alone.
            Err(_) => vec![leaves.to_vec()],
        };
        Self { levels }
    }

    /// The root.
    pub fn root(&self) -> [u8; 32] {
        self.levels
            .first()
            .and_then(|l| l.first())
            .copied()
            .unwrap_or([0; 32])
    }

    /// Level of the leaves (the buckets): log2(buckets).
    pub fn depth(&self) -> u8 {
        (self.levels.len().saturating_sub(1)) as u8
    }

    /// Node `index` of `level`, if it exists.
    pub fn node(&self, level: u8, index: u32) -> Option<[u8; 32]> {
        self.levels
            .get(level as usize)?
            .get(index as usize)
            .copied()
    }

    /// The descendants of node `index` of `level` that sit `down` levels
    /// below it, left to right (empty if out of range).
    pub fn descendants(&self, level: u8, index: u32, down: u8) -> &[[u8; 32]] {
        let Some(nodes) = self.levels.get(level as usize + down as usize) else {
            return &[];
        };
        let width = 1usize << down;
        let start = index as usize * width;
        nodes.get(start..start + width).unwrap_or(&[])
    }
}

#[cfg(test)]
mod tests {
    use rs_merkle::MerkleTree;

    use super::*;
    use crate::anti_entropy::buckets::tests::entry;

    #[test]
    fn levels_run_from_the_root_to_the_buckets() {
        let entries: Vec<_> = (0..500).map(|s| entry(s, 1)).collect();
        let digests = BucketDigests::of(64, &entries).unwrap();
        let tree = DigestTree::build(&digests);
        assert_eq!(tree.depth(), 6);
        let reference = MerkleTree::<Blake3>::from_leaves(digests.digests());
        assert_eq!(Some(tree.root()), reference.root());
        assert_eq!(tree.descendants(0, 0, 6), digests.digests());
        // A parent is the hash of its two children.
        let kids = tree.descendants(3, 5, 1);
        assert_eq!(
            tree.node(3, 5),
            Some(Blake3::concat_and_hash(&kids[0], Some(&kids[1])))
        );
        assert!(tree.descendants(5, 0, 2).is_empty(), "below the leaves");
    }
}
