//! Membership benchmark (not a timed test): failure-detection time over
//! kill -9 trials on a 5-process cluster, how long a frozen process may
//! stall before it is suspected or declared Down, false Down verdicts while
//! one node's CPU is saturated, and gossip bytes per node for N = 5, 20, 50.
//!
//! ```text
//! cargo bench --bench membership                # everything (soak: 600 s)
//! cargo bench --bench membership -- detection   # or: stall, soak, gossip, seal
//! HYPHA_BENCH_TRIALS=20 HYPHA_BENCH_SOAK_SECS=600 HYPHA_BENCH_GOSSIP_SECS=10
//! ```
//! Figures and settings are recorded in docs/membership.md.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chitchat::transport::{Socket, Transport};
use hypha_cluster::membership::info::{Capacity, NodeInfo, INFO_VERSION};
use hypha_cluster::membership::probe::MemoryProbeNet;
use hypha_cluster::membership::seal::{Keyring, Opener, SealSettings, SealedTransport, Sealer};
use hypha_cluster::membership::{
    AdmissionPolicy, ChannelTransport, GossipTiming, MemberKey, MemberState, Membership,
    MembershipArgs, MembershipChannels, MembershipConfig, ProbeTiming, UdpTransport,
};
use hypha_testkit::cluster::Cluster;
use hypha_testkit::metric;
use std::sync::atomic::{AtomicU64, Ordering};
use support::{percentile, quick};

/// `name` from the environment, else `full` (`quick_value` in quick mode;
/// the gossip and seal parts run once each at the smallest sizes, with no
/// stall or soak, under `cargo test`).
fn sized(name: &str, full: u64, quick_value: u64) -> u64 {
    support::sized(name, full as usize, quick_value as usize) as u64
}

/// `n` node processes, each seeded by the first, all Up in every view.
fn start_procs(n: usize) -> Cluster {
    let p = Cluster::start_plain(n);
    p.wait_members_up(n, Duration::from_secs(30));
    p
}

/// What node `of` says of node id `about`: `up`, `suspect`, `down`, …
fn state(p: &Cluster, of: usize, about: &str) -> Option<String> {
    p.view_of(of, about)
        .and_then(|m| m["state"].as_str().map(str::to_owned))
}

fn summary(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(|a, b| a.total_cmp(b));
    println!(
        "{name}: n={} p50={:.0} ms p99={:.0} ms min={:.0} ms max={:.0} ms",
        ms.len(),
        percentile(&ms, 50.0),
        percentile(&ms, 99.0),
        ms[0],
        ms[ms.len() - 1]
    );
}

fn detection() {
    let trials = sized("HYPHA_BENCH_TRIALS", 20, 1) as usize;
    let mut p = start_procs(5);
    let (mut first_ms, mut all_ms) = (Vec::new(), Vec::new());
    for trial in 0..trials {
        let victim = 1 + trial % 4;
        let id = p.ids[victim].clone();
        let observers: Vec<usize> = (0..5).filter(|i| *i != victim).collect();
        p.node(victim).signal("KILL");
        let killed = Instant::now();
        p.node_mut(victim).wait_exit(Duration::from_secs(5));
        let mut seen: BTreeMap<usize, f64> = BTreeMap::new();
        while seen.len() < observers.len() {
            assert!(
                killed.elapsed() < Duration::from_secs(30),
                "trial {trial}: not detected"
            );
            for o in &observers {
                if !seen.contains_key(o) && state(&p, *o, &id).as_deref() == Some("down") {
                    seen.insert(*o, killed.elapsed().as_secs_f64() * 1e3);
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let times: Vec<f64> = seen.values().copied().collect();
        first_ms.push(times.iter().copied().fold(f64::MAX, f64::min));
        all_ms.push(times.iter().copied().fold(0.0, f64::max));
        println!(
            "trial {trial}: n{victim} Down at all observers after {:.0} ms",
            all_ms[trial]
        );
        p.nodes[victim] = Some(p.spawn(victim));
        p.wait_members_up(5, Duration::from_secs(30));
    }
    summary("kill -9 -> Down at the first observer", first_ms);
    summary("kill -9 -> Down at every observer", all_ms);
    let (sum, count): (f64, f64) = (0..5).fold((0.0, 0.0), |(s, c), i| {
        (
            s + metric(&p.url(i), "hypha_membership_detection_seconds_sum"),
            c + metric(&p.url(i), "hypha_membership_detection_seconds_count"),
        )
    });
    println!(
        "last heartbeat -> Down (nodes' own histogram): mean {:.0} ms over {count} verdicts",
        sum / count.max(1.0) * 1e3
    );
}

/// Freeze one node for a range of pauses: how long a stall must be before
/// peers suspect it, and before they declare it Down.
fn stall() {
    let p = start_procs(5);
    let count = |to: &str| -> f64 {
        (0..4)
            .map(|i| {
                metric(
                    &p.url(i),
                    &format!("hypha_membership_transitions_total{{to=\"{to}\"}}"),
                )
            })
            .sum()
    };
    for pause_ms in [250u64, 500, 750, 1_000, 1_500, 2_000, 3_000] {
        let trials = 4;
        let (suspect0, down0) = (count("suspect"), count("down"));
        let mut downed = 0;
        for _ in 0..trials {
            let (_, d0) = (count("suspect"), count("down"));
            p.node(4).signal("STOP");
            std::thread::sleep(Duration::from_millis(pause_ms));
            p.node(4).signal("CONT");
            p.wait_members_up(5, Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(500));
            if count("down") > d0 {
                downed += 1;
            }
        }
        println!(
            "stall {pause_ms} ms: {downed}/{trials} trials reached Down; per trial {:.1} Suspect and {:.1} Down transitions (4 observers)",
            (count("suspect") - suspect0) / trials as f64,
            (count("down") - down0) / trials as f64
        );
    }
}

struct Hogs(Vec<Child>);

impl Drop for Hogs {
    fn drop(&mut self) {
        for hog in &mut self.0 {
            let _ = hog.kill();
            let _ = hog.wait();
        }
    }
}

fn soak() {
    let secs = support::env_usize("HYPHA_BENCH_SOAK_SECS", 600) as u64;
    let p = start_procs(5);
    let busy = p.node(4);
    let pinned = Command::new("taskset")
        .args(["-a", "-p", "-c", "1", &busy.pid().to_string()])
        .output();
    assert!(pinned.is_ok_and(|o| o.status.success()), "taskset failed");
    let hogs = Hogs(
        (0..3)
            .map(|_| {
                Command::new("taskset")
                    .args(["-c", "1", "sh", "-c", "while :; do :; done"])
                    .spawn()
                    .unwrap()
            })
            .collect(),
    );
    println!("soak: n4 pinned to CPU 1 with 3 busy loops for {secs} s");
    let started = Instant::now();
    let mut min_up = 5;
    while started.elapsed() < Duration::from_secs(secs) {
        for i in 0..5 {
            min_up = min_up.min(p.up_count(i));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(hogs);
    let count = |to: &str| -> f64 {
        (0..5)
            .map(|i| {
                metric(
                    &p.url(i),
                    &format!("hypha_membership_transitions_total{{to=\"{to}\"}}"),
                )
            })
            .sum()
    };
    println!("soak: {secs} s, false Down verdicts: {}, Suspect transitions: {}, fewest Up seen by any node: {min_up}", count("down"), count("suspect"));
}

fn sim_config(name: &str, addr: SocketAddr, seed: SocketAddr) -> MembershipConfig {
    MembershipConfig {
        cluster_id: "bench".into(),
        me: MemberKey::new(name, 1),
        gossip_listen: addr,
        gossip_advertise: addr,
        seeds: vec![seed.to_string()],
        info: NodeInfo {
            version: INFO_VERSION,
            name: name.into(),
            cluster_addr: addr,
            http_addr: addr,
            bulk_addr: None,
            capacity: Capacity::default(),
            labels: BTreeMap::from([("zone".to_owned(), "bench-zone-a".to_owned())]),
        },
        data_dir: None,
        timing: GossipTiming::default(),
        probes: ProbeTiming::default(),
        admission: AdmissionPolicy::Gossip,
    }
}

/// One membership actor a node, seeded by the first, over `gossip`;
/// returns once every view holds all of them Up.
async fn start_sim(addrs: &[SocketAddr], gossip: Arc<dyn Transport>) -> Vec<SimNode> {
    let probes = MemoryProbeNet::new();
    let mut nodes = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let name = format!("node-{i:03}");
        let (links_tx, links) = tokio::sync::watch::channel(BTreeSet::new());
        let channels = MembershipChannels::new();
        let args = MembershipArgs {
            config: Arc::new(sim_config(&name, *addr, addrs[0])),
            gossip: gossip.clone(),
            probes: probes.transport(&name),
            channels: channels.clone(),
            links,
            watermark: Default::default(),
            clock: Default::default(),
            labels: None,
        };
        let (actor, _) = ractor::Actor::spawn(None, Membership, args).await.unwrap();
        nodes.push((actor, channels, links_tx));
    }
    let (n, started) = (addrs.len(), Instant::now());
    while !nodes
        .iter()
        .all(|(_, c, _)| c.view().in_state(MemberState::Up).count() == n)
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "N={n} did not converge"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    nodes
}

/// A simulated node: its actor, its channels, and the (empty) link set it
/// is fed, kept alive with it.
type SimNode = (
    ractor::ActorRef<hypha_cluster::membership::MembershipMessage>,
    MembershipChannels,
    tokio::sync::watch::Sender<BTreeSet<MemberKey>>,
);

fn gossip(n: usize, secs: u64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let transport = ChannelTransport::default();
        let addrs: Vec<SocketAddr> = (0..n)
            .map(|i| SocketAddr::from(([127, 0, 0, 1], 20_000 + i as u16)))
            .collect();
        let started = Instant::now();
        let nodes = start_sim(&addrs, Arc::new(transport.clone())).await;
        let converged = started.elapsed();
        let before = transport.statistics();
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let after = transport.statistics();
        let bytes = (after.num_bytes_total - before.num_bytes_total) as f64;
        let msgs = (after.num_messages_total - before.num_messages_total) as f64;
        println!(
            "gossip N={n}: converged in {:.2} s; {:.0} B/s sent per node, {:.1} msg/s per node, {:.0} B per message",
            converged.as_secs_f64(), bytes / n as f64 / secs as f64, msgs / n as f64 / secs as f64, bytes / msgs.max(1.0)
        );
        for (actor, _, _) in nodes {
            actor.kill();
        }
    });
}

/// Counts what the inner transport's sockets send.
struct Tally {
    inner: Arc<dyn Transport>,
    bytes: Arc<AtomicU64>,
    datagrams: Arc<AtomicU64>,
}

struct TallySocket {
    inner: Box<dyn Socket>,
    bytes: Arc<AtomicU64>,
    datagrams: Arc<AtomicU64>,
}

#[async_trait::async_trait]
impl Transport for Tally {
    async fn open(&self, addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        Ok(Box::new(TallySocket {
            inner: self.inner.open(addr).await?,
            bytes: self.bytes.clone(),
            datagrams: self.datagrams.clone(),
        }))
    }
}

#[async_trait::async_trait]
impl Socket for TallySocket {
    fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.inner.local_addr()
    }

    async fn send(
        &mut self,
        to: SocketAddr,
        envelope: chitchat::ChitchatEnvelope,
    ) -> anyhow::Result<chitchat::transport::SendOutcome> {
        let outcome = self.inner.send(to, envelope).await?;
        self.bytes
            .fetch_add(outcome.num_bytes_sent as u64, Ordering::Relaxed);
        self.datagrams.fetch_add(1, Ordering::Relaxed);
        Ok(outcome)
    }

    async fn recv(&mut self) -> anyhow::Result<chitchat::transport::RecvOutcome> {
        self.inner.recv().await
    }
}

fn free_udp() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Gossip bytes per node over loopback UDP for `n` membership actors,
/// plain or sealed; (bytes/s per node, datagrams/s per node).
fn gossip_udp(n: usize, secs: u64, sealed: bool) -> (f64, f64) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let ring = Arc::new(
            Keyring::from_secrets("bench", &["bench-gossip-secret-of-32-bytes-or-more"]).unwrap(),
        );
        let (_keys, rx) = tokio::sync::watch::channel(ring);
        let inner: Arc<dyn Transport> = if sealed {
            Arc::new(SealedTransport::new(
                rx,
                SealSettings::default(),
                hypha_core::clock::SharedClock::system(),
            ))
        } else {
            Arc::new(UdpTransport)
        };
        let (bytes, datagrams) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let tally: Arc<dyn Transport> = Arc::new(Tally {
            inner,
            bytes: bytes.clone(),
            datagrams: datagrams.clone(),
        });
        let addrs: Vec<SocketAddr> = (0..n).map(|_| free_udp()).collect();
        let nodes = start_sim(&addrs, tally).await;
        let (b0, d0) = (
            bytes.load(Ordering::Relaxed),
            datagrams.load(Ordering::Relaxed),
        );
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let (b1, d1) = (
            bytes.load(Ordering::Relaxed),
            datagrams.load(Ordering::Relaxed),
        );
        for (actor, _, _) in nodes {
            actor.kill();
        }
        let per_node = |x: u64| x as f64 / n as f64 / secs as f64;
        (per_node(b1 - b0), per_node(d1 - d0))
    })
}

/// Sealed gossip against plain chitchat, measured in the same run, and
/// the CPU time of sealing and opening one datagram.
fn seal(secs: u64) {
    let sizes: &[usize] = if quick() { &[5] } else { &[5, 20] };
    for &n in sizes {
        let (plain_bps, plain_dps) = gossip_udp(n, secs, false);
        let (sealed_bps, sealed_dps) = gossip_udp(n, secs, true);
        println!(
            "gossip over UDP N={n}: plain {plain_bps:.0} B/s ({plain_dps:.1} datagrams/s) per node, \
             sealed {sealed_bps:.0} B/s ({sealed_dps:.1} datagrams/s); sealed/plain = {:.3}",
            sealed_bps / plain_bps.max(1.0)
        );
    }
    let ring =
        Keyring::from_secrets("bench", &["bench-gossip-secret-of-32-bytes-or-more"]).unwrap();
    let rounds = sized("HYPHA_BENCH_SEAL_ROUNDS", 200_000, 1_000);
    for size in [200usize, 1_400, 16_000] {
        let plain = vec![7u8; size];
        let mut sealer = Sealer::new([1; 16]);
        let mut opener = Opener::new(16, u64::MAX);
        let mut sealed = Vec::new();
        let mut samples = Vec::new();
        for _ in 0..5 {
            let started = Instant::now();
            for _ in 0..rounds / 5 {
                sealer.seal(&ring, 1, &plain, &mut sealed);
                let range = opener.open(&ring, 1, &mut sealed).unwrap();
                assert_eq!(range.len(), size);
            }
            samples.push(started.elapsed().as_nanos() as f64 / (rounds / 5) as f64);
        }
        samples.sort_by(|a, b| a.total_cmp(b));
        println!(
            "seal + open of a {size} B datagram: median {:.2} µs over 5 batches of {}",
            samples[2] / 1_000.0,
            rounds / 5
        );
    }
}

fn main() {
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let long_parts = !quick() || !parts.is_empty();
    let wants = |p: &str| {
        let long = matches!(p, "stall" | "soak");
        (parts.is_empty() && (long_parts || !long)) || parts.iter().any(|a| a == p)
    };
    let secs = sized("HYPHA_BENCH_GOSSIP_SECS", 10, 1);
    if wants("gossip") {
        let sizes: &[usize] = if quick() { &[5] } else { &[5, 20, 50] };
        for &n in sizes {
            gossip(n, secs);
        }
    }
    if wants("seal") {
        seal(secs);
    }
    if wants("detection") {
        detection();
    }
    if wants("stall") {
        stall();
    }
    if wants("soak") {
        soak();
    }
}
