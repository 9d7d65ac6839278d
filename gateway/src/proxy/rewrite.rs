//! The `rewrite` phase: before routing, so a plugin (global ones only, as in Kong) may change what
//! is routed. What it leaves is checked again as a client's request would be.

use hyper::StatusCode;
use hyper::http::request;

use super::answers::{Blame, Failure};
use super::context::RequestContext;
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
