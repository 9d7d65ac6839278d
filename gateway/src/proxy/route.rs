//! Routing: the wasm router picks the route, then the checks Kong makes before `access`: the
//! route's protocols (426 or a redirect to https), a service to send to, an upstream path that
//! stays inside the service's, and a declared body within `client_max_body_size`. Answers the
//! gateway makes itself on the way are returned as [`Routing::Answered`].

use std::sync::Arc;
use std::time::Instant;

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::http::request;
use hyper::{Response, StatusCode};

use super::Proxy;
use super::answers::{Blame, Failure, Negotiation};
use super::context::RequestContext;
use super::snapshot::accepts;
use super::upstream::ProxyBody;
use crate::entities::{Route, Service};
use crate::wasm::router::RouteQuery;

/// Where a routed request goes.
pub struct Routed {
    /// Position of the route in the snapshot's table.
    pub index: usize,
    pub service: Arc<Service>,
    /// The path to send upstream, as the router computed it (`strip_path`, the service's path).
    pub upstream_path: String,
    /// The `Host` a plugin set in `rewrite` or `access` (Kong's `upstream_host`): sent upstream in
    /// place of the service's host or the client's.
    pub upstream_host: Option<hyper::header::HeaderValue>,
}

pub enum Routing {
    Routed(Routed),
    /// The gateway answers itself (no route, https required, no service).
    Answered(Response<ProxyBody>),
}

/// Routes `req` on the request's snapshot; a match sets `ctx.route`, even when a check then
/// refuses the request (its later phases and log know the route).
pub fn route(proxy: &Proxy, ctx: &mut RequestContext, req: &request::Parts, host: &str) -> Result<Routing, Failure> {
    let no_route = |ctx: &RequestContext| {
        Routing::Answered(proxy.presentation.answer(ctx, StatusCode::NOT_FOUND, NO_ROUTE, Negotiation::Accept))
    };
    let Some(router) = &ctx.snapshot.router else {
        return Ok(no_route(ctx));
    };
    let headers: Vec<(&str, &[u8])> = router
        .header_names()
        .iter()
        .flat_map(|name| req.headers.get_all(name.as_str()).iter().map(move |v| (name.as_str(), v.as_bytes())))
        .collect();
    let conn = &ctx.conn;
    let routed = router.decide(&RouteQuery {
        method: req.method.as_str(),
        host,
        port: conn.local.port(),
        path: req.uri.path(),
        headers: &headers,
        // A TLS request without a server name is `""`: it matches no route's `snis`.
        sni: conn.tls.as_ref().map(|t| t.sni.as_deref().unwrap_or_default()),
    });
    let decision = match routed {
        Ok(Some(decision)) => decision,
        Ok(None) => return Ok(no_route(ctx)),
        Err(failure) => {
            return Err(Failure::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                Blame::Gateway,
                format!("routing failed: {failure}"),
            ));
        }
    };
    let index = decision.route as usize;
    let tls = ctx.conn.tls.is_some();
    ctx.route = Some(index);
    ctx.timings.routed = Some(Instant::now());
    let (route, service) = &ctx.snapshot.routes[index];
    if !accepts(route, tls) {
        if !tls {
            return Ok(Routing::Answered(https_required(proxy, ctx, route, host, &req.uri)));
        }
        return Ok(no_route(ctx));
    }
    let Some(service) = service.clone() else {
        return Ok(Routing::Answered(proxy.presentation.answer(
            ctx,
            StatusCode::SERVICE_UNAVAILABLE,
            "no Service found with those values",
            Negotiation::Accept,
        )));
    };
    if !router_core::upstream_path_is_safe(&decision.upstream_path, service.path.as_deref()) {
        return Err(Failure::new(
            StatusCode::BAD_REQUEST,
            Blame::Client,
            format!(
                "path {:?} would reach the upstream as {:?}: outside the service path or with a dot segment",
                req.uri.path(),
                decision.upstream_path
            ),
        ));
    }
    if let (Some(limit), Some(length)) = (proxy.limits.max_body_size, declared_length(&req.headers))
        && length > limit
    {
        return Err(Failure::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            Blame::Client,
            format!("Content-Length {length} is over nginx_http_client_max_body_size ({limit} bytes)"),
        ));
    }
    Ok(Routing::Routed(Routed { index, service, upstream_path: decision.upstream_path, upstream_host: None }))
}

/// The body length a request declares, if it declares one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

/// Kong's text when no route matches.
const NO_ROUTE: &str = "no Route matched with those values";

fn https_required(
    proxy: &Proxy,
    ctx: &RequestContext,
    route: &Route,
    host: &str,
    uri: &hyper::Uri,
) -> Response<ProxyBody> {
    let answer = |status| proxy.presentation.answer(ctx, status, "Please use HTTPS protocol", Negotiation::Accept);
    let code = route.https_redirect_status_code;
    if code == 426 {
        let mut response = answer(StatusCode::UPGRADE_REQUIRED);
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        response.headers_mut().insert(header::UPGRADE, HeaderValue::from_static("TLS/1.2, HTTP/1.1"));
        return response;
    }
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::MOVED_PERMANENTLY);
    let (bare_host, _) = router_core::split_host_port(host);
    let location = format!("https://{bare_host}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut response = answer(status);
    if let Ok(v) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, v);
    }
    response
}
