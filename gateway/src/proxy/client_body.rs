//! A client's request body on its way upstream, held to nginx's limits: no more than
//! `client_max_body_size` bytes, and no pause longer than `client_body_timeout` between reads.
//! Crossing either fails the upstream request with a [`ClientBodyError`] the pipeline answers
//! with 413 or 408.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use super::upstream::BoxError;

#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    #[error("the request body is larger than nginx_http_client_max_body_size ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("the client sent nothing of its body for nginx_http_client_body_timeout {0:?}")]
    Stalled(Duration),
}

pub struct ClientBody {
    inner: Incoming,
    limit: Option<u64>,
    received: u64,
    timeout: Duration,
    /// Armed at the first read: the wait before it (connecting upstream, `100-continue`) is not
    /// the client's.
    stall: Option<Pin<Box<Sleep>>>,
    /// Where the bytes received so far are published, when someone (the log phase) reads them.
    counter: Option<Arc<AtomicU64>>,
}

impl ClientBody {
    pub fn new(inner: Incoming, limit: Option<u64>, timeout: Duration, counter: Option<Arc<AtomicU64>>) -> Self {
        ClientBody { inner, limit, received: 0, timeout, stall: None, counter }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let len = frame.data_ref().map_or(0, |d| d.len() as u64);
                this.received = this.received.saturating_add(len);
                if let Some(counter) = &this.counter {
                    counter.store(this.received, Ordering::Relaxed);
                }
                if let Some(limit) = this.limit
                    && this.received > limit
                {
                    return Poll::Ready(Some(Err(Box::new(ClientBodyError::TooLarge { limit }))));
                }
                if let Some(stall) = this.stall.as_mut() {
                    stall.as_mut().reset(tokio::time::Instant::now() + this.timeout);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let timeout = this.timeout;
                let stall = this.stall.get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                ready!(stall.as_mut().poll(cx));
                Poll::Ready(Some(Err(Box::new(ClientBodyError::Stalled(this.timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
