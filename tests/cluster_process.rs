//! Cluster behaviour with real `hypha` processes on loopback: joining
//! through one seed, kill -9, SIGSTOP/SIGCONT, restart, graceful leave,
//! wrong cookie and foreign cluster id. Every wait polls a condition with a
//! deadline; the deadlines are generous bounds, not measurements (those
//! live in `cargo bench --bench membership`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{get_json as node_doc, metric, spawn_node, NodeProcess};
use serde_json::Value;

struct Cluster {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    seed: String,
    nodes: Vec<Option<NodeProcess>>,
}

impl Cluster {
    fn start(n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let first = spawn_node(&root.join("n0"), &["--node-name", "n0"]);
        let seed = node_doc(&first.url, "/v1/node").unwrap()["gossip"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut cluster = Cluster {
            _dir: dir,
            root,
            seed,
            nodes: vec![Some(first)],
        };
        for i in 1..n {
            cluster.nodes.push(Some(cluster.spawn(i, &[])));
        }
        cluster
    }

    fn spawn(&self, i: usize, extra: &[&str]) -> NodeProcess {
        let name = format!("n{i}");
        let mut args = vec!["--node-name", &name, "--seed", &self.seed];
        args.extend_from_slice(extra);
        spawn_node(&self.root.join(&name), &args)
    }

    fn node(&self, i: usize) -> &NodeProcess {
        self.nodes[i].as_ref().unwrap()
    }

    fn members(&self, i: usize) -> Vec<Value> {
        node_doc(&self.node(i).url, "/v1/cluster/members")
            .and_then(|d| d["members"].as_array().cloned())
            .unwrap_or_default()
    }

    fn id_of(&self, i: usize) -> String {
        node_doc(&self.node(i).url, "/v1/node").unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// What node `of` says about node id `about` (newest generation).
    fn view_of(&self, of: usize, about: &str) -> Option<Value> {
        self.members(of)
            .into_iter()
            .filter(|m| m["id"] == about)
            .max_by_key(|m| m["generation"].as_u64())
    }

    fn up_count(&self, of: usize) -> usize {
        self.members(of)
            .iter()
            .filter(|m| m["state"] == "up")
            .count()
    }

    fn live(&self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|i| self.nodes[*i].is_some())
            .collect()
    }
}

fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if cond() {
            return started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not within {limit:?}: {what}");
}

#[test]
fn three_nodes_join_through_one_seed_and_a_killed_node_goes_down() {
    let mut c = Cluster::start(3);
    let took = eventually("all 3 see 3 Up", Duration::from_secs(5), || {
        (0..3).all(|i| c.up_count(i) == 3)
    });
    eprintln!("formed in {took:?}");
    let victim = c.id_of(2);
    let mut dead = c.nodes[2].take().unwrap();
    dead.signal("KILL");
    dead.wait_exit(Duration::from_secs(5));
    let took = eventually(
        "0 and 1 mark n2 Down, link closed",
        Duration::from_secs(10),
        || {
            (0..2).all(|i| {
                c.view_of(i, &victim)
                    .is_some_and(|m| m["state"] == "down" && m["linked"] == false)
            })
        },
    );
    eprintln!("kill -9 detected in {took:?}");
    assert_eq!(c.up_count(0), 2);
}

#[test]
fn a_frozen_node_goes_down_then_refutes_when_it_resumes() {
    let c = Cluster::start(3);
    eventually("all Up", Duration::from_secs(10), || {
        (0..3).all(|i| c.up_count(i) == 3)
    });
    let frozen = c.id_of(2);
    c.node(2).signal("STOP");
    let stopped = Instant::now();
    let took = eventually("n2 Down with link closed", Duration::from_secs(9), || {
        (0..2).all(|i| {
            c.view_of(i, &frozen)
                .is_some_and(|m| m["state"] == "down" && m["linked"] == false)
        })
    });
    eprintln!("SIGSTOP detected in {took:?}");
    // Keep it frozen for 10 s in all.
    while stopped.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
    }
    c.node(2).signal("CONT");
    eventually("n2 Up again by refutation", Duration::from_secs(15), || {
        (0..2).all(|i| {
            c.view_of(i, &frozen)
                .is_some_and(|m| m["state"] == "up" && m["incarnation"].as_u64().unwrap_or(0) >= 1)
        })
    });
    eventually("n2 sees everyone Up", Duration::from_secs(10), || {
        c.up_count(2) == 3
    });
}

#[test]
fn leave_is_recorded_as_left_and_a_restart_is_a_new_generation() {
    let mut c = Cluster::start(3);
    eventually("all Up", Duration::from_secs(10), || {
        (0..3).all(|i| c.up_count(i) == 3)
    });
    let id = c.id_of(1);
    let mut leaving = c.nodes[1].take().unwrap();
    leaving.signal("TERM");
    assert!(leaving.wait_exit(Duration::from_secs(20)).success());
    eventually("n1 Left, not Down", Duration::from_secs(5), || {
        [0, 2]
            .iter()
            .all(|i| c.view_of(*i, &id).is_some_and(|m| m["state"] == "left"))
    });
    // Never Down afterwards either.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert!([0, 2]
            .iter()
            .all(|i| c.view_of(*i, &id).is_none_or(|m| m["state"] != "down")));
        std::thread::sleep(Duration::from_millis(100));
    }
    c.nodes[1] = Some(c.spawn(1, &[]));
    eventually(
        "n1 Up as generation 2, generation 1 gone",
        Duration::from_secs(10),
        || {
            [0, 2].iter().all(|i| {
                let gens: Vec<Value> = c
                    .members(*i)
                    .into_iter()
                    .filter(|m| m["id"] == id.as_str())
                    .collect();
                gens.len() == 1 && gens[0]["generation"] == 2 && gens[0]["state"] == "up"
            })
        },
    );
    assert_eq!(c.live().len(), 3);
}

#[test]
fn a_wrong_cookie_is_never_admitted_and_another_cluster_is_ignored() {
    let mut c = Cluster::start(2);
    eventually("both Up", Duration::from_secs(10), || {
        (0..2).all(|i| c.up_count(i) == 2)
    });
    // Same cluster id, wrong cookie: gossips, but no link ever authenticates.
    let mut rogue_cmd = common::node_command(
        &c.root.join("rogue"),
        &["--node-name", "rogue", "--seed", &c.seed],
    );
    rogue_cmd.env("HYPHA_COOKIE", "a-completely-different-cookie-0123456789");
    let rogue = common::spawn_command(rogue_cmd);
    // Same cookie, other cluster id: its gossip is ignored.
    let foreign = c.spawn(3, &["--cluster-id", "elsewhere"]);
    c.nodes.push(Some(foreign));
    let rogue_id = node_doc(&rogue.url, "/v1/node").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let foreign_id = c.id_of(2);
    eventually(
        "the rogue is heard of and refused",
        Duration::from_secs(10),
        || {
            let refused = metric(&c.node(0).url, "hypha_cluster_handshakes_refused_total")
                + metric(&c.node(1).url, "hypha_cluster_handshakes_refused_total");
            c.view_of(0, &rogue_id).is_some() && refused >= 1.0
        },
    );
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        for i in 0..2 {
            let rogue_view = c.view_of(i, &rogue_id);
            assert!(
                rogue_view
                    .as_ref()
                    .is_none_or(|m| m["state"] != "up" && m["linked"] == false),
                "{rogue_view:?}"
            );
            assert!(
                c.view_of(i, &foreign_id).is_none(),
                "foreign cluster member admitted"
            );
            assert_eq!(c.up_count(i), 2);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let rogue_members = node_doc(&rogue.url, "/v1/cluster/members").unwrap();
    let rogue_up = rogue_members["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["state"] == "up")
        .count();
    assert_eq!(rogue_up, 1, "the rogue admitted nobody but itself");
}

fn hypha(args: &[&str]) {
    let status = std::process::Command::new(env!("CARGO_BIN_EXE_hypha"))
        .args(args)
        .status()
        .unwrap();
    assert!(status.success(), "hypha {args:?}");
}

#[test]
fn mutual_tls_links_admit_only_nodes_certified_by_the_cluster_ca() {
    let certs = tempfile::tempdir().unwrap();
    let path = |p: &str| certs.path().join(p).to_str().unwrap().to_owned();
    hypha(&["cert", "ca", "--dir", &path("ca")]);
    hypha(&["cert", "ca", "--dir", &path("other-ca")]);
    for (ca, node) in [("ca", "n0"), ("ca", "n1"), ("other-ca", "n2")] {
        hypha(&[
            "cert",
            "node",
            "--ca-dir",
            &path(ca),
            "--name",
            node,
            "--out",
            &path(node),
        ]);
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    let n0 = spawn_node(
        &root.join("n0"),
        &["--node-name", "n0", "--tls-dir", &path("n0")],
    );
    let seed = node_doc(&n0.url, "/v1/node").unwrap()["gossip"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut c = Cluster {
        _dir: dir,
        root,
        seed,
        nodes: vec![Some(n0)],
    };
    let n1 = c.spawn(1, &["--tls-dir", &path("n1")]);
    c.nodes.push(Some(n1));
    eventually("n0 and n1 Up over TLS", Duration::from_secs(10), || {
        (0..2).all(|i| c.up_count(i) == 2)
    });
    let stranger = c.spawn(2, &["--tls-dir", &path("n2")]);
    c.nodes.push(Some(stranger));
    let stranger_id = c.id_of(2);
    // The right cookie but no certificate at all: plaintext links.
    let plain = c.spawn(3, &[]);
    c.nodes.push(Some(plain));
    let plain_id = c.id_of(3);
    eventually(
        "the stranger is heard of and its TLS refused",
        Duration::from_secs(10),
        || {
            let refused: f64 = (0..3)
                .map(|i| {
                    metric(
                        &c.node(i).url,
                        "hypha_cluster_handshakes_refused_total{reason=\"tls\"}",
                    )
                })
                .sum();
            let heard = [&stranger_id, &plain_id]
                .iter()
                .all(|id| c.view_of(0, id).is_some());
            heard && refused >= 1.0
        },
    );
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        for i in 0..2 {
            for id in [&stranger_id, &plain_id] {
                let v = c.view_of(i, id);
                assert!(
                    v.as_ref()
                        .is_none_or(|m| m["state"] != "up" && m["linked"] == false),
                    "{v:?}"
                );
            }
            assert_eq!(c.up_count(i), 2);
        }
        assert_eq!(c.up_count(2), 1, "the stranger admitted nobody");
        assert_eq!(
            c.up_count(3),
            1,
            "the node without a certificate admitted nobody"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
