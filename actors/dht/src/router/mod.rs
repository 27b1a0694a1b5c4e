//! The router: follows the membership view, records when members went
//! absent (Down, or Joining again in their node's place after a restart),
//! and publishes the node's [`Placement`](super::placement::Placement)
//! (replica sets and the routing table) through a `watch` channel that
//! outlives its restarts. A restart rebuilds everything from the view;
//! only the absence times restart from "now", which errs toward keeping an
//! absent member an owner a little longer. It also says when a started
//! node's view has settled ([`Settle`]); files are served only after.

mod actor;
mod messages;
mod settle;

pub use actor::{Router, RouterArgs};
pub use messages::RouterMessage;
pub use settle::Settle;
