//! Binds the sockets a listen spec asks for, with every socket flag of the spec set on it:
//! `reuseport`, `backlog=`, `ipv6only=` and `so_keepalive=` (accepted connections inherit the
//! keep-alive settings of the listening socket). Flags that cannot be honoured never get here:
//! `conf::listen` refuses them when the configuration is read.

use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};
use tokio::net::TcpListener;

use crate::conf::ListenSpec;
use crate::conf::listen::KeepAlive;

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
/// The listener is not yet tied to a runtime: [`into_tokio`] does that on the runtime that serves it.
pub async fn bind(key: &'static str, spec: &ListenSpec) -> Result<std::net::TcpListener, BindError> {
    let fail = |source| BindError { key, spec: spec.to_string(), source };
    let addr = match spec.socket_addr() {
        Some(addr) => addr,
        None => resolve(&spec.host, spec.port).await.map_err(fail)?,
    };
    socket(spec, addr).map_err(fail)
}

/// The listener as a tokio one, registered with the runtime `handle` drives.
pub fn into_tokio(
    handle: &tokio::runtime::Handle,
    key: &'static str,
    spec: &ListenSpec,
    listener: std::net::TcpListener,
) -> Result<TcpListener, BindError> {
    let _on = handle.enter();
    TcpListener::from_std(listener).map_err(|source| BindError { key, spec: spec.to_string(), source })
}

fn socket(spec: &ListenSpec, addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if spec.reuseport {
        socket.set_reuse_port(true)?;
    }
    match (spec.ipv6only, addr) {
        (Some(only), SocketAddr::V6(_)) => socket.set_only_v6(only)?,
        // nginx's default: an IPv6 listener takes IPv6 only. Linux's own default (dual stack)
        // would let a `[::]` listener take IPv4 clients too, unasked.
        (None, SocketAddr::V6(_)) => socket.set_only_v6(true)?,
        (Some(_), SocketAddr::V4(v4)) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("the `ipv6only` flag applies to IPv6 addresses only, and {} is {}", spec.host, v4.ip()),
            ));
        }
        (None, SocketAddr::V4(_)) => {}
    }
    match spec.so_keepalive {
        None => {}
        Some(KeepAlive::Off) => socket.set_keepalive(false)?,
        Some(KeepAlive::On) => socket.set_keepalive(true)?,
        Some(KeepAlive::Tuned { idle, interval, count }) => {
            let mut params = TcpKeepalive::new();
            if let Some(idle) = idle {
                params = params.with_time(idle);
            }
            if let Some(interval) = interval {
                params = params.with_interval(interval);
            }
            if let Some(count) = count {
                params = params.with_retries(count);
            }
            socket.set_tcp_keepalive(&params)?;
        }
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    let backlog = spec.backlog.unwrap_or(DEFAULT_BACKLOG);
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    Ok(socket.into())
}

async fn resolve(host: &str, port: u16) -> std::io::Result<SocketAddr> {
    tokio::net::lookup_host((host, port))
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host} resolves to no address")))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use socket2::SockRef;

    use super::*;
    use crate::conf::listen::parse_listen;

    /// Binds `spec`, where port 0 means any free port.
    async fn bound(spec: &str) -> Result<std::net::TcpListener, BindError> {
        let any = spec.contains(":0");
        let mut parsed = parse_listen(&spec.replacen(":0", ":1", 1)).unwrap();
        if any {
            parsed.port = 0;
        }
        bind("admin_listen", &parsed).await
    }

    #[tokio::test]
    async fn keepalive_settings_reach_accepted_connections() {
        let listener = bound("127.0.0.1:0 so_keepalive=75:15:4").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        listener.set_nonblocking(false).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let sock = SockRef::from(&accepted);
        assert!(sock.keepalive().unwrap());
        assert_eq!(sock.tcp_keepalive_time().unwrap(), Duration::from_secs(75));
        assert_eq!(sock.tcp_keepalive_interval().unwrap(), Duration::from_secs(15));
        assert_eq!(sock.tcp_keepalive_retries().unwrap(), 4);

        let plain = bound("127.0.0.1:0").await.unwrap();
        let _client = std::net::TcpStream::connect(plain.local_addr().unwrap()).unwrap();
        plain.set_nonblocking(false).unwrap();
        assert!(!SockRef::from(&plain.accept().unwrap().0).keepalive().unwrap());
    }

    #[tokio::test]
    async fn reuseport_and_ipv6only_are_set_on_the_socket() {
        let first = bound("127.0.0.1:0 reuseport").await.unwrap();
        let port = first.local_addr().unwrap().port();
        assert!(bound(&format!("127.0.0.1:{port} reuseport")).await.is_ok(), "reuseport lets a second socket bind");
        let plain = bound("127.0.0.1:0").await.unwrap();
        let port = plain.local_addr().unwrap().port();
        assert!(bound(&format!("127.0.0.1:{port}")).await.is_err(), "without reuseport the port is taken");

        // On the wildcard address only: Linux makes a socket bound to one IPv6 address v6-only anyway.
        for (flag, only) in [("on", true), ("off", false)] {
            let v6 = bound(&format!("[::]:0 ipv6only={flag}")).await.unwrap();
            assert_eq!(SockRef::from(&v6).only_v6().unwrap(), only);
        }
        // Without the flag, as nginx: v6-only (read back on a loopback socket, which reports the
        // option as set even though one address makes it moot).
        let v6 = bound("[::1]:0").await.unwrap();
        assert!(SockRef::from(&v6).only_v6().unwrap(), "ipv6only=on is the default");
        // A name that resolves to IPv4 cannot honour ipv6only: the bind says so.
        let mut spec = parse_listen("localhost:1").unwrap();
        spec.host = "127.0.0.1.nip.invalid".into();
        spec.ipv6only = Some(true);
        let err = socket(&spec, "127.0.0.1:0".parse().unwrap()).unwrap_err();
        assert!(err.to_string().contains("`ipv6only` flag applies to IPv6 addresses only"), "{err}");
    }
}
