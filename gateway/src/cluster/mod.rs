//! Both ends of the CP ↔ DP link: the wire protocol, the control plane's listener and registry of
//! data planes, the data plane's dialer and its configuration cache, and the TLS they share.

pub mod cache;
pub mod check;
pub mod cp;
pub mod dial;
pub mod dp;
pub mod protocol;
pub mod telemetry;
pub mod tls;
