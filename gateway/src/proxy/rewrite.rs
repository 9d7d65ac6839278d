//! The `rewrite` phase: before routing, so a plugin (global ones only, as in Kong) may change what
//! is routed. What it leaves is checked again as a client's request would be.

use hyper::StatusCode;
use hyper::header::{HOST, HeaderValue};
use hyper::http::request;

use super::answers::{Blame, Failure};
use super::context::RequestContext;
use super::forwarding::valid_authority;
use super::phases::{Flow, Phase, PhaseRunner, Step};
use super::pipeline::admitted_host;

/// Runs `rewrite`. `host` follows a changed request.
pub fn rewrite(
    phases: &dyn PhaseRunner,
    ctx: &mut RequestContext,
    req: &mut request::Parts,
    host: &mut String,
) -> Result<Step, Failure> {
    if !phases.wants(Phase::Rewrite, ctx) {
        return Ok(Step::Proceed);
    }
    match phases.rewrite(ctx, req).map_err(Failure::plugin)? {
        Flow::Respond(exit) => Ok(Step::Answer(exit.into_response())),
        Flow::ReadBody(max) => Ok(Step::ReadBody(max)),
        Flow::Continue => {
            *host = admitted_host(req).map_err(|refused| {
                Failure::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Blame::Plugin,
                    format!("rewrite left a request that cannot be routed: {}", refused.detail),
                )
            })?;
            Ok(Step::Proceed)
        }
    }
}

/// After `rewrite`: a Host header a plugin set (to a new value or the one it had) is the host the
/// request is routed by (`host`), over an HTTP/2 or absolute-form authority too, and the Host sent
/// upstream, which is returned (Kong's `set_header("host", …)` sets `upstream_host` in `rewrite`
/// as in `access`).
pub fn host_set(
    ctx: &mut RequestContext,
    req: &request::Parts,
    host: &mut String,
) -> Result<Option<HeaderValue>, Failure> {
    if !std::mem::take(&mut ctx.host_set) {
        return Ok(None);
    }
    let Some(set) = req.headers.get(HOST) else { return Ok(None) };
    let text = set.to_str().ok().filter(|text| valid_authority(text)).ok_or_else(|| {
        Failure::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            Blame::Plugin,
            format!("rewrite set the Host {set:?}, which is not a host with an optional port"),
        )
    })?;
    text.clone_into(host);
    Ok(Some(set.clone()))
}
