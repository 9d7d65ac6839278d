//! Kong's `traditional_compatible` route matching, as a plain library: the router component wraps
//! it for the gateway, and the gateway itself uses its checks to validate configurations, so a path
//! the router would refuse is refused with the entity's name before any traffic.
//!
//! A route is split into one matching unit per path (a route without paths is one unit). Each unit
//! has Kong's 64-bit priority; units are evaluated from the highest priority down and the first one
//! whose route matches on every configured field wins. Indexes (a byte trie of prefix paths, a
//! regex set, and a list of path-less units) keep the candidates of a request few.

pub mod cases;
mod host;
mod normalize;
mod trie;

use std::collections::BTreeMap;

use regex::{Regex, RegexSet};

pub use host::{HostPattern, split_host_port};
pub use normalize::{PathError, check_request_path, has_dot_segment, normalize_path};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathHandling {
    V0,
    V1,
}

/// One route as the router needs it.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    pub methods: Vec<String>,
    pub hosts: Vec<String>,
    pub paths: Vec<String>,
    /// Header name (any case) and the values that match it (any one).
    pub headers: Vec<(String, Vec<String>)>,
    pub snis: Vec<String>,
    pub regex_priority: i32,
    pub strip_path: bool,
    pub path_handling: PathHandling,
    /// The path of the route's service; `None` is `/`.
    pub service_path: Option<String>,
}

/// Why a route table cannot be loaded: which route (by position), which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub route: u32,
    pub field: String,
    pub message: String,
}

/// A request as the router sees it.
#[derive(Debug, Clone, Default)]
pub struct Request<'a> {
    pub method: &'a str,
    /// The Host header or `:authority`, possibly with a port.
    pub host: &'a str,
    /// The port the request arrived on (Kong matches host ports against it).
    pub port: u16,
    /// The request path, without the query string, not yet normalised.
    pub path: &'a str,
    /// Request headers; only those in [`Router::header_names`] matter.
    pub headers: &'a [(String, Vec<u8>)],
    /// For requests that came over TLS, the server name they sent (`""` when they sent none);
    /// `None` for plain-text requests.
    pub sni: Option<&'a str>,
}

/// The decision for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    pub route: u32,
    /// The path to send upstream: the service path joined with what is left of the request path.
    pub upstream_path: String,
    /// Regex captures: `0` is the whole match, then positional (`1`, `2`, …) and named groups.
    pub captures: Vec<(String, String)>,
}

enum PathMatcher {
    Any,
    Prefix(String),
    Regex(Regex),
}

struct Unit {
    route: u32,
    path: PathMatcher,
}

struct CompiledRoute {
    methods: Vec<String>,
    hosts: Vec<HostPattern>,
    headers: Vec<(String, Vec<ValueMatcher>)>,
    snis: Vec<HostPattern>,
    strip_path: bool,
    path_handling: PathHandling,
    service_path: String,
}

enum ValueMatcher {
    Exact(String),
    Regex(Regex),
}

/// Regexes per screening set.
const REGEX_SET_SIZE: usize = 64;

pub struct Router {
    routes: Vec<CompiledRoute>,
    /// Units in evaluation order: highest priority first; ties keep table order.
    units: Vec<Unit>,
    prefixes: trie::Trie,
    regex_units: Vec<u32>,
    /// Sets over the regex units without a literal prefix, [`REGEX_SET_SIZE`] units each.
    regex_sets: Vec<RegexSet>,
    pathless_units: Vec<u32>,
    header_names: Vec<String>,
}

/// Kong's priority of a unit (`router/transform.lua get_priority`), highest evaluated first.
fn priority(route: &RouteSpec, path: &PathMatcher) -> u64 {
    let weight = [
        !route.methods.is_empty(),
        !route.hosts.is_empty(),
        !route.headers.is_empty(),
        !route.paths.is_empty(),
        !route.snis.is_empty(),
    ]
    .iter()
    .filter(|&&set| set)
    .count() as u64;
    let plain_hosts = !route.hosts.is_empty() && route.hosts.iter().all(|h| !h.contains('*'));
    let header_count = route.headers.len().min(255) as u64;
    let (regex, regex_priority, prefix_len) = match path {
        PathMatcher::Regex(_) => (1, (i64::from(route.regex_priority) + (1 << 31)) as u64 & 0xFFFF_FFFF, 0),
        PathMatcher::Prefix(p) => (0, 0, p.len().min((1 << 19) - 1) as u64),
        PathMatcher::Any => (0, 0, 0),
    };
    weight << 61 | u64::from(plain_hosts) << 60 | header_count << 52 | regex << 51 | regex_priority << 19 | prefix_len
}

/// Checks a configured route path: a normalised prefix starting with `/`, or `~` and a regex.
pub fn check_path(path: &str) -> Result<(), String> {
    if let Some(regex) = path.strip_prefix('~') {
        if !regex.starts_with('/') {
            return Err("must start with / or ~/".into());
        }
        compile_path_regex(regex).map(|_| ())
    } else if !path.starts_with('/') {
        Err("must start with / or ~/".into())
    } else if normalize_path(path) != path {
        Err(format!("non-normalized path, consider using {:?} instead", normalize_path(path)))
    } else {
        Ok(())
    }
}

/// A regex path, anchored at the start as Kong anchors it.
pub fn compile_path_regex(regex: &str) -> Result<Regex, String> {
    Regex::new(&format!("^(?:{regex})")).map_err(|e| format!("invalid regex: {}", first_line(&e.to_string())))
}

/// The literal every match of an (anchored) path regex starts with, when there is a useful one
/// (longer than `/`, which every path starts with).
fn literal_prefix(anchored: &str) -> Option<Vec<u8>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let hir = regex_syntax::Parser::new().parse(anchored).ok()?;
    let mut extractor = Extractor::new();
    extractor.kind(ExtractKind::Prefix);
    let literals = extractor.extract(&hir);
    let prefix = literals.longest_common_prefix()?;
    (prefix.len() > 1).then(|| prefix.to_vec())
}

/// Checks a header value rule: `~*` starts a case-insensitive regex, anything else is exact.
pub fn check_header_value(value: &str) -> Result<(), String> {
    header_matcher(value).map(|_| ())
}

fn header_matcher(value: &str) -> Result<ValueMatcher, String> {
    match value.strip_prefix("~*") {
        Some(regex) => Regex::new(&format!("(?i){regex}"))
            .map(ValueMatcher::Regex)
            .map_err(|e| format!("invalid regex: {}", first_line(&e.to_string()))),
        None => Ok(ValueMatcher::Exact(value.to_ascii_lowercase())),
    }
}

fn first_line(s: &str) -> String {
    s.lines().last().unwrap_or(s).trim().to_string()
}

impl Router {
    /// Compiles a table. Every problem in it is reported, with the route's position and field.
    pub fn new(specs: &[RouteSpec]) -> Result<Router, Vec<LoadError>> {
        let mut errors = Vec::new();
        let mut routes = Vec::with_capacity(specs.len());
        let mut ranked: Vec<(u64, u32, usize, PathMatcher)> = Vec::new();
        let mut header_names: BTreeMap<String, ()> = BTreeMap::new();
        for (i, spec) in specs.iter().enumerate() {
            let id = i as u32;
            let mut fail = |field: String, message: String| errors.push(LoadError { route: id, field, message });
            let mut hosts = Vec::new();
            for (j, h) in spec.hosts.iter().enumerate() {
                match HostPattern::parse(h, true) {
                    Ok(p) => hosts.push(p),
                    Err(m) => fail(format!("hosts[{j}]"), m),
                }
            }
            let mut snis = Vec::new();
            for (j, s) in spec.snis.iter().enumerate() {
                match HostPattern::parse(s.trim_end_matches('.'), false) {
                    Ok(p) => snis.push(p),
                    Err(m) => fail(format!("snis[{j}]"), m),
                }
            }
            let mut headers = Vec::new();
            for (name, values) in &spec.headers {
                let name = name.to_ascii_lowercase();
                let mut matchers = Vec::new();
                for (j, v) in values.iter().enumerate() {
                    match header_matcher(v) {
                        Ok(m) => matchers.push(m),
                        Err(m) => fail(format!("headers.{name}[{j}]"), m),
                    }
                }
                header_names.insert(name.clone(), ());
                headers.push((name, matchers));
            }
            let mut units = Vec::new();
            for (j, p) in spec.paths.iter().enumerate() {
                match check_path(p) {
                    Ok(()) => match p.strip_prefix('~') {
                        Some(regex) => units.push(PathMatcher::Regex(compile_path_regex(regex).expect("checked"))),
                        None => units.push(PathMatcher::Prefix(p.clone())),
                    },
                    Err(m) => fail(format!("paths[{j}]"), m),
                }
            }
            if spec.paths.is_empty() {
                units.push(PathMatcher::Any);
            }
            for (j, unit) in units.into_iter().enumerate() {
                ranked.push((priority(spec, &unit), id, j, unit));
            }
            routes.push(CompiledRoute {
                methods: spec.methods.clone(),
                hosts,
                headers,
                snis,
                strip_path: spec.strip_path,
                path_handling: spec.path_handling,
                service_path: spec.service_path.clone().unwrap_or_else(|| "/".into()),
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        let mut prefixes = trie::Trie::default();
        let mut regex_units = Vec::new();
        let mut regexes = Vec::new();
        let mut pathless_units = Vec::new();
        let units: Vec<Unit> = ranked
            .into_iter()
            .enumerate()
            .map(|(rank, (_, route, _, path))| {
                let rank = rank as u32;
                match &path {
                    PathMatcher::Any => pathless_units.push(rank),
                    PathMatcher::Prefix(p) => prefixes.insert(p.as_bytes(), rank),
                    // A regex that can only match paths starting with some literal is a candidate
                    // only for those paths; the rest are screened all at once by a set.
                    PathMatcher::Regex(r) => match literal_prefix(r.as_str()) {
                        Some(literal) => prefixes.insert(&literal, rank),
                        None => {
                            regex_units.push(rank);
                            regexes.push(r.as_str().to_string());
                        }
                    },
                }
                Unit { route, path }
            })
            .collect();
        // Several small sets rather than one: a set's compiled size grows faster than its pattern
        // count, and one huge set would hit the regex size limit or thrash its lazy DFA.
        let regex_sets = regexes
            .chunks(REGEX_SET_SIZE)
            .map(|chunk| {
                RegexSet::new(chunk).map_err(|e| {
                    vec![LoadError { route: 0, field: "paths".into(), message: format!("regex set: {e}") }]
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Router {
            routes,
            units,
            prefixes,
            regex_units,
            regex_sets,
            pathless_units,
            header_names: header_names.into_keys().collect(),
        })
    }

    /// The request headers the table looks at, lower-case. Only these need to be passed in.
    pub fn header_names(&self) -> &[String] {
        &self.header_names
    }

    /// The route for a request, if any.
    pub fn route(&self, req: &Request<'_>) -> Option<Match> {
        let path = normalize_path(req.path);
        let mut candidates: Vec<u32> = Vec::with_capacity(8);
        self.prefixes.collect(path.as_bytes(), &mut candidates);
        for (chunk, set) in self.regex_sets.iter().enumerate() {
            let base = chunk * REGEX_SET_SIZE;
            candidates.extend(set.matches(&path).into_iter().map(|i| self.regex_units[base + i]));
        }
        candidates.extend_from_slice(&self.pathless_units);
        candidates.sort_unstable();
        candidates.dedup();

        let (host, _) = split_host_port(req.host);
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let sni = req.sni.map(|s| s.trim_end_matches('.').to_ascii_lowercase());
        for rank in candidates {
            let unit = &self.units[rank as usize];
            let route = &self.routes[unit.route as usize];
            if !route.matches(req, &host, sni.as_deref()) {
                continue;
            }
            let (matched_len, captures) = match &unit.path {
                PathMatcher::Any => (0, Vec::new()),
                PathMatcher::Prefix(p) => (p.len(), Vec::new()),
                PathMatcher::Regex(r) => {
                    let Some(caps) = r.captures(&path) else { continue };
                    (caps.get(0).map_or(0, |m| m.end()), captures_of(r, &caps))
                }
            };
            let rest = if route.strip_path { &path[matched_len..] } else { path.as_str() };
            let upstream_path =
                join_upstream_path(&route.service_path, rest, route.strip_path, route.path_handling, &path);
            return Some(Match { route: unit.route, upstream_path, captures });
        }
        None
    }
}

impl CompiledRoute {
    fn matches(&self, req: &Request<'_>, host: &str, sni: Option<&str>) -> bool {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == req.method) {
            return false;
        }
        if !self.hosts.is_empty() && !self.hosts.iter().any(|h| h.matches(host, Some(req.port))) {
            return false;
        }
        // A request that did not come over TLS (`None`) ignores the SNI condition, as in Kong; one
        // that came over TLS without a server name (`Some("")`) matches no SNI pattern.
        if let (false, Some(sni)) = (self.snis.is_empty(), sni)
            && !self.snis.iter().any(|p| p.matches(sni, None))
        {
            return false;
        }
        self.headers.iter().all(|(name, matchers)| {
            req.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).any(|(_, value)| {
                let value = String::from_utf8_lossy(value);
                matchers.iter().any(|m| match m {
                    ValueMatcher::Exact(v) => value.eq_ignore_ascii_case(v),
                    ValueMatcher::Regex(r) => r.is_match(&value),
                })
            })
        })
    }
}

fn captures_of(regex: &Regex, caps: &regex::Captures<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, name) in regex.capture_names().enumerate() {
        if let Some(m) = caps.get(i) {
            out.push((i.to_string(), m.as_str().to_string()));
            if let Some(name) = name {
                out.push((name.to_string(), m.as_str().to_string()));
            }
        }
    }
    out
}

/// Whether an upstream path may be sent: it holds no segment an upstream could read as `.` or `..`
/// (see [`has_dot_segment`]) and stays under the service's path. Stripping a prefix can make a dot
/// segment where the request had none (`/public../admin` less `/public` is `../admin`).
pub fn upstream_path_is_safe(upstream: &str, service_path: Option<&str>) -> bool {
    let base = service_path.unwrap_or("/");
    upstream.starts_with('/') && upstream.starts_with(base) && !has_dot_segment(upstream)
}

/// Kong's joining of the service path and the request path (`path_handling` v0 and v1). `rest` is
/// what remains of `full` after stripping (or `full` itself when not stripping).
pub fn join_upstream_path(base: &str, rest: &str, stripped: bool, handling: PathHandling, full: &str) -> String {
    match handling {
        PathHandling::V0 => {
            if stripped && rest.is_empty() {
                return if base == "/" {
                    "/".into()
                } else if full.ends_with('/') && !base.ends_with('/') {
                    format!("{base}/")
                } else {
                    base.to_string()
                };
            }
            if base == "/" {
                return if rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") };
            }
            match (base.ends_with('/'), rest.starts_with('/')) {
                (true, true) => format!("{}{rest}", &base[..base.len() - 1]),
                (false, false) => format!("{base}/{rest}"),
                _ => format!("{base}{rest}"),
            }
        }
        PathHandling::V1 => {
            if base == "/" {
                return if rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") };
            }
            // v1 concatenates without the request's leading slash: `/s` + `/fv1req` gives
            // `/sfv1req`, as Kong's path_handling table shows.
            format!("{base}{}", rest.strip_prefix('/').unwrap_or(rest))
        }
    }
}

#[cfg(test)]
mod tests;
