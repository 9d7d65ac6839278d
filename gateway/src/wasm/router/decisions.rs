//! Route decisions remembered per configuration version, as Kong's router keeps an LRU of them: a
//! request shaped like one seen before (the same method, host, port, path, routed-on headers and
//! server name: everything the component is given) gets the same decision without a call into
//! the component. The router contract (`wit/router.wit`) makes a decision a function of the table
//! and those fields alone.
//!
//! Clients choose the keys, so the cache is bounded: keys over [`MAX_KEY`] bytes are not kept, and
//! entries live in two generations of at most [`GENERATION`] each. A full current generation
//! becomes the previous one and the old previous one is dropped; a hit in the previous generation
//! moves back to the current one. A scan of distinct paths therefore evicts only decisions not used
//! since the last turnover, and costs what the component call costs anyway. One cache per worker
//! thread, so cores share no lock or cache line per request.

use std::collections::HashMap;

use super::{Request, RouteMatch};

/// Entries per generation (two generations per worker thread).
const GENERATION: usize = 2048;
/// Longest key kept, in bytes: longer requests (long paths, many routed-on headers) are routed
/// by the component every time.
const MAX_KEY: usize = 1024;

/// What the router looks at in a request, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct RouteQuery<'a> {
    pub method: &'a str,
    /// The Host header or `:authority`, possibly with a port.
    pub host: &'a str,
    /// The port the request arrived on.
    pub port: u16,
    /// The path without the query string, as received.
    pub path: &'a str,
    /// The values of the headers the table routes on, by lower-case name.
    pub headers: &'a [(&'a str, &'a [u8])],
    /// The TLS server name (`""` when a TLS client sent none); `None` in plain text.
    pub sni: Option<&'a str>,
}

impl RouteQuery<'_> {
    /// The request as the component takes it.
    pub fn to_request(&self) -> Request {
        Request {
            method: self.method.to_string(),
            host: self.host.to_string(),
            port: self.port,
            path: self.path.to_string(),
            headers: self.headers.iter().map(|(name, value)| (name.to_string(), value.to_vec())).collect(),
            sni: self.sni.map(str::to_string),
        }
    }

    /// Writes the key into `out`: every field, each one length-prefixed so no two queries share
    /// a key. False when the key is too long to keep.
    fn encode(&self, out: &mut Vec<u8>) -> bool {
        out.clear();
        let mut put = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
            out.extend_from_slice(bytes);
        };
        put(self.method.as_bytes());
        put(self.host.as_bytes());
        put(&self.port.to_le_bytes());
        put(self.path.as_bytes());
        for (name, value) in self.headers {
            put(name.as_bytes());
            put(value);
        }
        match self.sni {
            None => put(b"\0plain"),
            Some(sni) => {
                put(b"\0tls");
                put(sni.as_bytes());
            }
        }
        out.len() <= MAX_KEY
    }
}

/// One worker thread's decisions.
#[derive(Default)]
pub struct Decisions {
    current: HashMap<Box<[u8]>, Option<RouteMatch>>,
    previous: HashMap<Box<[u8]>, Option<RouteMatch>>,
    /// Where keys are written, reused from lookup to lookup.
    key: Vec<u8>,
}

impl Decisions {
    /// The decision remembered for `query`, if any (`Some(None)`: no route matches it).
    pub fn get(&mut self, query: &RouteQuery<'_>) -> Option<Option<RouteMatch>> {
        if !query.encode(&mut self.key) {
            return None;
        }
        if let Some(found) = self.current.get(self.key.as_slice()) {
            return Some(found.clone());
        }
        let (key, found) = self.previous.remove_entry(self.key.as_slice())?;
        self.insert_entry(key, found.clone());
        Some(found)
    }

    /// Remembers `decision` for `query`.
    pub fn insert(&mut self, query: &RouteQuery<'_>, decision: &Option<RouteMatch>) {
        if query.encode(&mut self.key) {
            let key = self.key.as_slice().into();
            self.insert_entry(key, decision.clone());
        }
    }

    fn insert_entry(&mut self, key: Box<[u8]>, decision: Option<RouteMatch>) {
        if self.current.len() >= GENERATION {
            self.previous = std::mem::take(&mut self.current);
        }
        self.current.insert(key, decision);
    }

    /// Decisions kept, in both generations.
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query<'a>(path: &'a str, headers: &'a [(&'a str, &'a [u8])], sni: Option<&'a str>) -> RouteQuery<'a> {
        RouteQuery { method: "GET", host: "example.com", port: 8000, path, headers, sni }
    }

    fn decision(route: u32) -> Option<RouteMatch> {
        Some(RouteMatch { route, upstream_path: format!("/r{route}"), captures: vec![] })
    }

    /// What `get` finds, as route numbers.
    fn found(d: &mut Decisions, q: &RouteQuery<'_>) -> Option<Option<u32>> {
        d.get(q).map(|m| m.map(|m| m.route))
    }

    #[test]
    fn a_decision_is_found_again_only_for_the_same_request_shape() {
        let mut d = Decisions::default();
        let q = query("/a", &[], None);
        assert_eq!(found(&mut d, &q), None);
        d.insert(&q, &decision(1));
        assert_eq!(found(&mut d, &q), Some(Some(1)));
        assert_eq!(d.get(&q).unwrap().unwrap().upstream_path, "/r1");
        assert_eq!(found(&mut d, &query("/b", &[], None)), None, "another path");
        assert_eq!(found(&mut d, &query("/a", &[], Some(""))), None, "TLS without a server name is not plain text");
        assert_eq!(found(&mut d, &query("/a", &[("x-v", b"1")], None)), None, "a routed-on header");
        let mut other_port = q;
        other_port.port = 8443;
        assert_eq!(found(&mut d, &other_port), None, "another port");
        let mut other_method = q;
        other_method.method = "POST";
        assert_eq!(found(&mut d, &other_method), None, "another method");
        // Fields cannot run into each other: "ab" + "c" is not "a" + "bc".
        let mut split = query("c", &[], None);
        split.host = "ab";
        d.insert(&split, &decision(2));
        let mut moved = query("bc", &[], None);
        moved.host = "a";
        assert_eq!(found(&mut d, &moved), None);
        assert_eq!(found(&mut d, &split), Some(Some(2)));
    }

    #[test]
    fn no_match_is_remembered_too() {
        let mut d = Decisions::default();
        let q = query("/nothing", &[], None);
        d.insert(&q, &None);
        assert_eq!(found(&mut d, &q), Some(None));
    }

    #[test]
    fn long_keys_are_not_kept() {
        let mut d = Decisions::default();
        let long = "/".repeat(MAX_KEY);
        let q = query(&long, &[], None);
        assert_eq!(found(&mut d, &q), None);
        d.insert(&q, &decision(1));
        assert_eq!(found(&mut d, &q), None);
        assert!(d.is_empty());
    }

    #[test]
    fn a_scan_of_distinct_paths_stays_bounded_and_spares_what_is_used() {
        let mut d = Decisions::default();
        let hot = query("/hot", &[], None);
        d.insert(&hot, &decision(7));
        for i in 0..GENERATION * 10 {
            let path = format!("/scan/{i}");
            let q = query(&path, &[], None);
            assert_eq!(found(&mut d, &q), None);
            d.insert(&q, &None);
            if i % (GENERATION / 2) == 0 {
                assert_eq!(found(&mut d, &hot), Some(Some(7)), "the hot entry survives the scan");
            }
            assert!(d.len() <= 2 * GENERATION, "bounded: {}", d.len());
        }
    }
}
