//! Connections to upstreams: one keep-alive pool shared by every request (HTTP/1.1, as Kong speaks
//! to upstreams), connects bounded by the service's `connect_timeout`, and response bodies that
//! hand their connection back to the pool when they end and fail when a read stalls.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::time::Sleep;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Bodies as they travel through the proxy, in either direction.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Idle connections kept per upstream address.
const MAX_IDLE_PER_ADDRESS: usize = 128;
/// An idle connection older than this is closed rather than reused (Kong's default is 60 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle connections by pool key, with when they went idle.
type IdleConnections = HashMap<String, Vec<(Upstream, Instant)>>;

/// A connection to an upstream, ready to send a request.
pub struct Upstream {
    pub sender: SendRequest<ProxyBody>,
    /// The connection's write timeout in milliseconds, set by whichever service uses it.
    write_timeout: Arc<AtomicU64>,
}

impl Upstream {
    /// Kong's `write_timeout`: the longest a write to the upstream may wait.
    pub fn set_write_timeout(&self, timeout: Duration) {
        self.write_timeout.store(timeout.as_millis().try_into().unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

pub struct Pool {
    idle: Mutex<IdleConnections>,
    /// For `https` services: verifies upstream certificates against `lua_ssl_trusted_certificate`.
    tls: Arc<rustls::ClientConfig>,
}

/// A connection to an upstream, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Io for T {}

/// Where a pooled connection goes: the address, and for TLS the server name it was verified for.
pub fn pool_key(address: &str, tls_name: Option<&ServerName<'static>>) -> String {
    match tls_name {
        None => address.to_string(),
        Some(name) => format!("{address} tls {}", name.to_str()),
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
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Pool {
        Pool { idle: Mutex::default(), tls }
    }

    /// A ready idle connection to `address`, if one is kept.
    pub fn checkout(&self, key: &str) -> Option<Upstream> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(key)?;
        while let Some((upstream, since)) = list.pop() {
            if upstream.sender.is_ready() && since.elapsed() < IDLE_TIMEOUT {
                return Some(upstream);
            }
        }
        None
    }

    pub fn checkin(&self, key: String, upstream: Upstream) {
        if !upstream.sender.is_ready() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(key).or_default();
        if list.len() < MAX_IDLE_PER_ADDRESS {
            list.push((upstream, Instant::now()));
        }
    }

    /// A new connection to `address` (`host:port`), over TLS verified for `tls_name` when given.
    /// `timeout` bounds the TCP connect and the TLS handshake together.
    pub async fn connect(
        &self,
        address: &str,
        tls_name: Option<&ServerName<'static>>,
        timeout: Duration,
    ) -> Result<Upstream, ConnectError> {
        let stream = match tokio::time::timeout(timeout, self.open(address, tls_name)).await {
            Ok(result) => result?,
            Err(_) => return Err(ConnectError::Timeout { address: address.into(), timeout }),
        };
        let write_timeout = Arc::new(AtomicU64::new(u64::MAX));
        let stream = WriteDeadline { inner: stream, timeout: write_timeout.clone(), stalled: None };
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
        Ok(Upstream { sender, write_timeout })
    }

    async fn open(&self, address: &str, tls_name: Option<&ServerName<'static>>) -> Result<Box<dyn Io>, ConnectError> {
        let stream = tokio::net::TcpStream::connect(address)
            .await
            .map_err(|source| ConnectError::Io { address: address.into(), source })?;
        let _ = stream.set_nodelay(true);
        let Some(name) = tls_name else { return Ok(Box::new(stream)) };
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone()).connect(name.clone(), stream).await.map_err(
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

/// An upstream connection whose writes fail once one has waited longer than the write timeout
/// (Kong's `write_timeout`: the upstream stopped reading what we send).
struct WriteDeadline {
    inner: Box<dyn Io>,
    timeout: Arc<AtomicU64>,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl WriteDeadline {
    fn pending_write<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let timeout = Duration::from_millis(self.timeout.load(Ordering::Relaxed));
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stalled.as_mut().poll(cx));
        self.stalled = None;
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("the upstream accepted nothing for write_timeout {timeout:?}"),
        )))
    }

    fn wrote<T>(&mut self, result: Poll<std::io::Result<T>>, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        match result {
            Poll::Pending => self.pending_write(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }
}

impl tokio::io::AsyncRead for WriteDeadline {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for WriteDeadline {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.wrote(result, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
