//! A client connection's clocks, below HTTP: an idle keep-alive connection is closed after
//! `keepalive_timeout`, and a client that stops reading its response is cut after
//! `send_timeout`. hyper times the request head itself (`header_read_timeout`); the body's pauses
//! are timed by the proxy, which can still answer 408.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, ready};

use crate::io::WriteDeadline;
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// What the connection is doing, shared by its I/O and its requests.
#[derive(Debug, Default)]
pub struct Activity {
    /// Requests whose response has not been sent whole yet.
    in_flight: AtomicUsize,
    /// Upgraded to a tunnel (WebSocket): the tunnel has its own idle timeout.
    tunnel: AtomicBool,
}

impl Activity {
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// The connection now carries a tunnel; keep-alive idleness no longer applies.
    pub fn upgraded(&self) {
        self.tunnel.store(true, Ordering::Relaxed);
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && !self.tunnel.load(Ordering::Relaxed)
    }
}

/// One request in flight; dropped when its response body has been sent (or given up).
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request counted as in flight until it is done.
pub struct Counted<B> {
    inner: B,
    _in_flight: InFlight,
}

impl<B> Counted<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Self {
        Counted { inner, _in_flight: in_flight }
    }
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A client stream with the keep-alive and send clocks.
pub struct ClientIo<T> {
    inner: WriteDeadline<T>,
    activity: Arc<Activity>,
    keepalive: Duration,
    idle: Option<Pin<Box<Sleep>>>,
}

impl<T> ClientIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>, keepalive: Duration, send_timeout: Duration) -> Self {
        let inner = WriteDeadline::fixed(inner, send_timeout, "the client", "send_timeout");
        ClientIo { inner, activity, keepalive, idle: None }
    }

    pub fn get_ref(&self) -> &T {
        self.inner.get_ref()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ClientIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Pending if this.activity.idle() => {
                let keepalive = this.keepalive;
                let idle = this.idle.get_or_insert_with(|| Box::pin(tokio::time::sleep(keepalive)));
                ready!(idle.as_mut().poll(cx));
                this.idle = None;
                // End of stream: hyper closes an idle connection quietly.
                Poll::Ready(Ok(()))
            }
            Poll::Pending => {
                this.idle = None;
                Poll::Pending
            }
            done => {
                this.idle = None;
                done
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for ClientIo<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
