//! The shared matching cases run natively, plus unit checks.

use super::*;

#[test]
fn every_shared_case() {
    let cases = cases::load();
    assert!(cases.len() >= 60);
    let mut failures = Vec::new();
    for case in &cases {
        let port = case.port();
        let specs: Vec<RouteSpec> = case.routes.iter().map(|r| r.spec(port)).collect();
        let router = Router::new(&specs).unwrap_or_else(|e| panic!("{}: {e:?}", case.name));
        let headers: Vec<(String, Vec<u8>)> =
            case.request.headers.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone().into_bytes())).collect();
        let req = Request {
            method: &case.request.method,
            host: &case.request.host,
            port,
            path: &case.request.path,
            headers: &headers,
            sni: case.request.sni.as_deref(),
        };
        let got = router.route(&req).map(|m| (m.route, m.upstream_path, m.captures));
        let wrong = cases::mismatches(case, got);
        if !wrong.is_empty() {
            failures.push(format!("{}: {}", case.name, wrong.join("; ")));
        }
    }
    assert!(failures.is_empty(), "{} case(s) failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn normalisation() {
    assert_eq!(normalize_path("/a/b/../c/./d"), "/a/c/d");
    assert_eq!(normalize_path("/%7e%41%2f"), "/~A%2F");
    assert_eq!(normalize_path("//a//b/"), "/a/b/");
    assert_eq!(normalize_path("/a/.."), "/");
    assert_eq!(normalize_path("/%zz/%4"), "/%zz/%4");
    assert_eq!(normalize_path("/caf%c3%a9"), "/caf%C3%A9");
}

#[test]
fn configured_paths_are_checked() {
    assert!(check_path("/ok").is_ok());
    assert!(check_path("~/ok/\\d+").is_ok());
    assert_eq!(check_path("no-slash").unwrap_err(), "must start with / or ~/");
    assert_eq!(check_path("~no-slash").unwrap_err(), "must start with / or ~/");
    assert!(check_path("/a//b").unwrap_err().starts_with("non-normalized path"));
    assert!(check_path("/a/../b").unwrap_err().contains("\"/b\""));
    assert!(check_path("~/(unclosed").unwrap_err().starts_with("invalid regex"));
}

#[test]
fn bad_tables_report_every_route_and_field() {
    let bad = |paths: &[&str], hosts: &[&str]| RouteSpec {
        methods: vec![],
        hosts: hosts.iter().map(|s| s.to_string()).collect(),
        paths: paths.iter().map(|s| s.to_string()).collect(),
        headers: vec![("x".into(), vec!["~*(".into()])],
        snis: vec![],
        regex_priority: 0,
        strip_path: true,
        path_handling: PathHandling::V0,
        service_path: None,
    };
    let errors = Router::new(&[bad(&["/ok", "~/("], &["a.*.b"])]).err().unwrap();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, vec!["hosts[0]", "headers.x[0]", "paths[1]"]);
}

#[test]
fn host_patterns() {
    assert!(HostPattern::parse("*.a.*", true).is_err());
    assert!(HostPattern::parse("a.*.b", true).is_err());
    assert!(HostPattern::parse("a:99999", true).is_err());
    assert_eq!(split_host_port("[::1]:80"), ("::1", Some("80")));
    assert_eq!(split_host_port("a.test"), ("a.test", None));
}

#[test]
fn regex_paths_are_indexed_by_their_literal_prefix() {
    let prefix = |r: &str| literal_prefix(&format!("^(?:{r})")).map(|p| String::from_utf8(p).unwrap());
    assert_eq!(prefix(r"/svc5/items/(?<id>\d+)$").as_deref(), Some("/svc5/items/"));
    assert_eq!(prefix(r"/ab?c").as_deref(), Some("/a"));
    assert_eq!(prefix(r"/api/(v1|v2)/x").as_deref(), Some("/api/v"));
    assert_eq!(prefix(r"/one|/two"), None, "alternatives share only `/`");
    assert_eq!(prefix(r"(?i)/abc"), None, "case-insensitive: no common literal beyond `/`");
    assert_eq!(prefix(r"/\d+"), None);
    assert_eq!(prefix(r"/a\.b/.*").as_deref(), Some("/a.b/"));
}
