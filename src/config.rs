//! Node configuration, resolved from (lowest first) built-in defaults, a
//! TOML file, `HYPHA_*` environment variables and command-line flags, in
//! one place ([`NodeConfig::resolve`]).
//!
//! Each subsystem owns its section of the file: its crate defines the
//! settings struct (keys, defaults, `validate()`), and this module only
//! composes them (`[cluster]`, `[dht]`, `[anti_entropy]`, `[work]`,
//! `[storage]`) beside the node's own (`[listen]`, `[http]`, `[auth]`,
//! `[supervision]`, `[telemetry]`, `[backup]`, top-level keys). docs/hypha.example.toml is checked
//! against these structs by a test (`example` below).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hypha_cluster::preauth::PreAuthLimits;
use hypha_core::settings::{check, SettingsError};
use serde::Deserialize;
use thiserror::Error;

use crate::cli::NodeArgs;

pub use hypha_cluster::settings::{ClusterSettings, LinkSecurity};
pub use hypha_dht::settings::{AntiEntropySettings, DhtSettings, PlacementSettings};
pub use hypha_store::settings::StorageSettings;
pub use hypha_work::settings::{ExecEntry, ExecTable, WorkSettings};

#[cfg(test)]
mod example;

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
            // Far above what a node serves (8.5 k small GETs a second
            // on 2 cores): the default never throttles one client below
            // the node's capacity; overload is bounded by
            // `max_connections` and the queues behind it. Shared clusters
            // set each tenant's share (docs/security.md).
            rate_limit_per_s: 100_000,
            rate_limit_burst: 100_000,
            auth_failures_per_min: 30,
            auth_failure_burst: 10,
            allowed_hosts: Vec::new(),
            tls_dir: None,
            preauth: PreAuthLimits::default(),
        }
    }
}

impl HttpLimits {
    /// The first rule the settings break, if any.
    pub fn validate(&self) -> Result<(), SettingsError> {
        check(
            self.max_connections > 0,
            "http.max_connections",
            "must be at least 1",
        )?;
        check(
            self.header_read_timeout_ms > 0,
            "http.header_read_timeout_ms",
            "must be at least 1",
        )?;
        check(
            self.preauth.is_usable(),
            "http.preauth",
            "every limit must be at least 1",
        )
    }
}

/// The node's own metrics history for the console's charts
/// (`GET /v1/node/history`, docs/metrics.md).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TelemetrySettings {
    /// Time between two samples of the history; it keeps the last 720.
    pub history_interval_ms: u64,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            history_interval_ms: crate::telemetry::history::DEFAULT_INTERVAL_MS,
        }
    }
}

impl TelemetrySettings {
    /// The first rule the settings break, if any.
    pub fn validate(&self) -> Result<(), SettingsError> {
        // Below 100 ms the sampler would spend its time rendering the
        // metrics text; above an hour the ring would span a month.
        check(
            (100..=3_600_000).contains(&self.history_interval_ms),
            "telemetry.history_interval_ms",
            "must be 100 to 3600000",
        )
    }
}

/// Scheduled backups (`[backup]`, docs/backup.md): set `dir` on the one
/// node that should take them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct BackupSettings {
    /// The backup directory; unset, the node takes no scheduled backups.
    pub dir: Option<PathBuf>,
    /// Time between the starts of two backups.
    pub interval_ms: u64,
    /// Snapshots retained; older ones, and chunks only they reference,
    /// are removed after each backup.
    pub keep: u32,
}

/// Shortest accepted backup interval. Production intervals are hours;
/// seconds are for tests.
pub const MIN_BACKUP_INTERVAL_MS: u64 = 1_000;

impl Default for BackupSettings {
    fn default() -> Self {
        Self {
            dir: None,
            interval_ms: 86_400_000,
            keep: 7,
        }
    }
}

impl BackupSettings {
    /// The first rule the settings break, if any.
    pub fn validate(&self) -> Result<(), SettingsError> {
        check(
            self.interval_ms >= MIN_BACKUP_INTERVAL_MS,
            "backup.interval_ms",
            "must be at least 1000",
        )?;
        check(
            (1..=10_000).contains(&self.keep),
            "backup.keep",
            "must be 1 to 10000",
        )?;
        check(
            self.dir.as_ref().is_none_or(|d| !d.as_os_str().is_empty()),
            "backup.dir",
            "must not be empty",
        )
    }

    /// The schedule the node runs, if any.
    pub fn schedule(&self) -> Option<crate::backup::schedule::Schedule> {
        self.dir
            .as_ref()
            .map(|dir| crate::backup::schedule::Schedule {
                dir: dir.clone(),
                interval_ms: self.interval_ms,
                keep: self.keep as usize,
            })
    }
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

impl SupervisionConfig {
    /// The first rule the settings break, if any.
    pub fn validate(&self) -> Result<(), SettingsError> {
        check(
            self.period_ms > 0,
            "supervision.period_ms",
            "must be at least 1",
        )
    }
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
    s3: Option<SocketAddr>,
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
    placement: PlacementSettings,
    #[serde(default)]
    anti_entropy: AntiEntropySettings,
    #[serde(default)]
    storage: StorageSettings,
    #[serde(default)]
    work: WorkSettings,
    #[serde(default)]
    telemetry: TelemetrySettings,
    #[serde(default)]
    backup: BackupSettings,
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
    /// The S3-compatible endpoint, when served (docs/s3.md).
    pub s3: Option<SocketAddr>,
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

/// The config file's labels with the `--label KEY=VALUE` flags over them.
fn merge_labels(
    mut labels: BTreeMap<String, String>,
    flags: &[String],
) -> Result<BTreeMap<String, String>, ConfigError> {
    for flag in flags {
        let (key, value) = flag.split_once('=').ok_or_else(|| ConfigError::Invalid {
            setting: "labels",
            message: format!("--label {flag:?} is not KEY=VALUE"),
        })?;
        labels.insert(key.to_owned(), value.to_owned());
    }
    Ok(labels)
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
    /// Zone rules of placement (pinned prefixes).
    pub placement: PlacementSettings,
    /// Replica repair.
    pub anti_entropy: AntiEntropySettings,
    /// Local storage.
    pub storage: StorageSettings,
    /// Work queues.
    pub work: WorkSettings,
    /// The in-memory metrics history.
    pub telemetry: TelemetrySettings,
    /// Scheduled backups.
    pub backup: BackupSettings,
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

impl From<SettingsError> for ConfigError {
    fn from(e: SettingsError) -> Self {
        ConfigError::Invalid {
            setting: e.key,
            message: e.message,
        }
    }
}

fn parse_default(addr: &str) -> SocketAddr {
    // The defaults are literals checked by a unit test.
    addr.parse()
        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
}

/// The file, and whether it sets any replication knob of `[dht]`.
fn read_file(path: &Path) -> Result<(FileConfig, Replication), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let parse_error = |err: toml::de::Error| ConfigError::Parse {
        path: path.to_owned(),
        message: err.to_string(),
    };
    let table: toml::Table = toml::from_str(&text).map_err(parse_error)?;
    let replication = match table.get("dht").and_then(toml::Value::as_table) {
        Some(dht) if REPLICATION_KEYS.iter().any(|k| dht.contains_key(*k)) => Replication::Set,
        _ => Replication::Default,
    };
    let file = FileConfig::deserialize(table).map_err(parse_error)?;
    Ok((file, replication))
}

/// The `[dht]` keys that size replication.
const REPLICATION_KEYS: [&str; 3] = ["replicas", "write_quorum", "read_quorum"];

/// Whether the config file chose R and W itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replication {
    Default,
    Set,
}

/// R, W and the read quorum a node runs with. A `--dev` node without
/// seeds is a cluster of one: with the defaults (R = 3, W = 2) it would
/// refuse every write for want of a second replica, so unless the file
/// chose them it keeps one copy and acknowledges it (R = W = 1).
fn sized_for_cluster(
    dht: DhtSettings,
    mode: Mode,
    seeds: &[String],
    replication: Replication,
) -> DhtSettings {
    match (mode, seeds.is_empty(), replication) {
        (Mode::Dev, true, Replication::Default) => DhtSettings {
            replicas: 1,
            write_quorum: 1,
            read_quorum: 1,
            ..dht
        },
        _ => dht,
    }
}

impl NodeConfig {
    /// Resolve flags and environment (already merged by clap) over the file.
    pub fn resolve(args: &NodeArgs) -> Result<Self, ConfigError> {
        let (file, replication) = match &args.config {
            Some(path) => read_file(path)?,
            None => (FileConfig::default(), Replication::Default),
        };
        let mode = if args.dev {
            Mode::Dev
        } else {
            Mode::Production
        };
        let seeds = if args.seeds.is_empty() {
            file.seeds.clone().unwrap_or_default()
        } else {
            args.seeds.clone()
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
                s3: args.s3_listen.or(file.listen.s3),
            },
            dht: sized_for_cluster(file.dht, mode, &seeds, replication),
            seeds,
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
            labels: merge_labels(file.labels, &args.labels)?,
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
            placement: file.placement,
            anti_entropy: file.anti_entropy,
            storage: file.storage,
            work: file.work,
            telemetry: file.telemetry,
            backup: file.backup,
            mode,
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
        self.http.validate()?;
        self.cluster.validate()?;
        self.dht.validate()?;
        self.placement.validate(&self.dht)?;
        // The fence (docs/dht.md): a partition moves away from a member
        // only after its Down grace, which must outlast the member's
        // majority lease, so that the old replica has stopped
        // acknowledging before the new one starts.
        hypha_core::settings::check(
            self.dht.down_grace_ms > self.cluster.lease_ms,
            "dht.down_grace_ms",
            "must exceed cluster.lease_ms (a partition must not move before its old replica's lease ran out)",
        )?;
        self.anti_entropy.validate()?;
        self.work.validate()?;
        self.supervision.validate()?;
        self.telemetry.validate()?;
        self.backup.validate()?;
        Ok(())
    }
}

/// Node names appear in actor names and node links: keep them plain.
pub fn validate_node_name(name: &str) -> Result<(), ConfigError> {
    if hypha_cluster::settings::is_plain_name(name) {
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
    use hypha_work::handler::{ArgvPolicy, ExecCommand};

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
    fn a_lone_dev_node_keeps_one_copy_unless_told_otherwise() {
        let rf = |c: &NodeConfig| (c.dht.replicas, c.dht.write_quorum, c.dht.read_quorum);
        let lone = NodeConfig::resolve(&args(&["--dev"])).unwrap();
        assert_eq!(rf(&lone), (1, 1, 1));
        let seeded = NodeConfig::resolve(&args(&["--dev", "--seed", "127.0.0.1:7072"])).unwrap();
        assert_eq!(rf(&seeded), (3, 2, 2));
        let production = NodeConfig::resolve(&args(&[])).unwrap();
        assert_eq!(rf(&production), (3, 2, 2));

        let dir = tempfile::tempdir().unwrap();
        let chosen = dir.path().join("chosen.toml");
        std::fs::write(&chosen, "[dht]\nreplicas = 2\n").unwrap();
        let c = NodeConfig::resolve(&args(&["--dev", "--config", chosen.to_str().unwrap()]));
        assert_eq!(rf(&c.unwrap()), (2, 2, 2), "the file's choice stands");
        let other = dir.path().join("other.toml");
        std::fs::write(&other, "[dht]\nrpc_timeout_ms = 900\n").unwrap();
        let c =
            NodeConfig::resolve(&args(&["--dev", "--config", other.to_str().unwrap()])).unwrap();
        assert_eq!((rf(&c), c.dht.rpc_timeout_ms), ((1, 1, 1), 900));
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "[dht]\nreplicas = \"three\"\n").unwrap();
        let err = NodeConfig::resolve(&args(&["--config", bad.to_str().unwrap()])).unwrap_err();
        assert!(err.to_string().contains("invalid config file"), "{err}");
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
    fn backups_are_scheduled_only_with_a_dir_and_sane_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.toml");
        let load = |toml: &str| {
            std::fs::write(&path, toml).unwrap();
            NodeConfig::resolve(&args(&["--config", path.to_str().unwrap()]))
        };
        let c = load("").unwrap();
        assert_eq!(c.backup, BackupSettings::default());
        assert!(c.backup.schedule().is_none());
        let c = load("[backup]\ndir = \"/b\"\ninterval_ms = 1000\nkeep = 2\n").unwrap();
        let s = c.backup.schedule().unwrap();
        assert_eq!(
            (s.dir.to_str(), s.interval_ms, s.keep),
            (Some("/b"), 1000, 2)
        );
        for (bad, key) in [
            ("interval_ms = 999", "backup.interval_ms"),
            ("keep = 0", "backup.keep"),
            ("dir = \"\"", "backup.dir"),
        ] {
            let err = load(&format!("[backup]\n{bad}\n")).unwrap_err().to_string();
            assert!(err.contains(key), "{bad}: {err}");
        }
        let err = load("[backup]\nevery = 1\n").unwrap_err().to_string();
        assert!(err.contains("unknown field"), "{err}");
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
