//! Cluster behaviour with real `hypha` processes on loopback: joining
//! through one seed, kill -9, SIGSTOP/SIGCONT, restart, graceful leave,
//! wrong cookie and foreign cluster id. Every wait polls a condition with a
//! deadline; the deadlines are generous bounds, not measurements (those
//! live in `cargo bench --bench membership`).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{get_json as node_doc, metric, wait_until as eventually};
use serde_json::Value;

#[test]
fn three_nodes_join_through_one_seed_and_a_killed_node_goes_down() {
    let mut c = Cluster::start_plain(3);
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
    let c = Cluster::start_plain(3);
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
    let mut c = Cluster::start_plain(3);
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
    c.nodes[1] = Some(c.spawn_with(1, &[]));
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
    assert_eq!(c.alive().len(), 3);
}

#[test]
fn a_wrong_cookie_or_another_cluster_is_never_heard_of() {
    let mut c = Cluster::start_plain(2);
    eventually("both Up", Duration::from_secs(10), || {
        (0..2).all(|i| c.up_count(i) == 2)
    });
    // Same cluster id, wrong cookie: its gossip is sealed with another key.
    let mut rogue_cmd = common::node_command(
        &c.root.join("rogue"),
        &["--node-name", "rogue", "--seed", &c.seed()],
    );
    rogue_cmd.env("HYPHA_COOKIE", "a-completely-different-cookie-0123456789");
    let rogue = common::spawn_command(rogue_cmd);
    // Same cookie, other cluster id: the key is derived from both.
    let foreign = c.spawn_with(3, &["--cluster-id", "elsewhere"]);
    c.nodes.push(Some(foreign));
    let rogue_id = node_doc(&rogue.url, "/v1/node").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let foreign_id = c.id_of(2);
    let unknown_key = r#"hypha_gossip_rejected_total{reason="unknown_key"}"#;
    // Both gossip to the seed every round; it answers neither.
    eventually(
        "the outsiders' gossip refused at the seed",
        Duration::from_secs(10),
        || metric(&c.node(0).url, unknown_key) >= 10.0,
    );
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        for i in 0..2 {
            let rogue_view = c.view_of(i, &rogue_id);
            assert!(
                rogue_view.is_none(),
                "the rogue was heard of: {rogue_view:?}"
            );
            assert!(
                c.view_of(i, &foreign_id).is_none(),
                "foreign cluster member admitted"
            );
            // At most the two legitimate nodes: a loaded machine may make
            // one briefly suspect the other, which is not what this checks.
            assert!(c.up_count(i) <= 2, "an outsider is up");
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
    let data = tempfile::tempdir().unwrap();
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
            "--data-dir",
            data.path().join(node).to_str().unwrap(),
        ]);
    }
    let mut c = Cluster::first_in(data, &["--tls-dir", &path("n0")]);
    let n1 = c.spawn_with(1, &["--tls-dir", &path("n1")]);
    c.nodes.push(Some(n1));
    eventually("n0 and n1 Up over TLS", Duration::from_secs(10), || {
        (0..2).all(|i| c.up_count(i) == 2)
    });
    let stranger = c.spawn_with(2, &["--tls-dir", &path("n2")]);
    c.nodes.push(Some(stranger));
    let stranger_id = c.id_of(2);
    // The right cookie but no certificate at all: plaintext links, which
    // a node only runs when told to.
    let plain = c.spawn_with(3, &["--plaintext-links"]);
    c.nodes.push(Some(plain));
    let plain_id = c.id_of(3);
    eventually(
        "the stranger is heard of and its TLS refused",
        Duration::from_secs(10),
        || {
            let refused: f64 = (0..3).map(|i| tls_refusals(&c.node(i).url)).sum();
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
            assert!(c.up_count(i) <= 2, "an outsider is up");
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

#[test]
fn a_production_node_without_link_certificates_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hypha"))
        .args(["node", "--data-dir"])
        .arg(dir.path())
        .args(["--http-listen", "127.0.0.1:0"])
        .args(["--cluster-listen", "127.0.0.1:0"])
        .args(["--gossip-listen", "127.0.0.1:0"])
        .args(["--bulk-listen", "127.0.0.1:0"])
        .env("HYPHA_COOKIE", common::COOKIE)
        .env("HYPHA_ADMIN_TOKEN", common::ADMIN_TOKEN)
        .env_remove("HYPHA_TLS_DIR")
        .env_remove("HYPHA_PLAINTEXT_LINKS")
        .env_remove("HYPHA_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("node links need mutual TLS outside --dev")
            && stderr.contains("--plaintext-links"),
        "{stderr}"
    );
}

/// A node whose link certificate names another node does not start, and
/// says how to get the right one.
#[test]
fn a_node_whose_certificate_names_another_node_does_not_start() {
    let (dir, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let foreign = common::test_tls_dir(other.path());
    let out = common::node_command(dir.path(), &["--tls-dir", foreign.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("names node") && stderr.contains("hypha cert node --data-dir"),
        "{stderr}"
    );
}

/// A process holding the cookie and a node certificate of the cluster CA
/// dials node 0 five times and, in the cookie handshake, names itself as
/// node 1. Node 0 refuses every attempt before its NodeServer sees it
/// (its certificate names another node), and its real link to node 1 is
/// untouched: ractor_cluster would otherwise have run its duplicate-link
/// election on the claimed name and closed node 1's link.
#[test]
fn a_node_certificate_does_not_let_its_holder_speak_as_another_node() {
    use hypha_cluster::peers::tls::LinkTls;
    let c = Cluster::start_plain(2);
    eventually("n0 and n1 Up", Duration::from_secs(15), || {
        (0..2).all(|i| c.up_count(i) == 2)
    });
    let n0 = node_doc(&c.node(0).url, "/v1/node").unwrap();
    let n1 = node_doc(&c.node(1).url, "/v1/node").unwrap();
    let n0_id: hypha_core::identity::NodeId = n0["id"].as_str().unwrap().parse().unwrap();
    let link_addr: std::net::SocketAddr = n0["cluster"].as_str().unwrap().parse().unwrap();
    let posing_as = format!(
        "{}.{}",
        n1["id"].as_str().unwrap(),
        n1["generation"].as_u64().unwrap()
    );
    let url = c.node(0).url.clone();
    let counters = || {
        [
            "hypha_cluster_handshakes_refused_total{reason=\"identity\"}",
            "hypha_membership_transitions_total{to=\"suspect\"}",
            "hypha_cluster_links_closed_total",
        ]
        .map(|name| metric(&url, name))
    };
    let before = counters();

    let own = tempfile::tempdir().unwrap();
    let tls = LinkTls::load(&common::test_tls_dir(own.path())).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let attempts = 5;
    let _impostors: Vec<_> = (0..attempts)
        .map(|_| {
            runtime.block_on(async {
                let server = ractor_cluster::NodeServer::new(
                    0,
                    hypha_cluster::peers::link_cookie("hypha", common::COOKIE),
                    posing_as.clone(),
                    "127.0.0.1".into(),
                    Some(ractor_cluster::IncomingEncryptionMode::Tls(
                        tls.acceptor.clone(),
                    )),
                    Some(ractor_cluster::node::NodeConnectionMode::Isolated),
                );
                let (server, _) = ractor::Actor::spawn(None, server, ()).await.unwrap();
                let name = LinkTls::server_name_for(&n0_id).unwrap();
                ractor_cluster::client_connect_enc(&server, link_addr, tls.connector.clone(), name)
                    .await
                    .unwrap();
                server
            })
        })
        .collect();
    eventually(
        "node 0 refuses every impostor session",
        Duration::from_secs(10),
        || counters()[0] >= before[0] + attempts as f64,
    );
    let after = counters();
    assert_eq!(after[1], before[1], "node 0 never suspected node 1");
    assert_eq!(after[2], before[2], "node 0 closed no link");
    assert_eq!(c.up_count(0), 2, "node 1 is still Up at node 0");
}

/// The node certificate's BLAKE3 and the reload count node `i` reports.
fn tls_of(c: &Cluster, i: usize) -> (String, u64, u64) {
    let doc = node_doc(&c.node(i).url, "/v1/node/tls").unwrap();
    (
        doc["cert_blake3"].as_str().unwrap().to_owned(),
        doc["trusted_cas"].as_u64().unwrap(),
        doc["reloads"].as_u64().unwrap(),
    )
}

fn links_closed(c: &Cluster, i: usize) -> f64 {
    metric(&c.node(i).url, "hypha_cluster_links_closed_total")
}

/// Write node `name`'s `ca.pem` (the given CA directories' certificates,
/// concatenated) and, if `issuer` is given, a new certificate from it for
/// the node whose data directory is `data/name`.
fn write_tls(
    certs: &std::path::Path,
    data: &std::path::Path,
    name: &str,
    bundle: &[&str],
    issuer: Option<&str>,
) {
    let dir = certs.join(name);
    if let Some(ca) = issuer {
        let fresh = certs.join(format!("{name}-fresh"));
        let (ca_dir, out) = (certs.join(ca), fresh.clone());
        hypha(&[
            "cert",
            "node",
            "--ca-dir",
            ca_dir.to_str().unwrap(),
            "--name",
            name,
            "--out",
            out.to_str().unwrap(),
            "--data-dir",
            data.join(name).to_str().unwrap(),
        ]);
        std::fs::create_dir_all(&dir).unwrap();
        for file in ["node.pem", "node.key"] {
            std::fs::rename(fresh.join(file), dir.join(file)).unwrap();
        }
    }
    let pem: String = bundle
        .iter()
        .map(|ca| std::fs::read_to_string(certs.join(ca).join("ca.pem")).unwrap())
        .collect();
    std::fs::write(dir.join("ca.pem"), pem).unwrap();
}

/// Node `i` has reloaded `reloads` times. (That no link dropped meanwhile
/// is checked once, at the end, by the links-closed counters.)
fn wait_reloaded(c: &Cluster, i: usize, reloads: u64) {
    eventually("the reload is seen", Duration::from_secs(10), || {
        tls_of(c, i).2 == reloads
    });
}

#[test]
fn certificates_and_the_cluster_ca_rotate_without_dropping_a_link() {
    let certs_dir = tempfile::tempdir().unwrap();
    let certs = certs_dir.path();
    let data_dir = tempfile::tempdir().unwrap();
    let data = data_dir.path().to_owned();
    let path = |p: &str| certs.join(p).to_str().unwrap().to_owned();
    hypha(&["cert", "ca", "--dir", &path("old-ca")]);
    for n in ["n0", "n1"] {
        write_tls(certs, &data, n, &["old-ca"], Some("old-ca"));
    }
    let mut c = Cluster::first_in(data_dir, &["--tls-dir", &path("n0")]);
    c.nodes
        .push(Some(c.spawn_with(1, &["--tls-dir", &path("n1")])));
    eventually("n0 and n1 Up over TLS", Duration::from_secs(10), || {
        (0..2).all(|i| c.up_count(i) == 2)
    });
    let closed_before: Vec<f64> = (0..2).map(|i| links_closed(&c, i)).collect();
    let old_certs: Vec<String> = (0..2).map(|i| tls_of(&c, i).0).collect();

    // 1. Trust both CAs (SIGHUP on n0, the admin API on n1).
    hypha(&["cert", "ca", "--dir", &path("new-ca")]);
    for n in ["n0", "n1"] {
        write_tls(certs, &data, n, &["old-ca", "new-ca"], None);
    }
    c.node(0).signal("HUP");
    wait_reloaded(&c, 0, 1);
    reload_by_api(&c.node(1).url);
    wait_reloaded(&c, 1, 1);
    assert_eq!(tls_of(&c, 0).1, 2, "both CAs trusted");

    // 2. Renew every node's certificate under the new CA.
    for (i, n) in ["n0", "n1"].iter().enumerate() {
        write_tls(certs, &data, n, &["old-ca", "new-ca"], Some("new-ca"));
        c.node(i).signal("HUP");
        wait_reloaded(&c, i, 2);
        assert_ne!(tls_of(&c, i).0, old_certs[i], "n{i} presents a new cert");
    }
    // A node that trusts only the new CA joins: both present new certs.
    write_tls(certs, &data, "n2", &["new-ca"], Some("new-ca"));
    c.nodes
        .push(Some(c.spawn_with(2, &["--tls-dir", &path("n2")])));
    eventually("n2 joins on the new CA", Duration::from_secs(15), || {
        (0..3).all(|i| c.up_count(i) == 3)
    });

    // 3. Retire the old CA: a node still certified by it is refused.
    for (i, n) in ["n0", "n1"].iter().enumerate() {
        write_tls(certs, &data, n, &["new-ca"], None);
        c.node(i).signal("HUP");
        wait_reloaded(&c, i, 3);
    }
    write_tls(certs, &data, "n3", &["old-ca", "new-ca"], Some("old-ca"));
    c.nodes
        .push(Some(c.spawn_with(3, &["--tls-dir", &path("n3")])));
    let n3_id = c.id_of(3);
    eventually(
        "n3 is heard of and refused",
        Duration::from_secs(30),
        || {
            let refused: f64 = (0..4).map(|i| tls_refusals(&c.node(i).url)).sum();
            c.view_of(0, &n3_id).is_some() && refused >= 1.0
        },
    );
    for i in 0..3 {
        let v = c.view_of(i, &n3_id);
        assert!(v.as_ref().is_none_or(|m| m["linked"] == false), "{v:?}");
        assert!(c.up_count(i) <= 3, "n3 is up at n{i}");
    }
    let closed_after: Vec<f64> = (0..2).map(|i| links_closed(&c, i)).collect();
    assert_eq!(
        closed_after, closed_before,
        "no link closed by the rotation"
    );
}

fn reload_by_api(url: &str) {
    let status = common::block_on(async {
        common::client()
            .post(format!("{url}/v1/node/tls/reload"))
            .bearer_auth(common::ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, 200);
}

/// Peer certificates refused, and TLS sessions that failed, at `url`.
fn tls_refusals(url: &str) -> f64 {
    ["tls", "certificate"]
        .iter()
        .map(|r| {
            metric(
                url,
                &format!("hypha_cluster_handshakes_refused_total{{reason=\"{r}\"}}"),
            )
        })
        .sum()
}
