//! Node identity: a random 256-bit id, the node's point in the DHT's XOR
//! space. Created once per data directory and never changed.

use std::fmt;
use std::str::FromStr;

use rand::RngCore;
use thiserror::Error;

/// Length of a node id in bytes.
pub const NODE_ID_BYTES: usize = 32;

/// A 256-bit node id.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId([u8; NODE_ID_BYTES]);

/// A node id that could not be parsed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum NodeIdError {
    /// Not 64 hex digits.
    #[error("a node id is 64 hex digits, got {0:?}")]
    Malformed(String),
}

impl NodeId {
    /// A fresh id from the OS random source.
    pub fn random() -> Self {
        let mut bytes = [0u8; NODE_ID_BYTES];
        rand::rng().fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8; NODE_ID_BYTES] {
        &self.0
    }

    /// From raw bytes.
    pub fn from_bytes(bytes: [u8; NODE_ID_BYTES]) -> Self {
        Self(bytes)
    }

    /// Lower-case hex, 64 digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// First 8 hex digits, for logs.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl FromStr for NodeId {
    type Err = NodeIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let mut bytes = [0u8; NODE_ID_BYTES];
        hex::decode_to_slice(s, &mut bytes).map_err(|_| NodeIdError::Malformed(s.to_owned()))?;
        Ok(Self(bytes))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.short())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn hex_round_trip(bytes in proptest::array::uniform32(any::<u8>())) {
            let id = NodeId::from_bytes(bytes);
            prop_assert_eq!(id.to_hex().parse::<NodeId>(), Ok(id));
        }
    }

    #[test]
    fn rejects_malformed() {
        assert!("abc".parse::<NodeId>().is_err());
        assert!("zz".repeat(32).parse::<NodeId>().is_err());
        assert_ne!(NodeId::random(), NodeId::random());
    }
}
