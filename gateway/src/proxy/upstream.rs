//! Connections to upstreams: a keep-alive pool (HTTP/1.1, as Kong speaks to upstreams) with one
//! shard per proxy worker thread, so a connection's requests reuse upstream connections driven on
//! their own thread; connects bounded by the service's `connect_timeout`; and response bodies that
//! hand their connection back to the pool when they end and fail when a read stalls.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::time::Instant;

use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::time::Sleep;

use crate::io::WriteDeadline;
use crate::workers::PerWorker;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Bodies as they travel through the proxy, in either direction.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Every this many check-ins, connections past the idle timeout or closed are dropped, and with
/// them the addresses left with none: the map does not grow with every address ever used.
const SWEEP_EVERY: u64 = 256;

/// Idle connections kept in all by one shard (at least; a larger `upstream_keepalive_pool_size`
/// raises it): past it a connection is closed rather than kept (whatever the number of addresses:
/// with `preserve_host` on an https service the client's Host is part of the key).
const MAX_IDLE: usize = 4096;

pub use crate::conf::Keepalive;

/// Whether a connection idle since `since` may still be used.
fn fresh(keepalive: &Keepalive, since: Instant) -> bool {
    keepalive.idle_timeout.is_none_or(|timeout| since.elapsed() < timeout)
}

/// Idle connections by pool key, with when they went idle, and how many there are in all.
#[derive(Default)]
struct IdleConnections {
    by_key: HashMap<String, Vec<(Upstream, Instant)>>,
    count: usize,
    /// Counts check-ins, to sweep the map now and then.
    checkins: u64,
}

impl IdleConnections {
    fn sweep(&mut self, keepalive: &Keepalive) {
        let mut count = 0;
        self.by_key.retain(|_, list| {
            list.retain(|(upstream, since)| upstream.sender.is_ready() && fresh(keepalive, *since));
            count += list.len();
            !list.is_empty()
        });
        self.count = count;
    }
}

/// A connection to an upstream, ready to send a request.
pub struct Upstream {
    pub sender: SendRequest<ProxyBody>,
    /// Taken from the pool (it served a request before), rather than new.
    pub reused: bool,
    /// The connection's write timeout in milliseconds, set by whichever service uses it.
    write_timeout: Arc<AtomicU64>,
    /// Requests it has served.
    served: u64,
}

impl Upstream {
    /// Kong's `write_timeout`: the longest a write to the upstream may wait.
    pub fn set_write_timeout(&self, timeout: Duration) {
        self.write_timeout.store(crate::io::millis(timeout), Ordering::Relaxed);
    }
}

pub struct Pool {
    /// Idle connections per proxy worker thread (and one set for every other thread).
    idle: PerWorker<IdleConnections>,
    keepalive: Keepalive,
    /// The TLS clients for `https` services.
    pub tls: Arc<crate::tls::trust::UpstreamTls>,
    /// Upstream host names to addresses.
    pub resolver: Arc<crate::dns::Resolver>,
}

/// How upstream connections are made and kept.
pub struct Connector {
    /// The TLS clients that verify `https` services (and present client certificates).
    pub tls: Arc<crate::tls::trust::UpstreamTls>,
    /// Kong's keep-alive settings.
    pub keepalive: Keepalive,
    /// The caching resolver for upstream host names.
    pub resolver: Arc<crate::dns::Resolver>,
}

/// A connection to an upstream, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

/// How a TLS connection to an upstream is made: the name verified, and the client (the node's,
/// or a service's own with its CA and client certificates).
pub struct TlsTo<'a> {
    pub name: &'a ServerName<'static>,
    pub client: &'a Arc<rustls::ClientConfig>,
    /// The service whose own client it is; `None`: the node's.
    pub owner: Option<uuid::Uuid>,
}

/// Where a pooled connection goes: the address, and for TLS the server name it was verified for
/// and whose TLS client made it (a service's own CA and client certificate are not shared).
pub fn pool_key(address: &str, tls: Option<&TlsTo<'_>>) -> String {
    match tls {
        None => address.to_string(),
        Some(TlsTo { name, owner: None, .. }) => format!("{address} tls {}", name.to_str()),
        Some(TlsTo { name, owner: Some(owner), .. }) => format!("{address} tls {} of {owner}", name.to_str()),
    }
}

/// Why no connection could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to {address} timed out after {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    #[error("connecting to {address}: {source}")]
    Io { address: String, source: std::io::Error },
    #[error("TLS handshake with {address} as {name}: {source}")]
    Tls { address: String, name: String, source: std::io::Error },
    #[error("HTTP handshake with {address}: {source}")]
    Handshake { address: String, source: hyper::Error },
}

impl Pool {
    /// A pool for `workers` proxy worker threads.
    pub fn new(connector: Connector, workers: usize) -> Pool {
        let Connector { tls, keepalive, resolver } = connector;
        Pool { idle: PerWorker::new(workers), keepalive, tls, resolver }
    }

    /// A ready idle connection to `address`, if this thread's shard keeps one.
    pub fn checkout(&self, key: &str) -> Option<Upstream> {
        let mut idle = self.idle.lock();
        let list = idle.by_key.get_mut(key)?;
        let mut found = None;
        let mut taken = 0;
        while let Some((mut upstream, since)) = list.pop() {
            taken += 1;
            if upstream.sender.is_ready() && fresh(&self.keepalive, since) {
                upstream.reused = true;
                found = Some(upstream);
                break;
            }
        }
        if list.is_empty() {
            idle.by_key.remove(key);
        }
        idle.count -= taken;
        found
    }

    /// A connection that served a request whole, back for the next one: kept unless it is done
    /// (closed, served `max_requests`) or the pool is full; else dropped, which closes it.
    pub fn checkin(&self, key: String, mut upstream: Upstream) {
        upstream.served += 1;
        let k = &self.keepalive;
        if !upstream.sender.is_ready() || k.pool_size == 0 || (k.max_requests != 0 && upstream.served >= k.max_requests)
        {
            return;
        }
        let most = MAX_IDLE.max(k.pool_size);
        let mut idle = self.idle.lock();
        idle.checkins += 1;
        if idle.checkins.is_multiple_of(SWEEP_EVERY) || idle.count >= most {
            idle.sweep(k);
        }
        if idle.count >= most {
            return;
        }
        let list = idle.by_key.entry(key).or_default();
        if list.len() < k.pool_size {
            list.push((upstream, Instant::now()));
            idle.count += 1;
        }
    }

    /// How many upstream addresses have idle connections kept in this thread's shard.
    pub fn addresses(&self) -> usize {
        self.idle.lock().by_key.len()
    }

    /// A new connection to `peer` (named `address` in errors), over TLS as `tls` says when given. `timeout` bounds the TCP connect and the TLS handshake together.
    pub async fn connect(
        &self,
        peer: SocketAddr,
        address: &str,
        tls: Option<&TlsTo<'_>>,
        timeout: Duration,
    ) -> Result<Upstream, ConnectError> {
        let stream = match tokio::time::timeout(timeout, self.open(peer, address, tls)).await {
            Ok(result) => result?,
            Err(_) => return Err(ConnectError::Timeout { address: address.into(), timeout }),
        };
        let write_timeout = Arc::new(AtomicU64::new(u64::MAX));
        let stream = WriteDeadline::new(stream, write_timeout.clone(), "the upstream", "write_timeout");
        let (sender, conn) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake { address: address.into(), source })?;
        let peer = address.to_string();
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(upstream = %peer, %error, "upstream connection ended with an error");
            }
        });
        Ok(Upstream { sender, reused: false, write_timeout, served: 0 })
    }

    async fn open(
        &self,
        peer: SocketAddr,
        address: &str,
        tls: Option<&TlsTo<'_>>,
    ) -> Result<Box<dyn Io>, ConnectError> {
        let stream = tokio::net::TcpStream::connect(peer)
            .await
            .map_err(|source| ConnectError::Io { address: address.into(), source })?;
        let _ = stream.set_nodelay(true);
        let Some(TlsTo { name, client, .. }) = tls else { return Ok(Box::new(stream)) };
        let tls = tokio_rustls::TlsConnector::from((*client).clone()).connect((*name).clone(), stream).await.map_err(
            |source| ConnectError::Tls { address: address.into(), name: name.to_str().into_owned(), source },
        )?;
        Ok(Box::new(tls))
    }
}

/// An upstream response body: fails when no data arrives within `read_timeout` between reads, and
/// returns its connection to the pool once it has been read to the end.
pub struct PooledBody {
    inner: Incoming,
    give_back: Option<(Arc<Pool>, String, Upstream)>,
    read_timeout: Duration,
    stall: Pin<Box<Sleep>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing for {0:?} while sending the response body")]
pub struct ReadTimeout(Duration);

impl PooledBody {
    pub fn new(inner: Incoming, pool: Arc<Pool>, key: String, upstream: Upstream, read_timeout: Duration) -> Self {
        let mut body = PooledBody {
            inner,
            give_back: Some((pool, key, upstream)),
            read_timeout,
            stall: Box::pin(tokio::time::sleep(read_timeout)),
        };
        if body.inner.is_end_stream() {
            body.finish();
        }
        body
    }

    fn finish(&mut self) {
        if let Some((pool, key, upstream)) = self.give_back.take() {
            pool.checkin(key, upstream);
        }
    }
}

impl Body for PooledBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let deadline = tokio::time::Instant::now() + this.read_timeout;
                this.stall.as_mut().reset(deadline);
                if this.inner.is_end_stream() {
                    this.finish();
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.give_back = None;
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Pending => {
                ready!(this.stall.as_mut().poll(cx));
                this.give_back = None;
                Poll::Ready(Some(Err(Box::new(ReadTimeout(this.read_timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn addresses_whose_connections_expired_leave_the_pool() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let peer = listener.local_addr().unwrap();
        let address = peer.to_string();
        let held = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                open.push(stream);
            }
        });
        let tls = Arc::new(crate::tls::trust::UpstreamTls::new(&[], None).unwrap());
        let keepalive = Keepalive { idle_timeout: Some(Duration::from_secs(1)), ..Keepalive::default() };
        let resolver = Arc::new(
            crate::dns::Resolver::new(crate::dns::Settings { hostsfile: None, ..Default::default() }).unwrap(),
        );
        let pool = Pool::new(Connector { tls, keepalive, resolver }, 2);
        let timeout = Duration::from_secs(5);
        let connect = || async {
            let mut upstream = pool.connect(peer, &address, None, timeout).await.unwrap();
            upstream.sender.ready().await.unwrap();
            upstream
        };
        for i in 0..10 {
            pool.checkin(format!("gone-{i}"), connect().await);
        }
        assert_eq!(pool.addresses(), 10);
        tokio::time::advance(Duration::from_secs(2)).await;
        let fresh = connect().await;
        assert!(pool.checkout("gone-0").is_none(), "expired");
        assert_eq!(pool.addresses(), 9, "an address checked out empty is forgotten");
        // Check-ins go on on another address until the next sweep.
        pool.checkin("fresh".into(), fresh);
        for _ in 0..SWEEP_EVERY {
            let mut upstream = pool.checkout("fresh").unwrap();
            upstream.sender.ready().await.unwrap();
            pool.checkin("fresh".into(), upstream);
        }
        assert_eq!(pool.addresses(), 1, "the sweep dropped every expired address");
        held.abort();
    }
}
