//! TLS on `ssl` proxy listeners: the certificate is chosen per handshake by SNI from the current
//! snapshot's certificates, falling back to the default certificates (`ssl_cert`, the first one
//! the client can verify), else a self-signed one kept in `<prefix>/ssl`; versions, suites and
//! their order as `ssl_cipher_suite`, `ssl_protocols` and `ssl_ciphers` say.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::server::{ClientHello, ProducesTickets, ResolvesServerCert, StoresServerSessions};
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
    config.session_storage = Arc::new(Expiring {
        inner: rustls::server::ServerSessionMemoryCache::new(settings.session_cache),
        timeout: settings.session_timeout,
    });
    if settings.session_tickets {
        config.ticketer = ticketer(settings.session_timeout)?;
    }
    config.alpn_protocols = if http2 { vec![b"h2".to_vec()] } else { Vec::new() };
    config.alpn_protocols.push(b"http/1.1".to_vec());
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Session tickets that resume for at most `timeout` (`ssl_session_timeout`): keys are replaced
/// every half of it and kept one more half (rustls's rotation, so keys are erased), and each
/// ticket carries the time it was issued (rotation is lazy: on a quiet listener a key can outlive
/// its turn, the time cannot).
fn ticketer(timeout: Duration) -> Result<Arc<dyn ProducesTickets>, rustls::Error> {
    let half = u32::try_from((timeout.as_secs() / 2).max(1)).unwrap_or(u32::MAX);
    let keys = rustls::TicketRotator::new(half, fresh_keys)?;
    Ok(Arc::new(Expiring { inner: keys, timeout }))
}

/// A ticketer with new random keys (ChaCha20-Poly1305, rustls's own).
fn fresh_keys() -> Result<Box<dyn ProducesTickets>, rustls::crypto::GetRandomFailed> {
    let keys = rustls::crypto::ring::Ticketer::new().map_err(|_| rustls::crypto::GetRandomFailed)?;
    Ok(Box::new(Keys(keys)))
}

/// One set of ticket keys.
#[derive(Debug)]
struct Keys(Arc<dyn ProducesTickets>);

impl ProducesTickets for Keys {
    fn enabled(&self) -> bool {
        self.0.enabled()
    }

    fn lifetime(&self) -> u32 {
        self.0.lifetime()
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.0.encrypt(plain)
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.0.decrypt(cipher)
    }
}

/// Sessions (tickets, or cache entries) stamped with the second they were made, and refused once
/// older than `timeout`.
#[derive(Debug)]
struct Expiring<T> {
    inner: T,
    timeout: Duration,
}

impl<T> Expiring<T> {
    fn stamp(plain: &[u8]) -> Vec<u8> {
        let mut stamped = now_secs().to_be_bytes().to_vec();
        stamped.extend_from_slice(plain);
        stamped
    }

    fn fresh(&self, stamped: Vec<u8>) -> Option<Vec<u8>> {
        let (at, value) = stamped.split_first_chunk::<8>()?;
        let age = now_secs().saturating_sub(u64::from_be_bytes(*at));
        (age <= self.timeout.as_secs()).then(|| value.to_vec())
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl<T: ProducesTickets> ProducesTickets for Expiring<T> {
    fn enabled(&self) -> bool {
        self.inner.enabled()
    }

    fn lifetime(&self) -> u32 {
        u32::try_from(self.timeout.as_secs()).unwrap_or(u32::MAX)
    }

    fn encrypt(&self, plain: &[u8]) -> Option<Vec<u8>> {
        self.inner.encrypt(&Self::stamp(plain))
    }

    fn decrypt(&self, cipher: &[u8]) -> Option<Vec<u8>> {
        self.fresh(self.inner.decrypt(cipher)?)
    }
}

impl<T: StoresServerSessions> StoresServerSessions for Expiring<Arc<T>> {
    fn put(&self, key: Vec<u8>, value: Vec<u8>) -> bool {
        self.inner.put(key, Self::stamp(&value))
    }

    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.fresh(self.inner.get(key)?)
    }

    fn take(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.fresh(self.inner.take(key)?)
    }

    fn can_cache(&self) -> bool {
        self.inner.can_cache()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tickets_and_cached_sessions_older_than_the_timeout_are_refused() {
        let tickets = ticketer(Duration::from_secs(60)).unwrap();
        assert_eq!(tickets.lifetime(), 60);
        let ticket = tickets.encrypt(b"session").unwrap();
        assert_eq!(tickets.decrypt(&ticket).as_deref(), Some(&b"session"[..]));
        assert_eq!(tickets.decrypt(b"forged"), None);

        let keys = rustls::TicketRotator::new(30, fresh_keys).unwrap();
        let expiring = Expiring { inner: keys, timeout: Duration::from_secs(60) };
        let mut old = (now_secs() - 61).to_be_bytes().to_vec();
        old.extend_from_slice(b"session");
        let stale = expiring.inner.encrypt(&old).unwrap();
        assert_eq!(expiring.decrypt(&stale), None, "issued 61 s ago");
        let mut recent = (now_secs() - 59).to_be_bytes().to_vec();
        recent.extend_from_slice(b"session");
        let fresh = expiring.inner.encrypt(&recent).unwrap();
        assert_eq!(expiring.decrypt(&fresh).as_deref(), Some(&b"session"[..]));

        let cache =
            Expiring { inner: rustls::server::ServerSessionMemoryCache::new(8), timeout: Duration::from_secs(60) };
        assert!(cache.put(b"a".to_vec(), b"one".to_vec()));
        assert_eq!(cache.get(b"a").as_deref(), Some(&b"one"[..]));
        cache.inner.put(b"b".to_vec(), old);
        assert_eq!(cache.get(b"b"), None, "cached 61 s ago");
        assert_eq!(cache.take(b"a").as_deref(), Some(&b"one"[..]));
        assert_eq!(cache.get(b"a"), None, "taken");
    }
}
