//! The work service actor's shell: decode, answer in a bounded task set,
//! encode.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinSet;

use super::messages::WorkServiceMessage;
use crate::client::WorkHandler;
use crate::wire::{self, ErrorCode, WireError, WorkResponse};
use hypha_cluster::membership::MemberKey;

/// Requests answered at once; more are refused as Unavailable.
const MAX_IN_FLIGHT: usize = 256;

/// The process group of a member's work service.
pub fn work_group(member: &MemberKey) -> String {
    format!("hypha.work.{}", member.link_name())
}

/// The service behaviour.
pub struct WorkService;

/// What each incarnation is given.
#[derive(Clone)]
pub struct WorkServiceArgs {
    /// This member (its group name).
    pub me: MemberKey,
    /// Routes requests to the local actors.
    pub handler: WorkHandler,
}

/// State of one incarnation.
pub struct WorkServiceState {
    handler: WorkHandler,
    in_flight: JoinSet<()>,
}

fn answer(state: &mut WorkServiceState, bytes: Vec<u8>, reply: RpcReplyPort<Vec<u8>>) {
    while state.in_flight.try_join_next().is_some() {}
    let request = match wire::decode_request(&bytes) {
        Ok(r) => r,
        Err(err) => {
            metrics::counter!("hypha_jobs_bad_requests_total").increment(1);
            let _ = reply.send(wire::encode_or_error(&WorkResponse::Error(err)));
            return;
        }
    };
    if state.in_flight.len() >= MAX_IN_FLIGHT {
        let busy = WireError::new(ErrorCode::Unavailable, "too many requests in flight");
        let _ = reply.send(wire::encode_or_error(&WorkResponse::Error(busy)));
        return;
    }
    let handler = state.handler.clone();
    state.in_flight.spawn(async move {
        let response = handler.handle(request).await;
        let _ = reply.send(wire::encode_or_error(&response));
    });
}

impl Actor for WorkService {
    type Msg = WorkServiceMessage;
    type State = WorkServiceState;
    type Arguments = WorkServiceArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<WorkServiceMessage>,
        args: WorkServiceArgs,
    ) -> Result<WorkServiceState, ActorProcessingErr> {
        ractor::pg::join(work_group(&args.me), vec![myself.get_cell()]);
        Ok(WorkServiceState {
            handler: args.handler,
            in_flight: JoinSet::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<WorkServiceMessage>,
        message: WorkServiceMessage,
        state: &mut WorkServiceState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            WorkServiceMessage::Call(bytes, reply) => answer(state, bytes, reply),
        }
        Ok(())
    }
}
