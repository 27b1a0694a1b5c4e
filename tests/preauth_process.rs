//! No pre-auth stalls (issue #23, holes 3 and 4), against real `hypha`
//! processes on loopback: idle TCP connections held on one node's link
//! and bulk ports — 1, then 500 from one source address, then 500 from
//! 200 source addresses (127.0.0.3 … 127.0.0.202 are all loopback) —
//! must not stop a restarted node from linking with it, nor chunk traffic
//! to it. The attacker re-dials every connection the node closes (after
//! 250 ms), as a real one would to keep its slots. Every wait polls with a
//! deadline; the times are printed (`--nocapture`) for the figures in
//! docs/security.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::Cluster;
use common::{get_json, metric, wait_until, Api, ADMIN_TOKEN};
use tokio::io::AsyncReadExt;

/// Every file is written to all three nodes (W = R = 3): a PUT through
/// the restarted node needs fresh bulk connections to the attacked node.
const TOML: &str = "[dht]\nreplicas = 3\nwrite_quorum = 3\ndown_grace_ms = 600000\n\
                    rpc_timeout_ms = 3000\n[storage]\nmin_free_bytes = 0\n";
/// How long a restarted node may take to be Up and linked at the victim.
const LINK_DEADLINE: Duration = Duration::from_secs(20);
/// How long a PUT and its GETs may take.
const FILE_DEADLINE: Duration = Duration::from_secs(30);
/// The attacker's pause before re-dialling a closed connection.
const REDIAL_MS: u64 = 250;

/// What a node says about itself.
struct Facts {
    id: String,
    generation: u64,
    link: SocketAddr,
    bulk: SocketAddr,
}

fn facts(c: &Cluster, i: usize) -> Facts {
    let doc = get_json(&c.url(i), "/v1/node").unwrap();
    let addr = |field: &str| doc[field].as_str().unwrap().parse().unwrap();
    Facts {
        id: doc["id"].as_str().unwrap().to_owned(),
        generation: doc["generation"].as_u64().unwrap(),
        link: addr("cluster"),
        bulk: addr("bulk"),
    }
}

/// Node `of` sees node `about`'s running generation Up and linked.
fn linked_up(c: &Cluster, of: usize, about: &Facts) -> bool {
    get_json(&c.url(of), "/v1/cluster/members")
        .and_then(|d| d["members"].as_array().cloned())
        .unwrap_or_default()
        .iter()
        .any(|m| {
            m["id"] == about.id.as_str()
                && m["generation"] == about.generation
                && m["state"] == "up"
                && m["linked"] == true
        })
}

/// Every pair linked, and every node placing files on all of them.
fn all_linked(c: &Cluster) -> bool {
    let live = c.alive();
    let all: Vec<Facts> = live.iter().map(|&i| facts(c, i)).collect();
    live.iter().zip(&all).all(|(&a, me)| {
        metric(&c.url(a), "hypha_dht_owners") == live.len() as f64
            && all.iter().all(|f| f.id == me.id || linked_up(c, a, f))
    })
}

/// Idle TCP connections held open from a background runtime until dropped.
struct Flood {
    stop: Arc<AtomicBool>,
    connects: Arc<AtomicU64>,
    open: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Flood {
    /// `per_target` connections to each target, spread round-robin over
    /// `sources` (client addresses to bind).
    fn start(targets: &[SocketAddr], sources: &[Ipv4Addr], per_target: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let connects = Arc::new(AtomicU64::new(0));
        let open = Arc::new(AtomicU64::new(0));
        let mut slots = Vec::new();
        for target in targets {
            for k in 0..per_target {
                slots.push((*target, sources[k % sources.len()]));
            }
        }
        let (s, c, o) = (stop.clone(), connects.clone(), open.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let tasks: Vec<_> = slots
                    .into_iter()
                    .map(|(target, source)| {
                        tokio::spawn(hold(target, source, s.clone(), c.clone(), o.clone()))
                    })
                    .collect();
                for task in tasks {
                    let _ = task.await;
                }
            });
        });
        Flood {
            stop,
            connects,
            open,
            thread: Some(thread),
        }
    }

    fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }

    fn connects(&self) -> u64 {
        self.connects.load(Ordering::Relaxed)
    }
}

impl Drop for Flood {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Keep one idle connection from `source` to `target` open, re-dialling
/// whenever the node closes it, until `stop`.
async fn hold(
    target: SocketAddr,
    source: Ipv4Addr,
    stop: Arc<AtomicBool>,
    connects: Arc<AtomicU64>,
    open: Arc<AtomicU64>,
) {
    while !stop.load(Ordering::Relaxed) {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        if socket.bind(SocketAddr::new(source.into(), 0)).is_err() {
            tokio::time::sleep(Duration::from_millis(REDIAL_MS)).await;
            continue;
        }
        let connect = tokio::time::timeout(Duration::from_secs(1), socket.connect(target));
        if let Ok(Ok(mut stream)) = connect.await {
            connects.fetch_add(1, Ordering::Relaxed);
            open.fetch_add(1, Ordering::Relaxed);
            let mut buf = [0u8; 64];
            while !stop.load(Ordering::Relaxed) {
                match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await
                {
                    Err(_) => continue,
                    Ok(Ok(0)) | Ok(Err(_)) => break,
                    Ok(Ok(_)) => continue,
                }
            }
            open.fetch_sub(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(REDIAL_MS)).await;
    }
}

/// Kill -9 node `i`, restart it, and time until the victim sees it Up and
/// linked; then PUT a file through it (to all three nodes) and read it
/// back through the victim. Returns (link time, PUT time).
fn restart_links_and_moves_chunks(
    c: &mut Cluster,
    i: usize,
    victim: usize,
    tag: &str,
) -> (Duration, Duration) {
    c.kill(i);
    let started = Instant::now();
    c.nodes[i] = Some(c.spawn(i));
    wait_until(
        &format!("{tag}: the restarted node is Up and linked at the victim"),
        LINK_DEADLINE,
        || linked_up(c, victim, &facts(c, i)),
    );
    let linked = started.elapsed();
    wait_until(&format!("{tag}: every pair linked"), LINK_DEADLINE, || {
        all_linked(c)
    });
    let body = common::pseudo_random(3 << 20, linked.as_nanos() as u64);
    let path = format!("/v1/files/preauth/{tag}.bin");
    let put_started = Instant::now();
    let through = Api::for_files(c.url(i));
    let at_victim = Api::for_files(c.url(victim));
    common::block_on(async {
        let put = tokio::time::timeout(FILE_DEADLINE, through.put(&path, Some(ADMIN_TOKEN), &body))
            .await
            .unwrap_or_else(|_| panic!("{tag}: PUT not answered within {FILE_DEADLINE:?}"));
        assert_eq!(
            put.status().as_u16(),
            201,
            "{tag}: PUT through the restarted node"
        );
    });
    let put_took = put_started.elapsed();
    common::block_on(async {
        let got = tokio::time::timeout(FILE_DEADLINE, at_victim.get(&path, Some(ADMIN_TOKEN)))
            .await
            .unwrap_or_else(|_| panic!("{tag}: GET not answered within {FILE_DEADLINE:?}"));
        assert_eq!(got.status().as_u16(), 200, "{tag}: GET through the victim");
        assert!(
            got.bytes().await.unwrap().as_ref() == body.as_slice(),
            "{tag}: bytes differ"
        );
    });
    eprintln!("{tag}: restarted node linked at the victim in {linked:?}; 3 MiB PUT (W = 3) took {put_took:?}");
    (linked, put_took)
}

fn loopback(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Hold `per_port` idle connections on each port from `sources` while a
/// node restarts; the restart's (link time, PUT time).
fn under_flood(
    c: &mut Cluster,
    (restarted, victim): (usize, usize),
    ports: &[SocketAddr],
    (sources, per_port): (&[Ipv4Addr], usize),
    tag: &str,
) -> (Duration, Duration) {
    let flood = Flood::start(ports, sources, per_port);
    // Every slot dialled at least once (each refused one re-dials).
    let slots = (ports.len() * per_port) as u64;
    wait_until(
        &format!("{tag}: flood under way"),
        Duration::from_secs(30),
        || flood.connects() >= slots,
    );
    eprintln!(
        "{tag}: {} connections open, {} made",
        flood.open(),
        flood.connects()
    );
    let times = restart_links_and_moves_chunks(c, restarted, victim, tag);
    eprintln!(
        "{tag}: {} connections made in all, {} open at the end",
        flood.connects(),
        flood.open()
    );
    times
}

#[test]
fn idle_connections_on_link_and_bulk_ports_stall_neither_links_nor_chunks() {
    let mut c = Cluster::start(3, TOML);
    wait_until("3 nodes linked", LINK_DEADLINE, || all_linked(&c));
    // The victim has the largest node id, so every other node dials it
    // (the smaller link name dials): its inbound path is what counts.
    let victim = (0..3).max_by_key(|&i| c.ids[i].clone()).unwrap();
    let restarted = (0..3).find(|&i| i != victim).unwrap();
    let pair = (restarted, victim);
    let target = facts(&c, victim);
    let ports = [target.link, target.bulk];
    let vurl = c.url(victim);

    let (base, _) = restart_links_and_moves_chunks(&mut c, restarted, victim, "baseline");
    let (t1, _) = under_flood(&mut c, pair, &ports, (&[loopback(1)], 1), "1-idle");
    let (t2, _) = under_flood(
        &mut c,
        pair,
        &ports,
        (&[loopback(2)], 500),
        "500-one-source",
    );
    let sources: Vec<Ipv4Addr> = (3..=202).map(loopback).collect();
    let (t3, _) = under_flood(&mut c, pair, &ports, (&sources, 500), "500-many-sources");

    let refused = |what: &str| metric(&vurl, what);
    eprintln!(
        "victim refusals: link per_source {} total {} deadline {}; bulk per_source {} total {} deadline {}",
        refused("hypha_cluster_preauth_refused_total{reason=\"per_source\"}"),
        refused("hypha_cluster_preauth_refused_total{reason=\"total\"}"),
        refused("hypha_cluster_preauth_refused_total{reason=\"deadline\"}"),
        refused("hypha_dht_bulk_refused_total{reason=\"per_source\"}"),
        refused("hypha_dht_bulk_refused_total{reason=\"total\"}"),
        refused("hypha_dht_bulk_refused_total{reason=\"deadline\"}"),
    );
    eprintln!(
        "link times: baseline {base:?}, 1 idle {t1:?}, 500/1 source {t2:?}, 500/200 sources {t3:?}"
    );
    assert!(refused("hypha_cluster_preauth_refused_total{reason=\"per_source\"}") > 0.0);
    assert!(refused("hypha_dht_bulk_refused_total{reason=\"per_source\"}") > 0.0);
    assert!(refused("hypha_cluster_preauth_refused_total{reason=\"total\"}") > 0.0);
    assert!(refused("hypha_dht_bulk_refused_total{reason=\"total\"}") > 0.0);
}

/// Whether the node closes `stream` within `limit` (EOF or reset).
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 64];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn connect_from(source: Ipv4Addr, target: SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source.into(), 0)).unwrap();
    socket.connect(target).await.unwrap()
}

/// Without TLS the cookie handshake runs in ractor_cluster's session
/// actor, which had no deadline: an idle connection held a session for
/// ever. Now one address that is no member's host gets 8 connections;
/// the 9th is closed at once, and the 8 when the 3 s deadline passes.
#[test]
fn a_plaintext_link_port_caps_and_times_out_unauthenticated_sessions() {
    let dir = tempfile::tempdir().unwrap();
    let node = common::spawn_node(dir.path(), &["--node-name", "solo", "--plaintext-links"]);
    let link: SocketAddr = get_json(&node.url, "/v1/node").unwrap()["cluster"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    common::block_on(async {
        let mut held = Vec::new();
        for _ in 0..8 {
            held.push(connect_from(loopback(2), link).await);
        }
        let mut ninth = connect_from(loopback(2), link).await;
        assert!(
            closed_within(&mut ninth, Duration::from_secs(1)).await,
            "the 9th connection from one address is refused"
        );
        let started = Instant::now();
        assert!(
            !closed_within(&mut held[0], Duration::from_secs(1)).await,
            "the first 8 are admitted"
        );
        for stream in &mut held {
            assert!(
                closed_within(stream, Duration::from_secs(5)).await,
                "an unauthenticated session outlived the deadline"
            );
        }
        eprintln!(
            "8 idle plaintext sessions closed {:?} after the check",
            started.elapsed()
        );
    });
    assert!(
        metric(
            &node.url,
            "hypha_cluster_preauth_refused_total{reason=\"per_source\"}"
        ) >= 1.0
    );
    assert!(
        metric(
            &node.url,
            "hypha_cluster_preauth_refused_total{reason=\"deadline\"}"
        ) >= 8.0
    );
}
