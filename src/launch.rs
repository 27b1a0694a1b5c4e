//! The launch plan of one `hypha node` child process: its data directory,
//! name, five listen addresses, seeds, link security, configuration file
//! and shared secrets, turned into one command line.
//!
//! Every launcher of node processes builds its command here: `hypha
//! cluster up`, the test kit (`tests/kit`, used by the tests and benches)
//! and the chaos harness. They differ only in where the ports come from and
//! in what they do with the process's output, so a new node flag is added
//! to them all in one place.

use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The addresses a node listens on, as `host:port` strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// The admin API (`--http-listen`).
    pub http: String,
    /// Node links (`--cluster-listen`).
    pub cluster: String,
    /// Gossip, UDP (`--gossip-listen`).
    pub gossip: String,
    /// Bulk transfers (`--bulk-listen`).
    pub bulk: String,
    /// The S3 endpoint (`--s3-listen`).
    pub s3: String,
}

/// Where a port plan puts a node's four ports relative to its first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// The admin API's port; links, gossip, bulk and S3 take the next four.
    pub first: u16,
}

/// A port plan gave a port past 65535.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("port out of range: lower --base-port or --nodes")]
pub struct PortOutOfRange;

impl Ports {
    /// Node `i` of a cluster whose node 0 serves HTTP on `base`: node `i`
    /// takes `base + 10 i` and the four after it (`hypha cluster up`).
    pub fn numbered(base: u16, i: u16) -> Result<Self, PortOutOfRange> {
        let first = i
            .checked_mul(10)
            .and_then(|p| base.checked_add(p))
            .ok_or(PortOutOfRange)?;
        first.checked_add(4).ok_or(PortOutOfRange)?;
        Ok(Self { first })
    }

    /// The gossip port (the one seeds name).
    pub fn gossip(self) -> u16 {
        self.first + 2
    }
}

impl Listen {
    /// Every address on 127.0.0.1 with port 0: the kernel picks free
    /// ports, and the node prints the admin URL it got.
    pub fn loopback_any() -> Self {
        Self::at(IpAddr::V4(Ipv4Addr::LOCALHOST), None)
    }

    /// The four ports of `ports` on `ip`.
    pub fn on(ip: IpAddr, ports: Ports) -> Self {
        Self::at(ip, Some(ports))
    }

    fn at(ip: IpAddr, ports: Option<Ports>) -> Self {
        let addr = |offset: u16| format!("{ip}:{}", ports.map_or(0, |p| p.first + offset));
        Self {
            http: addr(0),
            cluster: addr(1),
            gossip: addr(2),
            bulk: addr(3),
            s3: addr(4),
        }
    }
}

/// How the node's links are protected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkFlags {
    /// Mutual TLS with the certificates in this directory (`--tls-dir`).
    TlsDir(PathBuf),
    /// Plain TCP after the cookie handshake (`--plaintext-links`).
    Plaintext,
    /// No flag: the caller's extra arguments or environment decide.
    Unset,
}

/// One node process to start.
#[derive(Debug, Clone)]
pub struct NodeLaunch {
    /// `--data-dir`.
    pub data_dir: PathBuf,
    /// `--node-name`, when given.
    pub name: Option<String>,
    /// The listen addresses.
    pub listen: Listen,
    /// Gossip addresses of members to join through (`--seed`, comma
    /// separated); none for the first node.
    pub seeds: Vec<String>,
    /// Link security.
    pub links: LinkFlags,
    /// `--config`, when given.
    pub config: Option<PathBuf>,
    /// The cluster cookie (`HYPHA_COOKIE`).
    pub cookie: String,
    /// The admin token (`HYPHA_ADMIN_TOKEN`).
    pub admin_token: String,
    /// Further flags, after the plan's own.
    pub args: Vec<OsString>,
}

impl NodeLaunch {
    /// A node in `data_dir` on `listen`, sharing `cookie` and
    /// `admin_token`; no name, seeds, link flag or configuration file.
    pub fn new(data_dir: &Path, listen: Listen, cookie: &str, admin_token: &str) -> Self {
        Self {
            data_dir: data_dir.to_owned(),
            name: None,
            listen,
            seeds: Vec::new(),
            links: LinkFlags::Unset,
            config: None,
            cookie: cookie.to_owned(),
            admin_token: admin_token.to_owned(),
            args: Vec::new(),
        }
    }

    /// The command running `bin` as this node. The secrets go in the
    /// environment (never on a command line `ps` shows), and an inherited
    /// `HYPHA_CONFIG` is removed so that only the plan's file applies.
    /// Standard streams, the log level and further environment are the
    /// caller's.
    pub fn command(&self, bin: &Path) -> Command {
        let mut cmd = Command::new(bin);
        cmd.arg("node").arg("--data-dir").arg(&self.data_dir);
        if let Some(name) = &self.name {
            cmd.args(["--node-name", name]);
        }
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(["--http-listen", &self.listen.http])
            .args(["--cluster-listen", &self.listen.cluster])
            .args(["--gossip-listen", &self.listen.gossip])
            .args(["--bulk-listen", &self.listen.bulk])
            .args(["--s3-listen", &self.listen.s3]);
        if !self.seeds.is_empty() {
            cmd.args(["--seed", &self.seeds.join(",")]);
        }
        match &self.links {
            LinkFlags::TlsDir(dir) => {
                cmd.arg("--tls-dir").arg(dir);
            }
            LinkFlags::Plaintext => {
                cmd.arg("--plaintext-links");
            }
            LinkFlags::Unset => {}
        }
        cmd.args(&self.args)
            .env("HYPHA_COOKIE", &self.cookie)
            .env("HYPHA_ADMIN_TOKEN", &self.admin_token)
            .env_remove("HYPHA_CONFIG");
        cmd
    }
}

/// The listen flags a restart in place replaces with the bound addresses.
const LISTEN_FLAGS: [(&str, &str); 5] = [
    ("--http-listen", "HYPHA_HTTP_LISTEN"),
    ("--cluster-listen", "HYPHA_CLUSTER_LISTEN"),
    ("--gossip-listen", "HYPHA_GOSSIP_LISTEN"),
    ("--bulk-listen", "HYPHA_BULK_LISTEN"),
    ("--s3-listen", "HYPHA_S3_LISTEN"),
];

/// The command line and variables of a node restarting in place
/// (`POST /v1/node/restart`): its own arguments without the listen flags,
/// and each address as bound passed as its variable instead, so the
/// restarted node listens where it did — ports the kernel picked (`:0`)
/// included — and its peers, seeds and clients find it there again.
pub fn restart_command(
    args: Vec<OsString>,
    bound: &crate::config::Listen,
) -> (Vec<OsString>, Vec<(&'static str, String)>) {
    let mut kept = Vec::with_capacity(args.len());
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let text = arg.to_string_lossy();
        let flag = LISTEN_FLAGS
            .iter()
            .find(|(f, _)| text == *f || text.starts_with(&format!("{f}=")));
        match flag {
            Some((f, _)) => skip_value = text == *f,
            None => kept.push(arg),
        }
    }
    let addrs = [
        Some(bound.http),
        Some(bound.cluster),
        Some(bound.gossip),
        Some(bound.bulk),
        bound.s3,
    ];
    let vars = LISTEN_FLAGS
        .iter()
        .zip(addrs)
        .filter_map(|((_, var), addr)| addr.map(|a| (*var, a.to_string())))
        .collect();
    (kept, vars)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_keeps_every_flag_but_listens_where_it_was_bound() {
        let args = [
            "node",
            "--http-listen",
            "127.0.0.1:0",
            "--seed",
            "x:1",
            "--gossip-listen=127.0.0.1:0",
            "--dev",
        ]
        .map(OsString::from)
        .to_vec();
        let bound = crate::config::Listen {
            http: "127.0.0.1:4000".parse().unwrap(),
            cluster: "127.0.0.1:4001".parse().unwrap(),
            gossip: "127.0.0.1:4002".parse().unwrap(),
            bulk: "127.0.0.1:4003".parse().unwrap(),
            s3: None,
        };
        let (kept, vars) = restart_command(args, &bound);
        assert_eq!(
            kept,
            ["node", "--seed", "x:1", "--dev"]
                .map(OsString::from)
                .to_vec()
        );
        assert_eq!(
            vars,
            vec![
                ("HYPHA_HTTP_LISTEN", "127.0.0.1:4000".to_owned()),
                ("HYPHA_CLUSTER_LISTEN", "127.0.0.1:4001".to_owned()),
                ("HYPHA_GOSSIP_LISTEN", "127.0.0.1:4002".to_owned()),
                ("HYPHA_BULK_LISTEN", "127.0.0.1:4003".to_owned()),
            ]
        );
    }

    fn argv(cmd: &Command) -> Vec<String> {
        cmd.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn numbered_ports_step_by_ten_and_refuse_to_overflow() {
        assert_eq!(Ports::numbered(7070, 2), Ok(Ports { first: 7090 }));
        assert_eq!(Ports::numbered(7070, 2).map(Ports::gossip), Ok(7092));
        assert_eq!(Ports::numbered(65_534, 0), Err(PortOutOfRange));
        assert_eq!(Ports::numbered(60_000, 600), Err(PortOutOfRange));
    }

    #[test]
    fn a_plan_becomes_one_node_command_line_with_secrets_in_the_environment() {
        let mut plan = NodeLaunch::new(
            Path::new("/d/n1"),
            Listen::on(
                IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                Ports { first: 7080 },
            ),
            "the-cookie",
            "the-token",
        );
        plan.name = Some("n1".into());
        plan.seeds = vec!["127.0.0.1:7072".into(), "127.0.0.3:7072".into()];
        plan.links = LinkFlags::Plaintext;
        plan.args = vec!["--cluster-id".into(), "c".into()];
        let cmd = plan.command(Path::new("/bin/hypha"));
        assert_eq!(
            argv(&cmd),
            [
                "node",
                "--data-dir",
                "/d/n1",
                "--node-name",
                "n1",
                "--http-listen",
                "127.0.0.2:7080",
                "--cluster-listen",
                "127.0.0.2:7081",
                "--gossip-listen",
                "127.0.0.2:7082",
                "--bulk-listen",
                "127.0.0.2:7083",
                "--s3-listen",
                "127.0.0.2:7084",
                "--seed",
                "127.0.0.1:7072,127.0.0.3:7072",
                "--plaintext-links",
                "--cluster-id",
                "c",
            ]
        );
        let envs: Vec<(String, Option<String>)> = cmd
            .get_envs()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.map(|v| v.to_string_lossy().into_owned()),
                )
            })
            .collect();
        assert!(envs.contains(&("HYPHA_COOKIE".into(), Some("the-cookie".into()))));
        assert!(envs.contains(&("HYPHA_ADMIN_TOKEN".into(), Some("the-token".into()))));
        assert!(envs.contains(&("HYPHA_CONFIG".into(), None)));
    }

    #[test]
    fn loopback_any_lets_the_kernel_pick_every_port() {
        let listen = Listen::loopback_any();
        assert_eq!(listen.http, "127.0.0.1:0");
        assert_eq!(listen.bulk, "127.0.0.1:0");
    }
}
