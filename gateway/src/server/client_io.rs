//! A client connection's clocks, below HTTP. A request head must arrive whole within
//! `client_header_timeout` of its first byte; an idle keep-alive connection is closed after
//! `keepalive_timeout` (the two are separate: hyper's own head timer would start at idleness and
//! cap one by the other); a client that stops reading its response is cut after `send_timeout`,
//! whether its socket stops taking bytes (HTTP/1) or it stops granting flow-control window
//! (HTTP/2, where no write ever waits). The pauses of a request body are timed by the proxy, which
//! can still answer 408.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::{Body, Buf, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

use super::access_log::Record;
use crate::io::WriteDeadline;

/// What the connection is doing, shared by its I/O and its requests.
#[derive(Debug)]
pub struct Activity {
    /// Requests whose response has not been sent whole yet.
    in_flight: AtomicUsize,
    /// Requests begun so far: a head clock started before the latest one began is spent.
    begun: AtomicU64,
    /// Upgraded to a tunnel (WebSocket): the tunnel has its own idle timeout.
    tunnel: AtomicBool,
    /// When the connection was accepted; body clocks count milliseconds from it.
    epoch: Instant,
    /// The clocks of response bodies still sending (see [`Counted`]).
    bodies: Mutex<Vec<Weak<AtomicU64>>>,
    /// Wakes the send watchdog when a request begins.
    begins: Notify,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            begun: AtomicU64::new(0),
            tunnel: AtomicBool::new(false),
            epoch: Instant::now(),
            bodies: Mutex::new(Vec::new()),
            begins: Notify::new(),
        }
    }
}

impl Activity {
    pub fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.begun.fetch_add(1, Ordering::Relaxed);
        self.begins.notify_one();
        InFlight(self.clone())
    }

    /// The connection now carries a tunnel; keep-alive idleness no longer applies.
    pub fn upgraded(&self) {
        self.tunnel.store(true, Ordering::Relaxed);
    }

    fn idle(&self) -> bool {
        self.in_flight.load(Ordering::Relaxed) == 0 && !self.tunnel.load(Ordering::Relaxed)
    }

    fn now_ms(&self) -> u64 {
        crate::io::millis(self.epoch.elapsed())
    }

    fn watch(&self, clock: &Arc<AtomicU64>) {
        let mut bodies = self.bodies.lock().unwrap_or_else(|p| p.into_inner());
        bodies.retain(|b| b.strong_count() > 0);
        bodies.push(Arc::downgrade(clock));
    }

    /// Resolves when a response body has had a frame ready for longer than `send_timeout`
    /// without the connection taking it: the client stopped reading.
    pub async fn stalled(&self, send_timeout: Duration) {
        let tick = (send_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(5));
        let limit = crate::io::millis(send_timeout);
        loop {
            if self.in_flight.load(Ordering::Relaxed) == 0 {
                self.begins.notified().await;
                continue;
            }
            tokio::time::sleep(tick).await;
            let now = self.now_ms();
            let bodies = self.bodies.lock().unwrap_or_else(|p| p.into_inner());
            let stuck = bodies.iter().filter_map(Weak::upgrade).any(|clock| {
                let ready_at = clock.load(Ordering::Relaxed);
                ready_at != 0 && now.saturating_sub(ready_at - 1) > limit
            });
            if stuck {
                return;
            }
        }
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

/// A response body that keeps its request counted as in flight until it is done, and notes when
/// it last had a frame the connection did not come back for.
pub struct Counted<B> {
    inner: B,
    /// 0 while the body is not holding a frame ready; else 1 + the millisecond it produced one.
    ready_at: Arc<AtomicU64>,
    in_flight: InFlight,
    /// The request's access-log line, written when the body is done.
    record: Option<Record>,
}

impl<B> Counted<B> {
    pub fn new(inner: B, in_flight: InFlight, record: Option<Record>) -> Self {
        let ready_at = Arc::new(AtomicU64::new(0));
        in_flight.0.watch(&ready_at);
        Counted { inner, ready_at, in_flight, record }
    }
}

impl<B> Drop for Counted<B> {
    fn drop(&mut self) {
        if let Some(record) = self.record.take() {
            record.finish();
        }
    }
}

impl<B: Body + Unpin> Body for Counted<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        let ready_at = match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(record), Some(data)) = (this.record.as_mut(), frame.data_ref()) {
                    record.sent(data.remaining());
                }
                this.in_flight.0.now_ms() + 1
            }
            _ => 0,
        };
        this.ready_at.store(ready_at, Ordering::Relaxed);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The timeouts a [`ClientIo`] keeps.
#[derive(Debug, Clone, Copy)]
pub struct Clocks {
    pub header: Duration,
    pub keepalive: Duration,
    pub send: Duration,
}

/// A client stream with the head, keep-alive and send clocks.
pub struct ClientIo<T> {
    inner: WriteDeadline<T>,
    activity: Arc<Activity>,
    clocks: Clocks,
    idle: Option<Pin<Box<Sleep>>>,
    /// Started at the first byte read while no request is in flight, with the count of requests
    /// begun then: it ends when the next request begins.
    head: Option<(u64, Pin<Box<Sleep>>)>,
}

impl<T> ClientIo<T> {
    pub fn new(inner: T, activity: Arc<Activity>, clocks: Clocks) -> Self {
        let inner = WriteDeadline::fixed(inner, clocks.send, "the client", "send_timeout");
        ClientIo { inner, activity, clocks, idle: None, head: None }
    }

    pub fn get_ref(&self) -> &T {
        self.inner.get_ref()
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for ClientIo<T> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let begun = this.activity.begun.load(Ordering::Relaxed);
        if this.head.as_ref().is_some_and(|(at, _)| *at != begun) {
            this.head = None; // the head it timed has arrived
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.idle = None;
                    if this.activity.idle() && this.head.is_none() {
                        let header = this.clocks.header;
                        this.head = Some((begun, Box::pin(tokio::time::sleep(header))));
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.activity.idle() => {
                if let Some((_, head)) = this.head.as_mut() {
                    ready!(head.as_mut().poll(cx));
                    this.head = None;
                    return Poll::Ready(Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("no whole request head within client_header_timeout {:?}", this.clocks.header),
                    )));
                }
                let keepalive = this.clocks.keepalive;
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
            done => done,
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
