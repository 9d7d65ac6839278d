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
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prometheus_client::encoding::{EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::workers::PerWorker;

/// Kong's latency buckets (milliseconds), from its Prometheus plugin.
pub const LATENCY_BUCKETS_MS: [f64; 17] =
    [1.0, 2.0, 5.0, 7.0, 10.0, 15.0, 20.0, 30.0, 50.0, 75.0, 100.0, 200.0, 500.0, 750.0, 1000.0, 3000.0, 6000.0];

/// The media type of [`Metrics::encode`]'s answer.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label sets kept per worker; requests of further label sets are counted as dropped.
pub const MAX_SERIES: usize = 10_000;

/// Who made a response (Kong's `source` label).
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
            Source::Kong => "kong",
            Source::Exit => "exit",
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

    /// The metrics in the OpenMetrics text format ([`CONTENT_TYPE`]), which Prometheus reads.
    pub fn encode(&self) -> String {
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

        let mut registry = Registry::default();
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
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A label value as the text format needs it: `prometheus-client` writes values as they are, so
/// a `"`, `\\` or line break in a name (a consumer's username is anybody's choice) would end the
/// value early and let the rest read as samples of its own.
fn label(value: &Option<Arc<str>>) -> String {
    let value = value.as_deref().unwrap_or("");
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
