//! Optional mutual TLS for node links: a cluster CA, node certificates it
//! signs (rcgen), and the rustls configurations both sides of a link use.
//! Every node certificate names [`NODE_SERVER_NAME`]; a node accepts a peer
//! only if the peer's certificate chains to the cluster CA, in both
//! directions. The cookie handshake still runs inside the TLS session.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use thiserror::Error;
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The DNS name every node certificate carries and every dialer expects.
pub const NODE_SERVER_NAME: &str = "hypha-node";
const CA_COMMON_NAME: &str = "Hypha cluster CA";
/// File names in a node's TLS directory.
pub const CA_FILE: &str = "ca.pem";
/// The node's certificate.
pub const CERT_FILE: &str = "node.pem";
/// The node's private key.
pub const KEY_FILE: &str = "node.key";
/// The CA's private key (only in the CA directory).
pub const CA_KEY_FILE: &str = "ca.key";

/// Why TLS material could not be made or loaded.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A PEM file holds nothing usable.
    #[error("{path}: {message}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Certificate generation failed.
    #[error("certificate generation: {0}")]
    Generate(String),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// PEM texts of a certificate and its key.
#[derive(Debug, Clone)]
pub struct PemPair {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (keep it 0600).
    pub key_pem: String,
}

fn ca_params() -> Result<CertificateParams, TlsError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(gen_err)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_COMMON_NAME);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn gen_err(err: rcgen::Error) -> TlsError {
    TlsError::Generate(err.to_string())
}

/// A new cluster CA.
pub fn new_ca() -> Result<PemPair, TlsError> {
    let key = KeyPair::generate().map_err(gen_err)?;
    let cert = ca_params()?.self_signed(&key).map_err(gen_err)?;
    Ok(PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A node certificate signed by the CA whose key is `ca_key_pem`.
pub fn new_node_cert(ca_key_pem: &str, node_name: &str) -> Result<PemPair, TlsError> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(gen_err)?;
    // The issuer is rebuilt from the same fixed parameters and key the CA
    // was made with; names and key identify it, so the chain verifies.
    let issuer = Issuer::new(ca_params()?, ca_key);
    let mut params = CertificateParams::new(vec![NODE_SERVER_NAME.to_owned()]).map_err(gen_err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, node_name);
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().map_err(gen_err)?;
    let cert = params.signed_by(&key, &issuer).map_err(gen_err)?;
    Ok(PemPair {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Both ends of mutual TLS for one node.
#[derive(Clone)]
pub struct LinkTls {
    /// For the node-link listener.
    pub acceptor: TlsAcceptor,
    /// For dialing.
    pub connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for LinkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkTls(..)")
    }
}

impl LinkTls {
    /// Load `ca.pem`, `node.pem`, `node.key` from `dir`.
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read(&path)
                .map(|bytes| (path.clone(), bytes))
                .map_err(|source| TlsError::Read { path, source })
        };
        let (ca_path, ca) = read(CA_FILE)?;
        let (cert_path, cert) = read(CERT_FILE)?;
        let (key_path, key) = read(KEY_FILE)?;
        let pem_err = |path: &PathBuf, message: String| TlsError::Pem {
            path: path.clone(),
            message,
        };
        let certs =
            |path: &PathBuf, bytes: &[u8]| -> Result<Vec<CertificateDer<'static>>, TlsError> {
                let certs: Vec<_> = CertificateDer::pem_slice_iter(bytes)
                    .collect::<Result<_, _>>()
                    .map_err(|e| pem_err(path, e.to_string()))?;
                if certs.is_empty() {
                    return Err(pem_err(path, "no certificate".into()));
                }
                Ok(certs)
            };
        let ca_certs = certs(&ca_path, &ca)?;
        let chain = certs(&cert_path, &cert)?;
        let key =
            PrivateKeyDer::from_pem_slice(&key).map_err(|e| pem_err(&key_path, e.to_string()))?;
        Self::build(ca_certs, chain, key)
    }

    fn build(
        ca_certs: Vec<CertificateDer<'static>>,
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for ca in ca_certs {
            roots.add(ca).map_err(|e| TlsError::Config(e.to_string()))?;
        }
        let roots = Arc::new(roots);
        let config_err = |e: rustls::Error| TlsError::Config(e.to_string());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(config_err)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(config_err)?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(config_err)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(config_err)?;
        let server_name =
            ServerName::try_from(NODE_SERVER_NAME).map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            server_name,
        })
    }

    /// The name a dialer verifies.
    pub fn server_name(&self) -> ServerName<'static> {
        self.server_name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_node(dir: &Path, ca: &PemPair, node: &PemPair) {
        std::fs::write(dir.join(CA_FILE), &ca.cert_pem).unwrap();
        std::fs::write(dir.join(CERT_FILE), &node.cert_pem).unwrap();
        std::fs::write(dir.join(KEY_FILE), &node.key_pem).unwrap();
    }

    #[tokio::test]
    async fn nodes_of_one_ca_talk_and_a_stranger_is_refused() {
        let ca = new_ca().unwrap();
        let other_ca = new_ca().unwrap();
        let (a_dir, b_dir, c_dir) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        write_node(a_dir.path(), &ca, &new_node_cert(&ca.key_pem, "a").unwrap());
        write_node(b_dir.path(), &ca, &new_node_cert(&ca.key_pem, "b").unwrap());
        write_node(
            c_dir.path(),
            &other_ca,
            &new_node_cert(&other_ca.key_pem, "c").unwrap(),
        );
        let a = LinkTls::load(a_dir.path()).unwrap();
        let b = LinkTls::load(b_dir.path()).unwrap();
        let c = LinkTls::load(c_dir.path()).unwrap();
        assert!(handshake(&a, &b).await, "same CA must connect");
        assert!(
            !handshake(&a, &c).await,
            "a stranger's client cert must be refused"
        );
        assert!(
            !handshake(&c, &a).await,
            "a stranger's server cert must be refused"
        );
    }

    /// Server `s` accepts one connection from client `c`; true if both sides
    /// completed the handshake and exchanged a byte.
    async fn handshake(s: &LinkTls, c: &LinkTls) -> bool {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let acceptor = s.acceptor.clone();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.ok()?;
            let mut tls = acceptor.accept(tcp).await.ok()?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.ok()?;
            tls.write_all(&byte).await.ok()?;
            Some(())
        });
        let client = async {
            let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
            let mut tls = c.connector.connect(c.server_name(), tcp).await.ok()?;
            tls.write_all(b"x").await.ok()?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.ok()?;
            Some(())
        };
        let client_ok = client.await.is_some();
        let server_ok = matches!(server.await, Ok(Some(())));
        client_ok && server_ok
    }
}
