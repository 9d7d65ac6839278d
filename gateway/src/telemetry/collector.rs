//! Where finished requests' records wait for the next flush: one queue per proxy worker thread (a
//! lock only that worker takes per request), together holding at most the configured number of
//! records. A full queue drops its oldest record and counts it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};

use super::Record;
use crate::workers::PerWorker;

pub struct Collector {
    workers: PerWorker<VecDeque<Record>>,
    per_worker: usize,
    dropped: AtomicU64,
}

impl Collector {
    /// Queues for `workers` worker threads (and one for other threads) holding `limit` records in
    /// all.
    pub fn new(workers: usize, limit: u64) -> Collector {
        let queues = workers.max(1) + 1;
        let limit = usize::try_from(limit).unwrap_or(usize::MAX).max(1);
        Collector { workers: PerWorker::new(workers), per_worker: (limit / queues).max(1), dropped: AtomicU64::new(0) }
    }

    pub fn push(&self, record: Record) {
        let mut queue = self.workers.lock();
        if queue.len() >= self.per_worker {
            queue.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queue.push_back(record);
    }

    /// Every queued record, oldest first per worker, and how many were dropped since the last
    /// drain.
    pub fn drain(&self) -> (Vec<Record>, u64) {
        let mut records = Vec::new();
        self.workers.each(|queue| records.extend(queue.drain(..)));
        (records, self.dropped.swap(0, Ordering::Relaxed))
    }

    /// Records waiting now.
    pub fn len(&self) -> usize {
        let mut n = 0;
        self.workers.each(|queue| n += queue.len());
        n
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::telemetry::Source;

    fn record(status: u16) -> Record {
        Record {
            started: SystemTime::now(),
            service: None,
            route: None,
            consumer: None,
            method: hyper::Method::GET,
            status,
            bytes_in: 0,
            bytes_out: 0,
            latency: Duration::from_millis(1),
            upstream_latency: None,
            source: Source::Gateway,
        }
    }

    #[test]
    fn past_the_limit_the_oldest_are_dropped_and_counted() {
        // One worker: two queues (the worker's, and other threads'), 3 records each.
        let collector = Collector::new(1, 6);
        for status in 100..110 {
            collector.push(record(status));
        }
        assert_eq!(collector.len(), 3);
        let (records, dropped) = collector.drain();
        assert_eq!(records.iter().map(|r| r.status).collect::<Vec<_>>(), vec![107, 108, 109]);
        assert_eq!(dropped, 7);
        let (records, dropped) = collector.drain();
        assert!(records.is_empty());
        assert_eq!(dropped, 0);
    }
}
