//! What some scenarios need from the host beyond processes and signals,
//! and the check that it is there: root; a network namespace of the run's
//! own (a thread moved into a new one, [`spawn_in_own_netns`]), so that
//! its nftables rules touch nothing else;
//! nftables (installed from Debian's packages when missing); a tmpfs for
//! a data dir that can be filled. Clock skew lives in [`crate::clock`].
//!
//! Partitions. All nodes share the namespace's loopback, and a node's
//! outgoing connections leave from 127.0.0.1 whatever address it listens
//! on, so a source address cannot tell nodes apart. Each node therefore
//! runs under a uid of its own, and every partition shape is a set of
//! directed [`Cut`]s: "what node F's sockets send toward node T is
//! dropped". The harness (root) still reaches every node.
//!
//! One direction of a cut takes two rules, because F's packets toward T
//! travel on two kinds of connection:
//! - on F's own sockets bound to its address (gossip UDP: F's gossip
//!   socket to T's gossip port) and on TCP connections F opened, they are
//!   addressed to T's address: `meta skuid F ip daddr T drop`;
//! - on a TCP connection T opened, F's replies (data, ACKs, the SYN-ACK)
//!   go to T's *source* address, 127.0.0.1, which every node shares. A
//!   rule on the address alone would let F talk to T freely over every
//!   connection T opened (a node link carries messages both ways), so the
//!   cut would not be one-way but no cut at all, depending on who dialled.
//!   A `stamp` chain therefore marks every connection with the node that
//!   opened it (`ct direction original meta skuid X ct mark set X+1`,
//!   on every original-direction packet, so connections opened before
//!   the first fault are stamped too), and the second rule drops F's
//!   reply-direction packets on connections T opened:
//!   `meta skuid F ct direction reply ct mark T+1 drop`.
//!
//! So `cut(a, b)` alone is a true one-way loss: nothing a's sockets send
//! reaches b (its gossip, its requests, its answers, its ACKs); everything
//! b sends reaches a (b's gossip, and b's segments on a connection b
//! already holds, though a's ACKs are lost so b retransmits and a new
//! TCP connection between them cannot complete its handshake either way —
//! as on a real network with one-way loss). Both-way shapes (split,
//! bridge, ring, isolate) are cuts in both directions.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context};

/// The nftables table of a run (private to its namespace).
const TABLE: &str = "hypha_chaos";

/// First uid node processes run under in a namespace (node i: +i).
pub const NODE_UID_BASE: u32 = 64_100;

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn run(program: &str, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program}"))?;
    if !out.status.success() {
        bail!(
            "{program} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Install a Debian package, quietly; whether it worked.
pub fn apt_install(package: &str) -> bool {
    Command::new("apt-get")
        .args(["install", "-y", "-q", package])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Why a scenario needing namespaces cannot run here, if it cannot.
/// Installs nftables from Debian's packages when it is missing.
pub fn netns_unavailable() -> Option<String> {
    if !is_root() {
        return Some("network faults need root (namespaces, nftables)".into());
    }
    for program in ["ip"] {
        if !on_path(program) {
            return Some(format!("network faults need `{program}`"));
        }
    }
    if !on_path("nft") && (!apt_install("nftables") || !on_path("nft")) {
        return Some("network faults need nftables (apt-get install nftables failed)".into());
    }
    None
}

/// Why a scenario needing a tmpfs cannot run here, if it cannot.
pub fn tmpfs_unavailable() -> Option<String> {
    (!is_root()).then(|| "a full disk needs root (to mount a tmpfs)".to_owned())
}

/// Run `work` on a thread of its own moved into a new network namespace
/// (loopback up): the library's way into a namespace, for callers (the
/// smoke test, `matrix`) that do not re-exec. Network namespaces belong to
/// threads, and the threads and processes that thread starts inherit
/// it; the rest of this process stays where it is. The answer comes
/// through the receiver.
pub fn spawn_in_own_netns<T: Send + 'static>(
    work: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<anyhow::Result<T>>> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("chaos-netns".into())
        .spawn(move || {
            let result = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)
                .context("unshare(CLONE_NEWNET)")
                .and_then(|()| setup_netns())
                .and_then(|()| work());
            let _ = tx.send(result);
        })
        .context("starting the namespace thread")?;
    Ok(rx)
}

/// Inside the new namespace: bring loopback up.
pub fn setup_netns() -> anyhow::Result<()> {
    run("ip", &["link", "set", "lo", "up"])
}

/// Mount a tmpfs of `size_mb` on `dir`.
pub fn mount_tmpfs(dir: &Path, size_mb: u32) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let dir = dir.to_str().context("tmpfs path is not UTF-8")?;
    run(
        "mount",
        &[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size_mb}m"),
            "tmpfs",
            dir,
        ],
    )
}

/// Unmount what [`mount_tmpfs`] mounted.
pub fn unmount(dir: &Path) {
    if let Some(dir) = dir.to_str() {
        let _ = run("umount", &[dir]);
    }
}

/// A directed cut: what node `from`'s sockets send toward node `to` is
/// dropped (see the module doc for what that takes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cut {
    /// The sender.
    pub from: usize,
    /// The node it can no longer reach.
    pub to: usize,
}

/// Both directions between every two nodes on different sides; nodes in
/// no side keep every link (a bridge is a split of two sides that leaves
/// the bridge node out).
pub fn split_cuts(sides: &[Vec<usize>]) -> Vec<Cut> {
    let mut cuts = Vec::new();
    for (i, a_side) in sides.iter().enumerate() {
        for (j, b_side) in sides.iter().enumerate() {
            if i == j {
                continue;
            }
            for &from in a_side {
                cuts.extend(b_side.iter().map(|&to| Cut { from, to }));
            }
        }
    }
    cuts.sort();
    cuts.dedup();
    cuts
}

/// A ring over `order`: each node reaches only its two neighbours in
/// it (`order[k±1]`, wrapping); every other pair is cut both ways.
pub fn ring_cuts(order: &[usize]) -> Vec<Cut> {
    let n = order.len();
    let mut cuts = Vec::new();
    for (k, &from) in order.iter().enumerate() {
        for (m, &to) in order.iter().enumerate() {
            let apart = k.abs_diff(m);
            if apart != 0 && apart != 1 && apart != n - 1 {
                cuts.push(Cut { from, to });
            }
        }
    }
    cuts.sort();
    cuts
}

/// Every node of `from` loses what it sends to every node of `to`; the
/// other direction passes.
pub fn one_way_cuts(from: &[usize], to: &[usize]) -> Vec<Cut> {
    let mut cuts: Vec<Cut> = from
        .iter()
        .flat_map(|&f| {
            to.iter()
                .filter(move |&&t| t != f)
                .map(move |&t| Cut { from: f, to: t })
        })
        .collect();
    cuts.sort();
    cuts.dedup();
    cuts
}

/// What a rule does to the packets it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// Drop every one.
    Drop,
    /// Drop this share of them (1-99), at random per packet.
    DropPercent(u8),
}

impl Verdict {
    fn as_nft(self) -> String {
        match self {
            Self::Drop => "drop".to_owned(),
            Self::DropPercent(p) => format!("numgen random mod 100 < {} drop", p.clamp(1, 99)),
        }
    }
}

/// Partition rules over the nodes of a run.
pub struct Partitions {
    addrs: Vec<Ipv4Addr>,
}

impl Partitions {
    /// Create the run's (empty) rule chain, and the chain that stamps
    /// every connection with the node that opened it (module doc). Made
    /// before the nodes start, so every connection between them is
    /// stamped from its first packet.
    pub fn new(addrs: Vec<Ipv4Addr>) -> anyhow::Result<Self> {
        run("nft", &["add", "table", "inet", TABLE])?;
        for (chain, priority) in [("stamp", -10), ("out", 0)] {
            let spec =
                format!("{{ type filter hook output priority {priority} ; policy accept ; }}");
            run("nft", &["add", "chain", "inet", TABLE, chain, &spec])?;
        }
        let me = Self { addrs };
        for node in 0..me.addrs.len() {
            let stamp = format!(
                "ct direction original meta skuid {} ct mark set {}",
                uid(node),
                mark(node)
            );
            me.add("stamp", &[stamp])?;
        }
        Ok(me)
    }

    /// Apply `cuts`: each drops what its `from` sends toward its `to`.
    pub fn cut(&self, cuts: &[Cut]) -> anyhow::Result<()> {
        self.apply(cuts, Verdict::Drop)
    }

    /// Cut `node` off from every other node, both ways.
    pub fn isolate(&self, node: usize) -> anyhow::Result<()> {
        self.cut(&split_cuts(&self.alone(node)))
    }

    /// Drop `percent`% of what passes between `node` and every other
    /// node, at random per packet, both ways.
    pub fn lossy(&self, node: usize, percent: u8) -> anyhow::Result<()> {
        self.apply(
            &split_cuts(&self.alone(node)),
            Verdict::DropPercent(percent),
        )
    }

    /// `node` on one side, every other node on the other.
    fn alone(&self, node: usize) -> [Vec<usize>; 2] {
        let rest = (0..self.addrs.len()).filter(|i| *i != node).collect();
        [vec![node], rest]
    }

    /// Two rules per sender (module doc): toward the addresses it is cut
    /// from, and its replies on connections those nodes opened.
    fn apply(&self, cuts: &[Cut], verdict: Verdict) -> anyhow::Result<()> {
        let verdict = verdict.as_nft();
        let mut by_sender: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for c in cuts.iter().filter(|c| c.from != c.to) {
            by_sender.entry(c.from).or_default().push(c.to);
        }
        for (from, tos) in by_sender {
            let addrs: Vec<String> = tos
                .iter()
                .map(|t| self.addr(*t))
                .collect::<Result<_, _>>()?;
            let marks: Vec<String> = tos.iter().map(|t| mark(*t).to_string()).collect();
            let me = uid(from);
            let to_addrs = format!(
                "meta skuid {me} ip daddr {{ {} }} {verdict}",
                addrs.join(", ")
            );
            let replies = format!(
                "meta skuid {me} ct direction reply ct mark {{ {} }} {verdict}",
                marks.join(", ")
            );
            self.add("out", &[to_addrs, replies])?;
        }
        Ok(())
    }

    fn addr(&self, node: usize) -> anyhow::Result<String> {
        self.addrs
            .get(node)
            .map(ToString::to_string)
            .with_context(|| format!("no node {node} to cut"))
    }

    fn add(&self, chain: &str, rules: &[String]) -> anyhow::Result<()> {
        for rule in rules {
            let mut args = vec!["add", "rule", "inet", TABLE, chain];
            args.extend(rule.split(' '));
            run("nft", &args)?;
        }
        Ok(())
    }

    /// Remove every partition and packet loss (the stamps stay).
    pub fn heal(&self) -> anyhow::Result<()> {
        run("nft", &["flush", "chain", "inet", TABLE, "out"])
    }
}

/// The conntrack mark of connections node `i` opened (0 is everyone
/// else's, the harness's included).
fn mark(node: usize) -> u32 {
    u32::try_from(node).unwrap_or(u32::MAX - 1) + 1
}

/// The uid node `i` runs under in a namespace.
pub fn uid(node: usize) -> u32 {
    NODE_UID_BASE + u32::try_from(node).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(n: usize, cuts: &[Cut], from: usize) -> Vec<usize> {
        (0..n)
            .filter(|to| !cuts.contains(&Cut { from, to: *to }))
            .collect()
    }

    #[test]
    fn a_split_cuts_both_ways_across_sides_only() {
        let cuts = split_cuts(&[vec![0, 2], vec![1, 3, 4]]);
        assert_eq!(cuts.len(), 2 * 2 * 3);
        assert_eq!(reach(5, &cuts, 0), [0, 2]);
        assert_eq!(reach(5, &cuts, 3), [1, 3, 4]);
    }

    #[test]
    fn a_bridge_reaches_both_sides_that_cannot_reach_each_other() {
        let cuts = split_cuts(&[vec![0, 1], vec![3, 4]]);
        assert_eq!(reach(5, &cuts, 2), [0, 1, 2, 3, 4]);
        assert_eq!(reach(5, &cuts, 0), [0, 1, 2]);
        assert_eq!(reach(5, &cuts, 4), [2, 3, 4]);
    }

    #[test]
    fn a_ring_of_five_gives_every_node_a_different_majority() {
        let order = [3, 0, 4, 1, 2];
        let cuts = ring_cuts(&order);
        let mut views: Vec<Vec<usize>> = (0..5).map(|i| reach(5, &cuts, i)).collect();
        for (k, &node) in order.iter().enumerate() {
            let mut want = vec![order[(k + 4) % 5], node, order[(k + 1) % 5]];
            want.sort();
            assert_eq!(views[node], want, "n{node}");
        }
        views.sort();
        views.dedup();
        assert_eq!(views.len(), 5, "two nodes see the same majority");
        for c in &cuts {
            assert!(
                cuts.contains(&Cut {
                    from: c.to,
                    to: c.from
                }),
                "{c:?} one way"
            );
        }
    }

    #[test]
    fn one_way_cuts_only_the_named_direction() {
        let cuts = one_way_cuts(&[1], &[0, 1, 2, 3, 4]);
        assert_eq!(reach(5, &cuts, 1), [1]);
        for other in [0, 2, 3, 4] {
            assert_eq!(reach(5, &cuts, other), [0, 1, 2, 3, 4]);
        }
    }
}
