//! OTP supervisor behaviour on ractor.
//!
//! ractor provides links and supervision events but no supervisor: no
//! strategies, restart types or intensity. This crate ports the semantics of
//! Erlang/OTP's `supervisor.erl`:
//!
//! - child specs ([`ChildSpec`]) with restart [`Restart`] (permanent /
//!   transient / temporary), [`Shutdown`] (brutal kill / timeout / infinity)
//!   and [`ChildKind`], validated up front;
//! - strategies [`Strategy`] one_for_one, one_for_all, rest_for_one, and a
//!   dynamic mode ([`SupervisorFlags::dynamic`], [`ChildTemplate`]);
//! - restart intensity within a period ([`RestartWindow`], OTP defaults 1 in
//!   5 s); exceeding it stops the children in reverse order and fails the
//!   supervisor so that its parent handles it (escalation);
//! - optional restart [`Backoff`] (not in OTP);
//! - start in order, stop in reverse order; `which_children`,
//!   `count_children`, and a recursive [`SupervisorSnapshot`];
//! - metrics `hypha_supervisor_restarts_total{supervisor,child}` and
//!   `hypha_supervisor_escalations_total{supervisor}`;
//! - a quiet panic hook ([`install_quiet_panic_hook`]).
//!
//! `docs/supervision.md` states the exact semantics and where they differ
//! from OTP.

mod backoff;
mod client;
mod error;
mod intensity;
pub mod metrics;
mod panic_hook;
mod snapshot;
mod spec;
mod strategy;
mod supervisor;
mod template;

pub use backoff::Backoff;
pub use client::SupervisorRef;
pub use error::{SpecError, SupervisorError};
pub use intensity::{RestartVerdict, RestartWindow};
pub use panic_hook::{catch_panic, install_quiet_panic_hook};
pub use snapshot::{ChildCounts, ChildInfo, ChildSnapshot, ChildState, SupervisorSnapshot};
pub use spec::{
    validate_specs, ChildId, ChildKind, ChildSpec, CrashMessage, Restart, Shutdown, StartContext,
    StartFuture, DEFAULT_WORKER_SHUTDOWN_MS,
};
pub use strategy::{restart_plan, RestartPlan, Strategy};
pub use supervisor::{
    ChildrenMode, FaultMode, RootExit, RootHandle, Supervisor, SupervisorArgs, SupervisorFlags,
    SupervisorMessage, DEFAULT_MAX_CHILDREN, DEFAULT_MAX_RESTARTS, DEFAULT_PERIOD_MS,
};
pub use template::ChildTemplate;
