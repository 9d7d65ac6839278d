//! The seam plugins plug into: Kong's phases on the proxy path and the [`PhaseRunner`] that runs
//! them. A runner is built per configuration version and held in its [`Snapshot`], so a request
//! keeps the plugins it started with. A configuration without plugins has no runner, and the
//! pipeline then skips every phase at the cost of one `Option` check each.
//!
//! Order (Kong's): `rewrite` (before routing, global plugins only) → routing → `access` (before
//! the upstream) → the upstream → `header_filter` (the response head, before it is sent) →
//! `body_filter` (each chunk, only when wanted) → `log` (after the response ended, off its path).
//! A runner ending the request in `rewrite` or `access` skips the upstream; the later phases still
//! run on its response.
//!
//! [`Snapshot`]: super::snapshot::Snapshot

use hyper::body::Bytes;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode, http::request, http::response};

use super::context::RequestContext;
use super::upstream::ProxyBody;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    Rewrite,
    Access,
    HeaderFilter,
    BodyFilter,
    Log,
}

/// What the request does after `rewrite` or `access`.
#[derive(Debug)]
pub enum Flow {
    Continue,
    /// End the request here with this response (Kong's `kong.response.exit`).
    Respond(Exit),
    /// A plugin needs the request body: read it (up to this many bytes), put it in
    /// [`RequestContext::body`], and run the phase again; it resumes at that plugin.
    ReadBody(u64),
}

/// What the pipeline does after `rewrite` or `access`.
pub enum Step {
    Proceed,
    /// A plugin answered.
    Answer(hyper::Response<super::upstream::ProxyBody>),
    /// Read the body (up to this many bytes) and run the phase again.
    ReadBody(u64),
}

/// The request body as read for the plugins.
#[derive(Debug, Clone, Default)]
pub enum BodyState {
    /// No plugin asked for it.
    #[default]
    Unread,
    Complete(Bytes),
    /// Longer than asked for: its `Content-Length`, else the bytes read before giving up.
    TooLarge(u64),
}

/// A plugin's own response.
#[derive(Debug, Clone)]
pub struct Exit {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Exit {
    pub fn into_response(self) -> Response<ProxyBody> {
        use http_body_util::BodyExt;
        let mut response = Response::new(http_body_util::Full::new(self.body).map_err(|never| match never {}).boxed());
        *response.status_mut() = self.status;
        *response.headers_mut() = self.headers;
        response
            .headers_mut()
            .entry(header::SERVER)
            .or_insert(HeaderValue::from_static(concat!("gateway/", env!("CARGO_PKG_VERSION"))));
        response
    }
}

/// A plugin failed in a phase: only its request fails (500, Kong's body), blamed on the plugin.
#[derive(Debug, thiserror::Error)]
#[error("plugin {plugin} failed in {phase:?}: {reason}")]
pub struct PhaseError {
    pub plugin: String,
    pub phase: Phase,
    pub reason: String,
    pub fault: Fault,
}

/// How a plugin failed a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The plugin said so (its phase returned an error).
    Error,
    /// The sandbox stopped it: a trap, its CPU deadline or its memory cap.
    Trap,
    /// It was not called: it is on back-off after trapping again and again, or its configuration
    /// could not be set up. Logged when that began, not per request.
    Unavailable,
}

/// Runs a configuration's plugins in each phase. Calls are synchronous and short (a wasm call
/// takes microseconds): they never wait on the network.
pub trait PhaseRunner: Send + Sync {
    /// Whether any plugin runs in `phase` for this request (the route is known from `access`
    /// on). Cheap: asked before every phase, and decides whether the response body is wrapped at
    /// all.
    fn wants(&self, phase: Phase, ctx: &RequestContext) -> bool;

    /// Before routing; may change what is routed (method, path, headers). A runner that sets the
    /// Host header, in `rewrite` or `access`, says so in `ctx.host_set`: that Host is then routed
    /// by (in `rewrite`) and sent upstream.
    fn rewrite(&self, ctx: &mut RequestContext, req: &mut request::Parts) -> Result<Flow, PhaseError>;

    /// After routing, before the upstream. A changed path is sent upstream as it is.
    fn access(&self, ctx: &mut RequestContext, req: &mut request::Parts) -> Result<Flow, PhaseError>;

    /// The response head before it is sent: upstream's, the gateway's or a plugin's.
    fn header_filter(&self, ctx: &mut RequestContext, res: &mut response::Parts) -> Result<(), PhaseError>;

    /// Each response body chunk; `eof` on the last (which may be empty). The head is sent: an
    /// error ends the body early.
    fn body_filter(&self, ctx: &mut RequestContext, chunk: &mut Bytes, eof: bool) -> Result<(), PhaseError>;

    /// After the response ended (or the client went away), off the response's path.
    fn log(&self, ctx: &mut RequestContext);
}

#[cfg(test)]
mod tests;
