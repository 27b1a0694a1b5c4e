//! Helpers for black-box node tests: in-process nodes and real processes.
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;

pub mod cluster;
pub mod tools;
use std::time::{Duration, Instant};

use hypha::auth::{Claims, Role, TokenKey, TokenTable};
use hypha::cli::NodeArgs;
use hypha::config::NodeConfig;
use hypha::node::{self, RunningNode};
use hypha::secrets::{self, Secrets};

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";
pub const READ_TOKEN: &str = "test-read-token-0123456789abcdef";
pub const COOKIE: &str = "test-cookie-0123456789abcdef0123";
/// The key test nodes verify signed tokens with.
pub const TOKEN_KEY: &[u8] = b"test-token-key-0123456789abcdef-0123456789";

/// A token signed with [`TOKEN_KEY`] for the default cluster, issued
/// `age_s` ago and valid `ttl_s` from then.
pub fn signed_token(role: Role, age_s: u64, ttl_s: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = Claims::new("hypha", "tests", role, now - age_s, ttl_s);
    TokenKey::new(TOKEN_KEY).unwrap().sign(&claims).unwrap()
}

pub fn secrets() -> Secrets {
    let mut tokens = TokenTable::new("hypha", false);
    tokens.add(ADMIN_TOKEN, Role::Admin);
    tokens.add(READ_TOKEN, Role::Read);
    tokens.add_key(&TokenKey::new(TOKEN_KEY).unwrap());
    Secrets {
        cookie: secrets::generate(),
        tokens,
        generated: Vec::new(),
    }
}

pub fn config(dir: &Path, max_restarts: Option<u32>) -> NodeConfig {
    let args = NodeArgs {
        data_dir: Some(dir.to_owned()),
        http_listen: Some("127.0.0.1:0".parse().unwrap()),
        cluster_listen: Some("127.0.0.1:0".parse().unwrap()),
        gossip_listen: Some("127.0.0.1:0".parse().unwrap()),
        bulk_listen: Some("127.0.0.1:0".parse().unwrap()),
        max_restarts,
        ..NodeArgs::default()
    };
    let mut config = NodeConfig::resolve(&args).unwrap();
    config.cluster.tls_dir = Some(test_tls_dir(dir));
    config
}

/// The cluster CA every test node's certificate chains to: links are
/// mutual TLS outside `--dev`, so tests run them that way too. Made once
/// under the target directory, in a private directory renamed into place,
/// so that test binaries running at once never see half of it.
pub fn test_ca_dir() -> PathBuf {
    use hypha_cluster::peers::tls;
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("test-cluster-ca");
        publish_once(&dir, |private| {
            let ca = tls::new_ca().unwrap();
            std::fs::write(private.join(tls::CA_FILE), &ca.cert_pem).unwrap();
            std::fs::write(private.join(tls::CA_KEY_FILE), &ca.key_pem).unwrap();
        });
        dir
    })
    .clone()
}

/// The link certificates of the node whose data directory is `data_dir`
/// (its id created there, as its first start would): a certificate names
/// its node, so every test node has its own.
pub fn test_tls_dir(data_dir: &Path) -> PathBuf {
    use hypha_cluster::peers::tls;
    std::fs::create_dir_all(data_dir).unwrap();
    let id = hypha::identity::load_or_create(data_dir).unwrap();
    let ca = test_ca_dir();
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("test-node-tls")
        .join(id.to_hex());
    publish_once(&dir, |private| {
        let read = |f: &str| std::fs::read_to_string(ca.join(f)).unwrap();
        let node = tls::new_node_cert(&read(tls::CA_KEY_FILE), "test-node", &id).unwrap();
        std::fs::write(private.join(tls::CA_FILE), read(tls::CA_FILE)).unwrap();
        std::fs::write(private.join(tls::CERT_FILE), &node.cert_pem).unwrap();
        std::fs::write(private.join(tls::KEY_FILE), &node.key_pem).unwrap();
    });
    dir
}

/// Fill `dir` once: written in a private directory, renamed into place,
/// so a reader never sees half of it; the loser of a race uses the winner's.
fn publish_once(dir: &Path, fill: impl FnOnce(&Path)) {
    if dir.exists() {
        return;
    }
    let private = dir.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::create_dir_all(&private).unwrap();
    fill(&private);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    if std::fs::rename(&private, dir).is_err() {
        let _ = std::fs::remove_dir_all(&private);
    }
}

/// Start a node inside this test process.
pub async fn start_in_process(dir: &Path, max_restarts: Option<u32>) -> RunningNode {
    start_configured(&config(dir, max_restarts)).await
}

/// Start a node with `config` (from [`config`], then adjusted) inside this
/// test process.
pub async fn start_configured(config: &NodeConfig) -> RunningNode {
    hypha_supervisors::install_quiet_panic_hook();
    node::start(config, &secrets()).await.unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// Poll `cond` until it holds, for at most `limit` of real time.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("not reached within {limit:?}: {what}");
}

/// A node running as a real `hypha` process.
pub struct NodeProcess {
    pub child: Child,
    pub url: String,
    pub stderr: mpsc::Receiver<String>,
}

impl NodeProcess {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal by name (`TERM`, `KILL`) with the system `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything written to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn node_command(dir: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hypha"));
    if !extra.contains(&"--tls-dir") && !extra.contains(&"--plaintext-links") {
        cmd.env("HYPHA_TLS_DIR", test_tls_dir(dir));
    }
    cmd.arg("node")
        .arg("--data-dir")
        .arg(dir)
        .args(["--http-listen", "127.0.0.1:0"])
        .args(["--cluster-listen", "127.0.0.1:0"])
        .args(["--gossip-listen", "127.0.0.1:0"])
        .args(["--bulk-listen", "127.0.0.1:0"])
        .args(extra)
        .env("HYPHA_COOKIE", COOKIE)
        .env("HYPHA_ADMIN_TOKEN", ADMIN_TOKEN)
        .env("HYPHA_READ_TOKEN", READ_TOKEN)
        .env_remove("HYPHA_CONFIG")
        .env_remove("HYPHA_PLAINTEXT_LINKS")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Spawn a node process and wait (≤ 30 s) until it prints its admin URL.
pub fn spawn_node(dir: &Path, extra: &[&str]) -> NodeProcess {
    spawn_command(node_command(dir, extra))
}

/// Spawn a prepared node command and wait (≤ 30 s) for its admin URL.
pub fn spawn_command(mut cmd: Command) -> NodeProcess {
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (url_tx, url_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("hypha: admin API at ") {
                let _ = url_tx.send(url.to_owned());
            }
        }
    });
    let (err_tx, err_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let url = url_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("node printed its admin URL");
    NodeProcess {
        child,
        url,
        stderr: err_rx,
    }
}

/// A client for one node's admin API.
pub struct Api {
    pub http: reqwest::Client,
    pub base: String,
}

impl Api {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            http: client(),
            base: base.into(),
        }
    }

    /// For file transfers: large bodies in a debug build take longer
    /// than the default client timeout.
    pub fn for_files(base: impl Into<String>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(120))
                .build()
                .unwrap(),
            base: base.into(),
        }
    }

    pub fn of(node: &RunningNode) -> Self {
        Self::new(format!("http://{}", node.http_addr))
    }

    /// Send `method path` with an optional bearer token and body.
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        req.body(body).send().await.unwrap()
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.send(reqwest::Method::GET, path, token, Vec::new())
            .await
    }

    pub async fn post(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.send(reqwest::Method::POST, path, token, Vec::new())
            .await
    }

    pub async fn put(&self, path: &str, token: Option<&str>, body: &[u8]) -> reqwest::Response {
        self.send(reqwest::Method::PUT, path, token, body.to_vec())
            .await
    }

    pub async fn delete(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        self.send(reqwest::Method::DELETE, path, token, Vec::new())
            .await
    }

    pub async fn json(&self, path: &str, token: Option<&str>) -> serde_json::Value {
        self.get(path, token).await.json().await.unwrap()
    }

    pub async fn text(&self, path: &str) -> String {
        self.get(path, None).await.text().await.unwrap()
    }
}

/// Run one async block to completion from a synchronous test.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// GET `path` on a node's admin API with the admin token, as JSON.
pub fn get_json(url: &str, path: &str) -> Option<serde_json::Value> {
    block_on(async {
        let res = Api::new(url)
            .send(reqwest::Method::GET, path, Some(ADMIN_TOKEN), Vec::new())
            .await;
        if !res.status().is_success() {
            return None;
        }
        res.json::<serde_json::Value>().await.ok()
    })
}

/// Sum of the Prometheus samples whose line starts with `name` (a metric
/// name, optionally with a label selector), on the node at `url`.
pub fn metric(url: &str, name: &str) -> f64 {
    metric_of(&reqwest::Client::new(), url, name)
}

/// [`metric`] through `client` (one that trusts an HTTPS node's CA, say).
pub fn metric_of(client: &reqwest::Client, url: &str, name: &str) -> f64 {
    let text = block_on(async {
        client
            .get(format!("{url}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0
}

/// Poll (≤ 30 s) until the node at `url` places files on at least
/// `owners` live members.
pub fn wait_for_owners(url: &str, owners: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while metric(url, "hypha_dht_owners") < owners as f64 {
        assert!(
            Instant::now() < deadline,
            "placement never reached {owners} owners"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Flip one byte in each chunk a stopped node stores for `partition` whose
/// bytes `pick` chooses; how many were flipped.
pub fn corrupt_chunks(data_dir: &Path, partition: u16, pick: impl Fn(&[u8]) -> bool) -> usize {
    use hypha_store::{KvEngine, SledEngine, Tree, WriteBatch};
    let engine = SledEngine::open(&data_dir.join("db")).unwrap();
    let chunks = engine
        .scan_prefix(Tree::DhtChunks, &partition.to_be_bytes(), usize::MAX)
        .unwrap();
    let mut batch = WriteBatch::new();
    let mut flipped = 0;
    for (key, mut value) in chunks {
        if pick(&value) {
            value[0] ^= 0xff;
            batch = batch.put(Tree::DhtChunks, key, value);
            flipped += 1;
        }
    }
    engine.apply(&batch).unwrap();
    engine.flush().unwrap();
    flipped
}

/// Deterministic incompressible test data (xorshift64).
pub fn pseudo_random(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Poll `cond` (every 50 ms) until it holds, for at most `limit`; how
/// long it took.
pub fn wait_until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if cond() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not within {limit:?}: {what}");
}
