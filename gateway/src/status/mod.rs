//! The status API on `status_listen`: `/status` (what the node is and has served),
//! `/status/ready` (200 only once the node has a configuration to serve) and `/metrics` (the
//! node's metrics for Prometheus, with Kong's names).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};

use crate::conf::{Role, Settings};
use crate::metrics::Scrape;
use crate::proxy::Proxy;

#[derive(Clone)]
pub struct StatusApi {
    inner: Arc<Inner>,
}

struct Inner {
    role: Role,
    proxy: Arc<Proxy>,
    started: Instant,
    total_requests: AtomicU64,
    metrics: Arc<Scrape>,
    /// The proxy's workers, on a node that proxies.
    workers: Option<Arc<crate::workers::Workers>>,
}

impl StatusApi {
    pub fn new(
        settings: &Settings,
        proxy: Arc<Proxy>,
        metrics: Arc<Scrape>,
        workers: Option<Arc<crate::workers::Workers>>,
    ) -> Self {
        StatusApi {
            inner: Arc::new(Inner {
                role: settings.role,
                proxy,
                started: Instant::now(),
                total_requests: AtomicU64::new(0),
                metrics,
                workers,
            }),
        }
    }

    pub fn service(
        &self,
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
        let api = self.clone();
        hyper::service::service_fn(move |req| {
            let response = api.answer(&req);
            async move { Ok(response) }
        })
    }

    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let total = self.inner.total_requests.fetch_add(1, Ordering::Relaxed) + 1;
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return json(StatusCode::METHOD_NOT_ALLOWED, serde_json::json!({ "message": "Method not allowed" }));
        }
        let snapshot = self.inner.proxy.current();
        match req.uri().path() {
            "/status" => json(
                StatusCode::OK,
                serde_json::json!({
                    "version": crate::VERSION,
                    "role": self.inner.role.as_str(),
                    "uptime_seconds": self.inner.started.elapsed().as_secs(),
                    "server": self.server(total),
                    "configuration_hash": snapshot.hash,
                    "entities": snapshot.config.counts(),
                }),
            ),
            "/status/ready" if snapshot.is_empty() => json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({ "message": "no configuration available (empty configuration present)" }),
            ),
            "/status/ready" => json(StatusCode::OK, serde_json::json!({ "message": "ready" })),
            "/metrics" => {
                let body = self.inner.metrics.encode();
                Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", crate::metrics::CONTENT_TYPE)
                    .body(Full::new(Bytes::from(body)))
                    .expect("a static response is valid")
            }
            _ => json(StatusCode::NOT_FOUND, serde_json::json!({ "message": "Not found" })),
        }
    }
}

impl StatusApi {
    /// Kong's `server` block, with the proxy's workers (ours: `workers`, `worker_connections`).
    fn server(&self, total: u64) -> serde_json::Value {
        let mut server = serde_json::json!({ "total_requests": total });
        if let Some(workers) = &self.inner.workers {
            server["workers"] = workers.len().into();
            server["worker_connections"] = workers.per_worker().into();
            server["connections_accepted"] = workers.accepted().into();
            server["connections_active"] = workers.open_connections().iter().sum::<usize>().into();
        }
        server
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("a static response is valid")
}
