//! The accept loop: bounded connections, a header-read deadline, and a
//! bounded graceful drain. With HTTPS the TLS handshake of each connection
//! runs in its own task under the pre-auth deadline, and connections not
//! through TLS yet are capped per source and in all
//! ([`hypha_cluster::preauth`], as on the link and bulk ports): an idle or
//! slow client holds one slot for at most the deadline and never the
//! accept loop.

use hypha_core::clock::SharedClock;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use hypha_cluster::preauth::{Admission, PreAuthLimits, SourceClass};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::admin::tls::AdminTls;
use crate::config::HttpLimits;

/// Pause after a failed accept (e.g. out of file descriptors) so that the
/// loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
pub(super) struct ServeLimits {
    header_read_timeout: Duration,
    max_connections: usize,
    drain: Duration,
    preauth: PreAuthLimits,
}

impl From<&HttpLimits> for ServeLimits {
    fn from(l: &HttpLimits) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(l.header_read_timeout_ms),
            max_connections: l.max_connections,
            drain: Duration::from_millis(l.drain_timeout_ms),
            preauth: l.preauth,
        }
    }
}

/// Serve `router` on `listener` (over TLS when `tls` is set) until `stop`
/// turns true, then let in-flight requests finish for at most `drain`.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    tls: Option<AdminTls>,
    clock: SharedClock,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = Connections {
        router,
        limits,
        graceful: GracefulShutdown::new(),
        tasks: JoinSet::new(),
    };
    let mut handshakes: JoinSet<Handshaken> = JoinSet::new();
    let mut admission = Admission::new(limits.preauth);
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            Some(done) = handshakes.join_next(), if !handshakes.is_empty() => {
                // A task that died (it cannot panic in practice) is released
                // by its deadline through `expire` below.
                if let Ok(done) = done {
                    admission.release(done.peer);
                    match done.outcome {
                        Ok(stream) => conns.spawn(stream, done.peer, done.permit),
                        Err(failure) => count_refused(failure.label()),
                    }
                }
            }
            accepted = accept(&listener, &permits) => {
                let Some((stream, peer, permit)) = accepted else { continue };
                let Some(tls) = &tls else {
                    conns.spawn(stream, peer, permit);
                    continue;
                };
                let now = clock.now();
                admission.expire(now);
                // Every source is a stranger here: operators' hosts are not
                // members, and the per-source cap keeps one host's idle
                // connections from filling the pool.
                match admission.admit(peer, SourceClass::Stranger, now) {
                    Ok(deadline) => {
                        let acceptor = tls.acceptor().clone();
                        handshakes.spawn(handshake(acceptor, stream, peer, deadline, permit));
                    }
                    Err(refusal) => count_refused(refusal.label()),
                }
            }
        }
        while conns.tasks.try_join_next().is_some() {}
    }
    drop(listener);
    // Not yet HTTP: nothing in flight to drain.
    handshakes.abort_all();
    conns.drain().await;
}

/// The next connection, once a connection slot is free (excess clients
/// queue in the kernel backlog rather than in memory here). `None` after a
/// failed accept (e.g. out of file descriptors), past a short pause so
/// that the loop does not spin.
async fn accept(
    listener: &TcpListener,
    permits: &Arc<Semaphore>,
) -> Option<(TcpStream, std::net::SocketAddr, OwnedSemaphorePermit)> {
    let permit = permits.clone().acquire_owned().await.ok()?;
    match listener.accept().await {
        Ok((stream, peer)) => {
            let _ = stream.set_nodelay(true);
            Some((stream, peer, permit))
        }
        Err(err) => {
            tracing::warn!(error = %err, "accept failed");
            tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
            None
        }
    }
}

/// Why a connection never reached HTTP.
#[derive(Debug)]
enum HandshakeFailure {
    /// TLS did not finish within the pre-auth deadline.
    Deadline,
    /// Not TLS, no common protocol, a client that gave up…
    Tls,
}

impl HandshakeFailure {
    fn label(&self) -> &'static str {
        match self {
            HandshakeFailure::Deadline => "deadline",
            HandshakeFailure::Tls => "handshake",
        }
    }
}

/// A finished handshake task: the connection's slot comes back with it.
struct Handshaken {
    peer: std::net::SocketAddr,
    permit: OwnedSemaphorePermit,
    outcome: Result<TlsStream<TcpStream>, HandshakeFailure>,
}

async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    deadline: Instant,
    permit: OwnedSemaphorePermit,
) -> Handshaken {
    let outcome = match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(stream)) => Ok(stream),
        // Debug only: anyone who can reach the port can cause these.
        Ok(Err(err)) => {
            tracing::debug!(%peer, "admin TLS handshake failed: {err}");
            Err(HandshakeFailure::Tls)
        }
        Err(_) => Err(HandshakeFailure::Deadline),
    };
    Handshaken {
        peer,
        permit,
        outcome,
    }
}

fn count_refused(reason: &'static str) {
    metrics::counter!("hypha_http_tls_refused_total", "reason" => reason).increment(1);
}

/// The HTTP connections being served, and how they drain.
struct Connections {
    router: Router,
    limits: ServeLimits,
    graceful: GracefulShutdown,
    tasks: JoinSet<()>,
}

impl Connections {
    /// Serve HTTP/1.1 on `io` until it closes; `permit` is its slot.
    fn spawn<I>(&mut self, io: I, peer: std::net::SocketAddr, permit: OwnedSemaphorePermit)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        // Handlers see the source address (the failed-auth limit is kept
        // per source) as axum's ConnectInfo.
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            self.router.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        ));
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(self.limits.header_read_timeout)
            .serve_connection(TokioIo::new(io), service);
        let connection = self.graceful.watch(connection);
        self.tasks.spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }

    /// Let in-flight requests finish for at most the drain time, then close
    /// what is left.
    async fn drain(mut self) {
        if tokio::time::timeout(self.limits.drain, self.graceful.shutdown())
            .await
            .is_err()
        {
            tracing::warn!("HTTP drain timed out; closing remaining connections");
        }
        self.tasks.abort_all();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use axum::routing::get;
    use tokio::sync::Notify;

    /// Serve a router whose `/slow` answers 300 ms after it was entered
    /// (`entered` says when), with TLS from a fresh CA when `https`.
    struct Running {
        base: String,
        ca: std::path::PathBuf,
        entered: Arc<Notify>,
        stop: watch::Sender<bool>,
        task: tokio::task::JoinHandle<()>,
        _dir: tempfile::TempDir,
    }

    async fn start(https: bool) -> Running {
        let dir = tempfile::tempdir().unwrap();
        let (ca_dir, admin_dir) = (dir.path().join("ca"), dir.path().join("admin"));
        crate::commands::cert::ca(&ca_dir).unwrap();
        crate::commands::cert::admin(&ca_dir, &[], &admin_dir).unwrap();
        let tls = https.then(|| AdminTls::load(&admin_dir).unwrap());
        let entered = Arc::new(Notify::new());
        let signal = entered.clone();
        let router = Router::new().route(
            "/slow",
            get(move || {
                let signal = signal.clone();
                async move {
                    signal.notify_one();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done"
                }
            }),
        );
        let limits = ServeLimits {
            header_read_timeout: Duration::from_secs(5),
            max_connections: 16,
            drain: Duration::from_secs(2),
            preauth: PreAuthLimits::default(),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(serve(
            listener,
            router,
            limits,
            tls,
            SharedClock::system(),
            stopped,
        ));
        let scheme = if https { "https" } else { "http" };
        Running {
            base: format!("{scheme}://{addr}"),
            ca: admin_dir.join("ca.pem"),
            entered,
            stop,
            task,
            _dir: dir,
        }
    }

    /// Stopping lets a request in flight finish, then the loop ends and
    /// new connections are refused: the same over HTTP and HTTPS.
    async fn a_request_in_flight_finishes_when_the_server_stops(https: bool) {
        let running = start(https).await;
        let client = crate::commands::client(Some(&running.ca)).unwrap();
        let request = tokio::spawn(client.get(format!("{}/slow", running.base)).send());
        running.entered.notified().await;
        running.stop.send(true).unwrap();
        let response = request.await.unwrap().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), "done");
        tokio::time::timeout(Duration::from_secs(3), running.task)
            .await
            .expect("serve ends after the drain")
            .unwrap();
        let after = client.get(format!("{}/slow", running.base)).send().await;
        assert!(after.is_err(), "served after stop: {after:?}");
    }

    #[tokio::test]
    async fn http_drains_in_flight_requests_on_stop() {
        a_request_in_flight_finishes_when_the_server_stops(false).await;
    }

    #[tokio::test]
    async fn https_drains_in_flight_requests_on_stop() {
        a_request_in_flight_finishes_when_the_server_stops(true).await;
    }
}
