//! The calling side: one request, answered within a timeout, by this
//! node's own handler (no encoding) or by a peer's [`Service`](super::Service)
//! over the node link. A refusal in the answer becomes
//! [`RpcError::Remote`], so callers see one error type either way.

use std::time::Duration;

use ractor::rpc::CallResult;
use ractor::ActorRef;

use super::error::RpcError;
use super::frame;
use super::protocol::{group, Direction, Handler, Protocol};
use super::service::ServiceMessage;

type Request<H> = <<H as Handler>::Protocol as Protocol>::Request;
type Response<H> = <<H as Handler>::Protocol as Protocol>::Response;
type Error<H> = RpcError<<<H as Handler>::Protocol as Protocol>::Code>;

fn timeout_ms(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}

fn into_result<P: Protocol>(response: P::Response) -> Result<P::Response, RpcError<P::Code>> {
    P::into_result(response).map_err(RpcError::Remote)
}

/// Calls from one member: its own requests go to `local`, others to the
/// peer's service.
#[derive(Clone)]
pub struct Caller<H> {
    me: String,
    local: H,
}

impl<H: Handler> Caller<H> {
    /// For the member whose link name is `me`, answering itself with `local`.
    pub fn new(me: String, local: H) -> Self {
        Self { me, local }
    }

    /// Whether `peer` (a link name) is this member.
    pub fn is_local(&self, peer: &str) -> bool {
        peer == self.me
    }

    /// One request to `peer` (a link name), answered within `timeout`.
    pub async fn call(
        &self,
        peer: &str,
        request: Request<H>,
        timeout: Duration,
    ) -> Result<Response<H>, Error<H>> {
        if self.is_local(peer) {
            self.call_local(request, timeout).await
        } else {
            call_remote::<H::Protocol>(peer, &request, timeout).await
        }
    }

    /// One request to this member's own handler, answered within `timeout`.
    pub async fn call_local(
        &self,
        request: Request<H>,
        timeout: Duration,
    ) -> Result<Response<H>, Error<H>> {
        match tokio::time::timeout(timeout, self.local.answer(request)).await {
            Ok(response) => into_result::<H::Protocol>(response),
            Err(_) => Err(RpcError::Timeout(timeout_ms(timeout))),
        }
    }
}

/// The mirror of `peer`'s (a link name) `P` service, if linked.
pub fn remote_service<P: Protocol>(peer: &str) -> Option<ActorRef<ServiceMessage>> {
    ractor::pg::get_members(&group::<P>(peer))
        .into_iter()
        .find(|cell| !cell.get_id().is_local())
        .map(ActorRef::from)
}

/// One request to `peer`'s (a link name) `P` service over the node link.
pub async fn call_remote<P: Protocol>(
    peer: &str,
    request: &P::Request,
    timeout: Duration,
) -> Result<P::Response, RpcError<P::Code>> {
    let bytes = frame::encode_request::<P>(request).map_err(RpcError::codec)?;
    let service =
        remote_service::<P>(peer).ok_or_else(|| RpcError::Unreachable(peer.to_string()))?;
    P::count_bytes(Direction::Sent, bytes.len());
    let answer = service
        .call(|reply| ServiceMessage::Call(bytes, reply), Some(timeout))
        .await;
    match answer {
        Ok(CallResult::Success(bytes)) => {
            P::count_bytes(Direction::Received, bytes.len());
            let response = frame::decode_response::<P>(&bytes).map_err(RpcError::Codec)?;
            into_result::<P>(response)
        }
        Ok(CallResult::Timeout) => Err(RpcError::Timeout(timeout_ms(timeout))),
        // A frozen or dead peer shows up as a send error or a timeout at random.
        Ok(CallResult::SenderError) | Err(_) => Err(RpcError::Unreachable(format!(
            "{peer} (link closed during the call)"
        ))),
    }
}
