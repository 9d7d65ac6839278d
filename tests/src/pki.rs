//! Test PKI: root and intermediate CAs that issue server and client certificates with chosen EKUs,
//! names and validity windows, so TLS checks in the tests run the real verification path (chains,
//! names, EKU, expiry) rather than trusting whatever is presented. Files are written the way an
//! operator would: certificates 0644 with the chain they choose, keys 0600.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// A certificate with its private key, both PEM.
#[derive(Clone, Debug)]
pub struct Pem {
    pub cert: String,
    pub key: String,
}

/// A CA: a self-signed root, or an intermediate issued by another `TestCa`.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
    /// The intermediates from this CA up to (not including) the root, nearest first: this CA's own
    /// certificate is the first one when it is an intermediate.
    intermediates: Vec<String>,
    root: String,
}

impl TestCa {
    /// A self-signed root CA.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("CA key");
        let issuer = CertifiedIssuer::self_signed(ca_params(name), key).expect("self-signing the CA");
        let root = issuer.pem();
        TestCa { issuer, intermediates: Vec::new(), root }
    }

    /// An intermediate CA issued by this one.
    pub fn intermediate(&self, name: &str) -> TestCa {
        let key = KeyPair::generate().expect("intermediate key");
        let issuer = CertifiedIssuer::signed_by(ca_params(name), key, &self.issuer).expect("signing an intermediate");
        let mut intermediates = vec![issuer.pem()];
        intermediates.extend(self.intermediates.iter().cloned());
        TestCa { issuer, intermediates, root: self.root.clone() }
    }

    /// This CA's own certificate.
    pub fn cert_pem(&self) -> String {
        self.issuer.pem()
    }

    /// The self-signed root at the top of this CA's chain (this CA's own certificate for a root).
    pub fn root_pem(&self) -> &str {
        &self.root
    }

    /// A server certificate (EKU serverAuth) for `names` (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Pem {
        self.issue(&LeafSpec::server(names)).pem()
    }

    /// A client certificate (EKU clientAuth).
    pub fn client(&self, name: &str) -> Pem {
        self.issue(&LeafSpec::client(name)).pem()
    }

    pub fn leaf(&self, names: &[&str], usages: Vec<ExtendedKeyUsagePurpose>) -> Pem {
        self.issue(&LeafSpec::server(names).usages(usages)).pem()
    }

    /// A leaf as `spec` says, with the chain above it.
    pub fn issue(&self, spec: &LeafSpec) -> Leaf {
        let mut params =
            CertificateParams::new(spec.names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("leaf params");
        params.distinguished_name = dn(&spec.common_name);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = spec.usages.clone();
        if let Some(not_before) = spec.not_before {
            params.not_before = not_before;
        }
        if let Some(not_after) = spec.not_after {
            params.not_after = not_after;
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("signing a leaf");
        let (_, parsed) = x509_parser::parse_x509_certificate(cert.der()).expect("our own leaf parses");
        let serial = parsed.tbs_certificate.raw_serial().iter().map(|b| format!("{b:02X}")).collect::<String>();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            intermediates: self.intermediates.clone(),
            root: self.root.clone(),
            serial: serial.trim_start_matches("00").to_string(),
            not_after: params.not_after.unix_timestamp(),
        }
    }

    /// A rustls client config that trusts only this CA, offering `alpn`.
    pub fn client_config(&self, alpn: &[&str]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.issuer.der().clone()).expect("adding the CA to a root store");
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
        config
    }

    /// Writes this CA's own certificate to `dir/name` (0644) and returns `name`.
    pub fn write(&self, dir: &Path, name: &str) -> String {
        write_cert(&dir.join(name), &self.cert_pem());
        name.to_string()
    }
}

/// What a leaf should be: its subject, SANs, EKUs and validity window.
#[derive(Clone, Debug)]
pub struct LeafSpec {
    common_name: String,
    names: Vec<String>,
    usages: Vec<ExtendedKeyUsagePurpose>,
    not_before: Option<OffsetDateTime>,
    not_after: Option<OffsetDateTime>,
}

impl LeafSpec {
    /// EKU serverAuth, SANs `names` (the first is also the CN).
    pub fn server(names: &[&str]) -> LeafSpec {
        LeafSpec {
            common_name: names.first().copied().unwrap_or("server").to_string(),
            names: names.iter().map(|n| n.to_string()).collect(),
            usages: vec![ExtendedKeyUsagePurpose::ServerAuth],
            not_before: None,
            not_after: None,
        }
    }

    /// EKU clientAuth, CN and SAN `name` (a DNS-safe name).
    pub fn client(name: &str) -> LeafSpec {
        LeafSpec { usages: vec![ExtendedKeyUsagePurpose::ClientAuth], ..LeafSpec::server(&[name]) }
    }

    pub fn usages(mut self, usages: Vec<ExtendedKeyUsagePurpose>) -> LeafSpec {
        self.usages = usages;
        self
    }

    /// No extended key usage extension at all.
    pub fn no_eku(self) -> LeafSpec {
        self.usages(Vec::new())
    }

    /// Valid from 10 days ago until yesterday.
    pub fn expired(mut self) -> LeafSpec {
        let now = OffsetDateTime::now_utc();
        self.not_before = Some(now - Duration::days(10));
        self.not_after = Some(now - Duration::days(1));
        self
    }

    /// Valid from tomorrow for 10 days.
    pub fn not_yet_valid(mut self) -> LeafSpec {
        let now = OffsetDateTime::now_utc();
        self.not_before = Some(now + Duration::days(1));
        self.not_after = Some(now + Duration::days(11));
        self
    }

    /// Valid since yesterday, until `days` days from now.
    pub fn expiring_in_days(mut self, days: i64) -> LeafSpec {
        let now = OffsetDateTime::now_utc();
        self.not_before = Some(now - Duration::days(1));
        self.not_after = Some(now + Duration::days(days));
        self
    }
}

/// An issued leaf with its key and the chain above it.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub cert: String,
    pub key: String,
    /// From the issuer up, without the root.
    pub intermediates: Vec<String>,
    pub root: String,
    /// Upper-case hex, as `openssl x509 -noout -serial` prints it.
    pub serial: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// Which certificates a certificate file holds, leaf first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chain {
    Leaf,
    WithIntermediates,
    WithRoot,
}

impl Leaf {
    pub fn pem(&self) -> Pem {
        Pem { cert: self.cert.clone(), key: self.key.clone() }
    }

    /// The certificate file's content for `chain`.
    pub fn chain_pem(&self, chain: Chain) -> String {
        let mut out = self.cert.clone();
        if chain != Chain::Leaf {
            for intermediate in &self.intermediates {
                out.push_str(intermediate);
            }
        }
        if chain == Chain::WithRoot {
            out.push_str(&self.root);
        }
        out
    }

    /// Writes `dir/STEM.crt` (0644, holding `chain`) and `dir/STEM.key` (0600); returns their names.
    pub fn write(&self, dir: &Path, stem: &str, chain: Chain) -> (String, String) {
        let (cert, key) = (format!("{stem}.crt"), format!("{stem}.key"));
        write_cert(&dir.join(&cert), &self.chain_pem(chain));
        write_key(&dir.join(&key), &self.key);
        (cert, key)
    }
}

/// Writes (replacing) a certificate file, mode 0644.
pub fn write_cert(path: &Path, pem: &str) -> PathBuf {
    write_mode(path, pem.as_bytes(), 0o644);
    path.to_path_buf()
}

/// Writes (replacing) a private key file, mode 0600.
pub fn write_key(path: &Path, pem: &str) -> PathBuf {
    write_mode(path, pem.as_bytes(), 0o600);
    path.to_path_buf()
}

/// Replaces the file at once (write aside, rename), so a process reading it never sees half a file.
fn write_mode(path: &Path, bytes: &[u8], mode: u32) {
    let aside = path.with_extension("writing");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(mode)
        .open(&aside)
        .unwrap_or_else(|e| panic!("writing {}: {e}", aside.display()));
    file.write_all(bytes).expect("writing a PEM file");
    std::fs::set_permissions(&aside, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
    std::fs::rename(&aside, path).unwrap_or_else(|e| panic!("renaming to {}: {e}", path.display()));
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::new()).expect("CA params");
    params.distinguished_name = dn(name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    params
}

fn dn(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// The harness's certificates are what they claim to be, as `openssl verify` sees them.
#[cfg(test)]
mod tests {
    use super::*;

    fn verify(dir: &Path, args: &[&str]) -> (bool, String) {
        let out = std::process::Command::new("openssl").arg("verify").args(args).current_dir(dir).output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    }

    #[test]
    fn chains_ekus_and_validity_windows_check_out_with_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let root = TestCa::new("root");
        let intermediate = root.intermediate("intermediate");
        write_cert(&d.join("root.pem"), root.root_pem());
        write_cert(&d.join("inter.pem"), &intermediate.cert_pem());
        let leaf = intermediate.issue(&LeafSpec::client("dp.test"));
        leaf.write(d, "full", Chain::WithIntermediates);
        leaf.write(d, "alone", Chain::Leaf);
        let key_mode = std::fs::metadata(d.join("full.key")).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&key_mode) & 0o777, 0o600);

        let (ok, out) =
            verify(d, &["-CAfile", "root.pem", "-untrusted", "full.crt", "-purpose", "sslclient", "alone.crt"]);
        assert!(ok, "{out}");
        let (ok, out) = verify(d, &["-CAfile", "root.pem", "alone.crt"]);
        assert!(!ok, "without the intermediate: {out}");
        let (ok, out) =
            verify(d, &["-CAfile", "root.pem", "-untrusted", "inter.pem", "-purpose", "sslserver", "alone.crt"]);
        assert!(!ok && out.contains("unsuitable certificate purpose"), "a client leaf is no server: {out}");

        for (name, spec, error) in [
            ("expired", LeafSpec::client("e.test").expired(), "certificate has expired"),
            ("early", LeafSpec::client("n.test").not_yet_valid(), "certificate is not yet valid"),
        ] {
            root.issue(&spec).write(d, name, Chain::Leaf);
            let (ok, out) = verify(d, &["-CAfile", "root.pem", &format!("{name}.crt")]);
            assert!(!ok && out.contains(error), "{name}: {out}");
        }
        let soon = root.issue(&LeafSpec::server(&["s.test"]).expiring_in_days(5));
        let left = soon.not_after - OffsetDateTime::now_utc().unix_timestamp();
        assert!((4 * 86400..=5 * 86400 + 60).contains(&left), "{left}");
        assert_eq!(soon.serial.len() % 2, 0);
        assert_eq!(soon.serial, soon.serial.to_uppercase());
    }
}
