//! The admin HTTP server actor.
//!
//! The node binds the listening socket once; every incarnation of this
//! actor serves a duplicate of it. A restart therefore never races a dying
//! incarnation for the port, and clients that connect meanwhile wait in the
//! kernel's accept queue instead of being refused.

mod actor;
mod messages;
mod serve;

pub use actor::{HttpArgs, HttpServer};
pub use messages::HttpMessage;

/// The server's role in actor names.
pub const ROLE: &str = "http";
