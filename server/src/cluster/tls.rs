//! Mutual TLS for cluster traffic: the node's certificate, the cluster CA as the only root,
//! and the QUIC crypto configs built from them.
//!
//! A node's identity is the DNS name `node-{id}` in its certificate
//! ([`super::certs::node_dns_name`]). Both directions are checked: a dialer names the node it
//! means to reach (rustls checks the server's certificate for that name), and an acceptor checks
//! the dialer's client certificate against the node id it claims ([`verify_peer_node`]).
//!
//! [`ClusterTls::load`] checks the node's own files the way a peer will, so a misconfigured node
//! fails at start with an error that names the file, instead of being refused by every peer.
//!
//! There is no insecure mode and no session resumption: every connection presents and verifies
//! a certificate. Revocation (CRLs) is not supported yet: a compromised node key means a new CA.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::client::Resumption;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, version};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::certs::node_dns_name;

/// The ALPN protocol of cluster connections; a bump means an incompatible wire change.
pub const ALPN: &[u8] = b"spate-cluster/1";

/// Why a node's TLS files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {reason}; {hint}")]
    Read {
        what: &'static str,
        path: PathBuf,
        reason: String,
        hint: &'static str,
    },
    #[error(
        "certificate {cert} is not signed by the CA in {ca} ({reason}); issue it with that CA (`spate cluster cert --ca DIR`) or point the node at the CA that signed it"
    )]
    NotSignedByCa {
        cert: PathBuf,
        ca: PathBuf,
        reason: String,
    },
    #[error(
        "certificate {cert} is for {names}, not node {node_id}; use node-{node_id}'s certificate (`spate cluster cert --node-id {node_id}`) or fix the node id"
    )]
    WrongNode {
        cert: PathBuf,
        names: String,
        node_id: i32,
    },
    #[error(
        "certificate {cert} cannot be used for cluster traffic: {reason}; reissue it with `spate cluster cert`"
    )]
    Unusable { cert: PathBuf, reason: String },
    #[error("key {key} does not belong to certificate {cert}; use the key written with it")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot build the TLS config from {cert} and {key}: {reason}")]
    Config {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
}

/// Why a peer's certificate does not show the node id it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerIdentityError {
    #[error("it presented no certificate")]
    NoCertificate,
    #[error("its certificate cannot be parsed ({0})")]
    Unparsable(String),
    #[error("its certificate is for {names}, not node {node_id}")]
    WrongNode { names: String, node_id: i32 },
}

/// A node's TLS identity and trust, ready for QUIC. Cheap to clone.
#[derive(Clone)]
pub struct ClusterTls {
    node_id: i32,
    server: Arc<QuicServerConfig>,
    client: Arc<QuicClientConfig>,
}

impl fmt::Debug for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterTls")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl ClusterTls {
    /// Loads node `node_id`'s certificate chain and key and the cluster CA, and checks that the
    /// certificate chains to the CA, is valid now, is for `node-{node_id}`, may be used both to
    /// serve and to dial, and matches the key.
    pub fn load(ca: &Path, cert: &Path, key: &Path, node_id: i32) -> Result<Self, TlsError> {
        let ca_certs = read_certs(ca, "CA certificate", CA_HINT)?;
        let chain = read_certs(cert, "node certificate", CERT_HINT)?;
        let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Read {
            what: "node key",
            path: key.to_owned(),
            reason: e.to_string(),
            hint: CERT_HINT,
        })?;

        let mut roots = RootCertStore::empty();
        for ca_cert in &ca_certs {
            roots.add(ca_cert.clone()).map_err(|e| TlsError::Read {
                what: "CA certificate",
                path: ca.to_owned(),
                reason: e.to_string(),
                hint: CA_HINT,
            })?;
        }
        check_own_certificate(&chain, &roots, node_id, cert, ca)?;

        let provider = crypto_provider();
        let config_error = |e: rustls::Error| match e {
            rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
                cert: cert.to_owned(),
                key: key.to_owned(),
            },
            other => TlsError::Config {
                cert: cert.to_owned(),
                key: key.to_owned(),
                reason: other.to_string(),
            },
        };
        let server = server_config(&provider, &roots, &chain, &key_der).map_err(config_error)?;
        let client = client_config(&provider, roots, chain, key_der).map_err(config_error)?;
        let quic_error = |e: quinn::crypto::rustls::NoInitialCipherSuite| TlsError::Config {
            cert: cert.to_owned(),
            key: key.to_owned(),
            reason: e.to_string(),
        };
        Ok(ClusterTls {
            node_id,
            server: Arc::new(QuicServerConfig::try_from(server).map_err(quic_error)?),
            client: Arc::new(QuicClientConfig::try_from(client).map_err(quic_error)?),
        })
    }

    /// The node id the certificate was checked against.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// A quinn server config that requires a client certificate from the cluster CA. Its
    /// transport settings are quinn's defaults; the caller sets its own.
    pub fn server_config(&self) -> quinn::ServerConfig {
        quinn::ServerConfig::with_crypto(self.server.clone())
    }

    /// A quinn client config that trusts only the cluster CA and presents this node's
    /// certificate. Its transport settings are quinn's defaults; the caller sets its own.
    pub fn client_config(&self) -> quinn::ClientConfig {
        quinn::ClientConfig::new(self.client.clone())
    }
}

const CA_HINT: &str =
    "make a cluster CA with `spate cluster ca --out DIR` and point the node at DIR/ca.pem";
const CERT_HINT: &str = "make it with `spate cluster cert --ca DIR --node-id N --out DIR`";

fn read_certs(
    path: &Path,
    what: &'static str,
    hint: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let read_error = |reason: String| TlsError::Read {
        what,
        path: path.to_owned(),
        reason,
        hint,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| read_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| read_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(read_error("it holds no PEM certificate".to_owned()));
    }
    Ok(certs)
}

/// Checks the node's own chain the way its peers will check it, in both roles.
fn check_own_certificate(
    chain: &[CertificateDer<'static>],
    roots: &RootCertStore,
    node_id: i32,
    cert_path: &Path,
    ca_path: &Path,
) -> Result<(), TlsError> {
    let unusable = |reason: String| TlsError::Unusable {
        cert: cert_path.to_owned(),
        reason,
    };
    let (leaf_der, intermediates) = chain
        .split_first()
        .ok_or_else(|| unusable("no certificate".to_owned()))?;
    let leaf = webpki::EndEntityCert::try_from(leaf_der)
        .map_err(|e| unusable(format!("it cannot be parsed ({e})")))?;
    let now = UnixTime::now();
    for (usage, role) in [
        (webpki::KeyUsage::server_auth(), "server"),
        (webpki::KeyUsage::client_auth(), "client"),
    ] {
        let verified = leaf.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &roots.roots,
            intermediates,
            now,
            usage,
            None,
            None,
        );
        match verified {
            Ok(_) => {}
            Err(
                e @ (webpki::Error::UnknownIssuer | webpki::Error::InvalidSignatureForPublicKey),
            ) => {
                return Err(TlsError::NotSignedByCa {
                    cert: cert_path.to_owned(),
                    ca: ca_path.to_owned(),
                    reason: format!("{e:?}"),
                });
            }
            Err(e) => return Err(unusable(format!("as a TLS {role}: {e:?}"))),
        }
    }
    match check_node_name(&leaf, node_id) {
        Ok(()) => Ok(()),
        Err(PeerIdentityError::WrongNode { names, node_id }) => Err(TlsError::WrongNode {
            cert: cert_path.to_owned(),
            names,
            node_id,
        }),
        Err(other) => Err(unusable(other.to_string())),
    }
}

/// Checks that a peer's certificate chain (as `quinn::Connection::peer_identity` gives it,
/// a `Vec<CertificateDer>`, end entity first) is for node `node_id`.
///
/// This only checks the name: the chain itself was verified against the CA by rustls during
/// the handshake.
pub fn verify_peer_node(
    peer_certs: &[CertificateDer<'_>],
    node_id: i32,
) -> Result<(), PeerIdentityError> {
    let leaf_der = peer_certs.first().ok_or(PeerIdentityError::NoCertificate)?;
    let leaf = webpki::EndEntityCert::try_from(leaf_der)
        .map_err(|e| PeerIdentityError::Unparsable(e.to_string()))?;
    check_node_name(&leaf, node_id)
}

fn check_node_name(
    leaf: &webpki::EndEntityCert<'_>,
    node_id: i32,
) -> Result<(), PeerIdentityError> {
    let wrong_node = || PeerIdentityError::WrongNode {
        names: dns_names(leaf),
        node_id,
    };
    if node_id < 0 {
        return Err(wrong_node());
    }
    let name = ServerName::try_from(node_dns_name(node_id)).map_err(|_| wrong_node())?;
    leaf.verify_is_valid_for_subject_name(&name)
        .map_err(|_| wrong_node())
}

/// The DNS names a certificate is for, for messages ("node-3", or "node-3, node-4").
fn dns_names(leaf: &webpki::EndEntityCert<'_>) -> String {
    let names: Vec<&str> = leaf.valid_dns_names().collect();
    match names.is_empty() {
        true => "no DNS name".to_owned(),
        false => names.join(", "),
    }
}

/// rustls with *ring*, explicitly: no process-wide default provider is assumed.
///
/// rustls 0.23.48 deprecates `ring::default_provider` because *ring* has no post-quantum key
/// exchange. The project chose *ring* (DESIGN.md); moving cluster TLS to aws-lc-rs for
/// X25519MLKEM768 is a dependency decision, not this module's.
#[allow(deprecated)]
fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_config(
    provider: &Arc<CryptoProvider>,
    roots: &RootCertStore,
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots.clone()), provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain.to_vec(), key.clone_key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    // No resumption tickets, so every connection verifies a certificate; no 0-RTT.
    config.send_tls13_tickets = 0;
    config.max_early_data_size = 0;
    Ok(config)
}

fn client_config(
    provider: &Arc<CryptoProvider>,
    roots: RootCertStore,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    config.resumption = Resumption::disabled();
    config.enable_early_data = false;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::cluster::certs::{write_ca, write_node_cert};

    /// A CA in `dir` and certificates for nodes 1 and 2.
    fn cluster_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        write_ca(dir.path()).unwrap();
        write_node_cert(dir.path(), 1, dir.path()).unwrap();
        write_node_cert(dir.path(), 2, dir.path()).unwrap();
        dir
    }

    fn load(dir: &Path, cert_node: i32, node_id: i32) -> Result<ClusterTls, TlsError> {
        ClusterTls::load(
            &dir.join("ca.pem"),
            &dir.join(format!("node-{cert_node}.pem")),
            &dir.join(format!("node-{cert_node}.key")),
            node_id,
        )
    }

    #[test]
    fn load_accepts_a_nodes_own_certificate() {
        let dir = cluster_dir();
        assert_eq!(load(dir.path(), 1, 1).unwrap().node_id(), 1);
        assert_eq!(load(dir.path(), 2, 2).unwrap().node_id(), 2);
    }

    #[test]
    fn load_refuses_another_nodes_certificate_and_names_both() {
        let dir = cluster_dir();
        let error = load(dir.path(), 1, 2).unwrap_err();
        assert!(
            matches!(error, TlsError::WrongNode { node_id: 2, .. }),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("node-1.pem is for node-1, not node 2"),
            "{message}"
        );
    }

    #[test]
    fn load_refuses_a_certificate_from_another_ca_and_names_the_ca_file() {
        let dir = cluster_dir();
        let other = tempfile::tempdir().unwrap();
        write_ca(other.path()).unwrap();
        let error = ClusterTls::load(
            &other.path().join("ca.pem"),
            &dir.path().join("node-1.pem"),
            &dir.path().join("node-1.key"),
            1,
        )
        .unwrap_err();
        assert!(matches!(error, TlsError::NotSignedByCa { .. }), "{error}");
        let message = error.to_string();
        let expected = format!(
            "is not signed by the CA in {}",
            other.path().join("ca.pem").display()
        );
        assert!(message.contains(&expected), "{message}");
    }

    #[test]
    fn load_refuses_a_key_that_is_not_the_certificates() {
        let dir = cluster_dir();
        let error = ClusterTls::load(
            &dir.path().join("ca.pem"),
            &dir.path().join("node-1.pem"),
            &dir.path().join("node-2.key"),
            1,
        )
        .unwrap_err();
        assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
        assert!(error.to_string().contains("node-2.key"));
    }

    #[test]
    fn load_refuses_a_ca_certificate_as_a_node_certificate() {
        let dir = cluster_dir();
        let error = ClusterTls::load(
            &dir.path().join("ca.pem"),
            &dir.path().join("ca.pem"),
            &dir.path().join("ca.key"),
            1,
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                TlsError::Unusable { .. } | TlsError::WrongNode { .. }
            ),
            "{error}"
        );
    }

    #[test]
    fn load_names_a_missing_file_and_how_to_make_it() {
        let dir = cluster_dir();
        let error = load(dir.path(), 5, 5).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("node-5.pem") && message.contains("spate cluster cert"),
            "{message}"
        );
        fs::remove_file(dir.path().join("ca.pem")).unwrap();
        let message = load(dir.path(), 1, 1).unwrap_err().to_string();
        assert!(
            message.contains("ca.pem") && message.contains("spate cluster ca"),
            "{message}"
        );
    }

    #[test]
    fn verify_peer_node_accepts_the_named_node_only() {
        let dir = cluster_dir();
        let der = CertificateDer::from_pem_file(dir.path().join("node-1.pem")).unwrap();
        verify_peer_node(std::slice::from_ref(&der), 1).unwrap();
        let error = verify_peer_node(std::slice::from_ref(&der), 2).unwrap_err();
        assert_eq!(
            error.to_string(),
            "its certificate is for node-1, not node 2"
        );
        assert_eq!(
            verify_peer_node(&[], 1).unwrap_err(),
            PeerIdentityError::NoCertificate
        );
        assert!(verify_peer_node(std::slice::from_ref(&der), -1).is_err());
    }
}
