//! TLS on the `ssl` listeners of the Admin API and the status API: one certificate per API
//! (`admin_ssl_cert`, `status_ssl_cert`), else the self-signed default the proxy's TLS listeners
//! use. Loading and the default certificate are the proxy's; only the fixed choice lives here.

use std::path::Path;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::conf::PemSource;
use crate::proxy::tls::TlsSetupError;

#[derive(Debug, thiserror::Error)]
pub enum ListenerTlsError {
    #[error("{key}: {message}")]
    Certificate { key: String, message: String },
    #[error(transparent)]
    Setup(#[from] TlsSetupError),
}

#[derive(Debug)]
struct Fixed(Arc<CertifiedKey>);

impl ResolvesServerCert for Fixed {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// The acceptor for an `ssl` listener of `key` (`admin_listen`, `status_listen`): `pair` when the
/// operator configured one, else the default certificate under `prefix`. ALPN offers `h2` only
/// with the listener's `http2` flag.
pub fn acceptor(
    key: &str,
    pair: Option<&(PemSource, PemSource)>,
    prefix: &Path,
    http2: bool,
) -> Result<TlsAcceptor, ListenerTlsError> {
    let certified = match pair {
        None => crate::proxy::tls::default_certificate(prefix)?,
        Some((cert, private)) => {
            let fail = |message: String| ListenerTlsError::Certificate { key: key.to_string(), message };
            let chain = cert.load_certs().map_err(fail)?;
            let der = private.load_key().map_err(fail)?;
            let signing = rustls::crypto::ring::sign::any_supported_type(&der)
                .map_err(|e| fail(format!("{private}: unsupported key: {e}")))?;
            CertifiedKey::new(chain, signing)
        }
    };
    let mut config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::from)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Fixed(Arc::new(certified))));
    config.alpn_protocols = if http2 { vec![b"h2".to_vec()] } else { Vec::new() };
    config.alpn_protocols.push(b"http/1.1".to_vec());
    Ok(TlsAcceptor::from(Arc::new(config)))
}
