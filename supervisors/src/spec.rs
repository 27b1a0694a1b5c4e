//! Child specifications: what a supervisor starts, and how it restarts and
//! stops it. Mirrors OTP's `child_spec()` map; validated up front.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use ractor::{Actor, ActorCell, Message, SpawnErr};
use serde::Serialize;

use crate::error::SpecError;

/// Identifier of a child inside its supervisor; one segment of a tree path.
pub type ChildId = String;

/// When a child that exited is restarted (OTP `restart`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Restart {
    /// Always restarted.
    Permanent,
    /// Restarted only after an abnormal exit.
    Transient,
    /// Never restarted; removed from the supervisor when it exits.
    Temporary,
}

/// How a child is stopped by its supervisor (OTP `shutdown`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Shutdown {
    /// Killed at once: the running handler is dropped, `post_stop` is skipped.
    BrutalKill,
    /// Asked to stop (`post_stop` runs); killed if not stopped after `timeout_ms`.
    Timeout {
        /// Grace period before the kill.
        timeout_ms: u64,
    },
    /// Asked to stop and waited for without limit (the default for supervisors).
    Infinity,
}

/// Whether a child is a worker or a supervisor (OTP `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildKind {
    /// A leaf actor.
    Worker,
    /// A Hypha [`crate::Supervisor`]: snapshots and paths descend into it.
    Supervisor,
}

/// What a start function is told about where the child goes.
#[derive(Clone)]
pub struct StartContext {
    /// The supervisor to link the child to.
    pub supervisor: ActorCell,
    /// Full tree path of the child, e.g. `node/admin/http`.
    pub path: String,
}

/// Future returned by a start function: the started child's cell.
pub type StartFuture = BoxFuture<'static, Result<ActorCell, SpawnErr>>;
type StartFn = Arc<dyn Fn(StartContext) -> StartFuture + Send + Sync>;
type CrashFn = Arc<dyn Fn(&ActorCell) -> bool + Send + Sync>;

/// A message type that can carry an injected panic for chaos testing.
///
/// The actor handling `crash()` must panic. Only the admin chaos endpoint
/// sends it; it exists so that the failure path (no `post_stop`, state
/// dropped mid-flight) is exercised on real actors.
pub trait CrashMessage: Message {
    /// The message whose handling panics.
    fn crash() -> Self;
}

/// One child of a supervisor.
#[derive(Clone)]
pub struct ChildSpec {
    pub(crate) id: ChildId,
    pub(crate) start: StartFn,
    pub(crate) restart: Restart,
    pub(crate) shutdown: Shutdown,
    pub(crate) kind: ChildKind,
    pub(crate) crash: Option<CrashFn>,
    pub(crate) metric_label: String,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Default grace for workers, as in OTP (5 000 ms).
pub const DEFAULT_WORKER_SHUTDOWN_MS: u64 = 5_000;

impl ChildSpec {
    /// A permanent worker with a 5 s shutdown, started by `start`.
    pub fn new<F>(id: impl Into<ChildId>, start: F) -> Self
    where
        F: Fn(StartContext) -> StartFuture + Send + Sync + 'static,
    {
        let id = id.into();
        Self {
            metric_label: id.clone(),
            id,
            start: Arc::new(start),
            restart: Restart::Permanent,
            shutdown: Shutdown::Timeout {
                timeout_ms: DEFAULT_WORKER_SHUTDOWN_MS,
            },
            kind: ChildKind::Worker,
            crash: None,
        }
    }

    /// A permanent worker spawning actor `A`. `make` builds the registry name
    /// (if any), the actor and its arguments afresh for every start, so a
    /// restart rebuilds from whatever `make` reads (durable state, handles
    /// that outlive incarnations).
    pub fn actor<A, F>(id: impl Into<ChildId>, make: F) -> Self
    where
        A: Actor,
        F: Fn(&StartContext) -> (Option<String>, A, A::Arguments) + Send + Sync + 'static,
    {
        Self::new(id, move |ctx: StartContext| {
            let (name, actor, args) = make(&ctx);
            Box::pin(async move {
                if let Some(name) = &name {
                    await_name_free(name).await;
                }
                let (actor_ref, _join) =
                    Actor::spawn_linked(name, actor, args, ctx.supervisor).await?;
                Ok(actor_ref.get_cell())
            })
        })
    }

    /// Set the restart type.
    pub fn restart(mut self, restart: Restart) -> Self {
        self.restart = restart;
        self
    }

    /// Set the shutdown.
    pub fn shutdown(mut self, shutdown: Shutdown) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// Set the kind (workers by default).
    pub fn kind(mut self, kind: ChildKind) -> Self {
        self.kind = kind;
        self
    }

    /// Allow the chaos endpoint to inject a panic by sending `M::crash()`.
    pub fn crash_message<M: CrashMessage>(mut self) -> Self {
        self.crash = Some(Arc::new(|cell: &ActorCell| {
            cell.send_message(M::crash()).is_ok()
        }));
        self
    }

    /// Metric label for this child; defaults to the id. Dynamic children set
    /// it to their template name so label values stay bounded.
    pub fn metric_label(mut self, label: impl Into<String>) -> Self {
        self.metric_label = label.into();
        self
    }

    /// The child's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Check this spec on its own.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.id.is_empty() {
            return Err(SpecError::EmptyId);
        }
        if self.id.contains('/') || self.id.chars().any(char::is_whitespace) {
            return Err(SpecError::InvalidId(self.id.clone()));
        }
        if self.shutdown == (Shutdown::Timeout { timeout_ms: 0 }) {
            return Err(SpecError::ZeroShutdownTimeout(self.id.clone()));
        }
        Ok(())
    }
}

/// How long a start waits for a previous incarnation to give up its name.
const NAME_RELEASE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// When a nested supervisor is killed, ractor kills its children without
/// waiting; a named grandchild may still hold its registry name when the
/// subtree is restarted. Wait (bounded) for that incarnation to exit.
async fn await_name_free(name: &str) {
    if let Some(previous) = ractor::registry::where_is(name) {
        if previous.wait(Some(NAME_RELEASE_WAIT)).await.is_err() {
            tracing::warn!(name, "previous incarnation still holds the name");
        }
    }
}

/// Check a supervisor's children: each valid, ids unique.
pub fn validate_specs(specs: &[ChildSpec]) -> Result<(), SpecError> {
    let mut seen = HashSet::new();
    for spec in specs {
        spec.validate()?;
        if !seen.insert(spec.id.as_str()) {
            return Err(SpecError::DuplicateId(spec.id.clone()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noop(id: &str) -> ChildSpec {
        ChildSpec::new(id, |_ctx| {
            Box::pin(async { Err(SpawnErr::StartupFailed("unused".into())) })
        })
    }

    #[test]
    fn rejects_bad_ids_and_duplicates() {
        assert_eq!(noop("").validate(), Err(SpecError::EmptyId));
        assert_eq!(
            noop("a/b").validate(),
            Err(SpecError::InvalidId("a/b".into()))
        );
        assert_eq!(
            validate_specs(&[noop("a"), noop("b"), noop("a")]),
            Err(SpecError::DuplicateId("a".into()))
        );
        assert_eq!(
            noop("z")
                .shutdown(Shutdown::Timeout { timeout_ms: 0 })
                .validate(),
            Err(SpecError::ZeroShutdownTimeout("z".into()))
        );
        assert!(validate_specs(&[noop("a"), noop("b")]).is_ok());
    }
}
