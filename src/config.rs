//! Node configuration, resolved from (lowest first) built-in defaults, a
//! TOML file, `HYPHA_*` environment variables and command-line flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hypha_cluster::membership::seal::SealSettings;
use hypha_cluster::membership::{GossipTiming, ProbeTiming};
use hypha_cluster::preauth::PreAuthLimits;
use hypha_work::handler::{ArgvPolicy, ExecCommand};
use serde::Deserialize;
use thiserror::Error;

use crate::cli::NodeArgs;

/// Default admin HTTP address.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:7070";
/// Default node-link (ractor_cluster) address.
pub const DEFAULT_CLUSTER_LISTEN: &str = "127.0.0.1:7071";
/// Default gossip (UDP) address.
pub const DEFAULT_GOSSIP_LISTEN: &str = "127.0.0.1:7072";
/// Default bulk-link (chunk transfer) address.
pub const DEFAULT_BULK_LISTEN: &str = "127.0.0.1:7073";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Link certificates are looked for here, under the data directory,
/// when no `tls_dir` is set.
pub const DEFAULT_TLS_DIR: &str = "tls";

/// Whether the node runs with development conveniences.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Secrets must be provided.
    Production,
    /// Missing secrets are generated and printed (`--dev`).
    Dev,
}

/// Settings and limits of the admin HTTP server.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpLimits {
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Time a client has to send a request's headers (idle keep-alive too).
    pub header_read_timeout_ms: u64,
    /// Concurrent connections; further clients wait in the accept backlog.
    pub max_connections: usize,
    /// Time in-flight requests get to finish when the server stops.
    pub drain_timeout_ms: u64,
    /// Requests a second each credential may make (0: no limit).
    pub rate_limit_per_s: u32,
    /// Requests a credential may make at once before the rate applies.
    pub rate_limit_burst: u32,
    /// Failed authentications a minute allowed to one source address
    /// (an IPv6 /64) once its burst is spent (0: no limit).
    pub auth_failures_per_min: u32,
    /// Failed authentications one source may make at once.
    pub auth_failure_burst: u32,
    /// Names (besides IP literals and `localhost`) requests may address
    /// the node by in `Host`; `"*"` turns the check off (docs/security.md).
    pub allowed_hosts: Vec<String>,
    /// HTTPS: a directory with `admin.pem` and `admin.key` (made by `hypha
    /// cert admin`). Set, the listener serves HTTPS only; unset, plain
    /// HTTP. Reloaded on SIGHUP.
    pub tls_dir: Option<PathBuf>,
    /// With HTTPS: connections still in their TLS handshake (deadline,
    /// per-source and total caps; docs/security.md).
    pub preauth: PreAuthLimits,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_body_bytes: 1024 * 1024,
            header_read_timeout_ms: 5_000,
            max_connections: 1_024,
            drain_timeout_ms: 2_000,
            rate_limit_per_s: 500,
            rate_limit_burst: 1_000,
            auth_failures_per_min: 30,
            auth_failure_burst: 10,
            allowed_hosts: Vec::new(),
            tls_dir: None,
            preauth: PreAuthLimits::default(),
        }
    }
}

/// Cluster settings: identity of the cluster, gossip and probe timing,
/// node-link liveness, graceful leave.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSettings {
    /// Nodes only gossip and link with nodes of the same cluster id.
    pub id: String,
    /// Gossip and failure-detector timing.
    pub gossip: GossipTiming,
    /// SWIM probe timing.
    pub probes: ProbeTiming,
    /// Application ping period on each node link.
    pub ping_interval_ms: u64,
    /// Application ping timeout.
    pub ping_timeout_ms: u64,
    /// Missed pings in a row after which a link is closed as hung.
    pub hung_after_misses: u32,
    /// On SIGTERM: how long the leaving flag is gossiped before stopping.
    pub leave_grace_ms: u64,
    /// On SIGTERM: bound on the subsystems' hand-off hooks.
    pub handoff_timeout_ms: u64,
    /// Mutual TLS on node links: a directory with `ca.pem`, `node.pem` and
    /// `node.key` (made by `hypha cert`). Unset: `DATA_DIR/tls`.
    pub tls_dir: Option<PathBuf>,
    /// Whether node links may run without TLS (see [`LinkSecurity`]).
    pub links: LinkSecurity,
    /// Gossip secrets, one a line, the first sealing (rotation, see
    /// docs/security.md). Unset: gossip is sealed with the cookie alone.
    /// Re-read on SIGHUP.
    pub gossip_keys_file: Option<PathBuf>,
    /// Limits of sealed gossip.
    pub gossip_seal: SealSettings,
    /// Connections that have not authenticated yet, on the node-link port
    /// and on the bulk port (each port counts its own).
    pub preauth: PreAuthLimits,
}

/// How node links (and bulk links) are protected.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LinkSecurity {
    /// Mutual TLS with the cluster CA; a node without certificates does
    /// not start (outside `--dev`).
    #[default]
    MutualTls,
    /// The operator opted out (`--plaintext-links`): links are plaintext
    /// after the cookie handshake unless certificates are given anyway.
    Plaintext,
}

/// What a node's links will use, decided once at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkPlan {
    /// Mutual TLS with the material in this directory.
    MutualTls(PathBuf),
    /// Plaintext: opted out, or `--dev` without certificates.
    Plaintext,
}

/// Why a node cannot decide how to protect its links.
#[derive(Debug, Error)]
#[error(
    "node links need mutual TLS outside --dev, and {0} holds no node.pem: make a cluster CA \
     and a node certificate with `hypha cert ca --dir CA` and `hypha cert node --ca-dir CA \
     --name NAME --out DIR`, then pass --tls-dir DIR (or put them in DATA_DIR/tls); or opt \
     out with --plaintext-links"
)]
pub struct MissingLinkCertificates(pub String);

impl Default for ClusterSettings {
    fn default() -> Self {
        Self {
            id: "hypha".into(),
            gossip: GossipTiming::default(),
            probes: ProbeTiming::default(),
            ping_interval_ms: 1_000,
            ping_timeout_ms: 1_000,
            hung_after_misses: 3,
            leave_grace_ms: 1_000,
            handoff_timeout_ms: 10_000,
            tls_dir: None,
            links: LinkSecurity::default(),
            gossip_keys_file: None,
            gossip_seal: SealSettings::default(),
            preauth: PreAuthLimits::default(),
        }
    }
}

/// DHT and file storage settings.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DhtSettings {
    /// Partitions are the top `partition_bits` of a key (2^bits of them).
    /// Every node of a cluster must use the same value.
    pub partition_bits: u8,
    /// Replicas per partition (R).
    pub replicas: usize,
    /// Replicas that must make a write durable before it is acknowledged (W).
    pub write_quorum: usize,
    /// Replicas whose manifests a read compares.
    pub read_quorum: usize,
    /// How long a Down member keeps its partitions before they move.
    pub down_grace_ms: u64,
    /// Timeout of one replica RPC.
    pub rpc_timeout_ms: u64,
    /// How long a quorum call waits for slower replicas once it has W
    /// (writes still reach them afterwards, in the background).
    pub straggler_ms: u64,
    /// A read asks only a read quorum of replicas, and the others when
    /// one fails or this long passed without the quorum.
    pub read_hedge_ms: u64,
    /// Largest file accepted.
    pub max_file_bytes: u64,
    /// Chunks an upload keeps in flight.
    pub upload_pipeline: usize,
    /// Chunks a download fetches ahead.
    pub read_ahead: usize,
    /// Garbage collection sweeps one partition per tick.
    pub gc_tick_ms: u64,
    /// Unreferenced chunks are kept this long (uploads must finish in half).
    pub chunk_grace_ms: u64,
    /// Tombstones are kept this long.
    pub tombstone_grace_ms: u64,
}

impl Default for DhtSettings {
    fn default() -> Self {
        Self {
            partition_bits: 10,
            replicas: 3,
            write_quorum: 2,
            read_quorum: 2,
            down_grace_ms: 30_000,
            rpc_timeout_ms: 5_000,
            straggler_ms: 0,
            read_hedge_ms: 20,
            max_file_bytes: 4 << 30,
            upload_pipeline: 4,
            read_ahead: 4,
            gc_tick_ms: 1_000,
            chunk_grace_ms: 3_600_000,
            tombstone_grace_ms: 7 * 24 * 3_600_000,
        }
    }
}

/// Anti-entropy settings (docs/anti-entropy.md).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AntiEntropySettings {
    /// Mean time between two exchanges of a partition with one replica
    /// (jittered ±50%).
    pub period_ms: u64,
    /// After a repair, the confirming exchange comes this soon.
    pub recheck_ms: u64,
    /// After a failed exchange, retry this late.
    pub retry_ms: u64,
    /// How often the exchange actor looks at its work (a changed replica
    /// set is exchanged within one tick).
    pub tick_ms: u64,
    /// Exchanges and hand-offs running at once.
    pub concurrency: usize,
    /// Bytes/s that repairs may move (chunks and manifests); 0: no limit.
    pub bytes_per_sec: u64,
    /// Entries one exchange repairs at most (the rest: next exchange).
    pub max_entries: usize,
    /// Tree levels per descent round trip (1-8).
    pub step: u8,
    /// Partitions checked per tick for data held here that moved away.
    pub held_checks_per_tick: u32,
    /// One partition's digests are checked against its manifests (and
    /// fixed where they drifted) this often; 0: never.
    pub rebuild_every_ms: u64,
}

impl Default for AntiEntropySettings {
    fn default() -> Self {
        Self {
            period_ms: 60_000,
            recheck_ms: 1_000,
            retry_ms: 5_000,
            tick_ms: 250,
            concurrency: 4,
            bytes_per_sec: 64 << 20,
            max_entries: 8_192,
            step: 2,
            held_checks_per_tick: 16,
            rebuild_every_ms: 30_000,
        }
    }
}

/// Work-queue settings (docs/jobs.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct WorkSettings {
    /// Job attempts this node runs at once; 0: one per logical CPU.
    pub slots: u32,
    /// A lease lasts this long past the worker's last heartbeat.
    pub lease_ms: u64,
    /// Workers heartbeat this often (at most a third of the lease).
    pub heartbeat_ms: u64,
    /// Owners expire leases and place jobs this often.
    pub tick_ms: u64,
    /// Owners read the queue registry this often (takeover, hand-back).
    pub scan_ms: u64,
    /// Unfinished jobs one queue may hold; submits beyond get 503.
    pub max_queue_jobs: usize,
    /// Offers an owner has outstanding at once.
    pub max_offers_in_flight: usize,
    /// Placement policy: `least_loaded` or `locality`.
    pub placement: String,
    /// Defaults for submits that leave them out.
    pub default_max_attempts: u32,
    /// See `default_max_attempts`.
    pub default_timeout_ms: u64,
    /// The `exec` kind: allow-listed commands, name → absolute path (no
    /// job arguments) or a table with the argument policy. Empty (the
    /// default): the kind does not exist on this node.
    pub exec_allow: BTreeMap<String, ExecEntry>,
    /// Output beyond this fails an `exec` attempt.
    pub exec_max_output_bytes: usize,
}

/// One `[work.exec_allow]` entry: `name = "/abs/path"` (no job
/// arguments), or `[work.exec_allow.name]` with `program`, `args` (fixed,
/// passed first) and `argv` (`none`, `operands` or `free`: what a job may
/// add; docs/jobs.md).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum ExecEntry {
    /// A program that takes no job arguments.
    Path(String),
    /// A program with fixed arguments and an argument policy.
    Command(ExecTable),
}

/// The table form of an [`ExecEntry`].
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExecTable {
    /// Absolute program path.
    pub program: String,
    /// Arguments always passed first.
    #[serde(default)]
    pub args: Vec<String>,
    /// What a job may add: `none` (default), `operands` or `free`.
    #[serde(default = "default_argv_policy")]
    pub argv: String,
}

fn default_argv_policy() -> String {
    ArgvPolicy::None.as_str().to_owned()
}

impl ExecEntry {
    fn program(&self) -> &str {
        match self {
            ExecEntry::Path(p) => p,
            ExecEntry::Command(t) => &t.program,
        }
    }

    /// The command the `exec` kind runs; `None` if the argv policy is not
    /// a known name (validation refuses such a configuration).
    pub fn command(&self) -> Option<ExecCommand> {
        Some(match self {
            ExecEntry::Path(p) => ExecCommand::program(p.clone()),
            ExecEntry::Command(t) => ExecCommand {
                program: t.program.clone(),
                fixed_args: t.args.clone(),
                argv: ArgvPolicy::by_name(&t.argv)?,
            },
        })
    }
}

impl Default for WorkSettings {
    fn default() -> Self {
        Self {
            slots: 0,
            lease_ms: 10_000,
            heartbeat_ms: 2_000,
            tick_ms: 50,
            scan_ms: 2_000,
            max_queue_jobs: 100_000,
            max_offers_in_flight: 256,
            placement: "least_loaded".into(),
            default_max_attempts: 3,
            default_timeout_ms: 60_000,
            exec_allow: BTreeMap::new(),
            exec_max_output_bytes: 1 << 20,
        }
    }
}

/// Local storage settings.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    /// Writes that add data are refused (507) below this much free disk.
    pub min_free_bytes: u64,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self {
            min_free_bytes: 128 << 20,
        }
    }
}

/// Restart intensity of the node's root supervisor and shutdown bound.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionConfig {
    /// Restarts the root tolerates within `period_ms` before the node exits.
    pub max_restarts: u32,
    /// The root's intensity window.
    pub period_ms: u64,
    /// Bound on a graceful stop (SIGTERM) before remaining actors are killed.
    pub shutdown_timeout_ms: u64,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            period_ms: 10_000,
            shutdown_timeout_ms: 30_000,
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListenFile {
    http: Option<SocketAddr>,
    cluster: Option<SocketAddr>,
    gossip: Option<SocketAddr>,
    bulk: Option<SocketAddr>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    admin_token_file: Option<PathBuf>,
    read_token_file: Option<PathBuf>,
    #[serde(default)]
    token_key_files: Vec<PathBuf>,
    #[serde(default)]
    open_reads: bool,
}

/// The TOML file's shape; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    node_name: Option<String>,
    data_dir: Option<PathBuf>,
    seeds: Option<Vec<String>>,
    cookie_file: Option<PathBuf>,
    log_format: Option<LogFormat>,
    #[serde(default)]
    listen: ListenFile,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    http: HttpLimits,
    #[serde(default)]
    auth: AuthFile,
    #[serde(default)]
    supervision: SupervisionConfig,
    #[serde(default)]
    cluster: ClusterSettings,
    #[serde(default)]
    dht: DhtSettings,
    #[serde(default)]
    anti_entropy: AntiEntropySettings,
    #[serde(default)]
    storage: StorageSettings,
    #[serde(default)]
    work: WorkSettings,
}

/// Addresses the node listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listen {
    /// Admin HTTP.
    pub http: SocketAddr,
    /// Node links (ractor_cluster); used once cluster membership runs.
    pub cluster: SocketAddr,
    /// Gossip (UDP); used once cluster membership runs.
    pub gossip: SocketAddr,
    /// Bulk links (chunk transfers between nodes).
    pub bulk: SocketAddr,
}

/// Where secrets come from (read by [`crate::secrets`]).
#[derive(Debug, Clone, Default)]
pub struct SecretSources {
    /// Cluster cookie file (else `HYPHA_COOKIE`).
    pub cookie_file: Option<PathBuf>,
    /// Admin token file (else `HYPHA_ADMIN_TOKEN`).
    pub admin_token_file: Option<PathBuf>,
    /// Read-only token file (else `HYPHA_READ_TOKEN`).
    pub read_token_file: Option<PathBuf>,
    /// Keys that verify signed tokens (else `HYPHA_TOKEN_KEY`), one per
    /// file; several during a key rollover.
    pub token_key_files: Vec<PathBuf>,
    /// Reads need no token.
    pub open_reads: bool,
}

/// A fully resolved node configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Node name (`[A-Za-z0-9._-]`, ≤ 64); derived from the node id if unset.
    pub node_name: Option<String>,
    /// Data directory (node id, database).
    pub data_dir: PathBuf,
    /// Listen addresses.
    pub listen: Listen,
    /// Gossip seeds (`host:port`).
    pub seeds: Vec<String>,
    /// Secret sources.
    pub secrets: SecretSources,
    /// Log format.
    pub log_format: LogFormat,
    /// Labels set from configuration at every start.
    pub labels: BTreeMap<String, String>,
    /// HTTP limits.
    pub http: HttpLimits,
    /// Root supervision settings.
    pub supervision: SupervisionConfig,
    /// Cluster membership and node links.
    pub cluster: ClusterSettings,
    /// DHT and files.
    pub dht: DhtSettings,
    /// Replica repair.
    pub anti_entropy: AntiEntropySettings,
    /// Local storage.
    pub storage: StorageSettings,
    /// Work queues.
    pub work: WorkSettings,
    /// Dev or production.
    pub mode: Mode,
}

/// A configuration that cannot be used.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the expected shape.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's explanation.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("invalid setting {setting}: {message}")]
    Invalid {
        /// Which setting.
        setting: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn parse_default(addr: &str) -> SocketAddr {
    // The defaults are literals checked by a unit test.
    addr.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    toml::from_str(&text).map_err(|err| ConfigError::Parse {
        path: path.to_owned(),
        message: err.to_string(),
    })
}

impl NodeConfig {
    /// Resolve flags and environment (already merged by clap) over the file.
    pub fn resolve(args: &NodeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let config = Self {
            node_name: args.node_name.clone().or(file.node_name),
            data_dir: args
                .data_dir
                .clone()
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("hypha-data")),
            listen: Listen {
                http: args
                    .http_listen
                    .or(file.listen.http)
                    .unwrap_or_else(|| parse_default(DEFAULT_HTTP_LISTEN)),
                cluster: args
                    .cluster_listen
                    .or(file.listen.cluster)
                    .unwrap_or_else(|| parse_default(DEFAULT_CLUSTER_LISTEN)),
                gossip: args
                    .gossip_listen
                    .or(file.listen.gossip)
                    .unwrap_or_else(|| parse_default(DEFAULT_GOSSIP_LISTEN)),
                bulk: args
                    .bulk_listen
                    .or(file.listen.bulk)
                    .unwrap_or_else(|| parse_default(DEFAULT_BULK_LISTEN)),
            },
            seeds: if args.seeds.is_empty() {
                file.seeds.unwrap_or_default()
            } else {
                args.seeds.clone()
            },
            secrets: SecretSources {
                cookie_file: args.cookie_file.clone().or(file.cookie_file),
                admin_token_file: args.admin_token_file.clone().or(file.auth.admin_token_file),
                read_token_file: args.read_token_file.clone().or(file.auth.read_token_file),
                token_key_files: if args.token_key_files.is_empty() {
                    file.auth.token_key_files
                } else {
                    args.token_key_files.clone()
                },
                open_reads: args.open_reads || file.auth.open_reads,
            },
            log_format: args.log_format.or(file.log_format).unwrap_or_default(),
            labels: file.labels,
            http: HttpLimits {
                tls_dir: args.http_tls_dir.clone().or(file.http.tls_dir.clone()),
                ..file.http
            },
            supervision: SupervisionConfig {
                max_restarts: args.max_restarts.unwrap_or(file.supervision.max_restarts),
                ..file.supervision
            },
            cluster: ClusterSettings {
                id: args.cluster_id.clone().unwrap_or(file.cluster.id.clone()),
                tls_dir: args.tls_dir.clone().or(file.cluster.tls_dir.clone()),
                links: if args.plaintext_links {
                    LinkSecurity::Plaintext
                } else {
                    file.cluster.links
                },
                ..file.cluster
            },
            dht: file.dht,
            anti_entropy: file.anti_entropy,
            storage: file.storage,
            work: file.work,
            mode: if args.dev {
                Mode::Dev
            } else {
                Mode::Production
            },
        };
        config.validate()?;
        Ok(config)
    }

    /// Where this node's link certificates are, or why links are
    /// plaintext. A directory given explicitly is always used (a missing
    /// file then fails the start with the file's name); the default
    /// `DATA_DIR/tls` is used when it holds a certificate.
    pub fn link_plan(&self) -> Result<LinkPlan, MissingLinkCertificates> {
        if let Some(dir) = &self.cluster.tls_dir {
            return Ok(LinkPlan::MutualTls(dir.clone()));
        }
        let default_dir = self.data_dir.join(DEFAULT_TLS_DIR);
        if default_dir
            .join(hypha_cluster::peers::tls::CERT_FILE)
            .exists()
        {
            return Ok(LinkPlan::MutualTls(default_dir));
        }
        match (self.cluster.links, self.mode) {
            (LinkSecurity::Plaintext, _) | (_, Mode::Dev) => Ok(LinkPlan::Plaintext),
            (LinkSecurity::MutualTls, Mode::Production) => {
                Err(MissingLinkCertificates(default_dir.display().to_string()))
            }
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(name) = &self.node_name {
            validate_node_name(name)?;
        }
        if self.labels.len() > hypha_core::labels::MAX_LABELS {
            return Err(ConfigError::Invalid {
                setting: "labels",
                message: format!("at most {} labels", hypha_core::labels::MAX_LABELS),
            });
        }
        for (key, value) in &self.labels {
            hypha_core::labels::validate_key(key)
                .and_then(|()| hypha_core::labels::validate_value(value))
                .map_err(|err| ConfigError::Invalid {
                    setting: "labels",
                    message: err.to_string(),
                })?;
        }
        let invalid = |setting, message: &str| ConfigError::Invalid {
            setting,
            message: message.to_owned(),
        };
        if self.http.max_connections == 0 {
            return Err(invalid("http.max_connections", "must be at least 1"));
        }
        if self.http.header_read_timeout_ms == 0 {
            return Err(invalid("http.header_read_timeout_ms", "must be at least 1"));
        }
        let preauth = &self.http.preauth;
        if preauth.deadline_ms == 0 || preauth.max_per_source == 0 || preauth.max_total == 0 {
            return Err(invalid("http.preauth", "every limit must be at least 1"));
        }
        self.validate_cluster()?;
        self.validate_dht()?;
        if self.supervision.period_ms == 0 {
            return Err(invalid("supervision.period_ms", "must be at least 1"));
        }
        Ok(())
    }
}

impl NodeConfig {
    fn validate_dht(&self) -> Result<(), ConfigError> {
        let invalid = |setting, message: &str| ConfigError::Invalid {
            setting,
            message: message.to_owned(),
        };
        let d = &self.dht;
        if !(1..=16).contains(&d.partition_bits) {
            return Err(invalid("dht.partition_bits", "must be 1-16"));
        }
        if d.replicas == 0 || d.replicas > 16 {
            return Err(invalid("dht.replicas", "must be 1-16"));
        }
        if d.write_quorum == 0 || d.write_quorum > d.replicas {
            return Err(invalid("dht.write_quorum", "must be 1..=replicas"));
        }
        if d.read_quorum == 0 || d.read_quorum > d.replicas {
            return Err(invalid("dht.read_quorum", "must be 1..=replicas"));
        }
        if d.rpc_timeout_ms == 0 || d.gc_tick_ms == 0 {
            return Err(invalid(
                "dht.*_ms",
                "timeouts and ticks must be at least 1 ms",
            ));
        }
        if d.upload_pipeline == 0 || d.read_ahead == 0 {
            return Err(invalid(
                "dht.upload_pipeline/read_ahead",
                "must be at least 1",
            ));
        }
        if d.chunk_grace_ms < 2_000 {
            return Err(invalid("dht.chunk_grace_ms", "must be at least 2000"));
        }
        if d.max_file_bytes == 0 || d.max_file_bytes > 4 << 30 {
            return Err(invalid("dht.max_file_bytes", "must be 1 byte to 4 GiB"));
        }
        let a = &self.anti_entropy;
        if a.period_ms == 0 || a.recheck_ms == 0 || a.retry_ms == 0 || a.tick_ms == 0 {
            return Err(invalid(
                "anti_entropy.*_ms",
                "periods and ticks must be at least 1 ms",
            ));
        }
        if a.concurrency == 0 || a.max_entries == 0 || !(1..=8).contains(&a.step) {
            return Err(invalid(
                "anti_entropy",
                "concurrency and max_entries must be at least 1, step 1-8",
            ));
        }
        self.validate_work()
    }

    fn validate_work(&self) -> Result<(), ConfigError> {
        let invalid = |setting, message: &str| ConfigError::Invalid {
            setting,
            message: message.to_owned(),
        };
        let w = &self.work;
        if w.tick_ms == 0 || w.scan_ms == 0 || w.lease_ms < 100 {
            return Err(invalid(
                "work.*_ms",
                "ticks must be at least 1 ms, the lease at least 100 ms",
            ));
        }
        if w.heartbeat_ms == 0 || w.heartbeat_ms.saturating_mul(3) > w.lease_ms {
            return Err(invalid(
                "work.heartbeat_ms",
                "must be 1 ms to a third of lease_ms",
            ));
        }
        if hypha_work::placement::by_name(&w.placement).is_none() {
            return Err(invalid(
                "work.placement",
                "must be least_loaded or locality",
            ));
        }
        if w.max_queue_jobs == 0 || w.max_offers_in_flight == 0 {
            return Err(invalid("work", "queue and offer limits must be at least 1"));
        }
        if w.exec_allow.values().any(|e| !e.program().starts_with('/')) {
            return Err(invalid("work.exec_allow", "program paths must be absolute"));
        }
        if w.exec_allow.values().any(|e| e.command().is_none()) {
            return Err(invalid(
                "work.exec_allow",
                "argv must be none, operands or free",
            ));
        }
        Ok(())
    }

    fn validate_cluster(&self) -> Result<(), ConfigError> {
        let invalid = |setting, message: &str| ConfigError::Invalid {
            setting,
            message: message.to_owned(),
        };
        let c = &self.cluster;
        let id_ok = !c.id.is_empty()
            && c.id.len() <= 64
            && c.id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !id_ok {
            return Err(invalid(
                "cluster.id",
                "must be 1-64 characters of [A-Za-z0-9._-]",
            ));
        }
        if c.gossip.gossip_interval_ms == 0 || c.gossip.tick_ms == 0 {
            return Err(invalid("cluster.gossip", "intervals must be at least 1 ms"));
        }
        if !(c.gossip.phi_threshold.is_finite() && c.gossip.phi_threshold > 0.0) {
            return Err(invalid(
                "cluster.gossip.phi_threshold",
                "must be a positive number",
            ));
        }
        let p = &c.probes;
        if p.suspicion_timeout_ms < p.direct_timeout_ms.saturating_add(p.indirect_timeout_ms) {
            return Err(invalid(
                "cluster.probes.suspicion_timeout_ms",
                "must cover direct_timeout_ms + indirect_timeout_ms",
            ));
        }
        if c.ping_interval_ms == 0 || c.ping_timeout_ms == 0 || c.hung_after_misses == 0 {
            return Err(invalid("cluster.ping_*", "must be at least 1"));
        }
        let p = &c.preauth;
        if p.deadline_ms == 0 || p.max_per_source == 0 || p.max_total == 0 {
            return Err(invalid("cluster.preauth.*", "must be at least 1"));
        }
        Ok(())
    }
}

/// Node names appear in actor names and node links: keep them plain.
pub fn validate_node_name(name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            setting: "node_name",
            message: format!("{name:?} must be 1-64 characters of [A-Za-z0-9._-]"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> NodeArgs {
        let mut argv = vec!["hypha", "node"];
        argv.extend_from_slice(extra);
        match crate::cli::Cli::parse_from(argv).command {
            crate::cli::Command::Node(a) => *a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn links_need_certificates_outside_dev_unless_opted_out() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().unwrap();
        let plan = |extra: &[&str]| {
            let mut argv = vec!["--data-dir", data_dir];
            argv.extend_from_slice(extra);
            NodeConfig::resolve(&args(&argv)).unwrap().link_plan()
        };
        let err = plan(&[]).unwrap_err().to_string();
        assert!(err.contains("--plaintext-links"), "{err}");
        assert_eq!(plan(&["--dev"]).unwrap(), LinkPlan::Plaintext);
        assert_eq!(plan(&["--plaintext-links"]).unwrap(), LinkPlan::Plaintext);
        assert_eq!(
            plan(&["--tls-dir", "/etc/t"]).unwrap(),
            LinkPlan::MutualTls("/etc/t".into())
        );
        // Certificates in the default place win over the opt-out.
        let default_dir = dir.path().join(DEFAULT_TLS_DIR);
        std::fs::create_dir_all(&default_dir).unwrap();
        std::fs::write(default_dir.join(hypha_cluster::peers::tls::CERT_FILE), "").unwrap();
        assert_eq!(
            plan(&["--plaintext-links"]).unwrap(),
            LinkPlan::MutualTls(default_dir)
        );
    }

    #[test]
    fn the_admin_tls_dir_comes_from_the_flag_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("node.toml");
        std::fs::write(&file, "[http]\ntls_dir = \"/etc/from-file\"\n").unwrap();
        let file = file.to_str().unwrap();
        let resolve = |extra: &[&str]| {
            let mut argv = vec!["--config", file];
            argv.extend_from_slice(extra);
            NodeConfig::resolve(&args(&argv)).map(|c| c.http.tls_dir)
        };
        assert_eq!(resolve(&[]).unwrap(), Some("/etc/from-file".into()));
        assert_eq!(
            resolve(&["--http-tls-dir", "/etc/flag"]).unwrap(),
            Some("/etc/flag".into())
        );
        assert_eq!(NodeConfig::resolve(&args(&[])).unwrap().http.tls_dir, None);
        std::fs::write(file, "[http.preauth]\nmax_total = 0\n").unwrap();
        let err = resolve(&[]).unwrap_err().to_string();
        assert!(err.contains("http.preauth"), "{err}");
    }

    #[test]
    fn defaults_parse() {
        for addr in [
            DEFAULT_HTTP_LISTEN,
            DEFAULT_CLUSTER_LISTEN,
            DEFAULT_GOSSIP_LISTEN,
            DEFAULT_BULK_LISTEN,
        ] {
            assert!(addr.parse::<SocketAddr>().is_ok());
        }
    }

    #[test]
    fn flags_override_file_and_file_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hypha.toml");
        std::fs::write(
            &path,
            r#"
node_name = "from-file"
seeds = ["10.0.0.1:7072"]
[listen]
http = "127.0.0.1:9000"
[labels]
zone = "eu-1"
[http]
max_body_bytes = 42
[supervision]
max_restarts = 2
"#,
        )
        .unwrap();
        let p = path.to_str().unwrap();
        let c = NodeConfig::resolve(&args(&["--config", p, "--node-name", "from-flag"])).unwrap();
        assert_eq!(c.node_name.as_deref(), Some("from-flag"));
        assert_eq!(c.listen.http.port(), 9000);
        assert_eq!(c.listen.gossip, DEFAULT_GOSSIP_LISTEN.parse().unwrap());
        assert_eq!(c.seeds, ["10.0.0.1:7072"]);
        assert_eq!(c.labels["zone"], "eu-1");
        assert_eq!(c.http.max_body_bytes, 42);
        assert_eq!(
            c.http.max_connections,
            HttpLimits::default().max_connections
        );
        assert_eq!(c.supervision.max_restarts, 2);
        assert_eq!(c.mode, Mode::Production);
    }

    #[test]
    fn exec_entries_name_a_path_or_a_policy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hypha.toml");
        let load = |toml: &str| {
            std::fs::write(&path, toml).unwrap();
            NodeConfig::resolve(&args(&["--config", path.to_str().unwrap()]))
        };
        let c = load(
            "[work.exec_allow]\nwc = \"/usr/bin/wc\"\n\
             [work.exec_allow.grep]\nprogram = \"/usr/bin/grep\"\n\
             args = [\"-F\", \"--\"]\nargv = \"operands\"\n",
        )
        .unwrap();
        let wc = c.work.exec_allow["wc"].command().unwrap();
        assert_eq!(wc, ExecCommand::program("/usr/bin/wc"));
        let grep = c.work.exec_allow["grep"].command().unwrap();
        assert_eq!(grep.fixed_args, ["-F", "--"]);
        assert_eq!(grep.argv, ArgvPolicy::Operands);
        let err = load("[work.exec_allow.x]\nprogram = \"/bin/x\"\nargv = \"any\"\n").unwrap_err();
        assert!(err.to_string().contains("none, operands or free"), "{err}");
    }

    #[test]
    fn the_documented_example_parses() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/hypha.example.toml");
        let c = NodeConfig::resolve(&args(&["--config", example])).unwrap();
        assert_eq!(c.node_name.as_deref(), Some("edge-1"));
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(c.supervision.max_restarts, 5);
        assert!(c.secrets.read_token_file.is_some());
        assert_eq!(c.cluster.preauth, PreAuthLimits::default());
    }

    #[test]
    fn bad_files_and_values_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "nodename = 1\n").unwrap();
        let err = NodeConfig::resolve(&args(&["--config", path.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
        let err = NodeConfig::resolve(&args(&["--node-name", "a b"])).unwrap_err();
        assert!(err.to_string().contains("node_name"), "{err}");
        let missing = NodeConfig::resolve(&args(&["--config", "/nonexistent/h.toml"]));
        assert!(matches!(missing, Err(ConfigError::Read { .. })));
    }
}
