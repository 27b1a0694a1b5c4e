//! Applies a schedule's faults to the running nodes at their times and
//! records each in the history, with why one could not be applied.
//! Process faults use signals; actor faults the admin chaos endpoint;
//! partitions and packet loss nftables rules in the run's own network
//! namespace ([`crate::net`]); a full disk a filler file in a node's tmpfs
//! data dir; clock skew a node's libfaketime offset ([`crate::clock`]).

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};

use crate::cluster::{Nodes, ADMIN_TOKEN};
use crate::history::{FaultEvent, History};
use crate::net::{self, Partitions};
use crate::scenario::{ActorKillMode, Fault, Step};

/// The filler file a full disk is made of.
pub const FILLER: &str = "chaos-filler.bin";

/// What the nemesis acts on.
pub struct Nemesis {
    /// The node processes.
    pub nodes: Arc<Nodes>,
    /// The history faults go into.
    pub history: Arc<History>,
    /// Partition rules, when the run has its own network namespace.
    pub partitions: Option<Partitions>,
}

impl Nemesis {
    /// Apply `steps` at their times, `window_start_ms` being when the
    /// fault window opened on the history's clock.
    pub async fn run(&self, steps: &[Step], window_start_ms: u64) {
        for step in steps {
            let due = window_start_ms + step.at_ms;
            let now = self.history.now_ms();
            if due > now {
                tokio::time::sleep(Duration::from_millis(due - now)).await;
            }
            let (result, outcome) = match self.apply_with_outcome(&step.fault).await {
                Ok(outcome) => ("ok".to_owned(), outcome),
                Err(e) => (format!("{e:#}"), None),
            };
            self.history.fault(FaultEvent {
                at_ms: self.history.now_ms(),
                fault: step.fault.clone(),
                result,
                outcome,
            });
        }
    }

    /// Apply one fault now; faults whose effect varies say what it was.
    pub async fn apply_with_outcome(&self, fault: &Fault) -> anyhow::Result<Option<String>> {
        match fault {
            Fault::BitRot { node, flips, seed } => {
                crate::bitrot::rot(&self.nodes, *node, *flips, *seed)
                    .await
                    .map(|rotted| Some(rotted.to_string()))
            }
            Fault::RollingRestart => self.rolling_restart().await.map(Some),
            other => self.apply(other).await.map(|()| None),
        }
    }

    /// `hypha cluster restart --rolling` through node 0, to its end; what
    /// it printed last (the `done` event), or why it stopped.
    async fn rolling_restart(&self) -> anyhow::Result<String> {
        let out = tokio::process::Command::new(self.nodes.bin())
            .args([
                "cluster",
                "restart",
                "--rolling",
                "--json",
                "--step-timeout-s",
                "120",
            ])
            .args(["--url", &self.nodes.url(0), "--token", ADMIN_TOKEN])
            .output()
            .await
            .context("running hypha cluster restart")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_default().to_owned();
        if !out.status.success() {
            bail!(
                "rolling restart failed: {last} {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(last)
    }

    /// Apply one fault now.
    pub async fn apply(&self, fault: &Fault) -> anyhow::Result<()> {
        match fault {
            Fault::Kill { node } => self.nodes.kill(*node),
            Fault::Start { node } => self.nodes.start(*node).await,
            Fault::Freeze { node } => self.nodes.freeze(*node),
            Fault::Thaw { node } => self.nodes.thaw(*node),
            Fault::Restart { node } => self.nodes.restart(*node).await,
            Fault::ActorKill { node, pick, mode } => self.actor_kill(*node, *pick, *mode).await,
            Fault::Isolate { node } => self.partitions()?.isolate(*node),
            Fault::Lossy { node, percent } => self.partitions()?.lossy(*node, *percent),
            Fault::Split { sides } => self.partitions()?.cut(&net::split_cuts(sides)),
            Fault::Bridge { left, right, .. } => self
                .partitions()?
                .cut(&net::split_cuts(&[left.clone(), right.clone()])),
            Fault::Ring { order } => self.partitions()?.cut(&net::ring_cuts(order)),
            Fault::OneWay { from, to } => self.partitions()?.cut(&net::one_way_cuts(from, to)),
            Fault::Heal => self.partitions()?.heal(),
            Fault::FillDisk { node } => fill(&self.nodes.data_dir(*node).join(FILLER)),
            Fault::FreeDisk { node } => {
                std::fs::remove_file(self.nodes.data_dir(*node).join(FILLER))
                    .context("removing the filler")
            }
            Fault::Skew { node, offset_s } => self.skew(*node, *offset_s).await,
            Fault::Unskew { node } => self.skew(*node, 0).await,
            Fault::BitRot { node, flips, seed } => {
                crate::bitrot::rot(&self.nodes, *node, *flips, *seed)
                    .await
                    .map(|_| ())
            }
            Fault::RollingRestart => self.rolling_restart().await.map(|_| ()),
        }
    }

    fn partitions(&self) -> anyhow::Result<&Partitions> {
        self.partitions
            .as_ref()
            .ok_or_else(|| anyhow!("partitions need the run's own network namespace"))
    }

    fn clocks(&self) -> anyhow::Result<&crate::clock::Clocks> {
        self.nodes
            .clocks()
            .ok_or_else(|| anyhow!("clock skew needs the nodes started on libfaketime"))
    }

    /// Move the node's wall clock and wait (≤ 3 s) until the node shows
    /// it, so an applied skew is one the node lives by.
    async fn skew(&self, node: usize, offset_s: i64) -> anyhow::Result<()> {
        self.clocks()?.skew(node, offset_s)?;
        let http = crate::workload::http()?;
        let url = format!("{}/v1/node", self.nodes.url(node));
        let deadline = std::time::Instant::now() + Duration::from_secs(3);
        let mut seen = None;
        while std::time::Instant::now() < deadline {
            if let Some(off) = node_clock_offset_s(&http, &url).await {
                // The node rereads its offset once a second.
                if (off - offset_s).abs() <= 1 {
                    return Ok(());
                }
                seen = Some(off);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("n{node} clock still {seen:?} s off after 3 s, not {offset_s} s")
    }

    /// Fail the `pick`-th actor (path order) of the node's live tree.
    async fn actor_kill(&self, node: usize, pick: u64, mode: ActorKillMode) -> anyhow::Result<()> {
        let http = crate::workload::http()?;
        let url = self.nodes.url(node);
        let tree: serde_json::Value = http
            .get(format!("{url}/v1/actors"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let mut paths = Vec::new();
        actor_paths(&tree, &mut paths);
        paths.sort();
        if paths.is_empty() {
            bail!("n{node} shows no actors");
        }
        let path = &paths[usize::try_from(pick % paths.len() as u64).unwrap_or(0)];
        let res = http
            .post(format!("{url}/v1/chaos/actors/{path}/kill"))
            .query(&[("mode", mode.as_str())])
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await;
        match res {
            Ok(r) if r.status().as_u16() == 202 => Ok(()),
            // Not running (mid-restart) or no crash message: nothing done.
            Ok(r) => bail!("{path}: {}", r.status()),
            // Faulting the admin server drops this very connection.
            Err(_) if path.starts_with("admin") => Ok(()),
            Err(e) => bail!("{path}: {e}"),
        }
    }
}

/// How far the node's wall clock is from ours, whole seconds.
async fn node_clock_offset_s(http: &reqwest::Client, url: &str) -> Option<i64> {
    let doc: serde_json::Value = http
        .get(url)
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let theirs_ms = i64::try_from(doc["clock_unix_ms"].as_u64()?).ok()?;
    let ours_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_millis()).ok())?;
    Some(((theirs_ms - ours_ms) as f64 / 1000.0).round() as i64)
}

/// Child paths below the root (`node/` stripped), depth first.
fn actor_paths(tree: &serde_json::Value, out: &mut Vec<String>) {
    let Some(children) = tree["children"].as_array() else {
        return;
    };
    for child in children {
        if let Some(path) = child["path"].as_str() {
            out.push(path.strip_prefix("node/").unwrap_or(path).to_owned());
        }
        actor_paths(&child["supervisor"], out);
    }
}

/// Write zeros to `path` until the file system is full.
fn fill(path: &std::path::Path) -> anyhow::Result<()> {
    let mut file = std::fs::File::create(path).context("creating the filler")?;
    let block = vec![0u8; 1 << 20];
    for size in [1 << 20, 4096, 1] {
        while file.write_all(&block[..size]).is_ok() {}
    }
    // The last short writes may sit in the page cache: what does not
    // fit shows here, and is what we want.
    let _ = file.sync_all();
    Ok(())
}
