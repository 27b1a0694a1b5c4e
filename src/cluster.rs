//! Assembly of the node's cluster subsystem: the channels shared by
//! membership, peers and the admin API (created once, so they outlive
//! restarts), the settings each actor gets, and the `cluster` supervisor's
//! child specs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;

use hypha_cluster::fence::Fence;
use hypha_cluster::membership::info::{NodeInfo, INFO_VERSION};
use hypha_cluster::membership::seal::SealedTransport;
use hypha_cluster::membership::{
    self, AdmissionPolicy, MemberKey, Membership, MembershipArgs, MembershipChannels,
    MembershipConfig, MembershipMessage,
};
use hypha_cluster::peers::tls::LinkTls;
use hypha_cluster::peers::{
    self, dial::DialPolicy, LinkArgs, LinkProbe, LinkService, Peers, PeersArgs, PeersConfig,
    PeersMessage,
};
use hypha_core::actor_name;
use hypha_core::clock::SharedClock;
use hypha_supervisors::{ChildSpec, Strategy, SupervisorFlags};
use tokio::sync::watch;

use crate::config::{LinkPlan, Listen, NodeConfig};
use crate::gossip_keys::GossipKeys;
use crate::node::NodeError;
use crate::secrets::Secrets;

/// Restarts the cluster supervisor tolerates in its window.
const CLUSTER_MAX_RESTARTS: u32 = 5;
const CLUSTER_PERIOD_MS: u64 = 10_000;

/// Which socket kind a port is for.
#[derive(Debug, Clone, Copy)]
pub enum Proto {
    /// Node links.
    Tcp,
    /// Gossip.
    Udp,
}

/// A socket bound to resolve port 0, kept until every port of the node is
/// resolved.
pub enum Held {
    /// A TCP listener.
    Tcp(TcpListener),
    /// A UDP socket.
    Udp(UdpSocket),
}

/// Port 0 means "any free port": pick one now, because the address is
/// published through gossip before the actor binds it. (Another process
/// could take it in between; the actor's bind then fails loudly.) The
/// socket is returned so the caller holds it while it resolves the node's
/// other ports: released at once, the kernel could hand the same port to
/// the node's next listener (seen: node links and bulk on one port).
pub fn resolve_port(
    addr: SocketAddr,
    proto: Proto,
) -> Result<(SocketAddr, Option<Held>), NodeError> {
    if addr.port() != 0 {
        return Ok((addr, None));
    }
    let bind_error = |source| NodeError::Bind {
        addr: addr.to_string(),
        source,
    };
    let held = match proto {
        Proto::Tcp => Held::Tcp(TcpListener::bind(addr).map_err(bind_error)?),
        Proto::Udp => Held::Udp(UdpSocket::bind(addr).map_err(bind_error)?),
    };
    let local = match &held {
        Held::Tcp(l) => l.local_addr(),
        Held::Udp(s) => s.local_addr(),
    };
    Ok((local.map_err(bind_error)?, Some(held)))
}

/// Everything the cluster supervisor's children are built from.
pub struct ClusterParts {
    /// The membership view and events.
    pub channels: MembershipChannels,
    /// Mutual TLS of node links (bulk links use it too).
    pub tls: Option<LinkTls>,
    /// The cluster-scoped cookie node links authenticate with.
    pub link_cookie: String,
    /// The keyring sealing gossip (reloaded on SIGHUP).
    pub gossip_keys: GossipKeys,
    /// The node's majority lease (renewed by the peers actor's pings,
    /// read by the DHT before it acknowledges).
    pub fence: Fence,
    /// The node's labels as stored; membership publishes each change.
    pub labels: Arc<watch::Sender<BTreeMap<String, String>>>,
    node: String,
    membership: MembershipArgs,
    peers: PeersArgs,
    link: LinkArgs,
}

/// A node presents a certificate naming its own id, or it does not start:
/// peers check that name against the node they meant to reach.
fn check_certificate_names(
    tls: &LinkTls,
    me: &MemberKey,
    config: &NodeConfig,
) -> Result<(), NodeError> {
    let named = tls.node_id().to_hex();
    if named == me.node_id {
        return Ok(());
    }
    let status = tls.status();
    Err(NodeError::Tls(format!(
        "the link certificate in {} names node {named}, but this node (data directory {}) is {}; \
         issue it a certificate with `hypha cert node --data-dir {} ...`",
        status.dir.display(),
        config.data_dir.display(),
        me.node_id,
        config.data_dir.display(),
    )))
}

impl ClusterParts {
    /// Build the parts for one node.
    pub async fn new(
        config: &NodeConfig,
        secrets: &Secrets,
        node: &str,
        me: MemberKey,
        listen: Listen,
        clock: SharedClock,
    ) -> Result<Self, NodeError> {
        let tls = match config
            .link_plan()
            .map_err(|e| NodeError::Tls(e.to_string()))?
        {
            LinkPlan::MutualTls(dir) => {
                let tls = LinkTls::load(&dir).map_err(|e| NodeError::Tls(e.to_string()))?;
                check_certificate_names(&tls, &me, config)?;
                Some(tls)
            }
            LinkPlan::Plaintext => {
                tracing::warn!("node links are plaintext after the cookie handshake");
                None
            }
        };
        let channels = MembershipChannels::new();
        let fence = Fence::new(
            std::time::Duration::from_millis(config.cluster.lease_ms),
            std::time::Duration::from_millis(config.dht.down_grace_ms),
            clock.now(),
        );
        let (links_tx, links_rx) = watch::channel(BTreeSet::new());
        let (labels_tx, labels_rx) = watch::channel(config.labels.clone());
        let data_dir = config.data_dir.clone();
        let capacity_dir = data_dir.clone();
        let capacity =
            tokio::task::spawn_blocking(move || membership::capacity(Some(&capacity_dir)))
                .await
                .unwrap_or_default();
        let c = &config.cluster;
        let membership_config = MembershipConfig {
            cluster_id: c.id.clone(),
            me: me.clone(),
            gossip_listen: listen.gossip,
            gossip_advertise: listen.gossip,
            seeds: config.seeds.clone(),
            info: NodeInfo {
                version: INFO_VERSION,
                name: node.to_owned(),
                cluster_addr: listen.cluster,
                http_addr: listen.http,
                bulk_addr: Some(listen.bulk),
                capacity,
                labels: config.labels.clone(),
            },
            data_dir: Some(data_dir),
            timing: c.gossip,
            probes: c.probes,
            admission: AdmissionPolicy::AuthenticatedLink,
        };
        let gossip_keys =
            GossipKeys::load(&c.id, secrets.cookie.expose(), c.gossip_keys_file.clone())
                .map_err(|e| NodeError::GossipKeys(e.to_string()))?;
        let gossip = SealedTransport::new(gossip_keys.subscribe(), c.gossip_seal, clock.clone());
        let probes: Arc<LinkProbe> = Arc::new(LinkProbe);
        let link_cookie = peers::link_cookie(&c.id, secrets.cookie.expose());
        let peers_config = PeersConfig {
            me: me.clone(),
            listen: listen.cluster,
            cookie: link_cookie.clone(),
            dial: DialPolicy::default(),
            tls: tls.clone(),
            settings: c.clone(),
        };
        Ok(Self {
            labels: Arc::new(labels_tx),
            node: node.to_owned(),
            membership: MembershipArgs {
                config: Arc::new(membership_config),
                gossip: Arc::new(gossip),
                probes: probes.clone(),
                channels: channels.clone(),
                links: links_rx,
                watermark: Default::default(),
                clock: clock.clone(),
                labels: Some(labels_rx),
            },
            peers: PeersArgs {
                config: Arc::new(peers_config),
                channels: channels.clone(),
                links: Arc::new(links_tx),
                clock,
                fence: fence.clone(),
            },
            link: LinkArgs { me, probes },
            channels,
            tls,
            link_cookie,
            gossip_keys,
            fence,
        })
    }

    /// The `cluster` supervisor: link, peers, membership (one_for_one).
    pub fn spec(self) -> ChildSpec {
        let Self {
            node,
            membership: membership_args,
            peers: peers_args,
            link: link_args,
            ..
        } = self;
        let link_name = actor_name(&node, peers::LINK_ROLE);
        let link = ChildSpec::actor("link", move |_ctx| {
            (Some(link_name.clone()), LinkService, link_args.clone())
        });
        // No crash message: LinkMessage is a wire type, and a variant that
        // panics would be reachable from the network. Chaos kills it instead.
        let peers_name = actor_name(&node, peers::ROLE);
        let peers = ChildSpec::actor("peers", move |_ctx| {
            (Some(peers_name.clone()), Peers, peers_args.clone())
        })
        .crash_message::<PeersMessage>();
        let membership_name = actor_name(&node, membership::ROLE);
        let membership = ChildSpec::actor("membership", move |_ctx| {
            (
                Some(membership_name.clone()),
                Membership,
                membership_args.clone(),
            )
        })
        .crash_message::<MembershipMessage>();
        let flags = SupervisorFlags::new(Strategy::OneForOne)
            .intensity(CLUSTER_MAX_RESTARTS, CLUSTER_PERIOD_MS);
        ChildSpec::supervisor("cluster", flags, vec![link, peers, membership])
    }
}

/// Run a reload (file I/O) on the blocking pool; its error as text.
pub(crate) async fn reload_off_runtime<T, E>(
    reload: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, String>
where
    T: Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    tokio::task::spawn_blocking(reload)
        .await
        .map_err(|e| format!("reload task: {e}"))
        .and_then(|r| r.map_err(|e| e.to_string()))
}

/// Re-read `tls`'s directory off the async workers (it is file I/O),
/// count the outcome, and log it: the SIGHUP handler and the admin route
/// share this.
pub async fn reload_link_tls(tls: &LinkTls) -> Result<(), String> {
    let reloading = tls.clone();
    let result = reload_off_runtime(move || reloading.reload()).await;
    match &result {
        Ok(status) => {
            metrics::counter!("hypha_tls_reloads_total", "result" => "ok").increment(1);
            tracing::info!(
                cert_blake3 = %status.cert_blake3,
                trusted_cas = status.trusted_cas,
                "node-link TLS material reloaded"
            );
        }
        Err(err) => {
            metrics::counter!("hypha_tls_reloads_total", "result" => "error").increment(1);
            tracing::error!("node-link TLS reload failed, the material in use is kept: {err}");
        }
    }
    result.map(|_| ())
}
