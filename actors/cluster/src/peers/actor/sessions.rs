//! The life of one node-link session in the peers actor: a connection on
//! the link port admitted (or refused) and handshaken under its pre-auth
//! deadline, the NodeServer's session events (opened, authenticated,
//! ready, disconnected), the check that an outbound session is the member
//! we dialled, and the set of linked members published from them.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use ractor::{ActorId, ActorRef};
use ractor_cluster::node::NodeServerSessionInformation;
use tokio::time::Instant;

use crate::membership::MemberKey;
use crate::peers::dial::DialState;
use crate::peers::inbound::{self, InboundFailure};
use crate::peers::messages::{PeersMessage, SessionEventKind};
use crate::preauth;

/// Largest node-link frame accepted, in bytes: one DHT message at its cap
use super::{PeersState, Session};

/// The peer named in a session, `<link name>@<host>`.
fn session_peer(ses: &NodeServerSessionInformation) -> Option<MemberKey> {
    let name = &ses.peer_name.as_ref()?.name;
    let link_name = name.split('@').next()?;
    MemberKey::from_link_name(link_name)
}

pub(super) fn on_session(
    state: &mut PeersState,
    kind: SessionEventKind,
    ses: NodeServerSessionInformation,
) {
    let id = ses.actor.get_id();
    let now = state.args.clock.now();
    match kind {
        SessionEventKind::Opened => {
            if ses.is_server && !admitted(state, &ses.peer_addr) {
                // Through the NodeServer's spare listener, or past its deadline.
                tracing::debug!(addr = %ses.peer_addr, "closing an inbound link the link port did not admit");
                metrics::counter!("hypha_cluster_preauth_refused_total", "reason" => "unsolicited")
                    .increment(1);
                ses.actor.kill();
                return;
            }
            state.sessions.insert(
                id,
                Session {
                    actor: ses.actor.clone(),
                    peer: None,
                    authenticated: false,
                    ready: false,
                    peer_addr: ses.peer_addr.clone(),
                    closing: false,
                    auth_deadline: now + state.args.config.settings.preauth.deadline(),
                },
            );
        }
        SessionEventKind::Authenticated | SessionEventKind::Ready => {
            let peer = session_peer(&ses);
            if ses.is_server {
                release(state, &ses.peer_addr);
            }
            let dialled = dialled_member(state, &ses);
            let Some(session) = state.sessions.get_mut(&id) else {
                return;
            };
            session.authenticated = true;
            let Some(claimed) = &peer else {
                tracing::warn!(addr = %ses.peer_addr, "closing a link whose peer name is not a member name");
                session.actor.kill();
                return;
            };
            if let Err(mismatch) = check_dialled(claimed, dialled.as_ref()) {
                metrics::counter!("hypha_cluster_handshakes_refused_total", "reason" => "identity")
                    .increment(1);
                tracing::warn!(addr = %ses.peer_addr, peer = %claimed.link_name(), "closing node link: {mismatch}");
                session.closing = true;
                session.actor.kill();
                return;
            }
            session.peer = peer.clone();
            if kind == SessionEventKind::Ready {
                session.ready = true;
                if let Some(peer) = peer {
                    tracing::info!(peer = %peer.link_name(), addr = %ses.peer_addr, "node link ready");
                    state.dialing_addrs.retain(|_, p| *p != peer);
                    state
                        .dials
                        .entry(peer.clone())
                        .or_insert_with(|| DialState::new(now))
                        .linked(now);
                    state.misses.remove(&peer);
                }
                publish_links(state);
            }
        }
        SessionEventKind::Disconnected => on_disconnect(state, id, &ses, now),
    }
}

fn on_disconnect(
    state: &mut PeersState,
    id: ActorId,
    ses: &NodeServerSessionInformation,
    now: Instant,
) {
    if ses.is_server {
        release(state, &ses.peer_addr);
    }
    let session = state.sessions.remove(&id);
    let authenticated = session.as_ref().is_some_and(|s| s.authenticated);
    // Closed by us (deadline, or never admitted): counted where it was closed.
    let ours = session.as_ref().is_none_or(|s| s.closing);
    let addr = session
        .as_ref()
        .map_or(ses.peer_addr.clone(), |s| s.peer_addr.clone());
    if !authenticated && !ours {
        metrics::counter!("hypha_cluster_handshakes_refused_total", "reason" => "cookie")
            .increment(1);
        tracing::warn!(addr = %addr, "node link refused: the handshake did not authenticate (wrong cookie or cluster id?)");
    } else if let Some(peer) = session.as_ref().and_then(|s| s.peer.clone()) {
        tracing::info!(peer = %peer.link_name(), "node link closed");
    }
    let dialed = addr
        .parse::<SocketAddr>()
        .ok()
        .and_then(|a| state.dialing_addrs.remove(&a))
        .or_else(|| session.and_then(|s| s.peer));
    if let Some(peer) = dialed {
        if let Some(dial) = state.dials.get_mut(&peer) {
            dial.failed(now, &state.args.config.dial, rand::random());
        }
    }
    publish_links(state);
}

/// The address dialled for one member answered, in its cookie handshake,
/// as another node (possible only without TLS: over TLS the certificate
/// check already refused it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the address dialled for member {dialled} answered as another node")]
struct DialledElsewhere {
    /// The member whose address was dialled.
    dialled: String,
}

/// The member whose address an outbound session dialled. (An inbound
/// session's claim was checked against its certificate before the
/// NodeServer saw it: [`super::claim`].)
fn dialled_member(state: &PeersState, ses: &NodeServerSessionInformation) -> Option<MemberKey> {
    if ses.is_server {
        return None;
    }
    let addr = ses.peer_addr.parse::<SocketAddr>().ok()?;
    state.dialing_addrs.get(&addr).cloned()
}

/// An outbound session's peer, as its cookie handshake names it, must be
/// the member we dialled: a gossiped address is not proof of who listens.
fn check_dialled(claimed: &MemberKey, dialled: Option<&MemberKey>) -> Result<(), DialledElsewhere> {
    match dialled {
        Some(member) if member.node_id != claimed.node_id => Err(DialledElsewhere {
            dialled: member.link_name(),
        }),
        _ => Ok(()),
    }
}

/// Whether an inbound session's address is one the link port admitted
/// and that has not authenticated yet.
fn admitted(state: &PeersState, peer_addr: &str) -> bool {
    peer_addr
        .parse()
        .is_ok_and(|addr| state.admission.is_pending(addr))
}

fn release(state: &mut PeersState, peer_addr: &str) {
    if let Ok(addr) = peer_addr.parse() {
        state.admission.release(addr);
    }
}

/// Count a connection on the link port and start its TLS handshake, or
/// close it at once.
pub(super) fn on_accepted(
    myself: &ActorRef<PeersMessage>,
    state: &mut PeersState,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    let members = preauth::member_hosts(&state.args.channels.view());
    let class = preauth::classify(peer.ip(), &members);
    let deadline = match state.admission.admit(peer, class, state.args.clock.now()) {
        Ok(deadline) => deadline,
        Err(refusal) => {
            metrics::counter!("hypha_cluster_preauth_refused_total", "reason" => refusal.label())
                .increment(1);
            tracing::debug!(%peer, "node link refused at accept: {refusal}");
            return;
        }
    };
    let tls = state.args.config.tls.clone();
    let server = state.server.clone();
    let me = myself.clone();
    state.tasks.spawn(async move {
        if let Err(failure) = inbound::handshake(stream, peer, tls, server, deadline).await {
            let _ = me.cast(PeersMessage::HandshakeFailed(peer, failure));
        }
    });
}

pub(super) fn on_handshake_failed(
    state: &mut PeersState,
    peer: SocketAddr,
    failure: &InboundFailure,
) {
    state.admission.release(peer);
    match failure {
        InboundFailure::Deadline => {
            metrics::counter!("hypha_cluster_preauth_refused_total", "reason" => "deadline")
                .increment(1);
            tracing::debug!(%peer, "inbound node link: {failure}");
        }
        InboundFailure::Identity(_) => {
            metrics::counter!("hypha_cluster_handshakes_refused_total", "reason" => "identity")
                .increment(1);
            tracing::warn!(%peer, "node link refused: {failure}");
        }
        InboundFailure::Tls(_) => {
            metrics::counter!("hypha_cluster_handshakes_refused_total", "reason" => "tls")
                .increment(1);
            tracing::warn!(%peer, "node link refused: {failure}");
        }
        InboundFailure::Io(_) => tracing::debug!(%peer, "inbound node link: {failure}"),
    }
}

/// Close every session that has not authenticated by its deadline (the
/// cookie handshake of ractor_cluster has none), and stop counting
/// admitted connections whose deadline passed.
pub(super) fn enforce_deadlines(state: &mut PeersState, now: Instant) {
    state.admission.expire(now);
    for session in state.sessions.values_mut() {
        if !session.authenticated && !session.closing && session.auth_deadline <= now {
            metrics::counter!("hypha_cluster_preauth_refused_total", "reason" => "deadline")
                .increment(1);
            tracing::debug!(addr = %session.peer_addr, "closing a node link that did not authenticate in time");
            session.closing = true;
            session.actor.kill();
        }
    }
}

fn publish_links(state: &PeersState) {
    let linked: BTreeSet<MemberKey> = state
        .sessions
        .values()
        .filter(|s| s.ready)
        .filter_map(|s| s.peer.clone())
        .collect();
    metrics::gauge!("hypha_cluster_links").set(linked.len() as f64);
    state.args.links.send_if_modified(|current| {
        let changed = *current != linked;
        *current = linked.clone();
        changed
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outbound_session_must_be_the_member_dialled() {
        let x = MemberKey::new("aa", 3);
        assert_eq!(check_dialled(&x, Some(&MemberKey::new("aa", 3))), Ok(()));
        // A later generation of the same node is still that node.
        assert_eq!(check_dialled(&MemberKey::new("aa", 4), Some(&x)), Ok(()));
        assert_eq!(check_dialled(&x, None), Ok(()));
        let err = check_dialled(&MemberKey::new("bb", 1), Some(&x)).unwrap_err();
        assert_eq!(err.dialled, "aa.3");
    }
}
