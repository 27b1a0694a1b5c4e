//! Link certificates for test nodes: one cluster CA for every test binary,
//! and per node a certificate naming its node id (links are mutual TLS
//! outside `--dev`, so tests run them that way too).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use hypha_cluster::peers::tls;

use crate::paths::target_tmp;

/// The cluster CA every test node's certificate chains to. Made once under
/// the target directory, in a private directory renamed into place, so
/// that test binaries running at once never see half of it.
pub fn test_ca_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = target_tmp().join("test-cluster-ca");
        publish_once(&dir, |private| {
            let ca = tls::new_ca().unwrap();
            std::fs::write(private.join(tls::CA_FILE), &ca.cert_pem).unwrap();
            std::fs::write(private.join(tls::CA_KEY_FILE), &ca.key_pem).unwrap();
        });
        dir
    })
    .clone()
}

/// The link certificates of the node whose data directory is `data_dir`
/// (its id created there, as its first start would): a certificate names
/// its node, so every test node has its own.
pub fn test_tls_dir(data_dir: &Path) -> PathBuf {
    std::fs::create_dir_all(data_dir).unwrap();
    let id = hypha::identity::load_or_create(data_dir).unwrap();
    let ca = test_ca_dir();
    let dir = target_tmp().join("test-node-tls").join(id.to_hex());
    publish_once(&dir, |private| {
        let read = |f: &str| std::fs::read_to_string(ca.join(f)).unwrap();
        let node = tls::new_node_cert(&read(tls::CA_KEY_FILE), "test-node", &id).unwrap();
        std::fs::write(private.join(tls::CA_FILE), read(tls::CA_FILE)).unwrap();
        std::fs::write(private.join(tls::CERT_FILE), &node.cert_pem).unwrap();
        std::fs::write(private.join(tls::KEY_FILE), &node.key_pem).unwrap();
    });
    dir
}

/// Fill `dir` once: written in a private directory, renamed into place,
/// so a reader never sees half of it; the loser of a race uses the winner's.
fn publish_once(dir: &Path, fill: impl FnOnce(&Path)) {
    if dir.exists() {
        return;
    }
    let private = dir.with_extension(format!("{}.tmp", std::process::id()));
    std::fs::create_dir_all(&private).unwrap();
    fill(&private);
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    if std::fs::rename(&private, dir).is_err() {
        let _ = std::fs::remove_dir_all(&private);
    }
}
