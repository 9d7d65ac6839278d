//! The `access` phase: after routing, before the upstream; where auth plugins set the consumer
//! and a plugin may answer instead of the upstream. A path it changes is sent upstream as it is
//! (Kong's `kong.service.request.set_path`), once checked.

use hyper::StatusCode;
use hyper::http::request;

use super::answers::{Blame, Failure};
use super::context::RequestContext;
use super::phases::{Flow, Phase, PhaseRunner, Step};
use super::route::Routed;

/// Runs `access`.
pub fn access(
    phases: &dyn PhaseRunner,
    ctx: &mut RequestContext,
    req: &mut request::Parts,
    routed: &mut Routed,
) -> Result<Step, Failure> {
    if !phases.wants(Phase::Access, ctx) {
        return Ok(Step::Proceed);
    }
    let before = req.uri.clone();
    match phases.access(ctx, req).map_err(Failure::plugin)? {
        Flow::Respond(exit) => Ok(Step::Answer(exit.into_response())),
        Flow::ReadBody(max) => Ok(Step::ReadBody(max)),
        Flow::Continue => {
            // A Host a plugin set (to a new value or the one it had) is the one sent upstream,
            // as Kong's `set_header("host", …)` sets `upstream_host`.
            if std::mem::take(&mut ctx.host_set)
                && let Some(host) = req.headers.get(hyper::header::HOST)
            {
                routed.upstream_host = Some(host.clone());
            }
            let path = req.uri.path();
            if path != before.path() {
                router_core::check_request_path(path).map_err(|e| {
                    Failure::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        Blame::Plugin,
                        format!("access set the path {path:?}: {e}"),
                    )
                })?;
                routed.upstream_path = path.to_string();
            }
            Ok(Step::Proceed)
        }
    }
}
