//! The responses the gateway makes itself, in Kong's shape (`{"message": "..."}` with Kong's
//! texts), and the typed failures they answer, with who is to blame. (Whether a retry is safe is
//! decided where the retry is: `send::retry_is_safe`.)

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use super::context::RequestContext;
use super::phases::PhaseError;
use super::upstream::ProxyBody;

/// Who caused a request to fail: decides the status and what the log says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The client sent something unacceptable, too much, or too slowly (4xx).
    Client,
    /// The upstream could not be reached, was too slow, or answered badly (502/503/504).
    Upstream,
    /// The gateway itself (a component failure): 500.
    Gateway,
    /// A plugin failed in one of its phases: 500, only for its request.
    Plugin,
}

/// A request that cannot be served, and why.
#[derive(Debug)]
pub struct Failure {
    pub status: StatusCode,
    /// Kong's text for the client.
    pub message: &'static str,
    /// What happened, for the log (never sent to the client).
    pub detail: String,
    pub blame: Blame,
    /// Already reported where it began (a plugin on back-off): logged at debug only.
    pub quiet: bool,
}

impl Failure {
    pub fn new(status: StatusCode, blame: Blame, detail: impl Into<String>) -> Failure {
        Failure { status, message: message_for(status), detail: detail.into(), blame, quiet: false }
    }

    /// A plugin's phase failed: 500 with Kong's body.
    pub fn plugin(error: PhaseError) -> Failure {
        let quiet = error.fault == super::phases::Fault::Unavailable;
        Failure { quiet, ..Failure::new(StatusCode::INTERNAL_SERVER_ERROR, Blame::Plugin, error.to_string()) }
    }

    pub fn response(&self) -> Response<ProxyBody> {
        kong_error(self.status, self.message)
    }

    /// Logs the failure as its blame deserves and makes its answer.
    pub fn answer(&self, ctx: &RequestContext, client_version: hyper::Version) -> Response<ProxyBody> {
        let status = self.status.as_u16();
        match self.blame {
            Blame::Client => {
                tracing::debug!(peer = %ctx.conn.peer, status, error = %self.detail, "request refused")
            }
            Blame::Upstream => tracing::warn!(status, error = %self.detail, "upstream request failed"),
            Blame::Gateway => tracing::error!(error = %self.detail, "request failed in the gateway"),
            Blame::Plugin => {
                let route = ctx.route().map(|r| r.name.clone().unwrap_or_else(|| r.id.to_string()));
                let route = route.as_deref().unwrap_or("none");
                if self.quiet {
                    tracing::debug!(route, error = %self.detail, "a plugin failed the request")
                } else {
                    tracing::error!(route, error = %self.detail, "a plugin failed the request")
                }
            }
        }
        let mut response = self.response();
        if self.blame == Blame::Client && client_version < hyper::Version::HTTP_2 {
            // What else the client sent cannot be trusted to frame a next request.
            response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

/// Kong's default texts for the statuses the gateway answers itself.
pub fn message_for(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "Bad request",
        404 => "Not found",
        408 => "Request timeout",
        413 => "Payload too large",
        414 => "URI too long",
        431 => "Request header or cookie too large",
        500 => "An unexpected error occurred",
        502 => "An invalid response was received from the upstream server",
        503 => "The upstream server is currently unavailable",
        504 => "The upstream server is timing out",
        _ => "The request could not be served",
    }
}

/// A response the gateway makes itself, in Kong's shape: `{"message": "..."}`.
pub fn kong_error(status: StatusCode, message: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "message": message }).to_string();
    let mut response = Response::new(Full::new(Bytes::from(body)).map_err(|never| match never {}).boxed());
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    headers.insert(header::SERVER, HeaderValue::from_static(concat!("gateway/", env!("CARGO_PKG_VERSION"))));
    response
}
