//! Field rules of Kong's entity schemas, each a function from a value to `Ok` or the reason.
//! Route paths, hosts and header values use the router's own checks, so nothing the router would
//! refuse gets into a configuration.

use router_core::HostPattern;

use super::types::Protocol;
use crate::tls::PemSource;

/// Kong's names: letters, digits, `.`, `-`, `_` and `~`.
pub fn name(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("must not be empty".into());
    }
    if v.chars().all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '~')) {
        Ok(())
    } else {
        Err("invalid value: it must only contain alphanumeric and '., -, _, ~' characters".into())
    }
}

pub fn protocol(v: &str) -> Result<Protocol, String> {
    match v {
        "http" => Ok(Protocol::Http),
        "https" => Ok(Protocol::Https),
        "grpc" | "grpcs" | "tcp" | "tls" | "tls_passthrough" | "udp" | "ws" | "wss" => {
            Err(format!("protocol {v:?} is not supported yet (http, https)"))
        }
        _ => Err("expected one of: http, https".into()),
    }
}

/// A host name or IP address to connect to.
pub fn host(v: &str) -> Result<(), String> {
    if v.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let label_ok = |l: &str| {
        !l.is_empty() && l.len() <= 63 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if !v.is_empty() && v.len() <= 253 && v.trim_end_matches('.').split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!("invalid host {v:?}"))
    }
}

pub fn service_path(v: &str) -> Result<(), String> {
    if !v.starts_with('/') {
        return Err("should start with: /".into());
    }
    if v.contains('?') || v.contains('#') {
        return Err("must not have a query or fragment".into());
    }
    if v.contains("//") {
        return Err("must not have empty segments".into());
    }
    Ok(())
}

#[derive(Debug)]
pub struct UrlParts {
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub path: Option<String>,
}

/// A service's `url` shorthand: `http[s]://host[:port][/path]`.
pub fn service_url(v: &str) -> Result<UrlParts, String> {
    let url = url::Url::parse(v).map_err(|e| format!("invalid url: {e}"))?;
    let protocol = protocol(url.scheme())?;
    let host = match url.host() {
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        Some(h) => h.to_string(),
        None => return Err("missing host in url".into()),
    };
    if url.query().is_some() || url.fragment().is_some() {
        return Err("url must not have a query or fragment".into());
    }
    // The url crate always reports a path; only a path written in the URL counts.
    let Some((_, after_scheme)) = v.split_once("://") else {
        return Err("invalid url: expected scheme://host".into());
    };
    let path = after_scheme.find('/').map(|_| url.path().to_string());
    if let Some(p) = &path {
        service_path(p)?;
    }
    Ok(UrlParts { protocol, host, port: url.port().unwrap_or(protocol.default_port()), path })
}

pub fn method(v: &str) -> Result<(), String> {
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!("invalid value: {v} (methods are upper-case letters)"))
    }
}

pub fn route_host(v: &str) -> Result<(), String> {
    HostPattern::parse(v, true).map(|_| ())
}

pub fn route_path(v: &str) -> Result<(), String> {
    router_core::check_path(v)
}

pub fn header_value(v: &str) -> Result<(), String> {
    router_core::check_header_value(v)
}

pub fn sni(v: &str) -> Result<(), String> {
    HostPattern::parse(v.trim_end_matches('.'), false).map(|_| ())
}

/// A target: `host[:port]`, port 8000 by default as in Kong. Returns it with its port.
pub fn target(v: &str) -> Result<String, String> {
    let (h, port) = router_core::split_host_port(v);
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| format!("invalid port in target {v:?}"))?,
        None => 8000,
    };
    host(h)?;
    Ok(if h.contains(':') { format!("[{h}]:{port}") } else { format!("{h}:{port}") })
}

/// Which part of a certificate entity a pair check faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PairFault {
    /// The certificate cannot be read.
    Cert,
    /// The key cannot be read or used.
    Key,
    /// Both are readable but the key is not the certificate's.
    Mismatch,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairError {
    pub fault: PairFault,
    pub message: String,
}

/// Checks that `key` (PEM) is the private key of the first certificate of `cert` (PEM), by
/// comparing public keys, so it works for every X.509 version (Kong accepts v1 certificates).
/// Returns the OID of the certificate's public key algorithm.
pub fn cert_pair(cert: &str, key: &str) -> Result<String, PairError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use x509_parser::prelude::FromDer;
    use x509_parser::x509::SubjectPublicKeyInfo;

    let fail = |fault, message: String| PairError { fault, message };
    let der = match CertificateDer::pem_slice_iter(cert.as_bytes()).next() {
        Some(Ok(der)) => der,
        Some(Err(e)) => return Err(fail(PairFault::Cert, format!("invalid certificate: not valid PEM ({e})"))),
        None => return Err(fail(PairFault::Cert, "invalid certificate: no PEM certificate found".into())),
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| fail(PairFault::Cert, format!("invalid certificate: {e}")))?;
    let key_der = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => {
            fail(PairFault::Key, "invalid key: no PEM private key found".into())
        }
        e => fail(PairFault::Key, format!("invalid key: not valid PEM ({e})")),
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| fail(PairFault::Key, format!("invalid key: a key type the gateway cannot use ({e})")))?;
    let spki = signing
        .public_key()
        .ok_or_else(|| fail(PairFault::Key, "invalid key: its public key cannot be derived".into()))?;
    let (_, from_key) =
        SubjectPublicKeyInfo::from_der(spki.as_ref()).map_err(|e| fail(PairFault::Key, format!("invalid key: {e}")))?;
    let from_cert = parsed.public_key();
    if from_key.algorithm.algorithm != from_cert.algorithm.algorithm
        || from_key.subject_public_key.data != from_cert.subject_public_key.data
    {
        return Err(fail(PairFault::Mismatch, "certificate does not match key".into()));
    }
    Ok(from_cert.algorithm.algorithm.to_id_string())
}

/// A CA certificate in PEM: exactly one certificate, with basic constraints CA:TRUE. Returns the
/// SHA-256 of its DER in hex (Kong's `cert_digest`).
pub fn ca_certificate(pem: &str) -> Result<String, String> {
    use sha2::{Digest, Sha256};
    let certs = PemSource::Inline(pem.to_string()).load_certs().map_err(|e| e.replace("inline PEM", "the value"))?;
    let [der] = certs.as_slice() else { return Err("expected exactly one certificate".into()) };
    let (_, parsed) = x509_parser::parse_x509_certificate(der).map_err(|e| format!("invalid certificate: {e}"))?;
    if !parsed.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca) {
        return Err("certificate does not appear to be a CA because it is missing the \"CA\" basic constraint".into());
    }
    Ok(Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect())
}

/// A stable key for a certificate without an id.
pub fn digest(pem: &str) -> String {
    use sha2::{Digest, Sha256};
    let hash = Sha256::digest(pem.trim().as_bytes());
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// A `jwt_secrets` entity's `rsa_public_key`: a PEM public key (`BEGIN PUBLIC KEY`) of the kind
/// `algorithm` verifies with (RSA of at least 2048 bits; EC on P-256 for ES256, P-384 for ES384).
pub fn jwt_public_key(pem: &str, algorithm: super::types::JwtAlgorithm) -> Result<(), String> {
    use rustls_pki_types::SubjectPublicKeyInfoDer;
    use rustls_pki_types::pem::PemObject;
    use x509_parser::prelude::FromDer;
    use x509_parser::public_key::PublicKey;
    use x509_parser::x509::SubjectPublicKeyInfo;

    use super::types::JwtAlgorithm::*;
    let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| "invalid key: expected a PEM public key (-----BEGIN PUBLIC KEY-----)".to_string())?;
    let (_, spki) = SubjectPublicKeyInfo::from_der(der.as_ref()).map_err(|e| format!("invalid key: {e}"))?;
    let parsed = spki.parsed().map_err(|e| format!("invalid key: {e}"))?;
    let curve = spki.algorithm.parameters.as_ref().and_then(|p| p.as_oid().ok()).map(|o| o.to_id_string());
    match (algorithm, parsed) {
        (RS256 | RS384 | RS512, PublicKey::RSA(rsa)) if rsa.key_size() >= 2048 => Ok(()),
        (RS256 | RS384 | RS512, PublicKey::RSA(rsa)) => {
            Err(format!("invalid key: an RSA key of {} bits is too weak (2048 at least)", rsa.key_size()))
        }
        (ES256, PublicKey::EC(_)) if curve.as_deref() == Some("1.2.840.10045.3.1.7") => Ok(()),
        (ES384, PublicKey::EC(_)) if curve.as_deref() == Some("1.3.132.0.34") => Ok(()),
        (alg, _) => Err(format!("invalid key: not a public key {} can verify with", alg.as_str())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1_CERT: &str = include_str!("testdata/v1.crt");
    const V1_KEY: &str = include_str!("testdata/v1.key");

    #[test]
    fn an_x509_v1_certificate_matches_its_key() {
        assert_eq!(cert_pair(V1_CERT, V1_KEY).unwrap(), "1.2.840.10045.2.1");
        let other = crate::certs::cluster_pair(1).unwrap();
        assert_eq!(cert_pair(&other.cert_pem, &other.key_pem).unwrap(), "1.2.840.10045.2.1");
    }

    #[test]
    fn each_pair_error_names_its_part() {
        let other = crate::certs::cluster_pair(1).unwrap();
        let fault = |c: &str, k: &str| cert_pair(c, k).unwrap_err();
        let e = fault(V1_CERT, &other.key_pem);
        assert_eq!((e.fault, e.message.as_str()), (PairFault::Mismatch, "certificate does not match key"));
        let e = fault("nope", V1_KEY);
        assert_eq!((e.fault, e.message.as_str()), (PairFault::Cert, "invalid certificate: no PEM certificate found"));
        let e = fault(V1_CERT, "nope");
        assert_eq!((e.fault, e.message.as_str()), (PairFault::Key, "invalid key: no PEM private key found"));
        let garbled = V1_CERT.replace("MII", "MIX");
        assert_eq!(fault(&garbled, V1_KEY).fault, PairFault::Cert);
    }

    #[test]
    fn urls() {
        let u = service_url("https://api.example.com").unwrap();
        assert_eq!((u.protocol, u.host.as_str(), u.port, u.path), (Protocol::Https, "api.example.com", 443, None));
        let u = service_url("http://10.0.0.1:8080/v1").unwrap();
        assert_eq!((u.port, u.path.as_deref()), (8080, Some("/v1")));
        assert!(service_url("ftp://x").unwrap_err().contains("expected one of"));
        assert!(service_url("http://x/?q=1").unwrap_err().contains("query"));
    }

    #[test]
    fn names_hosts_methods_targets() {
        assert!(name("my-service_1.v2~x").is_ok());
        assert!(name("my service").is_err());
        assert!(host("a.b-c.example").is_ok());
        assert!(host("bad host").is_err());
        assert!(method("GET").is_ok());
        assert!(method("get").is_err());
        assert_eq!(target("10.0.0.1").unwrap(), "10.0.0.1:8000");
        assert_eq!(target("svc.local:9000").unwrap(), "svc.local:9000");
        assert!(target("svc:0").is_err());
    }
}
