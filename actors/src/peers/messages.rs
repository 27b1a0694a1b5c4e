//! Messages of the peers actor (local only).

use ractor_cluster::node::NodeServerSessionInformation;

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
    PingDone(MemberKey, bool),
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
