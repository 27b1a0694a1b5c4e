//! Bulk links: chunk transfers on their own TCP connections, apart from
//! the ractor_cluster node link. A 1 MiB chunk queued on the node link
//! delays every control message behind it (membership pings, manifest
//! reads), and a link saturated by concurrent uploads can miss its pings
//! and be closed; bulk links keep the node link for small messages.
//!
//! A bulk connection is authenticated like the node link: a challenge and
//! response keyed by the cluster cookie (both sides prove they hold it,
//! and nonces from both sides stop replay), inside mutual TLS when the
//! node has a TLS directory. Each connection carries one request at a
//! time ([`frame`]s of the DHT wire format); parallelism comes from a
//! small pool of connections per peer ([`BulkClient`]). The server side
//! is the [`BulkServer`] actor in the `dht` supervisor.

pub mod client;
pub mod frame;
pub mod handshake;
pub mod server;

pub use client::{BulkClient, BulkPeer};
pub use server::{BulkServer, BulkServerArgs, BulkServerMessage};

use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// A connected byte stream: plain TCP or TLS over TCP.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// A boxed [`Io`].
pub type BoxIo = Pin<Box<dyn Io>>;
