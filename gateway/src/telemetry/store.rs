//! The node's analytics: per-minute aggregates from every node that reports (a traditional node's
//! own, or a control plane's data planes), in an LMDB environment of their own under `prefix`
//! (`analytics.lmdb`), kept for `analytics_retention_days`; and per month, the API calls and the
//! most gateway services configured, kept for good (billing outlives retention).
//!
//! An aggregate's key is its minute, node, service, route, consumer and status class, in that
//! order and fixed width, so one minute range is one cursor range and a merge of the same group
//! from two flushes adds up in place.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Mutex;

use heed::types::Bytes;
use heed::{Database, Env};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Aggregate;
use crate::store::StoreError;
use crate::store::lmdb::open_databases;

/// The environment's directory under `prefix`.
pub const DIR: &str = "analytics.lmdb";
/// Its largest size: a sparse file grows only as data is written.
const MAP_SIZE: u64 = 4 << 30;
/// Retention is applied at most this often.
const PURGE_EVERY_MINUTES: u64 = 10;

const KEY_LEN: usize = 8 + 16 + 1 + 16 * 3 + 1;

/// What one aggregate counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sums {
    pub calls: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Latency histogram: bucket → calls (the buckets of `wit/analytics.wit`).
    pub latency: BTreeMap<u16, u64>,
    pub upstream_latency: BTreeMap<u16, u64>,
}

impl Sums {
    pub fn add(&mut self, other: &Sums) {
        self.calls = self.calls.saturating_add(other.calls);
        self.bytes_in = self.bytes_in.saturating_add(other.bytes_in);
        self.bytes_out = self.bytes_out.saturating_add(other.bytes_out);
        for (bucket, n) in &other.latency {
            *self.latency.entry(*bucket).or_default() += n;
        }
        for (bucket, n) in &other.upstream_latency {
            *self.upstream_latency.entry(*bucket).or_default() += n;
        }
    }

    fn of(aggregate: &Aggregate) -> Sums {
        let histogram = |pairs: &[(u16, u64)]| {
            let mut h = BTreeMap::new();
            for (bucket, n) in pairs {
                *h.entry(*bucket).or_default() += n;
            }
            h
        };
        Sums {
            calls: aggregate.calls,
            bytes_in: aggregate.bytes_in,
            bytes_out: aggregate.bytes_out,
            latency: histogram(&aggregate.latency),
            upstream_latency: histogram(&aggregate.upstream_latency),
        }
    }
}

/// Who an aggregate is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Group {
    /// Minutes since the Unix epoch.
    pub minute: u64,
    /// The node that served the calls.
    pub node: Uuid,
    pub service: Option<Uuid>,
    pub route: Option<Uuid>,
    pub consumer: Option<Uuid>,
    /// `status / 100`, or 0.
    pub status_class: u8,
}

impl Group {
    fn key(&self) -> [u8; KEY_LEN] {
        let mut key = [0u8; KEY_LEN];
        key[..8].copy_from_slice(&self.minute.to_be_bytes());
        key[8..24].copy_from_slice(self.node.as_bytes());
        let mut flags = 0u8;
        for (i, id) in [self.service, self.route, self.consumer].into_iter().enumerate() {
            if let Some(id) = id {
                flags |= 1 << i;
                key[25 + 16 * i..41 + 16 * i].copy_from_slice(id.as_bytes());
            }
        }
        key[24] = flags;
        key[KEY_LEN - 1] = self.status_class;
        key
    }

    fn of_key(key: &[u8]) -> Option<Group> {
        if key.len() != KEY_LEN {
            return None;
        }
        let id = |at: usize| Uuid::from_slice(&key[at..at + 16]).ok();
        let flags = key[24];
        let part = |i: usize| if flags & (1 << i) != 0 { id(25 + 16 * i) } else { None };
        Some(Group {
            minute: u64::from_be_bytes(key[..8].try_into().ok()?),
            node: id(8)?,
            service: part(0),
            route: part(1),
            consumer: part(2),
            status_class: key[KEY_LEN - 1],
        })
    }
}

/// A month's billing counts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Month {
    pub api_calls: u64,
    /// The most gateway services configured at any flush of the month.
    pub services: u64,
}

/// What a node that reports is called.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeName {
    pub hostname: String,
}

/// Where a data plane's batch stands in its sequence: its process's session and the batch's
/// number in it (from 1, one more per batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Sequence {
    pub session: Uuid,
    pub seq: u64,
}

/// What a merge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merged {
    Added,
    /// The batch was merged before (its acknowledgement was lost): nothing changed.
    Duplicate,
}

/// One flush of one node.
pub struct Report<'a> {
    pub node: Uuid,
    /// A data plane's batch: merged once, however often it is sent.
    pub sequence: Option<Sequence>,
    pub hostname: &'a str,
    pub aggregates: &'a [Aggregate],
    /// Records the node dropped (its buffer was full, or a component call failed).
    pub dropped: u64,
    /// Gateway services configured now.
    pub services: u64,
}

/// What a query found.
#[derive(Debug, Default)]
pub struct Found {
    pub rows: Vec<(Group, Sums)>,
    /// Records dropped by the reporting nodes in the range, by node.
    pub dropped: BTreeMap<Uuid, u64>,
}

pub struct AnalyticsStore {
    env: Env,
    aggregates: Database<Bytes, Bytes>,
    dropped: Database<Bytes, Bytes>,
    months: Database<Bytes, Bytes>,
    nodes: Database<Bytes, Bytes>,
    /// Per node, the last batch merged: its session and sequence number.
    sessions: Database<Bytes, Bytes>,
    retention_minutes: u64,
    /// The minute of the last retention purge.
    purged: Mutex<u64>,
}

fn io(e: heed::Error) -> StoreError {
    match e {
        heed::Error::Mdb(heed::MdbError::MapFull) => StoreError::Full { map_size: MAP_SIZE },
        other => StoreError::Io(other.to_string()),
    }
}

fn corrupt(key: &[u8], e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt { key: format!("analytics {key:02x?}"), message: e.to_string() }
}

/// `YYYY-MM` of a minute since the Unix epoch (UTC).
pub fn month_of(minute: u64) -> String {
    let seconds = i64::try_from(minute.saturating_mul(60)).unwrap_or(i64::MAX);
    match time::OffsetDateTime::from_unix_timestamp(seconds) {
        Ok(t) => format!("{:04}-{:02}", t.year(), u8::from(t.month())),
        Err(_) => "9999-12".into(),
    }
}

impl AnalyticsStore {
    /// Opens (creating if needed) the store under `prefix`, keeping aggregates for
    /// `retention_days`.
    pub fn open(prefix: &Path, retention_days: u64) -> Result<AnalyticsStore, StoreError> {
        let (env, dbs) =
            open_databases(&prefix.join(DIR), MAP_SIZE, &["aggregates", "dropped", "months", "nodes", "sessions"])?;
        let [aggregates, dropped, months, nodes, sessions] = <[Database<Bytes, Bytes>; 5]>::try_from(dbs)
            .map_err(|_| StoreError::Io("the analytics store opened the wrong number of databases".into()))?;
        Ok(AnalyticsStore {
            env,
            aggregates,
            dropped,
            months,
            nodes,
            sessions,
            retention_minutes: retention_days.saturating_mul(24 * 60),
            purged: Mutex::new(0),
        })
    }

    /// Adds one node's flush, in one transaction; `now` is the current minute (for retention).
    /// A batch of a sequence already merged changes nothing.
    pub fn merge(&self, report: &Report<'_>, now: u64) -> Result<Merged, StoreError> {
        let mut txn = self.env.write_txn().map_err(io)?;
        if let Some(sequence) = &report.sequence {
            let key = report.node.as_bytes();
            if let Some(bytes) = self.sessions.get(&txn, key).map_err(io)? {
                let last: Sequence = serde_json::from_slice(bytes).map_err(|e| corrupt(key, e))?;
                if last.session == sequence.session && sequence.seq <= last.seq {
                    return Ok(Merged::Duplicate);
                }
            }
            self.sessions
                .put(&mut txn, key, &serde_json::to_vec(sequence).expect("sequences serialise"))
                .map_err(io)?;
        }
        let mut months: BTreeMap<String, u64> = BTreeMap::new();
        for aggregate in report.aggregates {
            let group = Group {
                minute: aggregate.minute,
                node: report.node,
                service: aggregate.service,
                route: aggregate.route,
                consumer: aggregate.consumer,
                status_class: aggregate.status_class,
            };
            let key = group.key();
            let mut sums = match self.aggregates.get(&txn, &key).map_err(io)? {
                Some(bytes) => serde_json::from_slice::<Sums>(bytes).map_err(|e| corrupt(&key, e))?,
                None => Sums::default(),
            };
            sums.add(&Sums::of(aggregate));
            let bytes = serde_json::to_vec(&sums).expect("sums serialise");
            self.aggregates.put(&mut txn, &key, &bytes).map_err(io)?;
            *months.entry(month_of(aggregate.minute)).or_default() += aggregate.calls;
        }
        if report.dropped > 0 {
            let mut key = [0u8; 24];
            key[..8].copy_from_slice(&now.to_be_bytes());
            key[8..].copy_from_slice(report.node.as_bytes());
            let before = match self.dropped.get(&txn, &key).map_err(io)? {
                Some(bytes) => u64::from_be_bytes(bytes.try_into().map_err(|_| corrupt(&key, "not 8 bytes"))?),
                None => 0,
            };
            self.dropped.put(&mut txn, &key, &before.saturating_add(report.dropped).to_be_bytes()).map_err(io)?;
        }
        months.entry(month_of(now)).or_default();
        for (month, calls) in months {
            let key = month.as_bytes();
            let mut counts = match self.months.get(&txn, key).map_err(io)? {
                Some(bytes) => serde_json::from_slice::<Month>(bytes).map_err(|e| corrupt(key, e))?,
                None => Month::default(),
            };
            let before = counts.clone();
            counts.api_calls = counts.api_calls.saturating_add(calls);
            counts.services = counts.services.max(report.services);
            if counts != before {
                self.months.put(&mut txn, key, &serde_json::to_vec(&counts).expect("months serialise")).map_err(io)?;
            }
        }
        let name = NodeName { hostname: report.hostname.to_string() };
        let known = self.nodes.get(&txn, report.node.as_bytes()).map_err(io)?;
        if known.and_then(|b| serde_json::from_slice::<NodeName>(b).ok()).as_ref() != Some(&name) {
            let bytes = serde_json::to_vec(&name).expect("names serialise");
            self.nodes.put(&mut txn, report.node.as_bytes(), &bytes).map_err(io)?;
        }
        self.purge(&mut txn, now)?;
        txn.commit().map_err(io)?;
        Ok(Merged::Added)
    }

    /// Drops what is older than the retention, at most every few minutes.
    fn purge(&self, txn: &mut heed::RwTxn<'_>, now: u64) -> Result<(), StoreError> {
        let mut purged = self.purged.lock().unwrap_or_else(|p| p.into_inner());
        if now < purged.saturating_add(PURGE_EVERY_MINUTES) {
            return Ok(());
        }
        let cutoff = now.saturating_sub(self.retention_minutes).to_be_bytes();
        let older = (Bound::Unbounded, Bound::Excluded(&cutoff[..]));
        self.aggregates.delete_range(txn, &older).map_err(io)?;
        self.dropped.delete_range(txn, &older).map_err(io)?;
        *purged = now;
        Ok(())
    }

    /// The aggregates of minutes `first` to `last`, both included.
    pub fn query(&self, first: u64, last: u64) -> Result<Found, StoreError> {
        let txn = self.env.read_txn().map_err(io)?;
        let (from, to) = (first.to_be_bytes(), last.saturating_add(1).to_be_bytes());
        let range = (Bound::Included(&from[..]), Bound::Excluded(&to[..]));
        let mut found = Found::default();
        for item in self.aggregates.range(&txn, &range).map_err(io)? {
            let (key, bytes) = item.map_err(io)?;
            let group = Group::of_key(key).ok_or_else(|| corrupt(key, "not an aggregate key"))?;
            let sums = serde_json::from_slice::<Sums>(bytes).map_err(|e| corrupt(key, e))?;
            found.rows.push((group, sums));
        }
        for item in self.dropped.range(&txn, &range).map_err(io)? {
            let (key, bytes) = item.map_err(io)?;
            let node =
                key.get(8..24).and_then(|b| Uuid::from_slice(b).ok()).ok_or_else(|| corrupt(key, "not a node"))?;
            let n = u64::from_be_bytes(bytes.try_into().map_err(|_| corrupt(key, "not 8 bytes"))?);
            *found.dropped.entry(node).or_default() += n;
        }
        Ok(found)
    }

    /// Every month's counts, oldest first.
    pub fn months(&self) -> Result<Vec<(String, Month)>, StoreError> {
        let txn = self.env.read_txn().map_err(io)?;
        let mut out = Vec::new();
        for item in self.months.iter(&txn).map_err(io)? {
            let (key, bytes) = item.map_err(io)?;
            let month = String::from_utf8(key.to_vec()).map_err(|e| corrupt(key, e))?;
            out.push((month, serde_json::from_slice::<Month>(bytes).map_err(|e| corrupt(key, e))?));
        }
        Ok(out)
    }

    /// The hostnames of the nodes that reported.
    pub fn nodes(&self) -> Result<BTreeMap<Uuid, String>, StoreError> {
        let txn = self.env.read_txn().map_err(io)?;
        let mut out = BTreeMap::new();
        for item in self.nodes.iter(&txn).map_err(io)? {
            let (key, bytes) = item.map_err(io)?;
            let id = Uuid::from_slice(key).map_err(|e| corrupt(key, e))?;
            out.insert(id, serde_json::from_slice::<NodeName>(bytes).map_err(|e| corrupt(key, e))?.hostname);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
