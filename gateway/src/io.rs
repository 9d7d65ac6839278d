//! Byte-stream helpers shared by both ends of the proxy (clients and upstreams) and the cluster.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// A stream whose writes fail once one has waited longer than its timeout: the peer stopped
/// reading (nginx's `send_timeout` towards clients, Kong's `write_timeout` towards upstreams).
/// The timeout may change while the stream lives (a pooled upstream connection serves services
/// with different timeouts).
pub struct WriteDeadline<T> {
    inner: T,
    timeout: Arc<AtomicU64>,
    /// Name the peer and the setting in the error: "the upstream", "write_timeout".
    peer: &'static str,
    setting: &'static str,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    /// `timeout` is in milliseconds.
    pub fn new(inner: T, timeout: Arc<AtomicU64>, peer: &'static str, setting: &'static str) -> Self {
        WriteDeadline { inner, timeout, peer, setting, stalled: None }
    }

    pub fn fixed(inner: T, timeout: Duration, peer: &'static str, setting: &'static str) -> Self {
        Self::new(inner, Arc::new(AtomicU64::new(millis(timeout))), peer, setting)
    }

    pub fn get_ref(&self) -> &T {
        &self.inner
    }

    fn pending_write<R>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<R>> {
        let timeout = Duration::from_millis(self.timeout.load(Ordering::Relaxed));
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(stalled.as_mut().poll(cx));
        self.stalled = None;
        Poll::Ready(Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("{} accepted nothing for {} {timeout:?}", self.peer, self.setting),
        )))
    }

    fn wrote<R>(&mut self, result: Poll<std::io::Result<R>>, cx: &mut Context<'_>) -> Poll<std::io::Result<R>> {
        match result {
            Poll::Pending => self.pending_write(cx),
            done => {
                self.stalled = None;
                done
            }
        }
    }
}

/// A duration in milliseconds for a [`WriteDeadline`]'s shared timeout.
pub fn millis(timeout: Duration) -> u64 {
    timeout.as_millis().try_into().unwrap_or(u64::MAX)
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
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

/// Pauses an accept loop after a failed accept (usually out of file descriptors, EMFILE/ENFILE):
/// the listener stays readable, so retrying at once would spin. The pause doubles from 5 ms to
/// 1 s while failures go on; the first failure of a run is logged, and the recovery.
pub struct AcceptBackoff {
    name: &'static str,
    delay: Duration,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(5);
    const MAX: Duration = Duration::from_secs(1);

    /// `name` is the listener's, for the log.
    pub fn new(name: &'static str) -> AcceptBackoff {
        AcceptBackoff { name, delay: Self::FIRST }
    }

    /// A connection was accepted: the run of failures, if any, is over.
    pub fn accepted(&mut self) {
        if self.delay > Self::FIRST {
            tracing::info!("{}: accepting connections again", self.name);
            self.delay = Self::FIRST;
        }
    }

    /// An accept failed: waits before the next one.
    pub async fn failed(&mut self, error: &std::io::Error) {
        if self.delay == Self::FIRST {
            tracing::warn!(%error, "{}: accept failed; backing off until connections can be accepted again", self.name);
        }
        tokio::time::sleep(self.delay).await;
        self.delay = (self.delay * 2).min(Self::MAX);
    }
}
