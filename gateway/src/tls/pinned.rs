//! Shared-mode peer verification: the peer must present exactly our cluster certificate (compared
//! by SHA-256 of its DER, as Kong does), still within its validity, and must prove it holds the key
//! through the handshake signature. No chain building and no name check: the pin is the identity.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, Error, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};

/// SHA-256 of a certificate's DER.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Pin([u8; 32]);

impl Pin {
    pub fn of(cert: &CertificateDer<'_>) -> Pin {
        Pin(Sha256::digest(cert.as_ref()).into())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// Why a presented certificate is refused; carried inside the rustls error so logs can say it.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error("the peer's certificate (sha256 {presented:?}) is not the pinned cluster certificate (sha256 {pinned:?})")]
    Mismatch { presented: Pin, pinned: Pin },
}

fn check(pin: Pin, end_entity: &CertificateDer<'_>, now: UnixTime) -> Result<(), Error> {
    let presented = Pin::of(end_entity);
    if presented != pin {
        let error = PinError::Mismatch { presented, pinned: pin };
        return Err(Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(error)))));
    }
    let (_, cert) = x509_parser::parse_x509_certificate(end_entity.as_ref())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = now.as_secs() as i64;
    let validity = cert.validity();
    if now < validity.not_before.timestamp() {
        return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now > validity.not_after.timestamp() {
        return Err(Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

/// Accepts only the pinned certificate. The same verifier serves the data plane's check of the
/// control plane (`ServerCertVerifier`) and the control plane's check of a data plane
/// (`ClientCertVerifier`, certificate mandatory).
#[derive(Debug)]
pub struct PinnedVerifier {
    pin: Pin,
    provider: Arc<CryptoProvider>,
}

impl PinnedVerifier {
    pub fn new(pin: Pin, provider: Arc<CryptoProvider>) -> Self {
        Self { pin, provider }
    }

    fn tls12(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> SignatureResult {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn tls13(&self, message: &[u8], cert: &CertificateDer<'_>, dss: &DigitallySignedStruct) -> SignatureResult {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

type SignatureResult = Result<HandshakeSignatureValid, Error>;

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        check(self.pin, end_entity, now).map(|()| ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> SignatureResult {
        self.tls12(m, c, d)
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> SignatureResult {
        self.tls13(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

impl ClientCertVerifier for PinnedVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        check(self.pin, end_entity, now).map(|()| ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> SignatureResult {
        self.tls12(m, c, d)
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &DigitallySignedStruct) -> SignatureResult {
        self.tls13(m, c, d)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh self-signed certificate valid for `days` from now.
    fn der(days: i64) -> CertificateDer<'static> {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["kong_clustering".to_string()]).unwrap();
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(1);
        params.not_after = now + time::Duration::days(days);
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn only_the_pinned_certificate_passes() {
        let ours = der(1);
        let theirs = der(1);
        let now = UnixTime::now();
        assert!(check(Pin::of(&ours), &ours, now).is_ok());
        let err = check(Pin::of(&ours), &theirs, now).unwrap_err().to_string();
        assert!(err.contains("Mismatch"), "{err}");
    }

    #[test]
    fn an_expired_pinned_certificate_is_refused() {
        let ours = der(1);
        let in_three_days =
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(UnixTime::now().as_secs() + 3 * 86_400));
        assert_eq!(
            check(Pin::of(&ours), &ours, in_three_days),
            Err(Error::InvalidCertificate(CertificateError::Expired))
        );
    }
}
