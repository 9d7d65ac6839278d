//! TLS for the cluster link: rustls configurations for each end and the verifiers behind them.
//! Shared mode pins one certificate (`pinned`); PKI mode will add a chain verifier beside it.

pub mod pinned;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::certs::CLUSTER_NAME;

/// The crypto every TLS endpoint of the gateway uses. TLS 1.2 and 1.3 only (rustls has no older).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The SNI a shared-mode data plane sends, as Kong does.
pub fn shared_server_name() -> rustls_pki_types::ServerName<'static> {
    rustls_pki_types::ServerName::try_from(CLUSTER_NAME).expect("kong_clustering is a valid DNS name")
}

/// The control plane's listener in shared mode: presents the cluster certificate and requires the
/// data plane to present exactly the same one.
pub fn shared_server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ServerConfig, rustls::Error> {
    let pin = pinned::Pin::of(&chain[0]);
    let verifier = Arc::new(pinned::PinnedVerifier::new(pin, provider()));
    ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
}

/// The data plane's side in shared mode: presents the cluster certificate and accepts only a
/// control plane that presents exactly the same one.
pub fn shared_client_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<ClientConfig, rustls::Error> {
    let pin = pinned::Pin::of(&chain[0]);
    let verifier = Arc::new(pinned::PinnedVerifier::new(pin, provider()));
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(chain, key)
}
