//! Hypha's domain actors and their pure logic.
//!
//! Each actor lives in its own module folder: `actor.rs` (the thin ractor
//! shell), `messages.rs` (its message enum), and I/O-free logic beside them.
//! Actors are found through ractor's registry under names that include the
//! node ([`actor_name`]), so several nodes can share a process in tests.

pub mod dht;
pub mod identity;
pub mod labels;
pub mod membership;
pub mod peers;
pub mod preauth;
pub mod store;
pub mod work;

/// Registry name of a node's actor: `hypha.<node>.<role>`.
pub fn actor_name(node: &str, role: &str) -> String {
    format!("hypha.{node}.{role}")
}
