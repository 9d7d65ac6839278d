//! The `access` phase: after routing, before the upstream; where auth plugins set the consumer
//! and a plugin may answer instead of the upstream. A path it changes is sent upstream as it is
//! (Kong's `kong.service.request.set_path`), once checked.

use hyper::http::request;
use hyper::{Response, StatusCode};

use super::answers::{Blame, Failure};
use super::context::RequestContext;
use super::phases::{Flow, Phase, PhaseRunner};
use super::route::Routed;
use super::upstream::ProxyBody;

/// Runs `access`; `Some` is a plugin's own response.
pub fn access(
    phases: &dyn PhaseRunner,
    ctx: &mut RequestContext,
    req: &mut request::Parts,
    routed: &mut Routed,
) -> Result<Option<Response<ProxyBody>>, Failure> {
    if !phases.wants(Phase::Access, ctx) {
        return Ok(None);
    }
    let before = req.uri.clone();
    match phases.access(ctx, req).map_err(Failure::plugin)? {
        Flow::Respond(exit) => Ok(Some(exit.into_response())),
        Flow::Continue => {
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
            Ok(None)
        }
    }
}
