//! The node processes of a run: each on its own loopback address with
//! the same ports, its own data dir and log file; started, signalled,
//! killed and restarted by the nemesis; watched for exits nobody asked
//! for (a node that dies on its own fails the run).

use std::fs::OpenOptions;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use hypha::commands::cert;
use hypha::launch::{LinkFlags, Listen, NodeLaunch, Ports};
use hypha_testkit::poll::poll;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

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
        let data_dir = root.join(format!("n{node}"));
        std::fs::create_dir_all(&data_dir).context("creating the node's data dir")?;
        cert::ensure_node(&ca, &format!("n{node}"), &out, &data_dir)?;
        if run_as == RunAs::NodeUids {
            // The key is 0600: the node's own uid must own it.
            let uid = crate::net::uid(node);
            for path in std::iter::once(out.clone()).chain(
                std::fs::read_dir(&out)?
                    .map(|e| e.map(|e| e.path()))
                    .collect::<Result<Vec<_>, _>>()?,
            ) {
                std::os::unix::fs::chown(&path, Some(uid), Some(uid))
                    .with_context(|| format!("handing {} to the node's uid", path.display()))?;
            }
        }
    }
    Ok(())
}

/// What the harness last did to a node, so an exit can be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Running,
    Frozen,
    Stopped,
}

struct Slot {
    child: Option<Child>,
    expect: Expect,
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

/// The nodes of one run.
pub struct Nodes {
    bin: PathBuf,
    run_as: RunAs,
    root: PathBuf,
    config: PathBuf,
    addrs: Vec<Ipv4Addr>,
    slots: Vec<Mutex<Slot>>,
    deaths: Mutex<Vec<String>>,
    clocks: Option<Clocks>,
}

impl Nodes {
    /// Prepare `n` nodes under `root` on `127.77.<octet>.1..=n`.
    pub fn new(
        bin: &Path,
        root: &Path,
        n: usize,
        octet: u8,
        run_as: RunAs,
    ) -> anyhow::Result<Self> {
        let config = root.join("hypha.toml");
        std::fs::write(&config, CONFIG).context("writing the node config")?;
        make_certificates(root, n, run_as)?;
        let addrs = (0..n)
            .map(|i| Ipv4Addr::new(127, 77, octet, u8::try_from(i + 1).unwrap_or(u8::MAX)))
            .collect();
        let slots = (0..n)
            .map(|_| {
                Mutex::new(Slot {
                    child: None,
                    expect: Expect::Stopped,
                })
            })
            .collect();
        Ok(Self {
            bin: bin.to_owned(),
            run_as,
            root: root.to_owned(),
            config,
            addrs,
            slots,
            deaths: Mutex::new(Vec::new()),
            clocks: None,
        })
    }

    /// Run every node on a skewable wall clock.
    pub fn with_clocks(mut self, clocks: Clocks) -> Self {
        self.clocks = Some(clocks);
        self
    }

    /// The nodes' skewable clocks, if they run on them.
    pub fn clocks(&self) -> Option<&Clocks> {
        self.clocks.as_ref()
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The node's admin URL.
    pub fn url(&self, node: usize) -> String {
        format!("http://{}:{HTTP_PORT}", self.addrs[node])
    }

    /// Every node's address.
    pub fn addrs(&self) -> Vec<Ipv4Addr> {
        self.addrs.clone()
    }

    /// The node's data dir.
    pub fn data_dir(&self, node: usize) -> PathBuf {
        self.root.join(format!("n{node}"))
    }

    /// The node's log file (its stdout and stderr).
    pub fn log_path(&self, node: usize) -> PathBuf {
        self.root.join(format!("n{node}.log"))
    }

    fn slot(&self, node: usize) -> anyhow::Result<std::sync::MutexGuard<'_, Slot>> {
        self.slots
            .get(node)
            .ok_or_else(|| anyhow!("no node {node}"))?
            .lock()
            .map_err(|_| anyhow!("node {node}: slot lock poisoned"))
    }

    fn command(&self, node: usize) -> anyhow::Result<Command> {
        let listen = Listen::on(IpAddr::V4(self.addrs[node]), Ports { first: HTTP_PORT });
        let mut plan = NodeLaunch::new(&self.data_dir(node), listen, COOKIE, ADMIN_TOKEN);
        plan.name = Some(format!("n{node}"));
        plan.config = Some(self.config.clone());
        plan.seeds = (0..self.len())
            .filter(|i| *i != node)
            .map(|i| format!("{}:{}", self.addrs[i], Ports { first: HTTP_PORT }.gossip()))
            .collect();
        plan.links = LinkFlags::TlsDir(tls_dir(&self.root, node));
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(node))
            .context("opening the node log")?;
        let mut cmd = plan.command(&self.bin);
        cmd.env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("log handle")?)
            .stderr(log);
        if self.run_as == RunAs::NodeUids {
            use std::os::unix::process::CommandExt;
            let uid = crate::net::uid(node);
            let data_dir = self.data_dir(node);
            // `node_id` is the file making its certificate created.
            for path in [data_dir.join("node_id"), data_dir] {
                if path.exists() {
                    std::os::unix::fs::chown(&path, Some(uid), Some(uid))
                        .context("handing the data dir to the node's uid")?;
                }
            }
            cmd.uid(uid).gid(uid);
        }
        if let Some(clocks) = &self.clocks {
            clocks.wrap(node, &mut cmd)?;
        }
        Ok(cmd)
    }

    /// Start the node (no-op if it runs) and wait (≤ 30 s) until it serves.
    pub async fn start(&self, node: usize) -> anyhow::Result<()> {
        {
            let mut slot = self.slot(node)?;
            if slot.child.is_some() {
                return Ok(());
            }
            std::fs::create_dir_all(self.data_dir(node))?;
            let child = self.command(node)?.spawn().context("spawning hypha")?;
            slot.child = Some(child);
            slot.expect = Expect::Running;
        }
        self.wait_serving(node, Duration::from_secs(30)).await
    }

    /// The `hypha` binary the nodes run.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Start the node and wait (≤ 30 s) until it serves — or exits with
    /// the damaged-store status, which is an outcome here, not a death:
    /// the node is then left stopped. Any other exit is a death.
    pub async fn start_or_damaged(&self, node: usize) -> anyhow::Result<StartOutcome> {
        {
            let mut slot = self.slot(node)?;
            if slot.child.is_some() {
                bail!("n{node} is running");
            }
            let child = self.command(node)?.spawn().context("spawning hypha")?;
            slot.child = Some(child);
            // Not Running until it serves: `reap` must not call the
            // damaged-store exit a death.
            slot.expect = Expect::Stopped;
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("{}/health", self.url(node));
        let (http, url) = (&http, &url);
        let started = move || async move {
            if let Ok(res) = http.get(url).send().await {
                if res.status().is_success() {
                    return Some(self.slot(node).map(|mut slot| {
                        slot.expect = Expect::Running;
                        StartOutcome::Serving
                    }));
                }
            }
            let mut slot = match self.slot(node) {
                Ok(slot) => slot,
                Err(err) => return Some(Err(err)),
            };
            let status = match slot.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => status,
                _ => return None,
            };
            slot.child = None;
            Some(match status.code() {
                Some(code) if code == i32::from(hypha::node::EXIT_DAMAGED_STORE) => {
                    Ok(StartOutcome::DamagedStore)
                }
                _ => Err(anyhow!(
                    "n{node} exited while starting: {status} (see n{node}.log)"
                )),
            })
        };
        match poll(Duration::from_secs(30), Duration::from_millis(50), started).await {
            Ok(outcome) => outcome,
            Err(_) => bail!("n{node} neither served nor exited within 30 s"),
        }
    }

    async fn wait_serving(&self, node: usize, limit: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let url = format!("{}/health", self.url(node));
        let (http, url) = (&http, &url);
        let serving = move || async move {
            if let Ok(res) = http.get(url).send().await {
                if res.status().is_success() {
                    return Some(Ok(()));
                }
            }
            self.reap();
            match self.slot(node) {
                Ok(slot) if slot.child.is_some() => None,
                Ok(_) => Some(Err(anyhow!(
                    "n{node} exited while starting (see n{node}.log)"
                ))),
                Err(err) => Some(Err(err)),
            }
        };
        match poll(limit, Duration::from_millis(50), serving).await {
            Ok(started) => started,
            Err(_) => bail!("n{node} did not serve within {limit:?}"),
        }
    }

    fn signal(&self, node: usize, sig: Signal) -> anyhow::Result<()> {
        let slot = self.slot(node)?;
        let child = slot
            .child
            .as_ref()
            .ok_or_else(|| anyhow!("n{node} is not running"))?;
        let pid = i32::try_from(child.id()).context("pid")?;
        kill(Pid::from_raw(pid), sig).with_context(|| format!("{sig} to n{node}"))
    }

    /// SIGKILL and reap.
    pub fn kill(&self, node: usize) -> anyhow::Result<()> {
        let mut slot = self.slot(node)?;
        slot.expect = Expect::Stopped;
        let mut child = slot
            .child
            .take()
            .ok_or_else(|| anyhow!("n{node} is not running"))?;
        child.kill().context("SIGKILL")?;
        child.wait().context("reaping")?;
        Ok(())
    }

    /// SIGSTOP.
    pub fn freeze(&self, node: usize) -> anyhow::Result<()> {
        self.signal(node, Signal::SIGSTOP)?;
        self.slot(node)?.expect = Expect::Frozen;
        Ok(())
    }

    /// SIGCONT.
    pub fn thaw(&self, node: usize) -> anyhow::Result<()> {
        self.slot(node)?.expect = Expect::Running;
        self.signal(node, Signal::SIGCONT)
    }

    /// SIGTERM, wait (≤ 30 s, then SIGKILL) for the exit, start again.
    pub async fn restart(&self, node: usize) -> anyhow::Result<()> {
        self.slot(node)?.expect = Expect::Stopped;
        self.signal(node, Signal::SIGTERM)?;
        let exited = move || async move { self.take_exited(node).transpose() };
        match poll(Duration::from_secs(30), Duration::from_millis(20), exited).await {
            Ok(taken) => taken?,
            Err(_) => {
                self.kill(node)?;
                bail!("n{node} ignored SIGTERM for 30 s");
            }
        }
        self.start(node).await
    }

    /// `Some` (the slot emptied) once the node's process has exited or
    /// if there was none; `None` while it runs.
    fn take_exited(&self, node: usize) -> anyhow::Result<Option<()>> {
        let mut slot = self.slot(node)?;
        match slot.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(_))) | None => {
                slot.child = None;
                Ok(Some(()))
            }
            _ => Ok(None),
        }
    }

    /// Collect exits; an exit the harness did not cause is a death.
    pub fn reap(&self) {
        for (i, slot) in self.slots.iter().enumerate() {
            let Ok(mut slot) = slot.lock() else { continue };
            if slot.expect == Expect::Stopped {
                continue;
            }
            let status = match slot.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => status,
                _ => continue,
            };
            slot.child = None;
            slot.expect = Expect::Stopped;
            if let Ok(mut deaths) = self.deaths.lock() {
                deaths.push(format!("n{i} exited on its own: {status}"));
            }
        }
    }

    /// Exits the harness did not cause.
    pub fn deaths(&self) -> Vec<String> {
        self.reap();
        self.deaths.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// Nodes whose process runs and is not frozen.
    pub fn running(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|i| {
                self.slot(*i)
                    .is_ok_and(|s| s.child.is_some() && s.expect == Expect::Running)
            })
            .collect()
    }

    /// Thaw every frozen node and start every stopped one.
    pub async fn heal_all(&self) -> anyhow::Result<()> {
        for node in 0..self.len() {
            let expect = self.slot(node)?.expect;
            match expect {
                Expect::Frozen => self.thaw(node)?,
                Expect::Stopped => self.start(node).await?,
                Expect::Running => {}
            }
        }
        Ok(())
    }

    /// SIGKILL every node (end of run).
    pub fn stop_all(&self) {
        for node in 0..self.len() {
            if let Ok(mut slot) = self.slot(node) {
                slot.expect = Expect::Stopped;
                if let Some(mut child) = slot.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        self.stop_all();
    }
}
