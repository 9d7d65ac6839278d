//! `GET /analytics` and `GET /analytics/billing`: the parameters (refused whole, naming the one at
//! fault) and the answers, from what the analytics store found and the names the configuration
//! gives its ids.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use super::histogram::percentile_ms;
use super::store::{Found, Month, Sums};
use crate::entities::Config;

/// The range the answer covers when `start` is not given: the hour before `end`.
const DEFAULT_SPAN_SECONDS: i64 = 3600;

/// What the aggregates are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Service,
    Route,
    Consumer,
    DataPlane,
}

impl GroupBy {
    fn parse(value: &str) -> Option<GroupBy> {
        Some(match value {
            "service" => GroupBy::Service,
            "route" => GroupBy::Route,
            "consumer" => GroupBy::Consumer,
            "data_plane" => GroupBy::DataPlane,
            _ => return None,
        })
    }

    fn field(self) -> &'static str {
        match self {
            GroupBy::Service => "service",
            GroupBy::Route => "route",
            GroupBy::Consumer => "consumer",
            GroupBy::DataPlane => "data_plane",
        }
    }
}

/// A `/analytics` query.
#[derive(Debug, Clone, PartialEq)]
pub struct Params {
    /// Unix seconds, both included.
    pub start: i64,
    pub end: i64,
    pub group_by: Option<GroupBy>,
}

/// A parameter that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid parameter '{parameter}': {message}")]
pub struct BadParameter {
    pub parameter: String,
    pub message: String,
}

fn bad(parameter: &str, message: impl Into<String>) -> BadParameter {
    BadParameter { parameter: parameter.into(), message: message.into() }
}

impl Params {
    /// Reads `start`, `end` (RFC 3339 or Unix seconds) and `group_by` from a query string; `now`
    /// is the default end. Unknown or repeated parameters are refused.
    pub fn parse(query: &str, now: i64) -> Result<Params, BadParameter> {
        let mut given: BTreeMap<String, String> = BTreeMap::new();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            let key = key.into_owned();
            if !matches!(key.as_str(), "start" | "end" | "group_by") {
                return Err(bad(&key, "unknown parameter; expected start, end or group_by"));
            }
            if given.insert(key.clone(), value.into_owned()).is_some() {
                return Err(bad(&key, "given more than once"));
            }
        }
        let end = match given.get("end") {
            Some(value) => instant("end", value)?,
            None => now,
        };
        let start = match given.get("start") {
            Some(value) => instant("start", value)?,
            None => end.saturating_sub(DEFAULT_SPAN_SECONDS),
        };
        if start > end {
            return Err(bad("start", "must not be after end"));
        }
        let group_by = match given.get("group_by") {
            Some(value) => Some(
                GroupBy::parse(value)
                    .ok_or_else(|| bad("group_by", "expected one of service, route, consumer, data_plane"))?,
            ),
            None => None,
        };
        Ok(Params { start, end, group_by })
    }

    /// The minutes the range touches, first and last.
    pub fn minutes(&self) -> (u64, u64) {
        let minute = |s: i64| u64::try_from(s.div_euclid(60)).unwrap_or(0);
        (minute(self.start), minute(self.end))
    }
}

/// Unix seconds from RFC 3339 or a non-negative integer.
fn instant(parameter: &str, value: &str) -> Result<i64, BadParameter> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value
            .parse::<i64>()
            .ok()
            .filter(|s| *s <= 253_402_300_799)
            .ok_or_else(|| bad(parameter, "epoch seconds out of range"));
    }
    OffsetDateTime::parse(value, &Rfc3339)
        .map(|t| t.unix_timestamp())
        .map_err(|_| bad(parameter, format!("{value:?} is neither RFC 3339 (2026-12-07T10:00:00Z) nor epoch seconds")))
}

fn rfc3339(seconds: i64) -> Value {
    OffsetDateTime::from_unix_timestamp(seconds)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .map_or(Value::Null, Value::String)
}

/// The `/analytics` answer for `params` from `found`; `config` and `nodes` name the ids.
pub fn answer(params: &Params, found: &Found, config: &Config, nodes: &BTreeMap<Uuid, String>) -> Value {
    let mut groups: BTreeMap<Option<Uuid>, [Sums; 6]> = BTreeMap::new();
    for (group, sums) in &found.rows {
        let key = match params.group_by {
            None => None,
            Some(GroupBy::Service) => group.service,
            Some(GroupBy::Route) => group.route,
            Some(GroupBy::Consumer) => group.consumer,
            Some(GroupBy::DataPlane) => Some(group.node),
        };
        groups.entry(key).or_default()[usize::from(group.status_class.min(5))].add(sums);
    }
    let mut rows: Vec<(u64, Value)> = groups
        .into_iter()
        .map(|(key, classes)| {
            let mut total = Sums::default();
            classes.iter().for_each(|sums| total.add(sums));
            let status = json!({
                "2xx": classes[2].calls, "3xx": classes[3].calls, "4xx": classes[4].calls, "5xx": classes[5].calls,
            });
            let mut row = json!({
                "calls": total.calls,
                "status": status,
                "latency_ms": percentiles(&total.latency),
                "upstream_latency_ms": percentiles(&total.upstream_latency),
                "bytes_in": total.bytes_in,
                "bytes_out": total.bytes_out,
            });
            if let Some(group_by) = params.group_by {
                row[group_by.field()] = name(group_by, key, config, nodes);
            }
            (total.calls, row)
        })
        .collect();
    rows.sort_by_key(|row| std::cmp::Reverse(row.0));
    let mut out = json!({
        "start": rfc3339(params.start),
        "end": rfc3339(params.end),
        "data": rows.into_iter().map(|(_, row)| row).collect::<Vec<_>>(),
        "dropped": found.dropped.values().sum::<u64>(),
    });
    if let Some(group_by) = params.group_by {
        out["group_by"] = json!(group_by.field());
    }
    out
}

fn percentiles(histogram: &BTreeMap<u16, u64>) -> Value {
    json!({
        "p50": percentile_ms(histogram, 0.50),
        "p95": percentile_ms(histogram, 0.95),
        "p99": percentile_ms(histogram, 0.99),
    })
}

/// A group's key as the answer shows it: `null` for calls with none (no consumer, no route).
fn name(group_by: GroupBy, id: Option<Uuid>, config: &Config, nodes: &BTreeMap<Uuid, String>) -> Value {
    let Some(id) = id else { return Value::Null };
    match group_by {
        GroupBy::Service => {
            let name = config.services.iter().find(|s| s.id == id).and_then(|s| s.name.clone());
            json!({ "id": id, "name": name })
        }
        GroupBy::Route => {
            let name = config.routes.iter().find(|r| r.id == id).and_then(|r| r.name.clone());
            json!({ "id": id, "name": name })
        }
        GroupBy::Consumer => {
            let username = config.consumers.iter().find(|c| c.id == id).and_then(|c| c.username.clone());
            json!({ "id": id, "username": username })
        }
        GroupBy::DataPlane => json!({ "id": id, "hostname": nodes.get(&id) }),
    }
}

/// The `/analytics/billing` answer.
pub fn billing(months: &[(String, Month)]) -> Value {
    let data: Vec<Value> = months
        .iter()
        .map(|(month, counts)| json!({ "month": month, "api_calls": counts.api_calls, "services": counts.services }))
        .collect();
    json!({ "data": data })
}

#[cfg(test)]
mod tests;
