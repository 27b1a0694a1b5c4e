//! The owner side of the work queues: one actor per node holding the
//! books of the queues this node owns, their durable writes, placement
//! and leases.

mod actor;
mod messages;
mod owner;
pub mod owner_core;

pub use actor::{Queues, QueuesArgs};
pub use messages::QueuesMessage;
