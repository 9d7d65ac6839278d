//! The `rewrite` phase: before routing, so a plugin (global ones only, as in Kong) may change what
//! is routed. What it leaves is checked again as a client's request would be.

use hyper::StatusCode;
use hyper::header::HeaderValue;
use hyper::http::request;

use super::answers::{Blame, Failure};
use super::context::RequestContext;
use super::phases::{Flow, Phase, PhaseRunner, Step};
use super::pipeline::admitted_host;

/// Runs `rewrite`. `host` follows a changed request. A host a plugin changed is also put in
/// `upstream_host`: it is the Host sent upstream, with `preserve_host` or without, as Kong's
/// `set_header("host", …)` sets `upstream_host` in `rewrite` as in `access`.
pub fn rewrite(
    phases: &dyn PhaseRunner,
    ctx: &mut RequestContext,
    req: &mut request::Parts,
    host: &mut String,
    upstream_host: &mut Option<HeaderValue>,
) -> Result<Step, Failure> {
    if !phases.wants(Phase::Rewrite, ctx) {
        return Ok(Step::Proceed);
    }
    match phases.rewrite(ctx, req).map_err(Failure::plugin)? {
        Flow::Respond(exit) => Ok(Step::Answer(exit.into_response())),
        Flow::ReadBody(max) => Ok(Step::ReadBody(max)),
        Flow::Continue => {
            let left = admitted_host(req).map_err(|refused| {
                Failure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Blame::Plugin,
                    format!("rewrite left a request that cannot be routed: {}", refused.detail),
                )
            })?;
            if left != *host {
                // The Host header as the plugin wrote it; an HTTP/2 request may carry its host
                // in the authority alone, and an admitted host is a valid header value.
                *upstream_host = match req.headers.get(hyper::header::HOST) {
                    Some(set) => Some(set.clone()),
                    None => HeaderValue::from_str(&left).ok(),
                };
                *host = left;
            }
            Ok(Step::Proceed)
        }
    }
}
