//! PKI verification of a peer's certificate chain, shared by every link that uses it: the control
//! plane checking data planes (EKU clientAuth), data planes checking their control plane (EKU
//! serverAuth and a name), and later the telemetry link.
//!
//! A [`TrustSet`] holds what the operator trusts: roots, intermediates, and pinned end-entity
//! certificates, in any mix. A chain passes when it leads to any trusted certificate with at most
//! [`MAX_INTERMEDIATES`] intermediates, or when the leaf itself is a trusted (pinned) certificate.
//! The leaf must carry the purpose's EKU explicitly (stricter than RFC 5280's "absent means any")
//! and be within its validity. Refusals say why in words an operator can act on: which
//! certificate, whether the chain is untrusted or merely incomplete, which EKU is missing, which
//! name was expected.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, TrustAnchor, UnixTime};
use sha2::{Digest, Sha256};
use webpki::KeyUsage;

/// At most this many intermediates between a leaf and the trusted certificate it leads to.
pub const MAX_INTERMEDIATES: usize = 3;

const OID_SERVER_AUTH: &str = "1.3.6.1.5.5.7.3.1";
const OID_CLIENT_AUTH: &str = "1.3.6.1.5.5.7.3.2";

/// What the peer's certificate must be good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A TLS client: a data plane.
    ClientAuth,
    /// A TLS server: a control plane.
    ServerAuth,
}

impl Purpose {
    fn oid(self) -> &'static str {
        match self {
            Purpose::ClientAuth => OID_CLIENT_AUTH,
            Purpose::ServerAuth => OID_SERVER_AUTH,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Purpose::ClientAuth => "clientAuth",
            Purpose::ServerAuth => "serverAuth",
        }
    }
}

/// What logs and the data-plane list say about a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// Upper-case hex, as `openssl x509 -noout -serial` prints it.
    pub serial: String,
    pub subject: String,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
}

impl fmt::Display for CertInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\" (serial {})", self.subject, self.serial)
    }
}

/// The facts of `cert`, or None when it is not a readable X.509 certificate.
pub fn info(cert: &CertificateDer<'_>) -> Option<CertInfo> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let raw = parsed.raw_serial();
    let significant = raw.iter().position(|b| *b != 0).map_or(&raw[raw.len().saturating_sub(1)..], |i| &raw[i..]);
    let serial = significant.iter().map(|b| format!("{b:02X}")).collect();
    Some(CertInfo {
        serial,
        subject: parsed.subject().to_string(),
        issuer: parsed.issuer().to_string(),
        not_before: parsed.validity().not_before.timestamp(),
        not_after: parsed.validity().not_after.timestamp(),
        is_ca: parsed.is_ca(),
    })
}

/// Seconds since the epoch as an RFC 3339 UTC time, for messages.
pub fn when(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| format!("{unix} (unix time)"))
}

/// Why a certificate chain is refused. Displayed as the certificate, then [`PkiError::reason`].
#[derive(Debug, Clone)]
pub enum PkiError {
    BadTrusted { source_name: String, reason: String },
    Unreadable { reason: String },
    Untrusted { cert: Box<CertInfo>, top: String },
    Incomplete { cert: Box<CertInfo>, top: String, issuer: String },
    MissingEku { cert: Box<CertInfo>, purpose: &'static str, role: &'static str },
    NameMismatch { cert: Box<CertInfo>, name: String, names: String },
    Expired { cert: Box<CertInfo>, which: &'static str, at: String },
    NotYetValid { cert: Box<CertInfo>, which: &'static str, from: String },
    TooManyIntermediates { cert: Box<CertInfo>, count: usize },
    Invalid { cert: Box<CertInfo>, reason: String },
}

impl std::error::Error for PkiError {}

impl fmt::Display for PkiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.cert() {
            Some(cert) => write!(f, "{cert}: {}", self.reason()),
            None => f.write_str(&self.reason()),
        }
    }
}

impl PkiError {
    /// The refused certificate, when it could be read.
    pub fn cert(&self) -> Option<&CertInfo> {
        match self {
            PkiError::BadTrusted { .. } | PkiError::Unreadable { .. } => None,
            PkiError::Untrusted { cert, .. }
            | PkiError::Incomplete { cert, .. }
            | PkiError::MissingEku { cert, .. }
            | PkiError::NameMismatch { cert, .. }
            | PkiError::Expired { cert, .. }
            | PkiError::NotYetValid { cert, .. }
            | PkiError::TooManyIntermediates { cert, .. }
            | PkiError::Invalid { cert, .. } => Some(cert),
        }
    }

    /// Why, without naming the certificate (logs carry its serial and subject as fields).
    pub fn reason(&self) -> String {
        match self {
            PkiError::BadTrusted { source_name, reason } => {
                format!("a trusted certificate cannot be used ({source_name}): {reason}")
            }
            PkiError::Unreadable { reason } => format!("the certificate cannot be read: {reason}"),
            PkiError::Untrusted { top, .. } => {
                format!(
                    "it is not trusted: its chain ends at the CA \"{top}\", which is not among the trusted certificates"
                )
            }
            PkiError::Incomplete { top, issuer, .. } => format!(
                "the chain is incomplete: \"{top}\" was issued by \"{issuer}\", which the peer did not send and which is not trusted (the peer must send its intermediates, or \"{issuer}\" is not a trusted CA)"
            ),
            PkiError::MissingEku { purpose, role, .. } => {
                format!("it lacks the extended key usage {purpose} (it must be issued for TLS {role} authentication)")
            }
            PkiError::NameMismatch { name, names, .. } => {
                format!("it is not valid for the name {name} (it names: {names})")
            }
            PkiError::Expired { which, at, .. } => format!("{which} expired at {at}"),
            PkiError::NotYetValid { which, from, .. } => format!("{which} is not yet valid: valid from {from}"),
            PkiError::TooManyIntermediates { count, .. } => {
                format!("the chain has more than {MAX_INTERMEDIATES} intermediates ({count})")
            }
            PkiError::Invalid { reason, .. } => format!("it is refused: {reason}"),
        }
    }

    /// The rustls error to fail a handshake with: its variant picks the TLS alert the peer gets
    /// (unknown_ca, certificate_expired, unsupported_certificate, bad_certificate).
    pub fn to_rustls(&self) -> rustls::Error {
        let kind = match self {
            PkiError::Untrusted { .. } | PkiError::Incomplete { .. } => CertificateError::UnknownIssuer,
            PkiError::MissingEku { .. } => CertificateError::InvalidPurpose,
            PkiError::NameMismatch { .. } => CertificateError::NotValidForName,
            PkiError::Expired { .. } => CertificateError::Expired,
            PkiError::NotYetValid { .. } => CertificateError::NotValidYet,
            PkiError::Unreadable { .. } => CertificateError::BadEncoding,
            _ => CertificateError::Other(OtherError(Arc::new(self.clone()))),
        };
        rustls::Error::InvalidCertificate(kind)
    }

    /// The same error carried whole inside rustls', so the side that verified can log the detail.
    pub fn into_rustls_detailed(self) -> rustls::Error {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(self))))
    }

    /// Finds a `PkiError` inside a handshake failure, if one caused it.
    pub fn from_io(e: &std::io::Error) -> Option<&PkiError> {
        match e.get_ref()?.downcast_ref::<rustls::Error>()? {
            rustls::Error::InvalidCertificate(CertificateError::Other(other)) => other.0.downcast_ref::<PkiError>(),
            _ => None,
        }
    }
}

/// The certificates an end of a link trusts. A CA certificate (basicConstraints cA, allowed to
/// sign certificates; or a version 1 root) is a trust anchor that chains lead to; any other
/// certificate is pinned: accepted only as itself, never as an issuer, so whoever holds a pinned
/// leaf's key cannot mint certificates with it.
pub struct TrustSet {
    certs: Vec<CertificateDer<'static>>,
    anchors: Vec<TrustAnchor<'static>>,
    /// For each anchor, its certificate's index in `certs` (for its dates and for OCSP).
    anchor_certs: Vec<usize>,
    pins: HashSet<[u8; 32]>,
}

impl fmt::Debug for TrustSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TrustSet({} certificates, {} CAs)", self.certs.len(), self.anchors.len())
    }
}

/// Whether `cert` may issue certificates: a CA (basicConstraints cA, and keyCertSign when it has a
/// key usage), or a version 1 certificate (old roots have no extensions at all).
fn can_issue(cert: &CertificateDer<'_>) -> bool {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else { return false };
    if parsed.version() == x509_parser::x509::X509Version::V1 {
        return true;
    }
    let signs = match parsed.key_usage() {
        Ok(Some(usage)) => usage.value.key_cert_sign(),
        Ok(None) => true,
        Err(_) => false,
    };
    parsed.is_ca() && signs
}

/// A chain longer than this is refused before any work is spent on it.
const MAX_SENT: usize = MAX_INTERMEDIATES + 3;

/// A verified chain's facts.
#[derive(Debug, Clone)]
pub struct Verified {
    pub leaf: CertInfo,
    /// The certificate that issued the leaf (sent or trusted), for OCSP. None when the leaf itself
    /// is trusted and its issuer is neither sent nor trusted.
    pub issuer: Option<CertificateDer<'static>>,
}

impl TrustSet {
    /// A set trusting each of `certs`, which come from `source` (named in errors).
    pub fn new(certs: Vec<CertificateDer<'static>>, source: &str) -> Result<TrustSet, PkiError> {
        let mut set =
            TrustSet { certs: Vec::new(), anchors: Vec::new(), anchor_certs: Vec::new(), pins: HashSet::new() };
        set.add(certs, source)?;
        Ok(set)
    }

    /// Adds `certs` (from `source`, named in errors); none of them if one cannot be trusted.
    pub fn add(&mut self, certs: Vec<CertificateDer<'static>>, source: &str) -> Result<(), PkiError> {
        let mut anchors = Vec::new();
        for cert in &certs {
            if info(cert).is_none() {
                return Err(PkiError::BadTrusted {
                    source_name: source.to_string(),
                    reason: "not an X.509 certificate".into(),
                });
            }
            if can_issue(cert) {
                let anchor = webpki::anchor_from_trusted_cert(cert)
                    .map_err(|e| PkiError::BadTrusted { source_name: source.to_string(), reason: format!("{e:?}") })?;
                anchors.push(Some(anchor.to_owned()));
            } else {
                anchors.push(None);
            }
        }
        for (cert, anchor) in certs.into_iter().zip(anchors) {
            self.push(cert, anchor);
        }
        Ok(())
    }

    fn push(&mut self, cert: CertificateDer<'static>, anchor: Option<TrustAnchor<'static>>) {
        match anchor {
            Some(anchor) => {
                self.anchors.push(anchor);
                self.anchor_certs.push(self.certs.len());
            }
            None => {
                self.pins.insert(Sha256::digest(cert.as_ref()).into());
            }
        }
        self.certs.push(cert);
    }

    /// Adds `certs`, skipping (and counting) those that cannot be trusted, as an operating system's
    /// store may hold a few.
    pub fn extend_lenient(&mut self, certs: Vec<CertificateDer<'static>>) -> usize {
        let mut skipped = 0;
        for cert in certs {
            if !can_issue(&cert) {
                // A store of roots: anything else in it is a mistake, not something to pin.
                skipped += 1;
                continue;
            }
            match webpki::anchor_from_trusted_cert(&cert) {
                Ok(anchor) => {
                    let anchor = anchor.to_owned();
                    self.push(cert, Some(anchor));
                }
                Err(_) => skipped += 1,
            }
        }
        skipped
    }

    pub fn len(&self) -> usize {
        self.certs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// Checks `leaf` with the intermediates the peer `sent` for `purpose` at `now` (and, for a
    /// server, the `name` it must be valid for).
    pub fn verify(
        &self,
        leaf: &CertificateDer<'_>,
        sent: &[CertificateDer<'_>],
        now: UnixTime,
        purpose: Purpose,
        name: Option<&ServerName<'_>>,
    ) -> Result<Verified, PkiError> {
        let cert =
            Box::new(info(leaf).ok_or_else(|| PkiError::Unreadable { reason: "not an X.509 certificate".into() })?);
        let end_entity = webpki::EndEntityCert::try_from(leaf)
            .map_err(|e| PkiError::Unreadable { reason: format!("{cert}: {e:?}") })?;
        if sent.len() > MAX_SENT {
            return Err(PkiError::TooManyIntermediates { cert, count: sent.len() });
        }
        let at = now.as_secs() as i64;
        let issuer = if self.pins.contains(&<[u8; 32]>::from(Sha256::digest(leaf.as_ref()))) {
            // Trusted as it is: only its own validity counts, not its issuer's.
            if at < cert.not_before {
                return Err(PkiError::NotYetValid { which: "it", from: when(cert.not_before), cert });
            }
            if at > cert.not_after {
                return Err(PkiError::Expired { which: "it", at: when(cert.not_after), cert });
            }
            require_eku(leaf, &cert, purpose)?;
            self.issuer_of_pinned(&end_entity, &cert, sent, now, purpose)
        } else {
            require_eku(leaf, &cert, purpose)?;
            let short_enough = |path: &webpki::VerifiedPath<'_>| {
                // Checked while paths are built, so a longer path found first does not hide a short one.
                if path.intermediate_certificates().count() > MAX_INTERMEDIATES {
                    Err(webpki::Error::MaximumPathDepthExceeded)
                } else {
                    Ok(())
                }
            };
            let path = end_entity
                .verify_for_usage(
                    algorithms(),
                    &self.anchors,
                    sent,
                    now,
                    KeyUsage::required_if_present(purpose_der(purpose)),
                    None,
                    Some(&short_enough),
                )
                .map_err(|e| self.explain(e, cert.clone(), sent))?;
            // webpki's anchors carry no dates: the trusted CA the chain ends at must be in force too.
            let anchor = path.anchor();
            let trusted = self.anchors.iter().position(|a| a == anchor).map(|i| &self.certs[self.anchor_certs[i]]);
            if let Some(top) = trusted.and_then(info) {
                if at > top.not_after {
                    return Err(PkiError::Expired {
                        which: "the trusted CA it chains to",
                        at: when(top.not_after),
                        cert,
                    });
                }
                if at < top.not_before {
                    return Err(PkiError::NotYetValid {
                        which: "the trusted CA it chains to",
                        from: when(top.not_before),
                        cert,
                    });
                }
            }
            match path.intermediate_certificates().next() {
                Some(issuer) => Some(issuer.der().into_owned()),
                None => trusted.cloned(),
            }
        };
        if let Some(name) = name {
            end_entity.verify_is_valid_for_subject_name(name).map_err(|_| PkiError::NameMismatch {
                name: name.to_str().into_owned(),
                names: subject_names(leaf).join(", "),
                cert: cert.clone(),
            })?;
        }
        Ok(Verified { leaf: *cert, issuer })
    }

    /// The certificate that signed a pinned leaf, for its OCSP check: a trusted CA or a sent
    /// certificate named as its issuer whose key verifies the leaf's signature (a name alone proves
    /// nothing: a peer could send a look-alike with a key of its own).
    fn issuer_of_pinned(
        &self,
        end_entity: &webpki::EndEntityCert<'_>,
        cert: &CertInfo,
        sent: &[CertificateDer<'_>],
        now: UnixTime,
        purpose: Purpose,
    ) -> Option<CertificateDer<'static>> {
        let trusted = self.anchor_certs.iter().map(|i| self.certs[*i].clone());
        let candidates = trusted.chain(sent.iter().map(|c| c.clone().into_owned()));
        candidates.filter(|c| info(c).is_some_and(|i| i.subject == cert.issuer)).find(|candidate| {
            let Ok(anchor) = webpki::anchor_from_trusted_cert(candidate) else { return false };
            end_entity
                .verify_for_usage(
                    algorithms(),
                    &[anchor],
                    &[],
                    now,
                    KeyUsage::required_if_present(purpose_der(purpose)),
                    None,
                    None,
                )
                .is_ok()
        })
    }

    /// A webpki refusal in an operator's words.
    fn explain(&self, e: webpki::Error, cert: Box<CertInfo>, sent: &[CertificateDer<'_>]) -> PkiError {
        use webpki::Error as W;
        let which = |not_after_or_before: i64, leaf_time: i64| {
            if not_after_or_before == leaf_time { "it" } else { "a certificate in its chain" }
        };
        match e {
            W::UnknownIssuer => {
                // The top of what was sent: the last certificate that chains from the leaf by name.
                // `sent` is short (checked above) and each certificate is read once.
                let facts: Vec<CertInfo> = sent.iter().filter_map(info).collect();
                let mut used = vec![false; facts.len()];
                let mut top = (*cert).clone();
                while let Some(i) = (0..facts.len()).find(|&i| !used[i] && facts[i].subject == top.issuer) {
                    used[i] = true;
                    top = facts[i].clone();
                }
                if top.subject == top.issuer {
                    PkiError::Untrusted { cert, top: top.subject }
                } else {
                    PkiError::Incomplete { cert, top: top.subject, issuer: top.issuer }
                }
            }
            W::CertExpired { not_after, .. } => {
                let at = not_after.as_secs() as i64;
                PkiError::Expired { which: which(at, cert.not_after), at: when(at), cert }
            }
            W::CertNotValidYet { not_before, .. } => {
                let from = not_before.as_secs() as i64;
                PkiError::NotYetValid { which: which(from, cert.not_before), from: when(from), cert }
            }
            W::RequiredEkuNotFoundContext(_) => PkiError::Invalid {
                cert,
                reason: "a certificate in its chain does not allow this purpose (EKU)".into(),
            },
            W::MaximumPathDepthExceeded => PkiError::TooManyIntermediates { cert, count: sent.len() },
            W::CaUsedAsEndEntity => {
                PkiError::Invalid { cert, reason: "it is a CA certificate, not an end entity".into() }
            }
            W::InvalidSignatureForPublicKey => {
                PkiError::Invalid { cert, reason: "a signature in its chain does not verify".into() }
            }
            W::EndEntityUsedAsCa => PkiError::Invalid {
                cert,
                reason: "a certificate sent as an issuer is not a CA (EndEntityUsedAsCa)".into(),
            },
            other => PkiError::Invalid { cert, reason: format!("{other}") },
        }
    }
}

fn algorithms() -> &'static [&'static dyn rustls::pki_types::SignatureVerificationAlgorithm] {
    rustls::crypto::ring::default_provider().signature_verification_algorithms.all
}

fn purpose_der(purpose: Purpose) -> &'static [u8] {
    // The OID's content octets (1.3.6.1.5.5.7.3.x).
    match purpose {
        Purpose::ServerAuth => &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01],
        Purpose::ClientAuth => &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02],
    }
}

/// Whether `cert` lists `purpose`'s EKU (a node checks its own certificate with it at start).
pub fn lists_purpose(cert: &CertificateDer<'_>, purpose: Purpose) -> bool {
    info(cert).is_some_and(|facts| require_eku(cert, &facts, purpose).is_ok())
}

/// The leaf must list the purpose's EKU: a certificate without the extension is refused too.
fn require_eku(leaf: &CertificateDer<'_>, cert: &CertInfo, purpose: Purpose) -> Result<(), PkiError> {
    let missing = || PkiError::MissingEku {
        cert: Box::new(cert.clone()),
        purpose: purpose.name(),
        role: match purpose {
            Purpose::ClientAuth => "client",
            Purpose::ServerAuth => "server",
        },
    };
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).map_err(|_| missing())?;
    let eku = parsed.extended_key_usage().ok().flatten().ok_or_else(missing)?;
    let listed = match purpose {
        Purpose::ClientAuth => eku.value.client_auth,
        Purpose::ServerAuth => eku.value.server_auth,
    } || eku.value.other.iter().any(|oid| oid.to_id_string() == purpose.oid());
    if listed { Ok(()) } else { Err(missing()) }
}

/// The DNS names and addresses a certificate is issued for.
pub fn subject_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else { return Vec::new() };
    let Ok(Some(san)) = parsed.subject_alternative_name() else { return Vec::new() };
    san.value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_string()),
            x509_parser::extensions::GeneralName::IPAddress(ip) => match ip.len() {
                4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*ip).ok()?).to_string()),
                16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*ip).ok()?).to_string()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A trust set that can be replaced while handshakes read it (rotation, the Admin API).
pub type SharedTrust = Arc<ArcSwap<TrustSet>>;

/// The rustls verifier over a [`SharedTrust`]: as a client verifier (the control plane checking
/// data planes, certificate mandatory) it logs each refusal in full and answers the peer with the
/// matching TLS alert; as a server verifier (a data plane checking its control plane) it returns the
/// whole [`PkiError`] so the dialer can say it.
#[derive(Debug)]
pub struct PkiVerifier {
    trust: SharedTrust,
    purpose: Purpose,
    provider: Arc<CryptoProvider>,
}

impl PkiVerifier {
    pub fn new(trust: SharedTrust, purpose: Purpose) -> Self {
        Self { trust, purpose, provider: crate::tls::provider() }
    }
}

type SignatureResult = Result<HandshakeSignatureValid, rustls::Error>;

impl ClientCertVerifier for PkiVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        match self.trust.load().verify(end_entity, intermediates, now, self.purpose, None) {
            Ok(_) => Ok(ClientCertVerified::assertion()),
            Err(error) => {
                let cert = info(end_entity);
                tracing::error!(
                    serial = cert.as_ref().map_or("?", |c| c.serial.as_str()),
                    subject = cert.as_ref().map_or("?", |c| c.subject.as_str()),
                    reason = %error.reason(),
                    "refusing a data plane certificate"
                );
                Err(error.to_rustls())
            }
        }
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> SignatureResult {
        verify_tls12_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> SignatureResult {
        verify_tls13_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

impl ServerCertVerifier for PkiVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.trust
            .load()
            .verify(end_entity, intermediates, now, self.purpose, Some(server_name))
            .map(|_| ServerCertVerified::assertion())
            .map_err(PkiError::into_rustls_detailed)
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> SignatureResult {
        verify_tls12_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> SignatureResult {
        verify_tls13_signature(m, c, d, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
