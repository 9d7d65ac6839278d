//! Connections to upstreams: one keep-alive pool shared by every request (HTTP/1.1, as Kong speaks
//! to upstreams), connects bounded by the service's `connect_timeout`, and response bodies that
//! hand their connection back to the pool when they end and fail when a read stalls.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use http_body_util::combinators::BoxBody;
use hyper::body::{Body, Bytes, Frame, Incoming};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::time::Sleep;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Bodies as they travel through the proxy, in either direction.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// Idle connections kept per upstream address.
const MAX_IDLE_PER_ADDRESS: usize = 128;
/// An idle connection older than this is closed rather than reused (Kong's default is 60 s).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle connections by `host:port`, with when they went idle.
type IdleConnections = HashMap<String, Vec<(SendRequest<ProxyBody>, Instant)>>;

#[derive(Default)]
pub struct Pool {
    idle: Mutex<IdleConnections>,
}

/// Why no connection could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connecting to {address} timed out after {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    #[error("connecting to {address}: {source}")]
    Io { address: String, source: std::io::Error },
    #[error("HTTP handshake with {address}: {source}")]
    Handshake { address: String, source: hyper::Error },
}

impl Pool {
    /// A ready idle connection to `address`, if one is kept.
    pub fn checkout(&self, address: &str) -> Option<SendRequest<ProxyBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(address)?;
        while let Some((sender, since)) = list.pop() {
            if sender.is_ready() && since.elapsed() < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    }

    pub fn checkin(&self, address: String, sender: SendRequest<ProxyBody>) {
        if !sender.is_ready() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(address).or_default();
        if list.len() < MAX_IDLE_PER_ADDRESS {
            list.push((sender, Instant::now()));
        }
    }

    /// A new connection to `address` (`host:port`).
    pub async fn connect(address: &str, timeout: Duration) -> Result<SendRequest<ProxyBody>, ConnectError> {
        let stream = match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(ConnectError::Io { address: address.into(), source }),
            Err(_) => return Err(ConnectError::Timeout { address: address.into(), timeout }),
        };
        let _ = stream.set_nodelay(true);
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
        Ok(sender)
    }
}

/// An upstream response body: fails when no data arrives within `read_timeout` between reads, and
/// returns its connection to the pool once it has been read to the end.
pub struct PooledBody {
    inner: Incoming,
    give_back: Option<(Arc<Pool>, String, SendRequest<ProxyBody>)>,
    read_timeout: Duration,
    stall: Pin<Box<Sleep>>,
}

#[derive(Debug, thiserror::Error)]
#[error("the upstream sent nothing for {0:?} while sending the response body")]
pub struct ReadTimeout(Duration);

impl PooledBody {
    pub fn new(
        inner: Incoming,
        pool: Arc<Pool>,
        address: String,
        sender: SendRequest<ProxyBody>,
        read_timeout: Duration,
    ) -> Self {
        let mut body = PooledBody {
            inner,
            give_back: Some((pool, address, sender)),
            read_timeout,
            stall: Box::pin(tokio::time::sleep(read_timeout)),
        };
        if body.inner.is_end_stream() {
            body.finish();
        }
        body
    }

    fn finish(&mut self) {
        if let Some((pool, address, sender)) = self.give_back.take() {
            pool.checkin(address, sender);
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
