//! The versioned envelope: every request and answer is the protocol's
//! version (2 bytes, big-endian) and the [`codec`](crate::codec) encoding
//! of the message. Decoding validates; what does not decode becomes a
//! [`WireError`], never a panic.

use super::error::WireError;
use super::protocol::{Code, Protocol};
use crate::codec::{self, CodecError};

fn bad<C: Code>(message: impl Into<String>) -> WireError<C> {
    WireError::new(C::BAD_REQUEST, message)
}

fn unframe<P: Protocol>(bytes: &[u8]) -> Result<&[u8], WireError<P::Code>> {
    let (version, body) =
        codec::split_version(bytes).ok_or_else(|| bad("message shorter than its header"))?;
    if version != P::VERSION {
        return Err(WireError::new(
            <P::Code as Code>::VERSION,
            format!(
                "{} version {version}; this node speaks {}",
                P::FORMAT,
                P::VERSION
            ),
        ));
    }
    Ok(body)
}

/// Encode a request with its version.
pub fn encode_request<P: Protocol>(request: &P::Request) -> Result<Vec<u8>, CodecError> {
    codec::encode_versioned(P::VERSION, request)
}

/// Encode an answer with its version.
pub fn encode_response<P: Protocol>(response: &P::Response) -> Result<Vec<u8>, CodecError> {
    codec::encode_versioned(P::VERSION, response)
}

/// Encode an answer; one that does not encode becomes an encoded refusal
/// ([`Protocol::ENCODE_FAILED`]), so a caller always gets a reply it can
/// decode.
pub fn encode_or_error<P: Protocol>(response: &P::Response) -> Vec<u8> {
    encode_response::<P>(response).unwrap_or_else(|err| {
        let fallback = P::refusal(WireError::new(P::ENCODE_FAILED, err.to_string()));
        encode_response::<P>(&fallback).unwrap_or_default()
    })
}

/// Decode and validate a request.
pub fn decode_request<P: Protocol>(bytes: &[u8]) -> Result<P::Request, WireError<P::Code>> {
    let request: P::Request =
        codec::decode(unframe::<P>(bytes)?).map_err(|e| bad(e.to_string()))?;
    P::validate(&request)?;
    Ok(request)
}

/// Decode an answer.
pub fn decode_response<P: Protocol>(bytes: &[u8]) -> Result<P::Response, WireError<P::Code>> {
    codec::decode(unframe::<P>(bytes)?).map_err(|e| bad(e.to_string()))
}
