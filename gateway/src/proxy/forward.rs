//! The upstream leg, between `access` and `header_filter`: the request as the upstream sees it
//! (its path, Host, forwarding headers, no hop-by-hop headers), sent through [`send`], and the
//! response head made the client's (hop-by-hop headers removed, `Via`, Kong's latency headers,
//! the debug headers when asked). A WebSocket upgrade is spliced both ways after a 101.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request;
use hyper::{Request, Response, StatusCode};

use super::Proxy;
use super::answers::{Blame, Failure};
use super::client_body::{ClientBody, Inbound};
use super::context::RequestContext;
use super::forwarding;
use super::route::Routed;
use super::send::send;
use super::tunnel;
use super::upstream::ProxyBody;
use crate::entities::{Route, Service};
use crate::server::Conn;

/// Sends the routed request upstream and returns the upstream's response with its head made the
/// client's.
pub async fn forward(
    proxy: &Proxy,
    ctx: &mut RequestContext,
    mut parts: request::Parts,
    body: Inbound,
    routed: Routed,
    host: &str,
) -> Result<Response<ProxyBody>, Failure> {
    let RequestContext { conn, snapshot, timings, received, request_id, .. } = ctx;
    let (route, _) = &snapshot.routes[routed.index];
    let service = &routed.service;
    let debug = proxy.presentation.allow_debug_header && parts.headers.get(KONG_DEBUG).is_some_and(|v| v == "1");

    let upgrade = is_websocket_upgrade(&parts.headers);
    let client_upgrade = if upgrade { parts.extensions.remove::<hyper::upgrade::OnUpgrade>() } else { None };
    let target = Target {
        route,
        service,
        upstream_path: &routed.upstream_path,
        upstream_host: routed.upstream_host.as_ref(),
        client_host: host,
        upgrade,
    };
    let mut upstream_req = upstream_request(proxy, parts, body, conn, &target, received.clone())?;
    if proxy.presentation.upstream_request_id {
        upstream_req
            .headers_mut()
            .insert(super::answers::X_KONG_REQUEST_ID, super::answers::request_id_value(request_id));
    }
    timings.upstream_start = Some(Instant::now());
    let mut response = send(&proxy.pool, snapshot, service, upstream_req, timings).await?;
    timings.first_byte = Some(Instant::now());

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_upgrade) = client_upgrade {
            conn.activity.upgraded();
            let idle = Duration::from_millis(u64::from(service.read_timeout));
            splice_upgrade(client_upgrade, &mut response, idle);
        }
    } else {
        strip_hop_by_hop(response.headers_mut());
    }
    if debug {
        add_debug_headers(response.headers_mut(), route, service);
    }
    Ok(response)
}

const KONG_DEBUG: HeaderName = HeaderName::from_static("kong-debug");

/// Headers that describe one connection, not the message (RFC 9110 section 7.6.1), and
/// `Transfer-Encoding`, which hyper sets again for the next hop.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::UPGRADE,
    header::TRANSFER_ENCODING,
];

/// Removes the hop-by-hop headers and those `Connection` names. One pass over the names
/// present, since most messages carry none of them.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
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

/// Where the request goes and as what.
struct Target<'a> {
    route: &'a Route,
    service: &'a Service,
    upstream_path: &'a str,
    /// A `Host` a plugin set, sent as it is.
    upstream_host: Option<&'a HeaderValue>,
    client_host: &'a str,
    upgrade: bool,
}

fn upstream_request(
    proxy: &Proxy,
    parts: request::Parts,
    body: Inbound,
    conn: &Conn,
    target: &Target<'_>,
    received: Option<Arc<AtomicU64>>,
) -> Result<Request<ProxyBody>, Failure> {
    let Target { route, service, upstream_path, upstream_host, client_host, upgrade } = *target;
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
    let host = match upstream_host {
        Some(set) => set.clone(),
        None => {
            let host = if route.preserve_host && !client_host.is_empty() {
                client_host.to_string()
            } else if service.port == service.protocol.default_port() {
                service.host.clone()
            } else {
                format!("{}:{}", service.host, service.port)
            };
            HeaderValue::from_str(&host).map_err(|_| {
                Failure::new(StatusCode::BAD_GATEWAY, Blame::Gateway, format!("{host:?} cannot be a Host header"))
            })?
        }
    };
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
    headers.append(header::VIA, HeaderValue::from_static(super::answers::VIA));

    let body = ClientBody::new(body, proxy.limits.max_body_size, proxy.limits.body_timeout, received);
    let mut builder = Request::builder().method(parts.method).uri(path_and_query).version(hyper::Version::HTTP_11);
    if let Some(h) = builder.headers_mut() {
        *h = headers;
    }
    builder
        .body(body.boxed())
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, Blame::Client, format!("invalid upstream request: {e}")))
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
