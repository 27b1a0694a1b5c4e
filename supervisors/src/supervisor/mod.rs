//! The supervisor actor: holds child specs, starts them in order, restarts
//! them by strategy within a restart intensity, escalates when that is
//! exceeded, and stops them in reverse order.

mod actor;
mod children;
mod messages;

pub use actor::{RootExit, RootHandle, Supervisor, SupervisorArgs};
pub use messages::{FaultMode, SupervisorMessage};

use serde::Serialize;

use crate::backoff::Backoff;
use crate::spec::{ChildKind, ChildSpec, Shutdown};
use crate::strategy::Strategy;

/// Whether children come from the start-up list or are added at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChildrenMode {
    /// A fixed list (children may still be added with `start_child`);
    /// terminated children keep their spec.
    Static,
    /// Children added at run time (OTP `simple_one_for_one`, Elixir's
    /// `DynamicSupervisor`): one_for_one, and a child's spec is dropped
    /// when it is terminated or exits for good.
    Dynamic,
}

/// A supervisor's flags (OTP `sup_flags()`), plus backoff and a child cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SupervisorFlags {
    /// Which children restart together.
    pub strategy: Strategy,
    /// Restarts allowed within `period_ms` (OTP `intensity`, default 1).
    pub max_restarts: u32,
    /// The intensity window (OTP `period`, default 5 s).
    pub period_ms: u64,
    /// Optional delay before restarts (not in OTP).
    pub backoff: Option<Backoff>,
    /// Static or dynamic children.
    pub mode: ChildrenMode,
    /// Upper bound on children (input can add dynamic children).
    pub max_children: usize,
}

/// OTP's default intensity: 1 restart ...
pub const DEFAULT_MAX_RESTARTS: u32 = 1;
/// ... within 5 seconds.
pub const DEFAULT_PERIOD_MS: u64 = 5_000;
/// Default cap on the children of one supervisor.
pub const DEFAULT_MAX_CHILDREN: usize = 10_000;

impl SupervisorFlags {
    /// A static supervisor with OTP's default intensity.
    pub fn new(strategy: Strategy) -> Self {
        Self {
            strategy,
            max_restarts: DEFAULT_MAX_RESTARTS,
            period_ms: DEFAULT_PERIOD_MS,
            backoff: None,
            mode: ChildrenMode::Static,
            max_children: DEFAULT_MAX_CHILDREN,
        }
    }

    /// A dynamic (one_for_one) supervisor holding at most `max_children`.
    pub fn dynamic(max_children: usize) -> Self {
        Self {
            mode: ChildrenMode::Dynamic,
            max_children,
            ..Self::new(Strategy::OneForOne)
        }
    }

    /// Set the intensity: at most `max_restarts` within `period_ms`.
    pub fn intensity(mut self, max_restarts: u32, period_ms: u64) -> Self {
        self.max_restarts = max_restarts;
        self.period_ms = period_ms;
        self
    }

    /// Delay restarts by an exponential backoff.
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }
}

impl ChildSpec {
    /// A child that is itself a supervisor of `children`: permanent,
    /// shutdown `Infinity` (it stops its own children within their bounds),
    /// and panicable through the chaos endpoint.
    pub fn supervisor(
        id: impl Into<String>,
        flags: SupervisorFlags,
        children: Vec<ChildSpec>,
    ) -> Self {
        ChildSpec::actor(id, move |ctx| {
            let args = SupervisorArgs::new(ctx.path.clone(), flags, children.clone());
            (None, Supervisor, args)
        })
        .kind(ChildKind::Supervisor)
        .shutdown(Shutdown::Infinity)
        .crash_message::<SupervisorMessage>()
    }
}
