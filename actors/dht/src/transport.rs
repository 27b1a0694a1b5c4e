//! How a coordinator reaches replicas: [`DhtTransport`], a trait so that
//! tests and simulations can put several nodes' handlers in one process.
//! In production, [`ClusterTransport`]: chunk transfers over the peer's
//! bulk link (see [`super::bulk`]), everything else through its DHT
//! service on the ractor_cluster node link, and this node's own requests
//! straight to its handler (both through the shared [`rpc::Caller`]).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use hypha_core::rpc::{self, Caller, Direction, Protocol};
use tokio::sync::watch;

use super::bulk::client::BulkError;
use super::bulk::{BulkClient, BulkPeer};
use super::service::DhtHandler;
use super::wire::{self, DhtWire, ErrorCode, Request, Response};
use hypha_cluster::membership::{ClusterView, MemberKey};
use hypha_core::clock::SharedClock;

/// Why an RPC failed: the shared RPC layer's error over DHT codes.
pub type RpcError = rpc::RpcError<ErrorCode>;

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
    caller: Caller<DhtHandler>,
    bulk: Option<BulkRoute>,
    clock: SharedClock,
}

impl ClusterTransport {
    /// For the node `me`, whose own requests go to `local`; chunk
    /// transfers use `bulk` when given (else the node link).
    pub fn new(me: MemberKey, local: DhtHandler, bulk: Option<BulkRoute>) -> Self {
        Self {
            caller: Caller::new(me.link_name(), local),
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
    request: &Request,
    timeout: Duration,
) -> Result<Response, RpcError> {
    let bytes = wire::encode_request(request).map_err(RpcError::codec)?;
    DhtWire::count_bytes(Direction::Sent, bytes.len());
    let answer = client
        .call(peer, &bytes, timeout)
        .await
        .map_err(bulk_error)?;
    DhtWire::count_bytes(Direction::Received, answer.len());
    let response = wire::decode_response(&answer).map_err(RpcError::Codec)?;
    DhtWire::into_result(response).map_err(RpcError::Remote)
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
        let peer_name = peer.link_name();
        if self.caller.is_local(&peer_name) {
            let caller = self.caller.clone();
            return Box::pin(async move { timed(caller.call_local(request, timeout).await) });
        }
        let bulk = self.bulk_addr(peer, &request);
        Box::pin(async move {
            let result = match bulk {
                Some((client, addr)) => bulk_call(client, addr, &request, timeout).await,
                None => rpc::call_remote::<DhtWire>(&peer_name, &request, timeout).await,
            };
            timed(result)
        })
    }
}
