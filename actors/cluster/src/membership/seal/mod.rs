//! Sealed gossip: every gossip datagram is encrypted and authenticated
//! with a key derived from the cluster secret, so a host without it can
//! neither read gossip nor change what any member believes.
//!
//! - [`keyring`]: keys from secrets, the sealing one and the accepted ones
//!   (rotation without downtime).
//! - [`envelope`]: the datagram format, sealing and opening (pure).
//! - [`replay`]: the per-sender sliding replay window (pure).
//! - [`bounds`]: what one authentic datagram may make chitchat decode (pure).
//! - [`rate`]: how many authentic datagrams a sender may send (pure).
//! - [`transport`]: the chitchat `Transport` that puts them on UDP.
//!
//! The threat model and the measured cost are in docs/security.md.

pub mod bounds;
pub mod envelope;
pub mod keyring;
pub mod rate;
pub mod replay;
pub mod transport;

pub use envelope::{Opener, Reject, Sealer, OVERHEAD};
pub use keyring::{GossipKey, KeyId, Keyring, KeyringError};
pub use transport::{SealSettings, SealedTransport, UNEXPECTED_SOURCE};
