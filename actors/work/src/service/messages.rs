//! The work service's message type. It travels between nodes: variants go
//! by name and are never renamed. The payload is a versioned
//! [`wire`](crate::wire) frame, decoded by the service, never trusted.

use ractor::RpcReplyPort;
use ractor_cluster::RactorClusterMessage;

/// Messages of the work service (version 1).
#[derive(RactorClusterMessage)]
pub enum WorkServiceMessage {
    /// An encoded request; the answer is an encoded response.
    #[rpc]
    Call(Vec<u8>, RpcReplyPort<Vec<u8>>),
}
