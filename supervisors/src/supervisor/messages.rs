//! The supervisor's message enum.

use ractor::{ActorCell, RpcReplyPort};

use crate::error::SupervisorError;
use crate::snapshot::{ChildCounts, ChildInfo, SupervisorSnapshot};
use crate::spec::{ChildId, ChildSpec};

/// How the chaos endpoint makes a child fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultMode {
    /// The child panics inside a handler (needs a crash message in its spec).
    Panic,
    /// The child is killed: its running handler is dropped.
    Kill,
}

/// Requests a supervisor answers. Local only: never sent over the wire.
pub enum SupervisorMessage {
    /// OTP `which_children`.
    WhichChildren {
        /// Answer.
        reply: RpcReplyPort<Vec<ChildInfo>>,
    },
    /// OTP `count_children`.
    CountChildren {
        /// Answer.
        reply: RpcReplyPort<ChildCounts>,
    },
    /// The tree below this supervisor, nested supervisors included.
    Snapshot {
        /// Answer.
        reply: RpcReplyPort<SupervisorSnapshot>,
    },
    /// OTP `start_child`: add a child at the end and start it.
    StartChild {
        /// The new child.
        spec: ChildSpec,
        /// Answer.
        reply: RpcReplyPort<Result<(), SupervisorError>>,
    },
    /// OTP `terminate_child`: stop it per its shutdown. Static supervisors
    /// keep the spec (restart it with `RestartChild`); dynamic ones drop it.
    TerminateChild {
        /// The child.
        id: ChildId,
        /// Answer.
        reply: RpcReplyPort<Result<(), SupervisorError>>,
    },
    /// OTP `restart_child`: start a stopped child again.
    RestartChild {
        /// The child.
        id: ChildId,
        /// Answer.
        reply: RpcReplyPort<Result<(), SupervisorError>>,
    },
    /// OTP `delete_child`: forget a stopped child's spec.
    DeleteChild {
        /// The child.
        id: ChildId,
        /// Answer.
        reply: RpcReplyPort<Result<(), SupervisorError>>,
    },
    /// Make the child at `path` (relative to this supervisor) fail.
    InjectFault {
        /// Child ids from here down.
        path: Vec<ChildId>,
        /// Panic or kill.
        mode: FaultMode,
        /// Answer, sent once the fault is delivered (not once restarted).
        reply: RpcReplyPort<Result<(), SupervisorError>>,
    },
    /// The running cell of the child at `path`, if any.
    LookupChild {
        /// Child ids from here down.
        path: Vec<ChildId>,
        /// Answer.
        reply: RpcReplyPort<Option<ActorCell>>,
    },
    /// Internal: a restart whose start failed, or whose backoff elapsed.
    RetryRestart {
        /// The child to restart (with its strategy's siblings).
        id: ChildId,
        /// The child's epoch when the retry was scheduled; stale if changed.
        epoch: u64,
    },
    /// Internal: start children after a backoff delay.
    StartDelayed {
        /// Children to start, in order, each with the epoch it was marked at.
        ids: Vec<(ChildId, u64)>,
    },
    /// Panics this supervisor (chaos `mode=panic` on a supervisor).
    Crash,
}

impl ractor::Message for SupervisorMessage {}

impl crate::spec::CrashMessage for SupervisorMessage {
    fn crash() -> Self {
        SupervisorMessage::Crash
    }
}
