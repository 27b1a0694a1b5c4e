//! The accept loop: bounded connections, a header-read deadline, and a
//! bounded graceful drain.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::config::HttpLimits;

/// Pause after a failed accept (e.g. out of file descriptors) so that the
/// loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy)]
pub(super) struct ServeLimits {
    header_read_timeout: Duration,
    max_connections: usize,
    drain: Duration,
}

impl From<&HttpLimits> for ServeLimits {
    fn from(l: &HttpLimits) -> Self {
        Self {
            header_read_timeout: Duration::from_millis(l.header_read_timeout_ms),
            max_connections: l.max_connections,
            drain: Duration::from_millis(l.drain_timeout_ms),
        }
    }
}

/// Serve `router` on `listener` until `stop` turns true, then let in-flight
/// requests finish for at most `drain`.
pub(super) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServeLimits,
    mut stop: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    loop {
        // Wait for a free connection slot first: excess clients queue in the
        // kernel backlog rather than in memory here.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.changed() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                    continue;
                }
            },
            _ = stop.changed() => break,
        };
        let _ = stream.set_nodelay(true);
        // Handlers see the source address (the failed-auth limit is kept
        // per source) as axum's ConnectInfo.
        let service = TowerToHyperService::new(tower::ServiceExt::map_request(
            router.clone(),
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        ));
        let connection = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service);
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
        while connections.try_join_next().is_some() {}
    }
    drop(listener);
    if tokio::time::timeout(limits.drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP drain timed out; closing remaining connections");
    }
    connections.abort_all();
}
