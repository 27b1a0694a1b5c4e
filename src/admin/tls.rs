//! Optional HTTPS for the admin API: the server certificate and key the
//! listener presents (made by `hypha cert admin`, signed by the cluster
//! CA), loaded from `[http] tls_dir` and swapped in place by SIGHUP or
//! `POST /v1/node/tls/reload`. A file that cannot be used is refused and
//! the certificate in use is kept. The accept side (handshake deadline,
//! caps on connections not through TLS yet) is in `http/serve.rs`.
//!
//! Only HTTP/1.1 is offered in ALPN: the header-read timeout that bounds a
//! slow client is an HTTP/1 setting of hyper, and the CLI speaks HTTP/1.1.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use hypha_cluster::peers::tls::TlsError;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// The admin server's certificate (chain) in a TLS directory.
pub const CERT_FILE: &str = "admin.pem";
/// Its private key (0600).
pub const KEY_FILE: &str = "admin.key";
/// The protocol offered in ALPN.
const ALPN_HTTP1: &[u8] = b"http/1.1";

/// What the admin listener presents now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AdminTlsStatus {
    /// The directory read.
    pub dir: PathBuf,
    /// BLAKE3 of the certificate's DER (hex): changes on renewal.
    pub cert_blake3: String,
    /// Successful reloads since start (0: the files read at start).
    pub reloads: u64,
}

struct Loaded {
    certified: Arc<CertifiedKey>,
    status: AdminTlsStatus,
}

/// The certificate in use, read by every handshake and swapped whole.
struct Current(RwLock<Arc<Loaded>>);

impl Current {
    fn get(&self) -> Arc<Loaded> {
        // A panic while swapping cannot leave a half-written Arc behind.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, loaded: Arc<Loaded>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = loaded;
    }
}

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminTlsCertificate(..)")
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get().certified.clone())
    }
}

/// The admin listener's TLS, reloadable in place.
#[derive(Clone)]
pub struct AdminTls {
    acceptor: TlsAcceptor,
    current: Arc<Current>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for AdminTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminTls(..)")
    }
}

fn read(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>), TlsError> {
    let path = dir.join(name);
    std::fs::read(&path)
        .map(|bytes| (path.clone(), bytes))
        .map_err(|source| TlsError::Read { path, source })
}

fn pem_err(path: &Path, message: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Read and check the certificate and key in `dir`: both PEM, at least
/// one certificate, and the key the certificate's.
fn load_dir(dir: &Path, provider: &CryptoProvider, reloads: u64) -> Result<Loaded, TlsError> {
    let (cert_path, cert) = read(dir, CERT_FILE)?;
    let (key_path, key) = read(dir, KEY_FILE)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert)
        .collect::<Result<_, _>>()
        .map_err(|e| pem_err(&cert_path, format!("not a PEM certificate: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(pem_err(&cert_path, "holds no PEM certificate"));
    };
    let status = AdminTlsStatus {
        dir: dir.to_owned(),
        cert_blake3: blake3::hash(leaf).to_hex().to_string(),
        reloads,
    };
    let key = PrivateKeyDer::from_pem_slice(&key)
        .map_err(|e| pem_err(&key_path, format!("not a PEM private key: {e}")))?;
    // from_der checks that the key belongs to the certificate: a renewal
    // caught half-way is refused here rather than failing every handshake.
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        pem_err(
            &key_path,
            format!("does not match {}: {e}", cert_path.display()),
        )
    })?;
    Ok(Loaded {
        certified: Arc::new(certified),
        status,
    })
}

impl AdminTls {
    /// Load `admin.pem` and `admin.key` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let current = Arc::new(Current(RwLock::new(Arc::new(load_dir(dir, &provider, 0)?))));
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        server.alpn_protocols = vec![ALPN_HTTP1.to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            current,
            provider,
        })
    }

    /// Re-read the directory given to [`AdminTls::load`]; new handshakes
    /// present the new certificate, open connections carry on. On an error
    /// the certificate in use is kept.
    pub fn reload(&self) -> Result<AdminTlsStatus, TlsError> {
        let old = self.current.get();
        let loaded = load_dir(&old.status.dir, &self.provider, old.status.reloads + 1)?;
        let status = loaded.status.clone();
        self.current.set(Arc::new(loaded));
        Ok(status)
    }

    /// The certificate in use.
    pub fn status(&self) -> AdminTlsStatus {
        self.current.get().status.clone()
    }

    /// The server side of a handshake.
    pub(crate) fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

/// [`AdminTls::reload`] off the async workers (it reads files), logged and
/// counted.
pub async fn reload_admin_tls(tls: &AdminTls) -> Result<AdminTlsStatus, String> {
    let reloading = tls.clone();
    let result = crate::cluster::reload_off_runtime(move || reloading.reload()).await;
    match &result {
        Ok(status) => {
            metrics::counter!("hypha_http_tls_reloads_total", "result" => "ok").increment(1);
            tracing::info!(cert_blake3 = %status.cert_blake3, "admin HTTPS certificate reloaded");
        }
        Err(err) => {
            metrics::counter!("hypha_http_tls_reloads_total", "result" => "error").increment(1);
            tracing::error!("admin HTTPS reload failed, the certificate in use is kept: {err}");
        }
    }
    result
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::commands::cert::admin_cert;
    use hypha_cluster::peers::tls::new_ca;

    fn write(dir: &Path, pair: &hypha_cluster::peers::tls::PemPair) {
        std::fs::write(dir.join(CERT_FILE), &pair.cert_pem).unwrap();
        std::fs::write(dir.join(KEY_FILE), &pair.key_pem).unwrap();
    }

    #[test]
    fn missing_files_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let err = AdminTls::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains(CERT_FILE), "{err}");
    }

    #[test]
    fn a_file_that_is_not_pem_is_refused() {
        let ca = new_ca().unwrap();
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &admin_cert(&ca.key_pem, &["localhost".into()]).unwrap(),
        );
        std::fs::write(dir.path().join(CERT_FILE), "hello").unwrap();
        let err = AdminTls::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no PEM certificate"), "{err}");
        write(
            dir.path(),
            &admin_cert(&ca.key_pem, &["localhost".into()]).unwrap(),
        );
        std::fs::write(dir.path().join(KEY_FILE), "hello").unwrap();
        let err = AdminTls::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not a PEM private key"), "{err}");
    }

    #[test]
    fn a_key_of_another_certificate_is_refused_and_a_reload_keeps_the_old_one() {
        let ca = new_ca().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let first = admin_cert(&ca.key_pem, &["localhost".into()]).unwrap();
        write(dir.path(), &first);
        let tls = AdminTls::load(dir.path()).unwrap();
        let before = tls.status();
        let second = admin_cert(&ca.key_pem, &["localhost".into()]).unwrap();
        std::fs::write(dir.path().join(CERT_FILE), &second.cert_pem).unwrap();
        let err = tls.reload().unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
        assert_eq!(tls.status(), before);
        std::fs::write(dir.path().join(KEY_FILE), &second.key_pem).unwrap();
        let after = tls.reload().unwrap();
        assert_ne!(after.cert_blake3, before.cert_blake3);
        assert_eq!(after.reloads, 1);
    }
}
