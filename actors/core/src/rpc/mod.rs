//! The one RPC layer between nodes, of which the DHT and the work service
//! are two instances. A [`Protocol`] names its request, response and error
//! code types; this module owns everything else they share:
//!
//! - [`frame`]: the versioned envelope (2-byte version, then the codec),
//!   decode with validation, and `encode_or_error` (a caller always gets an
//!   answer it can decode);
//! - [`WireError`] (a refusal as carried on the wire) and [`RpcError`] (why
//!   a call failed, as the caller sees it);
//! - [`Service`]: the remotable actor that answers a [`Handler`]'s requests
//!   in a bounded task set, refusing past [`MAX_IN_FLIGHT`];
//! - [`Caller`]: one call with a timeout, to this node's handler directly or
//!   to a peer's service over the node link.
//!
//! Each protocol keeps its own codes, version and metric names, so two
//! protocols stay distinct on the wire and in metrics.

mod caller;
mod error;
pub mod frame;
mod protocol;
mod service;

pub use caller::{call_remote, remote_service, Caller};
pub use error::{RpcError, WireError};
pub use frame::encode_or_error;
pub use protocol::{group, Code, Direction, Handler, Protocol};
pub use service::{
    answer_frame, Service, ServiceArgs, ServiceMessage, ServiceState, MAX_IN_FLIGHT,
};

#[cfg(test)]
mod tests;
