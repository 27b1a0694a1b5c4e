//! The DHT service: the node's one remotable DHT actor. Peers reach it
//! through the process group `hypha.dht.<link name>` and send it encoded
//! [`wire`](super::wire) requests; it decodes, validates and answers each
//! in its own task (bounded), so one slow disk read does not hold up
//! find-node answers.

mod actor;
mod handler;
mod messages;

pub use actor::{dht_group, encode_or_error, DhtService, DhtServiceArgs};
pub use handler::DhtHandler;
pub use messages::DhtServiceMessage;
