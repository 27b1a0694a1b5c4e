//! A cluster of real `hypha` node processes in one temporary directory,
//! for multi-process tests: start, kill, restart and add nodes, wait for
//! membership and placement with deadlines.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{get_json, metric, node_command, spawn_command, NodeProcess};

/// Nodes `n0`, `n1`, … sharing one configuration file.
pub struct Cluster {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
    pub nodes: Vec<Option<NodeProcess>>,
    pub ids: Vec<String>,
    /// Command-line arguments every node gets besides the usual ones.
    pub extra_args: Vec<String>,
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
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let config = root.join("hypha.toml");
        std::fs::write(&config, toml).unwrap();
        let mut cluster = Cluster {
            _dir: dir,
            root,
            config,
            nodes: Vec::new(),
            ids: Vec::new(),
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
        };
        for _ in 0..n {
            cluster.add();
        }
        cluster
    }

    /// Start one more node; its index.
    pub fn add(&mut self) -> usize {
        let i = self.nodes.len();
        self.nodes.push(None);
        let node = self.spawn(i);
        let id = get_json(&node.url, "/v1/node").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        self.ids.push(id);
        self.nodes[i] = Some(node);
        i
    }

    /// Start (or restart) node `i`, seeded by a live member other than
    /// itself: node 0 restarted gets a new gossip port, so the others can
    /// only find it if it reaches out to them.
    pub fn spawn(&self, i: usize) -> NodeProcess {
        let name = format!("n{i}");
        let config = self.config.to_str().unwrap().to_owned();
        let seed = self.alive().into_iter().find(|&j| j != i).map(|j| {
            get_json(&self.url(j), "/v1/node").unwrap()["gossip"]
                .as_str()
                .unwrap()
                .to_owned()
        });
        let mut args = vec!["--node-name", &name, "--config", &config];
        if let Some(seed) = &seed {
            args.extend_from_slice(&["--seed", seed]);
        }
        args.extend(self.extra_args.iter().map(String::as_str));
        spawn_command(node_command(&self.root.join(&name), &args))
    }

    /// Kill -9 node `i` and wait for it to exit.
    pub fn kill(&mut self, i: usize) {
        let mut node = self.nodes[i].take().unwrap();
        node.signal("KILL");
        node.wait_exit(Duration::from_secs(30));
    }

    pub fn url(&self, i: usize) -> String {
        self.nodes[i].as_ref().unwrap().url.clone()
    }

    pub fn alive(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect()
    }

    pub fn up_count(&self, of: usize) -> usize {
        get_json(&self.url(of), "/v1/cluster/members")
            .and_then(|d| d["members"].as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter(|m| m["state"] == "up")
            .count()
    }

    /// Wait until every live node sees `n` members Up and places files on
    /// all of them.
    pub fn wait_all_up(&self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        // Up in every view, and in every node's placement (the router
        // follows the view on its own tick).
        let ready = |i: &usize| {
            self.up_count(*i) == n && metric(&self.url(*i), "hypha_dht_owners") == n as f64
        };
        while !self.alive().iter().all(ready) {
            if Instant::now() >= deadline {
                let seen: Vec<(usize, f64)> = self
                    .alive()
                    .iter()
                    .map(|i| (self.up_count(*i), metric(&self.url(*i), "hypha_dht_owners")))
                    .collect();
                panic!("cluster did not reach {n} Up and placed: {seen:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn index_of(&self, id: &str) -> usize {
        self.ids.iter().position(|x| x == id).unwrap()
    }
}
