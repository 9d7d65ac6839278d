//! The node's request metrics in Prometheus's text format, with Kong's metric names and labels
//! (`kong_http_requests_total`, `kong_request_latency_ms`, `kong_upstream_latency_ms`,
//! `kong_kong_latency_ms`), served on the status listener's `/metrics`.
//!
//! Each finished request is counted on the worker thread that served it, into that worker's own
//! series (`workers::PerWorker`: no lock shared between cores per request); a scrape adds the
//! workers' series up and encodes them with `prometheus-client`. The number of series is bounded
//! (a client choosing consumers or status codes cannot grow memory without end): past
//! [`MAX_SERIES`] per worker a new label set is not kept, and
//! `gateway_metrics_series_dropped_total` counts the requests that were not.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::workers::{PerWorker, Workers};

/// Kong's latency buckets (milliseconds), from its Prometheus plugin.
pub const LATENCY_BUCKETS_MS: [f64; 17] =
    [1.0, 2.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0, 500.0, 750.0, 1000.0, 3000.0, 6000.0];

/// The media type of [`Metrics::encode`]'s answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label sets kept per worker; requests of further label sets are counted as dropped.
pub const MAX_SERIES: usize = 10_000;

/// Who made a response. Kong's `source` label knows two: `service` for the upstream's, `kong` for
/// the rest (its own answers and plugins' alike); the plugin's exit is kept apart here for the
/// analytics that will read these facts too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    /// The upstream.
    Service,
    /// The gateway itself (no route, a failure).
    Kong,
    /// A plugin's own response.
    Exit,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Service => "service",
            Source::Kong | Source::Exit => "kong",
        }
    }
}

/// What the proxy knows of a request when its response head goes out, handed to the listener
/// (as a response extension) for counting once the body is done.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Kong's `service` label: the service's name, else its host; empty when none matched.
    pub service: Option<Arc<str>>,
    /// Kong's `route` label: the route's name, else its id.
    pub route: Option<Arc<str>>,
    /// The authenticated consumer's username (else its id).
    pub consumer: Option<Arc<str>>,
    pub source: Source,
    /// When the proxy took the request.
    pub start: Instant,
    /// From sending to the upstream to its response head, when there was one.
    pub upstream: Option<Duration>,
    /// The ids behind the labels, for the analytics.
    pub ids: crate::telemetry::Ids,
    pub method: hyper::Method,
    /// Request body bytes read from the client (complete once the request has ended).
    pub received: Option<Arc<AtomicU64>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    service: Option<Arc<str>>,
    route: Option<Arc<str>>,
    consumer: Option<Arc<str>>,
    source: Source,
    code: u16,
}

/// Counts of observations per bucket (not cumulative; the last one is +Inf) and their sum.
#[derive(Debug, Clone, Default)]
struct Histogram {
    counts: [u64; LATENCY_BUCKETS_MS.len() + 1],
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, ms: f64) {
        let at = LATENCY_BUCKETS_MS.iter().position(|&bound| ms <= bound).unwrap_or(LATENCY_BUCKETS_MS.len());
        self.counts[at] += 1;
        self.sum += ms;
    }

    fn add(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(other.counts.iter()) {
            *a += b;
        }
        self.sum += other.sum;
    }

    fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

#[derive(Debug, Clone, Default)]
struct Series {
    requests: u64,
    request_latency: Histogram,
    upstream_latency: Histogram,
    kong_latency: Histogram,
}

#[derive(Default)]
struct WorkerSeries {
    series: HashMap<Key, Series>,
}

/// The node's request metrics.
pub struct Metrics {
    workers: PerWorker<WorkerSeries>,
    dropped: AtomicU64,
}

impl Metrics {
    /// Series for `workers` worker threads (and the threads outside them, sharing one).
    pub fn new(workers: usize) -> Arc<Metrics> {
        Arc::new(Metrics { workers: PerWorker::new(workers), dropped: AtomicU64::new(0) })
    }

    /// Counts one finished request: its response `code`, ended at `end`.
    pub fn record(&self, facts: Facts, code: u16, end: Instant) {
        let total = ms(end.saturating_duration_since(facts.start));
        let upstream = facts.upstream.map(ms);
        let key =
            Key { service: facts.service, route: facts.route, consumer: facts.consumer, source: facts.source, code };
        let mut worker = self.workers.lock();
        let room = worker.series.len() < MAX_SERIES;
        let series = match worker.series.get_mut(&key) {
            Some(series) => series,
            None if room => worker.series.entry(key).or_default(),
            None => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        series.requests += 1;
        series.request_latency.observe(total);
        if let Some(upstream) = upstream {
            series.upstream_latency.observe(upstream);
            series.kong_latency.observe((total - upstream).max(0.0));
        } else {
            series.kong_latency.observe(total);
        }
    }

    /// Every worker's series added up.
    fn merged(&self) -> HashMap<Key, Series> {
        let mut merged: HashMap<Key, Series> = HashMap::new();
        self.workers.each(|worker| {
            for (key, series) in &worker.series {
                let into = merged.entry(key.clone()).or_default();
                into.requests += series.requests;
                into.request_latency.add(&series.request_latency);
                into.upstream_latency.add(&series.upstream_latency);
                into.kong_latency.add(&series.kong_latency);
            }
        });
        merged
    }

    /// Registers the request metrics, added up over the workers, in `registry`.
    fn register(&self, registry: &mut Registry) {
        let merged = self.merged();
        let mut requests = Vec::new();
        // Kong's latency histograms are per service and route (and consumer), not per code.
        let mut latencies: HashMap<LatencyLabels, [Histogram; 3]> = HashMap::new();
        for (key, series) in merged {
            requests.push((RequestLabels::of(&key), series.requests));
            let labels = LatencyLabels {
                service: label(&key.service),
                route: label(&key.route),
                workspace: "default".to_string(),
                consumer: label(&key.consumer),
            };
            let into = latencies.entry(labels).or_default();
            into[0].add(&series.request_latency);
            into[1].add(&series.upstream_latency);
            into[2].add(&series.kong_latency);
        }
        requests.sort_by(|a, b| a.0.cmp(&b.0));
        let mut latencies: Vec<_> = latencies.into_iter().collect();
        latencies.sort_by(|a, b| a.0.cmp(&b.0));
        let histograms = |i: usize| -> Families<LatencyLabels, Histogram> {
            Families(latencies.iter().map(|(labels, h)| (labels.clone(), h[i].clone())).collect())
        };

        registry.register(
            "kong_http_requests",
            "HTTP status codes per consumer/service/route in Kong",
            Families(requests),
        );
        registry.register(
            "kong_request_latency_ms",
            "Total latency incurred during requests for each service/route in Kong",
            histograms(0),
        );
        registry.register(
            "kong_upstream_latency_ms",
            "Latency added by upstream response for each service/route in Kong",
            histograms(1),
        );
        registry.register(
            "kong_kong_latency_ms",
            "Latency added by Kong and enabled plugins for each service/route in Kong",
            histograms(2),
        );
        registry.register(
            "gateway_metrics_series_dropped",
            "Requests not counted because their worker already keeps as many label sets as it may",
            Total(self.dropped.load(Ordering::Relaxed)),
        );
    }
}

/// What a node is and holds now, for the gauges Kong's exporter adds to the request metrics.
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub node_id: String,
    pub version: String,
    /// The proxy's connections; `None` on a node that proxies nothing.
    pub connections: Option<Connections>,
    /// A data plane's link to its control plane (`None` on other nodes).
    pub control_plane_connected: Option<bool>,
    /// A control plane's data planes.
    pub data_planes: Vec<DataPlane>,
    /// Each WebAssembly component the node runs and how often it has trapped.
    pub wasm_traps: Vec<(String, u64)>,
    /// The analytics records waiting to be flushed and those dropped since the start, on a node
    /// that collects them.
    pub analytics: Option<AnalyticsBuffer>,
    /// A data plane's telemetry link to its control plane.
    pub telemetry_connected: Option<bool>,
}

/// A node's analytics buffer.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnalyticsBuffer {
    /// Records held now (waiting for a flush, or in a batch not yet acknowledged).
    pub buffered: u64,
    /// The buffer's limit (`analytics_buffer_size_limit`).
    pub limit: u64,
    /// Records dropped since the start because the buffer was full.
    pub dropped: u64,
}

/// Kong's `kong_nginx_connections_total` states the gateway has.
#[derive(Debug, Clone, Copy, Default)]
pub struct Connections {
    /// Client connections accepted since the start (every one is handled: nginx's `handled`).
    pub accepted: u64,
    /// Open now.
    pub active: u64,
}

/// One data plane as a control plane last heard of it.
#[derive(Debug, Clone)]
pub struct DataPlane {
    pub id: String,
    pub hostname: String,
    pub ip: String,
    pub version: String,
    /// 32 hex digits.
    pub config_hash: String,
    /// Unix seconds.
    pub last_seen: i64,
    /// False when its version or plugins are incompatible with the control plane's.
    pub compatible: bool,
}

/// Everything a scrape reads, shared by the listeners that serve `/metrics` (the status API on
/// every node, the Admin API on a control plane).
pub struct Scrape {
    pub node_id: String,
    /// The proxy's request metrics, when the node counts them.
    pub requests: Option<Arc<Metrics>>,
    /// The proxy's worker threads, for the connection gauges.
    pub workers: Option<Arc<Workers>>,
    /// A data plane's link to its control plane: up or not.
    pub control_plane_link: Option<Arc<AtomicBool>>,
    /// A control plane's data planes, as its registry lists them now.
    pub data_planes: Option<Box<dyn Fn() -> Vec<DataPlane> + Send + Sync>>,
    /// The traps of the node's WebAssembly components.
    pub wasm_traps: Option<crate::wasm::Traps>,
    /// The analytics buffer, on a node that collects analytics.
    pub analytics: Option<Arc<crate::telemetry::Collector>>,
    /// A data plane's telemetry link: up or not.
    pub telemetry_link: Option<Arc<AtomicBool>>,
}

impl Scrape {
    /// The metrics as they stand now ([`CONTENT_TYPE`]).
    pub fn encode(&self) -> String {
        let node = Node {
            node_id: self.node_id.clone(),
            version: crate::VERSION.to_string(),
            connections: self.workers.as_ref().map(|w| Connections {
                accepted: w.accepted(),
                active: w.open_connections().iter().sum::<usize>() as u64,
            }),
            control_plane_connected: self.control_plane_link.as_ref().map(|up| up.load(Ordering::Relaxed)),
            data_planes: self.data_planes.as_ref().map(|list| list()).unwrap_or_default(),
            wasm_traps: self.wasm_traps.as_ref().map(|t| t.counts()).unwrap_or_default(),
            analytics: self.analytics.as_ref().map(|c| AnalyticsBuffer {
                buffered: c.len() as u64,
                limit: c.limit() as u64,
                dropped: c.dropped_total(),
            }),
            telemetry_connected: self.telemetry_link.as_ref().map(|up| up.load(Ordering::Relaxed)),
        };
        encode(self.requests.as_deref(), &node)
    }
}

/// The node's metrics in the OpenMetrics text format ([`CONTENT_TYPE`]), which Prometheus reads:
/// the request metrics when the node counts them, and the node's gauges.
pub fn encode(requests: Option<&Metrics>, node: &Node) -> String {
    let mut registry = Registry::default();
    if let Some(requests) = requests {
        requests.register(&mut registry);
    }
    let id = || node.node_id.clone();
    registry.register(
        "kong_node_info",
        "Kong Node metadata information",
        Gauges(vec![(NodeLabels { node_id: id(), version: escape(&node.version) }, 1.0)]),
    );
    if let Some(c) = node.connections {
        let state = |state: &str, value: u64| {
            (ConnectionLabels { node_id: id(), subsystem: "http".into(), state: state.into() }, value as f64)
        };
        registry.register(
            "kong_nginx_connections_total",
            "Number of connections by subsystem",
            Gauges(vec![state("accepted", c.accepted), state("handled", c.accepted), state("active", c.active)]),
        );
        let total = requests.map_or(0, |r| r.merged().values().map(|s| s.requests).sum::<u64>());
        registry.register(
            "kong_nginx_requests_total",
            "Number of requests total",
            Gauges(vec![(SubsystemLabels { node_id: id(), subsystem: "http".into() }, total as f64)]),
        );
    }
    if let Some(up) = node.control_plane_connected {
        registry.register(
            "kong_control_plane_connected",
            "Kong connected to control plane, 0 is unconnected",
            Level(if up { 1.0 } else { 0.0 }),
        );
    }
    if !node.data_planes.is_empty() {
        let labels = |dp: &DataPlane| DataPlaneLabels {
            node_id: dp.id.clone(),
            hostname: escape(&dp.hostname),
            ip: escape(&dp.ip),
        };
        registry.register(
            "kong_data_plane_last_seen",
            "Last time data plane contacted control plane",
            Gauges(node.data_planes.iter().map(|dp| (labels(dp), dp.last_seen as f64)).collect()),
        );
        registry.register(
            "kong_data_plane_config_hash",
            "Config hash numeric value of the data plane",
            Gauges(node.data_planes.iter().map(|dp| (labels(dp), hash_number(&dp.config_hash))).collect()),
        );
        registry.register(
            "kong_data_plane_version_compatible",
            "Version compatible status of the data plane, 0 is incompatible",
            Gauges(
                node.data_planes
                    .iter()
                    .map(|dp| {
                        let l = labels(dp);
                        let labels = VersionLabels {
                            node_id: l.node_id,
                            hostname: l.hostname,
                            ip: l.ip,
                            kong_version: escape(&dp.version),
                        };
                        (labels, if dp.compatible { 1.0 } else { 0.0 })
                    })
                    .collect(),
            ),
        );
    }
    if !node.wasm_traps.is_empty() {
        let traps = node.wasm_traps.iter().map(|(name, n)| (ComponentLabels { component: escape(name) }, *n)).collect();
        registry.register(
            "gateway_wasm_traps",
            "Calls into a WebAssembly component that trapped (a fault, its CPU deadline or its memory cap), by component",
            Families(traps),
        );
    }
    if let Some(buffer) = node.analytics {
        registry.register(
            "gateway_analytics_buffered_records",
            "Analytics records waiting to be flushed or acknowledged",
            Level(buffer.buffered as f64),
        );
        registry.register(
            "gateway_analytics_buffer_limit_records",
            "The analytics buffer's limit (analytics_buffer_size_limit)",
            Level(buffer.limit as f64),
        );
        registry.register(
            "gateway_analytics_dropped_records",
            "Analytics records dropped because the buffer was full",
            Total(buffer.dropped),
        );
    }
    if let Some(up) = node.telemetry_connected {
        registry.register(
            "gateway_telemetry_connected",
            "The telemetry link to the control plane, 0 is unconnected",
            Level(if up { 1.0 } else { 0.0 }),
        );
    }
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String cannot fail");
    out
}

/// Kong's `config_hash_to_number`: the hash's hex digits read as one number (a float, so only
/// its leading digits count: enough to see that two nodes differ).
fn hash_number(hash: &str) -> f64 {
    hash.chars().try_fold(0f64, |n, c| c.to_digit(16).map(|d| n * 16.0 + f64::from(d))).unwrap_or(0.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A label value as the text format needs it: `prometheus-client` writes values as they are, so
/// a `"`, `\\` or line break in a name (a consumer's username is anybody's choice) would end the
/// value early and let the rest read as samples of its own.
fn label(value: &Option<Arc<str>>) -> String {
    escape(value.as_deref().unwrap_or(""))
}

fn escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => escaped.push_str("\\\\"),
            '"' => escaped.push_str("\\\""),
            '\n' => escaped.push_str("\\n"),
            c => escaped.push(c),
        }
    }
    escaped
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet)]
struct RequestLabels {
    service: String,
    route: String,
    code: String,
    source: String,
    workspace: String,
    consumer: String,
}

impl RequestLabels {
    fn of(key: &Key) -> RequestLabels {
        RequestLabels {
            service: label(&key.service),
            route: label(&key.route),
            code: key.code.to_string(),
            source: key.source.as_str().to_string(),
            workspace: "default".to_string(),
            consumer: label(&key.consumer),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, EncodeLabelSet)]
struct LatencyLabels {
    service: String,
    route: String,
    workspace: String,
    consumer: String,
}

/// A metric family made at scrape time from values already added up.
#[derive(Debug)]
struct Families<L, M>(Vec<(L, M)>);

impl<L: EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static> EncodeMetric for Families<L, u64> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, value) in &self.0 {
            encoder
                .encode_family(labels)?
                .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(value, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

impl<L: EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static> EncodeMetric for Families<L, Histogram> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, histogram) in &self.0 {
            // prometheus-client takes each bucket's own count and writes them cumulative.
            let buckets: Vec<(f64, u64)> = LATENCY_BUCKETS_MS
                .iter()
                .copied()
                .chain(std::iter::once(f64::MAX))
                .zip(histogram.counts.iter().copied())
                .collect();
            encoder.encode_family(labels)?.encode_histogram::<prometheus_client::encoding::NoLabelSet>(
                histogram.sum,
                histogram.count(),
                &buckets,
                None,
            )?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct NodeLabels {
    node_id: String,
    version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ConnectionLabels {
    node_id: String,
    subsystem: String,
    state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ComponentLabels {
    component: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SubsystemLabels {
    node_id: String,
    subsystem: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct DataPlaneLabels {
    node_id: String,
    hostname: String,
    ip: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct VersionLabels {
    node_id: String,
    hostname: String,
    ip: String,
    kong_version: String,
}

/// A gauge family made at scrape time.
#[derive(Debug)]
struct Gauges<L>(Vec<(L, f64)>);

impl<L: EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static> EncodeMetric for Gauges<L> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, value) in &self.0 {
            encoder.encode_family(labels)?.encode_gauge(value)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// One gauge without labels.
#[derive(Debug)]
struct Level(f64);

impl EncodeMetric for Level {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_gauge(&self.0)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// One counter without labels.
#[derive(Debug)]
struct Total(u64);

impl EncodeMetric for Total {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        encoder.encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&self.0, None)
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Counter
    }
}

#[cfg(test)]
mod tests;
