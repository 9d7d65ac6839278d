//! A cluster PKI made by the gateway itself for `cluster_mtls = pki`: `gateway hybrid gen_ca` makes
//! a CA, `gen_dp_cert` and `gen_cp_cert` the leaves it signs (EKU clientAuth for data planes,
//! serverAuth for control planes). An operator who has no PKI of their own gets one whose pieces
//! pass the same verification as a corporate one.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PublicKeyData, SanType,
};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;

use super::{ClusterPair, GenCertError, write_new};

/// `gen_ca`'s default validity: ten years. A CA outlives the leaves it signs, and replacing it
/// means reissuing every leaf.
pub const CA_DEFAULT_DAYS: u32 = 3650;
/// `gen_dp_cert` and `gen_cp_cert`'s default validity: three years, as `gen_cert`'s.
pub const LEAF_DEFAULT_DAYS: u32 = super::DEFAULT_DAYS;
/// The CA's common name unless `--name` says otherwise.
pub const CA_DEFAULT_NAME: &str = "gateway cluster CA";
/// A data plane certificate's name unless `--name` says otherwise (the control plane does not
/// check it; it shows in logs and `/clustering/data-planes`).
pub const DP_DEFAULT_NAME: &str = "data-plane";

#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error(transparent)]
    File(#[from] GenCertError),
    #[error("cannot read {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{}: {message}", path.display())]
    CaCert { path: PathBuf, message: String },
    #[error("{} is not a CA certificate (its basicConstraints do not say CA:TRUE): give the certificate `gateway hybrid gen_ca` made, or your CA's", path.display())]
    NotACa { path: PathBuf },
    #[error("{}: the CA's key usage does not allow signing certificates (keyCertSign)", path.display())]
    NoCertSign { path: PathBuf },
    #[error("{}: the CA certificate expired on {when}", path.display())]
    CaExpired { path: PathBuf, when: String },
    #[error("{}: {message}", path.display())]
    CaKey { path: PathBuf, message: String },
    #[error("{} is not the private key of the CA certificate {}", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },
    #[error("{}: the CA's subject name cannot be copied exactly into the certificates it signs ({reason})", path.display())]
    CaName { path: PathBuf, reason: String },
    #[error("--name {name:?} is not a DNS name or an IP address")]
    Name { name: String },
    #[error("--name is required: the DNS names or IP addresses data planes reach the control plane by")]
    NoName,
    #[error("generating the certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// What a leaf is for: the EKU it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A data plane: EKU clientAuth only.
    DataPlane,
    /// A control plane: EKU serverAuth only.
    ControlPlane,
}

/// A leaf made by a loaded CA.
pub struct Issued {
    pub pair: ClusterPair,
    /// Set when the leaf outlives its CA: it stops verifying when the CA expires.
    pub warning: Option<String>,
}

/// A new self-signed cluster CA: CA:TRUE (critical), keyCertSign and cRLSign, P-384, valid from a
/// minute ago (for clock skew) for `days`.
pub fn ca_pair(name: &str, days: u32) -> Result<ClusterPair, CaError> {
    let not_after = validity(days)?;
    let key = KeyPair::generate_for(&PKCS_ECDSA_P384_SHA384)?;
    let mut params = CertificateParams::new(Vec::new())?;
    params.distinguished_name = common_name(name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = OffsetDateTime::now_utc() - time::Duration::minutes(1);
    params.not_after = not_after;
    let cert = params.self_signed(&key)?;
    Ok(ClusterPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

/// `gateway hybrid gen_ca`: writes a new CA to `cert` (0644) and `key` (0600), refusing before
/// writing anything if either exists.
pub fn gen_ca(cert: &Path, key: &Path, name: &str, days: u32) -> Result<(), CaError> {
    refuse_existing(cert, key)?;
    let pair = ca_pair(name, days)?;
    write_pair(cert, key, &pair)
}

/// `gateway hybrid gen_dp_cert` and `gen_cp_cert`: a leaf for `role` signed by the CA in
/// `ca_cert`/`ca_key`, written to `cert` (0644) and `key` (0600).
pub fn gen_leaf(
    ca: (&Path, &Path),
    out: (&Path, &Path),
    role: Role,
    names: &[String],
    days: u32,
) -> Result<Option<String>, CaError> {
    refuse_existing(out.0, out.1)?;
    let ca = Ca::load(ca.0, ca.1)?;
    let issued = ca.issue(role, names, days)?;
    write_pair(out.0, out.1, &issued.pair)?;
    Ok(issued.warning)
}

fn refuse_existing(cert: &Path, key: &Path) -> Result<(), CaError> {
    for path in [cert, key] {
        if path.exists() {
            return Err(GenCertError::Exists(path.to_path_buf()).into());
        }
    }
    Ok(())
}

fn write_pair(cert: &Path, key: &Path, pair: &ClusterPair) -> Result<(), CaError> {
    write_new(key, pair.key_pem.as_bytes(), 0o600)?;
    write_new(cert, pair.cert_pem.as_bytes(), 0o644)?;
    Ok(())
}

/// A CA loaded from files, checked, ready to sign.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// The CA certificate's subject, DER, as leaves must name it as their issuer.
    subject: Vec<u8>,
    not_after: OffsetDateTime,
    cert_path: PathBuf,
}

impl Ca {
    /// Reads the CA certificate (the first PEM certificate in `cert`) and its key (PKCS#8 PEM),
    /// and checks that the certificate is a CA allowed to sign, still valid, and that the key is
    /// its own.
    pub fn load(cert: &Path, key: &Path) -> Result<Ca, CaError> {
        let ca_cert = |message: String| CaError::CaCert { path: cert.to_path_buf(), message };
        let bytes = std::fs::read(cert).map_err(|source| CaError::Read { path: cert.to_path_buf(), source })?;
        let der = CertificateDer::pem_slice_iter(&bytes)
            .next()
            .ok_or_else(|| ca_cert("holds no PEM certificate".into()))?
            .map_err(|e| ca_cert(format!("is not valid PEM ({e})")))?;
        let (_, parsed) = x509_parser::parse_x509_certificate(&der)
            .map_err(|e| ca_cert(format!("is not a valid X.509 certificate ({e})")))?;
        let is_ca = parsed.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca);
        if !is_ca {
            return Err(CaError::NotACa { path: cert.to_path_buf() });
        }
        // Without a key usage extension any usage is allowed (RFC 5280 4.2.1.3).
        if let Ok(Some(usage)) = parsed.key_usage()
            && !usage.value.key_cert_sign()
        {
            return Err(CaError::NoCertSign { path: cert.to_path_buf() });
        }
        let not_after = parsed.validity().not_after.to_datetime();
        if not_after <= OffsetDateTime::now_utc() {
            return Err(CaError::CaExpired { path: cert.to_path_buf(), when: not_after.date().to_string() });
        }
        let subject = parsed.subject().as_raw().to_vec();
        let public_key = parsed.public_key().subject_public_key.data.to_vec();

        let key_text =
            std::fs::read_to_string(key).map_err(|source| CaError::Read { path: key.to_path_buf(), source })?;
        let key_pair = KeyPair::from_pem(&key_text).map_err(|e| CaError::CaKey {
            path: key.to_path_buf(),
            message: format!(
                "is not a usable private key ({e}); it must be an unencrypted PKCS#8 PEM key (\"BEGIN PRIVATE KEY\"): \
                 convert one with `openssl pkcs8 -topk8 -nocrypt -in KEY -out KEY.pk8`"
            ),
        })?;
        if key_pair.der_bytes() != public_key.as_slice() {
            return Err(CaError::KeyMismatch { key: key.to_path_buf(), cert: cert.to_path_buf() });
        }
        let issuer = Issuer::from_ca_cert_der(&der, key_pair)
            .map_err(|e| CaError::CaName { path: cert.to_path_buf(), reason: e.to_string() })?;
        Ok(Ca { issuer, subject, not_after, cert_path: cert.to_path_buf() })
    }

    /// A new leaf for `role`, named by `names` (DNS names or IP addresses; the first is also the
    /// common name), valid from a minute ago for `days`.
    pub fn issue(&self, role: Role, names: &[String], days: u32) -> Result<Issued, CaError> {
        let not_after = validity(days)?;
        let names = split_names(names)?;
        let names = match (names.is_empty(), role) {
            (false, _) => names,
            (true, Role::DataPlane) => vec![DP_DEFAULT_NAME.to_string()],
            (true, Role::ControlPlane) => return Err(CaError::NoName),
        };
        let algorithm = &PKCS_ECDSA_P256_SHA256;
        let key = KeyPair::generate_for(algorithm)?;
        let mut params = CertificateParams::default();
        params.subject_alt_names = names
            .iter()
            .map(|name| match name.parse::<IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName(name.as_str().try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()?;
        params.distinguished_name = common_name(&names[0]);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![match role {
            Role::DataPlane => ExtendedKeyUsagePurpose::ClientAuth,
            Role::ControlPlane => ExtendedKeyUsagePurpose::ServerAuth,
        }];
        params.use_authority_key_identifier_extension = true;
        params.not_before = OffsetDateTime::now_utc() - time::Duration::minutes(1);
        params.not_after = not_after;
        let cert = params.signed_by(&key, &self.issuer)?;
        // rcgen rebuilds the CA's name from its parts; a name it cannot rebuild byte for byte
        // (repeated attributes, say) would make a leaf that never chains to the CA.
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der())
            .map_err(|e| CaError::CaName { path: self.cert_path.clone(), reason: e.to_string() })?;
        if parsed.issuer().as_raw() != self.subject.as_slice() {
            return Err(CaError::CaName {
                path: self.cert_path.clone(),
                reason: "rebuilt differently; sign with openssl instead".into(),
            });
        }
        let warning = (not_after > self.not_after).then(|| {
            format!(
                "the certificate is valid until {} but its CA {} only until {}: it stops verifying then",
                not_after.date(),
                self.cert_path.display(),
                self.not_after.date()
            )
        });
        Ok(Issued { pair: ClusterPair { cert_pem: cert.pem(), key_pem: key.serialize_pem() }, warning })
    }
}

/// `--name` values, each possibly a comma list, as checked names in order, without repeats.
pub fn split_names(given: &[String]) -> Result<Vec<String>, CaError> {
    let mut names: Vec<String> = Vec::new();
    for name in given.iter().flat_map(|g| g.split(',')).map(str::trim).filter(|n| !n.is_empty()) {
        if !valid_name(name) {
            return Err(CaError::Name { name: name.to_string() });
        }
        if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// An IP address, or a DNS name a TLS client can match (a leading `*.` label allowed).
fn valid_name(name: &str) -> bool {
    if name.parse::<IpAddr>().is_ok() {
        return true;
    }
    let host = name.strip_prefix("*.").unwrap_or(name);
    rustls_pki_types::DnsName::try_from(host).is_ok() && host.parse::<IpAddr>().is_err()
}

fn validity(days: u32) -> Result<OffsetDateTime, CaError> {
    if days == 0 {
        return Err(GenCertError::Days.into());
    }
    Ok(OffsetDateTime::now_utc() + time::Duration::days(i64::from(days)))
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_files(dir: &Path) -> (PathBuf, PathBuf) {
        let (cert, key) = (dir.join("ca.crt"), dir.join("ca.key"));
        gen_ca(&cert, &key, CA_DEFAULT_NAME, 30).unwrap();
        (cert, key)
    }

    fn parse(pem: &str) -> (bool, Vec<String>, Vec<String>) {
        let der = CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
        let eku = cert.extended_key_usage().unwrap().map(|e| (e.value.client_auth, e.value.server_auth));
        let ekus = match eku {
            Some((true, false)) => vec!["clientAuth".to_string()],
            Some((false, true)) => vec!["serverAuth".to_string()],
            other => vec![format!("{other:?}")],
        };
        let sans = cert
            .subject_alternative_name()
            .unwrap()
            .map(|s| s.value.general_names.iter().map(|n| n.to_string()).collect())
            .unwrap_or_default();
        (cert.is_ca(), ekus, sans)
    }

    #[test]
    fn a_ca_signs_a_dp_leaf_with_client_auth_and_a_cp_leaf_with_server_auth() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca_files(dir.path());
        let ca = Ca::load(&cert, &key).unwrap();
        let dp = ca.issue(Role::DataPlane, &[], 10).unwrap();
        assert!(dp.warning.is_none());
        assert_eq!(parse(&dp.pair.cert_pem), (false, vec!["clientAuth".into()], vec!["DNSName(data-plane)".into()]));
        let cp = ca.issue(Role::ControlPlane, &["cp.example, 10.0.0.1".into(), "*.cp.example".into()], 10).unwrap();
        let (is_ca, ekus, sans) = parse(&cp.pair.cert_pem);
        assert!(!is_ca);
        assert_eq!(ekus, vec!["serverAuth".to_string()]);
        assert_eq!(sans, vec!["DNSName(cp.example)", "IPAddress(0a:00:00:01)", "DNSName(*.cp.example)"]);
    }

    #[test]
    fn a_leaf_outliving_its_ca_is_warned_about() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca_files(dir.path());
        let issued = Ca::load(&cert, &key).unwrap().issue(Role::DataPlane, &[], 31).unwrap();
        assert!(issued.warning.unwrap().contains("stops verifying"));
    }

    #[test]
    fn a_cp_leaf_needs_a_valid_name() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca_files(dir.path());
        let ca = Ca::load(&cert, &key).unwrap();
        assert!(matches!(ca.issue(Role::ControlPlane, &[], 1), Err(CaError::NoName)));
        assert!(matches!(ca.issue(Role::ControlPlane, &[" , ".into()], 1), Err(CaError::NoName)));
        let err = ca.issue(Role::ControlPlane, &["bad name".into()], 1).err().unwrap();
        assert_eq!(err.to_string(), "--name \"bad name\" is not a DNS name or an IP address");
    }

    #[test]
    fn the_ca_must_be_a_ca_with_its_own_key() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = ca_files(dir.path());
        let (leaf, leaf_key) = (dir.path().join("leaf.crt"), dir.path().join("leaf.key"));
        gen_leaf((&cert, &key), (&leaf, &leaf_key), Role::DataPlane, &[], 5).unwrap();
        assert!(matches!(Ca::load(&leaf, &leaf_key), Err(CaError::NotACa { .. })));
        let (other, other_key) = (dir.path().join("other.crt"), dir.path().join("other.key"));
        gen_ca(&other, &other_key, "other", 5).unwrap();
        let err = Ca::load(&cert, &other_key).err().unwrap();
        assert!(matches!(err, CaError::KeyMismatch { .. }), "{err}");
        let err = Ca::load(&cert, &cert).err().unwrap();
        assert!(err.to_string().contains("is not a usable private key"), "{err}");
    }
}
