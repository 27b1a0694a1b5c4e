//! Command-line interface (clap). Every node flag also reads a `HYPHA_*`
//! environment variable; flags win over the environment, which wins over
//! the config file.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

/// Hypha: a fault-tolerant actor cluster node.
#[derive(Debug, Parser)]
#[command(name = "hypha", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one node until SIGTERM/SIGINT.
    Node(Box<NodeArgs>),
    /// Local clusters.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Print the membership view of a running node.
    Members(MembersArgs),
    /// Make TLS material for node links and the admin API.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Make token keys and signed API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Act on a stopped node's store.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Store a file in the cluster (streamed; `-` reads standard input).
    Put(PutArgs),
    /// Read a file from the cluster (to FILE, or standard output).
    Get(GetArgs),
    /// List files, sorted by name.
    Ls(LsArgs),
    /// Show a file's metadata, partition and replicas.
    Stat(NameArgs),
    /// Delete a file.
    Rm(NameArgs),
    /// Submit, inspect, list and cancel jobs.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Depth, in-flight and dead-letter counts of every queue.
    Queues(ApiArgs),
    /// The S3 endpoint's access keys.
    #[command(subcommand)]
    S3(S3Command),
    /// Back the cluster's files up to a directory, verify a backup,
    /// restore it (docs/backup.md).
    #[command(subcommand)]
    Backup(BackupCommand),
}

/// `hypha backup …`
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Write a snapshot of every file into DIR; chunks already in DIR are
    /// not written again.
    Create(BackupCreateArgs),
    /// Check a backup: every referenced chunk present and re-hashed, every
    /// index root recomputed; exits non-zero listing any problem.
    Verify(BackupVerifyArgs),
    /// Upload a snapshot's files into a cluster, skipping files it already
    /// holds with the same content (so a rerun after an interruption
    /// finishes the job).
    Restore(BackupRestoreArgs),
    /// List the snapshots of a backup.
    Ls(BackupLsArgs),
}

/// Flags of `hypha backup create`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupCreateArgs {
    /// The backup directory (created if missing).
    #[arg(long)]
    pub to: PathBuf,
    /// Chunks downloaded at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Node and output options (an admin token).
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Flags of `hypha backup verify`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupVerifyArgs {
    /// The backup directory.
    pub dir: PathBuf,
    /// Only this snapshot (default: every one).
    #[arg(long)]
    pub snapshot: Option<String>,
    /// Print a JSON report instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `hypha backup restore`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupRestoreArgs {
    /// The backup directory.
    #[arg(long)]
    pub from: PathBuf,
    /// The snapshot to restore (default: the newest).
    #[arg(long)]
    pub snapshot: Option<String>,
    /// Only files whose names start with this.
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Files uploaded at once.
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// Node and output options (a write or admin token).
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Flags of `hypha backup ls`.
#[derive(Debug, Clone, clap::Args)]
pub struct BackupLsArgs {
    /// The backup directory.
    pub dir: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `hypha s3 …`
#[derive(Debug, Subcommand)]
pub enum S3Command {
    /// Access keys: make, list, delete.
    #[command(subcommand)]
    Key(S3KeyCommand),
}

/// `hypha s3 key …`
#[derive(Debug, Subcommand)]
pub enum S3KeyCommand {
    /// Make an access key; prints the key id and its secret (shown once).
    Create(S3KeyCreateArgs),
    /// List access keys (never their secrets).
    Ls(ApiArgs),
    /// Delete an access key.
    Rm(S3KeyArgs),
}

/// Flags of `hypha s3 key create`.
#[derive(Debug, Clone, clap::Args)]
pub struct S3KeyCreateArgs {
    /// What the key may do: read, write or admin.
    #[arg(long, default_value = "write")]
    pub role: String,
    /// Who or what the key is for.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Node and output options.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Flags of `hypha s3 key rm`.
#[derive(Debug, Clone, clap::Args)]
pub struct S3KeyArgs {
    /// The access key id.
    pub access_key: String,
    /// Node and output options.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `hypha jobs …`
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Submit a job; prints its id once it is durable.
    Submit(SubmitArgs),
    /// Show a job: state, attempts and where they ran, result.
    Status(JobArgs),
    /// List jobs.
    Ls(JobsLsArgs),
    /// Cancel a job that has not finished.
    Cancel(JobArgs),
    /// Show the chain a job starts: each step's state, node and error.
    Chain(JobArgs),
    /// Run a `wasm` module over every stored file under a prefix: one job
    /// per file, idempotent by module hash and input, so a re-run skips
    /// what was done.
    Map(MapArgs),
}

/// Flags of `hypha jobs map`.
#[derive(Debug, Clone, clap::Args)]
pub struct MapArgs {
    /// The stored WebAssembly module (binary or text format).
    #[arg(long)]
    pub module: String,
    /// Every stored file whose name starts with this is one input.
    #[arg(long)]
    pub prefix: String,
    /// Store each result as a file: this prefix, then the input's name
    /// after `--prefix`.
    #[arg(long)]
    pub out: Option<String>,
    /// Queue name.
    #[arg(long, short = 'q', default_value = "map")]
    pub queue: String,
    /// Module argument `key=value` (repeatable): `arg1=…`, `env.NAME=…`,
    /// limits such as `fuel=…`.
    #[arg(long = "arg", short = 'a')]
    pub args: Vec<String>,
    /// Attempts per input before dead-lettering (node default if unset).
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// A follow-up step, `"KIND key=value …"` (repeatable, in order):
    /// it runs on the result of the step before, in the same queue.
    #[arg(long = "then")]
    pub then: Vec<String>,
    /// Wait until every job finished and print each outcome.
    #[arg(long)]
    pub wait: bool,
    /// Node and output options.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Flags of `hypha jobs submit`.
#[derive(Debug, Clone, clap::Args)]
pub struct SubmitArgs {
    /// Queue name.
    #[arg(long, short = 'q')]
    pub queue: String,
    /// Job kind (echo, sleep, checksum, wordcount, grep, wasm; exec if enabled).
    #[arg(long, short = 'k')]
    pub kind: String,
    /// Inline payload (text).
    #[arg(long, conflicts_with = "file")]
    pub payload: Option<String>,
    /// A stored file as the input.
    #[arg(long)]
    pub file: Option<String>,
    /// Handler argument `key=value` (repeatable), e.g. `pattern=error`.
    #[arg(long = "arg", short = 'a')]
    pub args: Vec<String>,
    /// Idempotency key: resubmitting with it returns the same job.
    #[arg(long)]
    pub key: Option<String>,
    /// Higher runs first.
    #[arg(long, default_value_t = 0)]
    pub priority: i32,
    /// Attempts before dead-lettering (node default if unset).
    #[arg(long)]
    pub max_attempts: Option<u32>,
    /// Per-attempt timeout in ms (node default if unset).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// A follow-up step, `"KIND key=value …"` (repeatable, in order):
    /// it runs on the result of the step before, in the same queue.
    #[arg(long = "then")]
    pub then: Vec<String>,
    /// Wait until the job (and its chain) finishes and print the result.
    #[arg(long)]
    pub wait: bool,
    /// Node and output options.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Flags of `hypha jobs status` and `hypha jobs cancel`.
#[derive(Debug, Clone, clap::Args)]
pub struct JobArgs {
    /// Job id.
    pub id: String,
    /// Node and output options.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Flags of `hypha jobs ls`.
#[derive(Debug, Clone, clap::Args)]
pub struct JobsLsArgs {
    /// Only this queue.
    #[arg(long, short = 'q')]
    pub queue: Option<String>,
    /// Only this state (queued, running, done, dead_letter, cancelled).
    #[arg(long)]
    pub state: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Node and output options.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Which node to talk to, and as whom (shared by the client commands).
#[derive(Debug, Clone, clap::Args)]
pub struct ApiArgs {
    /// Admin API of the node to ask.
    #[arg(long, env = "HYPHA_URL", default_value = "http://127.0.0.1:7070")]
    pub url: String,
    /// The cluster CA certificate (PEM) to trust for an https:// URL
    /// (`ca.pem` as `hypha cert admin` writes it).
    #[arg(long, env = "HYPHA_CA")]
    pub ca: Option<PathBuf>,
    /// Bearer token (read role for reads; write or admin role for put and rm).
    #[arg(long, env = "HYPHA_ADMIN_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON answer instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Flags of `hypha put`.
#[derive(Debug, Clone, clap::Args)]
pub struct PutArgs {
    /// Local file to upload, or `-` for standard input.
    pub file: PathBuf,
    /// Name in the cluster (default: the file's name).
    pub name: Option<String>,
    /// Label `key=value` (repeatable).
    #[arg(long = "label", short = 'l')]
    pub labels: Vec<String>,
    /// Content type stored with the file.
    #[arg(long, default_value = "application/octet-stream")]
    pub content_type: String,
    /// Node and output options.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Flags of `hypha get`.
#[derive(Debug, Clone, clap::Args)]
pub struct GetArgs {
    /// Name in the cluster.
    pub name: String,
    /// Where to write (default: standard output). Written to `FILE.part`
    /// and renamed once complete, so a failed read leaves no partial file.
    #[arg(long, short = 'o')]
    pub output: Option<PathBuf>,
    /// Node and output options.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Flags of `hypha ls`.
#[derive(Debug, Clone, clap::Args)]
pub struct LsArgs {
    /// Only names starting with this.
    #[arg(default_value = "")]
    pub prefix: String,
    /// Only files with label `key=value` (repeatable; all must match).
    #[arg(long = "label", short = 'l')]
    pub labels: Vec<String>,
    /// At most this many files (default: all, fetched page by page).
    #[arg(long)]
    pub limit: Option<usize>,
    /// Node and output options.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Flags of `hypha stat` and `hypha rm`.
#[derive(Debug, Clone, clap::Args)]
pub struct NameArgs {
    /// Name in the cluster.
    pub name: String,
    /// Node and output options.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `hypha cert …`
#[derive(Debug, Subcommand)]
pub enum CertCommand {
    /// Create a cluster CA (ca.pem, ca.key) in DIR.
    Ca {
        /// Where to write the CA (created; files are 0600).
        #[arg(long)]
        dir: PathBuf,
    },
    /// Create a node certificate signed by the CA in CA_DIR; OUT receives
    /// ca.pem, node.pem, node.key (point `--tls-dir` at it). The
    /// certificate names the node's id: give the node's data directory
    /// (its id is created there if the node is new) or the id itself; a
    /// renewal into an OUT that holds the node's certificate keeps its id.
    Node {
        /// Directory holding ca.pem and ca.key.
        #[arg(long)]
        ca_dir: PathBuf,
        /// Node name (certificate subject).
        #[arg(long)]
        name: String,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// The node's data directory, to read (or create) its id.
        #[arg(long, conflicts_with = "node_id")]
        data_dir: Option<PathBuf>,
        /// The node's id (64 hex digits, as `GET /v1/node` shows it).
        #[arg(long)]
        node_id: Option<String>,
    },
    /// Create the admin API's HTTPS certificate signed by the CA in
    /// CA_DIR; OUT receives admin.pem, admin.key (0600) and ca.pem (point
    /// the node's `--http-tls-dir` at OUT, clients' `--ca` at OUT/ca.pem).
    /// Files in OUT are replaced: renew, then SIGHUP the node.
    Admin {
        /// Directory holding ca.pem and ca.key.
        #[arg(long)]
        ca_dir: PathBuf,
        /// A DNS name or IP address clients reach the node by (repeat);
        /// default: localhost, 127.0.0.1 and ::1.
        #[arg(long = "host")]
        hosts: Vec<String>,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
}

/// `hypha store …`
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Move a stopped node's damaged store aside (renamed
    /// `db.damaged-<UTC time>`, never deleted), so that the node starts with
    /// an empty store, keeps its id and generation, and is refilled from its
    /// replicas by anti-entropy. Refused while a node has the store open.
    Quarantine {
        /// The node's data directory (the one given to `hypha node`).
        #[arg(long, env = "HYPHA_DATA_DIR")]
        data_dir: PathBuf,
    },
}

/// `hypha token …`
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a random token key in FILE (0600); nodes verify with it
    /// (`--token-key-file`), `hypha token create` signs with it.
    Key {
        /// Where to write the key; refuses to overwrite one.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print a signed bearer token.
    Create {
        /// The key to sign with.
        #[arg(long, env = "HYPHA_TOKEN_KEY_FILE")]
        key_file: PathBuf,
        /// The role it grants: read, write or admin.
        #[arg(long)]
        role: crate::auth::Role,
        /// Who it is for (shown in logs; rate limits are per token).
        #[arg(long)]
        subject: String,
        /// How long it is valid, e.g. 90s, 30m, 12h, 7d.
        #[arg(long, default_value = "24h", value_parser = parse_ttl_s)]
        ttl: u64,
        /// The cluster id it is good for.
        #[arg(long, env = "HYPHA_CLUSTER_ID", default_value = "hypha")]
        cluster_id: String,
    },
}

/// A duration such as `90s`, `30m`, `12h` or `7d`, in seconds.
pub fn parse_ttl_s(text: &str) -> Result<u64, String> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?}: expected a number and a unit (s, m, h, d)"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    match n.checked_mul(scale) {
        Some(0) | None => Err(format!("{text:?}: out of range")),
        Some(s) => Ok(s),
    }
}

/// `hypha cluster …`
#[derive(Debug, Subcommand)]
pub enum ClusterCommand {
    /// Start N node processes on loopback, wait until all are Up, print
    /// their admin URLs; Ctrl-C stops them all.
    Up(UpArgs),
    /// Restart every node of a running cluster, one at a time
    /// (docs/operations.md, "Rolling restart").
    Restart(RestartArgs),
}

/// Flags of `hypha cluster restart`.
#[derive(Debug, Clone, clap::Args)]
pub struct RestartArgs {
    /// One node at a time, each back and caught up before the next (the
    /// only way: restarting all at once would take the cluster down).
    #[arg(long)]
    pub rolling: bool,
    /// Longest one step may take (health before a restart, or the node
    /// back and caught up after it) before the restart stops.
    #[arg(long, default_value_t = 300)]
    pub step_timeout_s: u64,
    /// Node and output options (`--json`: one JSON event per line).
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Flags of `hypha cluster up`.
#[derive(Debug, Clone, clap::Args)]
pub struct UpArgs {
    /// Number of nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u16,
    /// Directory for the nodes' data, logs, cookie and admin token.
    #[arg(long, default_value = "hypha-cluster")]
    pub dir: PathBuf,
    /// Node i listens on base+10·i (HTTP), +1 (node links), +2 (gossip),
    /// +3 (bulk links).
    #[arg(long, default_value_t = 7070)]
    pub base_port: u16,
    /// Cluster id.
    #[arg(long, default_value = "hypha")]
    pub cluster_id: String,
    /// Plaintext node links. By default links are mutual TLS: a cluster
    /// CA (DIR/tls-ca) and node certificates (DIR/node-<i>/tls) are made.
    #[arg(long)]
    pub plaintext_links: bool,
    /// Serve the admin APIs over HTTPS: certificates for localhost,
    /// 127.0.0.1 and ::1 from the cluster CA (DIR/node-<i>/admin-tls);
    /// clients pass `--ca DIR/tls-ca/ca.pem`.
    #[arg(long)]
    pub https: bool,
    /// Once the cluster is up, write a Prometheus configuration scraping
    /// every node (job `hypha`) to this file.
    #[arg(long, value_name = "FILE")]
    pub prometheus: Option<PathBuf>,
}

/// Flags of `hypha members`.
#[derive(Debug, Clone, clap::Args)]
pub struct MembersArgs {
    /// Node and output options.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// Flags of `hypha node`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct NodeArgs {
    /// TOML configuration file.
    #[arg(long, env = "HYPHA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory (node id and database).
    #[arg(long, env = "HYPHA_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Node name; defaults to `hypha-<first 8 hex digits of the node id>`.
    #[arg(long, env = "HYPHA_NODE_NAME")]
    pub node_name: Option<String>,
    /// Admin HTTP address (port 0 picks a free port).
    #[arg(long, env = "HYPHA_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,
    /// Serve the admin API over HTTPS only, with admin.pem and admin.key
    /// from this directory (`hypha cert admin`). Reloaded on SIGHUP.
    #[arg(long, env = "HYPHA_HTTP_TLS_DIR")]
    pub http_tls_dir: Option<PathBuf>,
    /// Node-link (ractor_cluster) address.
    #[arg(long, env = "HYPHA_CLUSTER_LISTEN")]
    pub cluster_listen: Option<SocketAddr>,
    /// Gossip (UDP) address.
    #[arg(long, env = "HYPHA_GOSSIP_LISTEN")]
    pub gossip_listen: Option<SocketAddr>,
    /// Bulk-link address: chunk transfers between nodes (TCP).
    #[arg(long, env = "HYPHA_BULK_LISTEN")]
    pub bulk_listen: Option<SocketAddr>,
    /// Serve the S3-compatible API on this address (off unless set;
    /// `cluster up` sets it). docs/s3.md.
    #[arg(long, env = "HYPHA_S3_LISTEN")]
    pub s3_listen: Option<SocketAddr>,
    /// Gossip seed `host:port` (repeat, or comma-separate in HYPHA_SEEDS).
    #[arg(long = "seed", env = "HYPHA_SEEDS", value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// Cluster id: nodes gossip and link only within one id (default `hypha`).
    #[arg(long, env = "HYPHA_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// Mutual TLS on node links: directory with ca.pem, node.pem, node.key
    /// (default DATA_DIR/tls). Reloaded on SIGHUP.
    #[arg(long, env = "HYPHA_TLS_DIR")]
    pub tls_dir: Option<PathBuf>,
    /// Allow plaintext node links when no certificates are found (links
    /// are mutual TLS by default outside --dev).
    #[arg(long, env = "HYPHA_PLAINTEXT_LINKS")]
    pub plaintext_links: bool,
    /// File holding the cluster cookie (else HYPHA_COOKIE).
    #[arg(long, env = "HYPHA_COOKIE_FILE")]
    pub cookie_file: Option<PathBuf>,
    /// File holding the admin bearer token (else HYPHA_ADMIN_TOKEN).
    #[arg(long, env = "HYPHA_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// File holding a read-only bearer token (else HYPHA_READ_TOKEN).
    #[arg(long, env = "HYPHA_READ_TOKEN_FILE")]
    pub read_token_file: Option<PathBuf>,
    /// File holding a key that verifies signed tokens (repeat during a key
    /// rollover; else HYPHA_TOKEN_KEY). Tokens come from `hypha token create`.
    #[arg(
        long = "token-key-file",
        env = "HYPHA_TOKEN_KEY_FILES",
        value_delimiter = ','
    )]
    pub token_key_files: Vec<PathBuf>,
    /// Serve read-only admin routes without a token.
    #[arg(long, env = "HYPHA_OPEN_READS")]
    pub open_reads: bool,
    /// Restarts the root supervisor tolerates in its window before the node exits.
    #[arg(long, env = "HYPHA_MAX_RESTARTS")]
    pub max_restarts: Option<u32>,
    /// Log format.
    #[arg(long, env = "HYPHA_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Development mode: generate (and print) a cookie and admin token when none is given.
    #[arg(long)]
    pub dev: bool,
    /// A label `KEY=VALUE` (repeatable), over the config file's `[labels]`;
    /// `zone=…` places replicas across zones (docs/dht.md, "Zones").
    #[arg(
        long = "label",
        value_name = "KEY=VALUE",
        env = "HYPHA_LABELS",
        value_delimiter = ','
    )]
    pub labels: Vec<String>,
}
