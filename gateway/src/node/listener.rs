//! Binds the sockets a listen spec asks for.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpSocket};

use crate::conf::ListenSpec;

/// nginx's default backlog on Linux, used when a spec gives none.
const DEFAULT_BACKLOG: u32 = 511;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {spec} ({key}): {source}")]
pub struct BindError {
    pub key: &'static str,
    pub spec: String,
    #[source]
    pub source: std::io::Error,
}

/// Binds `spec`, resolving a host name to its first address. `key` names the setting for errors.
pub async fn bind(key: &'static str, spec: &ListenSpec) -> Result<TcpListener, BindError> {
    let fail = |source| BindError { key, spec: spec.to_string(), source };
    let addr = match spec.socket_addr() {
        Some(addr) => addr,
        None => resolve(&spec.host, spec.port).await.map_err(fail)?,
    };
    let socket = if addr.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(fail)?;
    socket.set_reuseaddr(true).map_err(fail)?;
    if spec.reuseport {
        socket.set_reuseport(true).map_err(fail)?;
    }
    socket.bind(addr).map_err(fail)?;
    socket.listen(spec.backlog.unwrap_or(DEFAULT_BACKLOG)).map_err(fail)
}

async fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host} resolves to no address")))
}
