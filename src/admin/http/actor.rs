//! The HTTP server actor's shell: starts the accept loop on a duplicate of
//! the node's listener, drains it on stop, aborts it when killed.

use std::net::TcpListener as StdListener;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::messages::HttpMessage;
use super::serve::{serve, ServeLimits};
use crate::config::HttpLimits;

/// The HTTP server behaviour.
pub struct HttpServer;

/// What each incarnation is given.
#[derive(Clone)]
pub struct HttpArgs {
    /// The node's listening socket (bound once).
    pub listener: Arc<StdListener>,
    /// The routes.
    pub router: Router,
    /// Limits.
    pub limits: HttpLimits,
    /// Serve HTTPS with this certificate (shared with SIGHUP and the
    /// reload route, so every incarnation presents the current one).
    pub tls: Option<crate::admin::tls::AdminTls>,
    /// The node's clock (handshake deadlines on the HTTPS port).
    pub clock: hypha_core::clock::SharedClock,
}

/// State of one incarnation. Dropping it (kill, panic) aborts the accept
/// loop and with it every connection task.
pub struct HttpState {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    drain: Duration,
}

impl Drop for HttpState {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Actor for HttpServer {
    type Msg = HttpMessage;
    type State = HttpState;
    type Arguments = HttpArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<HttpMessage>,
        args: HttpArgs,
    ) -> Result<HttpState, ActorProcessingErr> {
        let std_listener = args.listener.try_clone()?;
        std_listener.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        let (stop, stopped) = watch::channel(false);
        let limits = ServeLimits::from(&args.limits);
        let task = tokio::spawn(serve(
            listener,
            args.router,
            limits,
            args.tls,
            args.clock,
            stopped,
        ));
        Ok(HttpState {
            stop,
            task: Some(task),
            drain: Duration::from_millis(args.limits.drain_timeout_ms),
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<HttpMessage>,
        state: &mut HttpState,
    ) -> Result<(), ActorProcessingErr> {
        let _ = state.stop.send(true);
        if let Some(mut task) = state.task.take() {
            // serve() bounds its own drain; this is a backstop.
            if tokio::time::timeout(state.drain * 2, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<HttpMessage>,
        message: HttpMessage,
        _state: &mut HttpState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            HttpMessage::Crash => panic!("chaos: injected panic in http server"),
        }
    }
}
