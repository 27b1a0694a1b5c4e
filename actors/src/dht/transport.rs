//! How a coordinator reaches replicas: [`DhtTransport`], a trait so that
//! tests and simulations can put several nodes' handlers in one process.
//! In production, [`ClusterTransport`]: the peer's DHT service through
//! ractor_cluster, or this node's own handler directly.

use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use ractor::rpc::CallResult;
use ractor::ActorRef;
use thiserror::Error;

use super::service::{dht_group, DhtHandler, DhtServiceMessage};
use super::wire::{self, Request, Response, WireError};
use crate::membership::MemberKey;

/// Why an RPC failed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RpcError {
    /// No link to the peer (not connected, or gone).
    #[error("no link to {0}")]
    Unreachable(String),
    /// No answer in time (a frozen or overloaded peer).
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// The peer answered with an error.
    #[error("peer refused: {0}")]
    Remote(WireError),
    /// The request or answer did not encode or decode.
    #[error("codec: {0}")]
    Codec(String),
}

/// Sends requests to members.
pub trait DhtTransport: Send + Sync + 'static {
    /// One request to `peer`, answered within `timeout`.
    fn call(
        &self,
        peer: &MemberKey,
        request: Request,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Response, RpcError>>;
}

/// Label of a request kind in metrics.
pub fn kind(request: &Request) -> &'static str {
    match request {
        Request::FindNode { .. } => "find_node",
        Request::StoreChunk { .. } => "store_chunk",
        Request::GetChunk { .. } => "get_chunk",
        Request::HasChunks { .. } => "has_chunks",
        Request::PutManifest { .. } => "put_manifest",
        Request::GetManifest { .. } => "get_manifest",
        Request::ListNames(_) => "list_names",
        Request::ListPartition { .. } => "list_partition",
    }
}

fn timeout_ms(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)
}

fn into_result(response: Response) -> Result<Response, RpcError> {
    match response {
        Response::Error(err) => Err(RpcError::Remote(err)),
        other => Ok(other),
    }
}

/// Node links (ractor_cluster), with this node's own handler short-cut.
#[derive(Clone)]
pub struct ClusterTransport {
    me: MemberKey,
    local: DhtHandler,
}

impl ClusterTransport {
    /// For the node `me`, whose own requests go to `local`.
    pub fn new(me: MemberKey, local: DhtHandler) -> Self {
        Self { me, local }
    }
}

fn remote_service(peer: &MemberKey) -> Option<ActorRef<DhtServiceMessage>> {
    ractor::pg::get_members(&dht_group(peer))
        .into_iter()
        .find(|cell| !cell.get_id().is_local())
        .map(ActorRef::from)
}

async fn remote_call(
    service: ActorRef<DhtServiceMessage>,
    bytes: Vec<u8>,
    timeout: Duration,
) -> Result<Response, RpcError> {
    metrics::counter!("hypha_dht_bytes_sent_total").increment(bytes.len() as u64);
    let answer = service
        .call(|reply| DhtServiceMessage::Call(bytes, reply), Some(timeout))
        .await;
    match answer {
        Ok(CallResult::Success(bytes)) => {
            metrics::counter!("hypha_dht_bytes_received_total").increment(bytes.len() as u64);
            wire::decode_response(&bytes).map_err(|e| RpcError::Codec(e.to_string()))
        }
        Ok(CallResult::Timeout) => Err(RpcError::Timeout(timeout_ms(timeout))),
        // A frozen or dead peer shows up as a send error or a timeout at random.
        Ok(CallResult::SenderError) | Err(_) => {
            Err(RpcError::Unreachable("link closed during the call".into()))
        }
    }
}

impl DhtTransport for ClusterTransport {
    fn call(
        &self,
        peer: &MemberKey,
        request: Request,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Response, RpcError>> {
        let kind = kind(&request);
        let started = Instant::now();
        let timed = move |result: Result<Response, RpcError>| {
            metrics::histogram!("hypha_dht_rpc_duration_seconds", "kind" => kind)
                .record(started.elapsed().as_secs_f64());
            if result.is_err() {
                metrics::counter!("hypha_dht_rpc_errors_total", "kind" => kind).increment(1);
            }
            result
        };
        if peer == &self.me {
            let local = self.local.clone();
            return Box::pin(async move {
                let answer = tokio::time::timeout(timeout, local.handle(request)).await;
                let result = match answer {
                    Ok(response) => into_result(response),
                    Err(_) => Err(RpcError::Timeout(timeout_ms(timeout))),
                };
                timed(result)
            });
        }
        let service = remote_service(peer);
        let peer_name = peer.link_name();
        Box::pin(async move {
            let result = async {
                let service = service.ok_or(RpcError::Unreachable(peer_name))?;
                let bytes =
                    wire::encode_request(&request).map_err(|e| RpcError::Codec(e.to_string()))?;
                into_result(remote_call(service, bytes, timeout).await?)
            }
            .await;
            timed(result)
        })
    }
}
