//! What a node publishes about itself through gossip, and the key schema of
//! its chitchat state. Parsing is total: a peer's malformed value is
//! reported as an error, never a panic, and never trusted.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Version of the published `info` document; bump on incompatible change.
pub const INFO_VERSION: u32 = 1;
/// Key of the node's [`NodeInfo`] (JSON).
pub const KEY_INFO: &str = "info";
/// Key of the node's [`NodeLoad`] (JSON), updated periodically.
pub const KEY_LOAD: &str = "load";
/// Key of the node's SWIM incarnation (decimal).
pub const KEY_INCARNATION: &str = "incarnation";
/// Present (value `1`) once the node is leaving gracefully.
pub const KEY_LEAVING: &str = "leaving";
/// Prefix of the Down verdicts a node publishes: `down.<node id>.<generation>`
/// with the target's incarnation as the value.
pub const PREFIX_DOWN: &str = "down.";
/// Largest value we accept from a peer for one key.
pub const MAX_VALUE_BYTES: usize = 16 * 1024;

/// A published value that could not be used.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InfoError {
    /// The value is larger than [`MAX_VALUE_BYTES`].
    #[error("{key}: value of {len} bytes exceeds {MAX_VALUE_BYTES}")]
    TooLarge {
        /// Which key.
        key: String,
        /// Its length.
        len: usize,
    },
    /// The value does not parse.
    #[error("{key}: {message}")]
    Malformed {
        /// Which key.
        key: String,
        /// The parser's explanation.
        message: String,
    },
    /// The document is of a newer version than this node understands.
    #[error("info version {0} is newer than {INFO_VERSION}")]
    NewerVersion(u32),
}

/// Static facts a node publishes once per start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    /// Document version ([`INFO_VERSION`]).
    pub version: u32,
    /// Human name of the node.
    pub name: String,
    /// Node-link (ractor_cluster) address.
    pub cluster_addr: SocketAddr,
    /// Admin HTTP address.
    pub http_addr: SocketAddr,
    /// Bulk-link (chunk transfer) address; absent on nodes without one,
    /// whose chunks then travel on the node link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk_addr: Option<SocketAddr>,
    /// What the machine offers.
    pub capacity: Capacity,
    /// Operator labels (`zone` among them, if set).
    pub labels: BTreeMap<String, String>,
}

/// A node's capacity as measured at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capacity {
    /// Logical CPUs available to the process.
    pub cores: u32,
    /// Physical memory in bytes.
    pub memory_bytes: u64,
    /// Free space in the data directory's file system, in bytes.
    pub free_disk_bytes: u64,
}

/// A node's load, refreshed every few seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Runnable threads on the machine (from `/proc/loadavg`).
    pub run_queue: u32,
    /// One-minute load average.
    pub load_avg_1m: f64,
    /// Jobs waiting in this node's work queues.
    pub job_queue_depth: u64,
    /// Job attempts running on this node.
    #[serde(default)]
    pub jobs_running: u32,
    /// Job attempts this node runs at once (0: not published).
    #[serde(default)]
    pub job_slots: u32,
    /// Free space in the data directory's file system, in bytes.
    pub free_disk_bytes: u64,
}

impl NodeInfo {
    /// The zone label, if the operator set one.
    pub fn zone(&self) -> Option<&str> {
        self.labels.get("zone").map(String::as_str)
    }
}

fn check_len(key: &str, value: &str) -> Result<(), InfoError> {
    if value.len() > MAX_VALUE_BYTES {
        return Err(InfoError::TooLarge {
            key: key.to_owned(),
            len: value.len(),
        });
    }
    Ok(())
}

fn malformed(key: &str, err: impl ToString) -> InfoError {
    InfoError::Malformed {
        key: key.to_owned(),
        message: err.to_string(),
    }
}

/// Encode a JSON-valued key.
pub fn encode_json<T: Serialize>(value: &T) -> String {
    // Serialising these plain structs cannot fail; an empty document would
    // be rejected by every reader, which is the safe outcome anyway.
    serde_json::to_string(value).unwrap_or_default()
}

/// Parse the `info` key of a peer.
pub fn parse_info(value: &str) -> Result<NodeInfo, InfoError> {
    check_len(KEY_INFO, value)?;
    let info: NodeInfo = serde_json::from_str(value).map_err(|e| malformed(KEY_INFO, e))?;
    if info.version > INFO_VERSION {
        return Err(InfoError::NewerVersion(info.version));
    }
    Ok(info)
}

/// Parse the `load` key of a peer.
pub fn parse_load(value: &str) -> Result<NodeLoad, InfoError> {
    check_len(KEY_LOAD, value)?;
    serde_json::from_str(value).map_err(|e| malformed(KEY_LOAD, e))
}

/// Parse a decimal counter (incarnation, verdict value).
pub fn parse_u64(key: &str, value: &str) -> Result<u64, InfoError> {
    check_len(key, value)?;
    value.parse().map_err(|e| malformed(key, e))
}

/// The key under which a Down verdict about `node_id`/`generation` is published.
pub fn down_key(node_id: &str, generation: u64) -> String {
    format!("{PREFIX_DOWN}{node_id}.{generation}")
}

/// Split a verdict key back into (node id, generation).
pub fn parse_down_key(key: &str) -> Option<(&str, u64)> {
    let rest = key.strip_prefix(PREFIX_DOWN)?;
    let (node, generation) = rest.rsplit_once('.')?;
    if node.is_empty() {
        return None;
    }
    Some((node, generation.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> NodeInfo {
        NodeInfo {
            version: INFO_VERSION,
            name: "a".into(),
            cluster_addr: "127.0.0.1:1".parse().unwrap(),
            http_addr: "127.0.0.1:2".parse().unwrap(),
            bulk_addr: None,
            capacity: Capacity {
                cores: 2,
                memory_bytes: 1 << 30,
                free_disk_bytes: 1 << 20,
            },
            labels: BTreeMap::from([("zone".into(), "z1".into())]),
        }
    }

    #[test]
    fn info_round_trips_and_rejects_garbage() {
        let text = encode_json(&info());
        assert_eq!(parse_info(&text).unwrap(), info());
        assert_eq!(info().zone(), Some("z1"));
        assert!(matches!(
            parse_info("{not json"),
            Err(InfoError::Malformed { .. })
        ));
        let big = "x".repeat(MAX_VALUE_BYTES + 1);
        assert!(matches!(parse_info(&big), Err(InfoError::TooLarge { .. })));
        let newer = text.replace("\"version\":1", "\"version\":99");
        assert_eq!(parse_info(&newer), Err(InfoError::NewerVersion(99)));
    }

    #[test]
    fn down_keys_round_trip() {
        let key = down_key("ab.cd", 7);
        assert_eq!(parse_down_key(&key), Some(("ab.cd", 7)));
        assert_eq!(parse_down_key("down..3"), None);
        assert_eq!(parse_down_key("down.x.notanumber"), None);
        assert_eq!(parse_down_key("info"), None);
    }
}
