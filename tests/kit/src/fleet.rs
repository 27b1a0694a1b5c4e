//! Watched node processes for runs that last minutes: each node's command
//! fixed once ([`NodeSpec`]: its launch plan, the uid it runs as, extra
//! environment, a log file), then started, signalled, frozen, thawed,
//! killed and restarted on the same data dir, and watched for exits
//! nobody asked for. The chaos harness's nemesis and checkers share one
//! [`Fleet`] behind an `Arc`, so every method takes `&self` and returns a
//! [`FleetError`] rather than panicking: a fault that cannot be applied is
//! recorded, not fatal.
//!
//! [`crate::cluster::Cluster`] is the short-lived, panicking form the
//! tests use (output piped, the node's admin URL read from its stdout).

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use hypha::launch::NodeLaunch;
use nix::errno::Errno;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::poll::poll;
use crate::process::admin_url_in;

/// How long a node may take from spawn to answering `/health`.
const START_LIMIT: Duration = Duration::from_secs(30);
/// How long a node may take to exit after SIGTERM before it is killed.
const TERM_LIMIT: Duration = Duration::from_secs(30);
/// How much of a log a start reads for the node's admin URL: the line
/// comes within the first few of a start.
const URL_SCAN_BYTES: u64 = 1 << 20;

/// One node of a fleet: what runs, as whom, with what, logging where.
#[derive(Debug, Clone)]
pub struct NodeSpec {
    /// The `hypha` binary.
    pub bin: PathBuf,
    /// The node's command line: data dir, name, listen addresses (fixed,
    /// or port 0 for the kernel to pick), seeds, links, secrets.
    pub launch: NodeLaunch,
    /// Whom the process runs as.
    pub user: User,
    /// Environment besides the plan's own (e.g. a libfaketime preload).
    pub env: Vec<(OsString, OsString)>,
    /// Where stdout and stderr go, appended across restarts.
    pub log: PathBuf,
}

/// Whom a node process runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum User {
    /// The caller's own user.
    Inherit,
    /// This uid (and the gid of the same number); the data dir is handed
    /// to it before each start. Needs root.
    Uid(u32),
}

impl NodeSpec {
    /// A node running `bin` with `launch` as the caller's user, logging
    /// to `log`.
    pub fn new(bin: &Path, launch: NodeLaunch, log: &Path) -> Self {
        Self {
            bin: bin.to_owned(),
            launch,
            user: User::Inherit,
            env: Vec::new(),
            log: log.to_owned(),
        }
    }

    /// The node's name in messages: its `--node-name`, else `n<index>`.
    fn label(&self, node: usize) -> String {
        self.launch
            .name
            .clone()
            .unwrap_or_else(|| format!("n{node}"))
    }

    /// The command, its data dir made (and handed to the node's uid).
    fn command(&self, node: usize) -> Result<Command, FleetError> {
        let io = |what| {
            let node = self.label(node);
            move |source| FleetError::Io { node, what, source }
        };
        std::fs::create_dir_all(&self.launch.data_dir).map_err(io("making the data dir"))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(io("opening the log"))?;
        let mut cmd = self.launch.command(&self.bin);
        cmd.env("RUST_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(io("sharing the log"))?)
            .stderr(log);
        if let User::Uid(uid) = self.user {
            use std::os::unix::process::CommandExt;
            hand_over(&self.launch.data_dir, uid).map_err(io("handing the data dir over"))?;
            cmd.uid(uid).gid(uid);
        }
        Ok(cmd)
    }
}

/// Give `dir` and what lies directly in it to `uid` (user and group):
/// files the caller made there (a node id written to name a certificate, a
/// 0600 key) must be the node's.
pub fn hand_over(dir: &Path, uid: u32) -> std::io::Result<()> {
    std::os::unix::fs::chown(dir, Some(uid), Some(uid))?;
    for entry in std::fs::read_dir(dir)? {
        std::os::unix::fs::chown(entry?.path(), Some(uid), Some(uid))?;
    }
    Ok(())
}

/// Why a fleet could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// There is no node with this index.
    #[error("no node {0}")]
    NoNode(usize),
    /// The node has no process to act on.
    #[error("{0} is not running")]
    NotRunning(String),
    /// A thread panicked holding the node's slot.
    #[error("{0}: slot lock poisoned")]
    Poisoned(String),
    /// Preparing, spawning or reaping the process failed.
    #[error("{node}: {what}")]
    Io {
        /// The node.
        node: String,
        /// What was being done.
        what: &'static str,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a signal.
    #[error("{signal} to {node}")]
    Signal {
        /// The node.
        node: String,
        /// The signal.
        signal: Signal,
        /// The cause.
        #[source]
        source: Errno,
    },
    /// The process exited before it served.
    #[error("{node} exited while starting (see {log})")]
    ExitedWhileStarting {
        /// The node.
        node: String,
        /// Its log file.
        log: String,
    },
    /// The process ran but did not answer `/health` in time.
    #[error("{node} did not serve within {limit:?}")]
    NotServing {
        /// The node.
        node: String,
        /// How long it was given.
        limit: Duration,
    },
    /// The process outlived SIGTERM's grace and was killed.
    #[error("{node} ignored SIGTERM for {limit:?}")]
    IgnoredTerm {
        /// The node.
        node: String,
        /// The grace it had.
        limit: Duration,
    },
    /// The HTTP client for health checks could not be built.
    #[error("building the health-check client")]
    Http(#[source] reqwest::Error),
}

/// How a start that may end in an expected exit went
/// ([`Fleet::start_or_exit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// The node serves.
    Serving,
    /// It exited with the expected status.
    Exited(i32),
}

/// What the fleet last did to a node, so that an exit can be judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Running,
    Frozen,
    Stopped,
}

struct Slot {
    child: Option<Child>,
    expect: Expect,
    /// The admin URL the node printed when it last started.
    url: Option<String>,
}

/// Nodes started from fixed specs, watched for unexpected exits.
pub struct Fleet {
    specs: Vec<NodeSpec>,
    slots: Vec<Mutex<Slot>>,
    deaths: Mutex<Vec<String>>,
    http: reqwest::Client,
}

impl Fleet {
    /// A fleet of `specs`, none started.
    pub fn new(specs: Vec<NodeSpec>) -> Result<Self, FleetError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()
            .map_err(FleetError::Http)?;
        let slots = specs
            .iter()
            .map(|_| {
                Mutex::new(Slot {
                    child: None,
                    expect: Expect::Stopped,
                    url: None,
                })
            })
            .collect();
        Ok(Self {
            specs,
            slots,
            deaths: Mutex::new(Vec::new()),
            http,
        })
    }

    /// How many nodes.
    pub fn len(&self) -> usize {
        self.specs.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    /// Node `node`'s spec.
    pub fn spec(&self, node: usize) -> Option<&NodeSpec> {
        self.specs.get(node)
    }

    /// The node's admin URL: the one it printed at its last start, else
    /// its configured HTTP address (which holds port 0 for a node on
    /// kernel-picked ports not started yet).
    pub fn url(&self, node: usize) -> Option<String> {
        let printed = self.slot(node).ok().and_then(|s| s.url.clone());
        printed.or_else(|| Some(format!("http://{}", self.spec(node)?.launch.listen.http)))
    }

    /// The node's process id while it has a process.
    pub fn pid(&self, node: usize) -> Option<u32> {
        self.slot(node).ok()?.child.as_ref().map(Child::id)
    }

    fn label(&self, node: usize) -> String {
        self.spec(node)
            .map_or_else(|| format!("n{node}"), |s| s.label(node))
    }

    fn slot(&self, node: usize) -> Result<MutexGuard<'_, Slot>, FleetError> {
        self.slots
            .get(node)
            .ok_or(FleetError::NoNode(node))?
            .lock()
            .map_err(|_| FleetError::Poisoned(self.label(node)))
    }

    /// Start the node (no-op if it has a process) and wait (≤ 30 s) until
    /// it prints its admin URL and answers `/health`.
    pub async fn start(&self, node: usize) -> Result<(), FleetError> {
        match self.spawn(node, Expect::Running)? {
            Some(log_from) => self.wait_serving(node, log_from, START_LIMIT).await,
            None => Ok(()),
        }
    }

    /// Start the node and wait (≤ 30 s) until it serves, or until it
    /// exits with status `code`: an outcome the caller expects (a damaged
    /// store, say), not a death; the node is left stopped. Any other exit
    /// while starting is [`FleetError::ExitedWhileStarting`].
    pub async fn start_or_exit(&self, node: usize, code: i32) -> Result<Started, FleetError> {
        // Not Running until it serves: `reap` must not count the expected
        // exit as a death.
        let Some(log_from) = self.spawn(node, Expect::Stopped)? else {
            return Err(FleetError::NotRunning(format!(
                "{} (already running)",
                self.label(node)
            )));
        };
        let started = move || async move {
            if let Some(url) = self.printed_url(node, log_from) {
                let health = self.http.get(format!("{url}/health")).send().await;
                if health.is_ok_and(|r| r.status().is_success()) {
                    return Some(self.slot(node).map(|mut slot| {
                        slot.expect = Expect::Running;
                        Started::Serving
                    }));
                }
            }
            let mut slot = match self.slot(node) {
                Ok(slot) => slot,
                Err(err) => return Some(Err(err)),
            };
            let status = match slot.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => status,
                _ => return None,
            };
            slot.child = None;
            Some(match status.code() {
                Some(exit) if exit == code => Ok(Started::Exited(exit)),
                _ => Err(FleetError::ExitedWhileStarting {
                    node: self.label(node),
                    log: self.log_name(node),
                }),
            })
        };
        match poll(START_LIMIT, Duration::from_millis(50), started).await {
            Ok(outcome) => outcome,
            Err(_) => Err(FleetError::NotServing {
                node: self.label(node),
                limit: START_LIMIT,
            }),
        }
    }

    /// Spawn the node's process, expecting `expect` of it; where this
    /// start's lines begin in its log, or `None` if it already runs.
    fn spawn(&self, node: usize, expect: Expect) -> Result<Option<u64>, FleetError> {
        let mut slot = self.slot(node)?;
        if slot.child.is_some() {
            return Ok(None);
        }
        let spec = self.spec(node).ok_or(FleetError::NoNode(node))?;
        // The log is appended to: this start's lines begin here.
        let log_from = std::fs::metadata(&spec.log).map_or(0, |m| m.len());
        let child = spec
            .command(node)?
            .spawn()
            .map_err(|source| FleetError::Io {
                node: self.label(node),
                what: "spawning hypha",
                source,
            })?;
        slot.child = Some(child);
        slot.expect = expect;
        slot.url = None;
        Ok(Some(log_from))
    }

    async fn wait_serving(
        &self,
        node: usize,
        log_from: u64,
        limit: Duration,
    ) -> Result<(), FleetError> {
        let serving = move || async move {
            if let Some(url) = self.printed_url(node, log_from) {
                let health = self.http.get(format!("{url}/health")).send().await;
                if health.is_ok_and(|r| r.status().is_success()) {
                    return Some(Ok(()));
                }
            }
            self.reap();
            match self.slot(node) {
                Ok(slot) if slot.child.is_some() => None,
                Ok(_) => Some(Err(FleetError::ExitedWhileStarting {
                    node: self.label(node),
                    log: self.log_name(node),
                })),
                Err(err) => Some(Err(err)),
            }
        };
        match poll(limit, Duration::from_millis(50), serving).await {
            Ok(started) => started,
            Err(_) => Err(FleetError::NotServing {
                node: self.label(node),
                limit,
            }),
        }
    }

    /// The URL the node printed since `log_from`, remembered once seen.
    fn printed_url(&self, node: usize, log_from: u64) -> Option<String> {
        let mut slot = self.slot(node).ok()?;
        if slot.url.is_none() {
            let text = read_from(&self.spec(node)?.log, log_from).ok()?;
            slot.url = printed_admin_url(&text);
        }
        slot.url.clone()
    }

    fn log_name(&self, node: usize) -> String {
        self.spec(node)
            .and_then(|s| s.log.file_name())
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    }

    /// Send `signal` to the node's process.
    pub fn signal(&self, node: usize, signal: Signal) -> Result<(), FleetError> {
        let pid = self
            .pid(node)
            .ok_or_else(|| FleetError::NotRunning(self.label(node)))?;
        let pid = Pid::from_raw(i32::try_from(pid).unwrap_or(i32::MAX));
        kill(pid, signal).map_err(|source| FleetError::Signal {
            node: self.label(node),
            signal,
            source,
        })
    }

    /// SIGKILL and reap; not a death.
    pub fn kill(&self, node: usize) -> Result<(), FleetError> {
        let mut slot = self.slot(node)?;
        slot.expect = Expect::Stopped;
        let mut child = slot
            .child
            .take()
            .ok_or_else(|| FleetError::NotRunning(self.label(node)))?;
        let io = |what| {
            let node = self.label(node);
            move |source| FleetError::Io { node, what, source }
        };
        child.kill().map_err(io("SIGKILL"))?;
        child.wait().map_err(io("reaping"))?;
        Ok(())
    }

    /// SIGSTOP: the process stays, unscheduled.
    pub fn freeze(&self, node: usize) -> Result<(), FleetError> {
        self.signal(node, Signal::SIGSTOP)?;
        self.slot(node)?.expect = Expect::Frozen;
        Ok(())
    }

    /// SIGCONT.
    pub fn thaw(&self, node: usize) -> Result<(), FleetError> {
        self.slot(node)?.expect = Expect::Running;
        self.signal(node, Signal::SIGCONT)
    }

    /// SIGTERM, wait (≤ 30 s, then SIGKILL and fail) for the exit, and
    /// start again on the same data dir.
    pub async fn restart(&self, node: usize) -> Result<(), FleetError> {
        self.slot(node)?.expect = Expect::Stopped;
        self.signal(node, Signal::SIGTERM)?;
        let exited = move || async move { self.take_exited(node).transpose() };
        match poll(TERM_LIMIT, Duration::from_millis(20), exited).await {
            Ok(taken) => taken?,
            Err(_) => {
                self.kill(node)?;
                return Err(FleetError::IgnoredTerm {
                    node: self.label(node),
                    limit: TERM_LIMIT,
                });
            }
        }
        self.start(node).await
    }

    /// `Some` (the slot emptied) once the node's process has exited or
    /// if there was none; `None` while it runs.
    fn take_exited(&self, node: usize) -> Result<Option<()>, FleetError> {
        let mut slot = self.slot(node)?;
        match slot.child.as_mut().map(Child::try_wait) {
            Some(Ok(Some(_))) | None => {
                slot.child = None;
                Ok(Some(()))
            }
            _ => Ok(None),
        }
    }

    /// Collect exits; one the fleet did not cause is a death.
    pub fn reap(&self) {
        for (i, slot) in self.slots.iter().enumerate() {
            let Ok(mut slot) = slot.lock() else { continue };
            if slot.expect == Expect::Stopped {
                continue;
            }
            let status = match slot.child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => status,
                _ => continue,
            };
            slot.child = None;
            slot.expect = Expect::Stopped;
            if let Ok(mut deaths) = self.deaths.lock() {
                deaths.push(format!("{} exited on its own: {status}", self.label(i)));
            }
        }
    }

    /// Exits the fleet did not cause, oldest first.
    pub fn deaths(&self) -> Vec<String> {
        self.reap();
        self.deaths.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// Nodes whose process runs and is not frozen.
    pub fn running(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|i| {
                self.slot(*i)
                    .is_ok_and(|s| s.child.is_some() && s.expect == Expect::Running)
            })
            .collect()
    }

    /// Thaw every frozen node and start every stopped one.
    pub async fn heal_all(&self) -> Result<(), FleetError> {
        for node in 0..self.len() {
            let expect = self.slot(node)?.expect;
            match expect {
                Expect::Frozen => self.thaw(node)?,
                Expect::Stopped => self.start(node).await?,
                Expect::Running => {}
            }
        }
        Ok(())
    }

    /// SIGKILL every node and reap it.
    pub fn stop_all(&self) {
        for node in 0..self.len() {
            if let Ok(mut slot) = self.slot(node) {
                slot.expect = Expect::Stopped;
                if let Some(mut child) = slot.child.take() {
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.stop_all();
    }
}

/// At most [`URL_SCAN_BYTES`] of `path` from byte `from`, as text.
fn read_from(path: &Path, from: u64) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    file.take(URL_SCAN_BYTES).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// The admin URL in a node's output, from the line it prints once its
/// API listens.
fn printed_admin_url(output: &str) -> Option<String> {
    output.lines().find_map(admin_url_in).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hypha::launch::Listen;

    #[test]
    fn the_admin_url_is_read_from_the_line_the_node_prints() {
        let output = "INFO starting\nhypha: admin API at http://127.0.0.1:41234\nINFO up\n";
        assert_eq!(
            printed_admin_url(output).as_deref(),
            Some("http://127.0.0.1:41234")
        );
        assert_eq!(printed_admin_url("INFO starting\nhypha: admin"), None);
    }

    #[test]
    fn a_start_reads_its_url_after_the_lines_of_earlier_starts() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("n0.log");
        std::fs::write(&log, "hypha: admin API at http://127.0.0.1:1\n").unwrap();
        let from = std::fs::metadata(&log).unwrap().len();
        assert_eq!(printed_admin_url(&read_from(&log, from).unwrap()), None);
        let mut text = std::fs::read_to_string(&log).unwrap();
        text.push_str("hypha: admin API at http://127.0.0.1:2\n");
        std::fs::write(&log, text).unwrap();
        let url = printed_admin_url(&read_from(&log, from).unwrap());
        assert_eq!(url.as_deref(), Some("http://127.0.0.1:2"));
    }

    #[test]
    fn an_unstarted_node_has_its_configured_address_and_no_process() {
        let launch = NodeLaunch::new(Path::new("/d/n0"), Listen::loopback_any(), "c", "t");
        let spec = NodeSpec::new(Path::new("/bin/hypha"), launch, Path::new("/d/n0.log"));
        let fleet = Fleet::new(vec![spec]).unwrap();
        assert_eq!(fleet.url(0).as_deref(), Some("http://127.0.0.1:0"));
        assert_eq!(fleet.url(1), None);
        assert_eq!(fleet.running(), Vec::<usize>::new());
        assert!(matches!(fleet.kill(0), Err(FleetError::NotRunning(n)) if n == "n0"));
        assert!(matches!(fleet.freeze(3), Err(FleetError::NotRunning(_))));
        assert!(fleet.deaths().is_empty());
    }
}
