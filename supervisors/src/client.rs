//! A typed handle for talking to a supervisor; every call has a timeout.
//!
//! Hold it only as long as the supervisor incarnation it names: after a
//! restart the supervisor is a new actor. Resolve again (registry name,
//! parent lookup) rather than caching it.

use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::{ActorCell, ActorRef, RpcReplyPort};

use crate::error::SupervisorError;
use crate::snapshot::{ChildCounts, ChildInfo, SupervisorSnapshot};
use crate::spec::ChildSpec;
use crate::supervisor::{FaultMode, SupervisorMessage};

/// A handle on one supervisor incarnation.
#[derive(Clone, Debug)]
pub struct SupervisorRef {
    actor: ActorRef<SupervisorMessage>,
    timeout: Duration,
}

impl SupervisorRef {
    /// Wrap `actor`; calls give up after `timeout`.
    pub fn new(actor: ActorRef<SupervisorMessage>, timeout: Duration) -> Self {
        Self { actor, timeout }
    }

    async fn call<T, F>(&self, build: F) -> Result<T, SupervisorError>
    where
        T: Send + 'static,
        F: FnOnce(RpcReplyPort<T>) -> SupervisorMessage,
    {
        match self.actor.call(build, Some(self.timeout)).await {
            Ok(CallResult::Success(v)) => Ok(v),
            Ok(CallResult::Timeout) => Err(SupervisorError::Unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
            Ok(CallResult::SenderError) => Err(SupervisorError::Unavailable(
                "the request was dropped (supervisor or child restarting)".into(),
            )),
            Err(err) => Err(SupervisorError::Unavailable(err.to_string())),
        }
    }

    /// OTP `which_children`.
    pub async fn which_children(&self) -> Result<Vec<ChildInfo>, SupervisorError> {
        self.call(|reply| SupervisorMessage::WhichChildren { reply })
            .await
    }

    /// OTP `count_children`.
    pub async fn count_children(&self) -> Result<ChildCounts, SupervisorError> {
        self.call(|reply| SupervisorMessage::CountChildren { reply })
            .await
    }

    /// The tree below this supervisor.
    pub async fn snapshot(&self) -> Result<SupervisorSnapshot, SupervisorError> {
        self.call(|reply| SupervisorMessage::Snapshot { reply })
            .await
    }

    /// OTP `start_child`.
    pub async fn start_child(&self, spec: ChildSpec) -> Result<(), SupervisorError> {
        self.call(|reply| SupervisorMessage::StartChild { spec, reply })
            .await?
    }

    /// OTP `terminate_child`.
    pub async fn terminate_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id = id.to_owned();
        self.call(|reply| SupervisorMessage::TerminateChild { id, reply })
            .await?
    }

    /// OTP `restart_child`.
    pub async fn restart_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id = id.to_owned();
        self.call(|reply| SupervisorMessage::RestartChild { id, reply })
            .await?
    }

    /// OTP `delete_child`.
    pub async fn delete_child(&self, id: &str) -> Result<(), SupervisorError> {
        let id = id.to_owned();
        self.call(|reply| SupervisorMessage::DeleteChild { id, reply })
            .await?
    }

    /// Make the child at `path` (ids below this supervisor) fail.
    pub async fn inject_fault(
        &self,
        path: &[&str],
        mode: FaultMode,
    ) -> Result<(), SupervisorError> {
        let path = path.iter().map(|s| (*s).to_owned()).collect();
        self.call(|reply| SupervisorMessage::InjectFault { path, mode, reply })
            .await?
    }

    /// The running cell at `path`, if any.
    pub async fn lookup(&self, path: &[&str]) -> Result<Option<ActorCell>, SupervisorError> {
        let path = path.iter().map(|s| (*s).to_owned()).collect();
        self.call(|reply| SupervisorMessage::LookupChild { path, reply })
            .await
    }
}
