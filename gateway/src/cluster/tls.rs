//! TLS for the cluster link: the node's cluster identity and the rustls configurations of each end.
//! Shared mode pins one certificate (`crate::tls::pinned`); PKI mode will add a chain verifier.

use std::sync::Arc;

use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::certs::CLUSTER_NAME;
use crate::conf::{ClusterMtls, Settings};
use crate::tls::trust::TrustError;
use crate::tls::{pinned, provider};

#[derive(Debug, thiserror::Error)]
pub enum ClusterTlsError {
    #[error("cluster_mtls = pki is not supported yet: use shared")]
    PkiUnsupported,
    #[error("cluster_cert and cluster_cert_key are required in hybrid mode")]
    NoIdentity,
    #[error("{key}: {message}")]
    Pem { key: &'static str, message: String },
    #[error(transparent)]
    Trust(#[from] TrustError),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The cluster certificate chain and key from `cluster_cert` and `cluster_cert_key`.
pub fn identity(
    settings: &Settings,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), ClusterTlsError> {
    if settings.cluster_mtls == ClusterMtls::Pki {
        return Err(ClusterTlsError::PkiUnsupported);
    }
    let (Some(cert), Some(key)) = (&settings.cluster_cert, &settings.cluster_cert_key) else {
        return Err(ClusterTlsError::NoIdentity);
    };
    let chain = cert.load_certs().map_err(|message| ClusterTlsError::Pem { key: "cluster_cert", message })?;
    let key = key.load_key().map_err(|message| ClusterTlsError::Pem { key: "cluster_cert_key", message })?;
    Ok((chain, key))
}

/// The SNI a shared-mode data plane sends, as Kong does.
pub fn shared_server_name() -> rustls_pki_types::ServerName<'static> {
    rustls_pki_types::ServerName::try_from(CLUSTER_NAME).expect("kong_clustering is a valid DNS name")
}

/// The control plane's listener for `settings`' cluster identity.
pub fn server_config(settings: &Settings) -> Result<Arc<ServerConfig>, ClusterTlsError> {
    let (chain, key) = identity(settings)?;
    Ok(Arc::new(shared_server_config(chain, key)?))
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
