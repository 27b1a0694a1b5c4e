//! The named scenarios and the fault schedule each derives from a seed.
//! Pure: the same (scenario, nodes, duration, seed) always gives the same
//! schedule, which is what makes a failing run replayable. Times are
//! milliseconds from the start of the fault window.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// One fault action, applied at a point of the schedule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Fault {
    /// SIGKILL the node's process.
    Kill {
        /// Node index.
        node: usize,
    },
    /// Start a killed node again on its data dir.
    Start {
        /// Node index.
        node: usize,
    },
    /// SIGSTOP the node's process.
    Freeze {
        /// Node index.
        node: usize,
    },
    /// SIGCONT a frozen node.
    Thaw {
        /// Node index.
        node: usize,
    },
    /// SIGTERM, wait for the exit, start again (a graceful restart).
    Restart {
        /// Node index.
        node: usize,
    },
    /// Make the `pick`-th actor of the node's live tree (modulo its
    /// size, in path order) fail through the admin chaos endpoint.
    ActorKill {
        /// Node index.
        node: usize,
        /// Which actor, before the modulo.
        pick: u64,
        /// How it fails.
        mode: ActorKillMode,
    },
    /// Drop every packet between the node and the other nodes.
    Isolate {
        /// Node index.
        node: usize,
    },
    /// Drop `percent`% of the packets between the node and the other
    /// nodes, chosen at random per packet, both ways.
    Lossy {
        /// Node index.
        node: usize,
        /// Share of packets dropped, 1-99.
        percent: u8,
    },
    /// Cut every link between nodes on different sides, both ways.
    Split {
        /// Node indices per side; the first is the largest.
        sides: Vec<Vec<usize>>,
    },
    /// Two sides that cannot reach each other, and a bridge node in
    /// neither side that reaches both.
    Bridge {
        /// One side.
        left: Vec<usize>,
        /// The other side.
        right: Vec<usize>,
        /// The node that reaches both.
        bridge: usize,
    },
    /// Each node reaches only its two neighbours in `order` (wrapping):
    /// with 5 nodes each sees a majority of 3, a different one each.
    Ring {
        /// The ring, a permutation of the nodes.
        order: Vec<usize>,
    },
    /// What the `from` nodes send to the `to` nodes is dropped; what the
    /// `to` nodes send to the `from` nodes arrives.
    OneWay {
        /// Senders cut off.
        from: Vec<usize>,
        /// The nodes they cannot reach.
        to: Vec<usize>,
    },
    /// Remove every partition and packet loss.
    Heal,
    /// Fill the node's (small, tmpfs) data dir to the last byte.
    FillDisk {
        /// Node index.
        node: usize,
    },
    /// Delete the filler.
    FreeDisk {
        /// Node index.
        node: usize,
    },
    /// Move the node's wall clock (not its monotonic clock) by
    /// `offset_s` seconds from true time.
    Skew {
        /// Node index.
        node: usize,
        /// Seconds ahead (positive) or behind (negative).
        offset_s: i64,
    },
    /// Put the node's wall clock back on true time.
    Unskew {
        /// Node index.
        node: usize,
    },
    /// SIGKILL the node, flip `flips` bits of its store files at offsets
    /// drawn from `seed`, start it; if it exits with the damaged-store
    /// status, run the documented recovery and start it again; then wait
    /// until it has caught up ([`crate::bitrot`]). Closes itself.
    BitRot {
        /// Node index.
        node: usize,
        /// Bits flipped.
        flips: u32,
        /// Seed of the offsets.
        seed: u64,
    },
    /// Run `hypha cluster restart --rolling` against the cluster and wait
    /// until it ends: every node leaves, restarts in place and catches up,
    /// one at a time (docs/operations.md). Closes itself.
    RollingRestart,
}

impl Fault {
    /// The fault that ends this one, if it lasts until then (`None`: it
    /// is instantaneous, or itself ends others).
    pub fn closed_by(&self) -> Option<Fault> {
        match self {
            Self::Kill { node } => Some(Self::Start { node: *node }),
            Self::Freeze { node } => Some(Self::Thaw { node: *node }),
            Self::FillDisk { node } => Some(Self::FreeDisk { node: *node }),
            Self::Skew { node, .. } => Some(Self::Unskew { node: *node }),
            Self::Isolate { .. }
            | Self::Lossy { .. }
            | Self::Split { .. }
            | Self::Bridge { .. }
            | Self::Ring { .. }
            | Self::OneWay { .. } => Some(Self::Heal),
            Self::Start { .. }
            | Self::Thaw { .. }
            | Self::Restart { .. }
            | Self::ActorKill { .. }
            | Self::Heal
            | Self::FreeDisk { .. }
            | Self::Unskew { .. }
            // Kill, rot and start again in one step: over when it returns.
            | Self::BitRot { .. }
            | Self::RollingRestart => None,
        }
    }
}

/// How an actor is made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKillMode {
    /// Panic inside a handler.
    Panic,
    /// Kill the actor.
    Kill,
}

impl ActorKillMode {
    /// The `mode` query value of the chaos endpoint.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Panic => "panic",
            Self::Kill => "kill",
        }
    }
}

/// A fault at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Milliseconds after the fault window opens.
    pub at_ms: u64,
    /// What happens.
    pub fault: Fault,
}

/// What a scenario needs from the machine beyond processes and signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Signals only.
    Processes,
    /// Network namespaces, veth and nftables (root).
    Netns,
    /// A tmpfs mount for one node's data dir (root).
    Tmpfs,
    /// libfaketime, preloaded into every node.
    Faketime,
}

/// How much of the workload is jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobLoad {
    /// A trickle of jobs beside the file operations.
    Light,
    /// Jobs long enough to be running when their worker dies.
    Heavy,
}

/// A named scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scenario {
    /// Name on the command line.
    pub name: &'static str,
    /// One line for `list` and the docs.
    pub summary: &'static str,
    /// What it needs.
    pub needs: Needs,
    /// The jobs mix.
    pub jobs: JobLoad,
    /// Fewest nodes it makes sense with.
    pub min_nodes: usize,
}

/// Every scenario, in the order the docs list them.
pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "kill-one-repeatedly",
        summary: "every ~4 s SIGKILL a random node, start it again 1-2 s later",
        needs: Needs::Processes,
        jobs: JobLoad::Light,
        min_nodes: 3,
    },
    Scenario {
        name: "kill-two-at-once",
        summary: "every ~8 s SIGKILL two random nodes together, start both 2-3 s later",
        needs: Needs::Processes,
        jobs: JobLoad::Light,
        min_nodes: 5,
    },
    Scenario {
        name: "isolate-one",
        summary: "every ~8 s cut a random node off from the others for 3-5 s",
        needs: Needs::Netns,
        jobs: JobLoad::Light,
        min_nodes: 3,
    },
    Scenario {
        name: "freeze-one",
        summary: "every ~5 s SIGSTOP a random node for 1-4 s, then SIGCONT",
        needs: Needs::Processes,
        jobs: JobLoad::Light,
        min_nodes: 3,
    },
    Scenario {
        name: "rolling-restart",
        summary: "gracefully restart every node in turn, one every ~4 s",
        needs: Needs::Processes,
        jobs: JobLoad::Light,
        min_nodes: 3,
    },
    Scenario {
        name: "actor-kill-storm",
        summary: "every 0.5-1.5 s make a random actor of a random node panic or die",
        needs: Needs::Processes,
        jobs: JobLoad::Light,
        min_nodes: 3,
    },
    Scenario {
        name: "disk-full",
        summary: "fill one node's data dir (a small tmpfs) for 4-6 s, every ~9 s",
        needs: Needs::Tmpfs,
        jobs: JobLoad::Light,
        min_nodes: 3,
    },
    Scenario {
        name: "lossy-network",
        summary:
            "every ~8 s a random node loses 10-40% of its packets to and from the others for 3-6 s",
        needs: Needs::Netns,
        jobs: JobLoad::Light,
        min_nodes: 3,
    },
    Scenario {
        name: "clock-skew",
        summary: "every ~6 s set a random node's wall clock 5-60 s ahead or behind for 3-8 s",
        needs: Needs::Faketime,
        jobs: JobLoad::Light,
        min_nodes: 3,
    },
    Scenario {
        name: "partition-halves",
        summary: "a random majority|minority split (2|3 with 5 nodes) for 9-15 s, healed, 1-3 s later another",
        needs: Needs::Netns,
        jobs: JobLoad::Light,
        min_nodes: 3,
    },
    Scenario {
        name: "partition-bridge",
        summary: "two random sides cut apart for 9-15 s, one bridge node reaching both; healed, then again",
        needs: Needs::Netns,
        jobs: JobLoad::Light,
        min_nodes: 3,
    },
    Scenario {
        name: "partition-ring",
        summary: "nodes in a random ring, each reaching only its two neighbours, for 9-15 s; healed, then again",
        needs: Needs::Netns,
        jobs: JobLoad::Light,
        min_nodes: 4,
    },
    Scenario {
        name: "partition-oneway",
        summary: "a random minority loses what it sends to the rest, or hears nothing from it, for 9-15 s; healed, then again",
        needs: Needs::Netns,
        jobs: JobLoad::Light,
        min_nodes: 3,
    },
    Scenario {
        name: "bit-rot",
        summary: "every ~10 s (after the last one caught up) SIGKILL a random node, flip 1-128 bits of its store files, start it; quarantine the store if it exits damaged",
        needs: Needs::Processes,
        jobs: JobLoad::Light,
        min_nodes: 3,
    },
    Scenario {
        name: "worker-kill",
        summary: "jobs of 0.2-0.6 s run while a random node is SIGKILLed every ~4 s",
        needs: Needs::Processes,
        jobs: JobLoad::Heavy,
        min_nodes: 3,
    },
    Scenario {
        name: "rolling-restart-cli",
        summary: "`hypha cluster restart --rolling`: every node leaves, restarts in place and catches up, one at a time, while the workload runs",
        needs: Needs::Processes,
        jobs: JobLoad::Light,
        min_nodes: 3,
    },
];

/// The scenario called `name`.
pub fn by_name(name: &str) -> Option<Scenario> {
    SCENARIOS.iter().copied().find(|s| s.name == name)
}

/// The node whose data dir is a tmpfs in `disk-full` (chosen by seed).
pub fn disk_victim(nodes: usize, seed: u64) -> usize {
    (ChaCha8Rng::seed_from_u64(seed ^ 0xD15C).random::<u64>() % nodes.max(1) as u64) as usize
}

/// Shortest partition of the `partition-*` scenarios: longer than the
/// nodes' failure detection plus their Down grace (5 s in the harness's
/// node config), so the majority moves the partitions the minority holds
/// — the case issue 25 found. A 12 s window (the CI smoke set) still fits
/// one.
pub const PARTITION_MIN_MS: u64 = 9_000;

/// Longest partition of the `partition-*` scenarios.
pub const PARTITION_MAX_MS: u64 = 15_000;

/// The fault schedule of `scenario` over `duration_ms` on `nodes` nodes.
/// Every fault it opens (kill, freeze, isolate, fill) is closed inside
/// the window, so the cluster is whole again when it ends.
pub fn schedule(scenario: &Scenario, nodes: usize, duration_ms: u64, seed: u64) -> Vec<Step> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut steps = Vec::new();
    let mut t = 0u64;
    let fits = |t: u64, len: u64| t + len < duration_ms;
    match scenario.name {
        "kill-one-repeatedly" | "worker-kill" => {
            while let Some(next) = jittered(&mut rng, t, 4_000, duration_ms) {
                let (node, down) = (rng.random_range(0..nodes), rng.random_range(1_000..2_000));
                if !fits(next, down) {
                    break;
                }
                steps.push(step(next, Fault::Kill { node }));
                steps.push(step(next + down, Fault::Start { node }));
                t = next + down;
            }
        }
        "kill-two-at-once" => {
            while let Some(next) = jittered(&mut rng, t, 8_000, duration_ms) {
                let a = rng.random_range(0..nodes);
                let b = (a + rng.random_range(1..nodes)) % nodes;
                let down = rng.random_range(2_000..3_000);
                if !fits(next, down) {
                    break;
                }
                for node in [a, b] {
                    steps.push(step(next, Fault::Kill { node }));
                }
                for node in [a, b] {
                    steps.push(step(next + down, Fault::Start { node }));
                }
                t = next + down;
            }
        }
        "isolate-one" => {
            while let Some(next) = jittered(&mut rng, t, 8_000, duration_ms) {
                let (node, len) = (rng.random_range(0..nodes), rng.random_range(3_000..5_000));
                if !fits(next, len) {
                    break;
                }
                steps.push(step(next, Fault::Isolate { node }));
                steps.push(step(next + len, Fault::Heal));
                t = next + len;
            }
        }
        "freeze-one" => {
            while let Some(next) = jittered(&mut rng, t, 5_000, duration_ms) {
                let (node, len) = (rng.random_range(0..nodes), rng.random_range(1_000..4_000));
                if !fits(next, len) {
                    break;
                }
                steps.push(step(next, Fault::Freeze { node }));
                steps.push(step(next + len, Fault::Thaw { node }));
                t = next + len;
            }
        }
        "rolling-restart" => {
            let mut node = rng.random_range(0..nodes);
            while let Some(next) = jittered(&mut rng, t, 4_000, duration_ms) {
                steps.push(step(next, Fault::Restart { node }));
                node = (node + 1) % nodes;
                t = next;
            }
        }
        "actor-kill-storm" => {
            // Paced below the supervisors' restart intensity (5 in 10 s): a
            // storm faster than that escalates to a node exit by design.
            while let Some(next) = jittered(&mut rng, t, 1_000, duration_ms) {
                let mode = if rng.random_bool(0.5) {
                    ActorKillMode::Panic
                } else {
                    ActorKillMode::Kill
                };
                let (node, pick) = (rng.random_range(0..nodes), rng.random::<u64>());
                steps.push(step(next, Fault::ActorKill { node, pick, mode }));
                t = next;
            }
        }
        "disk-full" => {
            let node = disk_victim(nodes, seed);
            while let Some(next) = jittered(&mut rng, t, 9_000, duration_ms) {
                let len = rng.random_range(4_000..6_000);
                if !fits(next, len) {
                    break;
                }
                steps.push(step(next, Fault::FillDisk { node }));
                steps.push(step(next + len, Fault::FreeDisk { node }));
                t = next + len;
            }
        }
        "lossy-network" => {
            while let Some(next) = jittered(&mut rng, t, 8_000, duration_ms) {
                let (node, len) = (rng.random_range(0..nodes), rng.random_range(3_000..6_000));
                let percent = rng.random_range(10..=40);
                if !fits(next, len) {
                    break;
                }
                steps.push(step(next, Fault::Lossy { node, percent }));
                steps.push(step(next + len, Fault::Heal));
                t = next + len;
            }
        }
        "clock-skew" => {
            while let Some(next) = jittered(&mut rng, t, 6_000, duration_ms) {
                let (node, len) = (rng.random_range(0..nodes), rng.random_range(3_000..8_000));
                let magnitude_s: i64 = rng.random_range(5..=60);
                let offset_s = if rng.random_bool(0.5) {
                    magnitude_s
                } else {
                    -magnitude_s
                };
                if !fits(next, len) {
                    break;
                }
                steps.push(step(next, Fault::Skew { node, offset_s }));
                steps.push(step(next + len, Fault::Unskew { node }));
                t = next + len;
            }
        }
        "partition-halves" | "partition-bridge" | "partition-ring" | "partition-oneway"
            if nodes < 3 => {}
        "partition-halves" => partitions(&mut rng, duration_ms, &mut steps, |rng| {
            let mut all = shuffled(rng, nodes);
            let minority = all.split_off(nodes - (nodes - 1) / 2);
            Fault::Split {
                sides: vec![all, minority],
            }
        }),
        "partition-bridge" => partitions(&mut rng, duration_ms, &mut steps, |rng| {
            let mut all = shuffled(rng, nodes);
            let bridge = all.remove(0);
            let right = all.split_off((nodes - 1) / 2);
            Fault::Bridge {
                left: all,
                right,
                bridge,
            }
        }),
        "partition-ring" => partitions(&mut rng, duration_ms, &mut steps, |rng| Fault::Ring {
            order: shuffled(rng, nodes),
        }),
        "partition-oneway" => partitions(&mut rng, duration_ms, &mut steps, |rng| {
            let mut rest = shuffled(rng, nodes);
            let group = rest.split_off(nodes - rng.random_range(1..=(nodes - 1) / 2));
            let (from, to) = if rng.random_bool(0.5) {
                (group, rest)
            } else {
                (rest, group)
            };
            Fault::OneWay { from, to }
        }),
        "rolling-restart-cli" => {
            // One orchestrated pass; it takes what it takes (the nemesis
            // waits for it, the window stretches); it starts at a seeded moment in the first seconds.
            steps.push(step(
                t + rng.random_range(500..2_500),
                Fault::RollingRestart,
            ));
        }
        "bit-rot" => {
            // One node at a time: the nemesis waits for each to catch up
            // before the next, so two replicas never rot together.
            while let Some(next) = jittered(&mut rng, t, 10_000, duration_ms) {
                let node = rng.random_range(0..nodes);
                let flips = BIT_ROT_FLIPS[rng.random_range(0..BIT_ROT_FLIPS.len())];
                steps.push(step(
                    next,
                    Fault::BitRot {
                        node,
                        flips,
                        seed: rng.random(),
                    },
                ));
                t = next;
            }
        }
        _ => {}
    }
    steps
}

/// One partition shape after another, each held 9-15 s (less only to
/// fit the window, never under [`PARTITION_MIN_MS`]) and healed before
/// the next, 1-3 s apart; the first starts within 0.5-1.5 s.
fn partitions(
    rng: &mut ChaCha8Rng,
    duration_ms: u64,
    steps: &mut Vec<Step>,
    mut shape: impl FnMut(&mut ChaCha8Rng) -> Fault,
) {
    // The heal lands this far before the window closes.
    const MARGIN_MS: u64 = 500;
    let mut t = 0u64;
    let mut gap_ms = 500..1_500;
    loop {
        let next = t + rng.random_range(gap_ms.clone());
        let room = duration_ms.saturating_sub(next + MARGIN_MS);
        if room < PARTITION_MIN_MS {
            break;
        }
        let len = rng.random_range(PARTITION_MIN_MS..=PARTITION_MAX_MS.min(room));
        steps.push(step(next, shape(rng)));
        steps.push(step(next + len, Fault::Heal));
        t = next + len;
        gap_ms = 1_000..3_000;
    }
}

/// The nodes `0..nodes` in a random order.
fn shuffled(rng: &mut ChaCha8Rng, nodes: usize) -> Vec<usize> {
    use rand::seq::SliceRandom;
    let mut all: Vec<usize> = (0..nodes).collect();
    all.shuffle(rng);
    all
}

/// How many bits a bit-rot fault flips, drawn per fault: one flip mostly
/// makes sled drop the tail of its log silently, many mostly make its
/// recovery panic or report corruption (docs/chaos.md).
const BIT_ROT_FLIPS: [u32; 4] = [1, 8, 32, 128];

fn step(at_ms: u64, fault: Fault) -> Step {
    Step { at_ms, fault }
}

/// `after` plus a mean gap of `mean_ms` jittered ±50%, if still inside
/// the window.
fn jittered(rng: &mut ChaCha8Rng, after: u64, mean_ms: u64, duration_ms: u64) -> Option<u64> {
    let gap = rng.random_range(mean_ms / 2..=mean_ms + mean_ms / 2);
    let at = after + gap;
    (at < duration_ms).then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_always_gives_the_same_schedule() {
        for s in SCENARIOS {
            let a = schedule(s, 5, 60_000, 42);
            assert_eq!(a, schedule(s, 5, 60_000, 42), "{}", s.name);
            assert!(!a.is_empty(), "{} schedules nothing in 60 s", s.name);
            assert_ne!(a, schedule(s, 5, 60_000, 43), "{}: seed ignored", s.name);
        }
    }

    #[test]
    fn every_opened_fault_is_closed_inside_the_window() {
        for s in SCENARIOS {
            for seed in 0..50 {
                let steps = schedule(s, 5, 30_000, seed);
                let mut open: Vec<Fault> = Vec::new();
                for st in &steps {
                    assert!(st.at_ms < 30_000, "{}: step past the window", s.name);
                    match &st.fault {
                        Fault::Kill { node } => open.push(Fault::Start { node: *node }),
                        Fault::Freeze { node } => open.push(Fault::Thaw { node: *node }),
                        Fault::Isolate { .. }
                        | Fault::Lossy { .. }
                        | Fault::Split { .. }
                        | Fault::Bridge { .. }
                        | Fault::Ring { .. }
                        | Fault::OneWay { .. } => open.push(Fault::Heal),
                        Fault::Skew { node, .. } => open.push(Fault::Unskew { node: *node }),
                        Fault::FillDisk { node } => open.push(Fault::FreeDisk { node: *node }),
                        closing @ (Fault::Start { .. }
                        | Fault::Thaw { .. }
                        | Fault::Heal
                        | Fault::FreeDisk { .. }
                        | Fault::Unskew { .. }) => {
                            let i = open.iter().position(|f| f == closing);
                            assert!(i.is_some(), "{}: {closing:?} closes nothing", s.name);
                            if let Some(i) = i {
                                open.remove(i);
                            }
                        }
                        Fault::Restart { .. }
                        | Fault::ActorKill { .. }
                        | Fault::BitRot { .. }
                        | Fault::RollingRestart => {}
                    }
                }
                assert!(
                    open.is_empty(),
                    "{} seed {seed}: left open {open:?}",
                    s.name
                );
            }
        }
    }

    fn partition_scenarios() -> Vec<Scenario> {
        SCENARIOS
            .iter()
            .copied()
            .filter(|s| s.name.starts_with("partition-"))
            .collect()
    }

    /// Every node exactly once across `groups`.
    fn covers(groups: &[&[usize]], nodes: usize) -> bool {
        let mut all: Vec<usize> = groups.iter().flat_map(|g| g.iter().copied()).collect();
        all.sort();
        all == (0..nodes).collect::<Vec<_>>()
    }

    #[test]
    fn partitions_outlast_the_down_grace_and_heal_before_the_next() {
        assert_eq!(partition_scenarios().len(), 4);
        for s in partition_scenarios() {
            for seed in 0..50 {
                let steps = schedule(&s, 5, 60_000, seed);
                assert!(steps.len() >= 6, "{} seed {seed}: {steps:?}", s.name);
                for pair in steps.chunks(2) {
                    assert_eq!(pair[1].fault, Fault::Heal, "{}", s.name);
                    let held = pair[1].at_ms - pair[0].at_ms;
                    assert!(
                        (PARTITION_MIN_MS..=PARTITION_MAX_MS).contains(&held),
                        "{} seed {seed}: held {held} ms",
                        s.name
                    );
                }
                for gap in steps.windows(2) {
                    assert!(gap[0].at_ms < gap[1].at_ms, "{}: overlap", s.name);
                }
            }
        }
    }

    #[test]
    fn a_twelve_second_window_holds_one_partition_of_each_shape() {
        for s in partition_scenarios() {
            for seed in 0..50 {
                let steps = schedule(&s, 5, 12_000, seed);
                assert_eq!(steps.len(), 2, "{} seed {seed}: {steps:?}", s.name);
            }
        }
    }

    #[test]
    fn partition_shapes_are_what_their_names_say() {
        for s in partition_scenarios() {
            for seed in 0..50 {
                for st in schedule(&s, 5, 60_000, seed) {
                    match &st.fault {
                        Fault::Split { sides } => {
                            assert_eq!((sides[0].len(), sides[1].len()), (3, 2));
                            assert!(covers(&[&sides[0], &sides[1]], 5));
                        }
                        Fault::Bridge {
                            left,
                            right,
                            bridge,
                        } => {
                            assert_eq!((left.len(), right.len()), (2, 2));
                            assert!(covers(&[left, right, &[*bridge]], 5));
                        }
                        Fault::Ring { order } => assert!(covers(&[order], 5)),
                        Fault::OneWay { from, to } => {
                            assert!(covers(&[from, to], 5));
                            assert!(from.len().min(to.len()) >= 1);
                            assert!(from.len().min(to.len()) <= 2);
                        }
                        Fault::Heal => {}
                        other => panic!("{}: unexpected {other:?}", s.name),
                    }
                }
            }
        }
    }

    #[test]
    fn two_at_once_kills_two_distinct_nodes() {
        let s = by_name("kill-two-at-once").map(|s| schedule(&s, 5, 60_000, 7));
        let steps = s.unwrap_or_default();
        for pair in steps.chunks(4) {
            assert_eq!(pair[0].at_ms, pair[1].at_ms);
            assert_ne!(pair[0].fault, pair[1].fault);
        }
    }
}
