//! One request's life through the proxy, as Kong's phases in order; each step lives in its own
//! file and this one reads as the whole story:
//!
//! 1. admit: the Host and path as a client sent them ([`admitted_host`]);
//! 2. `rewrite` ([`rewrite`]): global plugins, before routing;
//! 3. route ([`route`]): the wasm router, then the route's protocol and service checks;
//! 4. `access` ([`access`]): plugins of the route, service and consumer;
//! 5. forward ([`forward`], [`send`]): the upstream request, connect with retries, the response
//!    head made the client's;
//! 6. respond ([`response`]): `header_filter`, `body_filter`, then `log` ([`log`]) once the body
//!    has ended.
//!
//! A plugin's own response (from `rewrite` or `access`) and the gateway's answers ([`answers`])
//! skip to 6. One [`RequestContext`] carries the request from 1 to the log. Without plugins in
//! the configuration, the phases cost one `Option` check each.
//!
//! [`rewrite`]: super::rewrite
//! [`route`]: super::route
//! [`access`]: super::access
//! [`forward`]: super::forward
//! [`send`]: super::send
//! [`response`]: super::response
//! [`log`]: super::log
//! [`answers`]: super::answers

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::http::request;
use hyper::{Request, Response, StatusCode};

use super::Proxy;
use super::answers::{Blame, Failure};
use super::client_body::Inbound;
use super::context::RequestContext;
use super::forwarding::request_host;
use super::phases::{PhaseRunner, Step};
use super::route::{Routed, Routing};
use super::upstream::ProxyBody;
use super::{access, forward, response, rewrite, route};
use crate::metrics::{Facts, Source};
use crate::server::Conn;

/// Handles one request. Never fails: every problem becomes a response.
pub async fn handle(proxy: Arc<Proxy>, conn: Conn, req: Request<Incoming>) -> Response<ProxyBody> {
    let client_version = req.version();
    let method = proxy.collects_facts().then(|| req.method().clone());
    let mut ctx = RequestContext::new(conn, proxy.current());
    ctx.wishes = super::answers::Wishes::of(req.headers());
    let phases = ctx.snapshot.phases.clone();
    if phases.is_some() || proxy.collects_facts() {
        ctx.received = Some(Arc::default());
    }
    let (mut response, source) = match run(&proxy, &mut ctx, phases.as_deref(), req).await {
        Ok(response) if ctx.timings.first_byte.is_some() => (response, Source::Service),
        Ok(response) if ctx.exited => (response, Source::Exit),
        Ok(response) => (response, Source::Kong),
        Err(failure) => (failure.answer(&ctx, client_version, &proxy.presentation), Source::Kong),
    };
    let upstream_status = (source == Source::Service).then(|| response.status());
    proxy.presentation.stamp(response.headers_mut(), &ctx, upstream_status);
    let facts = proxy.collects_facts().then(|| facts(&ctx, source, method));
    let request_id = ctx.request_id;
    let mut response = response::deliver(response, client_version, ctx, phases, &proxy.presentation);
    let extensions = response.extensions_mut();
    extensions.insert(request_id);
    if let Some(facts) = facts {
        extensions.insert(facts);
    }
    response
}

/// What the node's metrics count of the request (the listener counts it once its body is done).
fn facts(ctx: &RequestContext, source: Source, method: Option<hyper::Method>) -> Facts {
    let (route, service) = match ctx.route.and_then(|i| ctx.snapshot.labels.get(i)) {
        Some((route, service)) => (Some(route.clone()), service.clone()),
        None => (None, None),
    };
    let t = &ctx.timings;
    Facts {
        service,
        route,
        consumer: ctx.consumer.as_ref().map(|c| c.label.clone()),
        source,
        start: t.start,
        upstream: t.first_byte.zip(t.upstream_connected.or(t.upstream_start)).map(|(head, sent)| head - sent),
        ids: crate::telemetry::Ids {
            service: ctx.service().map(|s| s.id),
            route: ctx.route().map(|r| r.id),
            consumer: ctx.consumer.as_ref().map(|c| c.id),
        },
        method: method.unwrap_or_default(),
        received: ctx.received.clone(),
    }
}

/// Steps 1 to 5; a [`Failure`] says who is to blame when one fails.
async fn run(
    proxy: &Proxy,
    ctx: &mut RequestContext,
    phases: Option<&dyn PhaseRunner>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Failure> {
    let (mut parts, body) = req.into_parts();
    let mut host = admitted_host(&parts)?;
    if phases.is_some() {
        ctx.client_ip = Some(super::forwarding::client_ip(&parts.headers, &proxy.trust, ctx.conn.peer.ip()));
    }
    let mut body = Inbound::new(body);
    let mut upstream_host = None;
    if let Some(phases) = phases {
        loop {
            match rewrite::rewrite(phases, ctx, &mut parts, &mut host)? {
                Step::Proceed => break,
                Step::Answer(exit) => {
                    ctx.exited = true;
                    return Ok(exit);
                }
                Step::ReadBody(max) => read_body(proxy, ctx, &parts, &mut body, max).await?,
            }
        }
        upstream_host = rewrite::host_set(ctx, &parts, &mut host)?;
    }
    let mut routed = match route::route(proxy, ctx, &parts, &host)? {
        Routing::Routed(routed) => Routed { upstream_host, ..routed },
        Routing::Answered(response) => return Ok(response),
    };
    if let Some(phases) = phases {
        loop {
            match access::access(phases, ctx, &mut parts, &mut routed)? {
                Step::Proceed => break,
                Step::Answer(exit) => {
                    ctx.exited = true;
                    return Ok(exit);
                }
                Step::ReadBody(max) => read_body(proxy, ctx, &parts, &mut body, max).await?,
            }
        }
        if let Some(replacement) = ctx.body_replacement.take() {
            parts.headers.remove(hyper::header::TRANSFER_ENCODING);
            parts.headers.insert(hyper::header::CONTENT_LENGTH, replacement.len().into());
            body.replace(replacement);
        }
    }
    forward::forward(proxy, ctx, parts, body, routed, &host).await
}

/// Reads the request body for a plugin that asked for it (`flow::read-body`).
async fn read_body(
    proxy: &Proxy,
    ctx: &mut RequestContext,
    parts: &hyper::http::request::Parts,
    body: &mut Inbound,
    max: u64,
) -> Result<(), Failure> {
    let declared = parts
        .headers
        .get(hyper::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    ctx.body = body
        .read_for_plugins(max, declared, proxy.limits.max_body_size, proxy.limits.body_timeout)
        .await
        .map_err(|e| Failure::new(e.status(), Blame::Client, e.to_string()))?;
    Ok(())
}

/// The host the client asked for, once its Host and path are found acceptable (else 400).
pub fn admitted_host(req: &request::Parts) -> Result<String, Failure> {
    let host = request_host(&req.uri, &req.headers, req.version)
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, Blame::Client, e.to_string()))?;
    router_core::check_request_path(req.uri.path())
        .map_err(|e| Failure::new(StatusCode::BAD_REQUEST, Blame::Client, format!("path {:?}: {e}", req.uri.path())))?;
    Ok(host)
}
