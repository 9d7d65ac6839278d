//! TLS building blocks every part of the gateway shares: the crypto provider, PEM loading, the
//! roots trusted for outbound TLS and the peer verifiers. It sits low: `conf`, `certs`, `proxy`,
//! `cluster` and the listeners use it; nothing in it uses them.

pub mod pem;
pub mod pinned;
pub mod pki;
pub mod trust;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;

pub use pem::PemSource;
pub use trust::TrustSource;

/// The crypto every TLS endpoint of the gateway uses. TLS 1.2 and 1.3 only (rustls has no older).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
