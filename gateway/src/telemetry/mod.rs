//! Traffic analytics: one record per finished proxied request, collected per worker thread (no
//! lock shared between cores per request); once per `analytics_flush_interval` the records are
//! handed to the analytics component (`wasm::analytics`), which folds them into per-minute
//! aggregates with fixed-bucket latency histograms; the aggregates go to the node's analytics store
//! (`store`), which `GET /analytics` and `GET /analytics/billing` read (`query`).
//!
//! Bounded everywhere: the collector keeps at most `analytics_buffer_size_limit` records and drops
//! the oldest beyond that, counting them; the count reaches the store with the next flush and the
//! analytics answers show it.

pub mod collector;
pub mod histogram;
pub mod query;
pub mod store;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use uuid::Uuid;

pub use collector::Collector;

use crate::shutdown::Shutdown;
pub use crate::wasm::analytics::Source;
use crate::wasm::analytics::{self as wit, CompiledAnalytics, Folder, RequestRecord};

/// One finished request, as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Record {
    /// When the request arrived.
    pub started: SystemTime,
    pub service: Option<Uuid>,
    pub route: Option<Uuid>,
    pub consumer: Option<Uuid>,
    pub method: hyper::Method,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// From arrival to the response's last byte (or the client gone).
    pub latency: Duration,
    /// From sending upstream to the upstream's response head.
    pub upstream_latency: Option<Duration>,
    pub source: Source,
}

impl Record {
    /// The record as the analytics component takes it.
    pub fn into_wit(self) -> RequestRecord {
        RequestRecord {
            started_ms: u64::try_from(self.started.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis())
                .unwrap_or(u64::MAX),
            service: self.service.map(halves),
            route: self.route.map(halves),
            consumer: self.consumer.map(halves),
            method: self.method.as_str().to_string(),
            status: self.status,
            bytes_in: self.bytes_in,
            bytes_out: self.bytes_out,
            latency_us: micros(self.latency),
            upstream_latency_us: self.upstream_latency.map(micros),
            source: self.source,
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// A UUID as the WIT contract carries it: its two halves, most significant first.
pub fn halves(id: Uuid) -> (u64, u64) {
    let n = id.as_u128();
    ((n >> 64) as u64, n as u64)
}

/// The UUID of two halves.
pub fn from_halves((high, low): (u64, u64)) -> Uuid {
    Uuid::from_u128((u128::from(high) << 64) | u128::from(low))
}

/// The largest histogram bucket: that of `u64::MAX` microseconds.
pub const MAX_BUCKET: u16 = 8 * 61 + 7;

/// One aggregate as a node keeps and sends it: the component's, with its ids as UUIDs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Aggregate {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    pub service: Option<Uuid>,
    pub route: Option<Uuid>,
    pub consumer: Option<Uuid>,
    /// `status / 100`, or 0.
    pub status_class: u8,
    pub calls: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// (bucket, calls), the buckets of `wit/analytics.wit`.
    pub latency: Vec<(u16, u64)>,
    pub upstream_latency: Vec<(u16, u64)>,
}

impl Aggregate {
    pub fn of_wit(a: wit::Aggregate) -> Aggregate {
        Aggregate {
            minute: a.minute,
            service: a.service.map(from_halves),
            route: a.route.map(from_halves),
            consumer: a.consumer.map(from_halves),
            status_class: a.status_class,
            calls: a.calls,
            bytes_in: a.bytes_in,
            bytes_out: a.bytes_out,
            latency: a.latency,
            upstream_latency: a.upstream_latency,
        }
    }

    /// Whether the aggregate adds up: a status class of 0 to 5, known buckets, as many latencies
    /// as calls and no more upstream latencies. What a component or another node sends is checked
    /// before it is kept.
    pub fn check(&self) -> Result<(), String> {
        if self.status_class > 5 {
            return Err(format!("status class {} is not 0 to 5", self.status_class));
        }
        let count = |histogram: &[(u16, u64)], what: &str| -> Result<u64, String> {
            let mut total: u64 = 0;
            for (bucket, n) in histogram {
                if *bucket > MAX_BUCKET {
                    return Err(format!("{what} bucket {bucket} is past {MAX_BUCKET}"));
                }
                total = total.checked_add(*n).ok_or_else(|| format!("{what} counts overflow"))?;
            }
            Ok(total)
        };
        let latencies = count(&self.latency, "latency")?;
        if latencies != self.calls {
            return Err(format!("{} calls but {latencies} latencies", self.calls));
        }
        if count(&self.upstream_latency, "upstream latency")? > self.calls {
            return Err(format!("more upstream latencies than the {} calls", self.calls));
        }
        Ok(())
    }
}

/// The ids a request's record names, known when its response head goes out.
#[derive(Debug, Clone, Default)]
pub struct Ids {
    pub service: Option<Uuid>,
    pub route: Option<Uuid>,
    pub consumer: Option<Uuid>,
}

/// The analytics component and its folder, rebuilt after a failure.
pub struct Folding {
    component: Arc<CompiledAnalytics>,
    folder: Option<Folder>,
}

impl Folding {
    pub fn new(component: Arc<CompiledAnalytics>) -> Folding {
        Folding { component, folder: None }
    }

    /// The aggregates of `records`, and how many records were lost because the component failed
    /// (all of them then: a failed call leaves nothing to trust).
    pub fn fold(&mut self, records: Vec<Record>) -> (Vec<Aggregate>, u64) {
        if records.is_empty() {
            return (Vec::new(), 0);
        }
        let n = records.len() as u64;
        let mut folder = match self.folder.take() {
            Some(folder) => folder,
            None => match self.component.folder() {
                Ok(folder) => folder,
                Err(error) => {
                    tracing::error!(%error, records = n, "analytics: cannot make a folder; these records are dropped");
                    return (Vec::new(), n);
                }
            },
        };
        match folder.fold(records.into_iter().map(Record::into_wit).collect()) {
            Ok(aggregates) => {
                self.folder = Some(folder);
                let mut kept = Vec::with_capacity(aggregates.len());
                let mut lost = 0;
                for aggregate in aggregates.into_iter().map(Aggregate::of_wit) {
                    match aggregate.check() {
                        Ok(()) => kept.push(aggregate),
                        Err(error) => {
                            lost += aggregate.calls;
                            tracing::error!(%error, component = self.component.name(), "analytics: the component made an aggregate that does not add up; dropped");
                        }
                    }
                }
                (kept, lost)
            }
            Err(error) => {
                tracing::error!(%error, records = n, "analytics: the component failed; these records are dropped");
                (Vec::new(), n)
            }
        }
    }
}

/// A node that keeps its own analytics (a traditional node): each flush folds what the collector
/// holds and merges it into the node's store.
pub struct Local {
    pub collector: Arc<Collector>,
    pub folding: Folding,
    pub store: Arc<store::AnalyticsStore>,
    pub node: Uuid,
    pub hostname: String,
    /// How many gateway services are configured now (for billing).
    pub services: Box<dyn Fn() -> u64 + Send>,
}

/// An idle node still merges this often, so the month's count of services stays current.
const IDLE_MERGE: Duration = Duration::from_secs(60);

impl Local {
    /// Flushes every `interval` until shutdown, then once more.
    pub async fn run(self, interval: Duration, mut shutdown: Shutdown) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut local = self;
        let mut last_merge: Option<std::time::Instant> = None;
        loop {
            let stopping = tokio::select! {
                _ = ticker.tick() => false,
                () = shutdown.wait() => true,
            };
            let flushed = tokio::task::spawn_blocking(move || {
                let merged = local.flush(last_merge);
                (local, merged)
            })
            .await;
            match flushed {
                Ok((back, merged)) => {
                    local = back;
                    if merged {
                        last_merge = Some(std::time::Instant::now());
                    }
                }
                Err(error) => {
                    tracing::error!(%error, "analytics: the flush panicked; analytics stop");
                    return;
                }
            }
            if stopping {
                return;
            }
        }
    }

    /// One flush; whether it wrote to the store.
    fn flush(&mut self, last_merge: Option<std::time::Instant>) -> bool {
        let (records, dropped) = self.collector.drain();
        if records.is_empty() && dropped == 0 && last_merge.is_some_and(|at| at.elapsed() < IDLE_MERGE) {
            return false;
        }
        let (aggregates, lost) = self.folding.fold(records);
        let report = store::Report {
            node: self.node,
            sequence: None,
            hostname: &self.hostname,
            aggregates: &aggregates,
            dropped: dropped + lost,
            services: (self.services)(),
        };
        match self.store.merge(&report, now_minute()) {
            Ok(_) => true,
            Err(error) => {
                tracing::error!(%error, aggregates = aggregates.len(), "analytics: cannot write to the analytics store");
                false
            }
        }
    }
}

/// Minutes since the Unix epoch, now.
pub fn now_minute() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() / 60
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    fn histogram() -> impl Strategy<Value = Vec<(u16, u64)>> {
        proptest::collection::vec((0u16..600, 0u64..1000), 0..6)
    }

    proptest! {
        /// Any aggregate (as a hostile data plane could send) is accepted exactly when it adds up.
        #[test]
        fn an_aggregate_is_accepted_exactly_when_it_adds_up(
            status_class in 0u8..10, calls in 0u64..3000, latency in histogram(), upstream in histogram(),
        ) {
            let aggregate = Aggregate {
                minute: 1, service: None, route: None, consumer: None, status_class, calls,
                bytes_in: 0, bytes_out: 0, latency: latency.clone(), upstream_latency: upstream.clone(),
            };
            let known = |h: &[(u16, u64)]| h.iter().all(|(b, _)| *b <= MAX_BUCKET);
            let sum = |h: &[(u16, u64)]| h.iter().map(|(_, n)| n).sum::<u64>();
            let adds_up = status_class <= 5 && known(&latency) && known(&upstream)
                && sum(&latency) == calls && sum(&upstream) <= calls;
            prop_assert_eq!(aggregate.check().is_ok(), adds_up);
        }

        #[test]
        fn counts_that_overflow_are_refused(n in (u64::MAX / 2 + 1)..u64::MAX) {
            let aggregate = Aggregate {
                minute: 1, service: None, route: None, consumer: None, status_class: 2, calls: n,
                bytes_in: 0, bytes_out: 0, latency: vec![(1, n), (2, n)], upstream_latency: Vec::new(),
            };
            prop_assert!(aggregate.check().is_err());
        }
    }

    #[test]
    fn uuids_go_to_halves_and_back() {
        let id = Uuid::parse_str("0b5e4b8c-1f7e-4c1b-9d3a-2f6e8a7c9d01").unwrap();
        assert_eq!(from_halves(halves(id)), id);
        assert_eq!(halves(Uuid::from_u128(1 << 64 | 2)), (1, 2));
    }
}
