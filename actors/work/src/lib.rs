//! Durable work queues. A queue is owned by the live member XOR-closest to
//! the queue's key ([`owner_of`]); the owner keeps the queue's [`book`] in
//! memory and its log in the DHT ([`log`]), places jobs on workers by a
//! [`placement`] policy, and hands out leases that workers extend by
//! heartbeat. When the owner goes Down the next-closest member becomes the
//! owner and rebuilds the book from the log. Delivery is at-least-once.
//!
//! Pure parts: [`job`], [`book`], [`chain`], [`fanout`], [`placement`],
//! [`wire`]. Actors:
//! [`queues::Queues`] (the owner side), [`workers::Workers`] (the bounded
//! pool that runs jobs), [`service::WorkService`] (the remotable endpoint
//! peers call). Job kinds: [`handler`]. The design and its measurements
//! are in docs/jobs.md.

pub mod book;
pub mod chain;
pub mod client;
pub mod fanout;
pub mod handler;
pub mod job;
pub mod log;
pub mod placement;
pub mod queues;
pub mod service;
pub mod settings;
pub mod wasm;
pub mod wire;
pub mod workers;

use hypha_cluster::membership::MemberKey;
use hypha_dht::keyspace::Key;
use hypha_dht::placement::{member_point, Placement};

/// The queues actor's role in actor names.
pub const QUEUES_ROLE: &str = "queues";
/// The workers actor's role in actor names.
pub const WORKERS_ROLE: &str = "workers";
/// The work service's role in actor names.
pub const SERVICE_ROLE: &str = "work";

/// The point of a queue in the XOR keyspace.
pub fn queue_point(queue: &str) -> Key {
    let mut h = blake3::Hasher::new();
    h.update(b"hypha.queue.v1\0");
    h.update(queue.as_bytes());
    Key(*h.finalize().as_bytes())
}

/// The member that owns `queue` in this placement: the live member
/// closest to the queue's point.
pub fn owner_of(placement: &Placement, queue: &str) -> Option<MemberKey> {
    let point = queue_point(queue);
    placement
        .live()
        .iter()
        .filter_map(|m| Some((member_point(m)?.distance(&point), m)))
        .min_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, m)| m.clone())
}
