//! The node's gossip keyring: where its secrets come from, and reloading
//! them without a restart.
//!
//! Without `cluster.gossip_keys_file` the ring is the cookie alone. With
//! it, the file's lines are the secrets (the first seals, all are
//! accepted), and SIGHUP or `POST /v1/node/gossip/keys/reload` re-reads
//! it: the sealed transport takes the new ring from a `watch` channel on
//! its next datagram. A file that cannot be used is refused and the ring
//! in use is kept, as with the TLS material.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hypha_cluster::membership::seal::{Keyring, KeyringError};
use tokio::sync::watch;

/// Why the keyring could not be (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum GossipKeysError {
    /// The file could not be read.
    #[error("cannot read the gossip keys file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The secrets do not make a ring.
    #[error("gossip keys from {from}: {source}")]
    Ring {
        /// Where they came from.
        from: String,
        /// The cause.
        source: KeyringError,
    },
    /// There is no file to reload (the ring is the cookie).
    #[error("gossip is sealed with the cookie: set cluster.gossip_keys_file to rotate keys")]
    NoFile,
}

/// Where the secrets come from.
#[derive(Debug, Clone)]
enum Source {
    Cookie,
    File(PathBuf),
}

/// The ring in use, shared by the sealed transport, SIGHUP and the API.
#[derive(Clone)]
pub struct GossipKeys {
    cluster_id: String,
    source: Source,
    ring: Arc<watch::Sender<Arc<Keyring>>>,
    reloads: Arc<AtomicU64>,
}

/// What the API shows of the ring: key ids only.
#[derive(Debug, Clone, serde::Serialize)]
pub struct GossipKeysStatus {
    /// `cookie` or the file's path.
    pub source: String,
    /// Id of the sealing key (hex).
    pub sealing: String,
    /// Ids of every accepted key, the sealing one first.
    pub accepted: Vec<String>,
    /// Successful reloads since start.
    pub reloads: u64,
}

impl GossipKeys {
    /// The ring for a node of `cluster_id` with this cookie and file.
    pub fn load(
        cluster_id: &str,
        cookie: &str,
        file: Option<PathBuf>,
    ) -> Result<Self, GossipKeysError> {
        let (source, ring) = match file {
            Some(path) => {
                let ring = read_file(cluster_id, &path)?;
                (Source::File(path), ring)
            }
            None => {
                let ring = Keyring::from_secrets(cluster_id, &[cookie]).map_err(|source| {
                    GossipKeysError::Ring {
                        from: "the cookie".into(),
                        source,
                    }
                })?;
                (Source::Cookie, ring)
            }
        };
        let (tx, _) = watch::channel(Arc::new(ring));
        Ok(Self {
            cluster_id: cluster_id.to_owned(),
            source,
            ring: Arc::new(tx),
            reloads: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Whether the ring comes from a keys file (so a reload can change it).
    pub fn has_file(&self) -> bool {
        matches!(self.source, Source::File(_))
    }

    /// A receiver for the sealed transport.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Keyring>> {
        self.ring.subscribe()
    }

    /// Re-read the file; on error the ring in use is kept. Counted and logged.
    pub async fn reload(&self) -> Result<GossipKeysStatus, GossipKeysError> {
        let result = match &self.source {
            Source::Cookie => Err(GossipKeysError::NoFile),
            Source::File(path) => {
                let (id, path) = (self.cluster_id.clone(), path.clone());
                tokio::task::spawn_blocking(move || read_file(&id, &path))
                    .await
                    .unwrap_or_else(|e| {
                        Err(GossipKeysError::Read {
                            path: "(reload task)".into(),
                            source: std::io::Error::other(e),
                        })
                    })
            }
        };
        match result {
            Ok(ring) => {
                self.ring.send_replace(Arc::new(ring));
                self.reloads.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("hypha_gossip_key_reloads_total", "result" => "ok").increment(1);
                let status = self.status();
                tracing::info!(sealing = %status.sealing, accepted = ?status.accepted, "gossip keyring reloaded");
                Ok(status)
            }
            Err(err) => {
                metrics::counter!("hypha_gossip_key_reloads_total", "result" => "error")
                    .increment(1);
                tracing::error!("gossip keyring reload failed, the ring in use is kept: {err}");
                Err(err)
            }
        }
    }

    /// Key ids in use.
    pub fn status(&self) -> GossipKeysStatus {
        let ids = self.ring.borrow().ids();
        GossipKeysStatus {
            source: match &self.source {
                Source::Cookie => "cookie".into(),
                Source::File(path) => path.display().to_string(),
            },
            sealing: ids.first().map(ToString::to_string).unwrap_or_default(),
            accepted: ids.iter().map(ToString::to_string).collect(),
            reloads: self.reloads.load(Ordering::Relaxed),
        }
    }
}

fn read_file(cluster_id: &str, path: &std::path::Path) -> Result<Keyring, GossipKeysError> {
    let text = std::fs::read_to_string(path).map_err(|source| GossipKeysError::Read {
        path: path.display().to_string(),
        source,
    })?;
    Keyring::parse_file(cluster_id, &text).map_err(|source| GossipKeysError::Ring {
        from: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOKIE: &str = "a-cookie-of-at-least-thirty-two-bytes-cccc";
    const NEW: &str = "a-new-secret-of-at-least-thirty-two-bytes-n";

    #[tokio::test]
    async fn the_file_reloads_and_a_bad_file_keeps_the_ring() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gossip-keys");
        std::fs::write(&path, format!("{COOKIE}\n")).unwrap();
        let keys = GossipKeys::load("c", COOKIE, Some(path.clone())).unwrap();
        let rx = keys.subscribe();
        let cookie_only = GossipKeys::load("c", COOKIE, None).unwrap().status();
        assert_eq!(keys.status().accepted, cookie_only.accepted);

        std::fs::write(&path, format!("{COOKIE}\n{NEW}\n")).unwrap();
        let status = keys.reload().await.unwrap();
        assert_eq!(status.accepted.len(), 2);
        assert_eq!(status.sealing, cookie_only.sealing);
        assert_eq!(
            rx.borrow().ids().len(),
            2,
            "the transport sees the new ring"
        );

        std::fs::write(&path, "too-short\n").unwrap();
        assert!(matches!(
            keys.reload().await,
            Err(GossipKeysError::Ring { .. })
        ));
        assert_eq!(rx.borrow().ids().len(), 2, "the ring in use is kept");
        assert_eq!(keys.status().reloads, 1);
    }

    #[tokio::test]
    async fn a_cookie_ring_has_nothing_to_reload() {
        let keys = GossipKeys::load("c", COOKIE, None).unwrap();
        assert!(matches!(keys.reload().await, Err(GossipKeysError::NoFile)));
    }
}
