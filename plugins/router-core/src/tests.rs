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

#[test]
fn normalisation_works_on_bytes() {
    // A `%` before a multi-byte character used to slice inside it and panic.
    assert_eq!(normalize_path("/%a\u{e9}"), "/%a\u{e9}");
    assert_eq!(normalize_path("/%\u{e9}%41"), "/%\u{e9}A");
    assert_eq!(normalize_path("/%"), "/%");
    assert_eq!(normalize_path("/public%2e%2e/admin"), "/public../admin");
    assert_eq!(normalize_path("/a/%2E%2e/b"), "/b");
}

#[test]
fn request_paths_with_bad_escapes_or_bytes_are_refused() {
    assert_eq!(check_request_path("/ok/caf%C3%A9"), Ok(()));
    assert_eq!(check_request_path("/caf\u{e9}"), Ok(()));
    assert_eq!(check_request_path("/%a\u{e9}"), Err(PathError::InvalidEscape { at: 1 }));
    assert_eq!(check_request_path("/a%zz"), Err(PathError::InvalidEscape { at: 2 }));
    assert_eq!(check_request_path("/a%4"), Err(PathError::InvalidEscape { at: 2 }));
    assert_eq!(check_request_path("/%FF"), Err(PathError::NotUtf8));
    assert_eq!(check_request_path("/%C3"), Err(PathError::NotUtf8));
}

#[test]
fn dot_segments_in_every_disguise() {
    for path in [
        "/api/v1/../admin",
        "/api/v1/./admin",
        "/api/v1/..",
        "/api/v1/%2e%2e/admin",
        "/api/v1/%2E./admin",
        "/api/v1/..%2fadmin",
        "/api/v1/..%2Fadmin",
        "/api/v1/..%5cadmin",
        "/api/v1\\..\\admin",
        "/api/v1/..;/admin",
        "/api/v1/..;jsessionid=1/admin",
        "/api/v1/.;x/admin",
        "../admin",
    ] {
        assert!(has_dot_segment(path), "{path}");
    }
    for path in ["/api/v1/admin", "/a...", "/a/.../b", "/a..b/", "/.well-known/x", "/a;../b", "/v1..x"] {
        assert!(!has_dot_segment(path), "{path}");
    }
}

fn strip_route(path: &str, handling: PathHandling) -> RouteSpec {
    RouteSpec {
        methods: vec![],
        hosts: vec![],
        paths: vec![path.into()],
        headers: vec![],
        snis: vec![],
        regex_priority: 0,
        strip_path: true,
        path_handling: handling,
        service_path: Some("/api/v1".into()),
    }
}

#[test]
fn stripping_a_prefix_never_yields_an_escaping_upstream_path() {
    let hostile = [
        "/public../admin",
        "/public%2e%2e/admin",
        "/public%2E./admin",
        "/public..%2fadmin",
        "/public..\\admin",
        "/public..;/admin",
        "/public/..;/admin",
    ];
    let upstream = |router: &Router, path: &str| {
        let req = Request { method: "GET", host: "h", port: 80, path, headers: &[], sni: None };
        router.route(&req).map(|m| m.upstream_path)
    };
    // v0 joins with a slash: every one of them would reach upstream as `/api/v1/..<something>`.
    let v0 = Router::new(&[strip_route("/public", PathHandling::V0)]).unwrap();
    for path in hostile {
        let sent = upstream(&v0, path).unwrap();
        assert!(sent.starts_with("/api/v1/.."), "{path} -> {sent}");
        assert!(!upstream_path_is_safe(&sent, Some("/api/v1")), "v0 {path} -> {sent} must be refused");
    }
    // v1 concatenates: `/api/v1` + `../admin` is `/api/v1../admin`, a harmless segment `v1..`;
    // what would still be a dot segment is refused.
    let v1 = Router::new(&[strip_route("/public", PathHandling::V1)]).unwrap();
    assert_eq!(upstream(&v1, "/public../admin").unwrap(), "/api/v1../admin");
    assert!(upstream_path_is_safe("/api/v1../admin", Some("/api/v1")));
    let mut v1_root = strip_route("/public", PathHandling::V1);
    v1_root.service_path = Some("/api/v1/".into());
    let v1_root = Router::new(&[v1_root]).unwrap();
    for path in hostile {
        let sent = upstream(&v1_root, path).unwrap();
        assert!(!upstream_path_is_safe(&sent, Some("/api/v1/")), "v1 {path} -> {sent} must be refused");
    }
    for router in [&v0, &v1, &v1_root] {
        let sent = upstream(router, "/public/ok").unwrap();
        assert!(upstream_path_is_safe(&sent, Some("/api/v1")), "{sent}");
    }
    assert!(!upstream_path_is_safe("/other", Some("/api/v1")), "outside the service path");
    assert!(!upstream_path_is_safe("relative", None));
}

#[test]
fn a_route_with_snis_never_matches_a_tls_request_without_one() {
    let mut spec = strip_route("/", PathHandling::V0);
    spec.snis = vec!["a.test".into()];
    let router = Router::new(&[spec]).unwrap();
    let request = |sni| Request { method: "GET", host: "a.test", port: 443, path: "/", headers: &[], sni };
    assert!(router.route(&request(Some("a.test"))).is_some());
    assert!(router.route(&request(Some(""))).is_none(), "TLS without SNI");
    assert!(router.route(&request(Some("b.test"))).is_none());
    assert!(router.route(&request(None)).is_some(), "plain text ignores snis, as in Kong");
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;

    fn table() -> Router {
        let spec = |path: &str, strip| RouteSpec {
            methods: vec![],
            hosts: vec![],
            paths: vec![path.into()],
            headers: vec![("x-h".into(), vec!["~*^a+$".into()])],
            snis: vec![],
            regex_priority: 0,
            strip_path: strip,
            path_handling: PathHandling::V0,
            service_path: Some("/base".into()),
        };
        let mut no_headers = spec("/", true);
        no_headers.headers.clear();
        Router::new(&[spec("/a", true), spec("~/r/(?<x>[^/]+)", false), no_headers]).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_path_normalises_routes_and_checks_without_panicking(path in "\\PC*", raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let lossy = String::from_utf8_lossy(&raw).into_owned();
            let router = table();
            for p in [path.as_str(), lossy.as_str()] {
                let normalized = normalize_path(p);
                prop_assert_eq!(normalize_path(&normalized), normalized.clone(), "normalising is idempotent");
                let _ = check_request_path(p);
                let _ = has_dot_segment(p);
                let headers = vec![("x-h".to_string(), raw.clone())];
                let req = Request { method: "GET", host: p, port: 80, path: p, headers: &headers, sni: Some(p) };
                if let Some(m) = router.route(&req) {
                    let _ = upstream_path_is_safe(&m.upstream_path, Some("/base"));
                }
            }
        }
    }
}
