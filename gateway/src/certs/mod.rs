//! Certificates the gateway makes itself: the shared cluster pair of `gateway hybrid gen_cert`, a
//! cluster PKI for `cluster_mtls = pki` ([`ca`]), and checks that a configured certificate and key
//! belong together.

pub mod ca;

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P384_SHA384,
};

use crate::tls::PemSource;

/// The name Kong's shared mode puts in the certificate and sends as SNI.
pub const CLUSTER_NAME: &str = "kong_clustering";

/// Kong's default validity for `hybrid gen_cert`: three years.
pub const DEFAULT_DAYS: u32 = 1095;

#[derive(Debug, thiserror::Error)]
pub enum GenCertError {
    #[error("{} already exists. Will not overwrite it.", .0.display())]
    Exists(PathBuf),
    #[error("--days must be at least 1")]
    Days,
    #[error("writing {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("generating the certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// The PEM texts of a freshly made cluster pair.
pub struct ClusterPair {
    pub cert_pem: String,
    pub key_pem: String,
}

/// A self-signed P-384 certificate for shared-mode mTLS: CN and SAN `kong_clustering`, not a CA,
/// EKU serverAuth and clientAuth, so both ends can present it and our pinning verifiers accept it.
pub fn cluster_pair(days: u32) -> Result<ClusterPair, GenCertError> {
    if days == 0 {
        return Err(GenCertError::Days);
    }
    leaf(
        CLUSTER_NAME,
        days,
        &PKCS_ECDSA_P384_SHA384,
        vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
    )
}

/// A self-signed server certificate for `name` (P-256, EKU serverAuth), such as the default
/// certificate of TLS listeners.
pub fn self_signed(name: &str, days: u32) -> Result<ClusterPair, GenCertError> {
    leaf(name, days, &rcgen::PKCS_ECDSA_P256_SHA256, vec![ExtendedKeyUsagePurpose::ServerAuth])
}

/// A self-signed data plane certificate (P-256, EKU clientAuth) for a control plane to pin: what
/// `POST /clustering/dp-certificates/generate` hands out.
pub fn dp_self_signed(name: &str, days: u32) -> Result<ClusterPair, GenCertError> {
    if days == 0 {
        return Err(GenCertError::Days);
    }
    leaf(name, days, &rcgen::PKCS_ECDSA_P256_SHA256, vec![ExtendedKeyUsagePurpose::ClientAuth])
}

/// A self-signed end-entity certificate: CN and SAN `name`, not a CA, valid from a minute ago (for
/// clock skew) for `days`.
fn leaf(
    name: &str,
    days: u32,
    algorithm: &'static rcgen::SignatureAlgorithm,
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> Result<ClusterPair, GenCertError> {
    let key = KeyPair::generate_for(algorithm)?;
    let mut params = CertificateParams::new(vec![name.to_string()])?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    params.distinguished_name = dn;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(1);
    params.not_after = now + time::Duration::days(i64::from(days));
    let cert = params.self_signed(&key)?;
    Ok(ClusterPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// Writes a new cluster pair to `cert` (0644) and `key` (0600). Refuses to touch either file if
/// one exists, before writing anything.
pub fn gen_cert(cert: &Path, key: &Path, days: u32) -> Result<(), GenCertError> {
    for path in [cert, key] {
        if path.exists() {
            return Err(GenCertError::Exists(path.to_path_buf()));
        }
    }
    let pair = cluster_pair(days)?;
    write_new(key, pair.key_pem.as_bytes(), 0o600)?;
    write_new(cert, pair.cert_pem.as_bytes(), 0o644)?;
    Ok(())
}

/// Creates `path` with `mode` (never replacing a file) and writes `bytes`. The mode is set at
/// creation, so a key is never readable by others, not even for a moment.
pub fn write_new(path: &Path, bytes: &[u8], mode: u32) -> Result<(), GenCertError> {
    let write = || -> std::io::Result<()> {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(mode).open(path)?;
        file.write_all(bytes)?;
        file.sync_all()
    };
    write().map_err(|source| match source.kind() {
        std::io::ErrorKind::AlreadyExists => GenCertError::Exists(path.to_path_buf()),
        _ => GenCertError::Write { path: path.to_path_buf(), source },
    })
}

/// Checks that `key` is the private key of the first certificate in `cert`.
pub fn check_pair(cert: &PemSource, key: &PemSource) -> Result<(), String> {
    let certs = cert.load_certs()?;
    let key_der = key.load_key()?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("{key} holds a key type this gateway cannot use ({e})"))?;
    let certified = rustls::sign::CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|_| format!("{key} is not the private key of {cert}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_matches_and_names_kong_clustering() {
        let pair = cluster_pair(10).unwrap();
        let cert = PemSource::Inline(pair.cert_pem.clone());
        let key = PemSource::Inline(pair.key_pem.clone());
        check_pair(&cert, &key).unwrap();
        let der = cert.load_certs().unwrap().remove(0);
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert_eq!(parsed.subject().to_string(), "CN=kong_clustering");
        let validity = parsed.validity().time_to_expiration().unwrap();
        assert!(validity.whole_days() >= 9 && validity.whole_days() <= 10);
    }

    #[test]
    fn a_key_from_another_pair_is_refused() {
        let a = cluster_pair(1).unwrap();
        let b = cluster_pair(1).unwrap();
        let err = check_pair(&PemSource::Inline(a.cert_pem), &PemSource::Inline(b.key_pem)).unwrap_err();
        assert!(err.contains("is not the private key of"), "{err}");
    }

    #[test]
    fn zero_days_is_refused() {
        assert!(matches!(cluster_pair(0), Err(GenCertError::Days)));
    }
}
