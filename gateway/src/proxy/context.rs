//! One request's state from accept to log: what the connection says about the client, the
//! configuration the request started on, what routing chose, who the client is (once an auth
//! plugin says so), the phase timings Kong reports as latencies, and the map plugins share
//! (`kong.ctx.shared`). Created once per request; moved into the response body when a phase
//! still needs it after the head is sent.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hyper::StatusCode;

use super::snapshot::Snapshot;
use crate::entities::{Route, Service};
use crate::server::Conn;

/// The consumer a request was authenticated as, in this request's own memory: its id, and the name
/// its metrics carry (its username, else its id). Not the configuration's `Consumer` behind an
/// `Arc`: cloning that writes a reference count every worker shares, once per authenticated
/// request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRef {
    pub id: uuid::Uuid,
    pub label: Arc<str>,
}

pub struct RequestContext {
    /// The client's connection: peer, local address, TLS and SNI.
    pub conn: Conn,
    /// The configuration version the request started on; it keeps it to the end.
    pub snapshot: Arc<Snapshot>,
    /// Position of the matched route in `snapshot.routes`, once routed.
    pub route: Option<usize>,
    /// The client's address as the gateway trusts it (`trusted_ips`, `real_ip_header`); set when
    /// plugins run, else the peer's is used.
    pub client_ip: Option<std::net::IpAddr>,
    /// The authenticated consumer: set by an auth plugin in `access`.
    pub consumer: Option<ConsumerRef>,
    /// The id of the credential that identified the consumer, when the auth plugin named one.
    pub credential: Option<String>,
    /// The request body, once a plugin asked for it.
    pub body: super::phases::BodyState,
    /// What a plugin put in place of the client's body (`request.set-body`).
    pub body_replacement: Option<hyper::body::Bytes>,
    /// A plugin set the Host header in the phase now running, possibly to the value it had: the
    /// Host goes upstream (Kong's `upstream_host`). Set by the phase runner, taken by `rewrite`
    /// and `access`.
    pub host_set: bool,
    pub timings: Timings,
    /// The status sent to the client, once the head is final (set when phases run).
    pub status: Option<StatusCode>,
    /// Response body bytes handed to the client (counted when `body_filter` or `log` runs).
    pub bytes_out: u64,
    /// Whether the response body was sent whole; false when the client went away mid-body or the
    /// upstream failed while sending it.
    pub body_complete: bool,
    /// Kong's `kong.ctx.shared`: what one plugin leaves for later phases and other plugins.
    pub shared: HashMap<String, String>,
    /// The plugins resolved for this request and their view of it (set by the wasm runner).
    pub plugins: Option<Box<crate::wasm::plugin_runner::RequestPlugins>>,
    /// Counts the request body bytes sent upstream; only when phases run (see [`Self::bytes_in`]).
    pub(super) received: Option<Arc<AtomicU64>>,
    /// A plugin answered the request itself (Kong's `exit` source in metrics).
    pub exited: bool,
    /// Kong's `$kong_request_id`: `X-Kong-Request-Id`, the error answers' `request_id`, the access
    /// log's `kong_request_id`.
    pub request_id: crate::logs::RequestId,
    /// What the client's head said about the answer formats it wants.
    pub wishes: super::answers::Wishes,
}

/// When each step of the request happened. `start` is when the pipeline took the request.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    pub start: Instant,
    /// Routing done (a route matched).
    pub routed: Option<Instant>,
    /// The request went to the upstream (connecting started).
    pub upstream_start: Option<Instant>,
    /// A connection to the upstream was ready (new or from the pool).
    pub upstream_connected: Option<Instant>,
    /// The upstream's response head arrived.
    pub first_byte: Option<Instant>,
    /// The response body ended or the client went away.
    pub end: Option<Instant>,
}

impl RequestContext {
    pub fn new(conn: Conn, snapshot: Arc<Snapshot>) -> RequestContext {
        RequestContext {
            conn,
            snapshot,
            route: None,
            client_ip: None,
            consumer: None,
            credential: None,
            body: super::phases::BodyState::Unread,
            body_replacement: None,
            host_set: false,
            timings: Timings {
                start: Instant::now(),
                routed: None,
                upstream_start: None,
                upstream_connected: None,
                first_byte: None,
                end: None,
            },
            status: None,
            bytes_out: 0,
            body_complete: false,
            shared: HashMap::new(),
            plugins: None,
            received: None,
            exited: false,
            request_id: crate::logs::RequestId::new(),
            wishes: super::answers::Wishes::default(),
        }
    }

    /// The matched route, once routed.
    pub fn route(&self) -> Option<&Route> {
        self.route.map(|i| &self.snapshot.routes[i].0)
    }

    /// The matched route's service, once routed (a route may have none).
    pub fn service(&self) -> Option<&Arc<Service>> {
        self.route.and_then(|i| self.snapshot.routes[i].1.as_ref())
    }

    /// Request body bytes sent upstream so far (counted only when phases run).
    pub fn bytes_in(&self) -> u64 {
        self.received.as_ref().map_or(0, |r| r.load(Ordering::Relaxed))
    }
}

impl Timings {
    /// Kong's `latencies.kong`: the gateway's own time, before the upstream was asked and after
    /// its response head came back (to the end of the response when known).
    pub fn kong(&self) -> Option<Duration> {
        let before = self.upstream_start.unwrap_or(self.end?) - self.start;
        let after = match (self.first_byte, self.end) {
            (Some(first), Some(end)) => end.saturating_duration_since(first),
            _ => Duration::ZERO,
        };
        Some(before + after)
    }

    /// Kong's `latencies.proxy`: the upstream's time, from asking it to its response head.
    pub fn proxy(&self) -> Option<Duration> {
        Some(self.first_byte?.saturating_duration_since(self.upstream_start?))
    }

    /// Kong's `latencies.request`: the whole request, from the pipeline taking it to its end.
    pub fn request(&self) -> Option<Duration> {
        Some(self.end?.saturating_duration_since(self.start))
    }
}
