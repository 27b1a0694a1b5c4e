//! `hypha cert ca|node`: TLS material for node links (see docs/membership.md).

use std::path::Path;

use anyhow::{bail, Context};
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

/// Create a node certificate signed by the CA in `ca_dir`, into `out`.
pub fn node(ca_dir: &Path, name: &str, out: &Path) -> anyhow::Result<()> {
    let read = |f: &str| {
        let path = ca_dir.join(f);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let (ca_cert, ca_key) = (read(tls::CA_FILE)?, read(tls::CA_KEY_FILE)?);
    let PemPair { cert_pem, key_pem } = tls::new_node_cert(&ca_key, name)?;
    std::fs::create_dir_all(out)?;
    write_secret(&out.join(tls::CA_FILE), &ca_cert)?;
    write_secret(&out.join(tls::CERT_FILE), &cert_pem)?;
    write_secret(&out.join(tls::KEY_FILE), &key_pem)?;
    Ok(())
}
