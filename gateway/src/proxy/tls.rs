//! TLS on `ssl` proxy listeners: the certificate is chosen per handshake by SNI from the current
//! snapshot's certificates, falling back to a self-signed default kept in `<prefix>/ssl`.

use std::path::Path;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use super::Proxy;
use super::snapshot::certified_key;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("the default certificate in {dir}: {message}")]
    Default { dir: String, message: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

struct SniResolver {
    proxy: Arc<Proxy>,
    default: Arc<CertifiedKey>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello.server_name().and_then(|name| self.proxy.current().certificates.lookup(name));
        Some(chosen.unwrap_or_else(|| self.default.clone()))
    }
}

/// The acceptor for the proxy's `ssl` listeners: TLS 1.2 and 1.3, ALPN `h2` (when the listener has
/// Kong's `http2` flag) and `http/1.1`.
pub fn acceptor(proxy: Arc<Proxy>, prefix: &Path, http2: bool) -> Result<TlsAcceptor, TlsSetupError> {
    let default = Arc::new(default_certificate(prefix)?);
    let mut config = rustls::ServerConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { proxy, default }));
    config.alpn_protocols = if http2 { vec![b"h2".to_vec()] } else { Vec::new() };
    config.alpn_protocols.push(b"http/1.1".to_vec());
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// `<prefix>/ssl/default.{crt,key}`, made on first use (CN and SAN `localhost`, key 0600).
pub(crate) fn default_certificate(prefix: &Path) -> Result<CertifiedKey, TlsSetupError> {
    let dir = prefix.join("ssl");
    let fail = |message: String| TlsSetupError::Default { dir: dir.display().to_string(), message };
    let (cert, key) = (dir.join("default.crt"), dir.join("default.key"));
    if !cert.exists() || !key.exists() {
        std::fs::create_dir_all(&dir).map_err(|e| fail(e.to_string()))?;
        let _ = std::fs::remove_file(&cert);
        let _ = std::fs::remove_file(&key);
        let pair = crate::certs::self_signed("localhost", 3650).map_err(|e| fail(e.to_string()))?;
        crate::certs::write_new(&key, pair.key_pem.as_bytes(), 0o600).map_err(|e| fail(e.to_string()))?;
        crate::certs::write_new(&cert, pair.cert_pem.as_bytes(), 0o644).map_err(|e| fail(e.to_string()))?;
        tracing::info!(cert = %cert.display(), "made a self-signed default certificate for TLS listeners");
    }
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| fail(format!("{}: {e}", p.display())));
    certified_key(&read(&cert)?, &read(&key)?).map_err(fail)
}
