//! Optional mutual TLS for node links: a cluster CA, node certificates it
//! signs (rcgen), and the rustls configurations both sides of a link use.
//! A node accepts a peer only if the peer's certificate chains to the
//! cluster CA, in both directions, and names the node it claims to be:
//! every node certificate carries its node id as a DNS name
//! ([`identity_name`]). A dialer verifies the id of the member it meant to
//! reach ([`LinkTls::server_name_for`]), so a gossiped address that points
//! at another node fails the handshake; a listener reads the dialer's id
//! ([`peer_node_id`]) and the peers actor holds it against the name the
//! cookie handshake then claims. The cookie handshake still runs inside
//! the TLS session.
//! The material can be reloaded while the node runs ([`LinkTls::reload`]),
//! which is how certificates and CAs are rotated without downtime.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{ResolvesClientCert, WebPkiServerVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use thiserror::Error;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use hypha_core::identity::NodeId;

/// The shared DNS name every node certificate also carries. Nodes no
/// longer verify it; it stays in new certificates so that nodes of earlier
/// releases, which verify only this name, link to them during an upgrade.
pub const NODE_SERVER_NAME: &str = "hypha-node";
/// The domain under which a certificate's DNS name carries its node id.
pub const IDENTITY_DOMAIN: &str = "node.hypha";
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
    /// The node certificate does not name one node id.
    #[error("{path}: {source}")]
    Identity {
        /// The certificate file.
        path: PathBuf,
        /// Why.
        source: IdentityError,
    },
    /// A reloaded certificate names another node than the one running.
    #[error("{path} names node {found}, but this node is {expected}: a node's certificate must name its own id")]
    WrongNode {
        /// The certificate file.
        path: PathBuf,
        /// The id the certificate names.
        found: NodeId,
        /// The node's id.
        expected: NodeId,
    },
}

/// Why a certificate names no usable node id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdentityError {
    /// Not a parsable X.509 certificate.
    #[error("not a readable X.509 certificate: {0}")]
    Unreadable(String),
    /// No DNS name under [`IDENTITY_DOMAIN`].
    #[error("the certificate names no node id (it was issued before node certificates named their node; issue a new one with `hypha cert node --data-dir DIR`)")]
    Unnamed,
    /// More than one node id.
    #[error("the certificate names {0} node ids; a node certificate names exactly one")]
    Ambiguous(usize),
    /// The peer presented no certificate.
    #[error("the peer presented no certificate")]
    NoCertificate,
}

/// The DNS name that carries node `id` in a certificate: the id's 64 hex
/// digits as two labels of 32 (a DNS label holds at most 63) under
/// [`IDENTITY_DOMAIN`]. A DNS name rather than a custom extension so that
/// rustls' own name check does the dialer's verification.
pub fn identity_name(id: &NodeId) -> String {
    let hex = id.to_hex();
    let (high, low) = hex.split_at(hex.len() / 2);
    format!("{high}.{low}.{IDENTITY_DOMAIN}")
}

/// The node id an [`identity_name`] carries, if `name` is one.
fn parse_identity_name(name: &str) -> Option<NodeId> {
    let labels = name.strip_suffix(IDENTITY_DOMAIN)?.strip_suffix('.')?;
    let (high, low) = labels.split_once('.')?;
    if high.len() != 32 || low.len() != 32 {
        return None;
    }
    format!("{high}{low}").parse().ok()
}

/// The node id certificate `der` names: exactly one [`identity_name`]
/// among its subject alternative names.
pub fn node_id_of(der: &CertificateDer<'_>) -> Result<NodeId, IdentityError> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|e| IdentityError::Unreadable(e.to_string()))?;
    let sans = cert
        .subject_alternative_name()
        .map_err(|e| IdentityError::Unreadable(e.to_string()))?;
    let ids: Vec<NodeId> = sans
        .iter()
        .flat_map(|ext| ext.value.general_names.iter())
        .filter_map(|name| match name {
            GeneralName::DNSName(dns) => parse_identity_name(dns),
            _ => None,
        })
        .collect();
    match ids.as_slice() {
        [] => Err(IdentityError::Unnamed),
        [id] => Ok(*id),
        more => Err(IdentityError::Ambiguous(more.len())),
    }
}

/// The node id the (first) certificate in PEM file `path` names.
pub fn node_id_of_file(path: &Path) -> Result<NodeId, TlsError> {
    let bytes = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })?;
    let der = CertificateDer::from_pem_slice(&bytes).map_err(|e| TlsError::Pem {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    node_id_of(&der).map_err(|source| TlsError::Identity {
        path: path.to_owned(),
        source,
    })
}

/// The node id the peer of a finished TLS session presented (its
/// certificate already chains to the cluster CA: rustls checked that).
pub fn peer_node_id(session: &rustls::CommonState) -> Result<NodeId, IdentityError> {
    let cert = session
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or(IdentityError::NoCertificate)?;
    node_id_of(cert)
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

/// A certificate for node `node_id` (named `node_name` in its subject)
/// signed by the CA whose key is `ca_key_pem`.
pub fn new_node_cert(
    ca_key_pem: &str,
    node_name: &str,
    node_id: &NodeId,
) -> Result<PemPair, TlsError> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(gen_err)?;
    // The issuer is rebuilt from the same fixed parameters and key the CA
    // was made with; names and key identify it, so the chain verifies.
    let issuer = Issuer::new(ca_params()?, ca_key);
    let names = vec![NODE_SERVER_NAME.to_owned(), identity_name(node_id)];
    let mut params = CertificateParams::new(names).map_err(gen_err)?;
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

/// The cluster CA as an rcgen issuer, for certificates made outside this
/// module (the admin API's server certificate, `hypha cert admin`): only
/// here are the CA's parameters known, and the issuer must name the CA
/// exactly as its certificate does for a chain to verify.
pub fn ca_issuer(ca_key_pem: &str) -> Result<Issuer<'static, KeyPair>, TlsError> {
    let ca_key = KeyPair::from_pem(ca_key_pem).map_err(gen_err)?;
    Ok(Issuer::new(ca_params()?, ca_key))
}

/// What a node's TLS directory held when it was last (re)loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsStatus {
    /// The directory read.
    pub dir: PathBuf,
    /// The node id the certificate names.
    pub node_id: NodeId,
    /// BLAKE3 of the node certificate's DER (hex): changes on renewal.
    pub cert_blake3: String,
    /// How many CA certificates are trusted (two during a CA rollover).
    pub trusted_cas: usize,
    /// Successful reloads since start (0: the material read at start).
    pub reloads: u64,
}

/// One consistent set of TLS material: this node's certificate and the
/// verifiers for peers', built from the same CA bundle.
struct Material {
    certified: Arc<CertifiedKey>,
    client_verifier: Arc<dyn ClientCertVerifier>,
    server_verifier: Arc<WebPkiServerVerifier>,
    status: TlsStatus,
}

/// The current [`Material`], swapped whole by [`LinkTls::reload`]. The
/// rustls configs hold this (as resolver and verifiers), not the material
/// itself, so that the listeners built once at start — ractor_cluster's
/// among them — present and check the new certificates on the next
/// handshake while established links carry on untouched.
struct Current(RwLock<Arc<Material>>);

impl Current {
    fn get(&self) -> Arc<Material> {
        // A panic while swapping cannot leave a half-written Arc behind.
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, material: Arc<Material>) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = material;
    }
}

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkTlsMaterial(..)")
    }
}

impl ResolvesServerCert for Current {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get().certified.clone())
    }
}

impl ResolvesClientCert for Current {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.get().certified.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ClientCertVerifier for Current {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    // Hints are optional; every node has exactly one certificate to offer.
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verdict = self
            .get()
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now);
        refused_if_err(verdict, "a dialing peer's")
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get()
            .client_verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get()
            .client_verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.get().client_verifier.supported_verify_schemes()
    }
}

impl ServerCertVerifier for Current {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.get().server_verifier.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        refused_if_err(verdict, "a dialed peer's")
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get()
            .server_verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.get()
            .server_verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.get().server_verifier.supported_verify_schemes()
    }
}

/// Count and log a peer certificate this node refused. Counted here, in
/// the verifier, because only the refusing side knows: in TLS 1.3 a client
/// whose certificate is refused has already finished its handshake.
fn refused_if_err<T>(verdict: Result<T, rustls::Error>, whose: &str) -> Result<T, rustls::Error> {
    if let Err(err) = &verdict {
        metrics::counter!("hypha_cluster_handshakes_refused_total", "reason" => "certificate")
            .increment(1);
        tracing::warn!("refused {whose} certificate: {err}");
    }
    verdict
}

/// Both ends of mutual TLS for one node, reloadable in place.
#[derive(Clone)]
pub struct LinkTls {
    /// For the node-link listener.
    pub acceptor: TlsAcceptor,
    /// For dialing.
    pub connector: TlsConnector,
    current: Arc<Current>,
    provider: Arc<CryptoProvider>,
}

impl std::fmt::Debug for LinkTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkTls(..)")
    }
}

fn read_material(
    dir: &Path,
    provider: &Arc<CryptoProvider>,
    reloads: u64,
) -> Result<Material, TlsError> {
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
    let certs = |path: &PathBuf, bytes: &[u8]| -> Result<Vec<CertificateDer<'static>>, TlsError> {
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
    let key = PrivateKeyDer::from_pem_slice(&key).map_err(|e| pem_err(&key_path, e.to_string()))?;
    let node_id = node_id_of(&chain[0]).map_err(|source| TlsError::Identity {
        path: cert_path.clone(),
        source,
    })?;
    let status = TlsStatus {
        dir: dir.to_owned(),
        node_id,
        cert_blake3: blake3::hash(&chain[0]).to_hex().to_string(),
        trusted_cas: ca_certs.len(),
        reloads,
    };
    let config_err = |e: String| TlsError::Config(e);
    let mut roots = rustls::RootCertStore::empty();
    for ca in ca_certs {
        roots.add(ca).map_err(|e| config_err(e.to_string()))?;
    }
    let roots = Arc::new(roots);
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| config_err(e.to_string()))?;
    let server_verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| config_err(e.to_string()))?;
    // from_der also checks that the key belongs to the certificate, so a
    // half-renewed directory is refused instead of breaking handshakes.
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| {
        pem_err(
            &key_path,
            format!("does not match {}: {e}", cert_path.display()),
        )
    })?;
    Ok(Material {
        certified: Arc::new(certified),
        client_verifier,
        server_verifier,
        status,
    })
}

impl LinkTls {
    /// Load `ca.pem` (one CA, or several during a rollover), `node.pem`
    /// and `node.key` from `dir`. The certificate must name a node id
    /// ([`LinkTls::node_id`]); the node checks it is its own.
    pub fn load(dir: &Path) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let current = Arc::new(Current(RwLock::new(Arc::new(read_material(
            dir, &provider, 0,
        )?))));
        let config_err = |e: rustls::Error| TlsError::Config(e.to_string());
        let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(config_err)?
            .with_client_cert_verifier(current.clone())
            .with_cert_resolver(current.clone());
        // A resumed session skips certificate verification: a peer whose CA
        // was since removed from the bundle could come back on an old
        // ticket. Links are long-lived, so full handshakes cost nothing.
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        server.send_tls13_tickets = 0;
        let mut client = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(config_err)?
            .dangerous()
            .with_custom_certificate_verifier(current.clone())
            .with_client_cert_resolver(current.clone());
        client.resumption = rustls::client::Resumption::disabled();
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            connector: TlsConnector::from(Arc::new(client)),
            current,
            provider,
        })
    }

    /// Re-read the directory given to [`LinkTls::load`] and use it for
    /// every handshake from now on. Established links are not touched. On
    /// an error, or a certificate naming another node, the material in
    /// use stays as it was.
    pub fn reload(&self) -> Result<TlsStatus, TlsError> {
        let old = self.current.get();
        let material = read_material(&old.status.dir, &self.provider, old.status.reloads + 1)?;
        if material.status.node_id != old.status.node_id {
            return Err(TlsError::WrongNode {
                path: old.status.dir.join(CERT_FILE),
                found: material.status.node_id,
                expected: old.status.node_id,
            });
        }
        let status = material.status.clone();
        self.current.set(Arc::new(material));
        Ok(status)
    }

    /// The material in use.
    pub fn status(&self) -> TlsStatus {
        self.current.get().status.clone()
    }

    /// The node id this node's certificate names.
    pub fn node_id(&self) -> NodeId {
        self.current.get().status.node_id
    }

    /// The name a dialer verifies to reach node `id` and no other.
    pub fn server_name_for(id: &NodeId) -> Result<ServerName<'static>, TlsError> {
        ServerName::try_from(identity_name(id)).map_err(|e| TlsError::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate for a node named `name`, whose id is derived from the
    /// name so that a renewal names the same node.
    fn node_cert(ca: &PemPair, name: &str) -> PemPair {
        new_node_cert(&ca.key_pem, name, &id_of(name)).unwrap()
    }

    fn id_of(name: &str) -> NodeId {
        NodeId::from_bytes(*blake3::hash(name.as_bytes()).as_bytes())
    }

    /// Nodes "a" and "b" certified by `ca`, with their directories.
    fn nodes_a_and_b(ca: &PemPair) -> (LinkTls, LinkTls, [tempfile::TempDir; 2]) {
        let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
        write_node(dirs[0].path(), ca, &node_cert(ca, "a"));
        write_node(dirs[1].path(), ca, &node_cert(ca, "b"));
        let a = LinkTls::load(dirs[0].path()).unwrap();
        let b = LinkTls::load(dirs[1].path()).unwrap();
        (a, b, dirs)
    }

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
        write_node(a_dir.path(), &ca, &node_cert(&ca, "a"));
        write_node(b_dir.path(), &ca, &node_cert(&ca, "b"));
        write_node(c_dir.path(), &other_ca, &node_cert(&other_ca, "c"));
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

    /// The pre-auth deadline (docs/security.md) must leave a real
    /// handshake a wide margin: measured here on loopback, the slowest of
    /// 20 mutual-TLS handshakes (TCP connect included) stays under a
    /// third of the default deadline.
    #[tokio::test]
    async fn a_mutual_tls_handshake_fits_well_inside_the_preauth_deadline() {
        let ca = new_ca().unwrap();
        let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write_node(a_dir.path(), &ca, &node_cert(&ca, "a"));
        write_node(b_dir.path(), &ca, &node_cert(&ca, "b"));
        let a = LinkTls::load(a_dir.path()).unwrap();
        let b = LinkTls::load(b_dir.path()).unwrap();
        let mut took = Vec::new();
        for _ in 0..20 {
            let started = std::time::Instant::now();
            assert!(handshake(&a, &b).await);
            took.push(started.elapsed());
        }
        took.sort();
        eprintln!(
            "mutual TLS handshakes: median {:?}, max {:?}",
            took[10], took[19]
        );
        let deadline = crate::preauth::PreAuthLimits::default().deadline();
        assert!(took[19] < deadline / 3, "slowest handshake {:?}", took[19]);
    }

    #[tokio::test]
    async fn a_ca_rollover_by_reload_keeps_every_step_connected() {
        let (old_ca, new_ca) = (new_ca().unwrap(), new_ca().unwrap());
        let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let (a_dir, b_dir, late_dir) = (dirs[0].path(), dirs[1].path(), dirs[2].path());
        write_node(a_dir, &old_ca, &node_cert(&old_ca, "a"));
        write_node(b_dir, &old_ca, &node_cert(&old_ca, "b"));
        let (a, b) = (LinkTls::load(a_dir).unwrap(), LinkTls::load(b_dir).unwrap());
        let before = a.status();
        assert_eq!((before.trusted_cas, before.reloads), (1, 0));

        // 1. Both CAs trusted everywhere; certificates unchanged.
        let bundle = format!("{}{}", old_ca.cert_pem, new_ca.cert_pem);
        for dir in [a_dir, b_dir] {
            std::fs::write(dir.join(CA_FILE), &bundle).unwrap();
        }
        assert_eq!(a.reload().unwrap().trusted_cas, 2);
        b.reload().unwrap();
        assert!(handshake(&a, &b).await && handshake(&b, &a).await);

        // 2. a renews under the new CA; b still has the old certificate.
        let renewed = node_cert(&new_ca, "a");
        std::fs::write(a_dir.join(CERT_FILE), &renewed.cert_pem).unwrap();
        std::fs::write(a_dir.join(KEY_FILE), &renewed.key_pem).unwrap();
        let after = a.reload().unwrap();
        assert_ne!(after.cert_blake3, before.cert_blake3);
        assert!(handshake(&a, &b).await && handshake(&b, &a).await);
        // A node that only knows the new CA proves a presents the new cert.
        write_node(late_dir, &new_ca, &node_cert(&new_ca, "late"));
        let late = LinkTls::load(late_dir).unwrap();
        assert!(handshake(&a, &late).await && handshake(&late, &a).await);
        assert!(
            !handshake(&b, &late).await,
            "b's old certificate is not trusted by late"
        );

        // 3. The old CA is dropped from a: b's old certificate is refused.
        std::fs::write(a_dir.join(CA_FILE), &new_ca.cert_pem).unwrap();
        a.reload().unwrap();
        assert!(!handshake(&a, &b).await && !handshake(&b, &a).await);
        assert!(handshake(&a, &late).await);
    }

    #[tokio::test]
    async fn a_broken_directory_is_refused_and_the_old_material_kept() {
        let ca = new_ca().unwrap();
        let (a, b, [a_dir, _b_dir]) = nodes_a_and_b(&ca);
        // A renewal caught half-way: the new certificate, the old key.
        let other = node_cert(&ca, "a");
        std::fs::write(a_dir.path().join(CERT_FILE), &other.cert_pem).unwrap();
        let err = a.reload().unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
        std::fs::write(a_dir.path().join(CA_FILE), "not a pem").unwrap();
        assert!(a.reload().is_err());
        assert_eq!(a.status().reloads, 0);
        assert!(handshake(&a, &b).await && handshake(&b, &a).await);
    }

    /// Server `s` accepts one connection from client `c`; true if both sides
    /// completed the handshake and exchanged a byte.
    async fn handshake(s: &LinkTls, c: &LinkTls) -> bool {
        handshake_expecting(s, c, s.node_id()).await.is_some()
    }

    /// As [`handshake`], the client expecting node `expected`; the server's
    /// view of the client's node id if both sides finished.
    async fn handshake_expecting(s: &LinkTls, c: &LinkTls, expected: NodeId) -> Option<NodeId> {
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
            peer_node_id(tls.get_ref().1).ok()
        });
        let client = async {
            let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
            let name = LinkTls::server_name_for(&expected).ok()?;
            let mut tls = c.connector.connect(name, tcp).await.ok()?;
            tls.write_all(b"x").await.ok()?;
            let mut byte = [0u8; 1];
            tls.read_exact(&mut byte).await.ok()?;
            Some(())
        };
        client.await?;
        server.await.ok().flatten()
    }

    #[test]
    fn identity_names_round_trip_and_fit_dns() {
        let id = id_of("a");
        let name = identity_name(&id);
        assert!(name.split('.').all(|label| label.len() <= 63), "{name}");
        assert_eq!(parse_identity_name(&name), Some(id));
        assert_eq!(parse_identity_name(NODE_SERVER_NAME), None);
        assert_eq!(parse_identity_name("ab.cd.node.hypha"), None);
        assert!(LinkTls::server_name_for(&id).is_ok());
    }

    #[tokio::test]
    async fn a_dialer_reaches_only_the_node_it_named_and_the_listener_learns_who_dialed() {
        let ca = new_ca().unwrap();
        let (a, b, _dirs) = nodes_a_and_b(&ca);
        assert_eq!((a.node_id(), b.node_id()), (id_of("a"), id_of("b")));
        // b dials a's address expecting a: the listener sees b.
        assert_eq!(
            handshake_expecting(&a, &b, id_of("a")).await,
            Some(id_of("b"))
        );
        // b dials a's address believing it is c's (a forged address): refused.
        assert_eq!(handshake_expecting(&a, &b, id_of("c")).await, None);
    }

    #[test]
    fn a_certificate_without_a_node_id_is_refused_at_load() {
        let ca = new_ca().unwrap();
        let dir = tempfile::tempdir().unwrap();
        // As certificates were issued before they named their node.
        let ca_key = KeyPair::from_pem(&ca.key_pem).unwrap();
        let issuer = Issuer::new(ca_params().unwrap(), ca_key);
        let params = CertificateParams::new(vec![NODE_SERVER_NAME.to_owned()]).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &issuer).unwrap();
        let old = PemPair {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        };
        write_node(dir.path(), &ca, &old);
        let err = LinkTls::load(dir.path()).unwrap_err();
        assert!(
            matches!(
                &err,
                TlsError::Identity {
                    source: IdentityError::Unnamed,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("hypha cert node"), "{err}");
    }

    #[tokio::test]
    async fn a_reload_naming_another_node_is_refused() {
        let ca = new_ca().unwrap();
        let (a, b, [a_dir, _b_dir]) = nodes_a_and_b(&ca);
        write_node(a_dir.path(), &ca, &node_cert(&ca, "c"));
        let err = a.reload().unwrap_err();
        assert!(matches!(err, TlsError::WrongNode { .. }), "{err}");
        assert_eq!((a.node_id(), a.status().reloads), (id_of("a"), 0));
        assert!(handshake(&a, &b).await && handshake(&b, &a).await);
    }
}
