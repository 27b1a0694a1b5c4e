//! One `hypha node` child process: started on loopback with free ports
//! (its command from [`hypha::launch`]), its admin URL read from what it
//! prints, signalled, waited for and killed on drop.

use std::ffi::OsString;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hypha::launch::{Listen, NodeLaunch};

use crate::certs::test_tls_dir;
use crate::paths::hypha_bin;
use crate::poll::poll_blocking;
use crate::{ADMIN_TOKEN, COOKIE, READ_TOKEN};

/// The admin URL in `line`, if it is the line a node prints once its
/// admin API listens.
pub fn admin_url_in(line: &str) -> Option<&str> {
    line.strip_prefix("hypha: admin API at ")
}

/// A node running as a real `hypha` process.
pub struct NodeProcess {
    /// The process.
    pub child: Child,
    /// Its admin API, as it printed it.
    pub url: String,
    /// Its stderr, line by line.
    pub stderr: mpsc::Receiver<String>,
}

impl NodeProcess {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send a signal by name (`TERM`, `KILL`) with the system `kill`.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Wait for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let child = &mut self.child;
        poll_blocking(limit, Duration::from_millis(10), || {
            child.try_wait().unwrap()
        })
        .unwrap_or_else(|_| panic!("node did not exit within {limit:?}"))
    }

    /// SIGKILL, and wait (≤ 30 s) for the exit.
    pub fn kill(&mut self) -> std::process::ExitStatus {
        self.signal("KILL");
        self.wait_exit(Duration::from_secs(30))
    }

    /// Everything written to stderr so far.
    pub fn stderr_text(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The command of a node in `dir` on loopback with free ports, the test
/// secrets, its test certificate (unless `extra` chooses the links) and
/// `extra` flags; stdout and stderr piped for [`spawn_command`].
pub fn node_command(dir: &Path, extra: &[&str]) -> Command {
    let mut plan = NodeLaunch::new(dir, Listen::loopback_any(), COOKIE, ADMIN_TOKEN);
    plan.args = extra.iter().map(OsString::from).collect();
    let mut cmd = plan.command(&hypha_bin());
    if !extra.contains(&"--tls-dir") && !extra.contains(&"--plaintext-links") {
        // In the environment, not a flag: a test's own flags (`--dev`)
        // may leave it unused.
        cmd.env("HYPHA_TLS_DIR", test_tls_dir(dir));
    }
    cmd.env("HYPHA_READ_TOKEN", READ_TOKEN)
        .env_remove("HYPHA_PLAINTEXT_LINKS")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Spawn a node process and wait (≤ 30 s) until it prints its admin URL.
pub fn spawn_node(dir: &Path, extra: &[&str]) -> NodeProcess {
    spawn_command(node_command(dir, extra))
}

/// Spawn a prepared node command and wait (≤ 30 s) for its admin URL.
pub fn spawn_command(cmd: Command) -> NodeProcess {
    match spawn_or_exit(cmd) {
        Spawned::Serving(node) => node,
        Spawned::Exited { status, stderr } => {
            panic!("node exited ({status}) before printing its admin URL: {stderr}")
        }
    }
}

/// How a node start ended.
pub enum Spawned {
    /// It printed its admin URL.
    Serving(NodeProcess),
    /// It exited first (a refused start).
    Exited {
        /// Its exit status.
        status: std::process::ExitStatus,
        /// Everything it wrote to stderr.
        stderr: String,
    },
}

/// Spawn a prepared node command; wait (≤ 30 s) until it prints its admin
/// URL or exits.
pub fn spawn_or_exit(mut cmd: Command) -> Spawned {
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (url_tx, url_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = admin_url_in(&line) {
                let _ = url_tx.send(Some(url.to_owned()));
            }
        }
        // Standard output closed: the process is exiting.
        let _ = url_tx.send(None);
    });
    let (err_tx, err_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let url = url_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("node printed its admin URL or exited");
    let mut node = NodeProcess {
        child,
        url: url.clone().unwrap_or_default(),
        stderr: err_rx,
    };
    match url {
        Some(_) => Spawned::Serving(node),
        None => {
            let status = node.wait_exit(Duration::from_secs(30));
            // The reader thread ends with the pipe; collect what it read.
            let stderr = node.stderr.iter().collect::<Vec<_>>().join("\n");
            Spawned::Exited { status, stderr }
        }
    }
}
