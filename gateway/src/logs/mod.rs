//! The node's logs: access logs, one line per request, for the proxy, the Admin API and the
//! status API (`proxy_access_log`, `admin_access_log`, `status_access_log`), and where `tracing`'s
//! messages go (`proxy_error_log`, `admin_error_log`, `status_error_log`). A low part: it uses only
//! [`crate::workers`], so every listener can log through it.

pub mod access;
pub mod error;

pub use access::{AccessLog, Destination, Format, RequestId, Sink};
pub use error::ErrorLogs;
