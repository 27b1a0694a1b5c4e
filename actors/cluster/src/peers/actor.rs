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
//!
//! This module holds the settings, the state and the message dispatch;
//! the life of one session (accepted, handshaken, authenticated, ready,
//! closed) is in `sessions`, the periodic upkeep (closing links to members
//! that are gone or hung, dialing the ones we should) in `upkeep`.

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

use super::dial::{DialPolicy, DialState};
use super::inbound;
use super::messages::{PeersMessage, SessionEventKind};
use super::tls::LinkTls;
use crate::fence::Fence;
use crate::membership::{MemberKey, MembershipChannels};
use crate::preauth::Admission;
use crate::settings::ClusterSettings;

/// Largest node-link frame accepted, in bytes: one DHT message at its cap
mod sessions;
mod upkeep;

use sessions::{on_accepted, on_handshake_failed, on_session};
use upkeep::{on_ping, ping_all, reconcile};
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
    /// Dial timing.
    pub dial: DialPolicy,
    /// Mutual TLS on node links, if configured.
    pub tls: Option<LinkTls>,
    /// The `[cluster]` section: ping period and timeout, missed pings
    /// after which a peer is hung, and the caps and deadline of
    /// connections not yet authenticated.
    pub settings: ClusterSettings,
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
            myself.send_interval(
                Duration::from_millis(args.config.settings.ping_interval_ms),
                || PeersMessage::PingAll,
            ),
            tokio::spawn(inbound::accept_loop(listener, myself.clone())),
        ];
        tracing::info!(listen = %args.config.listen, "node links listening");
        Ok(PeersState {
            admission: Admission::new(args.config.settings.preauth),
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
