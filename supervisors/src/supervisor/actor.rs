//! The supervisor's actor shell: message dispatch, exit handling, restart
//! by strategy, escalation.

use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, SpawnErr, SupervisionEvent};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::children::{Exit, Route, SupervisorState};
use super::messages::{FaultMode, SupervisorMessage};
use super::SupervisorFlags;
use crate::error::{SpecError, SupervisorError};
use crate::intensity::RestartVerdict;
use crate::metrics;
use crate::snapshot::ChildState;
use crate::spec::{validate_specs, ChildId, ChildSpec, Restart};
use crate::strategy::restart_plan;

/// The supervisor behaviour. Stateless: everything lives in its state.
pub struct Supervisor;

/// Start-up arguments of a supervisor.
pub struct SupervisorArgs {
    path: String,
    flags: SupervisorFlags,
    children: Vec<ChildSpec>,
    exit: Option<oneshot::Sender<RootExit>>,
}

impl SupervisorArgs {
    /// A supervisor at tree `path` with `flags` and `children` in start order.
    pub fn new(path: impl Into<String>, flags: SupervisorFlags, children: Vec<ChildSpec>) -> Self {
        Self {
            path: path.into(),
            flags,
            children,
            exit: None,
        }
    }
}

/// How a root supervisor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootExit {
    /// Stopped on request, children stopped in reverse order.
    Stopped,
    /// Gave up after exceeding its restart intensity.
    Escalated(SupervisorError),
}

/// A running root supervisor: its ref, and how to learn how it ended.
pub struct RootHandle {
    /// The root supervisor.
    pub supervisor: ActorRef<SupervisorMessage>,
    /// Completes when the supervisor's task has finished.
    pub join: JoinHandle<()>,
    /// Resolves with the exit; an error means it was killed.
    pub exit: oneshot::Receiver<RootExit>,
}

impl Supervisor {
    /// Start a root supervisor (no parent). `name` registers it in ractor's
    /// registry; include the node in it when several nodes share a process.
    pub async fn start_root(
        name: Option<String>,
        path: impl Into<String>,
        flags: SupervisorFlags,
        children: Vec<ChildSpec>,
    ) -> Result<RootHandle, SpawnErr> {
        let (tx, rx) = oneshot::channel();
        let mut args = SupervisorArgs::new(path, flags, children);
        args.exit = Some(tx);
        let (supervisor, join) = Actor::spawn(name, Supervisor, args).await?;
        Ok(RootHandle {
            supervisor,
            join,
            exit: rx,
        })
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMessage;
    type State = Incarnation;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: SupervisorArgs,
    ) -> Result<Incarnation, ActorProcessingErr> {
        validate_specs(&args.children)?;
        if args.children.len() > args.flags.max_children {
            let max = args.flags.max_children;
            return Err(SpecError::TooManyChildren { max }.into());
        }
        let mut inc = Incarnation {
            state: SupervisorState::new(args.path, args.flags, args.children),
            exit: args.exit,
        };
        // OTP: children start left to right; if one fails, those already
        // started are stopped in reverse and the supervisor fails to start.
        for idx in 0..inc.state.children.len() {
            if let Err(err) = inc.state.start_at(&myself.get_cell(), idx).await {
                inc.state.shutdown_all().await;
                return Err(err.into());
            }
        }
        Ok(inc)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        inc: &mut Incarnation,
    ) -> Result<(), ActorProcessingErr> {
        inc.state.shutdown_all().await;
        inc.report(RootExit::Stopped);
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: SupervisorMessage,
        inc: &mut Incarnation,
    ) -> Result<(), ActorProcessingErr> {
        inc.handle(&myself, message).await
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        inc: &mut Incarnation,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                inc.on_exit(&myself, &cell, Exit::Failed(err.to_string()))
                    .await
            }
            SupervisionEvent::ActorTerminated(cell, final_state, reason) => {
                // The stopped child's state travels in the event: release it
                // (files, sockets) before a replacement is started.
                drop(final_state);
                inc.on_exit(&myself, &cell, Exit::Stopped(reason)).await
            }
            SupervisionEvent::ActorStarted(_) | SupervisionEvent::ProcessGroupChanged(_) => Ok(()),
            SupervisionEvent::PidLifecycleEvent(_) => Ok(()),
        }
    }
}

/// One incarnation of a supervisor: its children and, for a root, where to
/// report its end.
pub struct Incarnation {
    state: SupervisorState,
    exit: Option<oneshot::Sender<RootExit>>,
}

impl Incarnation {
    fn report(&mut self, exit: RootExit) {
        if let Some(tx) = self.exit.take() {
            let _ = tx.send(exit);
        }
    }

    async fn handle(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        message: SupervisorMessage,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SupervisorMessage::WhichChildren { reply } => {
                let _ = reply.send(self.state.which_children());
            }
            SupervisorMessage::CountChildren { reply } => {
                let _ = reply.send(self.state.count_children());
            }
            SupervisorMessage::Snapshot { reply } => {
                // A caller that gave up must not cost this supervisor time.
                if !reply.is_closed() {
                    let _ = reply.send(self.state.snapshot().await);
                }
            }
            SupervisorMessage::StartChild { spec, reply } => {
                let _ = reply.send(self.start_child(myself, spec).await);
            }
            SupervisorMessage::TerminateChild { id, reply } => {
                let _ = reply.send(self.terminate_child(&id).await);
            }
            SupervisorMessage::RestartChild { id, reply } => {
                let _ = reply.send(self.restart_child(myself, &id).await);
            }
            SupervisorMessage::DeleteChild { id, reply } => {
                let _ = reply.send(self.delete_child(&id));
            }
            SupervisorMessage::InjectFault { path, mode, reply } => {
                self.inject_fault(path, mode, reply);
            }
            SupervisorMessage::LookupChild { path, reply } => self.lookup(path, reply),
            SupervisorMessage::RetryRestart { id, epoch } => {
                // Stale if the child was started, stopped or terminated since.
                if self.state.current(&id, epoch).is_some() {
                    return self.restart(myself, &id).await;
                }
            }
            SupervisorMessage::StartDelayed { ids } => {
                let ids = ids
                    .into_iter()
                    .filter(|(id, epoch)| self.state.current(id, *epoch).is_some())
                    .map(|(id, _)| id)
                    .collect();
                self.start_ids(myself, ids).await;
            }
            SupervisorMessage::Crash => {
                panic!("chaos: injected panic in supervisor {}", self.state.path)
            }
        }
        Ok(())
    }

    /// A child's incarnation ended: decide by its restart type.
    async fn on_exit(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        cell: &ActorCell,
        exit: Exit,
    ) -> Result<(), ActorProcessingErr> {
        // Exits of cells we no longer track (stopped by us, replaced) are stale.
        let Some(idx) = self.state.position_of_cell(cell.get_id()) else {
            return Ok(());
        };
        let normal = exit.is_normal();
        let child = &mut self.state.children[idx];
        child.cell = None;
        child.started_at = None;
        child.state = ChildState::Stopped;
        if !normal {
            child.record_failure(exit.describe());
            tracing::warn!(supervisor = %self.state.path, child = %child.spec.id, exit = %exit.describe(), "child exited abnormally");
        }
        let id = child.spec.id.clone();
        match child.spec.restart {
            Restart::Temporary => {
                self.state.children.remove(idx);
                Ok(())
            }
            Restart::Transient if normal => {
                if self.state.is_dynamic() {
                    self.state.children.remove(idx);
                }
                Ok(())
            }
            _ => self.restart(myself, &id).await,
        }
    }

    /// Restart child `id` with its strategy's siblings, within intensity.
    async fn restart(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        id: &str,
    ) -> Result<(), ActorProcessingErr> {
        let now_ms = self.state.now_ms();
        if self.state.window.add_restart(now_ms) == RestartVerdict::Exceeded {
            return Err(self.escalate().await.into());
        }
        let Some(idx) = self.state.position(id) else {
            return Ok(());
        };
        let plan = restart_plan(self.state.flags.strategy, self.state.children.len(), idx);
        let start: Vec<ChildId> = plan
            .start
            .iter()
            .map(|&i| self.state.children[i].spec.id.clone())
            .collect();
        for &i in &plan.stop {
            self.state.stop_at(i).await;
        }
        // OTP deletes temporary siblings that a restart stopped.
        self.state
            .children
            .retain(|c| c.spec.restart != Restart::Temporary || c.cell.is_some());
        let start: Vec<ChildId> = start
            .into_iter()
            .filter(|id| self.state.position(id).is_some())
            .collect();
        match self.state.flags.backoff {
            Some(backoff) => {
                let delay_ms = backoff.delay_ms(self.state.window.len());
                let ids = self.mark_restarting(start);
                myself.send_after(Duration::from_millis(delay_ms), move || {
                    SupervisorMessage::StartDelayed { ids }
                });
            }
            None => self.start_ids(myself, start).await,
        }
        Ok(())
    }

    fn mark_restarting(&mut self, ids: Vec<ChildId>) -> Vec<(ChildId, u64)> {
        ids.into_iter()
            .filter_map(|id| {
                let i = self.state.position(&id)?;
                Some((id, self.state.mark_restarting(i)))
            })
            .collect()
    }

    /// Start `ids` in order. A failed start is retried as a new restart
    /// (counted against intensity), as OTP's `try_again_restart` does.
    async fn start_ids(&mut self, myself: &ActorRef<SupervisorMessage>, ids: Vec<ChildId>) {
        for id in ids {
            let Some(idx) = self.state.position(&id) else {
                continue;
            };
            if self.state.children[idx].cell.is_some() {
                continue;
            }
            if let Err(err) = self.state.start_at(&myself.get_cell(), idx).await {
                tracing::warn!(supervisor = %self.state.path, error = %err, "restart failed; retrying");
                let epoch = self.state.children[idx].epoch;
                let _ = myself.send_message(SupervisorMessage::RetryRestart { id, epoch });
                return;
            }
        }
    }

    /// Intensity exceeded: stop every child in reverse order and fail, so
    /// the parent sees an abnormal exit (OTP exits with `shutdown`; a failure
    /// here makes even a transient parent spec restart the subtree).
    async fn escalate(&mut self) -> SupervisorError {
        let err = SupervisorError::MaxIntensity {
            supervisor: self.state.path.clone(),
            max_restarts: self.state.flags.max_restarts,
            period_ms: self.state.flags.period_ms,
        };
        tracing::error!(supervisor = %self.state.path, "{err}");
        metrics::escalated(&self.state.path);
        self.state.shutdown_all().await;
        self.report(RootExit::Escalated(err.clone()));
        err
    }

    async fn start_child(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        spec: ChildSpec,
    ) -> Result<(), SupervisorError> {
        spec.validate()?;
        if self.state.position(&spec.id).is_some() {
            return Err(SpecError::DuplicateId(spec.id).into());
        }
        if self.state.children.len() >= self.state.flags.max_children {
            let max = self.state.flags.max_children;
            return Err(SpecError::TooManyChildren { max }.into());
        }
        let idx = self.state.add(spec);
        let result = self.state.start_at(&myself.get_cell(), idx).await;
        if result.is_err() {
            // OTP: a child that fails to start is not added.
            self.state.children.remove(idx);
        }
        result
    }

    async fn terminate_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let idx = self
            .state
            .position(id)
            .ok_or_else(|| SupervisorError::NoSuchChild(id.to_owned()))?;
        self.state.stop_at(idx).await;
        let temporary = self.state.children[idx].spec.restart == Restart::Temporary;
        if temporary || self.state.is_dynamic() {
            self.state.children.remove(idx);
        }
        Ok(())
    }

    async fn restart_child(
        &mut self,
        myself: &ActorRef<SupervisorMessage>,
        id: &str,
    ) -> Result<(), SupervisorError> {
        let idx = self
            .state
            .position(id)
            .ok_or_else(|| SupervisorError::NoSuchChild(id.to_owned()))?;
        self.require_stopped(idx)?;
        self.state.start_at(&myself.get_cell(), idx).await
    }

    /// OTP refuses restart_child/delete_child on running and restarting children.
    fn require_stopped(&self, idx: usize) -> Result<(), SupervisorError> {
        let child = &self.state.children[idx];
        let id = child.spec.id.clone();
        match (child.state, &child.cell) {
            (_, Some(_)) => Err(SupervisorError::ChildRunning(id)),
            (ChildState::Restarting, None) => Err(SupervisorError::ChildRestarting(id)),
            _ => Ok(()),
        }
    }

    fn delete_child(&mut self, id: &str) -> Result<(), SupervisorError> {
        let idx = self
            .state
            .position(id)
            .ok_or_else(|| SupervisorError::NoSuchChild(id.to_owned()))?;
        self.require_stopped(idx)?;
        self.state.children.remove(idx);
        Ok(())
    }

    fn inject_fault(
        &self,
        path: Vec<String>,
        mode: FaultMode,
        reply: ractor::RpcReplyPort<Result<(), SupervisorError>>,
    ) {
        match self.state.route(&path) {
            Err(err) => {
                let _ = reply.send(Err(err));
            }
            Ok(Route::Below { supervisor, rest }) => {
                // Forward with the caller's reply port; if the nested
                // supervisor is gone the caller sees the port dropped.
                let _ = supervisor.send_message(SupervisorMessage::InjectFault {
                    path: rest,
                    mode,
                    reply,
                });
            }
            Ok(Route::Here { child, cell }) => {
                let full = format!("{}/{}", self.state.path, child.spec.id);
                let result = match (mode, &child.spec.crash) {
                    (FaultMode::Kill, _) => {
                        cell.kill();
                        Ok(())
                    }
                    (FaultMode::Panic, Some(crash)) if crash(cell) => Ok(()),
                    (FaultMode::Panic, Some(_)) => {
                        Err(SupervisorError::ChildNotRunning(full.clone()))
                    }
                    (FaultMode::Panic, None) => {
                        Err(SupervisorError::CrashUnsupported(full.clone()))
                    }
                };
                tracing::warn!(child = %full, ?mode, ok = result.is_ok(), "chaos: fault injection");
                let _ = reply.send(result);
            }
        }
    }

    fn lookup(&self, path: Vec<String>, reply: ractor::RpcReplyPort<Option<ActorCell>>) {
        match self.state.route(&path) {
            Err(_) => {
                let _ = reply.send(None);
            }
            Ok(Route::Here { cell, .. }) => {
                let _ = reply.send(Some(cell.clone()));
            }
            Ok(Route::Below { supervisor, rest }) => {
                let _ =
                    supervisor.send_message(SupervisorMessage::LookupChild { path: rest, reply });
            }
        }
    }
}
