//! The roots trusted for outbound TLS that is not the cluster link's pinned certificate: upstream
//! services over https now, the forward proxy and PKI-mode control planes later. They come from
//! Kong's `lua_ssl_trusted_certificate`: `system` (the operating system's store) and PEM files or
//! inline PEM, in any mix.

use std::sync::Arc;

use rustls::RootCertStore;

use super::PemSource;

/// One entry of `lua_ssl_trusted_certificate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustSource {
    System,
    Pem(PemSource),
}

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("lua_ssl_trusted_certificate: {0}")]
    Pem(String),
    #[error("lua_ssl_trusted_certificate: {0}")]
    Rejected(String),
    #[error("client_ssl_cert: {0}")]
    Client(String),
}

/// The root store `sources` describe.
pub fn roots(sources: &[TrustSource]) -> Result<RootCertStore, TrustError> {
    let mut store = RootCertStore::empty();
    for source in sources {
        match source {
            TrustSource::System => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _ignored) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    // Not fatal: only TLS that relies on it fails, and says why.
                    let why = found.errors.first().map(|e| format!(" ({e})")).unwrap_or_default();
                    tracing::warn!(
                        "lua_ssl_trusted_certificate: the system trust store has no usable certificate{why}"
                    );
                }
            }
            TrustSource::Pem(pem) => {
                for cert in pem.load_certs().map_err(TrustError::Pem)? {
                    store.add(cert).map_err(|e| TrustError::Rejected(format!("{pem}: {e}")))?;
                }
            }
        }
    }
    Ok(store)
}

/// A TLS client configuration verifying servers against `sources` (TLS 1.2 and 1.3), speaking
/// HTTP/1.1, as the proxy does to upstreams; presenting `client` (certificate chain and key,
/// Kong's `client_ssl`) to servers that ask for one.
pub fn http1_client(
    sources: &[TrustSource],
    client: Option<&(PemSource, PemSource)>,
) -> Result<Arc<rustls::ClientConfig>, TrustError> {
    let builder = rustls::ClientConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TrustError::Rejected(e.to_string()))?
        .with_root_certificates(roots(sources)?);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = cert.load_certs().map_err(TrustError::Client)?;
            let key = key.load_key().map_err(TrustError::Client)?;
            builder.with_client_auth_cert(chain, key).map_err(|e| TrustError::Client(e.to_string()))?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
