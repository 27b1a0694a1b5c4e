//! The node id file in the data directory: created on first start (written
//! to a temporary file, fsynced, renamed), read on every later start.

use std::fs;
use std::path::Path;

use hypha_core::identity::NodeId;
use thiserror::Error;

/// File name of the node id inside the data directory.
pub const NODE_ID_FILE: &str = "node_id";

/// The node id could not be read or created.
#[derive(Debug, Error)]
pub enum IdentityError {
    /// Reading or writing the file failed.
    #[error("node id file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file exists but does not hold an id.
    #[error("node id file {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// Load the node id from `data_dir`, creating it on first start.
pub fn load_or_create(data_dir: &Path) -> Result<NodeId, IdentityError> {
    let path = data_dir.join(NODE_ID_FILE);
    let shown = path.display().to_string();
    let io = |source| IdentityError::Io {
        path: shown.clone(),
        source,
    };
    match fs::read_to_string(&path) {
        Ok(text) => {
            text.parse().map_err(
                |err: hypha_core::identity::NodeIdError| IdentityError::Corrupt {
                    path: shown.clone(),
                    reason: err.to_string(),
                },
            )
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let id = NodeId::random();
            crate::durable_file::write(data_dir, NODE_ID_FILE, format!("{id}\n").as_bytes())
                .map_err(io)?;
            Ok(id)
        }
        Err(err) => Err(io(err)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_once_then_stable() {
        let dir = tempfile::tempdir().unwrap();
        let first = load_or_create(dir.path()).unwrap();
        assert_eq!(load_or_create(dir.path()).unwrap(), first);
        fs::write(dir.path().join(NODE_ID_FILE), "garbage").unwrap();
        assert!(matches!(
            load_or_create(dir.path()),
            Err(IdentityError::Corrupt { .. })
        ));
    }
}
