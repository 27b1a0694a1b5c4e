//! `hypha cert ca|node|admin`: TLS material for node links (see
//! docs/membership.md) and for the admin API's HTTPS (docs/security.md).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use hypha_cluster::peers::tls::{self, PemPair};
use hypha_core::identity::NodeId;

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

/// The CA's certificate and key (PEM) from a CA directory.
fn read_ca(ca_dir: &Path) -> anyhow::Result<(String, String)> {
    let read = |f: &str| {
        let path = ca_dir.join(f);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    Ok((read(tls::CA_FILE)?, read(tls::CA_KEY_FILE)?))
}

/// Create a certificate for `subject` signed by the CA in `ca_dir`, into `out`.
pub fn node(ca_dir: &Path, name: &str, out: &Path, subject: NodeSubject) -> anyhow::Result<NodeId> {
    let (ca_cert, ca_key) = read_ca(ca_dir)?;
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
        node(ca_dir, name, out, NodeSubject::Id(node_id))?;
    }
    Ok(())
}

/// The names an admin certificate carries when none are given: what a
/// client on the node's own host dials.
pub const DEFAULT_ADMIN_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];
/// The admin certificate's common name (clients check the SANs).
const ADMIN_COMMON_NAME: &str = "hypha admin API";
/// Longest DNS name (RFC 1035).
const MAX_DNS_NAME_BYTES: usize = 253;

/// The subject alternative names for `hosts` (DNS names or IP literals),
/// the defaults when empty; every name checked, duplicates dropped.
pub fn admin_hosts(hosts: &[String]) -> anyhow::Result<Vec<String>> {
    let given: Vec<String> = if hosts.is_empty() {
        DEFAULT_ADMIN_HOSTS
            .iter()
            .map(|h| (*h).to_owned())
            .collect()
    } else {
        hosts.to_vec()
    };
    let mut names = Vec::new();
    for host in given {
        let host = host.trim().trim_start_matches('[').trim_end_matches(']');
        let valid = host.parse::<std::net::IpAddr>().is_ok() || is_dns_name(host);
        if !valid {
            bail!("--host {host:?} is neither an IP address nor a DNS name");
        }
        let host = host.to_ascii_lowercase();
        if !names.contains(&host) {
            names.push(host);
        }
    }
    Ok(names)
}

/// A DNS name a certificate may carry: dot-separated labels of letters,
/// digits and inner hyphens (a leading `*.` wildcard allowed).
fn is_dns_name(name: &str) -> bool {
    let name = name.strip_prefix("*.").unwrap_or(name);
    !name.is_empty()
        && name.len() <= MAX_DNS_NAME_BYTES
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

/// A server certificate for the admin API naming `hosts`, signed by the CA
/// whose key is `ca_key_pem`.
pub fn admin_cert(ca_key_pem: &str, hosts: &[String]) -> anyhow::Result<PemPair> {
    let issuer = tls::ca_issuer(ca_key_pem)?;
    let mut params = rcgen::CertificateParams::new(hosts.to_vec())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, ADMIN_COMMON_NAME);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.signed_by(&key, &issuer)?;
    Ok(PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Create the admin API's server certificate (for `hosts`, see
/// [`admin_hosts`]) signed by the CA in `ca_dir`, into `out` with a copy of
/// the CA certificate for clients (`--ca out/ca.pem`).
pub fn admin(ca_dir: &Path, hosts: &[String], out: &Path) -> anyhow::Result<Vec<String>> {
    let hosts = admin_hosts(hosts)?;
    let (ca_cert, ca_key) = read_ca(ca_dir)?;
    let PemPair { cert_pem, key_pem } = admin_cert(&ca_key, &hosts)?;
    std::fs::create_dir_all(out)?;
    std::fs::write(out.join(tls::CA_FILE), &ca_cert)
        .with_context(|| format!("writing {}", out.join(tls::CA_FILE).display()))?;
    std::fs::write(out.join(crate::admin::tls::CERT_FILE), &cert_pem)?;
    write_secret(&out.join(crate::admin::tls::KEY_FILE), &key_pem)?;
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hosts_default_to_loopback_and_are_checked() {
        assert_eq!(admin_hosts(&[]).unwrap(), DEFAULT_ADMIN_HOSTS);
        let given = ["Node-1.lan", "10.0.0.7", "[fe80::1]", "node-1.lan"].map(String::from);
        assert_eq!(
            admin_hosts(&given).unwrap(),
            ["node-1.lan", "10.0.0.7", "fe80::1"]
        );
        for bad in ["", "a b", "-x.lan", "x..lan", "http://x", "x:80"] {
            assert!(admin_hosts(&[bad.to_owned()]).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_admin_key_is_private_and_the_ca_copied() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let (ca_dir, out) = (root.path().join("ca"), root.path().join("admin"));
        ca(&ca_dir).unwrap();
        admin(&ca_dir, &[], &out).unwrap();
        let mode = |f: &str| std::fs::metadata(out.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(crate::admin::tls::KEY_FILE), 0o600);
        assert_eq!(
            std::fs::read(out.join(tls::CA_FILE)).unwrap(),
            std::fs::read(ca_dir.join(tls::CA_FILE)).unwrap()
        );
        crate::admin::tls::AdminTls::load(&out).unwrap();
    }
}
