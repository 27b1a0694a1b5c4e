//! What some scenarios need from the host beyond processes and signals,
//! and the check that it is there: root; a network namespace of the run's
//! own (`unshare --net`), so that its nftables rules touch nothing else;
//! nftables (installed from Debian's packages when missing); a tmpfs for
//! a data dir that can be filled. Clock skew lives in [`crate::clock`].
//!
//! Partitions. All nodes share the namespace's loopback, and a node's
//! outgoing connections leave from 127.0.0.1 whatever address it listens
//! on, so a source address cannot tell nodes apart. Each node therefore
//! runs under a uid of its own, and a partition drops what a node's
//! sockets send to another node's address (`meta skuid`), both ways. The
//! harness (root) still reaches every node.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};

use anyhow::{bail, Context};

/// Set in the environment of the harness re-executed inside its own
/// network namespace.
pub const IN_NETNS_ENV: &str = "HYPHA_CHAOS_IN_NETNS";

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
    for program in ["unshare", "ip"] {
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

/// Run this same command again inside a new network namespace; its exit
/// status.
pub fn reexec_in_netns() -> anyhow::Result<ExitStatus> {
    let exe = std::env::current_exe().context("locating the harness")?;
    Command::new("unshare")
        .args(["--net", "--"])
        .arg(exe)
        .args(std::env::args_os().skip(1))
        .env(IN_NETNS_ENV, "1")
        .status()
        .context("unshare --net")
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

/// Partition rules over the nodes of a run.
pub struct Partitions {
    addrs: Vec<Ipv4Addr>,
}

impl Partitions {
    /// Create the run's (empty) rule chain.
    pub fn new(addrs: Vec<Ipv4Addr>) -> anyhow::Result<Self> {
        run("nft", &["add", "table", "inet", TABLE])?;
        run(
            "nft",
            &[
                "add",
                "chain",
                "inet",
                TABLE,
                "out",
                "{ type filter hook output priority 0 ; policy accept ; }",
            ],
        )?;
        Ok(Self { addrs })
    }

    /// Cut `node` off from every other node, both ways.
    pub fn isolate(&self, node: usize) -> anyhow::Result<()> {
        let (me, mine, uids, addrs) = self.sides(node);
        let from_me = format!("meta skuid {me} ip daddr {{ {addrs} }} drop");
        let to_me = format!("ip daddr {mine} meta skuid {{ {uids} }} drop");
        self.add(&[from_me, to_me])
    }

    /// Drop `percent`% of what passes between `node` and every other
    /// node, at random per packet, both ways.
    pub fn lossy(&self, node: usize, percent: u8) -> anyhow::Result<()> {
        let (me, mine, uids, addrs) = self.sides(node);
        let drop = format!("numgen random mod 100 < {} drop", percent.min(99));
        let from_me = format!("meta skuid {me} ip daddr {{ {addrs} }} {drop}");
        let to_me = format!("ip daddr {mine} meta skuid {{ {uids} }} {drop}");
        self.add(&[from_me, to_me])
    }

    /// The node's uid and address, and the others' uids and addresses,
    /// as nftables set elements.
    fn sides(&self, node: usize) -> (String, String, String, String) {
        let others: Vec<usize> = (0..self.addrs.len()).filter(|i| *i != node).collect();
        let addrs: Vec<String> = others.iter().map(|i| self.addrs[*i].to_string()).collect();
        let uids: Vec<String> = others.iter().map(|i| uid(*i).to_string()).collect();
        (
            uid(node).to_string(),
            self.addrs[node].to_string(),
            uids.join(", "),
            addrs.join(", "),
        )
    }

    fn add(&self, rules: &[String]) -> anyhow::Result<()> {
        for rule in rules {
            let mut args = vec!["add", "rule", "inet", TABLE, "out"];
            args.extend(rule.split(' '));
            run("nft", &args)?;
        }
        Ok(())
    }

    /// Remove every partition and packet loss.
    pub fn heal(&self) -> anyhow::Result<()> {
        run("nft", &["flush", "chain", "inet", TABLE, "out"])
    }
}

/// The uid node `i` runs under in a namespace.
pub fn uid(node: usize) -> u32 {
    NODE_UID_BASE + u32::try_from(node).unwrap_or(0)
}
