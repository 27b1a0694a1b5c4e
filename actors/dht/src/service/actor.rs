//! The DHT service actor's shell: decode, answer in a bounded task set,
//! encode.

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::task::JoinSet;

use super::handler::DhtHandler;
use super::messages::DhtServiceMessage;
use crate::wire::{self, ErrorCode, Response, WireError};
use hypha_cluster::membership::MemberKey;

/// Requests answered at once; more are refused as Unavailable (the caller
/// tries another replica) instead of queueing without bound.
const MAX_IN_FLIGHT: usize = 256;

/// The process group of a member's DHT service.
pub fn dht_group(member: &MemberKey) -> String {
    format!("hypha.dht.{}", member.link_name())
}

/// The service behaviour.
pub struct DhtService;

/// What each incarnation is given.
#[derive(Clone)]
pub struct DhtServiceArgs {
    /// This member (its group name).
    pub me: MemberKey,
    /// The request handler.
    pub handler: DhtHandler,
}

/// State of one incarnation.
pub struct DhtServiceState {
    handler: DhtHandler,
    in_flight: JoinSet<()>,
}

/// Encode an answer; one that does not encode becomes an encoded error,
/// so a caller always gets a reply it can decode. Shared with the bulk
/// listener, which answers the same requests on its own connections.
pub fn encode_or_error(response: &Response) -> Vec<u8> {
    match wire::encode_response(response) {
        Ok(bytes) => bytes,
        Err(err) => {
            let fallback = Response::Error(WireError::new(ErrorCode::Storage, err.to_string()));
            wire::encode_response(&fallback).unwrap_or_default()
        }
    }
}

fn answer(state: &mut DhtServiceState, bytes: Vec<u8>, reply: RpcReplyPort<Vec<u8>>) {
    while state.in_flight.try_join_next().is_some() {}
    let request = match wire::decode_request(&bytes) {
        Ok(r) => r,
        Err(err) => {
            metrics::counter!("hypha_dht_bad_requests_total").increment(1);
            let _ = reply.send(encode_or_error(&Response::Error(err)));
            return;
        }
    };
    if state.in_flight.len() >= MAX_IN_FLIGHT {
        let busy = WireError::new(ErrorCode::Unavailable, "too many requests in flight");
        let _ = reply.send(encode_or_error(&Response::Error(busy)));
        return;
    }
    let handler = state.handler.clone();
    state.in_flight.spawn(async move {
        let response = handler.handle(request).await;
        let _ = reply.send(encode_or_error(&response));
    });
}

impl Actor for DhtService {
    type Msg = DhtServiceMessage;
    type State = DhtServiceState;
    type Arguments = DhtServiceArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<DhtServiceMessage>,
        args: DhtServiceArgs,
    ) -> Result<DhtServiceState, ActorProcessingErr> {
        ractor::pg::join(dht_group(&args.me), vec![myself.get_cell()]);
        Ok(DhtServiceState {
            handler: args.handler,
            in_flight: JoinSet::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<DhtServiceMessage>,
        message: DhtServiceMessage,
        state: &mut DhtServiceState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            DhtServiceMessage::Call(bytes, reply) => answer(state, bytes, reply),
        }
        Ok(())
    }
}
