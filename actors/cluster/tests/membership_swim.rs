//! The SWIM layer in one process: real membership actors over chitchat's
//! in-memory transport, with links cut in both the gossip transport and
//! the probe network. Time is tokio's paused clock, so the seconds below
//! are simulated and the test is deterministic in what it checks.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chitchat::transport::ChannelTransport;
use hypha_cluster::membership::info::{Capacity, NodeInfo, INFO_VERSION};
use hypha_cluster::membership::probe::MemoryProbeNet;
use hypha_cluster::membership::{
    AdmissionPolicy, ClusterView, GossipTiming, MemberKey, MemberState, Membership, MembershipArgs,
    MembershipChannels, MembershipConfig, MembershipMessage, ProbeTiming,
};
use ractor::{Actor, ActorRef};
use tokio::sync::watch;

struct Sim {
    gossip: ChannelTransport,
    probes: MemoryProbeNet,
    nodes: BTreeMap<String, SimNode>,
}

struct SimNode {
    actor: ActorRef<MembershipMessage>,
    args: MembershipArgs,
    channels: MembershipChannels,
    addr: SocketAddr,
    _links: watch::Sender<BTreeSet<MemberKey>>,
}

fn addr(i: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 10_000 + i))
}

fn config(name: &str, i: u16, seeds: Vec<String>) -> MembershipConfig {
    MembershipConfig {
        cluster_id: "sim".into(),
        me: MemberKey::new(name, 1),
        gossip_listen: addr(i),
        gossip_advertise: addr(i),
        seeds,
        info: NodeInfo {
            version: INFO_VERSION,
            name: name.into(),
            cluster_addr: addr(100 + i),
            http_addr: addr(200 + i),
            bulk_addr: None,
            capacity: Capacity::default(),
            labels: BTreeMap::new(),
        },
        data_dir: None,
        timing: GossipTiming::default(),
        probes: ProbeTiming::default(),
        admission: AdmissionPolicy::Gossip,
    }
}

impl Sim {
    async fn start(names: &[&str]) -> Self {
        let mut sim = Sim {
            gossip: ChannelTransport::default(),
            probes: MemoryProbeNet::new(),
            nodes: BTreeMap::new(),
        };
        for (i, name) in names.iter().enumerate() {
            let i = u16::try_from(i).unwrap() + 1;
            let seeds = vec![addr(1).to_string()];
            let channels = MembershipChannels::new();
            let (links_tx, links) = watch::channel(BTreeSet::new());
            let args = MembershipArgs {
                config: Arc::new(config(name, i, seeds)),
                gossip: Arc::new(sim.gossip.clone()),
                probes: sim.probes.transport(name),
                channels: channels.clone(),
                links,
                watermark: Default::default(),
                clock: Default::default(),
                labels: None,
            };
            let (actor, _) = Actor::spawn(None, Membership, args.clone()).await.unwrap();
            sim.nodes.insert(
                (*name).to_owned(),
                SimNode {
                    actor,
                    args,
                    channels,
                    addr: addr(i),
                    _links: links_tx,
                },
            );
        }
        sim
    }

    fn view(&self, of: &str) -> Arc<ClusterView> {
        self.nodes[of].channels.view()
    }

    fn state(&self, of: &str, about: &str) -> Option<MemberState> {
        self.view(of).member(about).map(|m| m.state)
    }

    async fn cut(&self, a: &str, b: &str) {
        self.gossip
            .remove_link(self.nodes[a].addr, self.nodes[b].addr)
            .await;
        self.probes.cut(a, b);
    }

    async fn heal(&self, a: &str, b: &str) {
        self.gossip
            .add_link(self.nodes[a].addr, self.nodes[b].addr)
            .await;
        self.probes.heal(a, b);
    }

    fn kill(&mut self, name: &str) {
        let node = self.nodes.remove(name).unwrap();
        node.actor.kill();
        self.probes.set_down(name);
    }

    /// Kill a node's membership actor and start it again with the same
    /// arguments, as its supervisor would: same member key, fresh chitchat.
    /// The view channels are new so that the checks read only what the new
    /// instance publishes.
    async fn restart(&mut self, name: &str) {
        let node = self.nodes.get_mut(name).unwrap();
        node.actor
            .kill_and_wait(Some(Duration::from_secs(5)))
            .await
            .unwrap();
        node.channels = MembershipChannels::new();
        node.args.channels = node.channels.clone();
        let (actor, _) = Actor::spawn(None, Membership, node.args.clone())
            .await
            .unwrap();
        node.actor = actor;
    }

    /// Advance simulated time until `cond` holds (checked every 50 ms).
    async fn until(&self, within: Duration, what: &str, cond: impl Fn(&Sim) -> bool) {
        let deadline = tokio::time::Instant::now() + within;
        while !cond(self) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not within {within:?}: {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Advance simulated time by `span`, checking `invariant` all along.
    async fn always(&self, span: Duration, what: &str, invariant: impl Fn(&Sim) -> bool) {
        let end = tokio::time::Instant::now() + span;
        while tokio::time::Instant::now() < end {
            assert!(invariant(self), "violated: {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn all_up(&self) {
        self.until(
            Duration::from_secs(5),
            "everyone sees everyone Up",
            everyone_up,
        )
        .await;
    }
}

fn everyone_up(sim: &Sim) -> bool {
    sim.nodes.keys().all(|of| {
        sim.nodes
            .keys()
            .all(|about| sim.state(of, about) == Some(MemberState::Up))
    })
}

fn never_down(sim: &Sim, about: &str) -> bool {
    sim.nodes
        .keys()
        .all(|of| sim.state(of, about) != Some(MemberState::Down))
}

#[tokio::test(start_paused = true)]
async fn a_member_one_node_cannot_reach_is_not_declared_down() {
    let sim = Sim::start(&["a", "b", "c"]).await;
    sim.all_up().await;
    sim.cut("a", "b").await;
    sim.always(
        Duration::from_secs(20),
        "b never Down while c reaches it",
        |sim| never_down(sim, "b") && never_down(sim, "a"),
    )
    .await;
    assert_eq!(sim.state("a", "b"), Some(MemberState::Up));
}

#[tokio::test(start_paused = true)]
async fn a_dead_member_is_declared_down_by_everyone() {
    let mut sim = Sim::start(&["a", "b", "c"]).await;
    sim.all_up().await;
    sim.kill("b");
    let started = tokio::time::Instant::now();
    sim.until(Duration::from_secs(5), "a and c see b Down", |sim| {
        sim.state("a", "b") == Some(MemberState::Down)
            && sim.state("c", "b") == Some(MemberState::Down)
    })
    .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(500),
        "too fast to be real: {took:?}"
    );
    // And it stays Down; the survivors stay Up for each other.
    sim.always(Duration::from_secs(5), "survivors stay Up", |sim| {
        sim.state("a", "c") == Some(MemberState::Up)
            && sim.state("a", "b") == Some(MemberState::Down)
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_isolated_node_accuses_nobody_and_refutes_after_healing() {
    let sim = Sim::start(&["a", "b", "c"]).await;
    sim.all_up().await;
    sim.cut("a", "b").await;
    sim.cut("a", "c").await;
    sim.until(Duration::from_secs(10), "b and c declare a Down", |sim| {
        sim.state("b", "a") == Some(MemberState::Down)
            && sim.state("c", "a") == Some(MemberState::Down)
    })
    .await;
    sim.always(
        Duration::from_secs(5),
        "a, cut off, declares nobody Down",
        |sim| {
            sim.state("a", "b") != Some(MemberState::Down)
                && sim.state("a", "c") != Some(MemberState::Down)
        },
    )
    .await;
    assert!(sim.view("a").isolated);
    sim.heal("a", "b").await;
    sim.heal("a", "c").await;
    sim.all_up().await;
    let a = sim.view("b").member("a").cloned().unwrap();
    assert!(a.incarnation >= 1, "a came back by refuting: {a:?}");
}

/// A restarted gossip instance keeps its member key, so peers already hold
/// a heartbeat for it. Below that heartbeat they would ignore it and keep it
/// Joining; a peer whose own membership restarted meanwhile relearns the old
/// heartbeat from third parties and is stuck the longest.
#[tokio::test(start_paused = true)]
async fn restarted_membership_actors_are_seen_up_again_quickly() {
    let mut sim = Sim::start(&["a", "b", "c"]).await;
    sim.all_up().await;
    // Run long enough that heartbeats are far above a fresh instance's.
    sim.always(Duration::from_secs(120), "everyone stays Up", everyone_up)
        .await;
    sim.restart("b").await;
    sim.restart("a").await;
    let restarted = tokio::time::Instant::now();
    sim.until(
        Duration::from_secs(2),
        "everyone sees everyone Up",
        everyone_up,
    )
    .await;
    let took = restarted.elapsed();
    sim.always(Duration::from_secs(10), "everyone stays Up", everyone_up)
        .await;
    eprintln!("Up everywhere {took:?} after the restarts");
}
