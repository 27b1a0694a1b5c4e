//! Node labels: small key/value pairs an operator attaches to a node (zone,
//! hardware, role). Gossip advertises them and job placement matches on
//! them, so their shape is checked at the edge.

use thiserror::Error;

/// Longest label key, in bytes.
pub const MAX_KEY_BYTES: usize = 63;
/// Longest label value, in bytes.
pub const MAX_VALUE_BYTES: usize = 256;
/// Most labels one node may carry (they ride in every gossip digest).
pub const MAX_LABELS: usize = 64;

/// A label that is not accepted.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum LabelError {
    /// Key empty, too long, or with characters outside `[a-z0-9._-]`.
    #[error("label key must be 1-{MAX_KEY_BYTES} characters of [a-z0-9._-], got {0:?}")]
    BadKey(String),
    /// Value too long or with control characters.
    #[error("label value must be at most {MAX_VALUE_BYTES} bytes of printable UTF-8")]
    BadValue,
    /// Already at `MAX_LABELS`.
    #[error("a node carries at most {MAX_LABELS} labels")]
    TooMany,
}

/// Check a label key.
pub fn validate_key(key: &str) -> Result<(), LabelError> {
    let ok = !key.is_empty()
        && key.len() <= MAX_KEY_BYTES
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(LabelError::BadKey(key.chars().take(80).collect()))
    }
}

/// Check a label value.
pub fn validate_value(value: &str) -> Result<(), LabelError> {
    if value.len() <= MAX_VALUE_BYTES && !value.chars().any(char::is_control) {
        Ok(())
    } else {
        Err(LabelError::BadValue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_values() {
        assert!(validate_key("zone").is_ok());
        assert!(validate_key("gpu.count-1_x").is_ok());
        assert!(validate_key("").is_err());
        assert!(validate_key("Zone").is_err());
        assert!(validate_key(&"a".repeat(64)).is_err());
        assert!(validate_value("eu-west 1").is_ok());
        assert!(validate_value("a\nb").is_err());
        assert!(validate_value(&"x".repeat(257)).is_err());
    }
}
