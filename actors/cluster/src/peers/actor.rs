//! The peers actor's shell: owns ractor_cluster's NodeServer (Isolated
//! mode, cluster cookie), dials admitted members by the rule in
//! [`super::dial`], re-dials with jittered backoff, closes the sessions of
//! members declared Down (ractor_cluster never notices a dead or hung peer
//! itself; a Left one closes its own as it exits, after its hand-off),
//! pings linked peers to catch hung ones, and publishes
//! the set of linked members for the membership actor to admit.
//! It also owns the link port's accept loop and the handshakes of
//! connections not yet authenticated (counted and timed by
//! [`crate::preauth`]; see [`super::inbound`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hypha_core::clock::SharedClock;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef};
use ractor_cluster::node::{NodeConnectionMode, NodeServerSessionInformation};
use ractor_cluster::{NodeEventSubscription, NodeServer, NodeServerMessage, NodeSessionMessage};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::dial::{we_dial, DialPolicy, DialState};
use super::inbound::{self, InboundFailure};
use super::link::{ping, remote_link};
use super::messages::{PeersMessage, PingOutcome, SessionEventKind};
use super::tls::LinkTls;
use crate::fence::{Fence, Presence};
use crate::membership::{ClusterView, MemberKey, MemberState, MembershipChannels};
use crate::preauth::{self, Admission, PreAuthLimits};
use hypha_core::identity::NodeId;

/// Largest node-link frame accepted, in bytes: one DHT message at its cap
/// ([`hypha_core::codec::MAX_ENCODED_BYTES`]) plus the envelope, with
/// room to spare. ractor_cluster's own default is 16 MiB; a peer sending
/// a larger length prefix loses its link before anything is allocated.
pub const MAX_LINK_FRAME_BYTES: u64 = 2 * hypha_core::codec::MAX_ENCODED_BYTES as u64;

/// Reconciliation period.
const TICK_MS: u64 = 200;

/// Settings of the peers actor.
#[derive(Debug, Clone)]
pub struct PeersConfig {
    /// This member.
    pub me: MemberKey,
    /// Address the node-link listener binds.
    pub listen: SocketAddr,
    /// Cookie for the handshake (already bound to the cluster id).
    pub cookie: String,
    /// Application ping period.
    pub ping_interval: Duration,
    /// Application ping timeout.
    pub ping_timeout: Duration,
    /// Consecutive missed pings after which a peer is hung.
    pub hung_after_misses: u32,
    /// Dial timing.
    pub dial: DialPolicy,
    /// Mutual TLS on node links, if configured.
    pub tls: Option<LinkTls>,
    /// Caps and deadline of connections not yet authenticated.
    pub preauth: PreAuthLimits,
}

/// The peers behaviour.
pub struct Peers;

/// What each incarnation is given (built once per node).
#[derive(Clone)]
pub struct PeersArgs {
    /// Settings.
    pub config: Arc<PeersConfig>,
    /// The membership view to follow.
    pub channels: MembershipChannels,
    /// Where the set of linked members is published.
    pub links: Arc<watch::Sender<BTreeSet<MemberKey>>>,
    /// The node's clock (dial backoff, pre-auth deadlines, pings).
    pub clock: SharedClock,
    /// The node's majority lease, renewed by answered pings.
    pub fence: Fence,
}

struct Session {
    actor: ActorRef<NodeSessionMessage>,
    peer: Option<MemberKey>,
    authenticated: bool,
    ready: bool,
    peer_addr: String,
    /// We killed it and wait for its disconnect event: close it only once.
    closing: bool,
    /// Closed unless authenticated by then.
    auth_deadline: Instant,
}

/// State of one incarnation.
pub struct PeersState {
    args: PeersArgs,
    server: ActorRef<NodeServerMessage>,
    sessions: HashMap<ActorId, Session>,
    dials: HashMap<MemberKey, DialState>,
    dialing_addrs: HashMap<SocketAddr, MemberKey>,
    misses: HashMap<MemberKey, u32>,
    pings_in_flight: HashSet<MemberKey>,
    admission: Admission,
    tasks: JoinSet<()>,
    /// Timers and the link port's accept loop.
    timers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for PeersState {
    fn drop(&mut self) {
        for timer in self.timers.drain(..) {
            timer.abort();
        }
        self.tasks.abort_all();
        // The sessions die with the NodeServer (a linked child); say so now
        // so nothing routes to them meanwhile.
        self.args.links.send_replace(BTreeSet::new());
    }
}

struct Forward(ActorRef<PeersMessage>);

impl Forward {
    fn send(&self, kind: SessionEventKind, ses: NodeServerSessionInformation) {
        let _ = self.0.cast(PeersMessage::Session(kind, Box::new(ses)));
    }
}

impl NodeEventSubscription for Forward {
    fn node_session_opened(&self, ses: NodeServerSessionInformation) {
        self.send(SessionEventKind::Opened, ses);
    }
    fn node_session_disconnected(&self, ses: NodeServerSessionInformation) {
        self.send(SessionEventKind::Disconnected, ses);
    }
    fn node_session_authenticated(&self, ses: NodeServerSessionInformation) {
        self.send(SessionEventKind::Authenticated, ses);
    }
    fn node_session_ready(&self, ses: NodeServerSessionInformation) {
        self.send(SessionEventKind::Ready, ses);
    }
}

/// The NodeServer, whose own listener takes an ephemeral loopback port
/// that nothing dials (ractor_cluster always starts one): the link port is
/// [`inbound`]'s. Same TLS requirement, so that the spare listener is no
/// way around it; a session arriving there is closed on sight.
async fn spawn_server(
    myself: &ActorRef<PeersMessage>,
    config: &PeersConfig,
) -> Result<ActorRef<NodeServerMessage>, ActorProcessingErr> {
    let server = NodeServer::new(
        0,
        config.cookie.clone(),
        config.me.link_name(),
        config.listen.ip().to_string(),
        config
            .tls
            .as_ref()
            .map(|t| ractor_cluster::IncomingEncryptionMode::Tls(t.acceptor.clone())),
        Some(NodeConnectionMode::Isolated),
    )
    .with_listen_addr(Ipv4Addr::LOCALHOST.into())
    .with_max_inbound_frame_size(MAX_LINK_FRAME_BYTES);
    let (server, _) = Actor::spawn_linked(None, server, (), myself.get_cell())
        .await
        .map_err(|err| format!("node-link server: {err}"))?;
    Ok(server)
}

impl Actor for Peers {
    type Msg = PeersMessage;
    type State = PeersState;
    type Arguments = PeersArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<PeersMessage>,
        args: PeersArgs,
    ) -> Result<PeersState, ActorProcessingErr> {
        args.links.send_replace(BTreeSet::new());
        let retry = Duration::from_millis(inbound::BIND_RETRY_MS);
        let listener = inbound::bind(args.config.listen, retry)
            .await
            .map_err(|e| format!("node links: {e}"))?;
        let server = spawn_server(&myself, &args.config).await?;
        server.cast(NodeServerMessage::SubscribeToEvents {
            id: "hypha.peers".into(),
            subscription: Box::new(Forward(myself.clone())),
        })?;
        let timers = vec![
            myself.send_interval(Duration::from_millis(TICK_MS), || PeersMessage::Tick),
            myself.send_interval(args.config.ping_interval, || PeersMessage::PingAll),
            tokio::spawn(inbound::accept_loop(listener, myself.clone())),
        ];
        tracing::info!(listen = %args.config.listen, "node links listening");
        Ok(PeersState {
            admission: Admission::new(args.config.preauth),
            args,
            server,
            sessions: HashMap::new(),
            dials: HashMap::new(),
            dialing_addrs: HashMap::new(),
            misses: HashMap::new(),
            pings_in_flight: HashSet::new(),
            tasks: JoinSet::new(),
            timers,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<PeersMessage>,
        message: PeersMessage,
        state: &mut PeersState,
    ) -> Result<(), ActorProcessingErr> {
        while state.tasks.try_join_next().is_some() {}
        match message {
            PeersMessage::Tick => reconcile(&myself, state),
            PeersMessage::PingAll => ping_all(&myself, state),
            PeersMessage::Session(kind, ses) => {
                on_session(state, kind, *ses);
                // A new link is pinged at once, not at the next round: the
                // majority lease ([`crate::fence`]) counts answered pings,
                // and a node that just linked to its peers should not wait
                // a ping period to acknowledge writes.
                if kind == SessionEventKind::Ready {
                    ping_all(&myself, state);
                }
            }
            PeersMessage::DialFailed(peer, err) => {
                tracing::debug!(peer = %peer.link_name(), "dial failed: {err}");
                let now = state.args.clock.now();
                state.dialing_addrs.retain(|_, p| *p != peer);
                if let Some(dial) = state.dials.get_mut(&peer) {
                    dial.failed(now, &state.args.config.dial, rand::random());
                }
            }
            PeersMessage::PingDone(peer, outcome) => on_ping(state, peer, outcome),
            PeersMessage::Accepted(stream, peer, _permit) => {
                on_accepted(&myself, state, *stream, peer)
            }
            PeersMessage::HandshakeFailed(peer, failure) => {
                on_handshake_failed(state, peer, &failure)
            }
            PeersMessage::ListenerStopped(reason) => return Err(reason.into()),
            PeersMessage::Crash => panic!("chaos: injected panic in peers"),
        }
        Ok(())
    }
}

/// The peer named in a session, `<link name>@<host>`.
fn session_peer(ses: &NodeServerSessionInformation) -> Option<MemberKey> {
    let name = &ses.peer_name.as_ref()?.name;
    let link_name = name.split('@').next()?;
    MemberKey::from_link_name(link_name)
}

fn on_session(state: &mut PeersState, kind: SessionEventKind, ses: NodeServerSessionInformation) {
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
                    auth_deadline: now + state.args.config.preauth.deadline(),
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
fn on_accepted(
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

fn on_handshake_failed(state: &mut PeersState, peer: SocketAddr, failure: &InboundFailure) {
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
fn enforce_deadlines(state: &mut PeersState, now: Instant) {
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

fn reconcile(myself: &ActorRef<PeersMessage>, state: &mut PeersState) {
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

fn ping_all(myself: &ActorRef<PeersMessage>, state: &mut PeersState) {
    let timeout = state.args.config.ping_timeout;
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

fn on_ping(state: &mut PeersState, peer: MemberKey, outcome: PingOutcome) {
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
    if *misses < state.args.config.hung_after_misses {
        return;
    }
    state.misses.remove(&peer);
    for session in state.sessions.values_mut() {
        if session.peer.as_ref() == Some(&peer) {
            close_session(session, "hung");
        }
    }
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
