//! The router component: the gateway's route decisions, made in a sandbox. A thin shell over
//! `router-core` that converts between the WIT types and the library's.

wit_bindgen::generate!({ world: "router-component", path: "../../wit" });

/// Set by gateway/build.rs to a digest of `wit/`: reading it makes cargo rebuild this component when
/// the contract changes (the macro above does not tell cargo it read those files).
const _WIT_DIGEST: Option<&str> = option_env!("GATEWAY_WIT_HASH");

use exports::gateway::api::routing::{
    Guest, GuestRouter, LoadError, PathHandling, Request, RouteMatch, RouteSpec, Router as RouterHandle,
};

struct Component;

struct Router(router_core::Router);

impl Guest for Component {
    type Router = Router;
}

impl GuestRouter for Router {
    fn load(routes: Vec<RouteSpec>) -> Result<RouterHandle, Vec<LoadError>> {
        let specs: Vec<router_core::RouteSpec> = routes
            .into_iter()
            .map(|r| router_core::RouteSpec {
                methods: r.methods,
                hosts: r.hosts,
                paths: r.paths,
                headers: r.headers.into_iter().map(|h| (h.name, h.values)).collect(),
                snis: r.snis,
                regex_priority: r.regex_priority,
                strip_path: r.strip_path,
                path_handling: match r.path_handling {
                    PathHandling::V0 => router_core::PathHandling::V0,
                    PathHandling::V1 => router_core::PathHandling::V1,
                },
                service_path: r.service_path,
            })
            .collect();
        match router_core::Router::new(&specs) {
            Ok(router) => Ok(RouterHandle::new(Router(router))),
            Err(errors) => Err(errors
                .into_iter()
                .map(|e| LoadError { route: e.route, field: e.field, message: e.message })
                .collect()),
        }
    }

    fn header_names(&self) -> Vec<String> {
        self.0.header_names().to_vec()
    }

    fn route(&self, req: Request) -> Option<RouteMatch> {
        let request = router_core::Request {
            method: &req.method,
            host: &req.host,
            port: req.port,
            path: &req.path,
            headers: &req.headers,
            sni: req.sni.as_deref(),
        };
        self.0.route(&request).map(|m| RouteMatch {
            route: m.route,
            upstream_path: m.upstream_path,
            captures: m.captures,
        })
    }
}

export!(Component);
