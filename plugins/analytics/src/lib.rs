//! The analytics component: folds the records of finished requests into aggregates per minute,
//! service, route, consumer and status class, each with latency histograms on the fixed buckets
//! the `analytics` interface documents, so that aggregates from many nodes add up exactly.

wit_bindgen::generate!({ world: "analytics-component", path: "../../wit" });

/// Set by gateway/build.rs to a digest of `wit/`: reading it makes cargo rebuild this component when
/// the contract changes (the macro above does not tell cargo it read those files).
const _WIT_DIGEST: Option<&str> = option_env!("GATEWAY_WIT_HASH");

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};

use exports::gateway::api::analytics::{Aggregate, Guest, GuestFolder, RequestRecord, Uuid};

struct Component;

impl Guest for Component {
    type Folder = Folder;
}

/// What one aggregate is keyed by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    minute: u64,
    service: Option<Uuid>,
    route: Option<Uuid>,
    consumer: Option<Uuid>,
    status_class: u8,
}

#[derive(Default)]
struct Sums {
    calls: u64,
    bytes_in: u64,
    bytes_out: u64,
    latency: BTreeMap<u16, u64>,
    upstream_latency: BTreeMap<u16, u64>,
}

pub struct Folder {
    open: RefCell<HashMap<Key, Sums>>,
}

impl GuestFolder for Folder {
    fn new() -> Folder {
        Folder { open: RefCell::new(HashMap::new()) }
    }

    fn add(&self, records: Vec<RequestRecord>) {
        let mut open = self.open.borrow_mut();
        for record in records {
            let key = Key {
                minute: record.started_ms / 60_000,
                service: record.service,
                route: record.route,
                consumer: record.consumer,
                status_class: status_class(record.status),
            };
            let sums = open.entry(key).or_default();
            sums.calls += 1;
            sums.bytes_in = sums.bytes_in.saturating_add(record.bytes_in);
            sums.bytes_out = sums.bytes_out.saturating_add(record.bytes_out);
            *sums.latency.entry(bucket(record.latency_us)).or_default() += 1;
            if let Some(upstream) = record.upstream_latency_us {
                *sums.upstream_latency.entry(bucket(upstream)).or_default() += 1;
            }
        }
    }

    fn flush(&self) -> Vec<Aggregate> {
        let open = std::mem::take(&mut *self.open.borrow_mut());
        open.into_iter()
            .map(|(key, sums)| Aggregate {
                minute: key.minute,
                service: key.service,
                route: key.route,
                consumer: key.consumer,
                status_class: key.status_class,
                calls: sums.calls,
                bytes_in: sums.bytes_in,
                bytes_out: sums.bytes_out,
                latency: sums.latency.into_iter().collect(),
                upstream_latency: sums.upstream_latency.into_iter().collect(),
            })
            .collect()
    }
}

/// `status / 100` for 100 to 599, else 0.
pub fn status_class(status: u16) -> u8 {
    match status {
        100..=599 => (status / 100) as u8,
        _ => 0,
    }
}

/// The histogram bucket of `micros`: below 8 its own; above, 8 buckets per power of two.
pub fn bucket(micros: u64) -> u16 {
    if micros < 8 {
        return micros as u16;
    }
    let e = 63 - micros.leading_zeros() as u64;
    let m = (micros >> (e - 3)) & 7;
    (8 * (e - 2) + m) as u16
}

export!(Component);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_rise_with_the_value_and_never_skip() {
        let mut last = bucket(0);
        assert_eq!(last, 0);
        for v in 1..100_000u64 {
            let b = bucket(v);
            assert!(b == last || b == last + 1, "{v}: {last} then {b}");
            last = b;
        }
        assert_eq!(bucket(7), 7);
        assert_eq!(bucket(8), 8);
        assert_eq!(bucket(15), 15);
        assert_eq!(bucket(16), 16);
        assert_eq!(bucket(17), 16);
        assert_eq!(bucket(18), 17);
        assert_eq!(bucket(u64::MAX), 8 * 61 + 7);
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(200), 2);
        assert_eq!(status_class(499), 4);
        assert_eq!(status_class(599), 5);
        assert_eq!(status_class(600), 0);
        assert_eq!(status_class(0), 0);
    }
}
