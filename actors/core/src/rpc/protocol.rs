//! What a protocol brings to the RPC layer: [`Protocol`] (its types,
//! version, limits and metric names), [`Code`] (the codes the layer itself
//! sends) and [`Handler`] (what answers its requests on a node).

use std::fmt::Debug;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::error::WireError;

/// A protocol's error codes, of which the layer sends three itself.
pub trait Code: Copy + Debug + Eq + Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The request did not decode or is out of range.
    const BAD_REQUEST: Self;
    /// The wire version is not spoken here.
    const VERSION: Self;
    /// Overloaded or restarting: the caller may try elsewhere or later.
    const UNAVAILABLE: Self;
}

/// Which way bytes went, for a protocol's traffic counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// A request sent to a peer.
    Sent,
    /// An answer received from a peer.
    Received,
}

/// One request/response protocol between nodes.
pub trait Protocol: Send + Sync + 'static {
    /// A request.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// An answer (refusals included).
    type Response: Serialize + DeserializeOwned + Send + 'static;
    /// Kinds of refusal.
    type Code: Code;
    /// Wire version, the first two bytes of every frame.
    const VERSION: u16;
    /// How a version refusal names the format (`"wire"`, `"work wire"`).
    const FORMAT: &'static str;
    /// Process group prefix of a member's service (`"hypha.dht"`).
    const GROUP: &'static str;
    /// Counter of requests refused because they did not decode.
    const BAD_REQUESTS_METRIC: &'static str;
    /// Code of the refusal sent when an answer does not encode.
    const ENCODE_FAILED: Self::Code;

    /// Check the bounds of a decoded request.
    fn validate(request: &Self::Request) -> Result<(), WireError<Self::Code>>;

    /// The answer carrying a refusal.
    fn refusal(err: WireError<Self::Code>) -> Self::Response;

    /// A refusal out of an answer, everything else as it is.
    fn into_result(response: Self::Response) -> Result<Self::Response, WireError<Self::Code>>;

    /// Count bytes that crossed the node link (default: not counted).
    fn count_bytes(_direction: Direction, _bytes: usize) {}
}

/// The process group of the member named `link_name`'s `P` service.
pub fn group<P: Protocol>(link_name: &str) -> String {
    format!("{}.{link_name}", P::GROUP)
}

/// Answers a protocol's requests on one node (never panics: failures are
/// answers carrying a refusal).
pub trait Handler: Clone + Send + Sync + 'static {
    /// The protocol answered.
    type Protocol: Protocol;

    /// Answer one request.
    fn answer(
        &self,
        request: <Self::Protocol as Protocol>::Request,
    ) -> impl Future<Output = <Self::Protocol as Protocol>::Response> + Send;
}
