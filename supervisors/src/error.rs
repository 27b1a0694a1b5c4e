//! Typed errors of the supervisor crate.

use thiserror::Error;

/// A child spec (or a set of them) that cannot be accepted.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SpecError {
    /// Child ids name tree paths; an empty one cannot be addressed.
    #[error("a child id must not be empty")]
    EmptyId,
    /// `/` separates path segments, so it cannot appear inside an id.
    #[error("child id {0:?} contains '/' or whitespace")]
    InvalidId(String),
    /// Two children of one supervisor share an id.
    #[error("child id {0:?} is used twice in one supervisor")]
    DuplicateId(String),
    /// `Shutdown::Timeout` of zero; use `Shutdown::BrutalKill` to mean "no grace".
    #[error("child {0:?} has a zero shutdown timeout (use BrutalKill)")]
    ZeroShutdownTimeout(String),
    /// A static supervisor was given more children than its `max_children`.
    #[error("supervisor allows at most {max} children")]
    TooManyChildren {
        /// The configured limit.
        max: usize,
    },
}

/// Failures of supervisor operations and of supervisors themselves.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum SupervisorError {
    /// The spec was rejected before anything started.
    #[error("invalid child spec: {0}")]
    Spec(#[from] SpecError),
    /// No child with this id (or path) exists.
    #[error("no child {0:?}")]
    NoSuchChild(String),
    /// The child is running; the operation needs it stopped.
    #[error("child {0:?} is running")]
    ChildRunning(String),
    /// The child is waiting out a restart backoff.
    #[error("child {0:?} is restarting")]
    ChildRestarting(String),
    /// The child is not running; the operation needs a live child.
    #[error("child {0:?} is not running")]
    ChildNotRunning(String),
    /// The child's start function failed.
    #[error("child {id:?} failed to start: {reason}")]
    StartFailed {
        /// The child.
        id: String,
        /// What its start reported.
        reason: String,
    },
    /// The child does not accept an injected panic (no crash message in its spec).
    #[error("child {0:?} does not accept injected panics; use mode=kill")]
    CrashUnsupported(String),
    /// A path descends into a child that is not a Hypha supervisor.
    #[error("child {0:?} is not a supervisor")]
    NotASupervisor(String),
    /// More restarts than `max_restarts` within `period_ms`: the supervisor
    /// stopped its children and failed, escalating to its parent.
    #[error(
        "supervisor {supervisor} exceeded {max_restarts} restarts in {period_ms} ms; escalating"
    )]
    MaxIntensity {
        /// Path of the supervisor that gave up.
        supervisor: String,
        /// Its configured limit.
        max_restarts: u32,
        /// Its configured window.
        period_ms: u64,
    },
    /// The supervisor did not answer in time or is gone.
    #[error("supervisor unavailable: {0}")]
    Unavailable(String),
}
