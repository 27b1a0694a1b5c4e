//! `hypha cluster up`: start N real node processes on loopback with
//! distinct ports and data directories, wait until every node sees every
//! other Up, print the admin URLs, and stop them all on Ctrl-C or SIGTERM.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::members;
use crate::config::LinkSecurity;
use crate::launch::{LinkFlags, Listen, NodeLaunch, Ports};
use crate::secrets;
use hypha_cluster::peers::tls::CA_FILE;

/// How long `cluster up` waits for the cluster to form.
const FORM_TIMEOUT: Duration = Duration::from_secs(60);
/// How long stopping nodes may take before they are killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// What to start.
#[derive(Debug, Clone)]
pub struct UpPlan {
    /// Number of nodes.
    pub nodes: u16,
    /// Parent of the nodes' data directories.
    pub dir: PathBuf,
    /// Node i listens on base+10i (HTTP), +1 (links), +2 (gossip).
    pub base_port: u16,
    /// Cluster id.
    pub cluster_id: String,
    /// How node links are protected.
    pub links: LinkSecurity,
    /// Write a Prometheus configuration scraping every node here.
    pub prometheus: Option<PathBuf>,
    /// Plain HTTP or HTTPS on the admin API.
    pub admin: AdminScheme,
}

/// How the nodes serve their admin API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminScheme {
    /// Plain HTTP (the default: loopback only).
    Http,
    /// HTTPS with certificates of the cluster CA (DIR/tls-ca), made for
    /// each node in DIR/node-<i>/admin-tls.
    Https,
}

impl AdminScheme {
    fn url(self, addr: &str) -> String {
        match self {
            AdminScheme::Http => format!("http://{addr}"),
            AdminScheme::Https => format!("https://{addr}"),
        }
    }
}

/// The CA certificate clients trust for the nodes' HTTPS.
fn ca_file(plan: &UpPlan) -> Option<PathBuf> {
    (plan.admin == AdminScheme::Https).then(|| plan.dir.join("tls-ca").join(CA_FILE))
}

/// The CA is made when links or the admin API need it.
fn needs_ca(plan: &UpPlan) -> bool {
    plan.links == LinkSecurity::MutualTls || plan.admin == AdminScheme::Https
}

struct NodeChild {
    name: String,
    url: String,
    /// Its S3 endpoint.
    s3: String,
    child: Child,
}

/// A secret from the environment, else from `dir/file`, else new (and saved
/// there, mode 0600, so that later commands and restarts agree).
fn shared_secret(env: &str, dir: &Path, file: &str) -> anyhow::Result<String> {
    if let Ok(value) = std::env::var(env) {
        return Ok(value);
    }
    let path = dir.join(file);
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(text.trim().to_owned());
    }
    let secret = secrets::generate().expose().to_owned();
    std::fs::write(&path, &secret).with_context(|| format!("writing {}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(secret)
}

/// The secrets (and the configuration file, if any) every node of a
/// local cluster shares.
struct Shared {
    cookie: String,
    admin_token: String,
    token_key_file: PathBuf,
    config: Option<PathBuf>,
}

/// R, W and the read quorum of a cluster too small for the defaults
/// (R = 3, W = 2), with why: with fewer than three nodes there are not
/// three replicas to place, and writes would be refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizing {
    /// Replicas (R).
    pub replicas: usize,
    /// Write quorum (W).
    pub write_quorum: usize,
    /// Read quorum.
    pub read_quorum: usize,
    /// What the operator should know about it.
    pub why: &'static str,
}

/// The sizing for `nodes`, or None when the defaults work (3 or more).
pub fn sizing(nodes: u16) -> Option<Sizing> {
    match nodes {
        1 => Some(Sizing {
            replicas: 1,
            write_quorum: 1,
            read_quorum: 1,
            why: "one node keeps one copy of each file",
        }),
        // Two copies, both written before an acknowledgement: a lone
        // survivor still serves every acknowledged file. It cannot write:
        // one of two is not a majority (the fence, docs/dht.md).
        2 => Some(Sizing {
            replicas: 2,
            write_quorum: 2,
            read_quorum: 1,
            why: "every file on both nodes; with one node stopped, reads go on and writes wait for it",
        }),
        _ => None,
    }
}

/// Write the sizing as a node configuration file in `dir`.
fn write_sizing(dir: &Path, sizing: Sizing) -> anyhow::Result<PathBuf> {
    let path = dir.join("sizing.toml");
    let text = format!(
        "# Written by `hypha cluster up`: {}.\n[dht]\nreplicas = {}\nwrite_quorum = {}\nread_quorum = {}\n",
        sizing.why, sizing.replicas, sizing.write_quorum, sizing.read_quorum
    );
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

fn spawn_node(plan: &UpPlan, i: u16, shared: &Shared) -> anyhow::Result<NodeChild> {
    let name = format!("node-{i}");
    let data = plan.dir.join(&name);
    std::fs::create_dir_all(&data)?;
    let log = std::fs::File::create(plan.dir.join(format!("{name}.log")))?;
    let tls_dir = data.join("tls");
    let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let listen = Listen::on(loopback, Ports::numbered(plan.base_port, i)?);
    let seed = Ports::numbered(plan.base_port, 0)?.gossip();
    let mut launch = NodeLaunch::new(&data, listen, &shared.cookie, &shared.admin_token);
    launch.name = Some(name.clone());
    launch.config = shared.config.clone();
    // Node 0 is every node's seed. Alone, it has none: a seeded node
    // waits for a peer before it serves files.
    if plan.nodes > 1 {
        launch.seeds = vec![format!("{loopback}:{seed}")];
    }
    launch.links = match plan.links {
        LinkSecurity::MutualTls => {
            super::cert::ensure_node(&plan.dir.join("tls-ca"), &name, &tls_dir, &data)?;
            LinkFlags::TlsDir(tls_dir)
        }
        LinkSecurity::Plaintext => LinkFlags::Plaintext,
    };
    launch.args = vec!["--cluster-id".into(), plan.cluster_id.clone().into()];
    launch.args.push("--token-key-file".into());
    launch.args.push(shared.token_key_file.clone().into());
    if plan.admin == AdminScheme::Https {
        let admin_dir = data.join("admin-tls");
        if !admin_dir.join(crate::admin::tls::CERT_FILE).exists() {
            super::cert::admin(&plan.dir.join("tls-ca"), &[], &admin_dir)?;
        }
        launch.args.push("--http-tls-dir".into());
        launch.args.push(admin_dir.into());
    }
    let child = Command::from(launch.command(&std::env::current_exe()?))
        .env_remove("HYPHA_HTTP_TLS_DIR")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(NodeChild {
        name,
        url: plan.admin.url(&launch.listen.http),
        s3: plan.admin.url(&launch.listen.s3),
        child,
    })
}

/// Run the plan until a signal.
pub async fn run(plan: UpPlan) -> anyhow::Result<()> {
    if plan.nodes == 0 {
        bail!("--nodes must be at least 1");
    }
    std::fs::create_dir_all(&plan.dir)
        .with_context(|| format!("creating {}", plan.dir.display()))?;
    let cookie = shared_secret("HYPHA_COOKIE", &plan.dir, "cookie")?;
    let ca_dir = plan.dir.join("tls-ca");
    if needs_ca(&plan) && !ca_dir.join(hypha_cluster::peers::tls::CA_KEY_FILE).exists() {
        super::cert::ca(&ca_dir)?;
    }
    let token = shared_secret("HYPHA_ADMIN_TOKEN", &plan.dir, "admin-token")?;
    let token_key_file = plan.dir.join("token-key");
    if !token_key_file.exists() {
        super::token::key(&token_key_file)?;
    }
    let config = match sizing(plan.nodes) {
        Some(sizing) => {
            println!(
                "hypha: {} node(s): R = {}, W = {}: {}",
                plan.nodes, sizing.replicas, sizing.write_quorum, sizing.why
            );
            Some(write_sizing(&plan.dir, sizing)?)
        }
        None => None,
    };
    let shared = Shared {
        cookie,
        admin_token: token.clone(),
        token_key_file,
        config,
    };
    let mut nodes = Vec::new();
    for i in 0..plan.nodes {
        nodes.push(spawn_node(&plan, i, &shared)?);
    }
    println!(
        "hypha: starting {} nodes in {} (logs: node-<i>.log)",
        plan.nodes,
        plan.dir.display()
    );
    let ca = ca_file(&plan);
    if let Err(err) = wait_formed(&mut nodes, plan.nodes, &token, ca.as_deref()).await {
        stop_all(&mut nodes).await;
        return Err(err);
    }
    for node in &nodes {
        println!(
            "hypha: {} admin API at {}, S3 at {}",
            node.name, node.url, node.s3
        );
    }
    if let Some(ca) = &ca {
        println!(
            "hypha: HTTPS admin API; clients trust the cluster CA: --ca {} (or HYPHA_CA)",
            ca.display()
        );
    }
    if let Some(path) = &plan.prometheus {
        let targets: Vec<&str> = nodes
            .iter()
            .map(|n| {
                n.url
                    .trim_start_matches("http://")
                    .trim_start_matches("https://")
            })
            .collect();
        write_prometheus_config(path, &targets, ca.as_deref())?;
        println!(
            "hypha: Prometheus config in {} (prometheus --config.file {})",
            path.display(),
            path.display()
        );
    }
    println!("hypha: cluster up: {} nodes, all Up", plan.nodes);
    println!(
        "hypha: admin token in {}",
        plan.dir.join("admin-token").display()
    );
    let ca_arg = match &ca {
        Some(ca) => format!(" --ca {}", ca.display()),
        None => String::new(),
    };
    println!(
        "hypha: try: HYPHA_ADMIN_TOKEN=$(cat {}) hypha members --url {}{ca_arg}",
        plan.dir.join("admin-token").display(),
        nodes[0].url
    );
    println!(
        "hypha: more tokens: hypha token create --key-file {} --cluster-id {} --role read --subject me",
        shared.token_key_file.display(),
        plan.cluster_id
    );
    println!(
        "hypha: S3 keys: HYPHA_ADMIN_TOKEN=$(cat {}) hypha s3 key create --role write --url {}{ca_arg}",
        plan.dir.join("admin-token").display(),
        nodes[0].url
    );
    println!("hypha: Ctrl-C stops every node");
    watch_until_signal(&mut nodes).await;
    stop_all(&mut nodes).await;
    Ok(())
}

/// The job name the Grafana dashboard in `docs/grafana` selects.
pub const PROMETHEUS_JOB: &str = "hypha";

/// A whole `prometheus.yml`: one job scraping every node's `/metrics`
/// (open by default, so no credentials are written), over HTTPS trusting
/// `ca` when given.
pub fn prometheus_config(targets: &[&str], ca: Option<&Path>) -> String {
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let https = match ca {
        Some(ca) => format!(
            "    scheme: https\n    tls_config:\n      ca_file: '{}'\n",
            ca.display()
        ),
        None => String::new(),
    };
    format!(
        "# Written by `hypha cluster up --prometheus`.\n\
         global:\n  scrape_interval: 2s\n  evaluation_interval: 2s\n\
         scrape_configs:\n  - job_name: '{PROMETHEUS_JOB}'\n    metrics_path: /metrics\n\
         {https}\x20   static_configs:\n      - targets: [{}]\n",
        list.join(", ")
    )
}

fn write_prometheus_config(path: &Path, targets: &[&str], ca: Option<&Path>) -> anyhow::Result<()> {
    std::fs::write(path, prometheus_config(targets, ca))
        .with_context(|| format!("writing {}", path.display()))
}

async fn wait_formed(
    nodes: &mut [NodeChild],
    expected: u16,
    token: &str,
    ca: Option<&Path>,
) -> anyhow::Result<()> {
    let client = super::client(ca)?;
    let deadline = Instant::now() + FORM_TIMEOUT;
    loop {
        for node in nodes.iter_mut() {
            if let Some(status) = node.child.try_wait()? {
                bail!("{} exited during start ({status}); see its log", node.name);
            }
        }
        let mut all = true;
        for node in nodes.iter() {
            let up = match members::fetch(&client, &node.url, Some(token), ca).await {
                Ok(doc) => members::count_in_state(&doc, "up"),
                Err(_) => 0,
            };
            all =
                all && up == usize::from(expected) && serves_files(&client, &node.url, token).await;
        }
        if all {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("the cluster did not form within {FORM_TIMEOUT:?}; see the node logs");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether the node at `url` answers file requests: a read of a name
/// nobody wrote is a 404 once its placement has settled, a 503
/// `node_joining` before. Members can show Up a moment before that, and
/// "cluster up" promises that a `hypha put` works at once.
async fn serves_files(client: &reqwest::Client, url: &str, token: &str) -> bool {
    let probe = format!("{}/v1/files/cluster-up-probe", url.trim_end_matches('/'));
    match client.get(probe).bearer_auth(token).send().await {
        Ok(response) => matches!(response.status().as_u16(), 200 | 404),
        Err(_) => false,
    }
}

async fn watch_until_signal(nodes: &mut [NodeChild]) {
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(err) => {
                eprintln!("hypha: cannot listen for SIGTERM: {err}");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
    let mut reported = vec![false; nodes.len()];
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => return,
            _ = terminate.recv() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
        for (node, seen) in nodes.iter_mut().zip(reported.iter_mut()) {
            if let Ok(Some(status)) = node.child.try_wait() {
                if !*seen {
                    eprintln!(
                        "hypha: {} exited ({status}); the others keep running",
                        node.name
                    );
                    *seen = true;
                }
            }
        }
    }
}

async fn stop_all(nodes: &mut [NodeChild]) {
    println!("hypha: stopping {} nodes", nodes.len());
    for node in nodes.iter() {
        if let Some(pid) = node.child.id().and_then(|p| i32::try_from(p).ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
        }
    }
    for node in nodes.iter_mut() {
        match tokio::time::timeout(STOP_TIMEOUT, node.child.wait()).await {
            Ok(Ok(status)) => println!("hypha: {} stopped ({status})", node.name),
            _ => {
                eprintln!(
                    "hypha: {} did not stop within {STOP_TIMEOUT:?}; killing it",
                    node.name
                );
                let _ = node.child.kill().await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_clusters_get_a_replication_that_can_write() {
        let one = sizing(1).unwrap();
        assert_eq!((one.replicas, one.write_quorum, one.read_quorum), (1, 1, 1));
        let two = sizing(2).unwrap();
        assert_eq!((two.replicas, two.write_quorum, two.read_quorum), (2, 2, 1));
        assert_eq!(sizing(3), None);
        assert_eq!(sizing(9), None);
        for nodes in 1..=2 {
            let s = sizing(nodes).unwrap();
            assert!(s.replicas <= usize::from(nodes));
            // Every acknowledged write is on the replicas a read asks.
            assert!(s.write_quorum + s.read_quorum > s.replicas);
        }
    }

    #[test]
    fn prometheus_scrapes_https_nodes_trusting_the_cluster_ca() {
        let plain = prometheus_config(&["127.0.0.1:7070"], None);
        assert!(!plain.contains("scheme"), "{plain}");
        assert!(
            plain.contains("      - targets: ['127.0.0.1:7070']\n"),
            "{plain}"
        );
        let https = prometheus_config(&["127.0.0.1:7070"], Some(Path::new("/c/ca.pem")));
        assert!(
            https.contains(
                "    metrics_path: /metrics\n    scheme: https\n    tls_config:\n      ca_file: '/c/ca.pem'\n    static_configs:\n"
            ),
            "{https}"
        );
    }
}
