//! Node assembly: identity, the database, the admin listener, and the root
//! supervision tree; then running until a signal or an escalation.
//!
//! ```text
//! node (one_for_one)
//! ├── store            sled owner
//! ├── cluster (one_for_one)
//! │   ├── link         remotable link service (pings, ping-req relays)
//! │   ├── peers        ractor_cluster NodeServer; dials, re-dials, closes
//! │   └── membership   chitchat + SWIM verdicts; publishes the view
//! ├── dht (one_for_one)
//! │   ├── router       placement and routing table from the view
//! │   ├── service      remotable DHT RPC endpoint
//! │   ├── bulk         chunk transfers on their own connections
//! │   ├── collector    unreferenced chunks, old tombstones
//! │   └── exchange     anti-entropy
//! ├── work (one_for_one)
//! │   ├── queues       queue owner: books, durable log, leases, placement
//! │   ├── workers      bounded pool running job attempts
//! │   └── service      remotable work RPC endpoint
//! ├── admin (one_for_one)
//! │   ├── http         axum admin API on the node's listener
//! │   └── history      samples the node's metrics for the console's charts
//! └── backup (one_for_one; only with `[backup] dir`)
//!     └── schedule     scheduled backups into the directory, then retention
//! ```
//!
//! The cluster children share state only through channels created here
//! once (the membership view, the set of linked peers), so each restarts
//! alone: one_for_one.
//!
//! The root is one_for_one so that the admin API stays up while data-plane
//! actors restart (see docs/ARCHITECTURE.md for why, and for where
//! rest_for_one groups go).
//!
//! Resources that must outlive actor incarnations (the sled database, the
//! listening socket) are acquired here once and handed to every incarnation.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use hypha_cluster::peers::tls::LinkTls;
use hypha_core::actor_name;
use hypha_core::clock::SharedClock;
use hypha_core::identity::NodeId;

use crate::admin::tls::AdminTls;
use crate::gossip_keys::GossipKeys;
use hypha_store::{
    self as store, Condition, DiskReserve, SledEngine, Store, StoreArgs, StoreClient, StoreError,
    StoreMessage, Tree, WriteBatch,
};
use hypha_supervisors::{ChildSpec, RootHandle, Shutdown, Strategy, Supervisor, SupervisorFlags};
use hypha_work::handler::JobHandler;
use thiserror::Error;

use crate::admin::http::{HttpArgs, HttpMessage, HttpServer};
use crate::admin::{AppState, DataApis, NodeFacts, CALL_TIMEOUT};
use crate::backup::schedule::{BackupStatus, ScheduleMessage, Scheduler, SchedulerArgs};
use crate::backup::source::NodeSource;
use crate::cluster::{resolve_port, ClusterParts, Proto};
use crate::config::{Listen, NodeConfig};
use crate::dht::{BulkSettings, DhtParts, Joined};
use crate::generation::{self, GenerationError};
use crate::identity::{self, IdentityError};
use crate::secrets::Secrets;
use crate::telemetry::history::sampler::{MetricsSource, Sampler, SamplerArgs, SamplerMessage};
use crate::telemetry::history::History;
use crate::work::WorkParts;
use hypha_cluster::membership::{MemberKey, MembershipChannels};
use hypha_dht::bulk::handshake::BulkKey;
use hypha_dht::router::Settle;

/// Path of the root supervisor in the tree (and in chaos paths).
pub const ROOT_PATH: &str = "node";
/// Directory of the database inside the data directory.
pub const DB_DIR: &str = "db";
/// Exit status of `hypha node` when its store is damaged
/// ([`NodeError::DamagedStore`]; BSD `EX_IOERR`). Used for nothing else, so
/// that a service manager or the chaos harness can tell it apart; the one
/// line printed says what to run (docs/storage.md).
pub const EXIT_DAMAGED_STORE: u8 = 74;
const CALL_TIMEOUT_MS: u64 = 5_000;
/// Intensity of the admin supervisor: the API may flap a little on its own.
const ADMIN_MAX_RESTARTS: u32 = 5;
const ADMIN_PERIOD_MS: u64 = 10_000;
/// Grace for the store to finish a write and flush on stop.
const STORE_SHUTDOWN_MS: u64 = 10_000;
/// Intensity of the backup supervisor: a schedule that keeps crashing
/// stops there before it reaches the root.
const BACKUP_MAX_RESTARTS: u32 = 5;
const BACKUP_PERIOD_MS: u64 = 60_000;
/// Bound on each read a scheduled backup makes of the cluster (a page of
/// a partition, one chunk).
const BACKUP_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Why a node could not start.
#[derive(Debug, Error)]
pub enum NodeError {
    /// The data directory could not be prepared.
    #[error("data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The node id could not be read or created.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The generation could not be read or recorded.
    #[error(transparent)]
    Generation(GenerationError),
    /// The database could not be opened or used.
    #[error("store: {0}")]
    Store(#[from] StoreError),
    /// The store's files are damaged: the node cannot start until they are
    /// moved aside (the binary exits with its own status; docs/storage.md).
    #[error("the store at {store_dir} is damaged ({cause}); move it aside with `{command}`, then start the node again: it keeps its id and is refilled from its replicas")]
    DamagedStore {
        /// The store's directory.
        store_dir: String,
        /// What sled said.
        cause: String,
        /// The command that moves it aside.
        command: String,
    },
    /// The admin address could not be bound.
    #[error("cannot listen on {addr} for the admin API: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The node-link TLS material could not be loaded.
    #[error("node-link TLS: {0}")]
    Tls(String),
    /// The admin API's HTTPS certificate could not be loaded.
    #[error("admin HTTPS (http.tls_dir): {0}")]
    AdminTls(String),
    /// The gossip keyring could not be built.
    #[error("gossip keys: {0}")]
    GossipKeys(String),
    /// The WebAssembly sandbox could not start (`work.wasm = false` turns
    /// the kind off).
    #[error("wasm sandbox: {0}")]
    Wasm(#[from] hypha_wasm::runtime::StartError),
    /// The supervision tree failed to start.
    #[error("supervision tree failed to start: {0}")]
    Tree(String),
    /// Configuration error discovered at start.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// How a running node ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeExit {
    /// Stopped on request; children stopped in reverse order, data flushed.
    Stopped,
    /// Stopped like [`NodeExit::Stopped`] (after a graceful leave) because
    /// `POST /v1/node/restart` asked for a restart: the program starts
    /// itself again (`main` re-executes the binary with the same
    /// arguments; docs/operations.md, "Rolling restart").
    Restart,
    /// The root supervisor exceeded its restart intensity.
    Escalated(String),
    /// The root supervisor was killed.
    Killed,
}

/// A started node.
pub struct RunningNode {
    /// Node id.
    pub id: NodeId,
    /// Node name.
    pub name: String,
    /// Admin HTTP address as bound.
    pub http_addr: std::net::SocketAddr,
    /// The S3 endpoint's address as bound, when it serves one.
    pub s3_addr: Option<std::net::SocketAddr>,
    /// Boot counter: 1 on the first start of a data directory.
    pub generation: u64,
    /// This process as a cluster member.
    pub member: MemberKey,
    root: RootHandle,
    engine: SledEngine,
    channels: MembershipChannels,
    leave: LeavePlan,
    tls: Option<LinkTls>,
    admin_tls: Option<AdminTls>,
    gossip_keys: GossipKeys,
    shutdown_timeout: Duration,
    /// Rung by `POST /v1/node/restart`.
    restart: Arc<tokio::sync::Notify>,
    /// Every address as bound (ports the kernel picked included): a
    /// restart in place listens on the same ones.
    pub bound: Listen,
}

/// Longest a seeded node waits, after its start, for its view to settle
/// before it coordinates file operations anyway (a peer that gossips but
/// never links must not keep it out of service).
const SETTLE_LIMIT_MS: u64 = 10_000;

/// A node with seeds joins a cluster and serves files once its view has
/// settled; one without starts its own and serves at once.
fn settle_policy(config: &NodeConfig) -> Settle {
    if config.seeds.is_empty() {
        Settle::Immediately
    } else {
        Settle::AfterPeers {
            limit_ms: SETTLE_LIMIT_MS,
        }
    }
}

/// What a program that embeds a node adds to it: job kinds of its own,
/// and actors supervised in the node's tree (under `node/app`, one_for_one,
/// started after everything else and stopped first).
#[derive(Default)]
pub struct Extensions {
    jobs: Vec<(String, Arc<dyn JobHandler>)>,
    children: Vec<ChildSpec>,
}

impl Extensions {
    /// Nothing added.
    pub fn new() -> Self {
        Self::default()
    }

    /// Run jobs of `kind` with `handler` on this node. Jobs that need it
    /// should be constrained to nodes that have it (a label the embedding
    /// program sets, say).
    pub fn job_kind(mut self, kind: &str, handler: impl JobHandler) -> Self {
        self.jobs.push((kind.to_owned(), Arc::new(handler)));
        self
    }

    /// Supervise `child` under `node/app`.
    pub fn child(mut self, child: ChildSpec) -> Self {
        self.children.push(child);
        self
    }
}

/// Restarts the `app` supervisor allows before it escalates to the root.
const APP_MAX_RESTARTS: u32 = 10;
const APP_PERIOD_MS: u64 = 10_000;

/// Start a node: the returned node runs until [`RunningNode::shutdown`] or
/// an escalation ([`RunningNode::wait`]).
pub async fn start(config: &NodeConfig, secrets: &Secrets) -> Result<RunningNode, NodeError> {
    start_with(config, secrets, Extensions::default()).await
}

/// [`start`], with an embedding program's job kinds and actors.
pub async fn start_with(
    config: &NodeConfig,
    secrets: &Secrets,
    extensions: Extensions,
) -> Result<RunningNode, NodeError> {
    let data_dir = config.data_dir.clone();
    let dir_error = |source| NodeError::DataDir {
        path: data_dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(&data_dir).map_err(dir_error)?;
    let id = identity::load_or_create(&data_dir)?;
    let name = match &config.node_name {
        Some(n) => n.clone(),
        None => format!("hypha-{}", id.short()),
    };
    crate::config::validate_node_name(&name)?;
    let db_dir = data_dir.join(DB_DIR);
    let durability = config.storage.durability;
    let engine = tokio::task::spawn_blocking(move || SledEngine::open_with(&db_dir, durability))
        .await
        .map_err(|e| NodeError::Store(StoreError::Io(e.to_string())))?
        .map_err(|e| store_error(&data_dir, e))?;

    // Before the tree exists, so that every actor and the gossip identity
    // see the new generation from the first moment.
    let generation = {
        let engine = engine.clone();
        let dir = data_dir.clone();
        tokio::task::spawn_blocking(move || generation::bump(&dir, &engine))
            .await
            .map_err(|e| NodeError::Store(StoreError::Io(e.to_string())))?
            .map_err(|e| match e {
                GenerationError::Store(e) => store_error(&data_dir, e),
                other => NodeError::Generation(other),
            })?
    };
    // Checked before anything binds: a bad certificate stops the start
    // with the file's name.
    let admin_tls = match &config.http.tls_dir {
        Some(dir) => Some(AdminTls::load(dir).map_err(|e| NodeError::AdminTls(e.to_string()))?),
        None => None,
    };
    let listener = TcpListener::bind(config.listen.http).map_err(|source| NodeError::Bind {
        addr: config.listen.http.to_string(),
        source,
    })?;
    let http_addr = listener.local_addr().map_err(|source| NodeError::Bind {
        addr: config.listen.http.to_string(),
        source,
    })?;
    let store_client = StoreClient::new(&name, CALL_TIMEOUT);
    // All three held at once, so none is handed out twice; released below,
    // before the actors bind them.
    let cluster_port = resolve_port(config.listen.cluster, Proto::Tcp)?;
    let gossip_port = resolve_port(config.listen.gossip, Proto::Udp)?;
    let bulk_port = resolve_port(config.listen.bulk, Proto::Tcp)?;
    let s3_listener = match config.listen.s3 {
        Some(addr) => Some(TcpListener::bind(addr).map_err(|source| NodeError::Bind {
            addr: addr.to_string(),
            source,
        })?),
        None => None,
    };
    let s3_addr = s3_listener.as_ref().and_then(|l| l.local_addr().ok());
    let listen = Listen {
        http: http_addr,
        cluster: cluster_port.0,
        gossip: gossip_port.0,
        bulk: bulk_port.0,
        s3: s3_addr,
    };
    drop((cluster_port.1, gossip_port.1, bulk_port.1));
    // One clock per node, handed to every part that reads the time.
    let clock = SharedClock::system();
    let facts = NodeFacts {
        id,
        name: name.clone(),
        listen,
        started_unix_ms: clock.wall_ms(),
    };
    let me = MemberKey::new(id.to_hex(), generation);
    let cluster =
        ClusterParts::new(config, secrets, &name, me.clone(), listen, clock.clone()).await?;
    let cluster_tls = cluster.tls.clone();
    let cluster_labels = cluster.labels.clone();
    let gossip_keys = cluster.gossip_keys.clone();
    let channels = cluster.channels.clone();
    let bulk = BulkSettings {
        listen: listen.bulk,
        key: BulkKey::from_cookie(&cluster.link_cookie),
        tls: cluster.tls.clone(),
        preauth: config.cluster.preauth,
    };
    let dht = DhtParts::new(
        config,
        &name,
        id,
        me.clone(),
        Joined {
            channels: channels.clone(),
            settle: settle_policy(config),
            clock: clock.clone(),
            fence: cluster.fence.clone(),
        },
        bulk,
    )?;
    let cores = std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(1))
        .unwrap_or(1);
    let mut work = WorkParts::new(
        &config.work,
        &name,
        me.clone(),
        dht.files.clone(),
        dht.placement.clone(),
        &channels,
        cores,
        clock.clone(),
    )?;
    for (kind, handler) in extensions.jobs {
        work.register_shared(&kind, handler);
    }
    let s3_keys = hypha_s3::KeyStore::new(
        dht.files.clone(),
        hypha_s3::keys::SealKey::from_cookie(cluster.link_cookie.as_bytes()),
    );
    let s3 = s3_listener.map(|listener| HttpArgs {
        listener: Arc::new(listener),
        router: crate::s3::router(dht.files.clone(), s3_keys.clone()),
        limits: config.http.clone(),
        tls: admin_tls.clone(),
        clock: clock.clone(),
    });
    let root_name = actor_name(&name, "root");
    let history = History::new(config.telemetry.history_interval_ms);
    let restart = Arc::new(tokio::sync::Notify::new());
    let backup_status = BackupStatus::new(config.backup.schedule());
    let backup = config.backup.schedule().map(|schedule| SchedulerArgs {
        schedule,
        source: Arc::new(NodeSource::new(
            dht.files.clone(),
            name.clone(),
            BACKUP_READ_TIMEOUT,
        )),
        clock: clock.clone(),
        status: backup_status.clone(),
    });
    let sampler = SamplerArgs {
        history: history.clone(),
        source: metrics_source(),
        clock: clock.clone(),
    };
    let state = AppState::new(
        facts,
        secrets.tokens.clone(),
        crate::telemetry::prometheus(),
        store_client.clone(),
        root_name.clone(),
        channels.clone(),
        DataApis {
            dht: dht.admin.clone(),
            work: work.admin.clone(),
            s3_keys,
        },
    )
    .with_link_tls(cluster.tls.clone())
    .with_admin_tls(admin_tls.clone())
    .with_gossip_keys(gossip_keys.clone())
    .with_history(history.clone())
    .with_restart(restart.clone())
    .with_labels(cluster.labels.clone())
    .with_backup(backup_status)
    .with_clock(clock.clone());
    let http = HttpArgs {
        listener: Arc::new(listener),
        router: crate::admin::router(state, &config.http),
        limits: config.http.clone(),
        tls: admin_tls.clone(),
        clock: clock.clone(),
    };
    let reserve = config.storage.reserve(data_dir.clone());
    let mut children = vec![
        store_spec(&name, engine.clone(), reserve),
        cluster.spec(),
        dht.spec(),
        work.spec(),
        admin_spec(http, s3, sampler),
    ];
    children.extend(backup.map(backup_spec));
    if !extensions.children.is_empty() {
        let flags =
            SupervisorFlags::new(Strategy::OneForOne).intensity(APP_MAX_RESTARTS, APP_PERIOD_MS);
        children.push(ChildSpec::supervisor("app", flags, extensions.children));
    }
    let flags = SupervisorFlags::new(Strategy::OneForOne).intensity(
        config.supervision.max_restarts,
        config.supervision.period_ms,
    );
    let root = Supervisor::start_root(Some(root_name), ROOT_PATH, flags, children)
        .await
        .map_err(|e| NodeError::Tree(e.to_string()))?;

    apply_config_labels(&store_client, &config.labels).await;
    // Labels set through the API live in the store beside the configured
    // ones: the stored set is what the node publishes (a zone set at run
    // time survives restarts and reaches placement).
    match read_labels(&store_client).await {
        Ok(stored) => {
            cluster_labels.send_replace(stored);
        }
        Err(err) => {
            tracing::error!("stored labels not read; publishing the configured ones: {err}")
        }
    }
    metrics::gauge!("hypha_node_info", "node" => name.clone(), "id" => id.to_hex()).set(1.0);
    tracing::info!(node = %name, id = %id, generation, http = %http_addr, "node started");
    Ok(RunningNode {
        id,
        leave: LeavePlan::of(config, &name),
        name,
        http_addr,
        s3_addr,
        generation,
        member: me,
        root,
        engine,
        channels,
        tls: cluster_tls,
        admin_tls,
        gossip_keys,
        shutdown_timeout: Duration::from_millis(config.supervision.shutdown_timeout_ms),
        restart,
        bound: listen,
    })
}

/// A store error at start: damage (sled's recovery failed, or what it
/// recovered does not decode) names the store and the command that moves
/// it aside.
fn store_error(data_dir: &std::path::Path, err: StoreError) -> NodeError {
    let store_dir = data_dir.join(DB_DIR).display().to_string();
    match err {
        StoreError::Damaged { cause, .. } | StoreError::Corruption(cause) => {
            NodeError::DamagedStore {
                store_dir,
                cause,
                command: crate::commands::store::command_for(data_dir),
            }
        }
        other => NodeError::Store(other),
    }
}

/// What a graceful leave does besides publishing the leaving flag.
#[derive(Debug, Clone)]
struct LeavePlan {
    grace: Duration,
    handoff_timeout: Duration,
    /// The DHT exchange actor, which hands the node's partitions off.
    exchange_name: String,
}

impl LeavePlan {
    fn of(config: &NodeConfig, node: &str) -> Self {
        Self {
            grace: Duration::from_millis(config.cluster.leave_grace_ms),
            handoff_timeout: Duration::from_millis(config.cluster.handoff_timeout_ms),
            exchange_name: actor_name(node, hypha_dht::EXCHANGE_ROLE),
        }
    }
}

fn store_spec(node: &str, engine: SledEngine, reserve: DiskReserve) -> ChildSpec {
    let name = actor_name(node, store::ROLE);
    let engine: Arc<dyn store::KvEngine> = Arc::new(engine);
    ChildSpec::actor("store", move |_ctx| {
        let args = StoreArgs {
            engine: engine.clone(),
            reserve: reserve.clone(),
        };
        (Some(name.clone()), Store, args)
    })
    .shutdown(Shutdown::Timeout {
        timeout_ms: STORE_SHUTDOWN_MS,
    })
    .crash_message::<StoreMessage>()
}

/// The node's Prometheus text, for its history sampler.
fn metrics_source() -> MetricsSource {
    let handle = crate::telemetry::prometheus();
    Arc::new(move || handle.as_ref().map(crate::telemetry::render))
}

/// The admin API's server and, when served, the S3 endpoint's: the same
/// server behaviour on two listeners, each restarting alone; and the
/// sampler of the history the console charts.
fn admin_spec(http: HttpArgs, s3: Option<HttpArgs>, sampler: SamplerArgs) -> ChildSpec {
    let server = |name: &'static str, args: HttpArgs| {
        let drain_ms = args.limits.drain_timeout_ms;
        ChildSpec::actor(name, move |_ctx| (None, HttpServer, args.clone()))
            .shutdown(Shutdown::Timeout {
                timeout_ms: drain_ms.saturating_mul(3).max(1),
            })
            .crash_message::<HttpMessage>()
    };
    let mut children = vec![server("http", http)];
    children.extend(s3.map(|args| server("s3", args)));
    children.push(
        ChildSpec::actor("history", move |_ctx| (None, Sampler, sampler.clone()))
            .crash_message::<SamplerMessage>(),
    );
    let flags =
        SupervisorFlags::new(Strategy::OneForOne).intensity(ADMIN_MAX_RESTARTS, ADMIN_PERIOD_MS);
    ChildSpec::supervisor("admin", flags, children)
}

/// Scheduled backups: one actor under its own supervisor, started after
/// the admin API and stopped before it (a run in progress is cut; the
/// directory keeps only complete snapshots).
fn backup_spec(args: SchedulerArgs) -> ChildSpec {
    let schedule = ChildSpec::actor("schedule", move |_ctx| (None, Scheduler, args.clone()))
        .crash_message::<ScheduleMessage>();
    let flags =
        SupervisorFlags::new(Strategy::OneForOne).intensity(BACKUP_MAX_RESTARTS, BACKUP_PERIOD_MS);
    ChildSpec::supervisor("backup", flags, vec![schedule])
}

/// The node's generation (boot count) as stored.
pub(crate) async fn read_generation(store: &StoreClient) -> Result<u64, StoreError> {
    let raw = store.get(Tree::Meta, generation::GENERATION_KEY).await?;
    match raw {
        None => Ok(0),
        Some(bytes) => generation::decode(&bytes),
    }
}

/// Write the configured labels, each within the label cap. A label that
/// does not fit (runtime labels filled the cap) is skipped with an error
/// log rather than refusing to start.
async fn apply_config_labels(store: &StoreClient, labels: &BTreeMap<String, String>) {
    for (key, value) in labels {
        let batch = WriteBatch::new()
            .put(Tree::NodeLabels, key.as_bytes(), value.as_bytes())
            .require(Condition::RoomFor {
                tree: Tree::NodeLabels,
                key: key.as_bytes().to_vec(),
                max: hypha_core::labels::MAX_LABELS,
            });
        if let Err(err) = store.write(batch).await {
            tracing::error!(label = %key, "configured label not applied: {err}");
        }
    }
}

/// The node's labels as stored.
pub(crate) async fn read_labels(
    store: &StoreClient,
) -> Result<BTreeMap<String, String>, StoreError> {
    let entries = store
        .scan(Tree::NodeLabels, b"", hypha_core::labels::MAX_LABELS)
        .await?;
    Ok(entries
        .into_iter()
        .map(|(k, v)| {
            (
                String::from_utf8_lossy(&k).into_owned(),
                String::from_utf8_lossy(&v).into_owned(),
            )
        })
        .collect())
}

mod running;
