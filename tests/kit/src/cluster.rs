//! A cluster of real `hypha` node processes in one temporary directory,
//! for multi-process tests: start, kill, restart and add nodes, wait for
//! membership and placement with deadlines.

use std::path::PathBuf;
use std::time::Duration;

use crate::http::up_in;
use crate::poll::poll_blocking;
use crate::{get_json, metric, node_command, spawn_command, NodeProcess};

/// Nodes `n0`, `n1`, … in one temporary directory, each seeded by a
/// member started before it.
pub struct Cluster {
    _dir: tempfile::TempDir,
    /// The directory holding every node's data directory (`n<i>`).
    pub root: PathBuf,
    /// The configuration file every node reads, if any.
    pub config: Option<PathBuf>,
    /// Node `i`'s process, `None` while it is down.
    pub nodes: Vec<Option<NodeProcess>>,
    /// Node `i`'s id, for the nodes started by [`Cluster::add`].
    pub ids: Vec<String>,
    /// Command-line arguments every node gets besides the usual ones.
    pub extra_args: Vec<String>,
    /// The seed every node joins through, when pinned ([`Cluster::first`]);
    /// else a live member.
    pinned_seed: Option<String>,
}

impl Cluster {
    /// Start `n` nodes with configuration `toml`, each seeded by one
    /// started before it.
    pub fn start(n: usize, toml: &str) -> Self {
        Self::start_with_args(n, toml, &[])
    }

    /// As [`Cluster::start`], every node also given `extra_args`
    /// (e.g. `--plaintext-links`).
    pub fn start_with_args(n: usize, toml: &str, extra_args: &[&str]) -> Self {
        let mut cluster = Self::empty(tempfile::tempdir().unwrap());
        let config = cluster.root.join("hypha.toml");
        std::fs::write(&config, toml).unwrap();
        cluster.config = Some(config);
        cluster.extra_args = extra_args.iter().map(|a| (*a).to_owned()).collect();
        for _ in 0..n {
            cluster.add();
        }
        cluster
    }

    /// `n` nodes with no configuration file, each seeded by node 0.
    pub fn start_plain(n: usize) -> Self {
        let mut cluster = Self::first(&[]);
        for _ in 1..n {
            cluster.add();
        }
        cluster
    }

    /// Node n0 alone (with `extra` flags, no configuration file), the seed
    /// of every later node.
    pub fn first(extra: &[&str]) -> Self {
        Self::first_in(tempfile::tempdir().unwrap(), extra)
    }

    /// As [`Cluster::first`], node `i`'s data directory being `dir/n{i}`
    /// (certificates name their node, so a test issuing its own needs to
    /// know the data directories first).
    pub fn first_in(dir: tempfile::TempDir, extra: &[&str]) -> Self {
        let mut cluster = Self::empty(dir);
        let first = cluster.spawn_with(0, extra);
        cluster.pinned_seed = Some(node_field(&first.url, "gossip"));
        cluster.ids.push(node_field(&first.url, "id"));
        cluster.nodes.push(Some(first));
        cluster
    }

    fn empty(dir: tempfile::TempDir) -> Self {
        Cluster {
            root: dir.path().to_owned(),
            _dir: dir,
            config: None,
            nodes: Vec::new(),
            ids: Vec::new(),
            extra_args: Vec::new(),
            pinned_seed: None,
        }
    }

    /// Start one more node; its index.
    pub fn add(&mut self) -> usize {
        let i = self.nodes.len();
        self.nodes.push(None);
        let node = self.spawn(i);
        self.ids.push(node_field(&node.url, "id"));
        self.nodes[i] = Some(node);
        i
    }

    /// Start (or restart) node `i`, seeded by a live member other than
    /// itself (or the pinned seed): node 0 restarted gets a new gossip
    /// port, so the others can only find it if it reaches out to them.
    pub fn spawn(&self, i: usize) -> NodeProcess {
        self.spawn_with(i, &[])
    }

    /// As [`Cluster::spawn`], node `i` also given `extra` flags.
    pub fn spawn_with(&self, i: usize, extra: &[&str]) -> NodeProcess {
        spawn_command(self.command(i, extra))
    }

    /// The command [`Cluster::spawn_with`] runs, for a test that expects
    /// the start to fail ([`crate::spawn_or_exit`]).
    pub fn command(&self, i: usize, extra: &[&str]) -> std::process::Command {
        let name = format!("n{i}");
        let config = self.config.as_ref().map(|c| c.to_str().unwrap().to_owned());
        let seed = self.pinned_seed.clone().or_else(|| {
            let member = self.alive().into_iter().find(|&j| j != i)?;
            Some(node_field(&self.url(member), "gossip"))
        });
        let mut args = vec!["--node-name", &name];
        if let Some(config) = &config {
            args.extend_from_slice(&["--config", config]);
        }
        if let Some(seed) = &seed {
            args.extend_from_slice(&["--seed", seed]);
        }
        args.extend(self.extra_args.iter().map(String::as_str));
        args.extend_from_slice(extra);
        node_command(&self.root.join(&name), &args)
    }

    /// The gossip address a node started now would join through.
    pub fn seed(&self) -> String {
        self.pinned_seed
            .clone()
            .unwrap_or_else(|| node_field(&self.url(self.alive()[0]), "gossip"))
    }

    /// Node `i`'s id, asked of it.
    pub fn id_of(&self, i: usize) -> String {
        node_field(&self.url(i), "id")
    }

    /// Kill -9 node `i` and wait for it to exit.
    pub fn kill(&mut self, i: usize) {
        let mut node = self.nodes[i].take().unwrap();
        node.signal("KILL");
        node.wait_exit(Duration::from_secs(30));
    }

    /// Node `i`'s admin URL; panics if it is down.
    pub fn url(&self, i: usize) -> String {
        self.nodes[i].as_ref().unwrap().url.clone()
    }

    /// The nodes whose process runs.
    pub fn alive(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect()
    }

    /// How many members node `of` sees Up.
    pub fn up_count(&self, of: usize) -> usize {
        get_json(&self.url(of), "/v1/cluster/members").map_or(0, |d| up_in(&d))
    }

    /// Wait until every live node sees `n` members Up and places files on
    /// all of them.
    pub fn wait_all_up(&self, n: usize, limit: Duration) {
        // Up in every view, and in every node's placement (the router
        // follows the view on its own tick).
        let ready = |i: &usize| {
            self.up_count(*i) == n && metric(&self.url(*i), "hypha_dht_owners") == n as f64
        };
        let every = Duration::from_millis(100);
        if poll_blocking(limit, every, || {
            self.alive().iter().all(ready).then_some(())
        })
        .is_err()
        {
            let seen: Vec<(usize, f64)> = self
                .alive()
                .iter()
                .map(|i| (self.up_count(*i), metric(&self.url(*i), "hypha_dht_owners")))
                .collect();
            panic!("cluster did not reach {n} Up and placed: {seen:?}");
        }
    }

    /// Wait until every live node has caught up on `partitions`
    /// partitions: its start-up anti-entropy round is over, and its answers
    /// count toward read quorums. Benchmarks wait for this, so that they
    /// measure a settled cluster, not that round (docs/benchmarks.md);
    /// the time it took.
    pub fn wait_caught_up(&self, partitions: usize, limit: Duration) -> Duration {
        let started = std::time::Instant::now();
        let caught_up = |i: &usize| metric(&self.url(*i), "hypha_ae_partitions_caught_up");
        let every = Duration::from_millis(100);
        let done = || {
            let all = self
                .alive()
                .iter()
                .all(|i| caught_up(i) >= partitions as f64);
            all.then_some(())
        };
        if poll_blocking(limit, every, done).is_err() {
            let seen: Vec<f64> = self.alive().iter().map(caught_up).collect();
            panic!("nodes did not catch up on {partitions} partitions: {seen:?}");
        }
        started.elapsed()
    }

    /// Wait until every live node sees `n` members Up (placement aside).
    pub fn wait_members_up(&self, n: usize, limit: Duration) {
        let every = Duration::from_millis(50);
        let up = || {
            self.alive()
                .iter()
                .all(|i| self.up_count(*i) == n)
                .then_some(())
        };
        if poll_blocking(limit, every, up).is_err() {
            panic!("cluster did not reach {n} Up within {limit:?}");
        }
    }

    /// The members document of node `of`, its `members` array.
    pub fn members(&self, of: usize) -> Vec<serde_json::Value> {
        get_json(&self.url(of), "/v1/cluster/members")
            .and_then(|d| d["members"].as_array().cloned())
            .unwrap_or_default()
    }

    /// What node `of` says about node id `about` (its newest generation).
    pub fn view_of(&self, of: usize, about: &str) -> Option<serde_json::Value> {
        self.members(of)
            .into_iter()
            .filter(|m| m["id"] == about)
            .max_by_key(|m| m["generation"].as_u64())
    }

    /// The process ids of the live nodes.
    pub fn pids(&self) -> Vec<u32> {
        self.nodes.iter().flatten().map(NodeProcess::pid).collect()
    }

    /// Node `i`'s process; panics if it is down.
    pub fn node(&self, i: usize) -> &NodeProcess {
        self.nodes[i].as_ref().unwrap()
    }

    /// Node `i`'s process, mutably; panics if it is down.
    pub fn node_mut(&mut self, i: usize) -> &mut NodeProcess {
        self.nodes[i].as_mut().unwrap()
    }

    /// The index of the node with id `id`.
    pub fn index_of(&self, id: &str) -> usize {
        self.ids.iter().position(|x| x == id).unwrap()
    }
}

/// A string field of the node document of the node at `url`.
fn node_field(url: &str, field: &str) -> String {
    get_json(url, "/v1/node").unwrap()[field]
        .as_str()
        .unwrap()
        .to_owned()
}
