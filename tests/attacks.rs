//! Attacks on the trust boundary, against real node processes (issue 23).
//!
//! A process that knows the cluster id and speaks chitchat perfectly, but
//! holds no cluster secret, floods the gossip port for `HYPHA_ATTACK_SECS`
//! (default 60) while a file workload runs: forged node states under every
//! member's id with a higher generation, the leaving flag, Down verdicts
//! with incarnation u64::MAX about every member, and every member's link
//! and bulk addresses repointed at node 0, plus junk datagrams. Nothing may
//! change: no membership transition anywhere, every file acknowledged reads
//! back byte for byte from every node, and still after node 0 (where the
//! forged addresses point) is killed. The dropped datagrams are counted.
//!
//! The same flood sealed with the cluster key (an attacker holding the
//! cookie but no node certificate) changes nothing routable either: the
//! forged generations are never followed while the real ones are linked,
//! and verdicts at implausible incarnations are ignored.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chitchat::transport::{Transport, UdpTransport};
use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig};
use common::cluster::Cluster;
use common::{get_json, metric, Api, ADMIN_TOKEN};
use hypha_cluster::membership::info::{self, Capacity, NodeInfo, INFO_VERSION};
use hypha_cluster::membership::seal::{Keyring, SealSettings, SealedTransport};
use hypha_core::clock::SharedClock;

const CONFIG: &str = "[dht]\ndown_grace_ms = 600000\nrpc_timeout_ms = 3000\n\
                      [storage]\nmin_free_bytes = 0\n";

fn attack_duration() -> Duration {
    let secs = std::env::var("HYPHA_ATTACK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// What the attacker learnt of a member (node ids are on the open
/// `/metrics` and in `/v1/node`).
#[derive(Clone)]
struct Member {
    id: String,
    generation: u64,
    gossip: SocketAddr,
}

fn member(url: &str) -> Member {
    let node = get_json(url, "/v1/node").unwrap();
    Member {
        id: node["id"].as_str().unwrap().to_owned(),
        generation: node["generation"].as_u64().unwrap(),
        gossip: node["gossip"].as_str().unwrap().parse().unwrap(),
    }
}

fn free_udp() -> SocketAddr {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Every key of a forged state of `victim`: leaving, an unrefutable
/// incarnation, verdicts about everyone (at the incarnation they have,
/// 0, and at u64::MAX), addresses pointing at `target`.
fn forged_state(victim: &Member, all: &[Member], target: SocketAddr) -> Vec<(String, String)> {
    let info = NodeInfo {
        version: INFO_VERSION,
        name: "forged".into(),
        cluster_addr: target,
        http_addr: target,
        bulk_addr: Some(target),
        capacity: Capacity {
            cores: 64,
            memory_bytes: 1 << 40,
            free_disk_bytes: 1 << 50,
        },
        labels: BTreeMap::new(),
    };
    let mut kvs = vec![
        (
            info::KEY_INFO.to_owned(),
            serde_json::to_string(&info).unwrap(),
        ),
        (info::KEY_LEAVING.to_owned(), "1".to_owned()),
        (info::KEY_INCARNATION.to_owned(), u64::MAX.to_string()),
    ];
    for (i, other) in all.iter().filter(|m| m.id != victim.id).enumerate() {
        let incarnation = if i % 2 == 0 { 0 } else { u64::MAX };
        kvs.push((
            info::down_key(&other.id, other.generation),
            incarnation.to_string(),
        ));
    }
    kvs
}

/// Two forged chitchat nodes per member, gossiping every 10 ms: one at a
/// higher generation, one at the member's own generation (chitchat tells
/// them apart by gossip address).
async fn forge(
    members: &[Member],
    target: SocketAddr,
    transport: &dyn Transport,
) -> Vec<ChitchatHandle> {
    let seeds: Vec<String> = members.iter().map(|m| m.gossip.to_string()).collect();
    let mut handles = Vec::new();
    let claims = members
        .iter()
        .flat_map(|m| [(m, m.generation + 1_000), (m, m.generation)]);
    for (victim, generation) in claims {
        let addr = free_udp();
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(victim.id.clone(), generation, addr),
            cluster_id: "hypha".into(),
            gossip_interval: Duration::from_millis(10),
            listen_addr: addr,
            seed_nodes: seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                phi_threshold: 8.0,
                sampling_window_size: 1_000,
                max_interval: Duration::from_secs(10),
                initial_interval: Duration::from_millis(10),
                dead_node_grace_period: Duration::from_secs(3_600),
            },
            marked_for_deletion_grace_period: Duration::from_secs(3_600),
            catchup_callback: None,
            extra_liveness_predicate: None,
            protocol_version: chitchat::ProtocolVersion::V1,
        };
        let kvs = forged_state(victim, members, target);
        handles.push(
            chitchat::spawn_chitchat(config, kvs, transport)
                .await
                .unwrap(),
        );
    }
    handles
}

/// Junk and truncated chitchat-looking datagrams at every gossip port.
fn junk(members: &[Member], stop: &AtomicBool) -> u64 {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut sent = 0u64;
    while !stop.load(Ordering::Relaxed) {
        for m in members {
            let mut d = common::pseudo_random(64 + (sent as usize % 1_200), sent);
            if sent % 2 == 0 {
                d[..4].copy_from_slice(&[0x53, 0xb0, 1, 1]);
            }
            let _ = socket.send_to(&d, m.gossip);
            sent += 1;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    sent
}

fn transitions(cluster: &Cluster) -> Vec<f64> {
    cluster
        .alive()
        .iter()
        .map(|&i| metric(&cluster.url(i), "hypha_membership_transitions_total"))
        .collect()
}

/// Every node's view, for a failure message.
fn views(cluster: &Cluster) -> Vec<String> {
    cluster
        .alive()
        .iter()
        .map(|&i| {
            let view = get_json(&cluster.url(i), "/v1/cluster/members").unwrap();
            let members: Vec<String> = view["members"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    format!(
                        "{}.{}={}",
                        &m["id"].as_str().unwrap()[..6],
                        m["generation"],
                        m["state"]
                    )
                })
                .collect();
            let text = common::block_on(async {
                reqwest::get(format!("{}/metrics", cluster.url(i)))
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap()
            });
            let moves: Vec<&str> = text
                .lines()
                .filter(|l| {
                    l.starts_with("hypha_membership_transitions_total{") && !l.ends_with(" 0")
                })
                .collect();
            let log = cluster.nodes[i].as_ref().unwrap().stderr_text();
            let said: Vec<&str> = log
                .lines()
                .filter(|l| l.contains("WARN") || l.contains("Node") || l.contains("link"))
                .take(40)
                .collect();
            format!("n{i}: {} {moves:?}\n{}", members.join(" "), said.join("\n"))
        })
        .collect()
}

fn file_body(i: usize) -> Vec<u8> {
    let len = match i % 5 {
        0 => 300,
        1 => 40_000,
        2 => 300_000,
        3 => 1_500_000,
        _ => 3_000 + i,
    };
    common::pseudo_random(len, i as u64 + 17)
}

/// Files the workload writes at most; after that it reads them back.
const MAX_FILES: usize = 300;

/// PUT files through every node in turn until `stop` (GETs once
/// [`MAX_FILES`] are written, so a long attack does not fill the disk);
/// the acknowledged ones.
fn workload(urls: &[String], stop: &AtomicBool) -> Vec<usize> {
    // One runtime for the whole loop: a reqwest client's pooled
    // connections belong to the runtime that opened them.
    common::block_on(async {
        let apis: Vec<Api> = urls.iter().map(|u| Api::for_files(u.clone())).collect();
        let mut acked = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            let api = &apis[i % apis.len()];
            if i < MAX_FILES {
                let path = format!("/v1/files/attack/{i}");
                let res = api.put(&path, Some(ADMIN_TOKEN), &file_body(i)).await;
                if res.status().is_success() {
                    acked.push(i);
                }
            } else if !acked.is_empty() {
                let file = acked[i % acked.len()];
                let res = api
                    .get(&format!("/v1/files/attack/{file}"), Some(ADMIN_TOKEN))
                    .await;
                assert_eq!(res.status(), 200, "file {file} during the attack");
            }
            i += 1;
        }
        acked
    })
}

fn read_back(cluster: &Cluster, files: &[usize]) {
    let urls: Vec<(usize, String)> = cluster
        .alive()
        .iter()
        .map(|&i| (i, cluster.url(i)))
        .collect();
    common::block_on(async {
        for (node, url) in urls {
            let api = Api::for_files(url);
            for &i in files {
                let res = api
                    .get(&format!("/v1/files/attack/{i}"), Some(ADMIN_TOKEN))
                    .await;
                assert_eq!(res.status(), 200, "file {i} through node {node}");
                let body = res.bytes().await.unwrap();
                assert!(
                    body[..] == file_body(i)[..],
                    "file {i} differs through node {node}"
                );
            }
        }
    });
}

fn rejected(cluster: &Cluster, reason: &str) -> f64 {
    let name = format!("hypha_gossip_rejected_total{{reason=\"{reason}\"}}");
    cluster
        .alive()
        .iter()
        .map(|&i| metric(&cluster.url(i), &name))
        .sum()
}

/// Who floods the gossip ports.
enum Attacker {
    /// Plain chitchat: the right cluster id, no secret.
    Outsider,
    /// Gossip sealed with the cluster key (it has the cookie), but no
    /// certificate, so it can never open a node link.
    KeyHolder,
}

fn run_attack(attacker: Attacker) {
    let mut cluster = Cluster::start(3, CONFIG);
    cluster.wait_all_up(3, Duration::from_secs(30));
    let members: Vec<Member> = (0..3).map(|i| member(&cluster.url(i))).collect();
    let node0_bulk: SocketAddr = get_json(&cluster.url(0), "/v1/node").unwrap()["bulk"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let before = transitions(&cluster);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let forgers = runtime.block_on(async {
        match attacker {
            Attacker::Outsider => forge(&members, node0_bulk, &UdpTransport).await,
            Attacker::KeyHolder => {
                let ring = Keyring::from_secrets("hypha", &[common::COOKIE]).unwrap();
                let (_keys, rx) = tokio::sync::watch::channel(Arc::new(ring));
                let sealed =
                    SealedTransport::new(rx, SealSettings::default(), SharedClock::system());
                forge(&members, node0_bulk, &sealed).await
            }
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let junk_stop = stop.clone();
    let junk_members = members.clone();
    let junk_thread = std::thread::spawn(move || junk(&junk_members, &junk_stop));
    let started = Instant::now();
    let attack = attack_duration();
    let stop_workload = Arc::new(AtomicBool::new(false));
    let urls: Vec<String> = cluster.alive().iter().map(|&i| cluster.url(i)).collect();
    // The workload stops with the attack, also when a check fails (a
    // panic inside the scope would wait for it for ever).
    let (acked, moved) = std::thread::scope(|s| {
        let load = s.spawn(|| workload(&urls, &stop_workload));
        let mut moved = None;
        while started.elapsed() < attack && moved.is_none() {
            let now = transitions(&cluster);
            if now != before {
                moved = Some((now, views(&cluster)));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        stop_workload.store(true, Ordering::Relaxed);
        (load.join().unwrap(), moved)
    });
    stop.store(true, Ordering::Relaxed);
    let junk_sent = junk_thread.join().unwrap();
    assert_eq!(
        moved, None,
        "membership transitions during the attack (before: {before:?})"
    );
    runtime.block_on(async move {
        for forger in forgers {
            forger.shutdown().await.unwrap();
        }
    });
    runtime.shutdown_background();

    let malformed = rejected(&cluster, "malformed");
    let contested: f64 = cluster
        .alive()
        .iter()
        .map(|&i| metric(&cluster.url(i), "hypha_membership_contested_members"))
        .sum();
    eprintln!(
        "attack: {:?}, {} files acknowledged, {junk_sent} junk datagrams, \
         {malformed} datagrams dropped as malformed, {} rate-limited, \
         {contested} members contested now (sum over nodes), transitions {before:?} -> {:?}",
        attack,
        acked.len(),
        rejected(&cluster, "rate_limited"),
        transitions(&cluster)
    );
    assert_eq!(transitions(&cluster), before);
    assert!(acked.len() >= 10, "the workload ran: {} files", acked.len());
    assert!(
        malformed >= junk_sent as f64 / 2.0,
        "dropped datagrams are counted"
    );
    for i in 0..3 {
        let view = get_json(&cluster.url(i), "/v1/cluster/members").unwrap();
        for m in view["members"].as_array().unwrap() {
            assert!(
                m["generation"].as_u64() < Some(1_000) && m["state"] == "up",
                "node {i} follows a forged state: {m}"
            );
        }
    }
    read_back(&cluster, &acked);
    // The forged addresses pointed every member at node 0: had a chunk
    // gone there instead of its replica, losing node 0 would show it.
    cluster.kill(0);
    read_back(&cluster, &acked);
}

#[test]
fn forged_gossip_without_the_secret_changes_nothing() {
    run_attack(Attacker::Outsider);
}

#[test]
fn forged_gossip_with_the_secret_but_no_certificate_changes_nothing_routable() {
    run_attack(Attacker::KeyHolder);
}
