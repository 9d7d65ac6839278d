//! TLS for the cluster link: each end's identity and the rustls configuration it speaks.
//!
//! Shared mode pins one certificate ([`crate::tls::pinned`]). PKI mode verifies chains
//! ([`crate::tls::pki`]): the control plane trusts `cluster_ca_cert` plus the certificates the Admin
//! API adds ([`DpTrust`]), and requires EKU clientAuth; a data plane trusts `cluster_ca_cert` plus
//! `lua_ssl_trusted_certificate`, requires EKU serverAuth and the name `cluster_server_name` (else
//! the control plane's host), and sends that name as SNI.
//!
//! Both ends keep their configuration behind an `ArcSwap` so SIGHUP can re-read the files
//! ([`CpTls::reload`], [`DpTls::reload`]): links already up keep the material they started with,
//! new ones get the new.

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use crate::certs::CLUSTER_NAME;
use crate::conf::{ClusterMtls, HostPort, Settings};
use crate::tls::pki::{self, PkiError, PkiVerifier, Purpose, SharedTrust, TrustSet, Verified};
use crate::tls::trust::{TrustError, TrustSource};
use crate::tls::{PemSource, pinned, provider};

/// A certificate this close to its end gets a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ClusterTlsError {
    #[error("cluster_cert and cluster_cert_key are required in hybrid mode")]
    NoIdentity,
    #[error("cluster_mtls = pki on a control plane needs cluster_ca_cert")]
    NoCa,
    #[error("{key}: {message}")]
    Pem { key: &'static str, message: String },
    #[error("{key}: {source}")]
    Pki { key: &'static str, source: PkiError },
    #[error("cluster_server_name: {0:?} cannot be a TLS name")]
    ServerName(String),
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

type Chain = Vec<CertificateDer<'static>>;

/// Where a node's cluster TLS material comes from: the settings' files, re-read on reload.
#[derive(Debug, Clone)]
struct Material {
    mode: ClusterMtls,
    cert: Option<PemSource>,
    key: Option<PemSource>,
    ca: Option<PemSource>,
    trusted: Vec<TrustSource>,
}

impl Material {
    fn of(settings: &Settings) -> Material {
        Material {
            mode: settings.cluster_mtls,
            cert: settings.cluster_cert.clone(),
            key: settings.cluster_cert_key.clone(),
            ca: settings.cluster_ca_cert.clone(),
            trusted: settings.lua_ssl_trusted_certificate.clone(),
        }
    }

    fn identity(&self) -> Result<(Chain, PrivateKeyDer<'static>), ClusterTlsError> {
        let (Some(cert), Some(key_source)) = (&self.cert, &self.key) else {
            return Err(ClusterTlsError::NoIdentity);
        };
        let chain = cert.load_certs().map_err(|message| ClusterTlsError::Pem { key: "cluster_cert", message })?;
        let key = key_source.load_key().map_err(|message| ClusterTlsError::Pem { key: "cluster_cert_key", message })?;
        crate::certs::check_pair(cert, key_source)
            .map_err(|message| ClusterTlsError::Pem { key: "cluster_cert_key", message })?;
        Ok((chain, key))
    }

    /// `cluster_ca_cert`'s certificates (none when unset).
    fn ca(&self) -> Result<Chain, ClusterTlsError> {
        match &self.ca {
            Some(ca) => ca.load_certs().map_err(|message| ClusterTlsError::Pem { key: "cluster_ca_cert", message }),
            None => Ok(Vec::new()),
        }
    }
}

/// The cluster certificate chain and key from `cluster_cert` and `cluster_cert_key`.
pub fn identity(settings: &Settings) -> Result<(Chain, PrivateKeyDer<'static>), ClusterTlsError> {
    Material::of(settings).identity()
}

/// Warns when `chain`'s leaf (this node's `what`) ends within [`EXPIRY_WARNING_DAYS`] or has ended.
fn warn_if_expiring(what: &str, chain: &[CertificateDer<'_>]) {
    let Some(info) = chain.first().and_then(pki::info) else { return };
    let left = info.not_after - UnixTime::now().as_secs() as i64;
    if left < 0 {
        tracing::error!(certificate = %info, expired = %pki::when(info.not_after), "{what} has expired: peers will refuse it");
    } else if left < EXPIRY_WARNING_DAYS * 86_400 {
        tracing::warn!(certificate = %info, expires = %pki::when(info.not_after), days_left = left / 86_400, "{what} expires within {EXPIRY_WARNING_DAYS} days: rotate it (files, then SIGHUP)");
    }
}

/// Days until `cert` expires, when that is fewer than [`EXPIRY_WARNING_DAYS`] (negative: expired).
pub fn expiring_in_days(cert: &CertificateDer<'_>) -> Option<i64> {
    let info = pki::info(cert)?;
    let left = info.not_after - UnixTime::now().as_secs() as i64;
    (left < EXPIRY_WARNING_DAYS * 86_400).then(|| left.div_euclid(86_400))
}

/// The control plane's trusted data-plane certificates in pki mode: `cluster_ca_cert` plus the
/// extra ones the Admin API manages. Every handshake reads the current set, so a change applies
/// to the next connection.
pub struct DpTrust {
    parts: Mutex<(Chain, Chain)>,
    shared: SharedTrust,
}

impl DpTrust {
    pub fn new(base: Chain) -> Result<DpTrust, PkiError> {
        let set = TrustSet::new(base.clone(), "cluster_ca_cert")?;
        Ok(DpTrust { parts: Mutex::new((base, Vec::new())), shared: Arc::new(ArcSwap::from_pointee(set)) })
    }

    fn rebuild(&self, update: impl FnOnce(&mut (Chain, Chain))) -> Result<(), PkiError> {
        let mut parts = self.parts.lock().unwrap_or_else(|p| p.into_inner());
        let mut next = parts.clone();
        update(&mut next);
        let mut set = TrustSet::new(next.0.clone(), "cluster_ca_cert")?;
        set.add(next.1.clone(), "a trusted data plane certificate")?;
        self.shared.store(Arc::new(set));
        *parts = next;
        Ok(())
    }

    /// Replaces the certificates trusted on top of `cluster_ca_cert`.
    pub fn set_extra(&self, certs: Chain) -> Result<(), PkiError> {
        self.rebuild(|parts| parts.1 = certs)
    }

    fn set_base(&self, certs: Chain) -> Result<(), PkiError> {
        self.rebuild(|parts| parts.0 = certs)
    }

    pub fn current(&self) -> Arc<TrustSet> {
        self.shared.load_full()
    }

    /// Verifies a data plane's chain as presented (leaf first) against the current set.
    pub fn verify(&self, chain: &[CertificateDer<'_>]) -> Result<Verified, PkiError> {
        let Some((leaf, sent)) = chain.split_first() else {
            return Err(PkiError::Unreadable { reason: "the data plane presented no certificate".into() });
        };
        self.current().verify(leaf, sent, UnixTime::now(), Purpose::ClientAuth, None)
    }
}

/// The control plane's cluster TLS.
pub struct CpTls {
    material: Material,
    trust: Option<Arc<DpTrust>>,
    config: ArcSwap<ServerConfig>,
}

impl CpTls {
    pub fn new(settings: &Settings) -> Result<Arc<CpTls>, ClusterTlsError> {
        let material = Material::of(settings);
        let trust = match material.mode {
            ClusterMtls::Shared => None,
            ClusterMtls::Pki => {
                let ca = material.ca()?;
                if ca.is_empty() {
                    return Err(ClusterTlsError::NoCa);
                }
                Some(Arc::new(
                    DpTrust::new(ca).map_err(|source| ClusterTlsError::Pki { key: "cluster_ca_cert", source })?,
                ))
            }
        };
        let config = Self::build(&material, trust.as_ref())?;
        Ok(Arc::new(CpTls { material, trust, config: ArcSwap::from_pointee(config) }))
    }

    fn build(material: &Material, trust: Option<&Arc<DpTrust>>) -> Result<ServerConfig, ClusterTlsError> {
        let (chain, key) = material.identity()?;
        warn_if_expiring("this control plane's cluster certificate (cluster_cert)", &chain);
        if trust.is_some() && !pki::lists_purpose(&chain[0], Purpose::ServerAuth) {
            tracing::warn!(
                "cluster_cert does not list the extended key usage serverAuth: pki data planes will refuse this control plane"
            );
        }
        Ok(match trust {
            None => shared_server_config(chain, key)?,
            Some(trust) => {
                let verifier = Arc::new(PkiVerifier::new(trust.shared.clone(), Purpose::ClientAuth));
                let config = ServerConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()?
                    .with_client_cert_verifier(verifier)
                    .with_single_cert(chain, key)?;
                without_resumption(config)
            }
        })
    }

    /// The acceptor for the next connection.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.load_full())
    }

    /// In pki mode, the trusted data-plane certificates (the Admin API adds to them).
    pub fn trust(&self) -> Option<&Arc<DpTrust>> {
        self.trust.as_ref()
    }

    /// Re-reads `cluster_cert`, `cluster_cert_key` and `cluster_ca_cert`. On any error nothing
    /// changes.
    pub fn reload(&self) -> Result<(), ClusterTlsError> {
        let ca = match &self.trust {
            Some(_) => {
                let ca = self.material.ca()?;
                if ca.is_empty() {
                    return Err(ClusterTlsError::NoCa);
                }
                TrustSet::new(ca.clone(), "cluster_ca_cert")
                    .map_err(|source| ClusterTlsError::Pki { key: "cluster_ca_cert", source })?;
                Some(ca)
            }
            None => None,
        };
        // The verifier reads the shared trust, so the new configuration may be built first.
        let config = Self::build(&self.material, self.trust.as_ref())?;
        if let (Some(trust), Some(ca)) = (&self.trust, ca) {
            trust.set_base(ca).map_err(|source| ClusterTlsError::Pki { key: "cluster_ca_cert", source })?;
        }
        self.config.store(Arc::new(config));
        Ok(())
    }
}

/// The data plane's cluster TLS: its identity, what it trusts, and the name it asks for.
pub struct DpTls {
    material: Material,
    server_name: ServerName<'static>,
    config: ArcSwap<ClientConfig>,
}

impl DpTls {
    pub fn new(settings: &Settings) -> Result<DpTls, ClusterTlsError> {
        let material = Material::of(settings);
        let server_name = match material.mode {
            ClusterMtls::Shared => shared_server_name(),
            ClusterMtls::Pki => {
                pki_server_name(settings.cluster_server_name.as_deref(), &settings.cluster_control_plane)?
            }
        };
        let config = Self::build(&material)?;
        Ok(DpTls { material, server_name, config: ArcSwap::from_pointee(config) })
    }

    fn build(material: &Material) -> Result<ClientConfig, ClusterTlsError> {
        let (chain, key) = material.identity()?;
        warn_if_expiring("this data plane's cluster certificate (cluster_cert)", &chain);
        if material.mode == ClusterMtls::Pki && !pki::lists_purpose(&chain[0], Purpose::ClientAuth) {
            tracing::warn!(
                "cluster_cert does not list the extended key usage clientAuth: a pki control plane will refuse this data plane"
            );
        }
        Ok(match material.mode {
            ClusterMtls::Shared => shared_client_config(chain, key)?,
            ClusterMtls::Pki => {
                let trust = cp_trust(material)?;
                let verifier = Arc::new(PkiVerifier::new(Arc::new(ArcSwap::from_pointee(trust)), Purpose::ServerAuth));
                let mut config = ClientConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()?
                    .dangerous()
                    .with_custom_certificate_verifier(verifier)
                    .with_client_auth_cert(chain, key)?;
                config.resumption = rustls::client::Resumption::disabled();
                config
            }
        })
    }

    pub fn config(&self) -> Arc<ClientConfig> {
        self.config.load_full()
    }

    /// The SNI sent and the name the control plane's certificate must carry.
    pub fn server_name(&self) -> &ServerName<'static> {
        &self.server_name
    }

    pub fn mode(&self) -> ClusterMtls {
        self.material.mode
    }

    /// Re-reads `cluster_cert`, `cluster_cert_key`, `cluster_ca_cert` and
    /// `lua_ssl_trusted_certificate`. On any error nothing changes.
    pub fn reload(&self) -> Result<(), ClusterTlsError> {
        let config = Self::build(&self.material)?;
        self.config.store(Arc::new(config));
        Ok(())
    }
}

/// What a pki data plane trusts for its control plane: `cluster_ca_cert` and
/// `lua_ssl_trusted_certificate`.
fn cp_trust(material: &Material) -> Result<TrustSet, ClusterTlsError> {
    let mut set = TrustSet::new(material.ca()?, "cluster_ca_cert")
        .map_err(|source| ClusterTlsError::Pki { key: "cluster_ca_cert", source })?;
    for source in &material.trusted {
        match source {
            TrustSource::System => {
                let found = rustls_native_certs::load_native_certs();
                let offered = found.certs.len();
                let skipped = set.extend_lenient(found.certs);
                if skipped > 0 || !found.errors.is_empty() {
                    let why = found.errors.first().map(|e| format!(": {e}")).unwrap_or_default();
                    tracing::warn!(
                        offered,
                        skipped,
                        "lua_ssl_trusted_certificate = system: some of the system store was not usable{why}"
                    );
                }
            }
            TrustSource::Pem(pem) => {
                let certs = pem.load_certs().map_err(TrustError::Pem)?;
                set.add(certs, "lua_ssl_trusted_certificate")
                    .map_err(|source| ClusterTlsError::Pki { key: "lua_ssl_trusted_certificate", source })?;
            }
        }
    }
    if set.is_empty() {
        tracing::warn!(
            "cluster_mtls = pki: no certificate is trusted for the control plane (cluster_ca_cert is unset and lua_ssl_trusted_certificate yields none)"
        );
    }
    Ok(set)
}

/// The name a pki data plane sends and requires: `cluster_server_name`, else the control plane's host.
pub(crate) fn pki_server_name(configured: Option<&str>, cp: &HostPort) -> Result<ServerName<'static>, ClusterTlsError> {
    let name = configured.unwrap_or(&cp.host).trim_start_matches('[').trim_end_matches(']').to_string();
    ServerName::try_from(name.clone()).map_err(|_| ClusterTlsError::ServerName(name))
}

/// The SNI a shared-mode data plane sends, as Kong does.
pub fn shared_server_name() -> ServerName<'static> {
    ServerName::try_from(CLUSTER_NAME).expect("kong_clustering is a valid DNS name")
}

/// The control plane's listener in shared mode: presents the cluster certificate and requires the
/// data plane to present exactly the same one.
pub fn shared_server_config(chain: Chain, key: PrivateKeyDer<'static>) -> Result<ServerConfig, rustls::Error> {
    let pin = pinned::Pin::of(&chain[0]);
    let verifier = Arc::new(pinned::PinnedVerifier::new(pin, provider()));
    let config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(without_resumption(config))
}

/// A resumed session skips the client certificate's verification; the cluster link never resumes,
/// so every link is checked against the trust of the moment (removed certificates, revocation,
/// expiry). Links are few and long-lived: a full handshake each time costs nothing that matters.
fn without_resumption(mut config: ServerConfig) -> ServerConfig {
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    config
}

/// The data plane's side in shared mode: presents the cluster certificate and accepts only a
/// control plane that presents exactly the same one.
pub fn shared_client_config(chain: Chain, key: PrivateKeyDer<'static>) -> Result<ClientConfig, rustls::Error> {
    let pin = pinned::Pin::of(&chain[0]);
    let verifier = Arc::new(pinned::PinnedVerifier::new(pin, provider()));
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)?;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use rustls::{ClientConnection, ServerConnection};

    use super::*;

    /// Runs a full in-memory handshake and says how it went.
    fn handshake(client: &Arc<ClientConfig>, server: &Arc<ServerConfig>) -> rustls::HandshakeKind {
        let mut c = ClientConnection::new(client.clone(), shared_server_name()).unwrap();
        let mut s = ServerConnection::new(server.clone()).unwrap();
        for _ in 0..20 {
            let mut wire = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut wire).unwrap();
            }
            let mut read = &wire[..];
            while !read.is_empty() {
                s.read_tls(&mut read).unwrap();
            }
            s.process_new_packets().unwrap();
            let mut wire = Vec::new();
            while s.wants_write() {
                s.write_tls(&mut wire).unwrap();
            }
            let mut read = &wire[..];
            while !read.is_empty() {
                c.read_tls(&mut read).unwrap();
            }
            c.process_new_packets().unwrap();
            if !c.is_handshaking() && !s.is_handshaking() && !c.wants_write() && !s.wants_write() {
                break;
            }
        }
        s.handshake_kind().expect("the handshake finished")
    }

    #[test]
    fn cluster_links_never_resume_a_session() {
        let pair = crate::certs::cluster_pair(1).unwrap();
        let chain = PemSource::Inline(pair.cert_pem).load_certs().unwrap();
        let key = || PemSource::Inline(pair.key_pem.clone()).load_key().unwrap();
        let server = Arc::new(shared_server_config(chain.clone(), key()).unwrap());
        let client = Arc::new(shared_client_config(chain, key()).unwrap());
        assert_eq!(handshake(&client, &server), rustls::HandshakeKind::Full);
        assert_eq!(handshake(&client, &server), rustls::HandshakeKind::Full, "a second link must verify again");
    }
}
