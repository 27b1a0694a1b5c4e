//! Anti-entropy: replicas of a partition find and repair what they
//! disagree on. This module holds the pure core — per-partition bucket
//! digests updated O(1) per write ([`buckets`]), the Merkle tree over them
//! built at exchange time with rs_merkle ([`tree`]), and the exchange
//! protocol as a request/answer pair with no I/O ([`exchange`]), so that
//! correctness and cost are property-tested without a network. The design
//! and measured costs are in docs/anti-entropy.md.

pub mod buckets;
pub mod exchange;
pub mod tree;
