//! The peers actor's periodic upkeep: on each tick, close the links of
//! members declared Down or superseded and dial the admitted members this
//! node should dial (by [`crate::peers::dial`]'s rule and backoff); on each
//! ping round, ping linked peers and close those that missed too many.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::Duration;

use ractor::ActorRef;

use crate::fence::Presence;
use crate::membership::{ClusterView, MemberKey, MemberState};
use crate::peers::dial::{we_dial, DialState};
use crate::peers::link::{ping, remote_link};
use crate::peers::messages::{PeersMessage, PingOutcome};
use crate::peers::tls::LinkTls;
use hypha_core::identity::NodeId;

/// Largest node-link frame accepted, in bytes: one DHT message at its cap
use super::sessions::enforce_deadlines;
use super::{PeersState, Session};

/// Why a session is closed by us.
fn close_reason(view: &ClusterView, peer: &MemberKey) -> Option<&'static str> {
    let member = view.member(&peer.node_id)?;
    if member.key.generation != peer.generation {
        return Some("superseded");
    }
    match member.state {
        MemberState::Down => Some("down"),
        // A leaving member keeps its links until its process closes them:
        // it is still handing its data off over them (docs/anti-entropy.md).
        _ => None,
    }
}

fn close_session(session: &mut Session, reason: &'static str) {
    if session.closing {
        return;
    }
    session.closing = true;
    let peer = session
        .peer
        .as_ref()
        .map(MemberKey::link_name)
        .unwrap_or_default();
    tracing::warn!(peer = %peer, reason, "closing node link");
    metrics::counter!("hypha_cluster_links_closed_total", "reason" => reason).increment(1);
    session.actor.kill();
}

pub(super) fn reconcile(myself: &ActorRef<PeersMessage>, state: &mut PeersState) {
    let view = state.args.channels.view();
    let now = state.args.clock.now();
    enforce_deadlines(state, now);
    for session in state.sessions.values_mut() {
        let reason = session.peer.as_ref().and_then(|p| close_reason(&view, p));
        if let Some(reason) = reason {
            close_session(session, reason);
        }
    }
    let linked: HashSet<MemberKey> = state
        .sessions
        .values()
        .filter_map(|s| s.peer.clone())
        .collect();
    let me = state.args.config.me.clone();
    for member in &view.members {
        let wanted = !member.is_self
            && matches!(
                member.state,
                MemberState::Joining | MemberState::Up | MemberState::Suspect
            )
            && we_dial(&me, &member.key)
            && !linked.contains(&member.key);
        let Some(addr) = member
            .info
            .as_ref()
            .map(|i| i.cluster_addr)
            .filter(|_| wanted)
        else {
            continue;
        };
        let policy = state.args.config.dial;
        let dial = state
            .dials
            .entry(member.key.clone())
            .or_insert_with(|| DialState::new(now));
        if dial.due(now, &policy) {
            dial.started(now);
            start_dial(myself, state, member.key.clone(), addr);
        }
    }
    let known: HashSet<&MemberKey> = view.members.iter().map(|m| &m.key).collect();
    state.dials.retain(|k, _| known.contains(k));
}

fn start_dial(
    myself: &ActorRef<PeersMessage>,
    state: &mut PeersState,
    peer: MemberKey,
    addr: SocketAddr,
) {
    tracing::debug!(peer = %peer.link_name(), %addr, "dialing");
    state.dialing_addrs.insert(addr, peer.clone());
    let server = state.server.clone();
    let me = myself.clone();
    let timeout = state.args.config.dial.handshake_timeout;
    let tls = state.args.config.tls.clone();
    state.tasks.spawn(async move {
        let connect = async {
            match tls {
                Some(tls) => {
                    // The certificate must name the member we mean, not just any node.
                    let name = peer_server_name(&peer).map_err(ractor_cluster::ClientConnectErr::Encryption)?;
                    ractor_cluster::client_connect_enc(&server, addr, tls.connector.clone(), name).await
                }
                None => ractor_cluster::client_connect(&server, addr).await,
            }
        };
        let err = match tokio::time::timeout(timeout, connect).await {
            Ok(Ok(())) => return,
            Ok(Err(ractor_cluster::ClientConnectErr::Encryption(err))) => {
                metrics::counter!("hypha_cluster_handshakes_refused_total", "reason" => "tls").increment(1);
                tracing::warn!(peer = %peer.link_name(), %addr, "node link refused: TLS handshake failed: {err}");
                format!("TLS: {err}")
            }
            Ok(Err(err)) => err.to_string(),
            Err(_) => "connect timed out".to_owned(),
        };
        let _ = me.cast(PeersMessage::DialFailed(peer, err));
    });
}

/// The TLS name that only `peer`'s certificate carries.
fn peer_server_name(
    peer: &MemberKey,
) -> Result<rustls_pki_types::ServerName<'static>, std::io::Error> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let id: NodeId = peer
        .node_id
        .parse()
        .map_err(|e: hypha_core::identity::NodeIdError| invalid(e.to_string()))?;
    LinkTls::server_name_for(&id).map_err(|e| invalid(e.to_string()))
}

pub(super) fn ping_all(myself: &ActorRef<PeersMessage>, state: &mut PeersState) {
    let timeout = Duration::from_millis(state.args.config.settings.ping_timeout_ms);
    observe_cluster(state);
    let peers: Vec<MemberKey> = state
        .sessions
        .values()
        .filter(|s| s.ready && !s.closing)
        .filter_map(|s| s.peer.clone())
        .filter(|p| !state.pings_in_flight.contains(p))
        .collect();
    for peer in peers {
        let Some(link) = remote_link(&peer) else {
            continue;
        };
        state.pings_in_flight.insert(peer.clone());
        let me = myself.clone();
        let sent = state.args.clock.now();
        state.tasks.spawn(async move {
            let outcome = match ping(&link, timeout).await {
                Ok(()) => PingOutcome::Answered { sent },
                Err(_) => PingOutcome::Missed,
            };
            let _ = me.cast(PeersMessage::PingDone(peer, outcome));
        });
    }
}

/// Tell the fence which nodes make up the cluster now.
fn observe_cluster(state: &PeersState) {
    let view = state.args.channels.view();
    let me = &state.args.config.me.node_id;
    let nodes = view
        .members
        .iter()
        .filter(|m| &m.key.node_id != me)
        .map(|m| {
            let presence = match m.state {
                MemberState::Left => Presence::Left,
                _ => Presence::Member,
            };
            (m.key.node_id.as_str(), presence)
        });
    let now = state.args.clock.now();
    state.args.fence.observe(nodes, now);
    let held = state.args.fence.held(now);
    metrics::gauge!("hypha_cluster_majority_lease").set(if held { 1.0 } else { 0.0 });
}

pub(super) fn on_ping(state: &mut PeersState, peer: MemberKey, outcome: PingOutcome) {
    state.pings_in_flight.remove(&peer);
    if let PingOutcome::Answered { sent } = outcome {
        state.misses.remove(&peer);
        state
            .args
            .fence
            .answered(&peer.node_id, sent, state.args.clock.now());
        return;
    }
    let misses = state.misses.entry(peer.clone()).or_insert(0);
    *misses = misses.saturating_add(1);
    if *misses < state.args.config.settings.hung_after_misses {
        return;
    }
    state.misses.remove(&peer);
    for session in state.sessions.values_mut() {
        if session.peer.as_ref() == Some(&peer) {
            close_session(session, "hung");
        }
    }
}
