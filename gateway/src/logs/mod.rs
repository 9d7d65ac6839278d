//! The node's logs other than `tracing`'s: access logs, one line per request, for the proxy, the
//! Admin API and the status API (`proxy_access_log`, `admin_access_log`, `status_access_log`).
//! A low part: it uses only [`crate::workers`], so every listener can log through it.

pub mod access;

pub use access::{AccessLog, Destination, Format, Sink};
