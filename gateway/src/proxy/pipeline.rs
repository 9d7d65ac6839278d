//! One request's life through the proxy, in order: route (the wasm router), protocol and service
//! checks, the upstream request (path, Host, forwarding headers), connect with retries, the
//! response back with hop-by-hop headers removed. Kong's answers where something is missing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use rustls_pki_types::ServerName;

use super::Proxy;
pub use super::answers::kong_error;
use super::answers::{Blame, Failure};
use super::client_body::{ClientBody, ClientBodyError};
use super::forwarding::{self, request_host};
use super::snapshot::{Snapshot, accepts};
use super::tunnel;
use super::upstream::{ConnectError, Pool, PooledBody, ProxyBody, Upstream, pool_key};
use crate::entities::{Route, Service};
use crate::server::Conn;
use crate::wasm::router::Request as RouterRequest;

const VIA: &str = concat!("1.1 gateway/", env!("CARGO_PKG_VERSION"));

/// Handles one request. Never fails: every problem becomes a response.
pub async fn handle(proxy: Arc<Proxy>, conn: Conn, req: Request<Incoming>) -> Response<ProxyBody> {
    let client_version = req.version();
    let mut response = match forward(&proxy, &conn, req).await {
        Ok(response) => response,
        Err(failure) => {
            match failure.blame {
                Blame::Client => {
                    tracing::debug!(peer = %conn.peer, status = failure.status.as_u16(), error = %failure.detail, "request refused")
                }
                Blame::Upstream => {
                    tracing::warn!(status = failure.status.as_u16(), error = %failure.detail, "upstream request failed")
                }
                Blame::Gateway => tracing::error!(error = %failure.detail, "request failed in the gateway"),
            }
            let mut response = failure.response();
            if failure.blame == Blame::Client && client_version < hyper::Version::HTTP_2 {
                // What else the client sent cannot be trusted to frame a next request.
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
    };
    // The client hears our HTTP version, whatever the upstream spoke.
    *response.version_mut() = client_version;
    response
}

/// Routes the request and sends it upstream; a [`Failure`] says who is to blame when that fails.
async fn forward(proxy: &Arc<Proxy>, conn: &Conn, mut req: Request<Incoming>) -> Result<Response<ProxyBody>, Failure> {
    let started = Instant::now();
    let host = request_host(&req).map_err(|e| Failure::new(StatusCode::BAD_REQUEST, Blame::Client, e.to_string()))?;
    router_core::check_request_path(req.uri().path()).map_err(|e| {
        Failure::new(StatusCode::BAD_REQUEST, Blame::Client, format!("path {:?}: {e}", req.uri().path()))
    })?;
    let snapshot = proxy.current();
    let Some(router) = &snapshot.router else {
        return Ok(kong_error(StatusCode::NOT_FOUND, "no Route matched with those values"));
    };
    let headers: Vec<(String, Vec<u8>)> = router
        .header_names()
        .iter()
        .flat_map(|name| {
            req.headers().get_all(name.as_str()).iter().map(move |v| (name.clone(), v.as_bytes().to_vec()))
        })
        .collect();
    let routed = router.route(&RouterRequest {
        method: req.method().as_str().to_string(),
        host: host.clone(),
        port: conn.local.port(),
        path: req.uri().path().to_string(),
        headers,
        // A TLS request without a server name is `""`: it matches no route's `snis`.
        sni: conn.tls.as_ref().map(|t| t.sni.clone().unwrap_or_default()),
    });
    let decision = match routed {
        Ok(Some(decision)) => decision,
        Ok(None) => return Ok(kong_error(StatusCode::NOT_FOUND, "no Route matched with those values")),
        Err(failure) => {
            return Err(Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Blame::Gateway,
                format!("routing failed: {failure}"),
            ));
        }
    };
    let (route, service) = &snapshot.routes[decision.route as usize];
    let tls = conn.tls.is_some();
    if !accepts(route, tls) {
        if !tls {
            return Ok(https_required(route, &host, req.uri()));
        }
        return Ok(kong_error(StatusCode::NOT_FOUND, "no Route matched with those values"));
    }
    let Some(service) = service.clone() else {
        return Ok(kong_error(StatusCode::SERVICE_UNAVAILABLE, "no Service found with those values"));
    };
    if !router_core::upstream_path_is_safe(&decision.upstream_path, service.path.as_deref()) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            Blame::Client,
            format!(
                "path {:?} would reach the upstream as {:?}: outside the service path or with a dot segment",
                req.uri().path(),
                decision.upstream_path
            ),
        ));
    }
    if let (Some(limit), Some(length)) = (proxy.limits.max_body_size, declared_length(req.headers()))
        && length > limit
    {
        return Err(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Blame::Client,
            format!("Content-Length {length} is over nginx_http_client_max_body_size ({limit} bytes)"),
        ));
    }
    let debug = proxy.allow_debug_header && req.headers().get("kong-debug").is_some_and(|v| v == "1");

    let upgrade = is_websocket_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let upstream_req = upstream_request(proxy, req, conn, route, &service, &decision.upstream_path, &host, upgrade)?;
    let proxy_latency = started.elapsed();
    let sent = Instant::now();
    let mut response = send(&proxy.pool, &snapshot, &service, upstream_req).await?;
    let upstream_latency = sent.elapsed();

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            conn.activity.upgraded();
            let idle = Duration::from_millis(u64::from(service.read_timeout));
            splice_upgrade(client_upgrade, &mut response, idle);
        }
    } else {
        strip_hop_by_hop(response.headers_mut());
    }
    let headers = response.headers_mut();
    headers.append(header::VIA, HeaderValue::from_static(VIA));
    headers.insert("x-kong-upstream-latency", HeaderValue::from(upstream_latency.as_millis() as u64));
    headers.insert("x-kong-proxy-latency", HeaderValue::from(proxy_latency.as_millis() as u64));
    if debug {
        add_debug_headers(headers, route, &service);
    }
    Ok(response)
}

/// The body length a request declares, if it declares one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

/// Headers that describe one connection, not the message (RFC 9110 section 7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::TRANSFER_ENCODING);
}

/// Whether the request asks to become a WebSocket: the only upgrade forwarded, as in Kong. Any
/// other `Upgrade` (h2c, TLS…) is dropped with the hop-by-hop headers.
fn is_websocket_upgrade(headers: &HeaderMap) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

#[allow(clippy::too_many_arguments)]
fn upstream_request(
    proxy: &Proxy,
    req: Request<Incoming>,
    conn: &Conn,
    route: &Route,
    service: &Service,
    upstream_path: &str,
    client_host: &str,
    upgrade: bool,
) -> Result<Request<ProxyBody>, Failure> {
    let (parts, body) = req.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{upstream_path}?{q}"),
        None => upstream_path.to_string(),
    };
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers);
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    }
    if parts.version == hyper::Version::HTTP_2 {
        forwarding::join_cookies(&mut headers);
    }
    let host = if route.preserve_host && !client_host.is_empty() {
        client_host.to_string()
    } else if service.port == service.protocol.default_port() {
        service.host.clone()
    } else {
        format!("{}:{}", service.host, service.port)
    };
    let host = HeaderValue::from_str(&host).map_err(|_| {
        Failure::new(StatusCode::BAD_GATEWAY, Blame::Gateway, format!("{host:?} cannot be a Host header"))
    })?;
    headers.insert(header::HOST, host);
    forwarding::set_forwarding_headers(
        &mut headers,
        &proxy.trust,
        &forwarding::Forwarded {
            peer: conn.peer.ip(),
            tls: conn.tls.is_some(),
            host: client_host,
            local_port: conn.local.port(),
            path: parts.uri.path(),
        },
    );
    headers.append(header::VIA, HeaderValue::from_static(VIA));

    let body = ClientBody::new(body, proxy.limits.max_body_size, proxy.limits.body_timeout);
    let mut builder = Request::builder().method(parts.method).uri(path_and_query).version(hyper::Version::HTTP_11);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    builder
        .body(body.boxed())
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, Blame::Client, format!("invalid upstream request: {e}")))
}

/// Connects (with retries across targets on connect failure) and sends the request. A request
/// that fails on a reused keep-alive connection before any of its response came back (the
/// upstream had closed the connection while it was idle) is sent once more on a fresh connection
/// when that is safe ([`retry_is_safe`]), as nginx does.
async fn send(
    pool: &Arc<Pool>,
    snapshot: &Snapshot,
    service: &Service,
    req: Request<ProxyBody>,
) -> Result<Response<ProxyBody>, Failure> {
    let tls_name = match service.protocol {
        crate::entities::Protocol::Https => Some(upstream_server_name(&req, service)?),
        _ => None,
    };
    let read_timeout = Duration::from_millis(u64::from(service.read_timeout));
    let (key, mut upstream) = connect(pool, snapshot, service, tls_name.as_ref(), true).await?;
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
            let (key, mut upstream) = connect(pool, snapshot, service, tls_name.as_ref(), false).await?;
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
    tls_name: Option<&ServerName<'static>>,
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
        });
    }
    let mut last: Option<ConnectError> = None;
    for _attempt in 0..=service.retries {
        let address = match balancer.and_then(|b| b.next()) {
            Some(target) => target.to_string(),
            None if service.host.contains(':') => format!("[{}]:{}", service.host, service.port),
            None => format!("{}:{}", service.host, service.port),
        };
        let key = pool_key(&address, tls_name);
        if pooled && let Some(upstream) = pool.checkout(&key) {
            return Ok((key, upstream));
        }
        match pool.connect(&address, tls_name, connect_timeout).await {
            Ok(upstream) => return Ok((key, upstream)),
            Err(e) => last = Some(e),
        }
    }
    let error = last.expect("at least one attempt was made");
    let status = match error {
        ConnectError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    Err(Failure::new(status, Blame::Upstream, error.to_string()))
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
            let status = match body {
                ClientBodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                ClientBodyError::Stalled(_) => StatusCode::REQUEST_TIMEOUT,
            };
            return Failure::new(status, Blame::Client, detail);
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
fn error_chain(error: &dyn std::error::Error) -> String {
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

/// After a 101, copies bytes both ways between the client and the upstream connection, until
/// either side closes or nothing has moved for `idle` (the service's `read_timeout`, as nginx
/// times upgraded connections).
fn splice_upgrade(client: hyper::upgrade::OnUpgrade, response: &mut Response<ProxyBody>, idle: Duration) {
    let upstream = hyper::upgrade::on(response);
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
        let clock = Arc::new(tunnel::Clock::new());
        let mut client = tunnel::Touched::new(hyper_util::rt::TokioIo::new(client), clock.clone());
        let mut upstream = hyper_util::rt::TokioIo::new(upstream);
        tokio::select! {
            result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                if let Err(error) = result {
                    tracing::debug!(%error, "upgraded connection ended with an error");
                }
            }
            () = clock.idle_for(idle) => tracing::debug!(?idle, "upgraded connection idle; closed"),
        }
    });
}

fn https_required(route: &Route, host: &str, uri: &hyper::Uri) -> Response<ProxyBody> {
    let code = route.https_redirect_status_code;
    if code == 426 {
        let mut response = kong_error(StatusCode::UPGRADE_REQUIRED, "Please use HTTPS protocol");
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        response.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("TLS/1.2, HTTP/1.1"));
        return response;
    }
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    let (bare_host, _) = router_core::split_host_port(host);
    let location = format!("https://{bare_host}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut response = kong_error(status, "Please use HTTPS protocol");
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}

fn add_debug_headers(headers: &mut HeaderMap, route: &Route, service: &Service) {
    let mut set = |name: &'static str, value: String| {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    };
    set("kong-route-id", route.id.to_string());
    if let Some(name) = &route.name {
        set("kong-route-name", name.clone());
    }
    set("kong-service-id", service.id.to_string());
    if let Some(name) = &service.name {
        set("kong-service-name", name.clone());
    }
}
