//! The supervisor's state: its children in start order, the intensity
//! window, and the mechanics of starting and stopping one child. Decisions
//! (what to restart) live in `actor.rs` and `strategy.rs`.

use std::time::Duration;

use ractor::{rpc::CallResult, ActorCell, ActorId, ActorRef, RactorErr};
use tokio::time::Instant;

use super::messages::SupervisorMessage;
use super::{ChildrenMode, SupervisorFlags};
use crate::error::SupervisorError;
use crate::intensity::RestartWindow;
use crate::metrics;
use crate::snapshot::{ChildCounts, ChildInfo, ChildSnapshot, ChildState, SupervisorSnapshot};
use crate::spec::{ChildKind, ChildSpec, Restart, Shutdown, StartContext};

/// Deadline for all nested supervisors to answer one snapshot; they are
/// asked concurrently, so a tree of depth d answers within d times this.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_millis(500);
/// A kill lands at the actor's next await point; a handler stuck in
/// blocking code delays it. We keep waiting (a replacement must never run
/// beside the old incarnation) and log every this often.
const KILL_WAIT: Duration = Duration::from_secs(5);
/// Exit reason given to children stopped by their supervisor.
pub(crate) const SHUTDOWN_REASON: &str = "shutdown";

/// How a child's incarnation ended.
#[derive(Debug)]
pub(crate) enum Exit {
    /// Panicked or returned `Err` from a handler.
    Failed(String),
    /// Stopped, with ractor's reason (`killed` when killed).
    Stopped(Option<String>),
}

impl Exit {
    /// OTP's normal exits: `normal`, `shutdown`, `{shutdown, _}`; ractor adds
    /// a reason-less stop and a drain.
    pub(crate) fn is_normal(&self) -> bool {
        match self {
            Exit::Failed(_) => false,
            Exit::Stopped(None) => true,
            Exit::Stopped(Some(reason)) => {
                reason == "normal"
                    || reason == SHUTDOWN_REASON
                    || reason.starts_with("shutdown:")
                    || reason == "Drained"
            }
        }
    }

    pub(crate) fn describe(&self) -> String {
        match self {
            Exit::Failed(err) => format!("failed: {err}"),
            Exit::Stopped(Some(reason)) => format!("stopped: {reason}"),
            Exit::Stopped(None) => "stopped".to_owned(),
        }
    }
}

pub(crate) struct Child {
    pub(crate) spec: ChildSpec,
    /// Bumped on every start, stop and scheduled restart, so that a delayed
    /// start or a retry scheduled earlier can tell it is stale.
    pub(crate) epoch: u64,
    pub(crate) cell: Option<ActorCell>,
    pub(crate) state: ChildState,
    pub(crate) starts: u64,
    pub(crate) last_failure: Option<String>,
    /// Wall-clock time of `last_failure` (for operators, not for timing).
    pub(crate) last_failure_unix_ms: Option<u64>,
    pub(crate) started_at: Option<Instant>,
}

impl Child {
    fn new(spec: ChildSpec) -> Self {
        Self {
            spec,
            epoch: 0,
            cell: None,
            state: ChildState::Stopped,
            starts: 0,
            last_failure: None,
            last_failure_unix_ms: None,
            started_at: None,
        }
    }

    /// Remember why the child last failed, and when.
    pub(crate) fn record_failure(&mut self, reason: String) {
        self.last_failure = Some(reason);
        self.last_failure_unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    }

    fn is_supervisor(&self) -> bool {
        self.spec.kind == ChildKind::Supervisor
            && self
                .cell
                .as_ref()
                .and_then(|c| c.is_message_type_of::<SupervisorMessage>())
                .unwrap_or(false)
    }
}

/// State of one supervisor incarnation.
pub struct SupervisorState {
    pub(crate) path: String,
    pub(crate) flags: SupervisorFlags,
    pub(crate) children: Vec<Child>,
    pub(crate) window: RestartWindow,
    pub(crate) started_at: Instant,
}

impl SupervisorState {
    pub(crate) fn new(path: String, flags: SupervisorFlags, specs: Vec<ChildSpec>) -> Self {
        Self {
            path,
            window: RestartWindow::new(flags.max_restarts, flags.period_ms),
            flags,
            children: specs.into_iter().map(Child::new).collect(),
            started_at: Instant::now(),
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.started_at.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn position(&self, id: &str) -> Option<usize> {
        self.children.iter().position(|c| c.spec.id == id)
    }

    pub(crate) fn position_of_cell(&self, actor: ActorId) -> Option<usize> {
        self.children
            .iter()
            .position(|c| c.cell.as_ref().is_some_and(|cell| cell.get_id() == actor))
    }

    pub(crate) fn is_dynamic(&self) -> bool {
        self.flags.mode == ChildrenMode::Dynamic
    }

    pub(crate) fn add(&mut self, spec: ChildSpec) -> usize {
        self.children.push(Child::new(spec));
        self.children.len() - 1
    }

    /// Start child `idx`; on failure it stays `Stopped` with the reason.
    pub(crate) async fn start_at(
        &mut self,
        supervisor: &ActorCell,
        idx: usize,
    ) -> Result<(), SupervisorError> {
        let path = format!("{}/{}", self.path, self.children[idx].spec.id);
        let child = &mut self.children[idx];
        child.epoch += 1;
        let ctx = StartContext {
            supervisor: supervisor.clone(),
            path,
        };
        match (child.spec.start)(ctx).await {
            Ok(cell) => {
                if child.starts > 0 {
                    metrics::restarted(&self.path, &child.spec.metric_label);
                } else {
                    // Publish the series at 0 so dashboards see it before a restart.
                    metrics::register(&self.path, &child.spec.metric_label);
                }
                child.starts += 1;
                child.cell = Some(cell);
                child.state = ChildState::Running;
                child.started_at = Some(Instant::now());
                Ok(())
            }
            Err(err) => {
                let reason = err.to_string();
                child.state = ChildState::Stopped;
                child.record_failure(format!("start failed: {reason}"));
                Err(SupervisorError::StartFailed {
                    id: child.spec.id.clone(),
                    reason,
                })
            }
        }
    }

    /// Stop child `idx` (if running) per its shutdown. The cell is forgotten
    /// first, so the exit event that follows is recognised as stale.
    pub(crate) async fn stop_at(&mut self, idx: usize) {
        let child = &mut self.children[idx];
        child.epoch += 1;
        child.state = ChildState::Stopped;
        child.started_at = None;
        if let Some(cell) = child.cell.take() {
            shutdown_cell(&cell, child.spec.shutdown, &child.spec.id).await;
        }
    }

    /// Mark child `idx` as waiting for a delayed start; returns the epoch
    /// the start must carry to be honoured.
    pub(crate) fn mark_restarting(&mut self, idx: usize) -> u64 {
        let child = &mut self.children[idx];
        child.epoch += 1;
        child.state = ChildState::Restarting;
        child.epoch
    }

    /// The child `id` if its epoch is still `epoch`.
    pub(crate) fn current(&self, id: &str, epoch: u64) -> Option<usize> {
        self.position(id)
            .filter(|&i| self.children[i].epoch == epoch)
    }

    /// Stop every child in reverse start order, dropping temporary ones.
    pub(crate) async fn shutdown_all(&mut self) {
        for idx in (0..self.children.len()).rev() {
            self.stop_at(idx).await;
        }
        self.children
            .retain(|c| c.spec.restart != Restart::Temporary);
    }

    pub(crate) fn which_children(&self) -> Vec<ChildInfo> {
        self.children
            .iter()
            .map(|c| ChildInfo {
                id: c.spec.id.clone(),
                kind: c.spec.kind,
                restart: c.spec.restart,
                state: c.state,
                actor_id: c.cell.as_ref().map(|cell| cell.get_id().to_string()),
            })
            .collect()
    }

    pub(crate) fn count_children(&self) -> ChildCounts {
        let supervisors = self
            .children
            .iter()
            .filter(|c| c.spec.kind == ChildKind::Supervisor)
            .count();
        ChildCounts {
            specs: self.children.len(),
            active: self.children.iter().filter(|c| c.cell.is_some()).count(),
            supervisors,
            workers: self.children.len() - supervisors,
        }
    }

    pub(crate) async fn snapshot(&self) -> SupervisorSnapshot {
        // Ask every nested supervisor at once, under one deadline: this runs
        // inside the supervisor's handler, which delays restarts meanwhile.
        let nested = futures::future::join_all(self.children.iter().map(|child| async move {
            match &child.cell {
                Some(cell) if child.is_supervisor() => nested_snapshot(cell).await,
                _ => None,
            }
        }))
        .await;
        let children = self
            .children
            .iter()
            .zip(nested)
            .map(|(child, nested)| self.child_snapshot(child, nested))
            .collect();
        SupervisorSnapshot {
            path: self.path.clone(),
            strategy: self.flags.strategy,
            max_restarts: self.flags.max_restarts,
            period_ms: self.flags.period_ms,
            restarts_in_window: self.window.len(),
            backoff: self.flags.backoff,
            uptime_ms: self.now_ms(),
            children,
        }
    }

    fn child_snapshot(&self, child: &Child, nested: Option<SupervisorSnapshot>) -> ChildSnapshot {
        ChildSnapshot {
            id: child.spec.id.clone(),
            path: format!("{}/{}", self.path, child.spec.id),
            kind: child.spec.kind,
            restart: child.spec.restart,
            shutdown: child.spec.shutdown,
            state: child.state,
            restarts: child.starts.saturating_sub(1),
            last_failure: child.last_failure.clone(),
            last_failure_unix_ms: child.last_failure_unix_ms,
            uptime_ms: child
                .started_at
                .map(|t| u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)),
            supervisor: nested.map(Box::new),
        }
    }

    /// Resolve the first segment of `path` to a running child; tells whether
    /// the path goes deeper (and so needs that child to be a supervisor).
    pub(crate) fn route(&self, path: &[String]) -> Result<Route<'_>, SupervisorError> {
        let Some((first, rest)) = path.split_first() else {
            return Err(SupervisorError::NoSuchChild(String::new()));
        };
        let full = || format!("{}/{}", self.path, path.join("/"));
        let child = self
            .position(first)
            .map(|i| &self.children[i])
            .ok_or_else(|| SupervisorError::NoSuchChild(full()))?;
        let cell = child
            .cell
            .as_ref()
            .ok_or_else(|| SupervisorError::ChildNotRunning(full()))?;
        if rest.is_empty() {
            return Ok(Route::Here { child, cell });
        }
        if !child.is_supervisor() {
            return Err(SupervisorError::NotASupervisor(full()));
        }
        Ok(Route::Below {
            supervisor: cell.clone().into(),
            rest: rest.to_vec(),
        })
    }
}

/// Where a path leads.
pub(crate) enum Route<'a> {
    /// To a child of this supervisor.
    Here {
        child: &'a Child,
        cell: &'a ActorCell,
    },
    /// Into a nested supervisor, with the remaining path.
    Below {
        supervisor: ActorRef<SupervisorMessage>,
        rest: Vec<String>,
    },
}

async fn nested_snapshot(cell: &ActorCell) -> Option<SupervisorSnapshot> {
    let nested: ActorRef<SupervisorMessage> = cell.clone().into();
    match nested
        .call(
            |reply| SupervisorMessage::Snapshot { reply },
            Some(SNAPSHOT_TIMEOUT),
        )
        .await
    {
        Ok(CallResult::Success(snapshot)) => Some(snapshot),
        _ => None,
    }
}

async fn shutdown_cell(cell: &ActorCell, shutdown: Shutdown, id: &str) {
    let reason = Some(SHUTDOWN_REASON.to_owned());
    match shutdown {
        Shutdown::BrutalKill => kill(cell, id).await,
        Shutdown::Timeout { timeout_ms } => {
            let grace = Duration::from_millis(timeout_ms);
            // An error other than a timeout means the child is already on its
            // way out (e.g. in its own post_stop): wait for it all the same.
            let stopped = match cell.stop_and_wait(reason, Some(grace)).await {
                Ok(()) => true,
                Err(RactorErr::Timeout) => false,
                Err(_) => cell.wait(Some(grace)).await.is_ok(),
            };
            if !stopped {
                tracing::warn!(child = id, timeout_ms, "child ignored shutdown; killing it");
                kill(cell, id).await;
            }
        }
        Shutdown::Infinity => {
            if cell.stop_and_wait(reason, None).await.is_err() {
                let _ = cell.wait(None).await;
            }
        }
    }
}

/// Kill `cell` and wait until it has really exited.
async fn kill(cell: &ActorCell, id: &str) {
    cell.kill();
    while cell.wait(Some(KILL_WAIT)).await.is_err() {
        tracing::error!(
            child = id,
            "killed child has not exited; it is blocked outside an await point (still waiting)"
        );
    }
}
