//! One request's life through the proxy, in order: route (the wasm router), protocol and service
//! checks, the upstream request (path, Host, forwarding headers), connect with retries, the
//! response back with hop-by-hop headers removed. Kong's answers where something is missing.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};

use super::Proxy;
use super::snapshot::{Snapshot, accepts};
use rustls_pki_types::ServerName;

use super::upstream::{ConnectError, Pool, PooledBody, ProxyBody, pool_key};
use crate::entities::{Route, Service};
use crate::node::http::Conn;
use crate::wasm::router::Request as RouterRequest;

const VIA: &str = concat!("1.1 gateway/", env!("CARGO_PKG_VERSION"));

/// Handles one request. Never fails: every problem becomes a response.
pub async fn handle(proxy: Arc<Proxy>, conn: Conn, mut req: Request<Incoming>) -> Response<ProxyBody> {
    let started = Instant::now();
    let client_version = req.version();
    let snapshot = proxy.current();
    let Some(router) = &snapshot.router else {
        return kong_error(StatusCode::NOT_FOUND, "no Route matched with those values");
    };
    let host = request_host(&req).unwrap_or_default();
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
        sni: conn.tls.as_ref().and_then(|t| t.sni.clone()),
    });
    let decision = match routed {
        Ok(Some(decision)) => decision,
        Ok(None) => return kong_error(StatusCode::NOT_FOUND, "no Route matched with those values"),
        Err(failure) => {
            tracing::error!(error = %failure, "routing failed");
            return kong_error(StatusCode::INTERNAL_SERVER_ERROR, "An unexpected error occurred");
        }
    };
    let (route, service) = &snapshot.routes[decision.route as usize];
    let tls = conn.tls.is_some();
    if !accepts(route, tls) {
        if !tls {
            return https_required(route, &host, req.uri());
        }
        return kong_error(StatusCode::NOT_FOUND, "no Route matched with those values");
    }
    let Some(service) = service.clone() else {
        return kong_error(StatusCode::SERVICE_UNAVAILABLE, "no Service found with those values");
    };
    let debug = proxy.allow_debug_header && req.headers().get("kong-debug").is_some_and(|v| v == "1");

    let upgrade = is_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let upstream_req = match upstream_request(req, &conn, route, &service, &decision.upstream_path, &host, upgrade) {
        Ok(r) => r,
        Err(message) => return kong_error(StatusCode::BAD_REQUEST, &message),
    };
    let proxy_latency = started.elapsed();
    let sent = Instant::now();
    let mut response = match send(&proxy.pool, &snapshot, &service, upstream_req).await {
        Ok(response) => response,
        Err(failure) => {
            tracing::warn!(service = %service_label(&service), error = %failure.detail, "upstream request failed");
            return kong_error(failure.status, failure.message);
        }
    };
    let upstream_latency = sent.elapsed();
    // The client hears our HTTP version, whatever the upstream spoke.
    *response.version_mut() = client_version;

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            splice_upgrade(client_upgrade, &mut response);
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
    response
}

/// The host the client asked for: the Host header, or the authority of an HTTP/2 request.
fn request_host(req: &Request<Incoming>) -> Option<String> {
    req.headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()))
}

fn service_label(service: &Service) -> String {
    service.name.clone().unwrap_or_else(|| service.id.to_string())
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

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

fn upstream_request(
    req: Request<Incoming>,
    conn: &Conn,
    route: &Route,
    service: &Service,
    upstream_path: &str,
    client_host: &str,
    upgrade: bool,
) -> Result<Request<ProxyBody>, String> {
    let (parts, body) = req.into_parts();
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{upstream_path}?{q}"),
        None => upstream_path.to_string(),
    };
    let mut headers = parts.headers;
    let upgrade_value = headers.get(header::UPGRADE).cloned();
    strip_hop_by_hop(&mut headers);
    if upgrade && let Some(value) = upgrade_value {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, value);
    }
    let host = if route.preserve_host && !client_host.is_empty() {
        client_host.to_string()
    } else if service.port == service.protocol.default_port() {
        service.host.clone()
    } else {
        format!("{}:{}", service.host, service.port)
    };
    headers.insert(header::HOST, HeaderValue::from_str(&host).map_err(|_| "invalid Host".to_string())?);

    let client_ip = conn.peer.ip().to_string();
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(existing) => format!("{existing}, {client_ip}"),
        None => client_ip.clone(),
    };
    let (forwarded_host, _) = router_core::split_host_port(client_host);
    let set = |headers: &mut HeaderMap, name: &'static str, value: &str| {
        if let Ok(v) = HeaderValue::from_str(value) {
            headers.insert(name, v);
        }
    };
    set(&mut headers, "x-forwarded-for", &forwarded_for);
    set(&mut headers, "x-forwarded-proto", if conn.tls.is_some() { "https" } else { "http" });
    set(&mut headers, "x-forwarded-host", forwarded_host);
    set(&mut headers, "x-forwarded-port", &conn.local.port().to_string());
    set(&mut headers, "x-forwarded-path", parts.uri.path());
    set(&mut headers, "x-real-ip", &client_ip);
    headers.append(header::VIA, HeaderValue::from_static(VIA));

    let mut builder = Request::builder().method(parts.method).uri(path_and_query).version(hyper::Version::HTTP_11);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    builder.body(body.map_err(Into::into).boxed()).map_err(|e| format!("invalid upstream request: {e}"))
}

struct Failure {
    status: StatusCode,
    message: &'static str,
    detail: String,
}

/// Connects (with retries across targets on connect failure) and sends the request once.
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
    let connect_timeout = Duration::from_millis(u64::from(service.connect_timeout));
    let read_timeout = Duration::from_millis(u64::from(service.read_timeout));
    let balancer = snapshot.balancers.get(&service.host);
    if balancer.is_some_and(|b| b.is_empty()) {
        return Err(Failure {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "failure to get a peer from the ring-balancer",
            detail: format!("upstream {} has no targets", service.host),
        });
    }
    let mut last: Option<ConnectError> = None;
    let mut connected = None;
    for _attempt in 0..=service.retries {
        let address = match balancer.and_then(|b| b.next()) {
            Some(target) => target.to_string(),
            None if service.host.contains(':') => format!("[{}]:{}", service.host, service.port),
            None => format!("{}:{}", service.host, service.port),
        };
        let key = pool_key(&address, tls_name.as_ref());
        if let Some(upstream) = pool.checkout(&key) {
            connected = Some((key, upstream));
            break;
        }
        match pool.connect(&address, tls_name.as_ref(), connect_timeout).await {
            Ok(upstream) => {
                connected = Some((key, upstream));
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let Some((address, mut upstream)) = connected else {
        let error = last.expect("at least one attempt was made");
        let status = match error {
            ConnectError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        let message = if status == StatusCode::GATEWAY_TIMEOUT {
            "The upstream server is timing out"
        } else {
            "An invalid response was received from the upstream server"
        };
        return Err(Failure { status, message, detail: error.to_string() });
    };
    upstream.set_write_timeout(Duration::from_millis(u64::from(service.write_timeout)));
    // read_timeout runs from the end of the request body (a long upload is not a slow upstream).
    let sent = Arc::new(tokio::sync::Notify::new());
    let req = req.map(|body| NotifyEnd::new(body, sent.clone()).boxed());
    let head_deadline = async {
        sent.notified().await;
        tokio::time::sleep(read_timeout).await;
    };
    let response = tokio::select! {
        response = upstream.sender.send_request(req) => Ok(response),
        () = head_deadline => Err(()),
    };
    let response = match response {
        Ok(Ok(response)) => response,
        Ok(Err(error)) if timed_out(&error) => {
            return Err(Failure {
                status: StatusCode::GATEWAY_TIMEOUT,
                message: "The upstream server is timing out",
                detail: format!("{address}: {}", error_chain(&error)),
            });
        }
        Ok(Err(error)) => {
            return Err(Failure {
                status: StatusCode::BAD_GATEWAY,
                message: "An invalid response was received from the upstream server",
                detail: format!("{address}: {}", error_chain(&error)),
            });
        }
        Err(_) => {
            return Err(Failure {
                status: StatusCode::GATEWAY_TIMEOUT,
                message: "The upstream server is timing out",
                detail: format!("{address}: no response within read_timeout {read_timeout:?}"),
            });
        }
    };
    let (parts, body) = response.into_parts();
    let body = if parts.status == StatusCode::SWITCHING_PROTOCOLS {
        body.map_err(Into::into).boxed()
    } else {
        PooledBody::new(body, pool.clone(), address, upstream, read_timeout).boxed()
    };
    Ok(Response::from_parts(parts, body))
}

/// Whether a failed exchange was a timeout of ours (the write deadline).
fn timed_out(error: &hyper::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut) {
            return true;
        }
        source = e.source();
    }
    false
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
    ServerName::try_from(bare.to_string()).map_err(|e| Failure {
        status: StatusCode::BAD_GATEWAY,
        message: "An invalid response was received from the upstream server",
        detail: format!("{bare:?} cannot be a TLS server name: {e}"),
    })
}

/// After a 101, copies bytes both ways between the client and the upstream connection.
fn splice_upgrade(client: hyper::upgrade::OnUpgrade, response: &mut Response<ProxyBody>) {
    let upstream = hyper::upgrade::on(response);
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut upstream = hyper_util::rt::TokioIo::new(upstream);
        if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(%error, "upgraded connection ended with an error");
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

/// A response the gateway makes itself, in Kong's shape: `{"message": "..."}`.
pub fn kong_error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "message": message }).to_string();
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(header::SERVER, concat!("gateway/", env!("CARGO_PKG_VERSION")))
        .body(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed())
        .expect("a static response is valid")
}
