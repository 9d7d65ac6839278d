//! Where finished requests' records wait for the next flush: one queue per proxy worker thread (a
//! lock only that worker takes per request), together holding at most the configured number of
//! records, less what a batch not yet acknowledged still holds (`reserve`). Past that, a new
//! record replaces the oldest of its worker's queue (or, when that queue is empty, is itself
//! dropped), and every record dropped is counted, so the count is exact and memory stays bounded.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::Record;
use crate::workers::PerWorker;

pub struct Collector {
    workers: PerWorker<VecDeque<Record>>,
    limit: usize,
    /// Records in the queues.
    held: AtomicUsize,
    /// Records held elsewhere that count against the limit (a batch waiting for its
    /// acknowledgement).
    reserved: AtomicUsize,
    dropped: AtomicU64,
    /// Every record dropped since the start.
    dropped_total: AtomicU64,
}

impl Collector {
    /// Queues for `workers` worker threads (and one for other threads) holding `limit` records in
    /// all.
    pub fn new(workers: usize, limit: u64) -> Collector {
        Collector {
            workers: PerWorker::new(workers),
            limit: usize::try_from(limit).unwrap_or(usize::MAX).max(1),
            held: AtomicUsize::new(0),
            reserved: AtomicUsize::new(0),
            dropped: AtomicU64::new(0),
            dropped_total: AtomicU64::new(0),
        }
    }

    pub fn push(&self, record: Record) {
        let mut queue = self.workers.lock();
        let room = self.limit.saturating_sub(self.reserved.load(Ordering::Relaxed));
        if self.held.fetch_add(1, Ordering::Relaxed) < room {
            queue.push_back(record);
            return;
        }
        self.held.fetch_sub(1, Ordering::Relaxed);
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.dropped_total.fetch_add(1, Ordering::Relaxed);
        if queue.pop_front().is_some() {
            queue.push_back(record);
        }
    }

    /// Every queued record, oldest first per worker, and how many were dropped since the last
    /// drain.
    pub fn drain(&self) -> (Vec<Record>, u64) {
        let mut records = Vec::new();
        self.workers.each(|queue| {
            self.held.fetch_sub(queue.len(), Ordering::Relaxed);
            records.extend(queue.drain(..));
        });
        (records, self.dropped.swap(0, Ordering::Relaxed))
    }

    /// Counts `records` held outside the queues against the limit (0 to release them).
    pub fn reserve(&self, records: usize) {
        self.reserved.store(records, Ordering::Relaxed);
    }

    /// Records waiting now, in the queues and reserved.
    pub fn len(&self) -> usize {
        self.held.load(Ordering::Relaxed) + self.reserved.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records dropped since the last drain.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Records dropped since the start.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total.load(Ordering::Relaxed)
    }

    /// The most records held at once.
    pub fn limit(&self) -> usize {
        self.limit
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
        let collector = Collector::new(1, 3);
        for status in 100..110 {
            collector.push(record(status));
        }
        assert_eq!(collector.len(), 3);
        assert_eq!(collector.dropped(), 7);
        let (records, dropped) = collector.drain();
        assert_eq!(records.iter().map(|r| r.status).collect::<Vec<_>>(), vec![107, 108, 109]);
        assert_eq!(dropped, 7);
        let (records, dropped) = collector.drain();
        assert!(records.is_empty());
        assert_eq!(dropped, 0);
    }

    #[test]
    fn reserved_records_count_against_the_limit() {
        let collector = Collector::new(2, 10);
        collector.reserve(6);
        for status in 0..10 {
            collector.push(record(status));
        }
        let (records, dropped) = collector.drain();
        assert_eq!((records.len(), dropped), (4, 6));
        collector.reserve(0);
        for status in 0..10 {
            collector.push(record(status));
        }
        assert_eq!(collector.drain().0.len(), 10);
    }

    #[test]
    fn many_threads_never_hold_more_than_the_limit_and_every_record_is_kept_or_counted() {
        let collector = std::sync::Arc::new(Collector::new(4, 100));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let collector = collector.clone();
                std::thread::spawn(move || {
                    for status in 0..1000 {
                        collector.push(record(status));
                    }
                })
            })
            .collect();
        threads.into_iter().for_each(|t| t.join().unwrap());
        assert!(collector.len() <= 100);
        let (records, dropped) = collector.drain();
        assert_eq!(records.len() as u64 + dropped, 4000);
    }
}
