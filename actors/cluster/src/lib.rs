//! Who is in the cluster and how nodes reach each other: SWIM-style
//! membership over sealed chitchat gossip ([`membership`]), node links over
//! ractor_cluster with mutual TLS that names each node ([`peers`]), and the
//! caps and deadlines on connections not yet authenticated ([`preauth`]).
//!
//! Each actor lives in its own module folder: `actor.rs` (the thin ractor
//! shell), `messages.rs` (its message enum), and I/O-free logic beside them.

pub mod fence;
pub mod membership;
pub mod peers;
pub mod preauth;
pub mod settings;
