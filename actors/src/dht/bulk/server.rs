//! The bulk listener actor: accepts bulk connections, authenticates them
//! (TLS when configured, then the cookie handshake) and answers each
//! connection's requests one at a time with the node's [`DhtHandler`].
//!
//! The accept loop and the connections are tasks owned by the actor's
//! state, so they end with it: a restart closes every bulk connection and
//! dialers reconnect. A listener that fails tells the actor, which fails,
//! and the `dht` supervisor restarts it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hypha_supervisors::CrashMessage;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};

use super::handshake::{self, BulkKey};
use super::{frame, BoxIo};
use crate::dht::service::{encode_or_error, DhtHandler};
use crate::dht::wire::{self, Response};
use crate::peers::tls::LinkTls;

/// How long a restarted incarnation retries binding its port.
const BIND_RETRY_MS: u64 = 5_000;

/// Limits of the bulk listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BulkLimits {
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// TLS plus cookie handshake must finish within this.
    pub handshake_ms: u64,
    /// A connection with no request for this long is closed.
    pub idle_ms: u64,
}

impl Default for BulkLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            handshake_ms: 5_000,
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

async fn bind(addr: SocketAddr) -> Result<TcpListener, ActorProcessingErr> {
    let deadline = Instant::now() + Duration::from_millis(BIND_RETRY_MS);
    loop {
        match TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(err) if Instant::now() < deadline => {
                tracing::debug!("bulk bind retry on {addr}: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(err) => return Err(format!("bulk listener on {addr}: {err}").into()),
        }
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
        let listener = bind(args.listen).await?;
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

/// Accept until the listener fails; the reason it stopped.
async fn accept_loop(listener: TcpListener, args: Arc<BulkServerArgs>) -> String {
    let slots = Arc::new(Semaphore::new(args.limits.max_connections));
    let mut connections = JoinSet::new();
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) if is_transient(&err) => {
                tracing::warn!("bulk accept: {err}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(err) => return format!("bulk accept failed: {err}"),
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            metrics::counter!("hypha_dht_bulk_refused_total", "reason" => "connections")
                .increment(1);
            drop(stream);
            continue;
        };
        let args = args.clone();
        connections.spawn(async move {
            metrics::gauge!("hypha_dht_bulk_connections").increment(1.0);
            if let Err(reason) = serve(stream, &args).await {
                tracing::debug!(%peer, "bulk connection closed: {reason}");
            }
            metrics::gauge!("hypha_dht_bulk_connections").decrement(1.0);
            drop(slot);
        });
    }
}

fn is_transient(err: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        err.kind(),
        ConnectionAborted | ConnectionReset | Interrupted | WouldBlock
    ) || err.raw_os_error().is_some_and(|code| {
        // Out of descriptors: the listener stays usable once some close.
        code == nix::errno::Errno::EMFILE as i32 || code == nix::errno::Errno::ENFILE as i32
    })
}

async fn authenticate(stream: TcpStream, args: &BulkServerArgs) -> Result<BoxIo, String> {
    let _ = stream.set_nodelay(true);
    let limit = Duration::from_millis(args.limits.handshake_ms);
    let mut io: BoxIo = match &args.tls {
        Some(tls) => {
            let accepted = tokio::time::timeout(limit, tls.acceptor.accept(stream))
                .await
                .map_err(|_| "TLS handshake timed out".to_owned())?
                .map_err(|e| format!("TLS: {e}"))?;
            Box::pin(accepted)
        }
        None => Box::pin(stream),
    };
    handshake::accept(&mut io, &args.key, limit)
        .await
        .map_err(|e| e.to_string())?;
    Ok(io)
}

/// Serve one connection until it closes, idles out or breaks.
async fn serve(stream: TcpStream, args: &BulkServerArgs) -> Result<(), String> {
    let mut io = match authenticate(stream, args).await {
        Ok(io) => io,
        Err(reason) => {
            metrics::counter!("hypha_dht_bulk_refused_total", "reason" => "handshake").increment(1);
            return Err(reason);
        }
    };
    let idle = Duration::from_millis(args.limits.idle_ms);
    loop {
        let bytes = match tokio::time::timeout(idle, frame::read(&mut io)).await {
            Err(_) => return Ok(()),
            Ok(Ok(None)) => return Ok(()),
            Ok(Ok(Some(bytes))) => bytes,
            Ok(Err(err)) => return Err(err.to_string()),
        };
        let response = match wire::decode_request(&bytes) {
            Ok(request) => args.handler.handle(request).await,
            Err(err) => {
                metrics::counter!("hypha_dht_bad_requests_total").increment(1);
                Response::Error(err)
            }
        };
        frame::write(&mut io, &encode_or_error(&response))
            .await
            .map_err(|e| e.to_string())?;
    }
}
