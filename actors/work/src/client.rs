//! How nodes reach each other's work service: [`WorkClient`] sends a
//! [`WorkRequest`] to a member (its own node straight to the local
//! [`WorkHandler`], others over the node link) and [`WorkHandler`] routes
//! a request to the local actor that answers it.

use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::ActorRef;
use thiserror::Error;

use super::queues::QueuesMessage;
use super::service::{work_group, WorkServiceMessage};
use super::wire::{self, ErrorCode, WireError, WorkRequest, WorkResponse};
use super::workers::WorkersMessage;
use hypha_cluster::membership::MemberKey;

/// Why a call failed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CallError {
    /// No link to the member, or it went away during the call.
    #[error("no link to {0}")]
    Unreachable(String),
    /// No answer in time.
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// The member refused.
    #[error("refused: {0}")]
    Remote(WireError),
}

/// Routes requests to this node's queues and workers actors.
#[derive(Clone)]
pub struct WorkHandler {
    queues: String,
    workers: String,
    timeout_ms: u64,
}

fn unavailable(what: &str) -> WorkResponse {
    WorkResponse::Error(WireError::new(
        ErrorCode::Unavailable,
        format!("{what} is restarting"),
    ))
}

impl WorkHandler {
    /// A handler for the actors registered as `queues` and `workers`.
    pub fn new(queues: String, workers: String, timeout_ms: u64) -> Self {
        Self {
            queues,
            workers,
            timeout_ms,
        }
    }

    /// Answer one request.
    pub async fn handle(&self, request: WorkRequest) -> WorkResponse {
        let to_workers = matches!(
            request,
            WorkRequest::Offer { .. } | WorkRequest::Abort { .. }
        );
        if to_workers {
            let Some(cell) = ractor::registry::where_is(self.workers.clone()) else {
                return unavailable("the worker pool");
            };
            let actor: ActorRef<WorkersMessage> = cell.into();
            let answer = actor
                .call(
                    |reply| WorkersMessage::Request {
                        request: Box::new(request),
                        reply,
                    },
                    Some(Duration::from_millis(self.timeout_ms)),
                )
                .await;
            return settle(answer, "the worker pool");
        }
        let Some(cell) = ractor::registry::where_is(self.queues.clone()) else {
            return unavailable("the queue owner");
        };
        let actor: ActorRef<QueuesMessage> = cell.into();
        let answer = actor
            .call(
                |reply| QueuesMessage::Request { request, reply },
                Some(Duration::from_millis(self.timeout_ms)),
            )
            .await;
        settle(answer, "the queue owner")
    }
}

fn settle<E>(answer: Result<CallResult<WorkResponse>, E>, what: &str) -> WorkResponse {
    match answer {
        Ok(CallResult::Success(r)) => r,
        Ok(CallResult::Timeout) => WorkResponse::Error(WireError::new(
            ErrorCode::Unavailable,
            format!("{what} did not answer in time"),
        )),
        _ => unavailable(what),
    }
}

/// Sends work requests to members.
#[derive(Clone)]
pub struct WorkClient {
    me: MemberKey,
    local: WorkHandler,
}

impl WorkClient {
    /// For member `me`, whose own requests go to `local`.
    pub fn new(me: MemberKey, local: WorkHandler) -> Self {
        Self { me, local }
    }

    /// This member.
    pub fn me(&self) -> &MemberKey {
        &self.me
    }

    /// One request to `peer`, answered within `timeout_ms`.
    pub async fn call(
        &self,
        peer: &MemberKey,
        request: WorkRequest,
        timeout_ms: u64,
    ) -> Result<WorkResponse, CallError> {
        let timeout = Duration::from_millis(timeout_ms);
        let answer = if peer == &self.me {
            tokio::time::timeout(timeout, self.local.handle(request))
                .await
                .map_err(|_| CallError::Timeout(timeout_ms))?
        } else {
            remote(peer, request, timeout).await?
        };
        match answer {
            WorkResponse::Error(e) => Err(CallError::Remote(e)),
            other => Ok(other),
        }
    }
}

async fn remote(
    peer: &MemberKey,
    request: WorkRequest,
    timeout: Duration,
) -> Result<WorkResponse, CallError> {
    let unreachable = || CallError::Unreachable(peer.link_name());
    let service: ActorRef<WorkServiceMessage> = ractor::pg::get_members(&work_group(peer))
        .into_iter()
        .find(|cell| !cell.get_id().is_local())
        .map(ActorRef::from)
        .ok_or_else(unreachable)?;
    let bytes = wire::encode_request(&request)
        .map_err(|e| CallError::Remote(WireError::new(ErrorCode::BadRequest, e.to_string())))?;
    let answer = service
        .call(
            |reply| WorkServiceMessage::Call(bytes, reply),
            Some(timeout),
        )
        .await;
    match answer {
        Ok(CallResult::Success(bytes)) => wire::decode_response(&bytes).map_err(CallError::Remote),
        Ok(CallResult::Timeout) => Err(CallError::Timeout(
            u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
        )),
        Ok(CallResult::SenderError) | Err(_) => Err(unreachable()),
    }
}
