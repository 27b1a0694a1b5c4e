//! How a coordinator reaches replicas: [`DhtTransport`], a trait so that
//! tests and simulations can put several nodes' handlers in one process.
//! In production, [`ClusterTransport`]: chunk transfers over the peer's
//! bulk link (see [`super::bulk`]), everything else through its DHT
//! service on the ractor_cluster node link, and this node's own requests
//! straight to its handler.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use ractor::rpc::CallResult;
use ractor::ActorRef;
use thiserror::Error;
use tokio::sync::watch;

use super::bulk::client::BulkError;
use super::bulk::{BulkClient, BulkPeer};
use super::service::{dht_group, DhtHandler, DhtServiceMessage};
use super::wire::{self, Request, Response, WireError};
use hypha_cluster::membership::{ClusterView, MemberKey};
use hypha_core::clock::SharedClock;

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
        Request::Exchange { .. } => "exchange",
        Request::ManifestsByKey { .. } => "manifests_by_key",
        Request::ReadManifest { .. } => "read_manifest",
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

/// Bulk links and where peers listen for them.
#[derive(Clone)]
pub struct BulkRoute {
    /// The connection pool.
    pub client: BulkClient,
    /// The membership view, whose members publish their bulk address.
    pub view: watch::Receiver<Arc<ClusterView>>,
}

/// Node links (ractor_cluster) and bulk links, with this node's own
/// handler short-cut.
#[derive(Clone)]
pub struct ClusterTransport {
    me: MemberKey,
    local: DhtHandler,
    bulk: Option<BulkRoute>,
    clock: SharedClock,
}

impl ClusterTransport {
    /// For the node `me`, whose own requests go to `local`; chunk
    /// transfers use `bulk` when given (else the node link).
    pub fn new(me: MemberKey, local: DhtHandler, bulk: Option<BulkRoute>) -> Self {
        Self {
            me,
            local,
            bulk,
            clock: SharedClock::system(),
        }
    }

    /// The same transport, timing its calls on `clock`.
    pub fn with_clock(self, clock: SharedClock) -> Self {
        Self { clock, ..self }
    }

    /// Where `peer` (this generation of it) takes bulk connections.
    fn bulk_addr(&self, peer: &MemberKey, request: &Request) -> Option<(BulkClient, BulkPeer)> {
        if !matches!(
            request,
            Request::StoreChunk { .. } | Request::GetChunk { .. }
        ) {
            return None;
        }
        let bulk = self.bulk.as_ref()?;
        let view = bulk.view.borrow();
        let member = view.member(&peer.node_id)?;
        if member.key.generation != peer.generation {
            return None;
        }
        let addr = member.info.as_ref()?.bulk_addr?;
        let node = peer.node_id.parse().ok()?;
        Some((bulk.client.clone(), BulkPeer { node, addr }))
    }
}

fn bulk_error(err: BulkError) -> RpcError {
    match err {
        BulkError::Timeout(ms) => RpcError::Timeout(ms),
        other => RpcError::Unreachable(other.to_string()),
    }
}

async fn bulk_call(
    client: BulkClient,
    peer: BulkPeer,
    bytes: Vec<u8>,
    timeout: Duration,
) -> Result<Response, RpcError> {
    metrics::counter!("hypha_dht_sent_bytes_total").increment(bytes.len() as u64);
    let answer = client
        .call(peer, &bytes, timeout)
        .await
        .map_err(bulk_error)?;
    metrics::counter!("hypha_dht_received_bytes_total").increment(answer.len() as u64);
    wire::decode_response(&answer).map_err(|e| RpcError::Codec(e.to_string()))
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
    metrics::counter!("hypha_dht_sent_bytes_total").increment(bytes.len() as u64);
    let answer = service
        .call(|reply| DhtServiceMessage::Call(bytes, reply), Some(timeout))
        .await;
    match answer {
        Ok(CallResult::Success(bytes)) => {
            metrics::counter!("hypha_dht_received_bytes_total").increment(bytes.len() as u64);
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
        let clock = self.clock.clone();
        let started = clock.now();
        let timed = move |result: Result<Response, RpcError>| {
            let took = clock.now().saturating_duration_since(started);
            metrics::histogram!("hypha_dht_rpc_duration_seconds", "kind" => kind)
                .record(took.as_secs_f64());
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
        let bulk = self.bulk_addr(peer, &request);
        let service = remote_service(peer);
        let peer_name = peer.link_name();
        Box::pin(async move {
            let result = async {
                let bytes =
                    wire::encode_request(&request).map_err(|e| RpcError::Codec(e.to_string()))?;
                if let Some((client, addr)) = bulk {
                    return into_result(bulk_call(client, addr, bytes, timeout).await?);
                }
                let service = service.ok_or(RpcError::Unreachable(peer_name))?;
                into_result(remote_call(service, bytes, timeout).await?)
            }
            .await;
            timed(result)
        })
    }
}
