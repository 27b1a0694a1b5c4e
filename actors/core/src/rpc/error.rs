//! The two errors of the RPC layer: [`WireError`], a refusal as a peer
//! sends it, and [`RpcError`], every way a call can fail for its caller.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::protocol::Code;

/// A refused request, as carried on the wire: the protocol's code and a
/// human text. Encoded as its two fields, in this order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Error)]
#[error("{code:?}: {message}")]
pub struct WireError<C> {
    /// Kind.
    pub code: C,
    /// Human text.
    pub message: String,
}

impl<C> WireError<C> {
    /// An error.
    pub fn new(code: C, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum RpcError<C: Code> {
    /// No link to the peer (not connected, or gone during the call).
    #[error("no link to {0}")]
    Unreachable(String),
    /// No answer in time (a frozen or overloaded peer).
    #[error("no answer within {0} ms")]
    Timeout(u64),
    /// The peer answered with a refusal.
    #[error("peer refused: {0}")]
    Remote(WireError<C>),
    /// The request did not encode, or the answer did not decode.
    #[error("codec: {0}")]
    Codec(WireError<C>),
}

impl<C: Code> RpcError<C> {
    /// A request that did not encode (a bad request of our own).
    pub fn codec(err: impl std::fmt::Display) -> Self {
        Self::Codec(WireError::new(C::BAD_REQUEST, err.to_string()))
    }
}
