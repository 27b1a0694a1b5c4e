//! `hypha cert ca|node`: TLS material for node links (see docs/membership.md).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hypha_actors::identity::NodeId;
use hypha_actors::peers::tls::{self, PemPair};

pub(crate) fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

/// Create a CA in `dir`; refuses to overwrite one.
pub fn ca(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    if dir.join(tls::CA_KEY_FILE).exists() {
        bail!(
            "{} already holds a CA; remove it first to make a new one",
            dir.display()
        );
    }
    let PemPair { cert_pem, key_pem } = tls::new_ca()?;
    write_secret(&dir.join(tls::CA_FILE), &cert_pem)?;
    write_secret(&dir.join(tls::CA_KEY_FILE), &key_pem)?;
    Ok(())
}

/// Which node a certificate is for.
#[derive(Debug, Clone)]
pub enum NodeSubject {
    /// The node whose data directory this is (its id created if new, as
    /// the node's first start would).
    DataDir(PathBuf),
    /// A node id given outright.
    Id(NodeId),
    /// The node the output directory's certificate already names.
    Renewal,
}

impl NodeSubject {
    /// From `--data-dir` / `--node-id` (clap keeps them exclusive).
    pub fn from_args(data_dir: Option<PathBuf>, node_id: Option<String>) -> anyhow::Result<Self> {
        Ok(match (data_dir, node_id) {
            (Some(dir), _) => Self::DataDir(dir),
            (None, Some(hex)) => Self::Id(hex.parse()?),
            (None, None) => Self::Renewal,
        })
    }

    fn resolve(self, out: &Path) -> anyhow::Result<NodeId> {
        match self {
            Self::Id(id) => Ok(id),
            Self::DataDir(dir) => {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                Ok(crate::identity::load_or_create(&dir)?)
            }
            Self::Renewal => renewed_id(out).with_context(|| {
                format!(
                    "say which node the certificate is for: --data-dir DIR (the node's data \
                     directory) or --node-id HEX; {} holds no certificate naming one",
                    out.display()
                )
            }),
        }
    }
}

/// The node id the certificate already in `out` names.
fn renewed_id(out: &Path) -> anyhow::Result<NodeId> {
    Ok(tls::node_id_of_file(&out.join(tls::CERT_FILE))?)
}

/// Create a certificate for `subject` signed by the CA in `ca_dir`, into `out`.
pub fn node(ca_dir: &Path, name: &str, out: &Path, subject: NodeSubject) -> anyhow::Result<NodeId> {
    let read = |f: &str| {
        let path = ca_dir.join(f);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let (ca_cert, ca_key) = (read(tls::CA_FILE)?, read(tls::CA_KEY_FILE)?);
    let node_id = subject.resolve(out)?;
    let PemPair { cert_pem, key_pem } = tls::new_node_cert(&ca_key, name, &node_id)?;
    std::fs::create_dir_all(out)?;
    write_secret(&out.join(tls::CA_FILE), &ca_cert)?;
    write_secret(&out.join(tls::CERT_FILE), &cert_pem)?;
    write_secret(&out.join(tls::KEY_FILE), &key_pem)?;
    Ok(node_id)
}

/// Issue the node whose data directory is `data_dir` a certificate into
/// `out` unless `out` already holds one naming it (a cluster directory
/// from before certificates named their node gets new ones).
pub fn ensure_node(ca_dir: &Path, name: &str, out: &Path, data_dir: &Path) -> anyhow::Result<()> {
    let node_id = crate::identity::load_or_create(data_dir)?;
    if renewed_id(out).ok() != Some(node_id) {
        node(ca_dir, name, out, NodeSubject::DataDir(data_dir.to_owned()))?;
    }
    Ok(())
}
