//! The remotable service actor: a node's one endpoint for a protocol.
//! Peers find it in the process group [`group`](super::group) and send it
//! encoded requests; it decodes, validates and answers each in its own
//! task, at most [`MAX_IN_FLIGHT`] at once, so one slow disk read does not
//! hold up the others and a flood is refused instead of queued.

use std::marker::PhantomData;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use ractor_cluster::RactorClusterMessage;
use tokio::task::JoinSet;

use super::frame;
use super::protocol::{Code, Handler, Protocol};
use super::WireError;

/// Requests answered at once; more are refused as Unavailable (the caller
/// tries another replica or later) instead of queueing without bound.
pub const MAX_IN_FLIGHT: usize = 256;

/// The message of every service. It travels between nodes: ractor_cluster
/// matches variants by name, so they are never renamed. The payload is a
/// versioned [`frame`], decoded by the service, never trusted.
#[derive(RactorClusterMessage)]
pub enum ServiceMessage {
    /// An encoded request; the answer is an encoded response.
    #[rpc]
    Call(Vec<u8>, RpcReplyPort<Vec<u8>>),
}

/// The service behaviour for handler `H`.
pub struct Service<H>(PhantomData<fn() -> H>);

impl<H> Service<H> {
    /// The behaviour (it holds nothing: each incarnation's state does).
    pub const fn new() -> Self {
        Self(PhantomData)
    }
}

impl<H> Default for Service<H> {
    fn default() -> Self {
        Self::new()
    }
}

/// What each incarnation is given.
#[derive(Clone)]
pub struct ServiceArgs<H> {
    /// The process group it joins ([`group`](super::group)).
    pub group: String,
    /// The request handler.
    pub handler: H,
}

/// State of one incarnation.
pub struct ServiceState<H> {
    handler: H,
    in_flight: JoinSet<()>,
}

type Request<H> = <<H as Handler>::Protocol as Protocol>::Request;
type Proto<H> = <H as Handler>::Protocol;

/// Decode a request, or the encoded refusal to send back (counted in the
/// protocol's bad-request metric).
fn decode_or_refuse<H: Handler>(bytes: &[u8]) -> Result<Request<H>, Vec<u8>> {
    frame::decode_request::<Proto<H>>(bytes).map_err(|err| {
        metrics::counter!(Proto::<H>::BAD_REQUESTS_METRIC).increment(1);
        frame::encode_or_error::<Proto<H>>(&Proto::<H>::refusal(err))
    })
}

/// Answer one encoded request, encoded: the path of a listener that is not
/// the service actor (the DHT's bulk connections), with the same decoding,
/// refusals and metric.
pub async fn answer_frame<H: Handler>(handler: &H, bytes: &[u8]) -> Vec<u8> {
    match decode_or_refuse::<H>(bytes) {
        Ok(request) => frame::encode_or_error::<Proto<H>>(&handler.answer(request).await),
        Err(refusal) => refusal,
    }
}

fn answer<H: Handler>(state: &mut ServiceState<H>, bytes: &[u8], reply: RpcReplyPort<Vec<u8>>) {
    while state.in_flight.try_join_next().is_some() {}
    let request = match decode_or_refuse::<H>(bytes) {
        Ok(request) => request,
        Err(refusal) => {
            let _ = reply.send(refusal);
            return;
        }
    };
    if state.in_flight.len() >= MAX_IN_FLIGHT {
        let busy = WireError::new(
            <<Proto<H> as Protocol>::Code as Code>::UNAVAILABLE,
            "too many requests in flight",
        );
        let _ = reply.send(frame::encode_or_error::<Proto<H>>(&Proto::<H>::refusal(
            busy,
        )));
        return;
    }
    let handler = state.handler.clone();
    state.in_flight.spawn(async move {
        let response = handler.answer(request).await;
        let _ = reply.send(frame::encode_or_error::<Proto<H>>(&response));
    });
}

impl<H: Handler> Actor for Service<H> {
    type Msg = ServiceMessage;
    type State = ServiceState<H>;
    type Arguments = ServiceArgs<H>;

    async fn pre_start(
        &self,
        myself: ActorRef<ServiceMessage>,
        args: ServiceArgs<H>,
    ) -> Result<ServiceState<H>, ActorProcessingErr> {
        ractor::pg::join(args.group, vec![myself.get_cell()]);
        Ok(ServiceState {
            handler: args.handler,
            in_flight: JoinSet::new(),
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<ServiceMessage>,
        message: ServiceMessage,
        state: &mut ServiceState<H>,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            ServiceMessage::Call(bytes, reply) => answer(state, &bytes, reply),
        }
        Ok(())
    }
}
