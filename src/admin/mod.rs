//! The admin and data HTTP API: the route table (one source for the
//! router, each route's access rule and the OpenAPI spec), auth and rate
//! limits, metrics middleware, and the supervised server actor that serves
//! them. Routes and roles: docs/admin-api.md; threat model:
//! docs/security.md.

pub mod error;
pub mod host;
pub mod http;
mod middleware;
mod openapi;
mod rate;
mod routes;
pub mod tls;

pub use openapi::spec as openapi_spec;
pub use routes::{route_table, Access, BodyKind, RouteInfo};

use hypha_core::clock::SharedClock;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hypha_cluster::membership::MembershipChannels;
use hypha_cluster::peers::tls::LinkTls;
use hypha_core::identity::NodeId;
use hypha_dht::files::Files;
use hypha_store::StoreClient;
use hypha_supervisors::{SupervisorMessage, SupervisorRef};
use metrics_exporter_prometheus::PrometheusHandle;
use ractor::ActorRef;

use crate::auth::TokenTable;
use crate::config::{HttpLimits, Listen};
use crate::dht::DhtAdmin;
use crate::work::WorkAdmin;

/// Timeout of store calls made while serving a request.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Timeout of calls into the supervision tree. Shorter than the default
/// HTTP drain (2 s): a request waiting on a supervisor that is itself
/// stopping the HTTP server gets a 503 instead of a reset connection.
pub const TREE_CALL_TIMEOUT: Duration = Duration::from_millis(1_500);

/// Facts about the node that do not change while it runs.
#[derive(Debug, Clone)]
pub struct NodeFacts {
    /// Node id.
    pub id: NodeId,
    /// Node name.
    pub name: String,
    /// Listen addresses (the HTTP one as bound).
    pub listen: Listen,
    /// Unix time the node process started, in ms.
    pub started_unix_ms: u64,
}

/// The data-plane handles the API serves: files and partitions, jobs
/// and queues.
pub struct DataApis {
    /// Files and partitions.
    pub dht: DhtAdmin,
    /// Jobs and queues.
    pub work: WorkAdmin,
    /// S3 access keys.
    pub s3_keys: hypha_s3::KeyStore,
}

/// Shared, read-only state of the handlers. It holds only handles that stay
/// valid across actor restarts (names to resolve, not actor refs).
///
/// One `Arc`: axum clones the state into every layer of every request,
/// and cloning the fields one by one (a dozen `Arc`s, strings, channel
/// handles) was ~1.7% of a node's CPU on small requests
/// (docs/benchmarks.md). Fields read through `Deref`; the builders below
/// change them before the state is shared.
#[derive(Clone)]
pub struct AppState(Arc<StateFields>);

impl std::ops::Deref for AppState {
    type Target = StateFields;

    fn deref(&self) -> &StateFields {
        &self.0
    }
}

/// The fields of [`AppState`].
#[derive(Clone)]
pub struct StateFields {
    pub(crate) facts: Arc<NodeFacts>,
    pub(crate) tokens: Arc<TokenTable>,
    pub(crate) rate: Arc<rate::TokenRateLimit>,
    pub(crate) auth_failures: Arc<std::sync::Mutex<rate::FailureLimit>>,
    /// The node's clock: the failure limit, request timing and the clock
    /// the node reports all read it.
    pub(crate) clock: SharedClock,
    /// Origin of the millisecond count the failure limit runs on.
    pub(crate) clock_origin: tokio::time::Instant,
    pub(crate) hosts: Arc<host::AllowedHosts>,
    pub(crate) prometheus: Option<PrometheusHandle>,
    pub(crate) store: StoreClient,
    pub(crate) root_name: String,
    pub(crate) membership: MembershipChannels,
    pub(crate) files: Files,
    pub(crate) dht: DhtAdmin,
    pub(crate) work: WorkAdmin,
    pub(crate) s3_keys: hypha_s3::KeyStore,
    pub(crate) tls: Option<LinkTls>,
    /// The admin listener's certificate, when it serves HTTPS.
    pub(crate) admin_tls: Option<tls::AdminTls>,
    /// The gossip keyring, when the node seals gossip (always, outside tests).
    pub(crate) gossip_keys: Option<crate::gossip_keys::GossipKeys>,
    /// The node's recent metrics samples (`/v1/node/history`).
    pub(crate) history: crate::telemetry::history::History,
    /// Rung by `POST /v1/node/restart`; the running node waits on it.
    pub(crate) restart: Arc<tokio::sync::Notify>,
    /// The labels membership publishes; set after each durable change.
    pub(crate) labels: Arc<tokio::sync::watch::Sender<BTreeMap<String, String>>>,
    /// The scheduled backups' state (`/v1/backup/status`).
    pub(crate) backup: crate::backup::schedule::BackupStatus,
}

impl AppState {
    /// State for a node's handlers.
    pub fn new(
        facts: NodeFacts,
        tokens: TokenTable,
        prometheus: Option<PrometheusHandle>,
        store: StoreClient,
        root_name: String,
        membership: MembershipChannels,
        data: DataApis,
    ) -> Self {
        let DataApis { dht, work, s3_keys } = data;
        Self(Arc::new(StateFields {
            facts: Arc::new(facts),
            tokens: Arc::new(tokens),
            rate: Arc::new(rate::TokenRateLimit::new(0, 0)),
            auth_failures: Arc::new(std::sync::Mutex::new(rate::FailureLimit::new(0, 0))),
            clock: SharedClock::system(),
            clock_origin: tokio::time::Instant::now(),
            hosts: Arc::new(host::AllowedHosts::default()),
            prometheus,
            store,
            root_name,
            membership,
            files: dht.files.clone(),
            dht,
            work,
            s3_keys,
            tls: None,
            admin_tls: None,
            gossip_keys: None,
            history: crate::telemetry::history::History::default(),
            restart: Arc::new(tokio::sync::Notify::new()),
            labels: Arc::new(tokio::sync::watch::Sender::new(BTreeMap::new())),
            backup: crate::backup::schedule::BackupStatus::default(),
        }))
    }

    /// The fields, to change while the state is being built (a copy if
    /// it is already shared).
    fn fields_mut(&mut self) -> &mut StateFields {
        Arc::make_mut(&mut self.0)
    }

    /// Read the time from `clock` (the node's) instead of the system's.
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        let fields = self.fields_mut();
        fields.clock_origin = clock.now();
        fields.clock = clock;
        self
    }

    /// Serve the gossip keyring's status and reloads.
    pub fn with_gossip_keys(mut self, keys: crate::gossip_keys::GossipKeys) -> Self {
        self.fields_mut().gossip_keys = Some(keys);
        self
    }

    /// Serve this node's metrics history (filled by its sampler).
    pub fn with_history(mut self, history: crate::telemetry::history::History) -> Self {
        self.fields_mut().history = history;
        self
    }

    /// Publish label changes through `labels` (membership's).
    pub fn with_labels(
        mut self,
        labels: Arc<tokio::sync::watch::Sender<BTreeMap<String, String>>>,
    ) -> Self {
        self.fields_mut().labels = labels;
        self
    }

    /// Serve the scheduled backups' state (updated by the schedule actor).
    pub fn with_backup(mut self, status: crate::backup::schedule::BackupStatus) -> Self {
        self.fields_mut().backup = status;
        self
    }

    /// Ring `restart` on `POST /v1/node/restart`.
    pub fn with_restart(mut self, restart: Arc<tokio::sync::Notify>) -> Self {
        self.fields_mut().restart = restart;
        self
    }

    /// The node-link TLS material, for its status and reload routes.
    pub fn with_link_tls(mut self, tls: Option<LinkTls>) -> Self {
        self.fields_mut().tls = tls;
        self
    }

    /// The admin listener's certificate, for the TLS status and reload
    /// routes.
    pub fn with_admin_tls(mut self, tls: Option<tls::AdminTls>) -> Self {
        self.fields_mut().admin_tls = tls;
        self
    }

    /// The current root supervisor incarnation.
    pub(crate) fn root(&self) -> Result<SupervisorRef, error::ApiError> {
        let cell = ractor::registry::where_is(self.root_name.clone())
            .filter(|c| c.is_message_type_of::<SupervisorMessage>() == Some(true))
            .ok_or_else(|| error::ApiError::unavailable("the supervision tree is restarting"))?;
        let actor: ActorRef<SupervisorMessage> = cell.into();
        Ok(SupervisorRef::new(actor, TREE_CALL_TIMEOUT))
    }
}

/// The admin router with limits and metrics.
pub fn router(mut state: AppState, limits: &HttpLimits) -> Router {
    let fields = state.fields_mut();
    fields.rate = Arc::new(rate::TokenRateLimit::new(
        limits.rate_limit_per_s,
        limits.rate_limit_burst,
    ));
    fields.hosts = Arc::new(host::AllowedHosts::new(&limits.allowed_hosts));
    fields.auth_failures = Arc::new(std::sync::Mutex::new(rate::FailureLimit::new(
        limits.auth_failures_per_min,
        limits.auth_failure_burst,
    )));
    routes::router(state, limits.max_body_bytes)
}
