//! Test fixture: a replacement analytics component (`analytics_component`) that forgets the
//! service, route and consumer of every request and counts calls per minute and status class, so a
//! test can tell it from the bundled one. Its histograms put every call in bucket 0.

wit_bindgen::generate!({ world: "analytics-component", path: "../../../wit" });

const _WIT_DIGEST: Option<&str> = option_env!("GATEWAY_WIT_HASH");

use std::cell::RefCell;
use std::collections::BTreeMap;

use exports::gateway::api::analytics::{Aggregate, Guest, GuestFolder, RequestRecord};

struct Component;

impl Guest for Component {
    type Folder = Flat;
}

pub struct Flat {
    calls: RefCell<BTreeMap<(u64, u8), u64>>,
}

impl GuestFolder for Flat {
    fn new() -> Flat {
        Flat { calls: RefCell::new(BTreeMap::new()) }
    }

    fn add(&self, records: Vec<RequestRecord>) {
        let mut calls = self.calls.borrow_mut();
        for record in records {
            *calls.entry((record.started_ms / 60_000, (record.status / 100) as u8)).or_default() += 1;
        }
    }

    fn flush(&self) -> Vec<Aggregate> {
        std::mem::take(&mut *self.calls.borrow_mut())
            .into_iter()
            .map(|((minute, status_class), calls)| Aggregate {
                minute,
                service: None,
                route: None,
                consumer: None,
                status_class,
                calls,
                bytes_in: 0,
                bytes_out: 0,
                latency: vec![(0, calls)],
                upstream_latency: Vec::new(),
            })
            .collect()
    }
}

export!(Component);
