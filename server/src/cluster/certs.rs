//! The cluster CA and node certificates (`spate cluster ca`, `spate cluster cert`).
//!
//! Cluster traffic uses mutual TLS: every node presents a certificate signed by the cluster CA,
//! and its identity is the DNS name in that certificate, `node-{id}` ([`node_dns_name`]). This
//! module makes those files with rcgen; [`super::tls`] loads and checks them.
//!
//! It does not rotate, revoke or distribute anything: an operator runs `spate cluster ca` once,
//! `spate cluster cert` once per node, and copies `ca.pem`, `node-N.pem` and `node-N.key` to
//! node N. `ca.key` stays with the operator. Existing files are never overwritten, so a second
//! run cannot silently replace a CA that nodes already trust.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

/// The CA certificate's file name in the CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// The CA private key's file name in the CA directory.
pub const CA_KEY_FILE: &str = "ca.key";

/// Ten years: the CA is made once per cluster, and replacing it means reissuing every node.
pub const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// About five years: shorter than the CA's, so a node certificate never outlives its issuer.
pub const NODE_VALIDITY: Duration = Duration::from_secs(5 * 365 * 24 * 3600);
/// Certificates start this long before they are made, so a peer whose clock is a little
/// behind does not refuse a certificate that is "not valid yet".
pub const CLOCK_SKEW_ALLOWANCE: Duration = Duration::from_secs(3600);

const _: () = assert!(NODE_VALIDITY.as_secs() < CA_VALIDITY.as_secs());

/// Private keys are readable by their owner only.
const KEY_FILE_MODE: u32 = 0o600;
/// Certificates are public.
const CERT_FILE_MODE: u32 = 0o644;

/// The identity of node `node_id`: the DNS name its certificate holds and peers check.
pub fn node_dns_name(node_id: i32) -> String {
    format!("node-{node_id}")
}

/// What [`write_ca`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// What [`write_node_cert`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeCertFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate or key could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(
        "{path} already exists; refusing to overwrite it: move it away or choose another --out \
         directory"
    )]
    Exists { path: PathBuf },
    #[error("cannot create directory {path}: {source}; check the path and its permissions")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}; check the directory's permissions and free space")]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "cannot read {path}: {source}; point --ca at the directory `spate cluster ca --out DIR` \
         wrote"
    )]
    ReadCa { path: PathBuf, source: io::Error },
    #[error("{path} is not a usable cluster CA file: {reason}; make a CA with `spate cluster ca`")]
    BadCa { path: PathBuf, reason: String },
    #[error(
        "{key} does not belong to {cert}: a certificate signed with it does not verify \
         ({reason}); use the ca.pem and ca.key that `spate cluster ca` wrote together"
    )]
    CaKeyMismatch {
        cert: PathBuf,
        key: PathBuf,
        reason: String,
    },
    #[error("node id {0} is negative; node ids are 0 or more")]
    NodeId(i32),
    #[error("cannot generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("the system clock is before 1970; set the clock and retry")]
    Clock,
}

/// Makes a new cluster CA in `out_dir` (created if missing): `ca.pem` and `ca.key` (mode 0600).
///
/// Refuses if either file already exists.
pub fn write_ca(out_dir: &Path) -> Result<CaFiles, CertError> {
    let files = CaFiles {
        cert: out_dir.join(CA_CERT_FILE),
        key: out_dir.join(CA_KEY_FILE),
    };
    create_dir(out_dir)?;
    refuse_existing(&[&files.cert, &files.key])?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::default();
    // The key id in the name tells two CAs apart in `openssl x509 -text` and in logs.
    let key_id = params.key_identifier(&key);
    let key_id_hex: String = key_id.iter().take(4).map(|b| format!("{b:02x}")).collect();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Spate cluster CA {key_id_hex}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Spate");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params, CA_VALIDITY)?;
    let cert = params.self_signed(&key)?;

    write_new(&files.cert, cert.pem().as_bytes(), CERT_FILE_MODE)?;
    write_new(&files.key, key.serialize_pem().as_bytes(), KEY_FILE_MODE)?;
    Ok(files)
}

/// Issues node `node_id`'s certificate with the CA in `ca_dir`, writing `node-N.pem` and
/// `node-N.key` (mode 0600) into `out_dir` (created if missing).
///
/// The certificate names the node as the DNS name [`node_dns_name`] and may be used both to
/// serve and to dial (EKU serverAuth and clientAuth). Refuses if either file already exists.
pub fn write_node_cert(
    ca_dir: &Path,
    node_id: i32,
    out_dir: &Path,
) -> Result<NodeCertFiles, CertError> {
    if node_id < 0 {
        return Err(CertError::NodeId(node_id));
    }
    let name = node_dns_name(node_id);
    let files = NodeCertFiles {
        cert: out_dir.join(format!("{name}.pem")),
        key: out_dir.join(format!("{name}.key")),
    };
    let ca_cert_path = ca_dir.join(CA_CERT_FILE);
    let ca_key_path = ca_dir.join(CA_KEY_FILE);
    let ca_cert_pem = read_ca_file(&ca_cert_path)?;
    let ca_key_pem = read_ca_file(&ca_key_path)?;
    create_dir(out_dir)?;
    refuse_existing(&[&files.cert, &files.key])?;

    let ca_key = KeyPair::from_pem(&ca_key_pem).map_err(|e| CertError::BadCa {
        path: ca_key_path.clone(),
        reason: format!("not a PEM private key ({e})"),
    })?;
    let issuer = Issuer::from_ca_cert_pem(&ca_cert_pem, ca_key).map_err(|e| CertError::BadCa {
        path: ca_cert_path.clone(),
        reason: format!("not a PEM certificate ({e})"),
    })?;

    let key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![name.clone()])?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Spate {name}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Spate");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    set_validity(&mut params, NODE_VALIDITY)?;
    let cert = params.signed_by(&key, &issuer)?;

    // rcgen does not check that ca.key is ca.pem's key; a mismatch would only show up when
    // nodes refuse each other, so check the new certificate the way a peer will.
    check_issued_by(cert.der(), &ca_cert_pem).map_err(|reason| CertError::CaKeyMismatch {
        cert: ca_cert_path.clone(),
        key: ca_key_path.clone(),
        reason,
    })?;

    write_new(&files.cert, cert.pem().as_bytes(), CERT_FILE_MODE)?;
    write_new(&files.key, key.serialize_pem().as_bytes(), KEY_FILE_MODE)?;
    Ok(files)
}

/// Makes `params` valid from now (less the skew allowance) for `lifetime`.
fn set_validity(params: &mut CertificateParams, lifetime: Duration) -> Result<(), CertError> {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|_| CertError::Clock)?;
    let now = rcgen::date_time_ymd(1970, 1, 1) + since_epoch;
    params.not_before = now - CLOCK_SKEW_ALLOWANCE;
    params.not_after = now + lifetime;
    Ok(())
}

/// Checks that `cert_der` chains to the CA certificate in `ca_pem`, as TLS peers will.
fn check_issued_by(cert_der: &CertificateDer<'_>, ca_pem: &str) -> Result<(), String> {
    let ca_der = CertificateDer::from_pem_slice(ca_pem.as_bytes()).map_err(|e| e.to_string())?;
    let anchor = webpki::anchor_from_trusted_cert(&ca_der).map_err(|e| e.to_string())?;
    let cert = webpki::EndEntityCert::try_from(cert_der).map_err(|e| e.to_string())?;
    cert.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &[anchor],
        &[],
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
    .map_err(|e| format!("{e:?}"))
}

fn create_dir(dir: &Path) -> Result<(), CertError> {
    fs::create_dir_all(dir).map_err(|source| CertError::CreateDir {
        path: dir.to_owned(),
        source,
    })
}

fn refuse_existing(paths: &[&Path]) -> Result<(), CertError> {
    match paths.iter().find(|path| path.exists()) {
        Some(path) => Err(CertError::Exists {
            path: path.to_path_buf(),
        }),
        None => Ok(()),
    }
}

fn read_ca_file(path: &Path) -> Result<String, CertError> {
    fs::read_to_string(path).map_err(|source| CertError::ReadCa {
        path: path.to_owned(),
        source,
    })
}

/// Writes a file that must not exist yet (`O_EXCL`), created with `mode` so a key is never
/// readable by others, not even between create and chmod. The umask may clear bits of `mode`;
/// a key file is then set to exactly `mode`, as the tools that read it expect 0600.
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), CertError> {
    let mut file: File = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|source| match source.kind() {
            io::ErrorKind::AlreadyExists => CertError::Exists {
                path: path.to_owned(),
            },
            _ => CertError::Write {
                path: path.to_owned(),
                source,
            },
        })?;
    let exact_mode = match mode {
        KEY_FILE_MODE => file.set_permissions(fs::Permissions::from_mode(mode)),
        _ => Ok(()),
    };
    exact_mode
        .and_then(|()| file.write_all(contents))
        .and_then(|()| file.sync_all())
        .map_err(|source| CertError::Write {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn ca_and_node_key_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let ca = write_ca(dir.path()).unwrap();
        let node = write_node_cert(dir.path(), 1, dir.path()).unwrap();
        assert_eq!(mode_of(&ca.key), 0o600);
        assert_eq!(mode_of(&node.key), 0o600);
        assert_eq!(
            mode_of(&node.cert) & 0o022,
            0,
            "a certificate is never group-writable"
        );
        assert_eq!(node.cert, dir.path().join("node-1.pem"));
        assert_eq!(node.key, dir.path().join("node-1.key"));
    }

    #[test]
    fn write_ca_creates_the_output_directory() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("a").join("b");
        let ca = write_ca(&out).unwrap();
        assert!(ca.cert.is_file() && ca.key.is_file());
    }

    #[test]
    fn write_ca_refuses_to_overwrite_and_says_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_ca(dir.path()).unwrap();
        let before = fs::read(&first.cert).unwrap();
        let error = write_ca(dir.path()).unwrap_err();
        assert!(matches!(error, CertError::Exists { .. }), "{error}");
        let message = error.to_string();
        assert!(message.contains("ca.pem") && message.contains("refusing to overwrite"));
        assert_eq!(fs::read(&first.cert).unwrap(), before);
    }

    #[test]
    fn write_ca_refuses_when_only_the_key_exists() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(CA_KEY_FILE), b"precious").unwrap();
        let error = write_ca(dir.path()).unwrap_err();
        assert!(error.to_string().contains("ca.key"), "{error}");
        assert!(!dir.path().join(CA_CERT_FILE).exists());
        assert_eq!(fs::read(dir.path().join(CA_KEY_FILE)).unwrap(), b"precious");
    }

    #[test]
    fn write_node_cert_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        write_ca(dir.path()).unwrap();
        write_node_cert(dir.path(), 2, dir.path()).unwrap();
        let error = write_node_cert(dir.path(), 2, dir.path()).unwrap_err();
        assert!(error.to_string().contains("node-2.pem"), "{error}");
    }

    #[test]
    fn write_node_cert_refuses_a_negative_node_id() {
        let dir = tempfile::tempdir().unwrap();
        write_ca(dir.path()).unwrap();
        let error = write_node_cert(dir.path(), -1, dir.path()).unwrap_err();
        assert!(matches!(error, CertError::NodeId(-1)), "{error}");
    }

    #[test]
    fn write_node_cert_without_a_ca_says_how_to_make_one() {
        let dir = tempfile::tempdir().unwrap();
        let error = write_node_cert(dir.path(), 1, dir.path()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("ca.pem") && message.contains("spate cluster ca"));
    }

    #[test]
    fn write_node_cert_refuses_a_ca_key_that_is_not_the_ca_certificates() {
        let ca_dir = tempfile::tempdir().unwrap();
        let other_dir = tempfile::tempdir().unwrap();
        write_ca(ca_dir.path()).unwrap();
        write_ca(other_dir.path()).unwrap();
        fs::copy(
            other_dir.path().join(CA_KEY_FILE),
            ca_dir.path().join("other.key"),
        )
        .unwrap();
        fs::rename(
            ca_dir.path().join("other.key"),
            ca_dir.path().join(CA_KEY_FILE),
        )
        .unwrap();
        let out = tempfile::tempdir().unwrap();
        let error = write_node_cert(ca_dir.path(), 1, out.path()).unwrap_err();
        assert!(matches!(error, CertError::CaKeyMismatch { .. }), "{error}");
        assert!(!out.path().join("node-1.pem").exists());
    }

    #[test]
    fn node_certificate_is_for_its_dns_name_and_chains_to_the_ca() {
        let dir = tempfile::tempdir().unwrap();
        let ca = write_ca(dir.path()).unwrap();
        let node = write_node_cert(dir.path(), 7, dir.path()).unwrap();
        let der = CertificateDer::from_pem_file(&node.cert).unwrap();
        let ca_pem = fs::read_to_string(&ca.cert).unwrap();
        check_issued_by(&der, &ca_pem).unwrap();
        let cert = webpki::EndEntityCert::try_from(&der).unwrap();
        let name = rustls_pki_types::ServerName::try_from("node-7").unwrap();
        cert.verify_is_valid_for_subject_name(&name).unwrap();
        let other = rustls_pki_types::ServerName::try_from("node-8").unwrap();
        assert!(cert.verify_is_valid_for_subject_name(&other).is_err());
    }

    #[test]
    fn node_dns_name_is_node_dash_id() {
        assert_eq!(node_dns_name(0), "node-0");
        assert_eq!(node_dns_name(42), "node-42");
    }
}
