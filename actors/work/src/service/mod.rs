//! The work service: the remotable endpoint through which peers reach this
//! node's queue owner and worker pool, the shared [`rpc::Service`] over
//! [`WorkHandler`] in the process group `hypha.work.<link name>`.

use hypha_cluster::membership::MemberKey;
use hypha_core::rpc;

use crate::client::WorkHandler;
use crate::wire::WorkWire;
/// The service's message (it travels between nodes): the shared one.
pub use rpc::ServiceMessage as WorkServiceMessage;

/// The service behaviour.
pub type WorkService = rpc::Service<WorkHandler>;
/// What each incarnation is given.
pub type WorkServiceArgs = rpc::ServiceArgs<WorkHandler>;

/// The process group of a member's work service.
pub fn work_group(member: &MemberKey) -> String {
    rpc::group::<WorkWire>(&member.link_name())
}
