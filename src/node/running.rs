//! A started node's life: running until a signal (SIGTERM/SIGINT stop it
//! gracefully, SIGHUP reloads TLS material and gossip keys), a restart
//! request (`POST /v1/node/restart`: the same graceful stop, then
//! [`NodeExit::Restart`]) or until the root supervisor escalates; leaving the cluster with a hand-off; the
//! bounded stop of the tree and the final flush.

use std::time::Duration;

use hypha_cluster::membership::{
    self, view::ClusterView, view::MemberState, MembershipChannels, MembershipMessage,
};
use hypha_core::actor_name;
use hypha_store as store;
use hypha_supervisors::RootExit;

use super::{NodeExit, RunningNode, CALL_TIMEOUT_MS};

impl RunningNode {
    /// Run until SIGTERM/SIGINT (then stop gracefully) or until the root
    /// supervisor gives up.
    /// SIGHUP reloads the node-link TLS material ([`Self::reload_tls`]),
    /// the admin HTTPS certificate and the gossip keys file, when set.
    pub async fn run_until_signal(mut self) -> NodeExit {
        let signal = wait_for_signal();
        tokio::pin!(signal);
        let mut hangups = hangup_signals();
        loop {
            tokio::select! {
                exit = &mut self.root.exit => {
                    self.flush().await;
                    return node_exit(exit);
                }
                () = &mut signal => {
                    tracing::info!(node = %self.name, "stopping: signal received; leaving the cluster");
                    self.leave().await;
                    return self.shutdown().await;
                }
                () = self.restart.notified() => {
                    tracing::info!(node = %self.name, "restarting on request: leaving the cluster, then starting again");
                    self.leave().await;
                    return match self.shutdown().await {
                        NodeExit::Stopped => NodeExit::Restart,
                        other => other,
                    };
                }
                Some(()) = recv_hangup(&mut hangups) => {
                    tracing::info!(node = %self.name, "SIGHUP: reloading node-link TLS, admin HTTPS and gossip keys");
                    // The outcomes are logged and counted by the reloads.
                    if self.tls.is_some() {
                        let _ = self.reload_tls().await;
                    }
                    if let Some(admin) = &self.admin_tls {
                        let _ = crate::admin::tls::reload_admin_tls(admin).await;
                    }
                    if self.gossip_keys.has_file() {
                        let _ = self.gossip_keys.reload().await;
                    }
                }
            }
        }
    }

    /// Re-read the node-link TLS directory: new handshakes use the new
    /// certificate and CA bundle, established links stay up. An error
    /// (plaintext links, unusable files) leaves the material in use.
    pub async fn reload_tls(&self) -> Result<(), String> {
        match &self.tls {
            Some(tls) => crate::cluster::reload_link_tls(tls).await,
            None => Err("node links are plaintext: there is no TLS material to reload".into()),
        }
    }

    /// The admin API's base URL: https:// when it serves HTTPS.
    pub fn admin_url(&self) -> String {
        match self.admin_tls {
            Some(_) => format!("https://{}", self.http_addr),
            None => format!("http://{}", self.http_addr),
        }
    }

    /// The S3 endpoint's base URL, when the node serves one (over HTTPS
    /// when the admin API is).
    pub fn s3_url(&self) -> Option<String> {
        let scheme = if self.admin_tls.is_some() {
            "https"
        } else {
            "http"
        };
        self.s3_addr.map(|a| format!("{scheme}://{a}"))
    }

    /// Wait until the root supervisor ends by itself (escalation).
    pub async fn wait(&mut self) -> NodeExit {
        node_exit((&mut self.root.exit).await)
    }

    /// Stop every actor in reverse order (bounded), then flush the database.
    pub async fn shutdown(self) -> NodeExit {
        stop_tree(&self.root.supervisor, self.shutdown_timeout).await;
        self.flush().await;
        NodeExit::Stopped
    }

    async fn flush(&self) {
        let engine = self.engine.clone();
        let flushed = tokio::task::spawn_blocking(move || store::KvEngine::flush(&engine)).await;
        if !matches!(flushed, Ok(Ok(_))) {
            tracing::error!(node = %self.name, "final flush failed: {flushed:?}");
        }
    }

    /// Leave gracefully: publish the leaving flag, run the subsystems'
    /// hand-off hooks within their bound, and let gossip carry the flag for
    /// a few rounds so that peers record Left, not Down.
    pub async fn leave(&self) {
        if !has_peers(&self.channels.view()) {
            // Nobody to hand partitions to or to tell: waiting out the
            // hand-off bound and the gossip grace would only delay the
            // stop (a lone dev node took 11 s to exit on Ctrl-C).
            tracing::info!(node = %self.name, "no peer in view: stopping without a hand-off");
            return;
        }
        let name = actor_name(&self.name, membership::ROLE);
        let flagged = match ractor::registry::where_is(name) {
            Some(cell) => {
                let actor: ractor::ActorRef<MembershipMessage> = cell.into();
                ractor::call_t!(
                    actor,
                    |reply| MembershipMessage::Leave { reply },
                    CALL_TIMEOUT_MS
                )
                .is_ok()
            }
            None => false,
        };
        if !flagged {
            tracing::warn!(node = %self.name, "could not publish the leaving flag; peers will see this node Down");
            return;
        }
        // Hand the node's partitions to the replicas they have without it
        // (pushed, confirmed equal, then dropped here); what does not
        // finish in time is re-replicated by the others from their copies.
        let left =
            crate::dht::hand_off(&self.leave.exchange_name, self.leave.handoff_timeout).await;
        if left > 0 {
            tracing::warn!(
                partitions = left,
                "hand-off did not finish within {:?}",
                self.leave.handoff_timeout
            );
        }
        tokio::time::sleep(self.leave.grace).await;
    }

    /// The membership view and events of this node.
    pub fn membership(&self) -> &MembershipChannels {
        &self.channels
    }

    /// The root supervisor (for embedding programs and tests).
    pub fn root(&self) -> &ractor::ActorRef<hypha_supervisors::SupervisorMessage> {
        &self.root.supervisor
    }
}

/// Whether any other member could take a hand-off or record the leave:
/// one that is not Down or Left.
fn has_peers(view: &ClusterView) -> bool {
    view.members
        .iter()
        .any(|m| !m.is_self && !matches!(m.state, MemberState::Down | MemberState::Left))
}

fn node_exit(root: Result<RootExit, tokio::sync::oneshot::error::RecvError>) -> NodeExit {
    match root {
        Ok(RootExit::Escalated(err)) => NodeExit::Escalated(err.to_string()),
        Ok(RootExit::Stopped) => NodeExit::Stopped,
        Err(_) => NodeExit::Killed,
    }
}

fn hangup_signals() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|err| {
            tracing::error!("cannot listen for SIGHUP; TLS reloads need the admin API: {err}")
        })
        .ok()
}

/// The next SIGHUP; never, if they cannot be received.
async fn recv_hangup(hangups: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hangups {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(err) => {
                tracing::error!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

/// Stop the tree within `timeout`, killing what remains after it.
async fn stop_tree(
    root: &ractor::ActorRef<hypha_supervisors::SupervisorMessage>,
    timeout: Duration,
) {
    if root
        .stop_and_wait(Some("shutdown".into()), Some(timeout))
        .await
        .is_err()
    {
        tracing::error!("graceful stop timed out; killing the remaining actors");
        root.kill();
        let _ = root.wait(Some(timeout)).await;
    }
}
