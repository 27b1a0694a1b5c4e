//! What every Hypha subsystem shares: node ids, labels, the one codec
//! (bincode with a decode limit), the injected [`clock`], the one [`rpc`]
//! layer between nodes, the error of [`settings`] validation, and the
//! registry naming rule.
//!
//! The subsystems are crates beside this one, each depending only on those
//! below it: `hypha-store` (the durable store), `hypha-cluster` (membership,
//! node links, TLS, pre-auth limits), `hypha-dht` (files on the DHT) and
//! `hypha-work` (job queues). Actors are found through ractor's registry
//! under names that include the node ([`actor_name`]), so several nodes can
//! share a process in tests.

pub mod clock;
pub mod codec;
pub mod identity;
pub mod labels;
pub mod rpc;
pub mod settings;

/// Registry name of a node's actor: `hypha.<node>.<role>`.
pub fn actor_name(node: &str, role: &str) -> String {
    format!("hypha.{node}.{role}")
}
