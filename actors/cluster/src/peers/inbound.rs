//! The node-link port, accepted by Hypha rather than by ractor_cluster.
//!
//! ractor_cluster 0.16.5's listener awaits each TLS accept inside its
//! accept loop with no deadline (`net/listener.rs`): one idle TCP
//! connection stopped every later inbound link. So the peers actor binds
//! the link port itself: the accept loop here only accepts and hands each
//! connection to the actor, which counts it ([`crate::preauth`]) and runs
//! its TLS handshake in a task under the pre-auth deadline; a finished
//! stream goes to the NodeServer as an ordinary server connection. The
//! NodeServer's own listener binds an ephemeral loopback port that nothing
//! dials, with the same TLS requirement, and a session arriving through it
//! is closed on sight (the actor only keeps inbound sessions it admitted).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorRef;
use ractor_cluster::{NetworkStream, NodeServerMessage};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::claim::{read_claim, ClaimError};
use super::messages::PeersMessage;
use super::tls::{peer_node_id, IdentityError, LinkTls};
use crate::preauth;
use hypha_core::identity::NodeId;

/// How long a restarted incarnation retries binding the node-link port.
pub const BIND_RETRY_MS: u64 = 2_000;

/// Bind a listening port, retrying for `retry` while a previous
/// incarnation's socket is still closing (the bulk listener uses it too).
pub async fn bind(addr: SocketAddr, retry: Duration) -> Result<TcpListener, String> {
    // Bounded by a tokio timeout rather than by reading the clock: the
    // retry period is I/O pacing, not a decision.
    let mut last = None;
    let attempts = async {
        loop {
            match TcpListener::bind(addr).await {
                Ok(listener) => return listener,
                Err(err) => {
                    tracing::debug!("bind retry on {addr}: {err}");
                    last = Some(err);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    };
    let outcome = tokio::time::timeout(retry, attempts).await;
    match outcome {
        Ok(listener) => Ok(listener),
        Err(_) => match last {
            Some(err) => Err(format!("listening on {addr}: {err}")),
            None => Err(format!("listening on {addr}: no answer in {retry:?}")),
        },
    }
}

/// Accepted connections waiting in the peers actor's mailbox at most;
/// more are closed at once (the mailbox itself is unbounded).
const MAX_QUEUED_ACCEPTS: usize = 256;

/// Accept until the listener fails, handing every connection to the
/// peers actor; then tell it why the loop stopped.
pub async fn accept_loop(listener: TcpListener, peers: ActorRef<PeersMessage>) {
    let queued = Arc::new(Semaphore::new(MAX_QUEUED_ACCEPTS));
    let reason = loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let Ok(permit) = queued.clone().try_acquire_owned() else {
                    metrics::counter!("hypha_cluster_preauth_refused_total", "reason" => "busy")
                        .increment(1);
                    continue;
                };
                let accepted = PeersMessage::Accepted(Box::new(stream), peer, permit);
                if peers.cast(accepted).is_err() {
                    break "the peers actor is gone".to_owned();
                }
            }
            Err(err) if preauth::is_transient_accept_error(&err) => {
                tracing::warn!("node-link accept: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => break format!("node-link accept failed: {err}"),
        }
    };
    let _ = peers.cast(PeersMessage::ListenerStopped(reason));
}

/// Why a dialer over TLS is not who it claims to be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityRefusal {
    /// Its certificate (of the cluster CA) names no node.
    #[error("certificate: {0}")]
    Certificate(#[from] IdentityError),
    /// Its first handshake frame names no member.
    #[error("{0}")]
    Claim(#[from] ClaimError),
    /// It claims another node than its certificate names.
    #[error("it claims to be {claimed} but its certificate names node {certified}")]
    Mismatch {
        /// The link name it claimed.
        claimed: String,
        /// The node its certificate names.
        certified: NodeId,
    },
}

/// Why an inbound connection did not reach the NodeServer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundFailure {
    /// TLS did not finish within the pre-auth deadline.
    #[error("TLS handshake not finished within the deadline")]
    Deadline,
    /// TLS failed (no certificate of the cluster CA, not TLS at all…).
    #[error("TLS: {0}")]
    Tls(String),
    /// The dialer is not the node its certificate names.
    #[error("{0}")]
    Identity(#[from] IdentityRefusal),
    /// The socket could not be read.
    #[error("socket: {0}")]
    Io(String),
}

/// Run the server side of TLS (when configured) within `deadline`, check
/// that the dialer claims to be the node its certificate names (see
/// [`super::claim`]), then hand the stream to the NodeServer, whose
/// session runs the cookie handshake.
pub async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<LinkTls>,
    server: ActorRef<NodeServerMessage>,
    deadline: Instant,
) -> Result<(), InboundFailure> {
    let _ = stream.set_nodelay(true);
    let local_addr = stream
        .local_addr()
        .map_err(|e| InboundFailure::Io(e.to_string()))?;
    let opened = match tls {
        None => NodeServerMessage::ConnectionOpened {
            stream: Box::new(NetworkStream::Raw {
                peer_addr: peer,
                local_addr,
                stream,
            }),
            is_server: true,
        },
        Some(tls) => {
            let identified = async {
                let mut accepted = tls
                    .acceptor
                    .accept(stream)
                    .await
                    .map_err(|e| InboundFailure::Tls(e.to_string()))?;
                let certified =
                    peer_node_id(accepted.get_ref().1).map_err(IdentityRefusal::from)?;
                let (frame, claimed) = read_claim(&mut accepted)
                    .await
                    .map_err(IdentityRefusal::from)?;
                if claimed.node_id != certified.to_hex() {
                    let mismatch = IdentityRefusal::Mismatch {
                        claimed: claimed.link_name(),
                        certified,
                    };
                    return Err(InboundFailure::Identity(mismatch));
                }
                Ok((frame, accepted))
            };
            let (frame, accepted) = tokio::time::timeout_at(deadline, identified)
                .await
                .map_err(|_| InboundFailure::Deadline)??;
            NodeServerMessage::ConnectionOpenedExternal {
                stream: Box::new(Replayed {
                    frame,
                    stream: accepted,
                    peer,
                    local_addr,
                }),
                is_server: true,
            }
        }
    };
    server
        .cast(opened)
        .map_err(|e| InboundFailure::Io(e.to_string()))
}

/// A TLS stream whose first frame was read to check the claim in it: the
/// NodeServer reads that frame again, then the rest of the stream.
struct Replayed {
    frame: Vec<u8>,
    stream: tokio_rustls::server::TlsStream<TcpStream>,
    peer: SocketAddr,
    local_addr: SocketAddr,
}

impl ractor_cluster::ClusterBidiStream for Replayed {
    fn split(self: Box<Self>) -> (ractor_cluster::BoxRead, ractor_cluster::BoxWrite) {
        let (reader, writer) = tokio::io::split(self.stream);
        let replayed = std::io::Cursor::new(self.frame).chain(reader);
        (Box::new(replayed), Box::new(writer))
    }

    // The session's address: the peers actor matches it with the
    // connection it admitted.
    fn peer_label(&self) -> Option<String> {
        Some(self.peer.to_string())
    }

    fn local_label(&self) -> Option<String> {
        Some(self.local_addr.to_string())
    }
}
