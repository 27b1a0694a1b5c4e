//! The bulk listener actor: accepts bulk connections, authenticates them
//! (TLS when configured, then the cookie handshake) and answers each
//! connection's requests one at a time with the node's [`DhtHandler`].
//!
//! The accept loop and the connections are tasks owned by the actor's
//! state, so they end with it: a restart closes every bulk connection and
//! dialers reconnect. A listener that fails tells the actor, which fails,
//! and the `dht` supervisor restarts it.
//!
//! Before authentication a connection is counted by [`hypha_cluster::preauth`]
//! (per stranger address, per pool) and must finish TLS and the cookie
//! handshake within one deadline; only then does it take one of the
//! `max_connections` serving slots. Idle connections from strangers thus
//! hold at most their pool for at most the deadline, and never a slot
//! that chunk traffic needs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hypha_supervisors::CrashMessage;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use super::handshake::{self, BulkKey};
use super::{frame, BoxIo};
use crate::service::DhtHandler;
use hypha_cluster::membership::ClusterView;
use hypha_cluster::peers::tls::LinkTls;
use hypha_cluster::preauth::{self, Admission, PreAuthLimits};
use hypha_core::clock::SharedClock;
use hypha_core::rpc;

/// How long a restarted incarnation retries binding its port.
const BIND_RETRY_MS: u64 = 5_000;

/// Limits of the bulk listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkLimits {
    /// Authenticated connections served at once; more are closed once
    /// authenticated.
    pub max_connections: usize,
    /// Connections still in their handshake (caps and deadline).
    pub preauth: PreAuthLimits,
    /// A connection with no request for this long is closed.
    pub idle_ms: u64,
}

impl Default for BulkLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            preauth: PreAuthLimits::default(),
            idle_ms: 60_000,
        }
    }
}

/// The listener behaviour.
pub struct BulkServer;

/// What each incarnation is given.
#[derive(Clone)]
pub struct BulkServerArgs {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Key derived from the cluster cookie.
    pub key: BulkKey,
    /// Mutual TLS, when the node has a TLS directory.
    pub tls: Option<LinkTls>,
    /// Answers requests.
    pub handler: DhtHandler,
    /// Limits.
    pub limits: BulkLimits,
    /// The membership view: members' hosts draw from their own
    /// unauthenticated pool.
    pub view: watch::Receiver<Arc<ClusterView>>,
    /// The node's clock (admission windows).
    pub clock: SharedClock,
}

/// Messages of the listener (local only).
pub enum BulkServerMessage {
    /// The accept loop ended; the actor fails so that it is restarted.
    ListenerStopped(String),
    /// Chaos: panic inside the handler.
    Crash,
}

impl ractor::Message for BulkServerMessage {}

impl CrashMessage for BulkServerMessage {
    fn crash() -> Self {
        BulkServerMessage::Crash
    }
}

/// State of one incarnation.
pub struct BulkServerState {
    accept_loop: JoinHandle<()>,
}

impl Drop for BulkServerState {
    fn drop(&mut self) {
        // Aborting the loop drops its JoinSet, which aborts every connection.
        self.accept_loop.abort();
    }
}

impl Actor for BulkServer {
    type Msg = BulkServerMessage;
    type State = BulkServerState;
    type Arguments = BulkServerArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<BulkServerMessage>,
        args: BulkServerArgs,
    ) -> Result<BulkServerState, ActorProcessingErr> {
        let retry = Duration::from_millis(BIND_RETRY_MS);
        let listener = hypha_cluster::peers::inbound::bind(args.listen, retry)
            .await
            .map_err(|e| format!("bulk listener: {e}"))?;
        tracing::info!(listen = %args.listen, tls = args.tls.is_some(), "bulk listener started");
        let accept_loop = tokio::spawn(async move {
            let reason = accept_loop(listener, Arc::new(args)).await;
            let _ = myself.cast(BulkServerMessage::ListenerStopped(reason));
        });
        Ok(BulkServerState { accept_loop })
    }

    async fn handle(
        &self,
        _myself: ActorRef<BulkServerMessage>,
        message: BulkServerMessage,
        _state: &mut BulkServerState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            BulkServerMessage::ListenerStopped(reason) => Err(reason.into()),
            BulkServerMessage::Crash => panic!("chaos: injected panic in bulk listener"),
        }
    }
}

/// Why a handshake did not authenticate.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// TLS and the cookie handshake did not finish within the deadline.
    #[error("handshake not finished within the deadline")]
    Deadline,
    /// TLS or the cookie proof failed.
    #[error("{0}")]
    Refused(String),
}

/// What the accept loop owns: the pre-auth counters, the handshakes in
/// flight and the authenticated connections.
struct Front {
    args: Arc<BulkServerArgs>,
    admission: Admission,
    handshakes: JoinSet<Result<BoxIo, Failure>>,
    handshake_peers: HashMap<tokio::task::Id, SocketAddr>,
    slots: Arc<Semaphore>,
    connections: JoinSet<()>,
}

/// Accept until the listener fails; the reason it stopped.
async fn accept_loop(listener: TcpListener, args: Arc<BulkServerArgs>) -> String {
    let mut front = Front {
        admission: Admission::new(args.limits.preauth),
        handshakes: JoinSet::new(),
        handshake_peers: HashMap::new(),
        slots: Arc::new(Semaphore::new(args.limits.max_connections)),
        connections: JoinSet::new(),
        args,
    };
    loop {
        while front.connections.try_join_next().is_some() {}
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => front.admit(stream, peer),
                Err(err) if preauth::is_transient_accept_error(&err) => {
                    tracing::warn!("bulk accept: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => return format!("bulk accept failed: {err}"),
            },
            Some(done) = front.handshakes.join_next_with_id() => front.handshake_done(done),
        }
    }
}

fn refused(reason: &'static str) {
    metrics::counter!("hypha_dht_bulk_refused_total", "reason" => reason).increment(1);
}

impl Front {
    /// Count the new connection and start its handshake, or close it.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        let members = preauth::member_hosts(&self.args.view.borrow());
        let class = preauth::classify(peer.ip(), &members);
        let now = self.args.clock.now();
        if let Err(refusal) = self.admission.admit(peer, class, now) {
            refused(refusal.label());
            tracing::debug!(%peer, "bulk connection refused: {refusal}");
            return;
        }
        let args = self.args.clone();
        let task = self
            .handshakes
            .spawn(async move { authenticate(stream, &args).await });
        self.handshake_peers.insert(task.id(), peer);
    }

    /// A handshake ended: release its count; serve it if it authenticated.
    fn handshake_done(
        &mut self,
        done: Result<(tokio::task::Id, Result<BoxIo, Failure>), tokio::task::JoinError>,
    ) {
        let id = match &done {
            Ok((id, _)) => *id,
            Err(err) => err.id(),
        };
        let Some(peer) = self.handshake_peers.remove(&id) else {
            return;
        };
        self.admission.release(peer);
        let io = match done {
            Ok((_, Ok(io))) => io,
            Ok((_, Err(Failure::Deadline))) => {
                refused("deadline");
                tracing::debug!(%peer, "bulk handshake not finished within the deadline");
                return;
            }
            Ok((_, Err(reason))) => {
                refused("handshake");
                tracing::debug!(%peer, "bulk connection refused: {reason}");
                return;
            }
            Err(_) => return,
        };
        let Ok(slot) = self.slots.clone().try_acquire_owned() else {
            refused("connections");
            return;
        };
        let args = self.args.clone();
        self.connections.spawn(async move {
            metrics::gauge!("hypha_dht_bulk_connections").increment(1.0);
            if let Err(reason) = serve(io, &args).await {
                tracing::debug!(%peer, "bulk connection closed: {reason}");
            }
            metrics::gauge!("hypha_dht_bulk_connections").decrement(1.0);
            drop(slot);
        });
    }
}

/// TLS (when configured) and the cookie handshake, within one deadline.
async fn authenticate(stream: TcpStream, args: &BulkServerArgs) -> Result<BoxIo, Failure> {
    let limit = args.limits.preauth.deadline();
    tokio::time::timeout(limit, handshake_steps(stream, args, limit))
        .await
        .map_err(|_| Failure::Deadline)?
}

async fn handshake_steps(
    stream: TcpStream,
    args: &BulkServerArgs,
    limit: Duration,
) -> Result<BoxIo, Failure> {
    let _ = stream.set_nodelay(true);
    let mut io: BoxIo = match &args.tls {
        Some(tls) => {
            let accepted = tls
                .acceptor
                .accept(stream)
                .await
                .map_err(|e| Failure::Refused(format!("TLS: {e}")))?;
            Box::pin(accepted)
        }
        None => Box::pin(stream),
    };
    handshake::accept(&mut io, &args.key, limit)
        .await
        .map_err(|e| Failure::Refused(e.to_string()))?;
    Ok(io)
}

/// Serve one connection until it closes, idles out or breaks.
async fn serve(mut io: BoxIo, args: &BulkServerArgs) -> Result<(), String> {
    let idle = Duration::from_millis(args.limits.idle_ms);
    loop {
        let bytes = match tokio::time::timeout(idle, frame::read(&mut io)).await {
            Err(_) => return Ok(()),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(bytes))) => bytes,
            Ok(Err(err)) => return Err(err.to_string()),
        };
        // The same decoding, refusals and metric as the service actor.
        let answer = rpc::answer_frame(&args.handler, &bytes).await;
        frame::write(&mut io, &answer)
            .await
            .map_err(|e| e.to_string())?;
    }
}
