//! A client's request body on its way upstream, held to nginx's limits: no more than
//! `client_max_body_size` bytes, and no pause longer than `client_body_timeout` between reads.
//! Crossing either fails the upstream request with a [`ClientBodyError`] the pipeline answers
//! with 413 or 408.
//!
//! A plugin may ask for the body before the upstream is called ([`Inbound::read_for_plugins`]):
//! it is then read (under the same limits, and no further than the plugin asked), kept, and sent
//! upstream ahead of whatever the client had not sent yet.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use tokio::time::Sleep;

use super::phases::BodyState;
use super::upstream::BoxError;

#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    #[error("the request body is larger than nginx_http_client_max_body_size ({limit} bytes)")]
    TooLarge { limit: u64 },
    #[error("the client sent nothing of its body for nginx_http_client_body_timeout {0:?}")]
    Stalled(Duration),
    #[error("reading the request body: {0}")]
    Broken(String),
}

impl ClientBodyError {
    /// The answer to the client.
    pub fn status(&self) -> hyper::StatusCode {
        match self {
            ClientBodyError::TooLarge { .. } => hyper::StatusCode::PAYLOAD_TOO_LARGE,
            ClientBodyError::Stalled(_) => hyper::StatusCode::REQUEST_TIMEOUT,
            ClientBodyError::Broken(_) => hyper::StatusCode::BAD_REQUEST,
        }
    }
}

/// The most of a request body the gateway holds in memory for plugins, whatever they ask.
pub const PLUGIN_BODY_CAP: u64 = 64 << 20;

/// The request body from the client: what was read for plugins (or put in place by one), then
/// the rest of the stream.
pub struct Inbound {
    read: Option<Bytes>,
    rest: Option<Incoming>,
}

impl Inbound {
    pub fn new(body: Incoming) -> Inbound {
        Inbound { read: None, rest: Some(body) }
    }

    /// Reads the body for the plugins, at most `max` bytes (capped at [`PLUGIN_BODY_CAP`]), with
    /// `client_body_timeout` between reads and `client_max_body_size` over all. A body declared
    /// longer than `max` is not read at all.
    pub async fn read_for_plugins(
        &mut self,
        max: u64,
        declared: Option<u64>,
        limit: Option<u64>,
        timeout: Duration,
    ) -> Result<BodyState, ClientBodyError> {
        let max = max.min(PLUGIN_BODY_CAP);
        if let Some(limit) = limit
            && declared.is_some_and(|d| d > limit)
        {
            return Err(ClientBodyError::TooLarge { limit });
        }
        if let Some(declared) = declared.filter(|d| *d > max) {
            return Ok(BodyState::TooLarge(declared));
        }
        let mut buf = match self.read.take() {
            Some(read) => Vec::from(read),
            None => Vec::new(),
        };
        let mut complete = true;
        if let Some(rest) = self.rest.as_mut() {
            loop {
                if buf.len() as u64 > max {
                    complete = false;
                    break;
                }
                let frame = match tokio::time::timeout(timeout, rest.frame()).await {
                    Err(_) => return Err(ClientBodyError::Stalled(timeout)),
                    Ok(None) => break,
                    Ok(Some(Err(e))) => return Err(ClientBodyError::Broken(e.to_string())),
                    Ok(Some(Ok(frame))) => frame,
                };
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
                if let Some(limit) = limit
                    && buf.len() as u64 > limit
                {
                    return Err(ClientBodyError::TooLarge { limit });
                }
            }
            if complete {
                self.rest = None;
            }
        }
        let len = buf.len() as u64;
        let read = Bytes::from(buf);
        self.read = Some(read.clone());
        Ok(if complete { BodyState::Complete(read) } else { BodyState::TooLarge(declared.unwrap_or(len)) })
    }

    /// Sends `body` upstream instead of the client's.
    pub fn replace(&mut self, body: Bytes) {
        self.read = Some(body);
        self.rest = None;
    }
}

pub struct ClientBody {
    inner: Inbound,
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
    pub fn new(inner: Inbound, limit: Option<u64>, timeout: Duration, counter: Option<Arc<AtomicU64>>) -> Self {
        ClientBody { inner, limit, received: 0, timeout, stall: None, counter }
    }
}

impl Body for ClientBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let polled = match (this.inner.read.take(), this.inner.rest.as_mut()) {
            (Some(read), _) => Poll::Ready(Some(Ok(Frame::data(read)))),
            (None, Some(rest)) => Pin::new(rest).poll_frame(cx),
            (None, None) => Poll::Ready(None),
        };
        match polled {
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
        self.inner.read.is_none() && self.inner.rest.as_ref().is_none_or(|rest| rest.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let read = self.inner.read.as_ref().map_or(0, |r| r.len() as u64);
        match &self.inner.rest {
            None => SizeHint::with_exact(read),
            Some(rest) if read == 0 => rest.size_hint(),
            Some(rest) => {
                let inner = rest.size_hint();
                let mut hint = SizeHint::new();
                hint.set_lower(inner.lower().saturating_add(read));
                if let Some(upper) = inner.upper() {
                    hint.set_upper(upper.saturating_add(read));
                }
                hint
            }
        }
    }
}
