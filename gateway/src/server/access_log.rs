//! A listener's access log: each request's head is noted when it arrives and its line written,
//! through the listener's [`Sink`], when its response has been sent or given up (with the body
//! bytes that went out). Requests hyper refuses before any service sees them are not logged.

use std::net::IpAddr;
use std::sync::Arc;

use hyper::Request;

use crate::conf::ClientTrust;
use crate::logs::access::{Entry, Sink};
use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use crate::metrics::{Facts, Metrics, Source};
use crate::telemetry::{self, Collector};

/// Where a listener logs its requests, and (for the proxy) whose forwarding headers may name the
/// client, as nginx's realip module sets `$remote_addr`.
#[derive(Clone)]
pub struct AccessLogging {
    pub sink: Sink,
    pub trust: Option<ClientTrust>,
}

/// One connection's access logging: the listener's, with the connection's peer. Each request
/// holds it until its line is written; it is the connection's own, so no count is shared
/// between cores per request.
pub struct ConnLog {
    logging: AccessLogging,
    peer: IpAddr,
}

impl ConnLog {
    pub fn new(logging: &AccessLogging, peer: IpAddr) -> Arc<ConnLog> {
        Arc::new(ConnLog { logging: logging.clone(), peer })
    }

    /// Notes what the line will say about `req`.
    pub fn begin<B>(self: &Arc<Self>, req: &Request<B>) -> Pending {
        let remote_addr = match &self.logging.trust {
            Some(trust) if trust.trusts(self.peer) => {
                let lines = req.headers().get_all(trust.real_ip_header.as_str()).iter().map(|v| v.as_bytes());
                trust.client_ip_from_lines(self.peer, lines)
            }
            _ => self.peer,
        };
        Pending { conn: self.clone(), entry: Entry::of(req, remote_addr) }
    }
}

/// A request whose line waits for its response.
pub struct Pending {
    conn: Arc<ConnLog>,
    pub(crate) entry: Entry,
}

/// What counts each finished proxied request: the node's Prometheus series, its analytics
/// records, or both.
#[derive(Clone)]
pub struct Counters {
    pub metrics: Option<Arc<Metrics>>,
    pub analytics: Option<Arc<Collector>>,
}

impl Counters {
    /// Counts one request answered with `status`, `sent` body bytes, ended at `end`.
    fn record(&self, facts: Facts, status: u16, sent: u64, end: Instant) {
        if let Some(collector) = &self.analytics {
            let latency = end.saturating_duration_since(facts.start);
            collector.push(telemetry::Record {
                started: SystemTime::now().checked_sub(latency).unwrap_or(SystemTime::UNIX_EPOCH),
                service: facts.ids.service,
                route: facts.ids.route,
                consumer: facts.ids.consumer,
                method: facts.method.clone(),
                status,
                bytes_in: facts.received.as_ref().map_or(0, |r| r.load(Ordering::Relaxed)),
                bytes_out: sent,
                latency,
                upstream_latency: facts.upstream,
                source: match facts.source {
                    Source::Service => telemetry::Source::Service,
                    Source::Kong => telemetry::Source::Gateway,
                    Source::Exit => telemetry::Source::Plugin,
                },
            });
        }
        if let Some(metrics) = &self.metrics {
            metrics.record(facts, status, end);
        }
    }
}

/// A connection's handle on the node's counters: each request clones this one, whose count only
/// the connection's thread writes, not the node's `Arc` that every core shares.
pub type ConnMetrics = Arc<Counters>;

/// A request answered with `status`, counting its response body bytes until its access-log line
/// is written and it is counted in the node's metrics.
pub struct Record {
    line: Option<Pending>,
    counted: Option<(ConnMetrics, Facts)>,
    status: u16,
    sent: u64,
}

impl Record {
    /// The response's head is known: the line and the count wait for its body. `None` when the
    /// listener neither logs nor counts.
    pub fn answered(
        line: Option<Pending>,
        counted: Option<(ConnMetrics, Facts)>,
        status: hyper::StatusCode,
    ) -> Option<Record> {
        (line.is_some() || counted.is_some()).then_some(Record { line, counted, status: status.as_u16(), sent: 0 })
    }

    pub fn sent(&mut self, bytes: usize) {
        self.sent += bytes as u64;
    }

    /// Writes the line and counts the request: the response has been sent whole or given up.
    pub fn finish(self) {
        if let Some(pending) = &self.line {
            pending.conn.logging.sink.write(&pending.entry, self.status, self.sent);
        }
        if let Some((counters, facts)) = self.counted {
            counters.record(facts, self.status, self.sent, Instant::now());
        }
    }
}
