//! The counting: which counters a request is held against (one per configured period, its key
//! naming the window it falls in, so a new window starts from zero) and what Kong answers with.
//! Kong reads the counters, decides, and counts a request only when it lets it through; here each
//! counter is first incremented and, if the request is refused, given its unit back. Sequentially
//! that is the same; with requests racing on other workers it cannot let two through for the
//! last unit, as read-then-count can. Kept apart from the host so it is tested on its own.

use gateway_pdk::{hex, push_int};
use sha2::{Digest, Sha256};

use crate::calendar::Period;

/// Per-node counters: add `delta` to `key` and return the new value; a counter starts at zero
/// and is forgotten `window` seconds after it was created (the host's `incr`).
pub trait Counters {
    fn incr(&mut self, key: &str, delta: i64, window: u32) -> i64;
}

/// Identifiers longer than this are counted under their digest, so a client cannot make the
/// node keep long keys.
const MAX_IDENTIFIER: usize = 64;

pub const RATELIMIT_LIMIT: &str = "RateLimit-Limit";
pub const RATELIMIT_REMAINING: &str = "RateLimit-Remaining";
pub const RATELIMIT_RESET: &str = "RateLimit-Reset";
pub const RETRY_AFTER: &str = "Retry-After";

/// One configured limit.
#[derive(Debug)]
struct Limit {
    period: Period,
    limit: f64,
    /// The limit as Kong prints it in headers.
    text: String,
    limit_header: String,
    remaining_header: String,
}

/// The limits of one configured instance.
#[derive(Debug)]
pub struct Limiter {
    /// Names this instance's counters among every plugin's on the node.
    prefix: String,
    limits: Vec<Limit>,
    headers: bool,
}

/// What to do with a request (the tests' view of [`Limiter::check_into`]).
#[cfg(test)]
#[derive(Debug, PartialEq)]
pub struct Verdict {
    pub allowed: bool,
    /// Kong's headers, in its order (empty with `hide_client_headers`); `Retry-After` last when
    /// refused.
    pub headers: Vec<(String, String)>,
}

impl Limiter {
    /// `instance` tells this instance's counters apart from other instances'; `headers` is false
    /// with `hide_client_headers`.
    pub fn new(instance: &str, limits: impl IntoIterator<Item = (Period, f64)>, headers: bool) -> Limiter {
        let limits = limits
            .into_iter()
            .map(|(period, limit)| Limit {
                period,
                limit,
                text: number(limit),
                limit_header: format!("X-RateLimit-Limit-{}", period.title()),
                remaining_header: format!("X-RateLimit-Remaining-{}", period.title()),
            })
            .collect();
        Limiter { prefix: format!("rate-limiting:{instance}:"), limits, headers }
    }

    /// Counts a request from `identifier` at `now` (seconds since the epoch) against every limit.
    #[cfg(test)]
    pub fn check(&self, counters: &mut impl Counters, identifier: &str, now: i64) -> Verdict {
        self.check_in(counters, "", identifier, now)
    }

    /// Counts a request from `identifier` within `scope` (the plugin entity: trusted, short) at
    /// `now` against every limit. Only the identifier, which a client may choose, is digested when
    /// long.
    #[cfg(test)]
    pub fn check_in(&self, counters: &mut impl Counters, scope: &str, identifier: &str, now: i64) -> Verdict {
        let mut headers = Headers::default();
        let allowed = self.check_into(counters, scope, identifier, now, &mut headers);
        Verdict { allowed, headers: headers.list }
    }

    /// [`Limiter::check_in`], Kong's headers written into `headers` (whose strings are reused
    /// from call to call: a plugin instance keeps one, and a request allocates none for them).
    /// Returns whether the request is allowed.
    pub fn check_into(
        &self,
        counters: &mut impl Counters,
        scope: &str,
        identifier: &str,
        now: i64,
        headers: &mut Headers,
    ) -> bool {
        let identifier = short(identifier);
        let mut counted = Vec::with_capacity(self.limits.len());
        let mut allowed = true;
        for limit in &self.limits {
            let (start, end) = limit.period.window(now);
            let name = limit.period.name();
            let mut key = String::with_capacity(self.prefix.len() + name.len() + scope.len() + identifier.len() + 24);
            key.push_str(&self.prefix);
            key.push_str(name);
            key.push(':');
            push_int(&mut key, start);
            key.push(':');
            key.push_str(scope);
            key.push('|');
            key.push_str(&identifier);
            let window = u32::try_from(end.saturating_sub(now)).unwrap_or(u32::MAX).max(1);
            let used_before = counters.incr(&key, 1, window).saturating_sub(1);
            let remaining = limit.limit - used_before as f64;
            allowed &= remaining > 0.0;
            counted.push((key, window, remaining, end));
        }
        if !allowed {
            for (key, window, _, _) in &counted {
                counters.incr(key, -1, *window);
            }
        }
        headers.used = 0;
        if !self.headers {
            headers.list.truncate(0);
            return allowed;
        }
        // The limit nearest to refusing is the one the RateLimit-* headers describe; on a tie,
        // the longer period (Kong's order).
        let mut tightest: Option<(&Limit, f64, i64)> = None;
        for (limit, (_, _, remaining, end)) in self.limits.iter().zip(&counted) {
            let left = if allowed { remaining - 1.0 } else { *remaining }.max(0.0);
            if tightest.is_none_or(|(_, least, _)| left <= least) {
                tightest = Some((limit, left, *end));
            }
            headers.put(&limit.limit_header, |v| v.push_str(&limit.text));
            headers.put(&limit.remaining_header, |v| gateway_pdk::push_lua_number(v, left));
        }
        if let Some((limit, left, end)) = tightest {
            let reset = end.saturating_sub(now).max(1);
            headers.put(RATELIMIT_LIMIT, |v| v.push_str(&limit.text));
            headers.put(RATELIMIT_REMAINING, |v| gateway_pdk::push_lua_number(v, left));
            headers.put(RATELIMIT_RESET, |v| push_int(v, reset));
            if !allowed {
                headers.put(RETRY_AFTER, |v| push_int(v, reset));
            }
        }
        headers.list.truncate(headers.used);
        allowed
    }
}

/// Kong's headers for one request, in its order (empty with `hide_client_headers`; `Retry-After`
/// last when refused). The strings stay allocated between requests and are written over.
#[derive(Debug, Default)]
pub struct Headers {
    pub list: Vec<(String, String)>,
    /// How many of `list` this request has written so far.
    used: usize,
}

impl Headers {
    fn put(&mut self, name: &str, value: impl FnOnce(&mut String)) {
        if self.used == self.list.len() {
            self.list.push((String::new(), String::new()));
        }
        let (n, v) = &mut self.list[self.used];
        if n != name {
            n.clear();
            n.push_str(name);
        }
        v.clear();
        value(v);
        self.used += 1;
    }
}

/// `identifier`, or its digest when it is long.
fn short(identifier: &str) -> std::borrow::Cow<'_, str> {
    if identifier.len() <= MAX_IDENTIFIER {
        return identifier.into();
    }
    format!("sha256:{}", hex(&Sha256::digest(identifier.as_bytes()))).into()
}

/// A number as Kong (Lua) prints it: whole numbers without a fraction, others with 14
/// significant digits (`%.14g`).
pub fn number(value: f64) -> String {
    let mut out = String::new();
    gateway_pdk::push_lua_number(&mut out, value);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The host's counters, on a clock the test moves.
    #[derive(Default)]
    struct Clocked {
        now: i64,
        counters: HashMap<String, (i64, i64)>,
    }

    impl Counters for Clocked {
        fn incr(&mut self, key: &str, delta: i64, window: u32) -> i64 {
            let now = self.now;
            let entry = self.counters.entry(key.to_string()).or_insert((0, now + i64::from(window)));
            if entry.1 <= now {
                *entry = (0, now + i64::from(window));
            }
            entry.0 += delta;
            entry.0
        }
    }

    /// 2024-02-29T13:45:30Z.
    const NOW: i64 = 1_709_214_330;

    /// A plugin instance's one `Headers`, written over request after request (allowed, refused
    /// with `Retry-After`, allowed again), holds what a fresh one would each time.
    #[test]
    fn reused_headers_are_written_over_exactly() {
        let limiter = Limiter::new("i", [(Period::Second, 5.0), (Period::Minute, 2.0)], true);
        let (mut reused_counters, mut fresh_counters) =
            (Clocked { now: NOW, ..Clocked::default() }, Clocked { now: NOW, ..Clocked::default() });
        let mut reused = Headers::default();
        for (i, now) in [NOW, NOW, NOW, NOW + 1, NOW + 61].into_iter().enumerate() {
            reused_counters.now = now;
            fresh_counters.now = now;
            let allowed = limiter.check_into(&mut reused_counters, "s", "a", now, &mut reused);
            let fresh = limiter.check_in(&mut fresh_counters, "s", "a", now);
            assert_eq!((allowed, &reused.list), (fresh.allowed, &fresh.headers), "request {i}");
        }
        let quiet = Limiter::new("q", [(Period::Second, 5.0)], false);
        assert!(quiet.check_into(&mut reused_counters, "s", "a", NOW + 61, &mut reused));
        assert!(reused.list.is_empty(), "hide_client_headers leaves none behind");
    }

    fn header<'a>(verdict: &'a Verdict, name: &str) -> Option<&'a str> {
        verdict.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_request_past_the_limit_is_refused_with_kongs_headers() {
        let limiter = Limiter::new("i", [(Period::Minute, 3.0)], true);
        let mut counters = Clocked { now: NOW, ..Clocked::default() };
        for left in ["2", "1", "0"] {
            let verdict = limiter.check(&mut counters, "1.2.3.4", NOW);
            assert!(verdict.allowed);
            assert_eq!(
                verdict.headers,
                [
                    ("X-RateLimit-Limit-Minute".to_string(), "3".to_string()),
                    ("X-RateLimit-Remaining-Minute".to_string(), left.to_string()),
                    ("RateLimit-Limit".to_string(), "3".to_string()),
                    ("RateLimit-Remaining".to_string(), left.to_string()),
                    ("RateLimit-Reset".to_string(), "30".to_string()),
                ]
            );
        }
        let refused = limiter.check(&mut counters, "1.2.3.4", NOW);
        assert!(!refused.allowed);
        assert_eq!(header(&refused, "X-RateLimit-Remaining-Minute"), Some("0"));
        assert_eq!(header(&refused, "RateLimit-Remaining"), Some("0"));
        assert_eq!(header(&refused, "Retry-After"), Some("30"));
        assert_eq!(refused.headers.last().map(|(n, _)| n.as_str()), Some("Retry-After"));
    }

    #[test]
    fn refused_requests_are_not_counted() {
        let limiter = Limiter::new("i", [(Period::Second, 1.0), (Period::Minute, 2.0)], true);
        let mut counters = Clocked { now: NOW, ..Clocked::default() };
        assert!(limiter.check(&mut counters, "a", NOW).allowed);
        for _ in 0..5 {
            let refused = limiter.check(&mut counters, "a", NOW);
            assert!(!refused.allowed);
            // Only the second is spent; the minute still has its unit.
            assert_eq!(header(&refused, "X-RateLimit-Remaining-Minute"), Some("1"));
            assert_eq!(header(&refused, "Retry-After"), Some("1"));
        }
        counters.now = NOW + 1;
        let verdict = limiter.check(&mut counters, "a", NOW + 1);
        assert!(verdict.allowed, "the refused requests used none of the minute's two");
        assert_eq!(header(&verdict, "X-RateLimit-Remaining-Minute"), Some("0"));
        counters.now = NOW + 2;
        let refused = limiter.check(&mut counters, "a", NOW + 2);
        assert!(!refused.allowed);
        assert_eq!(header(&refused, "RateLimit-Limit"), Some("2"), "the minute is the tighter limit now");
        assert_eq!(header(&refused, "Retry-After"), Some("28"));
    }

    #[test]
    fn the_window_resets() {
        let limiter = Limiter::new("i", [(Period::Minute, 1.0)], true);
        let mut counters = Clocked { now: NOW, ..Clocked::default() };
        assert!(limiter.check(&mut counters, "a", NOW).allowed);
        assert!(!limiter.check(&mut counters, "a", NOW + 29).allowed);
        // 13:46:00 starts the next minute.
        counters.now = NOW + 30;
        assert!(limiter.check(&mut counters, "a", NOW + 30).allowed);
        assert!(!limiter.check(&mut counters, "a", NOW + 31).allowed);
    }

    #[test]
    fn each_identifier_and_each_instance_counts_apart() {
        let one = Limiter::new("one", [(Period::Hour, 1.0)], true);
        let two = Limiter::new("two", [(Period::Hour, 1.0)], true);
        let mut counters = Clocked { now: NOW, ..Clocked::default() };
        assert!(one.check(&mut counters, "a", NOW).allowed);
        assert!(one.check(&mut counters, "b", NOW).allowed);
        assert!(two.check(&mut counters, "a", NOW).allowed);
        assert!(!one.check(&mut counters, "a", NOW).allowed);
        assert!(two.check(&mut counters, "b:x", NOW).allowed);
    }

    #[test]
    fn long_identifiers_are_counted_by_digest() {
        let limiter = Limiter::new("i", [(Period::Day, 1.0)], true);
        let mut counters = Clocked { now: NOW, ..Clocked::default() };
        let long = "x".repeat(10_000);
        assert!(limiter.check(&mut counters, &long, NOW).allowed);
        assert!(!limiter.check(&mut counters, &long, NOW).allowed);
        assert!(limiter.check(&mut counters, &"x".repeat(10_001), NOW).allowed);
        assert!(counters.counters.keys().all(|k| k.len() < 128), "{:?}", counters.counters.keys());
    }

    #[test]
    fn months_and_years_are_calendar_windows() {
        let limiter = Limiter::new("i", [(Period::Month, 1.0), (Period::Year, 5.0)], true);
        let mut counters = Clocked { now: NOW, ..Clocked::default() };
        let verdict = limiter.check(&mut counters, "a", NOW);
        // 2024-03-01T00:00:00Z is 36 870 s away.
        assert_eq!(header(&verdict, "RateLimit-Reset"), Some("36870"));
        assert_eq!(header(&verdict, "RateLimit-Limit"), Some("1"));
        let refused = limiter.check(&mut counters, "a", NOW + 36_869);
        assert_eq!((refused.allowed, header(&refused, "Retry-After")), (false, Some("1")));
        counters.now = NOW + 36_870;
        assert!(limiter.check(&mut counters, "a", NOW + 36_870).allowed, "March is a new month");
        let verdict = limiter.check(&mut counters, "a", NOW + 36_871);
        assert!(!verdict.allowed);
        assert_eq!(header(&verdict, "X-RateLimit-Remaining-Year"), Some("3"));
    }

    #[test]
    fn equal_remainders_name_the_longer_period() {
        let limiter = Limiter::new("i", [(Period::Second, 5.0), (Period::Hour, 5.0)], true);
        let mut counters = Clocked { now: NOW, ..Clocked::default() };
        let verdict = limiter.check(&mut counters, "a", NOW);
        assert_eq!(header(&verdict, "RateLimit-Reset"), Some("870"), "the hour's reset");
    }

    #[test]
    fn hidden_headers_and_fractional_limits() {
        let hidden = Limiter::new("i", [(Period::Second, 1.0)], false);
        let mut counters = Clocked { now: NOW, ..Clocked::default() };
        assert_eq!(hidden.check(&mut counters, "a", NOW), Verdict { allowed: true, headers: vec![] });
        assert_eq!(hidden.check(&mut counters, "a", NOW), Verdict { allowed: false, headers: vec![] });
        let fractional = Limiter::new("f", [(Period::Second, 1.5)], true);
        let verdict = fractional.check(&mut counters, "a", NOW);
        assert_eq!(header(&verdict, "RateLimit-Limit"), Some("1.5"));
        assert_eq!(header(&verdict, "RateLimit-Remaining"), Some("0.5"));
        assert!(fractional.check(&mut counters, "a", NOW).allowed, "0.5 left is still some");
        assert!(!fractional.check(&mut counters, "a", NOW).allowed);
        // As Lua prints it (%.14g): 1.1 - 1 is 0.1, not 0.10000000000000009.
        let tenth = Limiter::new("t", [(Period::Minute, 1.1)], true);
        let verdict = tenth.check(&mut counters, "a", NOW);
        assert_eq!(header(&verdict, "X-RateLimit-Remaining-Minute"), Some("0.1"));
    }
}
