//! The one place that names bincode: every DHT wire message and stored
//! record is encoded here, with a size limit on decode so that a hostile
//! length prefix cannot make the decoder allocate without bound. Swapping
//! the codec means changing this file (and bumping the format versions).

use serde::de::DeserializeOwned;
use serde::Serialize;
use thiserror::Error;

/// Largest encoded message or record accepted (1 MiB).
pub const MAX_ENCODED_BYTES: usize = 1024 * 1024;

/// Bytes that do not decode.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum CodecError {
    /// Over the size limit.
    #[error("message of {0} bytes exceeds the {MAX_ENCODED_BYTES}-byte limit")]
    TooLarge(usize),
    /// Malformed.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Decoded, with bytes left over.
    #[error("{0} trailing bytes after the message")]
    Trailing(usize),
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_ENCODED_BYTES>()
}

/// Encode `value`.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let bytes = bincode::serde::encode_to_vec(value, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if bytes.len() > MAX_ENCODED_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    Ok(bytes)
}

/// Decode exactly one `T` from `bytes`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    if bytes.len() > MAX_ENCODED_BYTES {
        return Err(CodecError::TooLarge(bytes.len()));
    }
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

/// Encode `value` behind its format's version (2 bytes, big-endian), as
/// every wire message and stored record is framed.
pub fn encode_versioned<T: Serialize>(version: u16, value: &T) -> Result<Vec<u8>, CodecError> {
    let body = encode(value)?;
    let mut out = Vec::with_capacity(body.len() + 2);
    out.extend_from_slice(&version.to_be_bytes());
    out.extend_from_slice(&body);
    if out.len() > MAX_ENCODED_BYTES {
        return Err(CodecError::TooLarge(out.len()));
    }
    Ok(out)
}

/// Split framed bytes into (version, body); `None` when shorter than the
/// version. Each format decides what another version means.
pub fn split_version(bytes: &[u8]) -> Option<(u16, &[u8])> {
    let (version, body) = bytes.split_first_chunk::<2>()?;
    Some((u16::from_be_bytes(*version), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_lengths_are_refused_not_allocated() {
        // A Vec<u8> claiming u64::MAX elements.
        let mut evil = vec![253u8];
        evil.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<Vec<u8>>(&evil).is_err());
        assert!(matches!(
            decode::<Vec<u8>>(&vec![0u8; MAX_ENCODED_BYTES + 1]),
            Err(CodecError::TooLarge(_))
        ));
        assert_eq!(decode::<u8>(&[1, 2]), Err(CodecError::Trailing(1)));
    }
}
