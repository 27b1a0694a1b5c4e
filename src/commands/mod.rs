//! Client-side subcommands: `cluster up` (a local cluster of real node
//! processes), `members` (the membership view of a running node) and the
//! file commands (`put`, `get`, `ls`, `stat`, `rm`) and the job commands
//! (`jobs submit|status|ls|cancel`, `queues`), `s3 key` (the S3 access
//! keys), `backup create|verify|restore|ls` (docs/backup.md), and
//! `store quarantine` (a stopped node's damaged store moved aside).

pub mod backup;
pub mod cert;
pub mod cluster_up;
pub mod files;
pub mod jobs;
pub mod members;
pub mod s3;
pub mod store;
pub mod token;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

/// Timeout of one admin API request made by a subcommand.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// An HTTP client for the admin API; an https:// node must present a
/// certificate of the CA in `ca`.
pub fn client(ca: Option<&Path>) -> anyhow::Result<reqwest::Client> {
    Ok(client_builder(ca)?.timeout(REQUEST_TIMEOUT).build()?)
}

/// A client builder whose TLS trusts the CA in `ca` and nothing else (no
/// system roots: an admin API has the cluster's own CA). Without `ca`
/// nothing is trusted, so an https:// URL fails instead of trusting any
/// certificate.
pub fn client_builder(ca: Option<&Path>) -> anyhow::Result<reqwest::ClientBuilder> {
    Ok(reqwest::Client::builder().use_preconfigured_tls(tls_config(ca)?))
}

/// rustls on aws-lc-rs (the workspace's provider) with `ca` as the roots.
fn tls_config(ca: Option<&Path>) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("{}: not a PEM certificate: {e}", path.display()))?;
        if certs.is_empty() {
            bail!("{}: holds no PEM certificate", path.display());
        }
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("{}: not a usable CA certificate", path.display()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// "cannot reach URL", with what to do when an https:// URL was given
/// without a CA.
pub(crate) fn unreachable(url: &str, ca: Option<&Path>) -> String {
    if url.starts_with("https://") && ca.is_none() {
        format!("cannot reach {url} (https needs the cluster CA: --ca FILE or HYPHA_CA)")
    } else {
        format!("cannot reach {url}")
    }
}

/// One line of `hypha cluster restart --rolling` for a terminal.
pub fn rolling_line(event: &crate::rolling::Event) -> String {
    use crate::rolling::Event;
    match event {
        Event::Plan { order } => format!(
            "rolling restart of {} node(s): {}",
            order.len(),
            order.join(", ")
        ),
        Event::Restarting { node, generation } => {
            format!("{node}: leaving and restarting (generation {generation})")
        }
        Event::Back {
            node,
            generation,
            took_ms,
        } => format!(
            "{node}: back as generation {generation}, cluster healthy ({:.1} s)",
            *took_ms as f64 / 1e3
        ),
        Event::Done { restarted, took_ms } => format!(
            "done: {restarted} node(s) restarted in {:.1} s",
            *took_ms as f64 / 1e3
        ),
        Event::Failed { reason } => format!("STOPPED: {reason}"),
    }
}
