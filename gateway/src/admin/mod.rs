//! The Admin API on `admin_listen`, in Kong's shapes: the entity endpoints (`/services`,
//! `/services/{id or name}`, nested ones such as `/services/{}/routes`), `/config` to export or
//! replace everything as a declarative document, `/` and `/status`. Every write goes through the
//! [`Catalog`]; the answer comes once the proxy serves the change.
//!
//! A request first passes the [`edge`] (Host, Origin), then its body is read within the limits of
//! [`body`]. A write then runs on a task of its own: a client that goes away cannot cut it between
//! the store's commit and the in-memory state, so both always hold the same configuration.

pub mod body;
mod dp_certificates;
pub mod edge;

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::watch;
use uuid::Uuid;

use crate::catalog::{ApiError, Catalog, State, Target};
use crate::cluster::cp::Registry;
use crate::cluster::cp::dp_certificates::DpCertificates;
use crate::entities::Kind;
use crate::telemetry;
use crate::telemetry::store::AnalyticsStore;

/// Page size when `size` is not given, and the largest allowed (Kong's).
const DEFAULT_PAGE: usize = 100;
const MAX_PAGE: usize = 1000;
/// How long a write waits for the proxy to serve it before answering anyway.
const APPLY_WAIT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct AdminApi {
    inner: Arc<Inner>,
    /// Who may reach it through this door (each listener kind has its own: the Admin API's, the
    /// console's `/api`).
    edge: Arc<edge::Edge>,
}

struct Inner {
    catalog: Arc<Catalog>,
    /// The catalog version the proxy serves; `None` where no proxy runs (a control plane).
    applied: Option<watch::Receiver<u64>>,
    /// What `GET /` shows: node id, hostname, the settings that are safe to show.
    info: Value,
    /// The data planes, on a control plane.
    registry: Option<Arc<Registry>>,
    /// The extra trusted data-plane certificates, on a pki control plane (unset: shared mode).
    dp_certificates: OnceLock<Arc<DpCertificates>>,
    /// `/metrics`, on a control plane.
    metrics: OnceLock<Arc<crate::metrics::Scrape>>,
    /// `/analytics`, where the node keeps analytics.
    analytics: OnceLock<Arc<AnalyticsStore>>,
}

impl AdminApi {
    pub fn new(
        catalog: Arc<Catalog>,
        applied: Option<watch::Receiver<u64>>,
        info: Value,
        registry: Option<Arc<Registry>>,
        edge: edge::Edge,
    ) -> AdminApi {
        AdminApi {
            inner: Arc::new(Inner {
                catalog,
                applied,
                info,
                registry,
                dp_certificates: OnceLock::new(),
                metrics: OnceLock::new(),
                analytics: OnceLock::new(),
            }),
            edge: Arc::new(edge),
        }
    }

    /// The same Admin API behind another door: the console's, whose names and listeners differ.
    pub fn behind(&self, edge: edge::Edge) -> AdminApi {
        AdminApi { inner: self.inner.clone(), edge: Arc::new(edge) }
    }

    /// Serve `/metrics` (a control plane's: its data planes as Kong's exporter shows them).
    pub fn serve_metrics(&self, scrape: Arc<crate::metrics::Scrape>) {
        let _ = self.inner.metrics.set(scrape);
    }

    /// Serve `/analytics` and `/analytics/billing` from `store`.
    pub fn serve_analytics(&self, store: Arc<AnalyticsStore>) {
        let _ = self.inner.analytics.set(store);
    }

    /// On a pki control plane: serve `/clustering/dp-certificates` from `certs`. Without this a
    /// control plane refuses those requests (shared mode).
    pub fn serve_dp_certificates(&self, certs: Arc<DpCertificates>) {
        let _ = self.inner.dp_certificates.set(certs);
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
            let api = api.clone();
            async move { Ok(api.respond(req).await) }
        })
    }

    /// Answers one request, from the door to Kong's headers.
    pub async fn respond(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let start = std::time::Instant::now();
        let mut response = match self.receive(req).await {
            Ok(request) => self.answer(request).await,
            Err(e) => error_response(e),
        };
        // Kong's `headers` on the Admin API: `Server` set or removed, and its latency.
        let (headers, shown) = (response.headers_mut(), &self.edge.headers);
        if shown.server {
            headers.insert(hyper::header::SERVER, hyper::header::HeaderValue::from_static(SERVER));
        }
        if shown.admin_latency {
            headers.insert(ADMIN_LATENCY, (start.elapsed().as_millis() as u64).into());
        }
        response
    }

    /// The door: who is asking, and the whole body within its limits.
    async fn receive(&self, req: Request<Incoming>) -> Result<Received, ApiError> {
        self.edge.admit(req.uri().authority(), req.headers())?;
        let header = |name| req.headers().get(name).and_then(|v: &hyper::header::HeaderValue| v.to_str().ok());
        let content_type = header(hyper::header::CONTENT_TYPE).map(str::to_string);
        let length = header(hyper::header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
        let (parts, incoming) = req.into_parts();
        let bytes = body::read(incoming, length, self.edge.max_body, self.edge.body_timeout).await?;
        Ok(Received {
            method: parts.method,
            path: parts.uri.path().to_string(),
            query: parts.uri.query().unwrap_or("").to_string(),
            content_type,
            bytes,
        })
    }

    /// Answers a received request. Writes run to completion on their own task whatever happens to
    /// the connection; reads are answered in place.
    async fn answer(&self, request: Received) -> Response<Full<Bytes>> {
        if let (Some(scrape), "/metrics", true) =
            (self.inner.metrics.get(), request.path.as_str(), request.method == Method::GET)
        {
            return Response::builder()
                .status(StatusCode::OK)
                .header(hyper::header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)
                .body(Full::new(Bytes::from(scrape.encode())))
                .expect("a static response is valid");
        }
        let result = if request.method == Method::GET || request.method == Method::HEAD {
            self.handle(request).await
        } else {
            let api = self.clone();
            match tokio::spawn(async move { api.handle(request).await }).await {
                Ok(result) => result,
                Err(e) => Err(ApiError::internal(format!("the write failed: {e}"))),
            }
        };
        match result {
            Ok((status, body)) => respond(status, body),
            Err(e) => error_response(e),
        }
    }

    async fn handle(&self, request: Received) -> Result<(StatusCode, Option<Value>), ApiError> {
        let Received { method, path, query, content_type, bytes } = request;
        let segments: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned())
            .collect();
        let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
        match segments.as_slice() {
            [] => only_get(&method).map(|()| (StatusCode::OK, Some(self.root()))),
            ["status"] => only_get(&method).map(|()| (StatusCode::OK, Some(self.status()))),
            ["config"] => self.config(&method, content_type.as_deref(), &bytes).await,
            ["clustering", "dp-certificates", rest @ ..] => {
                self.inner.registry.as_ref().ok_or_else(ApiError::not_found)?;
                let certs = self.inner.dp_certificates.get().ok_or_else(dp_certificates::shared_mode)?;
                dp_certificates::handle(certs, &method, rest, content_type.as_deref(), &bytes).await
            }
            ["clustering", what] => {
                only_get(&method)?;
                let registry = self.inner.registry.as_ref().ok_or_else(ApiError::not_found)?;
                let rows = registry.rows();
                match *what {
                    "data-planes" => Ok((StatusCode::OK, Some(json!({ "data": rows, "next": null })))),
                    // Kong's older view: by node id.
                    "status" => {
                        let map: serde_json::Map<String, Value> = rows
                            .iter()
                            .map(|r| {
                                let row = json!({ "config_hash": r.config_hash, "hostname": r.hostname, "ip": r.ip, "last_seen": r.last_seen });
                                (r.id.to_string(), row)
                            })
                            .collect();
                        Ok((StatusCode::OK, Some(Value::Object(map))))
                    }
                    _ => Err(ApiError::not_found()),
                }
            }
            ["analytics", rest @ ..] => self.analytics(&method, rest, &query).await,
            ["plugins", "enabled"] => {
                only_get(&method)?;
                let names: Vec<&str> = self.inner.catalog.plugins().names().collect();
                Ok((StatusCode::OK, Some(json!({ "enabled_plugins": names }))))
            }
            ["plugins", "schema", name] | ["schemas", "plugins", name] => {
                only_get(&method)?;
                let catalog = self.inner.catalog.clone();
                let wanted = name.to_string();
                // The plugin's check runs wasm: off the async threads.
                let schema = tokio::task::spawn_blocking(move || {
                    catalog.plugins().get(&wanted).map(crate::entities::describe_plugin)
                })
                .await
                .map_err(|_| ApiError::internal("describing the plugin failed"))?;
                match schema {
                    Some(schema) => Ok((StatusCode::OK, Some(schema))),
                    None => {
                        Err(ApiError { status: 404, body: json!({ "message": format!("No plugin named '{name}'") }) })
                    }
                }
            }
            [k] => {
                let kind = Kind::from_endpoint(k).ok_or_else(ApiError::not_found)?;
                let base = format!("/{}", kind.endpoint());
                self.collection(&method, &query, &base, kind, None, content_type.as_deref(), &bytes).await
            }
            [k, key] => {
                let kind = Kind::from_endpoint(k).ok_or_else(ApiError::not_found)?;
                self.item(&method, Target { kind, parent: None, key: Some(key) }, content_type.as_deref(), &bytes).await
            }
            [p, key, field]
                if let Some(kind) = Kind::from_endpoint(p)
                    && let Some(link) = kind.descriptor().links.iter().find(|l| l.field == *field) =>
            {
                // Kong's `/routes/{r}/service`, `/key-auths/{k}/consumer`: the entity a link
                // points at.
                only_get(&method)?;
                let state = self.inner.catalog.current();
                let id = state.find(kind, key, None).ok_or_else(ApiError::not_found)?;
                let linked = state.linked(kind, id, link.field).ok_or_else(ApiError::not_found)?;
                Ok((StatusCode::OK, Some(state.render(link.to, linked).ok_or_else(ApiError::not_found)?)))
            }
            [p, parent_key, c] => {
                let (parent, kind) = self.nested(p, parent_key, c)?;
                // Pages of a nested list link to the same nested list, by the parent's id.
                let base = format!("/{p}/{}/{}", parent.1, kind.nested_endpoint());
                self.collection(&method, &query, &base, kind, Some(parent), content_type.as_deref(), &bytes).await
            }
            [p, parent_key, c, key] => {
                let (parent, kind) = self.nested(p, parent_key, c)?;
                self.item(
                    &method,
                    Target { kind, parent: Some(parent), key: Some(key) },
                    content_type.as_deref(),
                    &bytes,
                )
                .await
            }
            _ => Err(ApiError::not_found()),
        }
    }

    /// `GET /analytics` (`rest` empty) and `GET /analytics/billing`, read off the async threads.
    async fn analytics(
        &self,
        method: &Method,
        rest: &[&str],
        query: &str,
    ) -> Result<(StatusCode, Option<Value>), ApiError> {
        let store = self.inner.analytics.get().ok_or_else(ApiError::not_found)?.clone();
        only_get(method)?;
        let invalid = |e: telemetry::query::BadParameter| ApiError {
            status: 400,
            body: json!({ "message": e.to_string(), "fields": { e.parameter.clone(): e.message } }),
        };
        let failed = |e: crate::store::StoreError| ApiError::internal(format!("reading the analytics: {e}"));
        let answer = match rest {
            [] => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
                let params = telemetry::query::Params::parse(query, now).map_err(invalid)?;
                let config = self.inner.catalog.current().config.clone();
                tokio::task::spawn_blocking(move || {
                    let (first, last) = params.minutes();
                    let found = store.query(first, last)?;
                    let nodes = store.nodes()?;
                    Ok(telemetry::query::answer(&params, &found, &config, &nodes))
                })
                .await
                .map_err(|_| ApiError::internal("reading the analytics failed"))?
                .map_err(failed)?
            }
            ["billing"] => {
                if !query.is_empty() {
                    let parameter = query.split(['=', '&']).next().unwrap_or(query).to_string();
                    return Err(invalid(telemetry::query::BadParameter {
                        parameter,
                        message: "/analytics/billing takes no parameters".into(),
                    }));
                }
                let months = tokio::task::spawn_blocking(move || store.months())
                    .await
                    .map_err(|_| ApiError::internal("reading the analytics failed"))?
                    .map_err(failed)?;
                telemetry::query::billing(&months)
            }
            _ => return Err(ApiError::not_found()),
        };
        Ok((StatusCode::OK, Some(answer)))
    }

    /// `/{parent kind}/{parent}/{kind}`: the parent's link and the child kind.
    fn nested(
        &self,
        parent_kind: &str,
        parent_key: &str,
        child: &str,
    ) -> Result<((&'static str, Uuid), Kind), ApiError> {
        let parent_kind = Kind::from_endpoint(parent_kind).ok_or_else(ApiError::not_found)?;
        let child = Kind::from_nested_endpoint(child).ok_or_else(ApiError::not_found)?;
        let field = child.link_to(parent_kind).ok_or_else(ApiError::not_found)?.field;
        let parent =
            self.inner.catalog.current().find(parent_kind, parent_key, None).ok_or_else(ApiError::not_found)?;
        Ok(((field, parent), child))
    }

    #[allow(clippy::too_many_arguments)]
    async fn collection(
        &self,
        method: &Method,
        query: &str,
        base: &str,
        kind: Kind,
        parent: Option<(&'static str, Uuid)>,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Result<(StatusCode, Option<Value>), ApiError> {
        match *method {
            Method::GET | Method::HEAD => {
                Ok((StatusCode::OK, Some(page(&self.inner.catalog.current(), base, kind, parent, query)?)))
            }
            Method::POST => {
                self.writable(kind, "create")?;
                let body = body::decode(kind.name(), content_type, bytes)?;
                let (state, id) = self.inner.catalog.create(Target { kind, parent, key: None }, body).await?;
                self.served(&state).await;
                Ok((StatusCode::CREATED, state.render(kind, id)))
            }
            _ => Err(ApiError::method_not_allowed()),
        }
    }

    async fn item(
        &self,
        method: &Method,
        target: Target<'_>,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Result<(StatusCode, Option<Value>), ApiError> {
        let kind = target.kind;
        match *method {
            Method::GET | Method::HEAD => {
                let state = self.inner.catalog.current();
                let id =
                    state.find(kind, target.key.unwrap_or_default(), target.parent).ok_or_else(ApiError::not_found)?;
                Ok((StatusCode::OK, state.render(kind, id)))
            }
            Method::PUT => {
                self.writable(kind, "create or update")?;
                let body = body::decode(kind.name(), content_type, bytes)?;
                let (state, id) = self.inner.catalog.upsert(target, body).await?;
                self.served(&state).await;
                Ok((StatusCode::OK, state.render(kind, id)))
            }
            Method::PATCH => {
                self.writable(kind, "update")?;
                let body = body::decode(kind.name(), content_type, bytes)?;
                let (state, id) = self.inner.catalog.update(target, body).await?;
                self.served(&state).await;
                Ok((StatusCode::OK, state.render(kind, id)))
            }
            Method::DELETE => {
                self.writable(kind, "delete")?;
                self.inner.catalog.delete(target).await?;
                self.served(&self.inner.catalog.current()).await;
                Ok((StatusCode::NO_CONTENT, None))
            }
            _ => Err(ApiError::method_not_allowed()),
        }
    }

    /// A DB-less node changes only through `POST /config`, as in Kong.
    fn writable(&self, kind: Kind, verb: &str) -> Result<(), ApiError> {
        if self.inner.catalog.has_store() {
            return Ok(());
        }
        Err(ApiError {
            status: 405,
            body: json!({ "message": format!("cannot {verb} '{kind}' entities when not using a database") }),
        })
    }

    /// Waits (a bounded time) until the proxy serves `state`'s version or a later one.
    async fn served(&self, state: &State) {
        let Some(applied) = &self.inner.applied else { return };
        let mut applied = applied.clone();
        let wanted = state.version;
        let _ = tokio::time::timeout(APPLY_WAIT, applied.wait_for(|v| *v >= wanted)).await;
    }

    async fn config(
        &self,
        method: &Method,
        content_type: Option<&str>,
        bytes: &[u8],
    ) -> Result<(StatusCode, Option<Value>), ApiError> {
        match *method {
            Method::GET => {
                let state = self.inner.catalog.current();
                let doc = crate::entities::to_declarative(&state.config);
                let yaml =
                    yaml_serde::to_string(&doc).map_err(|e| ApiError::internal(format!("exporting YAML: {e}")))?;
                Ok((StatusCode::OK, Some(json!({ "config": yaml, "configuration_hash": state.hash }))))
            }
            Method::POST => {
                let config = declarative_body(content_type, bytes, self.inner.catalog.plugins())?;
                let state = self.inner.catalog.replace(&config).await?;
                self.served(&state).await;
                let mut doc = crate::entities::to_declarative(&state.config);
                doc["configuration_hash"] = json!(state.hash);
                Ok((StatusCode::CREATED, Some(doc)))
            }
            _ => Err(ApiError::method_not_allowed()),
        }
    }

    fn root(&self) -> Value {
        let state = self.inner.catalog.current();
        let mut enabled: Vec<&str> = state.config.plugins.iter().map(|p| p.name.as_str()).collect();
        enabled.sort_unstable();
        enabled.dedup();
        let mut info = self.inner.info.clone();
        let plugins = self.inner.catalog.plugins();
        let available: serde_json::Map<String, Value> = plugins
            .names()
            .filter_map(|name| {
                let p = plugins.get(name)?;
                Some((name.to_string(), json!({ "version": p.version(), "priority": p.priority() })))
            })
            .collect();
        info["plugins"] = json!({ "available_on_server": available, "enabled_in_cluster": enabled });
        info
    }

    fn status(&self) -> Value {
        let state = self.inner.catalog.current();
        json!({
            "database": { "reachable": true },
            "configuration_hash": state.hash,
            "entities": state.config.counts(),
        })
    }
}

fn only_get(method: &Method) -> Result<(), ApiError> {
    if *method == Method::GET || *method == Method::HEAD { Ok(()) } else { Err(ApiError::method_not_allowed()) }
}

/// One page of a list: `{"data": […], "next": "/path?offset=…" | null, "offset": …}`. `next` is
/// `base` (the list's own path) with the same `size` and `tags`, so following it stays in the list.
fn page(state: &State, base: &str, kind: Kind, parent: Option<(&str, Uuid)>, query: &str) -> Result<Value, ApiError> {
    let mut size = DEFAULT_PAGE;
    let mut after: Option<Uuid> = None;
    let mut tags: Option<String> = None;
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "size" => {
                size = value.parse().ok().filter(|n| (1..=MAX_PAGE).contains(n)).ok_or_else(|| {
                    ApiError::bad_request(format!("size must be an integer between 1 and {MAX_PAGE}"))
                })?;
            }
            "offset" => {
                after = Some(Uuid::parse_str(&value).map_err(|_| ApiError::bad_request("invalid offset"))?);
            }
            "tags" => tags = Some(value.into_owned()),
            _ => {}
        }
    }
    let items: Vec<(Uuid, Value)> = state
        .list(kind, parent)
        .into_iter()
        .filter(|(id, _)| after.is_none_or(|a| *id > a))
        .filter_map(|(id, _)| state.render(kind, id).map(|v| (id, v)))
        .filter(|(_, v)| tags.as_deref().is_none_or(|t| has_tags(v, t)))
        .collect();
    let more = items.len() > size;
    let data: Vec<Value> = items.iter().take(size).map(|(_, v)| v.clone()).collect();
    let last = items.iter().take(size).next_back().map(|(id, _)| *id);
    let (next, offset) = match (more, last) {
        (true, Some(id)) => {
            let mut next = url::form_urlencoded::Serializer::new(String::new());
            next.append_pair("offset", &id.to_string()).append_pair("size", &size.to_string());
            if let Some(tags) = &tags {
                next.append_pair("tags", tags);
            }
            (json!(format!("{base}?{}", next.finish())), json!(id.to_string()))
        }
        _ => (Value::Null, Value::Null),
    };
    let mut out = json!({ "data": data, "next": next });
    if !offset.is_null() {
        out["offset"] = offset;
    }
    Ok(out)
}

/// Kong's tag filter: `a,b` needs both, `a/b` either.
fn has_tags(entity: &Value, filter: &str) -> bool {
    let tags: Vec<&str> =
        entity.get("tags").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
    if filter.contains('/') {
        filter.split('/').any(|t| tags.contains(&t))
    } else {
        filter.split(',').all(|t| tags.contains(&t))
    }
}

/// `POST /config` bodies: a declarative document as JSON or YAML, or `{"config": "<text>"}`, or a
/// form with `config=<text>`.
fn declarative_body(
    content_type: Option<&str>,
    bytes: &[u8],
    plugins: &crate::entities::PluginRegistry,
) -> Result<crate::entities::Config, ApiError> {
    let unreadable = |e: body::BodyError| match e {
        body::BodyError::Syntax { message, .. } => {
            invalid_declarative(&format!("not valid YAML or JSON: {message}"), None)
        }
        other => other.into(),
    };
    let mut doc = body::document(content_type, bytes).map_err(unreadable)?;
    if doc.get("_format_version").is_none()
        && let Some(inner) = doc.get("config").and_then(Value::as_str)
    {
        doc = body::yaml(inner.as_bytes()).map_err(unreadable)?;
    }
    crate::entities::parse_value_with(&doc, plugins).map_err(|errors| {
        let pairs: Vec<(String, String)> = errors.iter().map(|e| (e.path.clone(), e.message.clone())).collect();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        invalid_declarative(&text.join("; "), Some(crate::catalog::error::fields(&pairs)))
    })
}

fn invalid_declarative(message: &str, fields: Option<Value>) -> ApiError {
    ApiError {
        status: 400,
        body: json!({
            "code": 14,
            "name": "invalid declarative configuration",
            "message": format!("declarative config is invalid: {message}"),
            "fields": fields.unwrap_or_else(|| json!({})),
        }),
    }
}

/// A request as the handlers see it: read whole, within the limits.
struct Received {
    method: Method,
    path: String,
    query: String,
    content_type: Option<String>,
    bytes: Bytes,
}

const SERVER: &str = concat!("gateway/", env!("CARGO_PKG_VERSION"));
const ADMIN_LATENCY: hyper::header::HeaderName = hyper::header::HeaderName::from_static("x-kong-admin-latency");

fn error_response(e: ApiError) -> Response<Full<Bytes>> {
    respond(StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST), Some(e.body))
}

fn respond(status: StatusCode, body: Option<Value>) -> Response<Full<Bytes>> {
    // Answers can carry keys (certificates, /clustering/dp-certificates/generate): never cached.
    let builder = Response::builder().status(status).header("cache-control", "no-store");
    match body {
        Some(body) => builder
            .header("content-type", "application/json; charset=utf-8")
            .body(Full::new(Bytes::from(body.to_string()))),
        None => builder.body(Full::new(Bytes::new())),
    }
    .expect("a response from a status and JSON is valid")
}

#[cfg(test)]
mod tests;
