//! Assembly of the node's DHT subsystem: the placement channel (created
//! once, so it outlives router restarts), the file coordinator the admin
//! API uses, and the `dht` supervisor's child specs.
//!
//! ```text
//! dht (one_for_one)
//! ├── router      follows membership; publishes placement + routing table
//! ├── service     the remotable RPC endpoint peers call
//! ├── bulk        the bulk-link listener (chunk transfers)
//! ├── collector   removes unreferenced chunks and confirmed old tombstones
//! └── exchange    anti-entropy: repairs replicas, re-replicates, hands off
//! ```
//! The children share state only through the store, the placement
//! channel and the anti-entropy confirmations (which the collector only
//! reads, and which start empty — nothing confirmed — after a restart),
//! so each restarts alone.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hypha_cluster::fence::Fence;
use hypha_cluster::membership::{MemberKey, MembershipChannels};
use hypha_cluster::peers::tls::LinkTls;
use hypha_cluster::preauth::PreAuthLimits;
use hypha_core::actor_name;
use hypha_core::clock::SharedClock;
use hypha_core::identity::NodeId;
use hypha_dht as dht;
use hypha_dht::anti_entropy::caught_up::CaughtUp;
use hypha_dht::anti_entropy::confirmed::Confirmed;
use hypha_dht::anti_entropy::run::Runner;
use hypha_dht::anti_entropy::throttle::Throttle;
use hypha_dht::anti_entropy::{AntiEntropy, AntiEntropyArgs, AntiEntropyMessage};
use hypha_dht::bulk::handshake::BulkKey;
use hypha_dht::bulk::server::BulkLimits;
use hypha_dht::bulk::{BulkClient, BulkServer, BulkServerArgs, BulkServerMessage};
use hypha_dht::files::{Collector, CollectorArgs, CollectorMessage, Files};
use hypha_dht::hlc::Hlc;
use hypha_dht::placement::Placement;
use hypha_dht::router::{Router, RouterArgs, RouterMessage, Settle};
use hypha_dht::service::{dht_group, DhtHandler, DhtService, DhtServiceArgs};
use hypha_dht::storage::DhtStore;
use hypha_dht::transport::{BulkRoute, ClusterTransport};
use hypha_store::StoreClient;
use hypha_supervisors::{ChildSpec, Strategy, SupervisorFlags};
use tokio::sync::watch;

use hypha_dht::settings::{AntiEntropySettings, DhtSettings};

use crate::config::{ConfigError, NodeConfig};

const DHT_MAX_RESTARTS: u32 = 5;
const DHT_PERIOD_MS: u64 = 10_000;
/// Store calls made by DHT handlers: long enough for a group commit under
/// load, shorter than the coordinator's RPC timeout.
const STORE_TIMEOUT_MS: u64 = 4_000;

/// How this node takes and makes bulk links.
pub struct BulkSettings {
    /// Listen address (published in gossip).
    pub listen: SocketAddr,
    /// Derived from the cluster cookie.
    pub key: BulkKey,
    /// Mutual TLS, as on node links.
    pub tls: Option<LinkTls>,
    /// Caps and deadline of connections still in their handshake.
    pub preauth: PreAuthLimits,
}

/// What the admin API needs of the DHT.
#[derive(Clone)]
pub struct DhtAdmin {
    /// The file coordinator.
    pub files: Files,
    /// The node's DHT store (digests for `/v1/dht/partitions`).
    pub store: DhtStore,
    /// Registered name of the exchange actor.
    pub exchange_name: String,
}

/// Everything the `dht` supervisor's children are built from.
pub struct DhtParts {
    /// The coordinator the HTTP layer uses.
    pub files: Files,
    /// For the admin API.
    pub admin: DhtAdmin,
    /// Placement as the router publishes it (queue ownership reads it too).
    pub placement: watch::Receiver<Arc<Placement>>,
    node: String,
    router: RouterArgs,
    service: DhtServiceArgs,
    bulk: BulkServerArgs,
    collector: CollectorArgs,
    exchange: AntiEntropyArgs,
}

/// How the DHT sees the cluster it joined.
pub struct Joined {
    /// The membership view.
    pub channels: MembershipChannels,
    /// When the view counts as settled after the start.
    pub settle: Settle,
    /// The node's clock (one per node): every DHT part reads the time
    /// from it.
    pub clock: SharedClock,
    /// The node's majority lease (docs/dht.md, "The fence").
    pub fence: Fence,
}

impl DhtParts {
    /// Build the parts for one node.
    pub fn new(
        config: &NodeConfig,
        node: &str,
        id: NodeId,
        me: MemberKey,
        membership: Joined,
        bulk: BulkSettings,
    ) -> Result<Self, ConfigError> {
        let Joined {
            channels: membership,
            settle,
            clock,
            fence,
        } = membership;
        let (settings, ae) = (&config.dht, &config.anti_entropy);
        let rules = settings.placement_rules(&config.placement)?;
        let (placement_tx, placement_rx) =
            watch::channel(Arc::new(Placement::alone(me.clone(), rules.clone())));
        let store = DhtStore::new(
            StoreClient::new(node, Duration::from_millis(STORE_TIMEOUT_MS)),
            rules.partitioning,
        );
        let shared = AeShared {
            clock: clock.clone(),
            fence: fence.clone(),
            confirmed: Confirmed::default(),
            caught_up: CaughtUp::default(),
        };
        let handler = DhtHandler::new(
            store.clone(),
            placement_rx.clone(),
            shared.caught_up.clone(),
        )
        .with_clock(clock.clone())
        .with_fence(fence.clone());
        let bulk_view = membership.watch();
        let route = BulkRoute {
            client: BulkClient::with_clock(bulk.key.clone(), bulk.tls.clone(), clock.clone()),
            view: membership.watch(),
        };
        let transport = Arc::new(
            ClusterTransport::new(me.clone(), handler.clone(), Some(route))
                .with_clock(clock.clone()),
        );
        let files = Files::new(
            *id.as_bytes(),
            transport.clone(),
            placement_rx.clone(),
            Arc::new(Hlc::new(clock.clone())),
            *settings,
            clock.clone(),
        )
        .with_fence(fence);
        let exchange = exchange_args(
            settings,
            ae,
            &me,
            placement_rx.clone(),
            transport,
            &store,
            &shared,
        );
        Ok(Self {
            files: files.clone(),
            admin: DhtAdmin {
                files,
                store: store.clone(),
                exchange_name: actor_name(node, dht::EXCHANGE_ROLE),
            },
            exchange,
            placement: placement_rx,
            node: node.to_owned(),
            router: RouterArgs {
                me: me.clone(),
                rules,
                membership,
                placement: Arc::new(placement_tx),
                settle,
                started: clock.now(),
                clock: clock.clone(),
            },
            service: DhtServiceArgs {
                group: dht_group(&me),
                handler: handler.clone(),
            },
            bulk: BulkServerArgs {
                listen: bulk.listen,
                key: bulk.key,
                tls: bulk.tls,
                handler,
                limits: BulkLimits {
                    preauth: bulk.preauth,
                    ..BulkLimits::default()
                },
                view: bulk_view,
                clock: clock.clone(),
            },
            collector: CollectorArgs {
                store,
                settings: *settings,
                confirmed: shared.confirmed,
                clock,
            },
        })
    }

    /// The `dht` supervisor.
    pub fn spec(&self) -> ChildSpec {
        let router_name = actor_name(&self.node, dht::ROUTER_ROLE);
        let router_args = self.router.clone();
        let router = ChildSpec::actor("router", move |_ctx| {
            (Some(router_name.clone()), Router, router_args.clone())
        })
        .crash_message::<RouterMessage>();
        // No crash message: the service's message type is a wire type.
        let service_name = actor_name(&self.node, dht::SERVICE_ROLE);
        let service_args = self.service.clone();
        let service = ChildSpec::actor("service", move |_ctx| {
            (
                Some(service_name.clone()),
                DhtService::new(),
                service_args.clone(),
            )
        });
        let bulk_name = actor_name(&self.node, dht::BULK_ROLE);
        let bulk_args = self.bulk.clone();
        let bulk = ChildSpec::actor("bulk", move |_ctx| {
            (Some(bulk_name.clone()), BulkServer, bulk_args.clone())
        })
        .crash_message::<BulkServerMessage>();
        let collector_name = actor_name(&self.node, dht::COLLECTOR_ROLE);
        let collector_args = self.collector.clone();
        let collector = ChildSpec::actor("collector", move |_ctx| {
            (
                Some(collector_name.clone()),
                Collector,
                collector_args.clone(),
            )
        })
        .crash_message::<CollectorMessage>();
        let exchange_name = self.admin.exchange_name.clone();
        let exchange_args = self.exchange.clone();
        let exchange = ChildSpec::actor("exchange", move |_ctx| {
            (
                Some(exchange_name.clone()),
                AntiEntropy,
                exchange_args.clone(),
            )
        })
        .crash_message::<AntiEntropyMessage>();
        let flags =
            SupervisorFlags::new(Strategy::OneForOne).intensity(DHT_MAX_RESTARTS, DHT_PERIOD_MS);
        ChildSpec::supervisor(
            "dht",
            flags,
            vec![router, service, bulk, collector, exchange],
        )
    }
}

/// Graceful leave: hand every partition off to the replicas it has
/// without this node, within `timeout`. Returns the partitions still held
/// (0: all handed off).
pub async fn hand_off(exchange_name: &str, timeout: Duration) -> usize {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut left = usize::MAX;
    while tokio::time::Instant::now() < deadline {
        let Some(cell) = ractor::registry::where_is(exchange_name) else {
            return left;
        };
        let actor: ractor::ActorRef<AntiEntropyMessage> = cell.into();
        left = ractor::call_t!(actor, |reply| AntiEntropyMessage::Leave { reply }, 1_000)
            .unwrap_or(left);
        if left == 0 {
            return 0;
        }
        tokio::time::sleep(HAND_OFF_POLL).await;
    }
    left
}

/// How often a leaving node asks whether its hand-off is done.
const HAND_OFF_POLL: Duration = Duration::from_millis(200);

/// What the exchange actor learns and other parts of the node read, and
/// the node's clock it reads time from; made once per node, so that it
/// outlives a restarted exchange actor.
struct AeShared {
    /// The node's clock.
    clock: SharedClock,
    /// The node's majority lease.
    fence: Fence,
    /// Read by the collector.
    confirmed: Confirmed,
    /// Read by the request handler.
    caught_up: CaughtUp,
}

fn exchange_args(
    settings: &DhtSettings,
    ae: &AntiEntropySettings,
    me: &MemberKey,
    placement: watch::Receiver<Arc<Placement>>,
    transport: Arc<ClusterTransport>,
    store: &DhtStore,
    shared: &AeShared,
) -> AntiEntropyArgs {
    let runner = Runner::new(
        store.clone(),
        transport,
        Throttle::new(ae.bytes_per_sec, shared.clock.clone()),
        ae.run(settings),
        shared.clock.clone(),
    );
    AntiEntropyArgs {
        me: me.clone(),
        placement,
        runner,
        store: store.clone(),
        confirmed: shared.confirmed.clone(),
        caught_up: shared.caught_up.clone(),
        settings: ae.exchange(settings),
        clock: shared.clock.clone(),
        fence: shared.fence.clone(),
    }
}
