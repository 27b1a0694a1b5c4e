//! The work service: the remotable endpoint through which peers reach this
//! node's queue owner and worker pool.

mod actor;
mod messages;

pub use actor::{work_group, WorkService, WorkServiceArgs};
pub use messages::WorkServiceMessage;
