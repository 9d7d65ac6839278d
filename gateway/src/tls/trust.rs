//! The roots trusted for outbound TLS that is not the cluster link's pinned certificate: upstream
//! services over https now, the forward proxy and PKI-mode control planes later. They come from
//! Kong's `lua_ssl_trusted_certificate`: `system` (the operating system's store) and PEM files or
//! inline PEM, in any mix.

use std::sync::Arc;

use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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
    Ok(UpstreamTls::new(sources, client)?.default)
}

/// A certificate chain and its private key, presented to servers that ask for one.
type Identity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The proxy's TLS clients to upstreams: the node's (`lua_ssl_trusted_certificate`,
/// `client_ssl`), and per service one made of the service's own `ca_certificates` and
/// `client_certificate` where it has them.
pub struct UpstreamTls {
    roots: Arc<RootCertStore>,
    identity: Option<Identity>,
    /// The node's client, for services without TLS settings of their own.
    pub default: Arc<rustls::ClientConfig>,
}

impl UpstreamTls {
    pub fn new(sources: &[TrustSource], client: Option<&(PemSource, PemSource)>) -> Result<UpstreamTls, TrustError> {
        let roots = Arc::new(roots(sources)?);
        let identity = match client {
            None => None,
            Some((cert, key)) => {
                Some((cert.load_certs().map_err(TrustError::Client)?, key.load_key().map_err(TrustError::Client)?))
            }
        };
        let default = http1_config(roots.clone(), identity.as_ref()).map_err(TrustError::Client)?;
        Ok(UpstreamTls { roots, identity, default })
    }

    /// The client for a service: verifying with `cas` (PEM) when it names any, else the node's
    /// roots; presenting `client` (certificate and key PEM) when it has one, else `client_ssl`'s.
    pub fn for_service(&self, cas: &[&str], client: Option<(&str, &str)>) -> Result<Arc<rustls::ClientConfig>, String> {
        let roots = if cas.is_empty() {
            self.roots.clone()
        } else {
            let mut store = RootCertStore::empty();
            for pem in cas {
                for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                    let cert = cert.map_err(|e| format!("a CA certificate: {e}"))?;
                    store.add(cert).map_err(|e| format!("a CA certificate: {e}"))?;
                }
            }
            Arc::new(store)
        };
        let identity = match client {
            None => None,
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("client_certificate: {e}"))?;
                let key =
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|e| format!("client_certificate: {e}"))?;
                Some((chain, key))
            }
        };
        http1_config(roots, identity.as_ref().or(self.identity.as_ref()))
    }
}

fn http1_config(roots: Arc<RootCertStore>, identity: Option<&Identity>) -> Result<Arc<rustls::ClientConfig>, String> {
    let builder = rustls::ClientConfig::builder_with_provider(super::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            builder.with_client_auth_cert(chain.clone(), key.clone_key()).map_err(|e| e.to_string())?
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
