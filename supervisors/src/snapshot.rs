//! Introspection views of a supervision tree, serialisable for the admin API.

use serde::Serialize;

use crate::backoff::Backoff;
use crate::spec::{ChildKind, Restart, Shutdown};
use crate::strategy::Strategy;

/// Lifecycle state of one child as its supervisor sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildState {
    /// Started and linked.
    Running,
    /// Waiting out a restart backoff.
    Restarting,
    /// Not running: exited normally (transient), terminated by request, or
    /// failed to start and awaiting a retry.
    Stopped,
}

/// One child as `which_children` reports it.
#[derive(Debug, Clone, Serialize)]
pub struct ChildInfo {
    /// Id inside the supervisor.
    pub id: String,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Restart type.
    pub restart: Restart,
    /// Current state.
    pub state: ChildState,
    /// Actor id of the running incarnation, if any.
    pub actor_id: Option<String>,
}

/// Child counts as `count_children` reports them (OTP's map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct ChildCounts {
    /// All child specs held.
    pub specs: usize,
    /// Children currently running.
    pub active: usize,
    /// Children of kind supervisor.
    pub supervisors: usize,
    /// Children of kind worker.
    pub workers: usize,
}

/// One child in a tree snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct ChildSnapshot {
    /// Id inside its supervisor.
    pub id: String,
    /// Full path from the root, e.g. `node/admin/http`.
    pub path: String,
    /// Worker or supervisor.
    pub kind: ChildKind,
    /// Restart type.
    pub restart: Restart,
    /// Shutdown.
    pub shutdown: Shutdown,
    /// Current state.
    pub state: ChildState,
    /// Times this child was started again after its first start.
    pub restarts: u64,
    /// Reason of the last abnormal exit or failed start.
    pub last_failure: Option<String>,
    /// When it happened (Unix ms, the node's wall clock).
    pub last_failure_unix_ms: Option<u64>,
    /// Milliseconds since the running incarnation started.
    pub uptime_ms: Option<u64>,
    /// The nested tree when this child is a supervisor (absent if it did not answer).
    pub supervisor: Option<Box<SupervisorSnapshot>>,
}

/// A supervisor and, recursively, its children.
#[derive(Debug, Clone, Serialize)]
pub struct SupervisorSnapshot {
    /// Full path of this supervisor.
    pub path: String,
    /// Strategy.
    pub strategy: Strategy,
    /// Restart intensity limit.
    pub max_restarts: u32,
    /// Restart intensity window.
    pub period_ms: u64,
    /// Restarts currently counted in the window.
    pub restarts_in_window: usize,
    /// Backoff, when set.
    pub backoff: Option<Backoff>,
    /// Milliseconds since this supervisor started.
    pub uptime_ms: u64,
    /// Children in start order.
    pub children: Vec<ChildSnapshot>,
}

impl SupervisorSnapshot {
    /// Find a child anywhere below by its full path.
    pub fn find(&self, path: &str) -> Option<&ChildSnapshot> {
        self.children.iter().find_map(|c| {
            if c.path == path {
                Some(c)
            } else {
                c.supervisor.as_ref().and_then(|s| s.find(path))
            }
        })
    }

    /// True when every child in the whole tree is running.
    pub fn all_running(&self) -> bool {
        self.children.iter().all(|c| {
            c.state == ChildState::Running
                && c.supervisor.as_ref().is_none_or(|s| s.all_running())
                && (c.kind == ChildKind::Worker || c.supervisor.is_some())
        })
    }
}
