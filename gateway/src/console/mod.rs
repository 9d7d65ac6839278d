//! The console (`admin_gui_listen`): a web page for the node and its cluster, served from files
//! embedded in the binary (no network, no build step), that works through the node's own Admin
//! API at `/api/...` on the console's origin. The Admin API's guards hold there as on
//! `admin_listen`: the Host must be one the console answers to (DNS rebinding), and a request sent
//! by another site (`Origin`, `Sec-Fetch-Site`) is refused, so the console never opens the Admin
//! API to other origins. Pages are reached by plain links, from anywhere: only their Host is
//! checked. Every answer forbids framing, sniffing and any script, style or connection but the
//! console's own (`Content-Security-Policy`).

use std::convert::Infallible;
use std::future::Future;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};

use crate::admin::AdminApi;
use crate::admin::edge::Edge;

/// The console's files: path, content type, contents.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/assets/app.js", "text/javascript; charset=utf-8", include_str!("assets/app.js")),
    ("/assets/app.css", "text/css; charset=utf-8", include_str!("assets/app.css")),
    ("/assets/favicon.svg", "image/svg+xml", include_str!("assets/favicon.svg")),
];

/// The page every console URL loads; the script renders what the path names.
const INDEX: &str = include_str!("assets/index.html");

/// The first path segments of the console's pages (`/services`, `/services/{name or id}`, ...).
const PAGES: &[&str] =
    &["data-planes", "certificates", "services", "routes", "consumers", "plugins", "upstreams", "analytics"];

/// Only the console's own origin, for everything; no inline script or style.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// Whom the console's `/api` answers: the Admin API must not become reachable from further away
/// through its console than through `admin_listen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiPeers {
    /// The Admin API listens beyond loopback too: whoever reaches the console.
    Any,
    /// The Admin API listens on loopback only: so does the console's `/api`, whatever address
    /// its pages are served on (Kong's default `admin_gui_listen` is `0.0.0.0:8002`, where Kong
    /// Manager is static files that call `admin_listen` from the browser).
    LoopbackOnly,
}

impl ApiPeers {
    /// What `admin_listen`'s addresses allow: loopback only when every one of them is.
    pub fn of(admin_listen: &[crate::conf::ListenSpec]) -> ApiPeers {
        if admin_listen.iter().all(|spec| is_loopback(&spec.host)) { ApiPeers::LoopbackOnly } else { ApiPeers::Any }
    }

    fn admits(self, peer: std::net::IpAddr) -> bool {
        let peer = match peer {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, std::net::IpAddr::V4),
            v4 => v4,
        };
        self == ApiPeers::Any || peer.is_loopback()
    }
}

/// Whether a listen host is a loopback address (or `localhost`).
pub fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[derive(Clone)]
pub struct Console {
    api: AdminApi,
    edge: std::sync::Arc<Edge>,
    peers: ApiPeers,
}

impl Console {
    /// The console for `api`, behind `edge` (the names of `admin_gui_listen`), its `/api`
    /// answering `peers`.
    pub fn new(api: &AdminApi, edge: Edge, peers: ApiPeers) -> Console {
        Console { api: api.behind(edge.clone()), edge: std::sync::Arc::new(edge), peers }
    }

    /// The service for one connection from `peer`.
    pub fn service(
        &self,
        peer: std::net::SocketAddr,
    ) -> impl hyper::service::Service<
        Request<Incoming>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send + use<>,
    >
    + Clone
    + Send
    + Sync
    + 'static
    + use<> {
        let console = self.clone();
        hyper::service::service_fn(move |req| {
            let console = console.clone();
            async move {
                let mut response = console.respond(req, peer).await;
                secure(response.headers_mut());
                Ok(response)
            }
        })
    }

    async fn respond(&self, req: Request<Incoming>, peer: std::net::SocketAddr) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        if path == "/api" || path.starts_with("/api/") {
            if !self.peers.admits(peer.ip()) {
                tracing::warn!(%peer, "console: an Admin API call from beyond loopback refused (admin_listen is loopback only)");
                let message = r#"{"message":"the Admin API listens on loopback only (admin_listen): the console calls it for loopback clients only"}"#;
                return Response::builder()
                    .status(StatusCode::FORBIDDEN)
                    .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
                    .header(header::CACHE_CONTROL, "no-store")
                    .body(Full::new(Bytes::from_static(message.as_bytes())))
                    .expect("a static response is valid");
            }
            return match to_admin(req) {
                Ok(req) => self.api.respond(req).await,
                Err(status) => plain(status, "invalid request target\n"),
            };
        }
        if let Err(refused) = self.edge.admit_host(req.uri().authority(), req.headers()) {
            tracing::info!(%peer, %refused, "console: a page request refused");
            let status =
                if matches!(refused, crate::admin::edge::EdgeError::NoHost | crate::admin::edge::EdgeError::BadHost(_))
                {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::FORBIDDEN
                };
            return plain(status, &format!("{refused}\n"));
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut answer = plain(StatusCode::METHOD_NOT_ALLOWED, "the console's pages are read with GET\n");
            answer.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return answer;
        }
        let (status, content_type, body, cache) = match ASSETS.iter().find(|(p, _, _)| *p == path) {
            Some((_, content_type, body)) => (StatusCode::OK, *content_type, *body, "no-cache"),
            None if is_page(path) => (StatusCode::OK, "text/html; charset=utf-8", INDEX, "no-store"),
            // The page still loads, and says that nothing is there.
            None => (StatusCode::NOT_FOUND, "text/html; charset=utf-8", INDEX, "no-store"),
        };
        // HEAD too: hyper sends the head with the body's length and leaves the body out.
        let body = Bytes::from_static(body.as_bytes());
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CACHE_CONTROL, cache)
            .body(Full::new(body))
            .expect("a static response is valid")
    }
}

/// Whether `path` is one of the console's pages: `/`, a list, an item of one, or `/data-planes/new`.
fn is_page(path: &str) -> bool {
    let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    match segments.as_slice() {
        [] | [""] => true,
        [first, rest @ ..] => PAGES.contains(first) && rest.len() <= 1 && rest.iter().all(|s| !s.is_empty()),
    }
}

/// The request with `/api` taken off its path, as the Admin API expects it.
fn to_admin(req: Request<Incoming>) -> Result<Request<Incoming>, StatusCode> {
    let (mut parts, body) = req.into_parts();
    let rest = parts.uri.path().strip_prefix("/api").unwrap_or_default();
    let path = if rest.is_empty() { "/" } else { rest };
    let target = match parts.uri.query() {
        Some(query) => format!("{path}?{query}"),
        None => path.to_string(),
    };
    let mut uri = parts.uri.clone().into_parts();
    uri.path_and_query = Some(target.parse().map_err(|_| StatusCode::BAD_REQUEST)?);
    parts.uri = Uri::from_parts(uri).map_err(|_| StatusCode::BAD_REQUEST)?;
    Ok(Request::from_parts(parts, body))
}

fn plain(status: StatusCode, text: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(text.to_string())))
        .expect("a static response is valid")
}

/// The headers every console answer carries.
fn secure(headers: &mut hyper::HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(HeaderName::from_static("cross-origin-opener-policy"), HeaderValue::from_static("same-origin"));
    headers.insert(HeaderName::from_static("cross-origin-resource-policy"), HeaderValue::from_static("same-origin"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pages_are_the_lists_their_items_and_the_overview() {
        for page in
            ["/", "/data-planes", "/data-planes/new", "/services", "/services/echo", "/analytics/", "/routes/r1"]
        {
            assert!(is_page(page), "{page}");
        }
        for other in ["/nowhere", "/services/a/b", "/services//", "/assetsx", "/api-docs"] {
            assert!(!is_page(other), "{other}");
        }
    }

    #[test]
    fn the_api_answers_beyond_loopback_only_where_the_admin_api_does() {
        let of = |list: &str| ApiPeers::of(&crate::conf::listen::parse_listen_list(list).unwrap());
        assert_eq!(of("127.0.0.1:8001, [::1]:8001, localhost:8444 ssl"), ApiPeers::LoopbackOnly);
        assert_eq!(of("127.0.0.1:8001, 0.0.0.0:8444 ssl"), ApiPeers::Any);
        assert_eq!(of("admin.internal:8001"), ApiPeers::Any);
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(ApiPeers::LoopbackOnly.admits(ip("127.0.0.1")));
        assert!(ApiPeers::LoopbackOnly.admits(ip("::1")));
        assert!(ApiPeers::LoopbackOnly.admits(ip("::ffff:127.0.0.1")));
        assert!(!ApiPeers::LoopbackOnly.admits(ip("10.0.0.5")));
        assert!(!ApiPeers::LoopbackOnly.admits(ip("::ffff:10.0.0.5")));
        assert!(ApiPeers::Any.admits(ip("10.0.0.5")));
    }

    #[test]
    fn every_asset_is_embedded_and_the_page_loads_only_them() {
        for (path, _, body) in ASSETS {
            assert!(!body.is_empty(), "{path}");
        }
        for (path, _, _) in ASSETS.iter().filter(|(p, _, _)| !p.ends_with(".svg")) {
            assert!(INDEX.contains(path), "index.html loads {path}");
        }
        assert!(
            !INDEX.contains("<script>") && !INDEX.contains("style="),
            "no inline script or style (the CSP forbids them)"
        );
        assert!(!INDEX.contains("http://") && !INDEX.contains("https://"), "nothing from the network");
    }
}
