//! A misbehaving router for the end-to-end tests of the host's fault handling (never bundled):
//! every request goes to the first route unchanged, except that a path starting with `/trap`
//! panics (a trap, since components abort on panic) and one starting with `/spin` never returns
//! (the host's deadline must interrupt it).

wit_bindgen::generate!({ world: "router-component", path: "../../../wit" });

/// Set by gateway/build.rs to a digest of `wit/`: reading it makes cargo rebuild this component when
/// the contract changes (the macro above does not tell cargo it read those files).
const _WIT_DIGEST: Option<&str> = option_env!("GATEWAY_WIT_HASH");

use exports::gateway::api::routing::{Guest, GuestRouter, LoadError, Request, RouteMatch, RouteSpec, Router as Handle};

struct Component;

struct Router;

impl Guest for Component {
    type Router = Router;
}

impl GuestRouter for Router {
    fn load(_routes: Vec<RouteSpec>) -> Result<Handle, Vec<LoadError>> {
        Ok(Handle::new(Router))
    }

    fn header_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn route(&self, req: Request) -> Option<RouteMatch> {
        if req.path.starts_with("/trap") {
            panic!("asked to trap");
        }
        if req.path.starts_with("/spin") {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        Some(RouteMatch { route: 0, upstream_path: req.path, captures: Vec::new() })
    }
}

export!(Component);
