//! Messages of the peers actor (local only).

use std::net::SocketAddr;

use ractor_cluster::node::NodeServerSessionInformation;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;

use super::inbound::InboundFailure;

use crate::membership::MemberKey;

/// What happened to a node-link session (from ractor_cluster's NodeServer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEventKind {
    /// TCP connected (in or out).
    Opened,
    /// Cookie handshake passed.
    Authenticated,
    /// State exchange finished: the session is usable.
    Ready,
    /// Closed.
    Disconnected,
}

/// What the peers actor handles.
pub enum PeersMessage {
    /// Reconcile sessions with the membership view (own timer).
    Tick,
    /// Ping every linked peer (own timer).
    PingAll,
    /// A session changed.
    Session(SessionEventKind, Box<NodeServerSessionInformation>),
    /// A dial could not even open a TCP connection.
    DialFailed(MemberKey, String),
    /// A ping finished.
    PingDone(MemberKey, PingOutcome),
    /// The node-link port accepted a connection (the permit bounds how
    /// many wait in the mailbox).
    Accepted(Box<TcpStream>, SocketAddr, OwnedSemaphorePermit),
    /// An accepted connection's TLS handshake failed or ran out of time.
    HandshakeFailed(SocketAddr, InboundFailure),
    /// The node-link accept loop ended; the actor fails and is restarted.
    ListenerStopped(String),
    /// Chaos: panic in the handler.
    Crash,
}

// Local only: the default (non-serialising) implementation.
impl ractor::Message for PeersMessage {}

impl hypha_supervisors::CrashMessage for PeersMessage {
    fn crash() -> Self {
        PeersMessage::Crash
    }
}

/// How an application ping ended.
#[derive(Debug, Clone, Copy)]
pub enum PingOutcome {
    /// Answered; the ping was sent at this instant (the majority lease
    /// counts from the send, [`crate::fence`]).
    Answered {
        /// When the ping was sent.
        sent: tokio::time::Instant,
    },
    /// Failed or timed out.
    Missed,
}
