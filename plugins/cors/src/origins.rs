//! Which origin a response allows, decided as Kong's `cors` plugin decides it. An entry of
//! `origins` made only of `A-Z a-z 0-9 . : / -` is a plain origin, compared with the request's
//! origin after both are normalised (scheme, host and port, the scheme's default port dropped);
//! any other entry is a regex, matched against the request origin's host when the entry has no
//! `:`, else against its normalised origin. A regex must match the whole subject: Kong anchors it
//! at the start and appends `$`, which leaves `a|b` open at the end of `a`; here every entry is
//! wrapped whole, `^(?:entry)$`.

use regex::{Regex, RegexBuilder};

/// A compiled regex is kept under this size, so a configuration cannot make the node hold a
/// huge automaton.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// The configured `origins`, ready to match.
#[derive(Debug)]
pub enum Origins {
    /// No entries, or only `*`: `Access-Control-Allow-Origin: *`.
    All,
    /// One plain entry: sent as it is, whatever the request's origin (the browser compares).
    Single(String),
    /// Several entries, or one regex.
    List { any: bool, entries: Vec<Entry> },
}

#[derive(Debug)]
pub enum Entry {
    Exact(String),
    Regex { regex: Regex, by_host: bool },
}

/// The origin a response allows.
#[derive(Debug, PartialEq, Eq)]
pub enum Allowed {
    /// `*`.
    Any,
    /// This origin.
    Origin(String),
    /// None: the header is removed.
    Nobody,
}

/// Whether Kong takes `entry` as a plain origin rather than a regex.
fn is_plain(entry: &str) -> bool {
    !entry.is_empty() && entry.bytes().all(|b| b.is_ascii_alphanumeric() || b".:/-".contains(&b))
}

/// An `origins` entry as Kong's schema checks it: `*` or a regex.
pub fn check_entry(entry: &str) -> Result<(), String> {
    if entry.is_empty() {
        return Err("length must be at least 1".into());
    }
    // Checked as written (Kong's test) and as it is matched, anchored: an entry whose anchored
    // form does not compile (`(?x)a#c`, where `#` comments out the closing parenthesis) would
    // otherwise pass here and break the plugin when it loads.
    if entry == "*" || (compile(entry).is_ok() && compile(&anchored(entry)).is_ok()) {
        return Ok(());
    }
    Err(format!("'{entry}' is not a valid regex"))
}

/// A regex entry as it is matched: the whole origin (or host).
fn anchored(entry: &str) -> String {
    format!("^(?:{entry})$")
}

fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern).size_limit(REGEX_SIZE_LIMIT).build()
}

impl Origins {
    /// The checked `origins` (see [`check_entry`]).
    pub fn new(entries: &[String]) -> Result<Origins, String> {
        match entries {
            [] => return Ok(Origins::All),
            [only] if only == "*" => return Ok(Origins::All),
            [only] if is_plain(only) => return Ok(Origins::Single(only.clone())),
            _ => {}
        }
        let mut any = false;
        let mut list = Vec::with_capacity(entries.len());
        for entry in entries {
            if entry == "*" {
                any = true;
            } else if is_plain(entry) {
                list.push(Entry::Exact(normalize(entry).domain));
            } else {
                let regex = compile(&anchored(entry)).map_err(|e| format!("origin '{entry}': {e}"))?;
                list.push(Entry::Regex { regex, by_host: !entry.contains(':') });
            }
        }
        Ok(Origins::List { any, entries: list })
    }

    /// Whether a response gets `Vary: Origin` (Kong: whenever the answer depends on it).
    pub fn varies(&self) -> bool {
        !matches!(self, Origins::All)
    }

    /// The origin allowed for a request from `origin` (absent or empty: none given).
    pub fn allowed(&self, origin: Option<&str>) -> Allowed {
        let origin = origin.filter(|o| !o.is_empty());
        match self {
            Origins::All => Allowed::Any,
            Origins::Single(entry) => Allowed::Origin(entry.clone()),
            Origins::List { any, entries } => {
                let Some(origin) = origin else { return Allowed::Nobody };
                if *any {
                    return Allowed::Any;
                }
                let normalized = normalize(origin);
                let found = entries.iter().any(|entry| match entry {
                    Entry::Exact(domain) => *domain == normalized.domain,
                    Entry::Regex { regex, by_host } => {
                        regex.is_match(if *by_host { &normalized.host } else { &normalized.domain })
                    }
                });
                if found { Allowed::Origin(normalized.domain) } else { Allowed::Nobody }
            }
        }
    }
}

/// An origin as Kong normalises it (with LuaSocket's URL parser).
#[derive(Debug, PartialEq, Eq)]
pub struct Normalized {
    /// `scheme://host[:port]`, without the scheme's default port.
    pub domain: String,
    pub host: String,
}

/// `origin` normalised: one without a `//` authority (`null`, `foo.test`) is its own domain and
/// host.
pub fn normalize(origin: &str) -> Normalized {
    let verbatim = || Normalized { domain: origin.to_string(), host: origin.to_string() };
    let (scheme, rest) = match origin.split_once(':') {
        Some((scheme, rest)) if is_scheme(scheme) => (Some(scheme), rest),
        _ => (None, origin),
    };
    let Some(rest) = rest.strip_prefix("//") else { return verbatim() };
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let authority = authority.split_once('@').map_or(authority, |(_, after)| after);
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i + 1..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    if host.is_empty() {
        return verbatim();
    }
    let port = port.filter(|p| !matches!((scheme, *p), (Some("http"), "80") | (Some("https"), "443")));
    let mut domain = String::with_capacity(origin.len());
    if let Some(scheme) = scheme {
        domain.push_str(scheme);
        domain.push_str("://");
    }
    domain.push_str(host);
    if let Some(port) = port {
        domain.push(':');
        domain.push_str(port);
    }
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    Normalized { domain, host: host.to_string() }
}

/// LuaSocket's scheme: a letter or digit, then letters, digits, `+`, `-`, `.`.
fn is_scheme(text: &str) -> bool {
    let mut bytes = text.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn origins(entries: &[&str]) -> Origins {
        let entries: Vec<String> = entries.iter().map(|e| e.to_string()).collect();
        for entry in &entries {
            check_entry(entry).unwrap();
        }
        Origins::new(&entries).unwrap()
    }

    const REQUESTS: [&str; 11] = [
        "http://evil.test",
        "http://foo.test",
        "http://foo.test.evil.test",
        "http://something.foo.test",
        "http://evilfoo.test",
        "http://foo.test:80",
        "http://foo.test:8000",
        "https://foo.test:8000",
        "http://foo.test:90",
        "http://foobtest",
        "https://bar.test:1234",
    ];

    /// Kong's spec/03-plugins/13-cors/01-access_spec.lua `regex_testcases`: for each request
    /// origin, the allowed origin (`None`: the header is removed).
    fn kong_case(entries: &[&str], allowed: [Option<&str>; 11]) {
        let origins = origins(entries);
        for (request, want) in REQUESTS.iter().zip(allowed) {
            let want = want.map_or(Allowed::Nobody, |o| Allowed::Origin(o.to_string()));
            assert_eq!(origins.allowed(Some(request)), want, "{entries:?} for {request}");
        }
    }

    #[test]
    fn kongs_regex_testcases() {
        let foo = Some("foo.test");
        kong_case(&["foo.test"], [foo; 11]);
        kong_case(&["https://bar.test:1234"], [Some("https://bar.test:1234"); 11]);
        let host_only = [
            None,
            Some("http://foo.test"),
            None,
            None,
            None,
            Some("http://foo.test"),
            Some("http://foo.test:8000"),
            Some("https://foo.test:8000"),
            Some("http://foo.test:90"),
            None,
            None,
        ];
        kong_case(&["foo\\.test"], host_only);
        let mut subdomains = host_only;
        subdomains[3] = Some("http://something.foo.test");
        kong_case(&["(.*[./])?foo\\.test"], subdomains);
        let mut port = [None; 11];
        port[6] = Some("http://foo.test:8000");
        port[7] = Some("https://foo.test:8000");
        kong_case(&["(.*[./])?foo\\.test:8000"], port);
        port[6] = None;
        kong_case(&["https://(.*[.])?foo\\.test:8000"], port);
        let mut anchored = [None; 11];
        anchored[1] = Some("http://foo.test");
        anchored[3] = Some("http://something.foo.test");
        anchored[5] = Some("http://foo.test");
        anchored[8] = Some("http://foo.test:90");
        kong_case(&["^http://(.*[.])?foo\\.test(:(80|90))?$"], anchored);
        kong_case(&["foo.test", "bar.test"], [None; 11]);
        let mut full = [None; 11];
        full[1] = Some("http://foo.test");
        full[5] = Some("http://foo.test");
        full[10] = Some("https://bar.test:1234");
        kong_case(&["http://foo.test", "https://bar.test:1234"], full);
        kong_case(&["bar.test", "foo\\.test"], host_only);
        kong_case(&["bar.test", "(.*\\.)?foo\\.test"], subdomains);
    }

    #[test]
    fn all_and_wildcards() {
        assert_eq!(origins(&[]).allowed(Some("http://a.test")), Allowed::Any);
        assert_eq!(origins(&["*"]).allowed(None), Allowed::Any);
        assert!(!origins(&["*"]).varies() && origins(&["a.test"]).varies());
        let starred = origins(&["foo.bar", "*"]);
        assert_eq!(starred.allowed(Some("http://x.test")), Allowed::Any);
        assert_eq!(starred.allowed(None), Allowed::Nobody, "no origin, no list match");
        assert_eq!(starred.allowed(Some("")), Allowed::Nobody);
    }

    #[test]
    fn an_alternation_is_anchored_as_a_whole() {
        let origins = origins(&["http://a\\.test|http://b\\.test"]);
        assert_eq!(origins.allowed(Some("http://a.test")), Allowed::Origin("http://a.test".into()));
        // Kong would allow this one: its `$` binds only to the last alternative.
        assert_eq!(origins.allowed(Some("http://a.test.evil.test")), Allowed::Nobody);
    }

    #[test]
    fn kongs_normalisation() {
        let n = |o: &str| {
            let Normalized { domain, host } = normalize(o);
            (domain, host)
        };
        let pair = |d: &str, h: &str| (d.to_string(), h.to_string());
        assert_eq!(n("http://foo.test:80"), pair("http://foo.test", "foo.test"));
        assert_eq!(n("https://foo.test:443"), pair("https://foo.test", "foo.test"));
        assert_eq!(n("https://foo.test:80"), pair("https://foo.test:80", "foo.test"));
        assert_eq!(n("http://user:pw@foo.test:8080/path?q#f"), pair("http://foo.test:8080", "foo.test"));
        assert_eq!(n("null"), pair("null", "null"));
        assert_eq!(n("foo.test"), pair("foo.test", "foo.test"));
        assert_eq!(n("foo.test:8000"), pair("foo.test:8000", "foo.test:8000"));
        assert_eq!(n("http://[::1]:8080"), pair("http://[::1]:8080", "::1"));
        assert_eq!(n("http://[::1]"), pair("http://[::1]", "::1"));
        assert_eq!(n("http://"), pair("http://", "http://"));
    }

    #[test]
    fn entries_that_are_not_regexes_are_refused() {
        assert_eq!(check_entry("http://[").unwrap_err(), "'http://[' is not a valid regex");
        assert!(check_entry("(?=lookahead)").is_err(), "PCRE-only syntax is refused, not ignored");
        assert!(check_entry("*").is_ok() && check_entry("https://.*\\.test").is_ok());
        assert!(check_entry("a{1000}{1000}").is_err(), "too large a regex");
    }

    proptest! {
        #[test]
        fn normalising_never_panics_and_keeps_the_host_in_the_domain(origin in "\\PC{0,60}") {
            let Normalized { domain, host } = normalize(&origin);
            prop_assert!(domain.contains(host.as_str()));
        }

        #[test]
        fn a_plain_entry_matches_exactly_its_normalised_origin(
            host in "[a-z]{1,8}\\.test",
            port in proptest::option::of(1u16..),
            other in "[a-z]{1,8}\\.test",
        ) {
            let entry = match port { Some(p) => format!("https://{host}:{p}"), None => format!("https://{host}") };
            let origins = origins(&[entry.as_str(), "http://unused.test"]);
            let want = normalize(&entry).domain;
            prop_assert_eq!(origins.allowed(Some(&entry)), Allowed::Origin(want));
            prop_assert_eq!(origins.allowed(Some(&format!("https://{host}.{other}"))), Allowed::Nobody);
            prop_assert_eq!(origins.allowed(Some(&format!("http://{host}"))), Allowed::Nobody);
        }

        #[test]
        fn a_regex_never_matches_more_than_its_whole_subject(suffix in "[a-z.]{1,10}") {
            let origins = origins(&["(.*\\.)?foo\\.test"]);
            let origin = format!("https://foo.test{suffix}");
            prop_assert_eq!(origins.allowed(Some(&origin)), Allowed::Nobody);
        }
    }
}
