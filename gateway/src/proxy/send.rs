//! Sending the request upstream: a connection from the pool or a new one (Kong's retries over the
//! balancer's targets when connecting fails), the exchange under the service's timeouts, one safe
//! resend when a reused keep-alive connection turns out dead, and each failure classified by its
//! cause (413/408 the client's, 502/503/504 the upstream's).

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header;
use hyper::{Request, Response, StatusCode};
use rustls_pki_types::ServerName;

use super::answers::{Blame, Failure};
use super::client_body::ClientBodyError;
use super::context::Timings;
use super::snapshot::Snapshot;
use super::upstream::{ConnectError, Pool, PooledBody, ProxyBody, TlsTo, Upstream, pool_key};
use crate::entities::Service;

/// Connects (with retries across targets on connect failure) and sends the request. A request
/// that fails on a reused keep-alive connection before any of its response came back (the
/// upstream had closed the connection while it was idle) is sent once more on a fresh connection
/// when that is safe ([`retry_is_safe`]), as nginx does.
pub async fn send(
    pool: &Arc<Pool>,
    snapshot: &Snapshot,
    service: &Service,
    req: Request<ProxyBody>,
    timings: &mut Timings,
) -> Result<Response<ProxyBody>, Failure> {
    let tls_name = match service.protocol {
        crate::entities::Protocol::Https => Some(upstream_server_name(&req, service)?),
        _ => None,
    };
    let read_timeout = Duration::from_millis(u64::from(service.read_timeout));
    let tls = tls_name.as_ref().map(|name| match snapshot.upstream_tls.get(&service.id) {
        Some(client) => TlsTo { name, client, owner: Some(service.id) },
        None => TlsTo { name, client: &pool.tls.default, owner: None },
    });
    let (key, mut upstream) = connect(pool, snapshot, service, tls.as_ref(), true).await?;
    timings.upstream_connected = Some(Instant::now());
    if !upstream.reused {
        let result = exchange(&mut upstream, req, service, read_timeout).await;
        return finish(pool, key, upstream, result, read_timeout);
    }
    let (parts, body) = req.into_parts();
    let body = Reclaimable::new(body);
    let first = Request::from_parts(parts.clone(), body.clone().boxed());
    match exchange(&mut upstream, first, service, read_timeout).await {
        Err(Exchange::Failed(error)) if stale(&error) && retry_is_safe(&parts.method, &body, &error) => {
            tracing::debug!(upstream = %key, error = %error_chain(&error), "a reused connection was closed by the upstream; sending again on a new one");
            let (key, mut upstream) = connect(pool, snapshot, service, tls.as_ref(), false).await?;
            timings.upstream_connected = Some(Instant::now());
            let second = Request::from_parts(parts, body.boxed());
            let result = exchange(&mut upstream, second, service, read_timeout).await;
            finish(pool, key, upstream, result, read_timeout)
        }
        result => finish(pool, key, upstream, result, read_timeout),
    }
}

/// The response to hand on (its body returns the connection to the pool when it ends), or the
/// failure to answer.
fn finish(
    pool: &Arc<Pool>,
    key: String,
    upstream: Upstream,
    result: Result<Response<Incoming>, Exchange>,
    read_timeout: Duration,
) -> Result<Response<ProxyBody>, Failure> {
    match result {
        Ok(response) => {
            let (head, body) = response.into_parts();
            let body = if head.status == StatusCode::SWITCHING_PROTOCOLS {
                body.map_err(Into::into).boxed()
            } else {
                PooledBody::new(body, pool.clone(), key, upstream, read_timeout).boxed()
            };
            Ok(Response::from_parts(head, body))
        }
        Err(Exchange::Failed(error)) => Err(exchange_failure(&key, &error)),
        Err(Exchange::HeadTimeout) => Err(Failure::new(
            StatusCode::GATEWAY_TIMEOUT,
            Blame::Upstream,
            format!("{key}: no response within read_timeout {read_timeout:?}"),
        )),
    }
}

/// Whether a request that met a dead connection may be sent again: hyper never sent it; or a body
/// it has was not read at all (the upstream cannot have acted on half a request); or it has none
/// and its method is idempotent. A complete bodiless POST may have been acted on: never twice.
fn retry_is_safe(method: &hyper::Method, body: &Reclaimable, error: &hyper::Error) -> bool {
    use hyper::Method;
    let idempotent =
        matches!(*method, Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE);
    error.is_canceled()
        || match body {
            Reclaimable::Empty => idempotent,
            Reclaimable::Unread(_) => body.unread(),
        }
}

enum Exchange {
    Failed(hyper::Error),
    HeadTimeout,
}

/// Sends one request on `upstream` and waits for the response head.
async fn exchange(
    upstream: &mut Upstream,
    req: Request<ProxyBody>,
    service: &Service,
    read_timeout: Duration,
) -> Result<Response<Incoming>, Exchange> {
    upstream.set_write_timeout(Duration::from_millis(u64::from(service.write_timeout)));
    if req.body().is_end_stream() {
        // No body: read_timeout runs from now.
        return match tokio::time::timeout(read_timeout, upstream.sender.send_request(req)).await {
            Ok(response) => response.map_err(Exchange::Failed),
            Err(_) => Err(Exchange::HeadTimeout),
        };
    }
    // read_timeout runs from the end of the request body (a long upload is not a slow upstream).
    let sent = Arc::new(tokio::sync::Notify::new());
    let req = req.map(|body| NotifyEnd::new(body, sent.clone()).boxed());
    let head_deadline = async {
        sent.notified().await;
        tokio::time::sleep(read_timeout).await;
    };
    tokio::select! {
        response = upstream.sender.send_request(req) => response.map_err(Exchange::Failed),
        () = head_deadline => Err(Exchange::HeadTimeout),
    }
}

/// A connection for the request: an idle pooled one when `pooled` allows it, else a new one, with
/// Kong's retries over the balancer's targets when connecting fails.
async fn connect(
    pool: &Arc<Pool>,
    snapshot: &Snapshot,
    service: &Service,
    tls: Option<&TlsTo<'_>>,
    pooled: bool,
) -> Result<(String, Upstream), Failure> {
    let connect_timeout = Duration::from_millis(u64::from(service.connect_timeout));
    let balancer = snapshot.balancers.get(&service.host);
    if balancer.is_some_and(|b| b.is_empty()) {
        return Err(Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "failure to get a peer from the ring-balancer",
            detail: format!("upstream {} has no targets", service.host),
            blame: Blame::Upstream,
            quiet: false,
        });
    }
    let mut last = None;
    for _attempt in 0..=service.retries {
        let (host, port) = match balancer.and_then(|b| b.next()) {
            Some(target) => split_target(target),
            None => (service.host.as_str(), service.port),
        };
        let peer = match tokio::time::timeout(connect_timeout, pool.resolver.resolve(host, port)).await {
            Ok(Ok(peer)) => peer,
            Ok(Err(error)) => {
                last = Some(Unreached::Dns(host.to_string(), error));
                // A target that does not resolve is skipped; a service's own host has no other.
                if balancer.is_some() {
                    continue;
                }
                break;
            }
            Err(_) => {
                last = Some(Unreached::DnsTimeout(host.to_string(), connect_timeout));
                break;
            }
        };
        let key = pool_key(&peer.to_string(), tls);
        if pooled && let Some(upstream) = pool.checkout(&key) {
            return Ok((key, upstream));
        }
        let address = match host.parse::<std::net::IpAddr>() {
            Ok(_) => peer.to_string(),
            Err(_) if host.starts_with('[') => peer.to_string(),
            Err(_) => format!("{host}:{port} ({peer})"),
        };
        match pool.connect(peer, &address, tls, connect_timeout).await {
            Ok(upstream) => return Ok((key, upstream)),
            Err(e) => last = Some(Unreached::Connect(e)),
        }
    }
    Err(last.expect("at least one attempt was made").failure())
}

/// Why the last attempt to reach an upstream failed.
enum Unreached {
    /// The host name did not resolve.
    Dns(String, crate::dns::DnsError),
    /// Resolving it took all of `connect_timeout`.
    DnsTimeout(String, Duration),
    Connect(ConnectError),
}

impl Unreached {
    /// Kong's answers: a name that does not exist is 503 "name resolution failed"; a DNS failure
    /// 500 (Kong's "failed the initial dns/balancer resolve"); a connect timeout 504; any other
    /// connect failure 502.
    fn failure(self) -> Failure {
        let (status, message, detail) = match self {
            Unreached::Dns(host, error) if error.is_not_found() => {
                (StatusCode::SERVICE_UNAVAILABLE, "name resolution failed", format!("resolving {host}: {error}"))
            }
            Unreached::Dns(host, error) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed the initial dns/balancer resolve",
                format!("resolving {host}: {error}"),
            ),
            Unreached::DnsTimeout(host, after) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "failed the initial dns/balancer resolve",
                format!("resolving {host}: no answer within connect_timeout {after:?}"),
            ),
            Unreached::Connect(error @ ConnectError::Timeout { .. }) => {
                return Failure::new(StatusCode::GATEWAY_TIMEOUT, Blame::Upstream, error.to_string());
            }
            Unreached::Connect(error) => {
                return Failure::new(StatusCode::BAD_GATEWAY, Blame::Upstream, error.to_string());
            }
        };
        Failure { status, message, detail, blame: Blame::Upstream, quiet: false }
    }
}

/// A target's host and port (`host:port`, `[v6]:port`; Kong's 8000 when it has none).
fn split_target(target: &str) -> (&str, u16) {
    match target.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && (!host.contains(':') || host.starts_with('[')) => {
            match port.parse() {
                Ok(port) => (host, port),
                Err(_) => (target, 8000),
            }
        }
        _ => (target, 8000),
    }
}

/// Whether an exchange failed because the connection was gone before any response came back:
/// closed, reset or never written to.
fn stale(error: &hyper::Error) -> bool {
    if error.is_canceled() || error.is_incomplete_message() {
        return true;
    }
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::ConnectionAborted
            );
        }
        source = e.source();
    }
    false
}

/// The answer to a failed exchange: the client's body (413, 408), a write deadline (504) or a
/// bad upstream (502). Decided by the error's kinds, never its text.
fn exchange_failure(key: &str, error: &hyper::Error) -> Failure {
    let detail = format!("{key}: {}", error_chain(error));
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(body) = e.downcast_ref::<ClientBodyError>() {
            return Failure::new(body.status(), Blame::Client, detail);
        }
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return Failure::new(StatusCode::GATEWAY_TIMEOUT, Blame::Upstream, detail);
        }
        source = e.source();
    }
    Failure::new(StatusCode::BAD_GATEWAY, Blame::Upstream, detail)
}

/// A request body that can be handed to a second attempt as long as the first one never read it.
/// A bodiless request (the common case) needs no slot: a retry sends an empty body again.
#[derive(Clone)]
enum Reclaimable {
    Empty,
    Unread(Arc<std::sync::Mutex<Option<ProxyBody>>>),
}

impl Reclaimable {
    fn new(body: ProxyBody) -> Reclaimable {
        if body.is_end_stream() {
            Reclaimable::Empty
        } else {
            Reclaimable::Unread(Arc::new(std::sync::Mutex::new(Some(body))))
        }
    }

    /// Nothing of the body has been read yet (or there is none).
    fn unread(&self) -> bool {
        match self {
            Reclaimable::Empty => true,
            Reclaimable::Unread(slot) => slot.lock().is_ok_and(|slot| slot.is_some()),
        }
    }

    fn boxed(self) -> ProxyBody {
        match self {
            Reclaimable::Empty => http_body_util::Empty::new().map_err(|never| match never {}).boxed(),
            Reclaimable::Unread(slot) => TakeOnPoll { slot, body: None }.boxed(),
        }
    }
}

/// Takes the body out of its [`Reclaimable`] slot at the first poll.
struct TakeOnPoll {
    slot: Arc<std::sync::Mutex<Option<ProxyBody>>>,
    body: Option<ProxyBody>,
}

impl hyper::body::Body for TakeOnPoll {
    type Data = Bytes;
    type Error = super::upstream::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        if self.body.is_none() {
            let taken = self.slot.lock().ok().and_then(|mut slot| slot.take());
            match taken {
                Some(body) => self.body = Some(body),
                None => return std::task::Poll::Ready(None),
            }
        }
        let body = self.body.as_mut().expect("taken above");
        std::pin::Pin::new(body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_some_and(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        match &self.body {
            Some(body) => body.size_hint(),
            None => self.slot.lock().ok().and_then(|s| s.as_ref().map(|b| b.size_hint())).unwrap_or_default(),
        }
    }
}

/// An error with its causes, `: `-separated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(&format!(": {e}"));
        source = e.source();
    }
    text
}

/// A request body that signals when it has been sent whole.
struct NotifyEnd {
    inner: ProxyBody,
    sent: Option<Arc<tokio::sync::Notify>>,
}

impl NotifyEnd {
    fn new(inner: ProxyBody, sent: Arc<tokio::sync::Notify>) -> NotifyEnd {
        // An empty body may never be polled.
        if inner.is_end_stream() {
            sent.notify_one();
            return NotifyEnd { inner, sent: None };
        }
        NotifyEnd { inner, sent: Some(sent) }
    }
}

impl hyper::body::Body for NotifyEnd {
    type Data = Bytes;
    type Error = super::upstream::BoxError;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_frame(cx);
        if (matches!(polled, std::task::Poll::Ready(None)) || self.inner.is_end_stream())
            && let Some(sent) = self.sent.take()
        {
            sent.notify_one();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// The name an https upstream must prove: the host of the Host header sent to it (the service's
/// host, or the client's with `preserve_host`), as Kong sets the upstream SNI.
fn upstream_server_name(req: &Request<ProxyBody>, service: &Service) -> Result<ServerName<'static>, Failure> {
    let host = req.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or(&service.host);
    let (bare, _) = router_core::split_host_port(host);
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string()).map_err(|e| {
        Failure::new(StatusCode::BAD_GATEWAY, Blame::Upstream, format!("{bare:?} cannot be a TLS server name: {e}"))
    })
}
