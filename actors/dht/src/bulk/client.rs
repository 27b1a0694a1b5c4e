//! Dialing side of bulk links: a pool of authenticated connections per
//! peer address, one request in flight per connection.
//!
//! A pooled connection may have been closed by the peer (idle timeout,
//! restart) since it was last used; a request that fails on one is retried
//! once on a fresh connection. Only idempotent requests (chunk store and
//! fetch) travel on bulk links, so a retry after a lost answer is safe.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use thiserror::Error;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::handshake::{self, BulkKey, HandshakeError};
use super::{frame, BoxIo};
use hypha_cluster::peers::tls::LinkTls;
use hypha_core::clock::SharedClock;
use hypha_core::identity::NodeId;

/// Idle connections kept per peer.
const MAX_IDLE_PER_PEER: usize = 16;
/// A pooled connection idle longer than this is dropped rather than used
/// (the listener closes idle connections after 60 s).
const MAX_IDLE_AGE: Duration = Duration::from_secs(30);

/// Why a bulk call failed.
#[derive(Debug, Error)]
pub enum BulkError {
    /// No connection could be made.
    #[error("bulk connect to {addr}: {reason}")]
    Connect {
        /// Peer address.
        addr: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// The peer refused our cookie, or did not prove its own.
    #[error("bulk handshake with {addr}: {source}")]
    Handshake {
        /// Peer address.
        addr: SocketAddr,
        /// What failed.
        source: HandshakeError,
    },
    /// The connection broke during the request.
    #[error("bulk exchange with {addr}: {reason}")]
    Exchange {
        /// Peer address.
        addr: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// No answer in time.
    #[error("no bulk answer within {0} ms")]
    Timeout(u64),
}

struct Idle {
    io: BoxIo,
    since: Instant,
}

/// A node's bulk listener, as the dialer expects to find it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BulkPeer {
    /// The node meant; with TLS, its certificate must name it.
    pub node: NodeId,
    /// Where it listens, as gossiped.
    pub addr: SocketAddr,
}

/// The pool (cheap to clone).
#[derive(Clone)]
pub struct BulkClient {
    inner: Arc<Inner>,
}

struct Inner {
    key: BulkKey,
    tls: Option<LinkTls>,
    /// Keyed by node and address: a connection proven to reach one node
    /// is never reused for another that gossip now places at the address.
    idle: Mutex<HashMap<BulkPeer, Vec<Idle>>>,
    clock: SharedClock,
}

impl std::fmt::Debug for BulkClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BulkClient(..)")
    }
}

impl BulkClient {
    /// A pool that authenticates with `key`, inside `tls` when given,
    /// ageing idle connections on the system clock.
    pub fn new(key: BulkKey, tls: Option<LinkTls>) -> Self {
        Self::with_clock(key, tls, SharedClock::system())
    }

    /// [`BulkClient::new`], ageing idle connections on `clock`.
    pub fn with_clock(key: BulkKey, tls: Option<LinkTls>, clock: SharedClock) -> Self {
        Self {
            inner: Arc::new(Inner {
                key,
                tls,
                idle: Mutex::new(HashMap::new()),
                clock,
            }),
        }
    }

    /// Send one encoded request to `peer` and return the encoded answer.
    pub async fn call(
        &self,
        peer: BulkPeer,
        request: &[u8],
        timeout: Duration,
    ) -> Result<Vec<u8>, BulkError> {
        let addr = peer.addr;
        let run = async {
            if let Some(mut io) = self.take_idle(&peer) {
                if let Ok(answer) = exchange(&mut io, addr, request).await {
                    self.put_idle(peer, io);
                    return Ok(answer);
                }
            }
            let mut io = self.connect(peer, timeout).await?;
            let answer = exchange(&mut io, addr, request).await?;
            self.put_idle(peer, io);
            Ok(answer)
        };
        tokio::time::timeout(timeout, run).await.map_err(|_| {
            BulkError::Timeout(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX))
        })?
    }

    fn take_idle(&self, peer: &BulkPeer) -> Option<BoxIo> {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        let pool = idle.get_mut(peer)?;
        let now = self.inner.clock.now();
        while let Some(conn) = pool.pop() {
            if now.saturating_duration_since(conn.since) < MAX_IDLE_AGE {
                return Some(conn.io);
            }
        }
        None
    }

    fn put_idle(&self, peer: BulkPeer, io: BoxIo) {
        let mut idle = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner());
        let pool = idle.entry(peer).or_default();
        if pool.len() < MAX_IDLE_PER_PEER {
            pool.push(Idle {
                io,
                since: self.inner.clock.now(),
            });
        }
    }

    async fn connect(&self, peer: BulkPeer, limit: Duration) -> Result<BoxIo, BulkError> {
        let addr = peer.addr;
        let connect_err = |reason: String| BulkError::Connect { addr, reason };
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| connect_err(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let mut io: BoxIo = match &self.inner.tls {
            Some(tls) => {
                // The certificate must name the node meant, not any node.
                let name = LinkTls::server_name_for(&peer.node)
                    .map_err(|e| connect_err(format!("TLS: {e}")))?;
                Box::pin(
                    tls.connector
                        .connect(name, stream)
                        .await
                        .map_err(|e| connect_err(format!("TLS: {e}")))?,
                )
            }
            None => Box::pin(stream),
        };
        handshake::dial(&mut io, &self.inner.key, limit)
            .await
            .map_err(|source| BulkError::Handshake { addr, source })?;
        metrics::counter!("hypha_dht_bulk_dials_total").increment(1);
        Ok(io)
    }
}

async fn exchange(io: &mut BoxIo, addr: SocketAddr, request: &[u8]) -> Result<Vec<u8>, BulkError> {
    let broken = |reason: String| BulkError::Exchange { addr, reason };
    frame::write(io, request)
        .await
        .map_err(|e| broken(e.to_string()))?;
    frame::read(io)
        .await
        .map_err(|e| broken(e.to_string()))?
        .ok_or_else(|| broken("closed before answering".into()))
}
