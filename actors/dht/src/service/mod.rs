//! The DHT service: the node's one remotable DHT actor, the shared
//! [`rpc::Service`] over [`DhtHandler`]. Peers reach it through the process
//! group `hypha.dht.<link name>` and send it encoded [`wire`](super::wire)
//! requests; it decodes, validates and answers each in its own task
//! (bounded), so one slow disk read does not hold up find-node answers.

mod handler;

use hypha_cluster::membership::MemberKey;
use hypha_core::rpc;

use crate::wire::{DhtWire, Response};
pub use handler::DhtHandler;
/// The service's message (it travels between nodes): the shared one.
pub use rpc::ServiceMessage as DhtServiceMessage;

/// The service behaviour.
pub type DhtService = rpc::Service<DhtHandler>;
/// What each incarnation is given.
pub type DhtServiceArgs = rpc::ServiceArgs<DhtHandler>;

/// The process group of a member's DHT service.
pub fn dht_group(member: &MemberKey) -> String {
    rpc::group::<DhtWire>(&member.link_name())
}

/// Encode an answer; one that does not encode becomes an encoded error,
/// so a caller always gets a reply it can decode.
pub fn encode_or_error(response: &Response) -> Vec<u8> {
    rpc::encode_or_error::<DhtWire>(response)
}
