//! Anti-entropy: replicas of a partition find and repair what they
//! disagree on. The pure core — per-partition bucket digests updated O(1)
//! per write ([`buckets`]), the Merkle tree over them built at exchange
//! time with rs_merkle ([`tree`]), the exchange protocol as a
//! request/answer pair ([`exchange`]), the schedule ([`schedule`]) and the
//! byte-rate limit ([`throttle`]) — has no I/O, so correctness and cost are
//! property-tested without a network. Around it: the protocol over the
//! store ([`replica`]), exchanges and hand-offs against a peer ([`run`]),
//! and the per-node exchange actor ([`AntiEntropy`]). The design, measured
//! costs and settings are in docs/anti-entropy.md.

mod actor;
pub mod buckets;
pub mod caught_up;
pub mod confirmed;
pub mod exchange;
mod messages;
pub mod replica;
pub mod run;
pub mod schedule;
pub mod throttle;
pub mod tree;
pub mod view;

pub use actor::{AeSettings, AntiEntropy, AntiEntropyArgs};
pub use messages::AntiEntropyMessage;
