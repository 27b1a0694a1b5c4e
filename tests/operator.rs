//! What an operator runs next to Hypha, tested against the real thing: a
//! Prometheus server (Debian's package) scraping a cluster made by
//! `hypha cluster up --prometheus`, the Grafana dashboard's queries
//! against a live node's `/metrics`, and the embedding example joining a
//! `cluster up` cluster. Ports 27400–27599 are fixed (below Linux's
//! ephemeral range, so they cannot collide with the other tests' port 0).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::tools::{ensure, Reaped};
use serde_json::Value;

/// `hypha cluster up` as a child process; SIGTERM (a graceful stop of
/// every node) when dropped.
struct ClusterUp {
    child: Child,
    dir: tempfile::TempDir,
    /// What it printed up to "cluster up:".
    said: Vec<String>,
}

impl ClusterUp {
    fn start(nodes: u16, base_port: u16) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hypha"))
            .args(["cluster", "up", "--nodes", &nodes.to_string()])
            .arg("--dir")
            .arg(dir.path())
            .args(["--base-port", &base_port.to_string()])
            .arg("--prometheus")
            .arg(dir.path().join("prometheus.yml"))
            .env_remove("HYPHA_COOKIE")
            .env_remove("HYPHA_ADMIN_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(90);
        let mut cluster = Self {
            child,
            dir,
            said: Vec::new(),
        };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("cluster up:") => return cluster,
                Ok(line) => cluster.said.push(line),
                Err(_) => panic!("`hypha cluster up` did not report the cluster up"),
            }
        }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }
}

impl Drop for ClusterUp {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run a PromQL instant query; the result vector.
fn query(prometheus: &str, promql: &str) -> Vec<Value> {
    common::block_on(async {
        let response = common::client()
            .get(format!("{prometheus}/api/v1/query"))
            .query(&[("query", promql)])
            .send()
            .await;
        let Ok(response) = response else {
            return Vec::new();
        };
        let doc: Value = response.json().await.unwrap_or_default();
        doc["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    })
}

/// Poll `promql` (≤ 60 s) until `ok` holds of its result.
fn wait_query(prometheus: &str, promql: &str, ok: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = query(prometheus, promql);
        if ok(&result) {
            return result;
        }
        assert!(
            Instant::now() < deadline,
            "{promql}: not as expected within 60 s; last result {result:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn instances(result: &[Value]) -> BTreeSet<String> {
    result
        .iter()
        .filter_map(|r| r["metric"]["instance"].as_str().map(str::to_owned))
        .collect()
}

/// One `hypha_` metric of each subsystem the issue names.
const SUBSYSTEM_METRICS: &[(&str, &str)] = &[
    ("supervisor", "hypha_supervisor_restarts_total"),
    ("membership", "hypha_members"),
    ("DHT", "hypha_dht_owners"),
    ("anti-entropy", "hypha_ae_under_replicated_partitions"),
    ("queues", "hypha_jobs_queued"),
    ("HTTP", "hypha_http_requests_total"),
];

#[test]
fn prometheus_scrapes_every_node_and_every_subsystem() {
    let Some(prometheus) = ensure("prometheus", &["prometheus"]) else {
        return;
    };
    let cluster = ClusterUp::start(3, 27400);
    let web = "127.0.0.1:27490";
    let log = std::fs::File::create(cluster.path("prometheus.log")).unwrap();
    let _server = Reaped(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                cluster.path("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                cluster.path("prometheus-data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let api = format!("http://{web}");
    let up = wait_query(&api, r#"up{job="hypha"}"#, |r| {
        r.len() == 3 && r.iter().all(|s| s["value"][1] == "1")
    });
    println!("up{{job=\"hypha\"}} == 1 for {:?}", instances(&up));
    for (subsystem, metric) in SUBSYSTEM_METRICS {
        let promql = format!(r#"count by (instance) ({metric}{{job="hypha"}})"#);
        let result = wait_query(&api, &promql, |r| instances(r).len() == 3);
        let series: Vec<&str> = result
            .iter()
            .filter_map(|r| r["value"][1].as_str())
            .collect();
        println!("{subsystem}: {promql} -> series per node {series:?}");
    }
    let total = query(&api, r#"count({job="hypha", __name__=~"hypha_.+"})"#);
    println!(
        "hypha_ series in Prometheus: {}",
        total
            .first()
            .and_then(|r| r["value"][1].as_str())
            .unwrap_or("?")
    );
}

/// Every `hypha_…`/`process_…` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["hypha_", "process_"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            names.insert(tail[..end].to_owned());
            rest = &tail[end..];
        }
    }
    names
}

fn exprs(doc: &Value, out: &mut Vec<String>) {
    match doc {
        Value::Object(map) => {
            for (key, value) in map {
                match value {
                    Value::String(s) if key == "expr" || key == "query" => out.push(s.clone()),
                    _ => exprs(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| exprs(v, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_dashboard_queries_is_exported() {
    let dashboard: Value =
        serde_json::from_str(include_str!("../docs/grafana/hypha.json")).unwrap();
    let mut queries = Vec::new();
    exprs(&dashboard, &mut queries);
    let queried: BTreeSet<String> = queries.iter().flat_map(|q| metric_names(q)).collect();
    assert!(queried.len() > 20, "the dashboard queries {queried:?}");

    let dir = tempfile::tempdir().unwrap();
    let node = common::start_in_process(dir.path(), None).await;
    let url = format!("http://{}", node.http_addr);
    let api = common::Api::new(&url);
    // Series labelled by route appear once a request has completed.
    api.text("/health").await;
    let text = api.text("/metrics").await;
    let exported: BTreeSet<String> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(metric_names)
        .collect();
    let missing: Vec<&String> = queried.difference(&exported).collect();
    assert!(missing.is_empty(), "queried but not exported: {missing:?}");
    println!(
        "{} panels' queries use {} metrics, all exported by a fresh node",
        queries.len(),
        queried.len()
    );
    node.shutdown().await;
}

/// A built example, up to date: `cargo test` builds the examples, but a
/// lone `--test` run does not, and an example left from an older tree
/// runs older library code (cargo returns at once when it is fresh).
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().unwrap();
    let path = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    let status = Command::new(env!("CARGO"))
        .args(["build", "--example", name])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .unwrap();
    assert!(status.success(), "cargo build --example {name}");
    path
}

#[test]
fn the_embedding_example_joins_a_cluster_up_and_runs_its_job() {
    let cluster = ClusterUp::start(3, 27500);
    let out = Command::new(example("embed"))
        .arg("--cluster-dir")
        .arg(cluster.dir.path())
        .args(["--seed", "127.0.0.1:27502"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    print!("{stdout}");
    assert!(stdout.contains("joined; 4 members Up"), "{stdout}");
    assert!(
        stdout.contains("supervised under node/app: true"),
        "{stdout}"
    );
    assert!(
        stdout.contains("done: HELLO FROM AN EMBEDDED NODE (shout #1)"),
        "{stdout}"
    );
    check_left(cluster.path("admin-token").as_path());
}

/// The example left gracefully: the cluster's nodes see it as Left.
fn check_left(token_file: &Path) {
    let token = std::fs::read_to_string(token_file).unwrap();
    let doc: Value = common::block_on(async {
        common::client()
            .get("http://127.0.0.1:27500/v1/cluster/members")
            .bearer_auth(token.trim())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    let embedded = doc["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "embedded")
        .cloned();
    assert!(
        embedded.as_ref().is_some_and(|m| m["state"] != "up"),
        "{embedded:?}"
    );
}

/// `hypha` as a client of a `cluster up` node; what it printed, once it
/// succeeded.
fn cli(cluster: &ClusterUp, url: &str, args: &[&str]) -> String {
    let token = std::fs::read_to_string(cluster.path("admin-token")).unwrap();
    common::cli_stdout(&common::hypha_cli(url, Some(token.trim()), args))
}

/// `cluster up` with fewer nodes than the default R = 3 picks R and W that
/// can work, says so, and the cluster stores and serves files (it used to
/// refuse every write, "1 of 2 replicas").
#[test]
fn a_cluster_up_of_one_or_two_nodes_stores_files() {
    for (nodes, base, sizing) in [(1, 27580, "R = 1, W = 1"), (2, 27560, "R = 2, W = 2")] {
        let cluster = ClusterUp::start(nodes, base);
        let said = cluster.said.join("\n");
        assert!(said.contains(sizing), "{nodes} node(s): {said}");
        let src = cluster.path("small.txt");
        std::fs::write(&src, format!("kept by {nodes}\n")).unwrap();
        let first = format!("http://127.0.0.1:{base}");
        let put = cli(
            &cluster,
            &first,
            &["put", src.to_str().unwrap(), "/small.txt"],
        );
        assert!(put.contains(&format!("{nodes} acks")), "{put}");
        let last = format!("http://127.0.0.1:{}", base + 10 * (nodes - 1));
        assert_eq!(
            cli(&cluster, &last, &["get", "/small.txt"]),
            format!("kept by {nodes}\n")
        );
    }
}
