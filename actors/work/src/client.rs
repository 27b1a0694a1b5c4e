//! How nodes reach each other's work service: [`WorkClient`] sends a
//! [`WorkRequest`] to a member (its own node straight to the local
//! [`WorkHandler`], others over the node link) and [`WorkHandler`] routes
//! a request to the local actor that answers it.

use std::future::Future;
use std::time::Duration;

use hypha_core::rpc::{self, Caller};
use ractor::rpc::CallResult;
use ractor::ActorRef;

use super::queues::QueuesMessage;
use super::wire::{ErrorCode, WireError, WorkRequest, WorkResponse, WorkWire};
use super::workers::WorkersMessage;
use hypha_cluster::membership::MemberKey;

/// Why a call failed: the shared RPC layer's error over work codes.
pub type RpcError = rpc::RpcError<ErrorCode>;

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

impl rpc::Handler for WorkHandler {
    type Protocol = WorkWire;

    fn answer(&self, request: WorkRequest) -> impl Future<Output = WorkResponse> + Send {
        self.handle(request)
    }
}

/// Sends work requests to members.
#[derive(Clone)]
pub struct WorkClient {
    me: MemberKey,
    caller: Caller<WorkHandler>,
}

impl WorkClient {
    /// For member `me`, whose own requests go to `local`.
    pub fn new(me: MemberKey, local: WorkHandler) -> Self {
        let caller = Caller::new(me.link_name(), local);
        Self { me, caller }
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
    ) -> Result<WorkResponse, RpcError> {
        let timeout = Duration::from_millis(timeout_ms);
        match self.caller.call(&peer.link_name(), request, timeout).await {
            // Work callers have always read a frame that does not encode or
            // decode as a refusal, by its code (BadRequest, Version).
            Err(RpcError::Codec(err)) => Err(RpcError::Remote(err)),
            other => other,
        }
    }
}
