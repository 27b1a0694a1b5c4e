//! The DHT: a Kademlia-like keyspace over the cluster's members that
//! stores files as content-addressed chunks plus manifests, replicated to
//! the R members closest to each fixed partition, with write and read
//! quorums. The design, its guarantees and its measurements are in
//! docs/dht.md.
//!
//! Pure parts: [`keyspace`], [`routing`], [`lookup`], [`placement`],
//! [`admission`] (which writes a node takes),
//! [`chunker`], [`hlc`], [`manifest`], [`wire`], [`files::listing`],
//! [`anti_entropy`] (digests, tree, exchange protocol). Actors:
//! [`router`] (placement), [`service`] (the remotable RPC endpoint),
//! [`bulk::BulkServer`] (chunk transfers on their own connections),
//! [`files::Collector`] (garbage), [`anti_entropy::AntiEntropy`] (replica
//! repair, re-replication, hand-off). The coordinator ([`files::Files`]) runs
//! in the request's task on whichever node received it.

pub mod admission;
pub mod anti_entropy;
pub mod bulk;
pub mod chunker;
/// The one codec, shared with every subsystem (it lives in `hypha-core`).
pub use hypha_core::codec;
pub mod digest;
pub mod files;
pub mod hlc;
pub mod keyspace;
pub mod lookup;
pub mod manifest;
pub mod placement;
pub mod router;
pub mod routing;
pub mod service;
pub mod settings;
pub mod storage;
#[cfg(test)]
pub(crate) mod test_store;
pub mod transport;
pub mod wire;

/// The router's role in actor names.
pub const ROUTER_ROLE: &str = "router";
/// The DHT service's role in actor names.
pub const SERVICE_ROLE: &str = "dht";
/// The bulk listener's role in actor names.
pub const BULK_ROLE: &str = "bulk";
/// The collector's role in actor names.
pub const COLLECTOR_ROLE: &str = "collector";
/// The anti-entropy exchange actor's role in actor names.
pub const EXCHANGE_ROLE: &str = "exchange";
