//! The node processes of a run, as the chaos harness lays them out: each
//! on its own loopback address with the same ports, seeded by all the
//! others, under its own uid when partitions need one, on a skewable clock
//! when the scenario skews clocks, with its data dir, certificate and log
//! file under the run directory. Starting, signalling, killing,
//! restarting and watching for exits nobody asked for (a node that dies
//! on its own fails the run) is the test kit's [`Fleet`].

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use anyhow::Context;
use hypha::commands::cert;
use hypha::launch::{LinkFlags, Listen, NodeLaunch, Ports};
use hypha_testkit::fleet::{hand_over, Fleet, NodeSpec, Started, User};

use crate::clock::Clocks;

/// The cookie and admin token every node of a run shares.
pub const COOKIE: &str = "chaos-cookie-0123456789abcdef0123";
/// See [`COOKIE`].
pub const ADMIN_TOKEN: &str = "chaos-admin-token-0123456789abcdef";

/// The admin API's port on every node's own address; links, gossip and
/// bulk take the three after it.
const HTTP_PORT: u16 = 17070;

/// Node settings sized for a run of seconds, not hours: failure
/// detection, anti-entropy and leases all act within a few seconds.
const CONFIG: &str = "\
[dht]
down_grace_ms = 5000
rpc_timeout_ms = 3000

[anti_entropy]
period_ms = 10000
recheck_ms = 300
retry_ms = 1000
tick_ms = 100

[work]
slots = 4
lease_ms = 3000
heartbeat_ms = 500
tick_ms = 20
scan_ms = 500

[storage]
min_free_bytes = 1048576
";

/// Node `node`'s data dir.
pub fn data_dir(root: &Path, node: usize) -> PathBuf {
    root.join(format!("n{node}"))
}

/// Node `node`'s link certificates: outside its data dir, which a
/// scenario may fill or replace.
fn tls_dir(root: &Path, node: usize) -> PathBuf {
    root.join("tls").join(format!("n{node}"))
}

/// A cluster CA and a certificate per node, made as `hypha cluster up`
/// makes them: node links run mutual TLS, as in production.
fn make_certificates(root: &Path, n: usize, run_as: RunAs) -> anyhow::Result<()> {
    let ca = root.join("tls").join("ca");
    cert::ca(&ca)?;
    for node in 0..n {
        let out = tls_dir(root, node);
        // The certificate names the node's id, created in its data dir
        // as its first start would.
        let data_dir = data_dir(root, node);
        std::fs::create_dir_all(&data_dir).context("creating the node's data dir")?;
        cert::ensure_node(&ca, &format!("n{node}"), &out, &data_dir)?;
        if run_as == RunAs::NodeUids {
            // The key is 0600: the node's own uid must own it.
            let uid = crate::net::uid(node);
            hand_over(&out, uid)
                .with_context(|| format!("handing {} to the node's uid", out.display()))?;
        }
    }
    Ok(())
}

/// How a start on a possibly damaged store went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    /// The node serves.
    Serving,
    /// It exited with `hypha::node::EXIT_DAMAGED_STORE`.
    DamagedStore,
}

/// Which user node processes run as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunAs {
    /// The harness's own user.
    Harness,
    /// A uid per node ([`crate::net::uid`]), so partitions can tell
    /// their packets apart.
    NodeUids,
}

/// How a run lays its nodes out.
#[derive(Debug, Clone)]
pub struct Layout {
    /// How many nodes.
    pub nodes: usize,
    /// The third octet of their addresses, `127.77.<octet>.<i+1>`.
    pub octet: u8,
    /// Whom they run as.
    pub run_as: RunAs,
    /// Their skewable clocks, when the scenario skews clocks.
    pub clocks: Option<Clocks>,
}

/// The nodes of one run.
pub struct Nodes {
    fleet: Fleet,
    addrs: Vec<Ipv4Addr>,
    clocks: Option<Clocks>,
}

impl Nodes {
    /// Prepare the nodes of `layout` under `root`, running `bin`.
    pub fn new(bin: &Path, root: &Path, layout: Layout) -> anyhow::Result<Self> {
        let config = root.join("hypha.toml");
        std::fs::write(&config, CONFIG).context("writing the node config")?;
        make_certificates(root, layout.nodes, layout.run_as)?;
        let addrs: Vec<Ipv4Addr> = (0..layout.nodes)
            .map(|i| {
                Ipv4Addr::new(
                    127,
                    77,
                    layout.octet,
                    u8::try_from(i + 1).unwrap_or(u8::MAX),
                )
            })
            .collect();
        let specs = (0..layout.nodes)
            .map(|node| spec(bin, root, &config, &addrs, node, &layout))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            fleet: Fleet::new(specs)?,
            addrs,
            clocks: layout.clocks,
        })
    }

    /// The nodes' skewable clocks, if they run on them.
    pub fn clocks(&self) -> Option<&Clocks> {
        self.clocks.as_ref()
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.fleet.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.fleet.is_empty()
    }

    /// The node's admin URL.
    pub fn url(&self, node: usize) -> String {
        self.fleet.url(node).unwrap_or_default()
    }

    /// Every node's address.
    pub fn addrs(&self) -> Vec<Ipv4Addr> {
        self.addrs.clone()
    }

    /// The node's data dir.
    pub fn data_dir(&self, node: usize) -> PathBuf {
        self.fleet
            .spec(node)
            .map(|s| s.launch.data_dir.clone())
            .unwrap_or_default()
    }

    /// The node's log file (its stdout and stderr).
    pub fn log_path(&self, node: usize) -> PathBuf {
        self.fleet
            .spec(node)
            .map(|s| s.log.clone())
            .unwrap_or_default()
    }

    /// The `hypha` binary the nodes run.
    pub fn bin(&self) -> PathBuf {
        self.fleet
            .spec(0)
            .map(|s| s.bin.clone())
            .unwrap_or_default()
    }

    /// Start the node (no-op if it runs) and wait (≤ 30 s) until it serves.
    pub async fn start(&self, node: usize) -> anyhow::Result<()> {
        Ok(self.fleet.start(node).await?)
    }

    /// Start the node and wait (≤ 30 s) until it serves — or exits with
    /// the damaged-store status, which is an outcome here, not a death:
    /// the node is then left stopped. Any other exit is a failure.
    pub async fn start_or_damaged(&self, node: usize) -> anyhow::Result<StartOutcome> {
        let code = i32::from(hypha::node::EXIT_DAMAGED_STORE);
        Ok(match self.fleet.start_or_exit(node, code).await? {
            Started::Serving => StartOutcome::Serving,
            Started::Exited(_) => StartOutcome::DamagedStore,
        })
    }

    /// SIGKILL and reap.
    pub fn kill(&self, node: usize) -> anyhow::Result<()> {
        Ok(self.fleet.kill(node)?)
    }

    /// SIGSTOP.
    pub fn freeze(&self, node: usize) -> anyhow::Result<()> {
        Ok(self.fleet.freeze(node)?)
    }

    /// SIGCONT.
    pub fn thaw(&self, node: usize) -> anyhow::Result<()> {
        Ok(self.fleet.thaw(node)?)
    }

    /// SIGTERM, wait (≤ 30 s, then SIGKILL) for the exit, start again.
    pub async fn restart(&self, node: usize) -> anyhow::Result<()> {
        Ok(self.fleet.restart(node).await?)
    }

    /// Exits the harness did not cause.
    pub fn deaths(&self) -> Vec<String> {
        self.fleet.deaths()
    }

    /// Nodes whose process runs and is not frozen.
    pub fn running(&self) -> Vec<usize> {
        self.fleet.running()
    }

    /// Thaw every frozen node and start every stopped one.
    pub async fn heal_all(&self) -> anyhow::Result<()> {
        Ok(self.fleet.heal_all().await?)
    }

    /// SIGKILL every node (end of run).
    pub fn stop_all(&self) {
        self.fleet.stop_all();
    }
}

/// Node `node`'s spec: its own address, the others as seeds, its
/// certificate, and its uid and clock when the layout asks for them.
fn spec(
    bin: &Path,
    root: &Path,
    config: &Path,
    addrs: &[Ipv4Addr],
    node: usize,
    layout: &Layout,
) -> anyhow::Result<NodeSpec> {
    let ports = Ports { first: HTTP_PORT };
    let listen = Listen::on(IpAddr::V4(addrs[node]), ports);
    let mut plan = NodeLaunch::new(&data_dir(root, node), listen, COOKIE, ADMIN_TOKEN);
    plan.name = Some(format!("n{node}"));
    plan.config = Some(config.to_owned());
    plan.seeds = (0..addrs.len())
        .filter(|i| *i != node)
        .map(|i| format!("{}:{}", addrs[i], ports.gossip()))
        .collect();
    plan.links = LinkFlags::TlsDir(tls_dir(root, node));
    let mut spec = NodeSpec::new(bin, plan, &root.join(format!("n{node}.log")));
    if layout.run_as == RunAs::NodeUids {
        spec.user = User::Uid(crate::net::uid(node));
    }
    if let Some(clocks) = &layout.clocks {
        spec.env = clocks.env(node)?;
    }
    Ok(spec)
}
