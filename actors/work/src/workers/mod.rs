//! The worker side: a bounded pool of job attempts on this node, their
//! heartbeats to the queues' owners, and reports of how they ended.

mod actor;
mod messages;

pub use actor::{WorkerSettings, Workers, WorkersArgs};
pub use messages::WorkersMessage;

#[cfg(test)]
mod tests;
