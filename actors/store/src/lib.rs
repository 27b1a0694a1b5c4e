//! The store: the one actor that talks to sled.
//!
//! Every other actor reads and writes through [`StoreClient`]. The sled
//! database itself is opened once per node ([`SledEngine::open`]) and handed
//! to each incarnation of the actor: ractor drops a failed actor's state only
//! after its supervisor has been told, so reopening per incarnation would
//! race the dying incarnation's file lock. A restart therefore rebuilds the
//! actor's view (format check, counters) from the open database in
//! microseconds instead of replaying sled's log.
//!
//! Durability: a write is acknowledged only after a flush that covers it
//! returned: sled's flush, then the `fsync`s that make it power-safe
//! ([`durability`]); writes queued together share one (group commit, see
//! `docs/storage.md` for what that does and does not survive).

mod actor;
mod batch;
mod client;
pub mod durability;
mod engine;
mod error;
mod messages;
mod reader;
pub mod settings;
mod writer;

pub use actor::{Store, StoreArgs};
pub use batch::{
    Condition, DigestOp, RowRebuild, SpaceClass, Tree, WriteBatch, WriteOp, DIGEST_ROW_BYTES,
};
pub use client::StoreClient;
pub use engine::{KvEngine, SledEngine, FORMAT_VERSION};
pub use error::StoreError;
pub use messages::{Entries, StoreMessage};
pub use writer::DiskReserve;

/// The store's role in actor names (see [`hypha_core::actor_name`]).
pub const ROLE: &str = "store";
