//! TLS on `ssl` proxy listeners: the certificate is chosen per handshake by SNI from the current
//! snapshot's certificates, falling back to the default certificates (`ssl_cert`, the first one
//! the client can verify), else a self-signed one kept in `<prefix>/ssl`; versions, suites and
//! their order as `ssl_cipher_suite`, `ssl_protocols` and `ssl_ciphers` say.

use std::path::Path;
use std::sync::Arc;

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use super::Proxy;
use super::snapshot::certified_key;
use crate::conf::proxy_tls::ProxyTls;

#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("the default certificate in {dir}: {message}")]
    Default { dir: String, message: String },
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("ssl_cert / ssl_cert_key: {0}")]
    Configured(String),
}

struct SniResolver {
    proxy: Arc<Proxy>,
    /// At least one.
    defaults: Vec<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let chosen = hello.server_name().and_then(|name| self.proxy.current().certificates.lookup(name));
        if chosen.is_some() {
            return chosen;
        }
        let schemes = hello.signature_schemes();
        let fits = self.defaults.iter().find(|cert| cert.key.choose_scheme(schemes).is_some());
        Some(fits.unwrap_or(&self.defaults[0]).clone())
    }
}

/// The acceptor for the proxy's `ssl` listeners: the versions and suites `settings` allow, ALPN
/// `h2` (when the listener has Kong's `http2` flag) and `http/1.1`.
pub fn acceptor(
    proxy: Arc<Proxy>,
    prefix: &Path,
    http2: bool,
    settings: &ProxyTls,
) -> Result<TlsAcceptor, TlsSetupError> {
    let defaults = if settings.default_certificates.is_empty() {
        vec![Arc::new(default_certificate(prefix)?)]
    } else {
        let mut loaded = Vec::new();
        for (cert, key) in &settings.default_certificates {
            let chain = cert.load_certs().map_err(TlsSetupError::Configured)?;
            let der = key.load_key().map_err(TlsSetupError::Configured)?;
            let signing = rustls::crypto::ring::sign::any_supported_type(&der)
                .map_err(|e| TlsSetupError::Configured(format!("{key}: unsupported key: {e}")))?;
            loaded.push(Arc::new(CertifiedKey::new(chain, signing)));
        }
        loaded
    };
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if settings.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if settings.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider(settings)))
        .with_protocol_versions(&versions)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver { proxy, defaults }));
    config.ignore_client_order = settings.prefer_server_ciphers;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(settings.session_cache);
    if settings.session_tickets {
        config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    }
    config.alpn_protocols = if http2 { vec![b"h2".to_vec()] } else { Vec::new() };
    config.alpn_protocols.push(b"http/1.1".to_vec());
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The crypto of the proxy's listeners: every TLS 1.3 suite, then the TLS 1.2 suites `settings`
/// name, in their order.
fn provider(settings: &ProxyTls) -> rustls::crypto::CryptoProvider {
    use rustls::CipherSuite as S;
    let mut provider = rustls::crypto::ring::default_provider();
    let named = |name: &str| match name {
        "ECDHE-ECDSA-AES128-GCM-SHA256" => Some(S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256),
        "ECDHE-RSA-AES128-GCM-SHA256" => Some(S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256),
        "ECDHE-ECDSA-AES256-GCM-SHA384" => Some(S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384),
        "ECDHE-RSA-AES256-GCM-SHA384" => Some(S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384),
        "ECDHE-ECDSA-CHACHA20-POLY1305" => Some(S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256),
        "ECDHE-RSA-CHACHA20-POLY1305" => Some(S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256),
        _ => None,
    };
    let all = std::mem::take(&mut provider.cipher_suites);
    let mut suites: Vec<rustls::SupportedCipherSuite> =
        all.iter().filter(|s| matches!(s, rustls::SupportedCipherSuite::Tls13(_))).copied().collect();
    for name in &settings.tls12_suites {
        if let Some(found) = named(name).and_then(|id| all.iter().find(|s| s.suite() == id)) {
            suites.push(*found);
        }
    }
    provider.cipher_suites = suites;
    provider
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
